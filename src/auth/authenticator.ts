import type { KeyStore } from "../meta/key-store.js";
import { ApiKeyVerifier, isApiKey, unauthorized } from "./api-keys.js";
import { JwtVerifier, type JwtConfig } from "./jwt.js";
import type { Principal } from "./principal.js";
import { Secret } from "./secret.js";

export interface AuthenticatorOptions {
  keys: KeyStore;
  /** Token verification; with neither a secret nor a JWKS URL only API keys are accepted. */
  jwt: JwtConfig;
  /** How long a key lookup is trusted: a revocation elsewhere takes effect within it. */
  keyCacheMs: number;
  now?: () => number;
}

/** Where the credential came from: only the event-stream route accepts one in its URL. */
export type CredentialSource = "header" | "query";

/** Turns a request's credential into a Principal, or throws 401 `unauthorized`. */
export class Authenticator {
  readonly keys: ApiKeyVerifier;
  readonly #tokens: JwtVerifier | undefined;

  constructor(options: AuthenticatorOptions) {
    this.keys = new ApiKeyVerifier({
      keys: options.keys,
      cacheMs: options.keyCacheMs,
      ...(options.now ? { now: options.now } : {}),
    });
    const { jwt } = options;
    this.#tokens =
      jwt.secret !== undefined || jwt.jwksUrl !== undefined
        ? new JwtVerifier(jwt, options.now)
        : undefined;
  }

  /** `Authorization: Bearer <key or token>`. */
  static fromHeader(header: string): Secret {
    const match = /^Bearer +([^\s]+) *$/i.exec(header);
    return match ? new Secret(match[1]!) : new Secret("");
  }

  async authenticate(credential: Secret | undefined, source: CredentialSource): Promise<Principal> {
    if (credential === undefined) throw unauthorized("missing");
    const text = credential.reveal();
    if (text === "") throw unauthorized("invalid");
    if (isApiKey(text)) {
      // Keys live for months: one in a URL would end up in proxies' and browsers' histories.
      if (source === "query") throw unauthorized("invalid");
      return this.keys.verify(credential);
    }
    if (!this.#tokens) throw unauthorized("invalid");
    return this.#tokens.verify(credential);
  }
}
