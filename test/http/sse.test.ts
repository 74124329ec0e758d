import { serve, type ServerType } from "@hono/node-server";
import { afterEach, describe, expect, it } from "vitest";
import { logConfigDefaults, serverConfigFromEnv, sseConfigDefaults } from "../../src/config.js";
import { createApp } from "../../src/http/app.js";
import type { SseOptions } from "../../src/http/sse.js";
import { SluiceLog } from "../../src/log/log.js";
import { MemoryMetaStore } from "../../src/meta/memory.js";
import type { PartitionHead } from "../../src/meta/meta-store.js";
import { MemoryObjectStore } from "../../src/storage/memory.js";
import { DelegatingMetaStore } from "../support/delegating-meta.js";

/**
 * Live tails over Server-Sent Events on GET /v1/topics/{topic}/partitions/{p}/records: through
 * app.request() where a response can be read whole, and over a real loopback server where the
 * stream's life (disconnects, reconnects) is the point.
 */

/** A metadata table whose log start can be moved from the outside, as retention would. */
class MovableStartMeta extends DelegatingMetaStore {
  logStart: number | undefined;
  override async getHead(topicId: string, partition: number): Promise<PartitionHead> {
    const head = await this.inner.getHead(topicId, partition);
    if (this.logStart === undefined) return head;
    return {
      logStartOffset: this.logStart,
      logEndOffset: Math.max(head.logEndOffset, this.logStart),
    };
  }
}

interface Fixture {
  log: SluiceLog;
  meta: MovableStartMeta;
  request: (path: string, init?: RequestInit) => Promise<Response>;
  produce: (topic: string, values: unknown[]) => Promise<void>;
  fetchJson: (topic: string, offset: number) => Promise<any>;
  /** Starts a loopback server for the app; closed after the test. */
  listen: () => Promise<string>;
  fetchRequests: (topic: string) => number;
}

const fixtures: { log: SluiceLog; server?: ServerType }[] = [];

afterEach(async () => {
  for (const f of fixtures.splice(0)) {
    if (f.server) {
      const server = f.server;
      if ("closeAllConnections" in server) server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await f.log.close();
  }
});

async function fixture(sse: Partial<SseOptions> = {}): Promise<Fixture> {
  const meta = new MovableStartMeta(new MemoryMetaStore());
  const log = new SluiceLog({
    store: new MemoryObjectStore(),
    meta,
    config: { ...logConfigDefaults, lingerMs: 1, pollIntervalMs: 20 },
  });
  const app = createApp({ log, maxRequestBytes: 1024 * 1024, sse });
  const entry: { log: SluiceLog; server?: ServerType } = { log };
  fixtures.push(entry);
  const request = async (path: string, init?: RequestInit) => app.request(path, init);
  const created = await request("/v1/topics", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "tail", partitions: 1 }),
  });
  expect(created.status).toBe(201);
  return {
    log,
    meta,
    request,
    async produce(topic, values) {
      const res = await request(`/v1/topics/${topic}/records`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ records: values.map((value) => ({ value, partition: 0 })) }),
      });
      expect(res.status).toBe(200);
    },
    async fetchJson(topic, offset) {
      const res = await request(`/v1/topics/${topic}/partitions/0/records?offset=${offset}`);
      expect(res.status).toBe(200);
      return res.json();
    },
    listen: () =>
      new Promise<string>((resolve) => {
        entry.server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info) =>
          resolve(`http://127.0.0.1:${info.port}`),
        );
      }),
    fetchRequests: (topic) => log.metrics.snapshot()[topic]?.fetchRequests ?? 0,
  };
}

interface SseEvent {
  id?: string;
  event?: string;
  data?: string;
  retry?: string;
  comment?: string;
}

/** Parses complete SSE blocks (as EventSource would, minus dispatch); returns the rest. */
function parseBlocks(text: string): { events: SseEvent[]; rest: string } {
  const events: SseEvent[] = [];
  const blocks = text.split("\n\n");
  const rest = blocks.pop()!;
  for (const block of blocks) {
    const event: SseEvent = {};
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) {
        event.comment = line.slice(1).trim();
        continue;
      }
      const colon = line.indexOf(":");
      const field = line.slice(0, colon) as keyof SseEvent;
      const value = line.slice(colon + 1).replace(/^ /, "");
      event[field] =
        field === "data" && event.data !== undefined ? `${event.data}\n${value}` : value;
    }
    events.push(event);
  }
  return { events, rest };
}

