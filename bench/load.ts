/**
 * The load generator: closed-loop workers (each sends, waits for the answer, sends again) over
 * keep-alive HTTP, bounded by time and by count. node:http with a keep-alive agent rather than
 * fetch: on a two-core machine the generator shares the CPU with the server, and node:http costs
 * the client less per request.
 */
import { Agent, request } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { drainTimeoutMs, requestTimeoutMs } from "./config.js";

export interface LoopOptions {
  concurrency: number;
  durationMs: number;
  /** At most this many operations in all (started); default unbounded by count. */
  maxOps?: number;
  /** One operation of one worker; it throws on failure. */
  op: (worker: number, index: number) => Promise<void>;
}

export interface LoopResult {
  ops: number;
  errors: number;
  /** From the first send until the last answer (or the drain gave up). */
  elapsedMs: number;
  /** One per completed operation, in milliseconds. */
  latencies: number[];
  firstError?: string;
}

/** Runs `concurrency` workers until `durationMs` is up (no new sends after it), then drains. */
export async function closedLoop(options: LoopOptions): Promise<LoopResult> {
  const latencies: number[] = [];
  let started = 0;
  let errors = 0;
  let firstError: string | undefined;
  const maxOps = options.maxOps ?? Number.MAX_SAFE_INTEGER;
  const t0 = performance.now();
  const deadline = t0 + options.durationMs;
  let inFlight = 0;
  const worker = async (w: number) => {
    while (performance.now() < deadline && started < maxOps) {
      const index = started++;
      const sent = performance.now();
      inFlight++;
      try {
        await options.op(w, index);
        latencies.push(performance.now() - sent);
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
        // A failing target must not turn the loop into a busy spin.
        await sleep(20);
      } finally {
        inFlight--;
      }
    }
  };
  const workers = Promise.all(Array.from({ length: options.concurrency }, (_, w) => worker(w)));
  let timer: NodeJS.Timeout | undefined;
  const drained = await Promise.race([
    workers.then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), options.durationMs + drainTimeoutMs);
    }),
  ]);
  clearTimeout(timer);
  const elapsedMs = performance.now() - t0;
  if (!drained) {
    errors += inFlight;
    firstError ??= `${inFlight} operations still running ${drainTimeoutMs} ms after the deadline`;
  }
  return { ops: latencies.length, errors, elapsedMs, latencies, firstError };
}

export interface HttpAnswer {
  status: number;
  body: Buffer;
}

/** Keep-alive HTTP/1.1 to one origin, one socket per concurrent caller. */
export class HttpClient {
  private readonly agent: Agent;
  private readonly host: string;
  private readonly port: number;

  constructor(base: string, maxSockets = 64) {
    const url = new URL(base);
    this.host = url.hostname;
    this.port = Number(url.port);
    // Idle sockets close before the server's 5 s keep-alive timeout would close them under a
    // request: a producer that waited out a long round must not reuse a dead socket.
    this.agent = new Agent({
      keepAlive: true,
      maxSockets,
      maxFreeSockets: maxSockets,
      timeout: 3_000,
    });
  }

  /**
   * One request; a reset on a reused keep-alive socket (the server closed it as the request
   * went out, before reading it) is retried once on a fresh one, as Node's documentation
   * advises.
   */
  async request(
    method: string,
    path: string,
    body?: Buffer | string,
    headers: Record<string, string> = {},
    timeoutMs = requestTimeoutMs,
  ): Promise<HttpAnswer> {
    try {
      return await this.once(method, path, body, headers, timeoutMs);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (!(err as { reusedSocket?: boolean }).reusedSocket) throw err;
      if (code !== "ECONNRESET" && code !== "EPIPE") throw err;
      return this.once(method, path, body, headers, timeoutMs);
    }
  }

  private once(
    method: string,
    path: string,
    body: Buffer | string | undefined,
    headers: Record<string, string>,
    timeoutMs: number,
  ): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      const payload = typeof body === "string" ? Buffer.from(body) : body;
      const req = request(
        {
          host: this.host,
          port: this.port,
          method,
          path,
          agent: this.agent,
          headers: {
            ...(payload === undefined
              ? {}
              : { "content-type": "application/json", "content-length": payload.byteLength }),
            ...headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }),
          );
          res.on("error", reject);
        },
      );
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: timed out`)));
      req.on("error", (err) => {
        // Whether the socket had served an earlier request: only then may it be retried.
        reject(Object.assign(err, { reusedSocket: req.reusedSocket }));
      });
      req.end(payload);
    });
  }

  async json<T>(method: string, path: string, body?: unknown, timeoutMs?: number): Promise<T> {
    const res = await this.request(
      method,
      path,
      body === undefined ? undefined : JSON.stringify(body),
      {},
      timeoutMs,
    );
    if (res.status < 200 || res.status >= 300) {
      throw new Error(`${method} ${path}: ${res.status} ${res.body.toString().slice(0, 300)}`);
    }
    return (res.body.length === 0 ? undefined : JSON.parse(res.body.toString())) as T;
  }

  close(): void {
    this.agent.destroy();
  }
}

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/**
 * One record's payload, exactly `bytes` long: the JSON text `{"p":"…"}` with random letters, so
 * that every system stores the same bytes (Sluice keeps a JSON value as its text).
 */
export function recordPayload(bytes: number): string {
  const fill = Math.max(0, bytes - 8);
  let s = "";
  for (let i = 0; i < fill; i++) s += alphabet[Math.floor(Math.random() * alphabet.length)];
  return `{"p":"${s}"}`;
}

/** A produce request body of `batch` records with that payload, built once per cell. */
export function produceBody(payload: string, batch: number): Buffer {
  const record = `{"value":${payload}}`;
  return Buffer.from(`{"records":[${Array.from({ length: batch }, () => record).join(",")}]}`);
}
