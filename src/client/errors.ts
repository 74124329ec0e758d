/**
 * What the client throws for a failed request: the server's `{"error": {code, message, details}}`
 * as an Error, or a network failure (status 0, code `network_error`).
 */
export class SluiceApiError extends Error {
  /** The HTTP status; 0 when no answer arrived (network error). */
  readonly status: number;
  /** The server's stable error code (README "HTTP API v1"), or `network_error` / `http_<status>`. */
  readonly code: string;
  readonly details: unknown;
  /** Whether sending the same request again is safe and may succeed. */
  readonly retryable: boolean;

  constructor(init: {
    status: number;
    code: string;
    message: string;
    details?: unknown;
    retryable?: boolean;
    cause?: unknown;
  }) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "SluiceApiError";
    this.status = init.status;
    this.code = init.code;
    this.details = init.details;
    this.retryable = init.retryable ?? retryableStatus(init.status, init.code);
  }
}

export function isSluiceApiError(err: unknown, code?: string): err is SluiceApiError {
  return err instanceof SluiceApiError && (code === undefined || err.code === code);
}

/**
 * 429 and 503 (`storage_unavailable`, or a proxy's) are worth another try, and so are gateway
 * failures; a 500 the server itself answered (`internal`, `corrupt_data`) is not.
 */
export function retryableStatus(status: number, code: string): boolean {
  if (status === 429 || status === 502 || status === 503 || status === 504) return true;
  if (status >= 500) return code.startsWith("http_"); // no Sluice error body: not our server
  return false;
}
