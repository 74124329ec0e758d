import { createSecretKey, type KeyObject } from "node:crypto";
import {
  SignJWT,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
} from "jose";
import { ulid } from "ulid";
import { SluiceError } from "../errors.js";
import { unauthorized } from "./api-keys.js";
import type { Principal } from "./principal.js";
import { formatScope, parseScope, type Scope } from "./scopes.js";
import type { Secret } from "./secret.js";

/**
 * Short-lived signed tokens for end users (docs/rfcs/0005-auth-and-limits.md §1), verified with
 * `jose`. `exp` and `sub` are required, `iss` and `aud` pinned, and the algorithms fixed per
 * key source: HS256 with the shared secret, RS256/ES256/EdDSA with a JWKS. `alg: none` and
 * every other algorithm are refused before any key is looked at.
 */
export interface JwtConfig {
  /** The shared HS256 secret (at least 32 bytes); also what `POST /v1/auth/tokens` signs with. */
  secret: Secret | undefined;
  /** A JWKS URL for tokens signed by the customer's own identity provider. */
  jwksUrl: string | undefined;
  issuer: string;
  audience: string;
  /** Tokens living longer than this (`exp − iat`) are refused. */
  maxTtlS: number;
}

/** Clocks of the signer and of this process may differ by this much. */
export const CLOCK_TOLERANCE_S = 30;
export const MIN_SECRET_BYTES = 32;
/** The most verified tokens remembered; the oldest is forgotten first. */
const MAX_VERIFIED_TOKENS = 10_000;
const SHARED_SECRET_ALGORITHMS = ["HS256"];
const JWKS_ALGORITHMS = ["RS256", "ES256", "EdDSA"];

export class JwtVerifier {
  readonly #config: JwtConfig;
  readonly #secretKey: KeyObject | undefined;
  readonly #jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  readonly #now: () => number;
  /**
   * Tokens already verified, until they expire: a client sends the same token on every request,
   * and a signature check costs far more than the rest of a small request. Nothing about a valid
   * token can change before its exp (tokens are not revocable), so the answer is reused.
   */
  readonly #verified = new Map<string, Principal>();

  constructor(config: JwtConfig, now: () => number = Date.now) {
    this.#config = config;
    this.#now = now;
    // Imported once: jose would otherwise import a raw secret as a key on every verification.
    this.#secretKey = config.secret && createSecretKey(Buffer.from(config.secret.reveal(), "utf8"));
    this.#jwks = config.jwksUrl ? createRemoteJWKSet(new URL(config.jwksUrl)) : undefined;
  }