/** Reads an event stream incrementally. */
class SseReader {
  private buffer = "";
  private readonly decoder = new TextDecoder();
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly seen: SseEvent[] = [];
  ended = false;

  constructor(readonly response: Response) {
    this.reader = response.body!.getReader();
  }

  /** Reads until `until` holds for the events seen so far, or the stream ends. */
  async readUntil(until: (events: SseEvent[]) => boolean, timeoutMs = 10_000): Promise<SseEvent[]> {
    const deadline = Date.now() + timeoutMs;
    while (!until(this.seen) && !this.ended) {
      if (Date.now() > deadline) throw new Error(`timed out; saw ${JSON.stringify(this.seen)}`);
      const { done, value } = await this.reader.read();
      if (done) {
        this.ended = true;
        break;
      }
      this.buffer += this.decoder.decode(value, { stream: true });
      const { events, rest } = parseBlocks(this.buffer);
      this.buffer = rest;
      this.seen.push(...events);
    }
    return this.seen;
  }

  records(): SseEvent[] {
    return this.seen.filter((e) => e.event === "record");
  }

  async cancel(): Promise<void> {
    await this.reader.cancel().catch(() => undefined);
  }
}

const SSE = { accept: "text/event-stream" };
const recordsPath = (query = "") => `/v1/topics/tail/partitions/0/records${query}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("event stream: requests refused before the stream starts are JSON", () => {
  it.each([
    ["a non-numeric offset", "?offset=abc", {}, 400, "invalid_offset"],
    ["a negative offset", "?offset=-1", {}, 400, "invalid_offset"],
    ["no offset and no Last-Event-ID", "", {}, 400, "invalid_offset"],
    ["a malformed Last-Event-ID", "?offset=0", { "last-event-id": "7x" }, 400, "invalid_offset"],
    ["an offset past the log end", "?offset=5", {}, 416, "offset_out_of_range"],
    [
      "a Last-Event-ID past the log end",
      "?offset=0",
      { "last-event-id": "9" },
      416,
      "offset_out_of_range",
    ],
    ["zero maxRecords", "?offset=0&maxRecords=0", {}, 400, "invalid_request"],
  ])("%s", async (_what, query, headers, status, code) => {
    const f = await fixture();
    const res = await f.request(recordsPath(query), { headers: { ...SSE, ...headers } });
    expect(res.status).toBe(status);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect((await res.json()).error.code).toBe(code);
  });

  it("an unknown topic or partition", async () => {
    const f = await fixture();
    const topic = await f.request("/v1/topics/nope/partitions/0/records?offset=0", {
      headers: SSE,
    });
    expect(topic.status).toBe(404);
    expect((await topic.json()).error.code).toBe("topic_not_found");
    const partition = await f.request("/v1/topics/tail/partitions/3/records?offset=0", {
      headers: SSE,
    });
    expect(partition.status).toBe(400);
    expect((await partition.json()).error.code).toBe("invalid_partition");
  });

  it("a JSON fetch still needs its offset, and ignores Last-Event-ID", async () => {
    const f = await fixture();
    const res = await f.request(recordsPath(), { headers: { "last-event-id": "0" } });
    expect(res.status).toBe(400);
    expect((await res.json()).error.code).toBe("invalid_offset");
  });
});

describe("event stream over a loopback server", () => {
  it("delivers records produced after it opened; ids are next offsets; data is the fetch record", async () => {
    const f = await fixture();
    const url = await f.listen();
    const res = await fetch(`${url}${recordsPath("?offset=0")}`, { headers: SSE });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(res.headers.get("cache-control")).toBe("no-cache");
    const sse = new SseReader(res);
    // The reconnect delay comes first, before any record exists.
    const [first] = await sse.readUntil((e) => e.length >= 1);
    expect(first).toEqual({ retry: String(sseConfigDefaults.retryMs) });

    await f.produce("tail", [{ n: 0 }, "one", null]);
    await f.produce("tail", [[3, "three"]]);
    const records = (await sse.readUntil((e) => e.filter((x) => x.event === "record").length >= 4))
      .filter((e) => e.event === "record")
      .slice(0, 4);
    expect(records.map((e) => e.id)).toEqual(["1", "2", "3", "4"]);
    const fetched = await f.fetchJson("tail", 0);
    expect(records.map((e) => JSON.parse(e.data!))).toEqual(fetched.records);
    expect(fetched.records.map((r: any) => r.value)).toEqual([{ n: 0 }, "one", null, [3, "three"]]);
    await sse.cancel();
  });

  it("reconnecting with Last-Event-ID resumes with no duplicate and no gap (it wins over offset)", async () => {
    const f = await fixture();
    const url = await f.listen();
    await f.produce("tail", [0, 1, 2]);
    const controller = new AbortController();
    const firstRes = await fetch(`${url}${recordsPath("?offset=0")}`, {
      headers: SSE,
      signal: controller.signal,
    });
    const first = new SseReader(firstRes);
    await first.readUntil((e) => e.filter((x) => x.event === "record").length >= 3);
    const lastId = first.records().at(-1)!.id!;
    expect(lastId).toBe("3");
    controller.abort();
    await first.cancel();

    // Records arrive while the client is away, and more after it is back.
    await f.produce("tail", [3, 4]);
    // The URL still says offset=0, as EventSource's would: Last-Event-ID decides.
    const secondRes = await fetch(`${url}${recordsPath("?offset=0")}`, {
      headers: { ...SSE, "last-event-id": lastId },
    });
    const second = new SseReader(secondRes);
    await second.readUntil((e) => e.filter((x) => x.event === "record").length >= 2);
    await f.produce("tail", [5]);
    await second.readUntil((e) => e.filter((x) => x.event === "record").length >= 3);
    await second.cancel();

    const all = [...first.records(), ...second.records()].map((e) => JSON.parse(e.data!));
    expect(all.map((r) => r.offset)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(all.map((r) => r.value)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(second.records().map((e) => e.id)).toEqual(["4", "5", "6"]);
  });

  it("sends keepalive comments while idle, and stops reading the log when the client goes", async () => {
    const f = await fixture({ heartbeatMs: 60 });
    const url = await f.listen();
    const controller = new AbortController();
    const res = await fetch(`${url}${recordsPath("?offset=0")}`, {
      headers: SSE,
      signal: controller.signal,
    });
    const sse = new SseReader(res);
    await sse.readUntil((e) => e.filter((x) => x.comment === "keepalive").length >= 2);
    // Idle, the server loop re-reads the log about once per heartbeat.
    const whileOpen = f.fetchRequests("tail");
    await sleep(200);
    expect(f.fetchRequests("tail")).toBeGreaterThan(whileOpen);

    controller.abort();
    await sse.cancel();
    await sleep(150);
    const afterClose = f.fetchRequests("tail");
    await sleep(400);
    expect(f.fetchRequests("tail")).toBe(afterClose);
  });

  it("sends an error event and ends when retention passes the reader; a reconnect gets JSON 416", async () => {
    const f = await fixture();
    const url = await f.listen();
    await f.produce("tail", ["a", "b"]);
    const res = await fetch(`${url}${recordsPath("?offset=0")}`, { headers: SSE });
    const sse = new SseReader(res);
    await sse.readUntil((e) => e.filter((x) => x.event === "record").length >= 2);

    // Retention deletes everything below offset 10 while the stream waits at offset 2.
    f.meta.logStart = 10;
    const events = await sse.readUntil((e) => e.some((x) => x.event === "error"));
    const error = events.find((e) => e.event === "error")!;
    expect(JSON.parse(error.data!)).toEqual({
      error: {
        code: "offset_out_of_range",
        message: expect.any(String),
        details: { logStartOffset: 10, logEndOffset: 10 },
      },
    });
    // Nothing follows: the stream ends.
    await sse.readUntil(() => false);
    expect(sse.ended).toBe(true);
    expect(sse.seen.at(-1)).toBe(error);

    const again = await fetch(`${url}${recordsPath("?offset=0")}`, {
      headers: { ...SSE, "last-event-id": "2" },
    });
    expect(again.status).toBe(416);
    expect((await again.json()).error.details).toEqual({ logStartOffset: 10, logEndOffset: 10 });
  });
});

describe("event stream limits", () => {
  it("a stream ends after maxStreamMs, with keepalives meanwhile", async () => {
    const f = await fixture({ heartbeatMs: 40, maxStreamMs: 250 });
    const started = Date.now();
    const res = await f.request(recordsPath("?offset=0"), { headers: SSE });
    const sse = new SseReader(res);
    await sse.readUntil(() => false);
    expect(sse.ended).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(240);
    expect(sse.seen[0]).toEqual({ retry: "1000" });
    expect(sse.seen.filter((e) => e.comment === "keepalive").length).toBeGreaterThanOrEqual(2);
  });

  it("maxRecords bounds each batch, not the stream", async () => {
    const f = await fixture({ maxStreamMs: 300 });
    await f.produce("tail", [0, 1, 2, 3, 4]);
    const res = await f.request(recordsPath("?offset=1&maxRecords=2"), { headers: SSE });
    const sse = new SseReader(res);
    await sse.readUntil((e) => e.filter((x) => x.event === "record").length >= 4);
    expect(sse.records().map((e) => e.id)).toEqual(["2", "3", "4", "5"]);
    await sse.cancel();
  });
});

describe("bounded event streams (buffered runtimes such as Lambda)", () => {
  it("answers the records there are and ends", async () => {
    const f = await fixture({ bounded: true, retryMs: 250 });
    await f.produce("tail", ["x", "y"]);
    const res = await f.request(recordsPath("?offset=0"), { headers: SSE });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const text = await res.text();
    const fetched = await f.fetchJson("tail", 0);
    expect(text).toBe(
      "retry: 250\n\n" +
        fetched.records
          .map((r: any) => `id: ${r.offset + 1}\nevent: record\ndata: ${JSON.stringify(r)}\n\n`)
          .join(""),
    );
  });

  it("waits up to waitMs for the first records, then ends; Last-Event-ID resumes", async () => {
    const f = await fixture({ bounded: true });
    await f.produce("tail", ["x"]);
    const started = Date.now();
    const empty = await f.request(recordsPath("?offset=0&waitMs=150"), {
      headers: { ...SSE, "last-event-id": "1" },
    });
    expect(await empty.text()).toBe("retry: 1000\n\n");
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);

    const pending = f.request(recordsPath("?offset=0&waitMs=5000"), {
      headers: { ...SSE, "last-event-id": "1" },
    });
    await sleep(50);
    await f.produce("tail", ["y"]);
    const { events } = parseBlocks(await (await pending).text());
    expect(
      events.filter((e) => e.event === "record").map((e) => [e.id, JSON.parse(e.data!).value]),
    ).toEqual([["2", "y"]]);
  });

  it("reports retention passing the reader during the wait as an error event", async () => {
    const f = await fixture({ bounded: true });
    const pending = f.request(recordsPath("?offset=0&waitMs=5000"), { headers: SSE });
    await sleep(50);
    f.meta.logStart = 4;
    const { events } = parseBlocks(await (await pending).text());
    expect(events.map((e) => e.event ?? "retry")).toEqual(["retry", "error"]);
    expect(JSON.parse(events[1]!.data!).error.code).toBe("offset_out_of_range");
  });
});

describe("event stream settings", () => {
  it("come from the environment with documented defaults", () => {
    expect(serverConfigFromEnv({}).sse).toEqual({
      heartbeatMs: 15_000,
      retryMs: 1_000,
      maxStreamMs: 0,
    });
    expect(
      serverConfigFromEnv({
        SLUICE_SSE_HEARTBEAT_MS: "5000",
        SLUICE_SSE_RETRY_MS: "3000",
        SLUICE_SSE_MAX_STREAM_MS: "600000",
      }).sse,
    ).toEqual({ heartbeatMs: 5_000, retryMs: 3_000, maxStreamMs: 600_000 });
    expect(() => serverConfigFromEnv({ SLUICE_SSE_RETRY_MS: "soon" })).toThrow(
      /SLUICE_SSE_RETRY_MS/,
    );
  });
});
