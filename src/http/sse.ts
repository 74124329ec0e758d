import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import { sseConfigDefaults, type SseConfig } from "../config.js";
import { SluiceError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { SluiceLog } from "../log/log.js";
import type { ReadRecord, ReadResult } from "../log/reader.js";
import { errorBody } from "./errors.js";
import { recordJson } from "./records.js";

/**
 * Live tails of a partition as Server-Sent Events, for browsers' EventSource and `curl -N`.
 *
 *     retry: 1000                      first, once: EventSource's reconnect delay
 *
 *     id: 43                           the next offset to read after this record
 *     event: record
 *     data: {"offset":42,…}            the record exactly as a JSON fetch returns it
 *
 *     : keepalive                      a comment after heartbeatMs without an event
 *
 *     event: error                     e.g. 416 once retention passed the reader, then the end
 *     data: {"error":{"code":"offset_out_of_range",…}}
 *
 * An event's id is the offset to resume from, so EventSource's automatic reconnect (which
 * resends the last id as `Last-Event-ID`) continues with no duplicate and no gap.
 */
export interface SseOptions extends SseConfig {
  /**
   * For runtimes that buffer the whole response (Lambda through hono/aws-lambda): answer with
   * the first records that arrive, or with none after the fetch wait, and end the response, so
   * that EventSource reconnects after `retryMs` with Last-Event-ID: a long-poll in SSE framing.
   */
  bounded: boolean;
}

export const sseOptionsDefaults: SseOptions = { ...sseConfigDefaults, bounded: false };

export interface TailRequest {
  topic: string;
  partition: number;
  offset: number;
  maxRecords: number;
  maxBytes: number;
  /** Bounded streams only: how long to wait for a first record (capped by the log's maxWaitMs). */
  waitMs: number | undefined;
}

const KEEPALIVE = ": keepalive\n\n";

/** Whether the request asks for an event stream rather than one JSON batch. */
export function wantsEventStream(accept: string | undefined): boolean {
  return accept !== undefined && /(^|[\s,])text\/event-stream(\s*[;,]|\s*$)/i.test(accept);
}

/**
 * Where a tail starts: `Last-Event-ID` (the next offset to read, which EventSource resends on
 * every reconnect) wins over `?offset`, which stays in the URL it reconnects to.
 */
export function tailStart(lastEventId: string | undefined, offset: number | undefined): number {
  const id = lastEventId?.trim();
  if (id !== undefined && id !== "") {
    const parsed = /^\d{1,16}$/.test(id) ? Number(id) : NaN;
    if (!Number.isSafeInteger(parsed)) {
      throw new SluiceError("invalid_offset", "Last-Event-ID: must be a non-negative integer", {
        details: { lastEventId: id.slice(0, 64) },
      });
    }
    return parsed;
  }
  if (offset === undefined) {
    throw new SluiceError(
      "invalid_offset",
      "offset: required (an event stream may resume with Last-Event-ID instead)",
    );
  }
  return offset;
}

/** One `record` event; its id is the offset that follows the record. */
export function recordEvent(record: ReadRecord): string {
  return `id: ${record.offset + 1}\nevent: record\n${dataLines(recordJson(record))}\n\n`;
}

export function errorEvent(err: SluiceError): string {
  return `event: error\n${dataLines(JSON.stringify(errorBody(err)))}\n\n`;
}

export function retryField(ms: number): string {
  return `retry: ${ms}\n\n`;
}

/** JSON text has no raw line breaks; should one ever appear, SSE needs one data line each. */
function dataLines(text: string): string {
  return /[\r\n]/.test(text)
    ? text
        .split(/\r\n|\r|\n/)
        .map((line) => `data: ${line}`)
        .join("\n")
    : `data: ${text}`;
}

/**
 * Answers a tail. The first read happens before any byte is sent, so an unknown topic or
 * partition or an offset out of range is an ordinary JSON error with its status (EventSource
 * then gives up instead of reconnecting); errors after that are `error` events.
 */
export async function tailResponse(
  c: Context,
  log: SluiceLog,
  request: TailRequest,
  options: SseOptions,
  logger: Logger,
  /** Called once when the stream ends, however it ends. */
  onEnd: () => void = () => {},
): Promise<Response> {
  let streaming = false;
  try {
    const response = await answerTail(c, log, request, options, logger, onEnd);
    streaming = !options.bounded;
    return response;
  } finally {
    if (!streaming) onEnd();
  }
}

async function answerTail(
  c: Context,
  log: SluiceLog,
  request: TailRequest,
  options: SseOptions,
  logger: Logger,
  onEnd: () => void,
): Promise<Response> {
  const { topic, partition, maxRecords, maxBytes } = request;
  const read = (offset: number, waitMs: number, signal: AbortSignal) =>
    log.fetch(topic, partition, offset, { maxRecords, maxBytes, waitMs, signal });
  const first = await read(request.offset, 0, c.req.raw.signal);
  const toEvent = (err: unknown) => errorEvent(asSluiceError(err, logger, request));

  if (options.bounded) {
    let body = retryField(options.retryMs);
    let result = first;
    try {
      if (result.records.length === 0) {
        const waitMs = Math.min(request.waitMs ?? log.maxWaitMs, boundOf(options.maxStreamMs));
        result = await read(result.nextOffset, waitMs, c.req.raw.signal);
      }
      body += eventsOf(result);
    } catch (err) {
      body += toEvent(err);
    }
    return c.body(body, 200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
    });
  }

  // nginx and some other proxies buffer responses unless told not to.
  c.header("X-Accel-Buffering", "no");
  return streamSSE(c, async (stream) => {
    // The loop stops when the client goes: node-server aborts the request's signal, and the
    // response stream is cancelled (stream.onAbort); either one ends the waiting fetch.
    const stop = new AbortController();
    const abort = () => stop.abort();
    const requestSignal = c.req.raw.signal;
    requestSignal.addEventListener("abort", abort, { once: true });
    if (requestSignal.aborted) abort();
    stream.onAbort(abort);
    const deadline = options.maxStreamMs > 0 ? Date.now() + options.maxStreamMs : Infinity;
    try {
      await stream.write(retryField(options.retryMs));
      let lastWrite = Date.now();
      let result = first;
      while (!stop.signal.aborted) {
        if (result.records.length > 0) {
          await stream.write(eventsOf(result));
          lastWrite = Date.now();
        } else if (Date.now() - lastWrite >= options.heartbeatMs) {
          await stream.write(KEEPALIVE);
          lastWrite = Date.now();
        }
        const now = Date.now();
        if (now >= deadline || stop.signal.aborted) break;
        // Wait until the next heartbeat is due; the log caps each wait at its maxWaitMs.
        const waitMs = Math.min(lastWrite + options.heartbeatMs - now, deadline - now);
        try {
          result = await read(result.nextOffset, Math.max(0, waitMs), stop.signal);
        } catch (err) {
          if (!stop.signal.aborted) await stream.write(toEvent(err));
          break;
        }
      }
    } finally {
      requestSignal.removeEventListener("abort", abort);
      onEnd();
    }
  });
}

function eventsOf(result: ReadResult): string {
  let text = "";
  for (const record of result.records) text += recordEvent(record);
  return text;
}

function boundOf(ms: number): number {
  return ms > 0 ? ms : Infinity;
}

function asSluiceError(err: unknown, logger: Logger, request: TailRequest): SluiceError {
  if (err instanceof SluiceError) {
    if (err.status >= 500) logger.error({ err, ...request }, "event stream failed");
    return err;
  }
  logger.error({ err, ...request }, "event stream failed");
  return new SluiceError("internal", "internal error", { cause: err });
}
