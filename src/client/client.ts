import { HttpAdmin, type Admin } from "./admin.js";
import { GroupConsumer, type Consumer, type ConsumerOptions } from "./consumer.js";
import { SluiceApiError, isSluiceApiError } from "./errors.js";
import { Transport, seg, sleep, type RetryOptions } from "./http.js";
import { BatchingProducer, type Producer, type ProducerOptions } from "./producer.js";
import { toConsumedRecord } from "./records.js";
import type { ConsumedRecord, FetchResult, ListOffsetsAnswer, WireFetchAnswer } from "./types.js";

export interface ClientOptions {
  /** The server's base URL, e.g. `http://127.0.0.1:8080`. */
  url: string;
  /** A fetch of your own (tests, SigV4 signing, a Worker's service binding); globalThis.fetch by default. */
  fetch?: typeof fetch;
  /** Sent with every request. */
  headers?: Record<string, string>;
  /**
   * The credential: an API key (`slk_…`) or a JWT, sent as `Authorization: Bearer …` on every
   * request (it replaces an `authorization` in `headers`). It never appears in an error the
   * client makes.
   */
  token?: string;
  retry?: RetryOptions;
}

export interface FetchOptions {
  maxRecords?: number;
  maxBytes?: number;
  /** Long-poll: how long to wait for records at the log end (0). */
  waitMs?: number;
  signal?: AbortSignal;
}

export interface TailOptions {
  from: number | "earliest" | "latest";
  signal?: AbortSignal;
  /** Each fetch's long-poll (5000). */
  waitMs?: number;
}

/**
 * Sluice's client: admin calls, a batching (by default idempotent) producer, group consumers, and
 * plain partition reads. Web-standard APIs only, so it runs in Node ≥ 20, browsers, Cloudflare
 * Workers and Deno.
 */
export class SluiceClient {
  readonly admin: Admin;
  private readonly http: Transport;

  constructor(options: ClientOptions) {
    this.http = new Transport(options);
    this.admin = new HttpAdmin(this.http);
  }

  producer(options?: ProducerOptions): Producer {
    return new BatchingProducer(this.http, this.admin, options);
  }

  consumer(options: ConsumerOptions): Consumer {
    return new GroupConsumer(this.http, options);
  }

  /** One fetch of a partition (JSON). */
  async fetch(
    topic: string,
    partition: number,
    offset: number,
    options: FetchOptions = {},
  ): Promise<FetchResult> {
    const { body } = await this.http.request<WireFetchAnswer>({
      method: "GET",
      path: `/v1/topics/${seg(topic)}/partitions/${seg(partition)}/records`,
      query: {
        offset,
        maxRecords: options.maxRecords,
        maxBytes: options.maxBytes,
        waitMs: options.waitMs,
      },
      ...(options.signal ? { signal: options.signal } : {}),
    });
    return {
      records: body.records.map(toConsumedRecord),
      nextOffset: body.nextOffset,
      logEndOffset: body.logEndOffset,
    };
  }

  /**
   * Follows a partition from an offset forever (a long-poll fetch loop), yielding each record;
   * ends when the signal aborts. A position that retention removed moves to the log start;
   * failures worth retrying are retried for as long as it runs.
   */
  async *tail(
    topic: string,
    partition: number,
    options: TailOptions,
  ): AsyncGenerator<ConsumedRecord, void, undefined> {
    const { signal } = options;
    const waitMs = options.waitMs ?? 5000;
    let offset: number | undefined = typeof options.from === "number" ? options.from : undefined;
    while (!signal?.aborted) {
      try {
        if (offset === undefined) {
          const { body } = await this.http.request<ListOffsetsAnswer>({
            method: "GET",
            path: `/v1/topics/${seg(topic)}/partitions/${seg(partition)}/offsets`,
            query: { timestamp: options.from as string },
            ...(signal ? { signal } : {}),
          });
          offset = options.from === "earliest" ? body.logStartOffset : body.logEndOffset;
        }
        const result = await this.fetch(topic, partition, offset, {
          waitMs,
          ...(signal ? { signal } : {}),
        });
        for (const record of result.records) {
          if (signal?.aborted) return;
          yield record;
        }
        offset = result.nextOffset;
      } catch (err) {
        if (signal?.aborted) return;
        const start = logStartOf(err);
        if (start !== undefined && offset !== undefined && offset < start) {
          offset = start;
        } else if (err instanceof SluiceApiError && err.retryable) {
          await sleep(this.http.maxBackoffMs, signal).catch(() => undefined);
        } else {
          throw err;
        }
      }
    }
  }
}

/** 416's `details.logStartOffset`: where a reader behind retention goes on. */
function logStartOf(err: unknown): number | undefined {
  if (!isSluiceApiError(err, "offset_out_of_range")) return undefined;
  const start = (err.details as { logStartOffset?: unknown } | undefined)?.logStartOffset;
  return typeof start === "number" ? start : undefined;
}
