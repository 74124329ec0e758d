import { SluiceApiError } from "./errors.js";

/**
 * The client's one way to the server: `fetch`, JSON, errors as SluiceApiError, and retries with
 * full-jitter exponential backoff. Only web-standard globals (fetch, AbortController, setTimeout),
 * so it runs in Node, browsers, Cloudflare Workers and Deno.
 */

export interface RetryOptions {
  /** Retries after the first attempt (5). */
  retries?: number;
  /** The first backoff's cap (100 ms); each retry doubles it. */
  initialDelayMs?: number;
  /** The largest backoff (5000 ms). */
  maxDelayMs?: number;
}

export interface TransportOptions {
  url: string;
  fetch?: typeof fetch;
  headers?: Record<string, string>;
  /** An API key (`slk_…`) or a JWT, sent as `Authorization: Bearer …` on every request. */
  token?: string;
  retry?: RetryOptions;
}

/** What may follow `Bearer `: visible ASCII, no spaces (a key, a JWT, an IdP's opaque token). */
const TOKEN_PATTERN = /^[\x21-\x7e]+$/;

export interface RequestSpec {
  method: "GET" | "POST" | "DELETE";
  /** Already encoded, starting with "/". */
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as is (already JSON); wins over `body`. */
  bodyText?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /**
   * Whether sending the request twice is harmless (default true). When false, only a 429 is
   * retried: any other failure may come after the server acted on the request.
   */
  idempotent?: boolean;
}

export interface HttpAnswer<T> {
  status: number;
  body: T;
  /** Requests sent for this answer: 1 when the first one succeeded. */
  attempts: number;
}

export class Transport {
  private readonly base: string;
  private readonly fetchImpl: typeof fetch;
  // Private fields, not properties: util.inspect and JSON never show the credential.
  readonly #headers: Record<string, string>;
  readonly #token: string | undefined;
  private readonly retries: number;
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(options: TransportOptions) {
    if (!options.url) throw new TypeError("ClientOptions.url is required");
    this.base = options.url.replace(/\/+$/, "");
    // Called through a wrapper: Workers and browsers refuse a fetch detached from globalThis.
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    const headers = { ...options.headers };
    if (options.token !== undefined) {
      // Checked here, not by fetch: its invalid-header error would quote the value.
      if (typeof options.token !== "string" || !TOKEN_PATTERN.test(options.token)) {
        throw new TypeError(
          "ClientOptions.token must be an API key or token: visible ASCII without spaces",
        );
      }
      // The token replaces an `authorization` header however it is spelled, never joins it.
      for (const name of Object.keys(headers)) {
        if (name.toLowerCase() === "authorization") delete headers[name];
      }
      headers.authorization = `Bearer ${options.token}`;
    }
    this.#headers = headers;
    this.#token = options.token;
    this.retries = Math.max(0, options.retry?.retries ?? 5);
    this.initialDelayMs = Math.max(0, options.retry?.initialDelayMs ?? 100);
    this.maxDelayMs = Math.max(0, options.retry?.maxDelayMs ?? 5000);
  }

  /** Full jitter: a uniform delay up to min(max, initial × 2^attempt). */
  backoffMs(attempt: number): number {
    const cap = Math.min(this.maxDelayMs, this.initialDelayMs * 2 ** attempt);
    return Math.random() * cap;
  }

  get maxBackoffMs(): number {
    return this.maxDelayMs;
  }

  async request<T>(spec: RequestSpec): Promise<HttpAnswer<T>> {
    const idempotent = spec.idempotent ?? true;
    for (let attempt = 0; ; attempt++) {
      let retryAfterMs: number | undefined;
      try {
        return { ...(await this.once<T>(spec, idempotent)), attempts: attempt + 1 };
      } catch (err) {
        if (spec.signal?.aborted) throw abortReason(spec.signal);
        if (!(err instanceof SluiceApiError)) throw err;
        attemptsMade.set(err, attempt + 1);
        if (!err.retryable || attempt >= this.retries) throw err;
        if (!idempotent && err.status !== 429) throw err;
        retryAfterMs = retryAfterOf(err);
      }
      const delay = Math.max(this.backoffMs(attempt), Math.min(retryAfterMs ?? 0, this.maxDelayMs));
      await sleep(delay, spec.signal);
    }
  }

