import { SluiceError } from "../errors.js";

export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const storageRetryPolicy: RetryPolicy = { attempts: 5, baseDelayMs: 20, maxDelayMs: 1_000 };

export function isRetryable(err: unknown): boolean {
  return err instanceof SluiceError && err.retryable;
}

/** Full-jitter exponential backoff, so that writers that collided do not collide again. */
export function backoffDelay(policy: RetryPolicy, attempt: number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return Math.random() * ceiling;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Runs an idempotent operation, retrying only errors marked retryable. Callers must pass only
 * operations whose repetition is harmless (a PUT of an immutable key, a read).
 */
export async function retryIdempotent<T>(
  operation: () => Promise<T>,
  policy: RetryPolicy = storageRetryPolicy,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await operation();
    } catch (err) {
      if (!isRetryable(err) || attempt + 1 >= policy.attempts) throw err;
      await sleep(backoffDelay(policy, attempt));
    }
  }
}
