import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { ulid } from "ulid";
import { SluiceError } from "../errors.js";
import type { ApiKeyRecord, KeyStore } from "../meta/key-store.js";
import type { Principal, RateLimit } from "./principal.js";
import { parseScopes } from "./scopes.js";
import { Secret } from "./secret.js";

/**
 * API keys for servers: `slk_{id}_{secret}`, a ULID id and 256 random bits in base64url. Only
 * the SHA-256 digest of the secret is stored: a high-entropy secret needs no slow hash, and a
 * leaked table yields no usable key.
 */

const KEY_PATTERN = /^slk_([0-9A-HJKMNP-TV-Z]{26})_([A-Za-z0-9_-]{43})$/;

export function isApiKey(credential: string): boolean {
  return credential.startsWith("slk_");
}

export function digest(secret: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(secret, "utf8").digest());
}

export interface NewApiKey {
  scopes: string[];
  description: string;
  expiresAt: number | null;
  rateLimit: RateLimit | null;
}

/** A key as `POST /v1/auth/keys` and `sluice keys create --direct` ask for it. */
export interface ApiKeyRequest {
  scopes: string[];
  description?: string | undefined;
  expiresInSeconds?: number | undefined;
  rateLimit?: RateLimit | undefined;
}

export function newApiKey(request: ApiKeyRequest, now: number): NewApiKey {
  return {
    scopes: request.scopes,
    description: request.description ?? "",
    expiresAt:
      request.expiresInSeconds === undefined ? null : now + request.expiresInSeconds * 1000,
    rateLimit: request.rateLimit ?? null,
  };
}

/** A new key: the record to store and the plain key, which is shown once and never again. */
export function generateApiKey(
  request: NewApiKey,
  now: number,
): { record: ApiKeyRecord; key: Secret } {
  parseScopes(request.scopes);
  const id = ulid(now);
  const secret = randomBytes(32).toString("base64url");
  return {
    record: { id, secretHash: digest(secret), createdAt: now, revokedAt: null, ...request },
    key: new Secret(`slk_${id}_${secret}`),
  };
}

/** Compared against when the id is unknown, so both failures take the same time. */
const DUMMY_DIGEST = digest("sluice: no such key");

export function unauthorized(reason: "missing" | "invalid" | "expired" | "revoked"): SluiceError {
  const message =
    reason === "missing" ? "credentials are required" : `the credentials are ${reason}`;
  return new SluiceError("unauthorized", message, { details: { reason } });
}

interface Cached {
  record: ApiKeyRecord | undefined;
  at: number;
}

/** The most key lookups remembered; the oldest is forgotten first. */
const MAX_CACHED_KEYS = 10_000;

/**
 * Verifies API keys against the key store, remembering lookups (found or not) for `cacheMs`:
 * a revocation takes effect within that time on every instance.
 */
export class ApiKeyVerifier {
  readonly #keys: KeyStore;
  readonly #cacheMs: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, Cached>();

  constructor(options: { keys: KeyStore; cacheMs: number; now?: () => number }) {
    this.#keys = options.keys;
    this.#cacheMs = options.cacheMs;
    this.#now = options.now ?? Date.now;
  }

  async verify(credential: Secret): Promise<Principal> {
    const match = KEY_PATTERN.exec(credential.reveal());
    if (!match) throw unauthorized("invalid");
    const [, id, secret] = match as unknown as [string, string, string];
    const record = await this.#lookup(id);
    const expected = record?.secretHash ?? DUMMY_DIGEST;
    const actual = digest(secret);
    const equal =
      expected.length === actual.length &&
      timingSafeEqual(expected, actual) &&
      record !== undefined;
    if (!equal || !record) throw unauthorized("invalid");
    const now = this.#now();
    if (record.revokedAt !== null && record.revokedAt <= now) throw unauthorized("revoked");
    if (record.expiresAt !== null && record.expiresAt <= now) throw unauthorized("expired");
    let scopes;
    try {
      scopes = parseScopes(record.scopes);
    } catch (err) {
      // The key's record is wrong, not the caller's request.
      throw new SluiceError("internal", "internal error", { cause: err });
    }
    return {
      id: `key:${record.id}`,
      kind: "key",
      scopes,
      rateLimit: record.rateLimit,
      expiresAt: record.expiresAt,
    };
  }

  /** Forgets a key at once in this process (after a revocation here). */
  forget(id: string): void {
    this.#cache.delete(id);
  }

  async #lookup(id: string): Promise<ApiKeyRecord | undefined> {
    const now = this.#now();
    const cached = this.#cache.get(id);
    if (cached && now - cached.at < this.#cacheMs) return cached.record;
    const record = await this.#keys.getKey(id);
    this.#cache.delete(id);
    this.#cache.set(id, { record, at: now });
    if (this.#cache.size > MAX_CACHED_KEYS) {
      this.#cache.delete(this.#cache.keys().next().value as string);
    }
    return record;
  }
}