  private async once<T>(
    spec: RequestSpec,
    idempotent: boolean,
  ): Promise<{ status: number; body: T }> {
    const text = spec.bodyText ?? (spec.body === undefined ? undefined : JSON.stringify(spec.body));
    const headers: Record<string, string> = { accept: "application/json", ...this.#headers };
    if (text !== undefined) headers["content-type"] = "application/json";
    Object.assign(headers, spec.headers);
    const init: RequestInit = { method: spec.method, headers };
    if (text !== undefined) init.body = text;
    if (spec.signal) init.signal = spec.signal;

    let response: Response;
    let answer: string;
    try {
      // Raced with the signal: a custom fetch that ignores it still lets the caller go.
      response = await raceSignal(this.fetchImpl(this.url(spec), init), spec.signal);
      answer = await raceSignal(response.text(), spec.signal);
    } catch (err) {
      if (spec.signal?.aborted) throw abortReason(spec.signal);
      throw new SluiceApiError({
        status: 0,
        code: "network_error",
        message: this.#redact(`${spec.method} ${spec.path} failed: ${describe(err)}`),
        // Whether the server acted on it is unknown: only an idempotent request may go again.
        retryable: idempotent,
        cause: err,
      });
    }
    if (response.status >= 200 && response.status < 300) {
      if (answer === "") return { status: response.status, body: undefined as T };
      try {
        return { status: response.status, body: JSON.parse(answer) as T };
      } catch (err) {
        throw new SluiceApiError({
          status: response.status,
          code: "invalid_response",
          message: `${spec.method} ${spec.path}: the answer is not JSON`,
          retryable: false,
          cause: err,
        });
      }
    }
    throw errorOf(spec, response, answer, (text) => this.#redact(text));
  }

  /** The text with the token blanked out: no error this client makes ever carries it. */
  #redact(text: string): string {
    return this.#token === undefined ? text : text.split(this.#token).join("[redacted]");
  }

  private url(spec: RequestSpec): string {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(spec.query ?? {})) {
      if (value !== undefined) params.set(name, String(value));
    }
    const query = params.toString();
    return `${this.base}${spec.path}${query ? `?${query}` : ""}`;
  }
}

function errorOf(
  spec: RequestSpec,
  response: Response,
  text: string,
  redact: (text: string) => string,
): SluiceApiError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const error = (parsed as { error?: unknown } | undefined)?.error;
  const header = response.headers.get("retry-after");
  const retryAfterMs = header !== null && /^\d+$/.test(header) ? Number(header) * 1000 : undefined;
  if (isErrorBody(error)) {
    const err = new SluiceApiError({
      status: response.status,
      code: error.code,
      message: redact(error.message),
      details: error.details,
    });
    return withRetryAfter(err, retryAfterMs);
  }
  const err = new SluiceApiError({
    status: response.status,
    code: `http_${response.status}`,
    // A proxy's error page may echo the request's headers: the token is blanked out before
    // the text is cut, so that no piece of it is left at the cut either.
    message: `${spec.method} ${spec.path} answered ${response.status}${text ? `: ${redact(text).slice(0, 200)}` : ""}`,
  });
  return withRetryAfter(err, retryAfterMs);
}

function isErrorBody(
  error: unknown,
): error is { code: string; message: string; details?: unknown } {
  return (
    typeof error === "object" &&
    error !== null &&
    typeof (error as { code?: unknown }).code === "string" &&
    typeof (error as { message?: unknown }).message === "string"
  );
}

/** How many requests an error's call sent: more than 1 means an earlier answer was lost. */
const attemptsMade = new WeakMap<SluiceApiError, number>();

export function attemptsOf(err: SluiceApiError): number {
  return attemptsMade.get(err) ?? 1;
}

/** A `Retry-After` header's delay, kept beside the error rather than on its public shape. */
const retryAfter = new WeakMap<SluiceApiError, number>();

function withRetryAfter(err: SluiceApiError, ms: number | undefined): SluiceApiError {
  if (ms !== undefined) retryAfter.set(err, ms);
  return err;
}

function retryAfterOf(err: SluiceApiError): number | undefined {
  return retryAfter.get(err);
}

/** The error's message, with its cause's code (fetch's "fetch failed" hides ECONNREFUSED there). */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause as { code?: unknown; message?: unknown } | undefined;
  const reason =
    typeof cause?.code === "string"
      ? cause.code
      : typeof cause?.message === "string"
        ? cause.message
        : undefined;
  return reason === undefined ? err.message : `${err.message} (${reason})`;
}

/** The signal's reason when it is an Error (a DOMException from abort()), else an AbortError. */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error
    ? reason
    : new DOMException("This operation was aborted", "AbortError");
}

/** Settles with the promise, or rejects with the signal's reason as soon as it aborts. */
export function raceSignal<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(abortReason(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      promise.catch(() => undefined);
      reject(abortReason(signal));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** setTimeout as a promise that an abort ends early (rejecting with the signal's reason). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export function isAbortError(err: unknown): boolean {
  return (
    typeof err === "object" &&
    err !== null &&
    ((err as { name?: unknown }).name === "AbortError" ||
      (err as { name?: unknown }).name === "TimeoutError")
  );
}

/** Encodes one path segment (topic, group and member names are path-safe, but be sure). */
export const seg = (value: string | number) => encodeURIComponent(String(value));
