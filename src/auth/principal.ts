import type { Scope } from "./scopes.js";

/** A request rate: `perSecond` on average, `burst` at once. */
export interface RateLimit {
  perSecond: number;
  burst: number;
}

/**
 * Who is calling, after verification. API keys and tokens both end up here, so the rest of the
 * code never asks which credential it was.
 */
export interface Principal {
  /**
   * Stable and safe to log: `key:{id}`, `token:{sub}` (a token signed elsewhere),
   * `token:{minter}:{sub}` (one minted by a key here), or `anonymous`.
   */
  id: string;
  kind: "key" | "token" | "anonymous";
  scopes: readonly Scope[];
  /** The credential's own rate, replacing the server's default. */
  rateLimit: RateLimit | null;
  /** When the credential stops working (ms since the epoch): what it mints must not outlive it. */
  expiresAt: number | null;
}

/** The caller when authentication is off: allowed everything, as the embedded server always was. */
export const ANONYMOUS: Principal = {
  id: "anonymous",
  kind: "anonymous",
  scopes: [{ operation: "admin" }],
  rateLimit: null,
  expiresAt: null,
};
