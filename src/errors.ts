/**
 * The one public error set. Every failure that can reach a caller is a SluiceError with a
 * stable code; the code decides the HTTP status and whether retrying the same request is safe.
 */
export const errorCodes = {
  invalid_request: { status: 400, retryable: false },
  invalid_json: { status: 400, retryable: false },
  invalid_name: { status: 400, retryable: false },
  invalid_config: { status: 400, retryable: false },
  invalid_offset: { status: 400, retryable: false },
  invalid_partition: { status: 400, retryable: false },
  invalid_encoding: { status: 400, retryable: false },
  unauthorized: { status: 401, retryable: false },
  forbidden: { status: 403, retryable: false },
  /** An idempotent producer's epoch is older than the stored one: a newer instance took over. */
  producer_fenced: { status: 403, retryable: false },
  not_found: { status: 404, retryable: false },
  topic_not_found: { status: 404, retryable: false },
  group_not_found: { status: 404, retryable: false },
  unknown_member: { status: 404, retryable: false },
  topic_exists: { status: 409, retryable: false },
  conflict: { status: 409, retryable: false },
  fenced: { status: 409, retryable: false },
  group_not_empty: { status: 409, retryable: false },
  group_full: { status: 409, retryable: false },
  /** An idempotent request's sequence number is neither the next one nor a recent one. */
  out_of_order_sequence: { status: 409, retryable: false },
  payload_too_large: { status: 413, retryable: false },
  record_too_large: { status: 413, retryable: false },
  offset_out_of_range: { status: 416, retryable: false },
  throttled: { status: 429, retryable: true },
  /** The caller's own request rate or open streams are over its limit; see Retry-After. */
  rate_limited: { status: 429, retryable: true },
  corrupt_data: { status: 500, retryable: false },
  internal: { status: 500, retryable: false },
  storage_unavailable: { status: 503, retryable: true },
} as const satisfies Record<string, { status: number; retryable: boolean }>;

export type ErrorCode = keyof typeof errorCodes;

export class SluiceError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { details?: Record<string, unknown>; cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "SluiceError";
    this.code = code;
    this.details = options?.details;
  }

  get status(): number {
    return errorCodes[this.code].status;
  }

  get retryable(): boolean {
    return errorCodes[this.code].retryable;
  }
}

export function isSluiceError(err: unknown, code?: ErrorCode): err is SluiceError {
  return err instanceof SluiceError && (code === undefined || err.code === code);
}
