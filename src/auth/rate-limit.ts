import type { RateLimit } from "./principal.js";

/**
 * A token bucket per principal, in this process only: with N instances the effective limit is
 * N times this one (docs/rfcs/0005-auth-and-limits.md §1). It bounds abuse per instance at no
 * cost per request; a global limit would need a shared counter.
 */

/** The most principals tracked; the one idle longest is forgotten first (its bucket was full). */
const MAX_BUCKETS = 10_000;

interface Bucket {
  tokens: number;
  at: number;
}

export type Admission = { ok: true } | { ok: false; retryAfterS: number };

export class RateLimiter {
  readonly #buckets = new Map<string, Bucket>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Takes one request from the principal's bucket, or says how long until one is there. */
  take(principalId: string, limit: RateLimit): Admission {
    const now = this.#now();
    const previous = this.#buckets.get(principalId);
    const elapsedS = previous ? Math.max(0, now - previous.at) / 1000 : Infinity;
    const tokens = Math.min(
      limit.burst,
      (previous?.tokens ?? limit.burst) + elapsedS * limit.perSecond,
    );
    // Re-inserted on every use, so the Map's first entry is the one idle longest.
    this.#buckets.delete(principalId);
    if (tokens >= 1) {
      this.#buckets.set(principalId, { tokens: tokens - 1, at: now });
      if (this.#buckets.size > MAX_BUCKETS) {
        this.#buckets.delete(this.#buckets.keys().next().value as string);
      }
      return { ok: true };
    }
    this.#buckets.set(principalId, { tokens, at: now });
    const waitS = limit.perSecond > 0 ? (1 - tokens) / limit.perSecond : Infinity;
    return { ok: false, retryAfterS: Math.max(1, Math.ceil(Math.min(waitS, 86_400))) };
  }
}

/** Counts open event streams per principal, so one credential cannot hold every connection. */
export class StreamLimiter {
  readonly #open = new Map<string, number>();

  constructor(readonly maxPerPrincipal: number) {}

  /** A release function, or undefined when the principal already has its maximum open. */
  acquire(principalId: string): (() => void) | undefined {
    const open = this.#open.get(principalId) ?? 0;
    if (open >= this.maxPerPrincipal) return undefined;
    this.#open.set(principalId, open + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#open.get(principalId) ?? 1) - 1;
      if (left <= 0) this.#open.delete(principalId);
      else this.#open.set(principalId, left);
    };
  }
}