  async verify(token: Secret): Promise<Principal> {
    const jwt = token.reveal();
    const cached = this.#verified.get(jwt);
    if (cached && cached.expiresAt! + CLOCK_TOLERANCE_S * 1000 > this.#now()) return cached;
    this.#verified.delete(jwt);
    const principal = await this.#verify(jwt);
    this.#verified.set(jwt, principal);
    if (this.#verified.size > MAX_VERIFIED_TOKENS) {
      this.#verified.delete(this.#verified.keys().next().value as string);
    }
    return principal;
  }

  async #verify(jwt: string): Promise<Principal> {
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(jwt).alg;
    } catch {
      throw unauthorized("invalid");
    }
    const options = {
      issuer: this.#config.issuer,
      audience: this.#config.audience,
      requiredClaims: ["exp", "sub"],
      clockTolerance: CLOCK_TOLERANCE_S,
      currentDate: new Date(this.#now()),
    };
    let payload: JWTPayload;
    try {
      if (alg !== undefined && SHARED_SECRET_ALGORITHMS.includes(alg) && this.#secretKey) {
        ({ payload } = await jwtVerify(jwt, this.#secretKey, {
          ...options,
          algorithms: SHARED_SECRET_ALGORITHMS,
        }));
      } else if (alg !== undefined && JWKS_ALGORITHMS.includes(alg) && this.#jwks) {
        ({ payload } = await jwtVerify(jwt, this.#jwks, {
          ...options,
          algorithms: JWKS_ALGORITHMS,
        }));
      } else {
        throw unauthorized("invalid");
      }
    } catch (err) {
      if (err instanceof SluiceError) throw err;
      if (err instanceof joseErrors.JWTExpired) throw unauthorized("expired");
      // The key set not answering, or answering with an error or garbage, is the identity
      // provider's outage, not the caller's fault: retryable.
      if (
        err instanceof joseErrors.JWKSTimeout ||
        err instanceof joseErrors.JWKSInvalid ||
        (err instanceof joseErrors.JOSEError && err.code === "ERR_JOSE_GENERIC") ||
        err instanceof TypeError
      ) {
        throw keySetUnreachable(err);
      }
      if (err instanceof joseErrors.JOSEError) throw unauthorized("invalid");
      throw err;
    }
    const nowS = this.#now() / 1000;
    const exp = payload.exp!;
    const issuedAt = payload.iat ?? nowS;
    // Lifetime is counted from now as well as from iat: a future iat must not stretch it.
    const tooLong =
      exp - issuedAt > this.#config.maxTtlS ||
      exp - nowS > this.#config.maxTtlS + CLOCK_TOLERANCE_S ||
      issuedAt > nowS + CLOCK_TOLERANCE_S;
    if (tooLong) throw unauthorized("invalid");
    const { sub, minter } = payload;
    if (
      typeof sub !== "string" ||
      sub === "" ||
      (minter !== undefined && typeof minter !== "string")
    ) {
      throw unauthorized("invalid");
    }
    const scopes = parseClaimScopes(payload.scope);
    if (!scopes) throw unauthorized("invalid");
    return {
      // Limits count per principal: a minted token's user is counted within its minter.
      id: minter === undefined ? `token:${sub}` : `token:${minter}:${sub}`,
      kind: "token",
      scopes,
      rateLimit: null,
      expiresAt: exp * 1000,
    };
  }
}

function keySetUnreachable(cause: unknown): SluiceError {
  return new SluiceError("storage_unavailable", "the token signing keys are unreachable", {
    cause,
  });
}

/** The `scope` claim: space-separated scopes (RFC 8693 §4.2); a token without one may do nothing. */
function parseClaimScopes(claim: unknown): Scope[] | undefined {
  if (claim === undefined) return [];
  if (typeof claim !== "string") return undefined;
  const scopes: Scope[] = [];
  for (const text of claim.split(" ").filter((s) => s !== "")) {
    const scope = parseScope(text);
    if (!scope) return undefined;
    scopes.push(scope);
  }
  return scopes;
}

export interface MintRequest {
  subject: string;
  scopes: readonly Scope[];
  ttlS: number;
  /** The principal minting it (`key:{id}`): the token's limits are counted within it. */
  minter?: string;
  /** The token expires no later than this (ms since the epoch): its minter's own expiry. */
  notAfter?: number | null;
}

/** Signs an HS256 token with the shared secret, as a customer's backend would. */
export async function mintToken(
  config: Pick<JwtConfig, "issuer" | "audience" | "maxTtlS">,
  secret: Secret,
  request: MintRequest,
  now: number = Date.now(),
): Promise<{ token: string; expiresAt: number }> {
  if (request.ttlS < 1 || request.ttlS > config.maxTtlS) {
    throw new SluiceError("invalid_request", `ttlSeconds: 1 to ${config.maxTtlS}`);
  }
  const iat = Math.floor(now / 1000);
  const notAfter = request.notAfter ? Math.floor(request.notAfter / 1000) : Infinity;
  const exp = Math.min(iat + request.ttlS, notAfter);
  if (exp <= iat) throw new SluiceError("invalid_request", "the minting credential has expired");
  const claims = {
    scope: request.scopes.map(formatScope).join(" "),
    ...(request.minter === undefined ? {} : { minter: request.minter }),
  };
  const token = await new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuer(config.issuer)
    .setAudience(config.audience)
    .setSubject(request.subject)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .setJti(ulid(now))
    .sign(new TextEncoder().encode(secret.reveal()));
  return { token, expiresAt: exp * 1000 };
}
