import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  callJson,
  killAllServers,
  makeDataDir,
  readPartitionFully,
  startServer,
  type ServerProcess,
} from "../support/server-process.js";
import {
  comparable,
  expectedReadBack,
  makeRecord,
  range,
  sleep,
  type SentRecord,
} from "./workload.js";

/**
 * Two server processes on one data directory: the SQLite meta store's BEGIN IMMEDIATE
 * conditional commit is the only thing that keeps their offsets apart.
 */
describe("two server processes sharing one data directory", () => {
  let data: Awaited<ReturnType<typeof makeDataDir>>;
  let a: ServerProcess;
  let b: ServerProcess;
  const env = { SLUICE_LINGER_MS: "2", SLUICE_POLL_INTERVAL_MS: "25" };

  beforeAll(async () => {
    data = await makeDataDir("sluice-two-");
    // One after the other: the first start creates the SQLite file and runs the migrations.
    a = await startServer({ dataDir: data.dir, env });
    b = await startServer({ dataDir: data.dir, env });
  }, 60_000);

  afterAll(async () => {
    await killAllServers();
    await data?.cleanup();
  });

  it("hands 64 producers spread over both processes unique, contiguous offsets and identical logs", async () => {
    const created = await callJson(a.url, "POST", "/v1/topics", { name: "shared", partitions: 1 });
    expect(created.status).toBe(201);

    const servers = [a, b];
    const producers = 64;
    const requestsEach = 6;
    const recordsPerRequest = 4;
    const total = producers * requestsEach * recordsPerRequest;
    const sent = new Map<string, SentRecord>();
    const ackedAt = new Map<number, { id: string; server: number }>();
    const statuses: number[] = [];
    const badRequests: string[] = [];

    await Promise.all(
      range(producers).map(async (p) => {
        const server = p % 2;
        for (let r = 0; r < requestsEach; r++) {
          const records = range(recordsPerRequest).map((i) =>
            makeRecord(`p${p}-r${r}-i${i}`, (p * requestsEach + r) * recordsPerRequest + i),
          );
          for (const record of records) sent.set(record.id, record);
          const res = await callJson(servers[server]!.url, "POST", "/v1/topics/shared/records", {
            records: records.map((rec) => rec.body),
          });
          statuses.push(res.status);
          if (res.status !== 200) {
            badRequests.push(`p${p} r${r} on ${server}: ${res.status} ${JSON.stringify(res.body)}`);
            continue;
          }
          const offsets: { partition: number; offset: number }[] = res.body.offsets;
          expect(offsets.map((o) => o.partition)).toEqual(records.map(() => 0));
          // One request is one batch: its records get consecutive offsets.
          expect(offsets.map((o) => o.offset)).toEqual(
            records.map((_, i) => offsets[0]!.offset + i),
          );
          offsets.forEach(({ offset }, i) => {
            const earlier = ackedAt.get(offset);
            if (earlier)
              throw new Error(
                `offset ${offset} acknowledged twice: ${earlier.id} and ${records[i]!.id}`,
              );
            ackedAt.set(offset, { id: records[i]!.id, server });
          });
        }
      }),
    );

    expect(badRequests).toEqual([]);
    expect(statuses).toEqual(statuses.map(() => 200));
    expect([...ackedAt.keys()].sort((x, y) => x - y)).toEqual(range(total));
    expect(new Set([...ackedAt.values()].map((v) => v.id))).toEqual(new Set(sent.keys()));

    // Both processes really interleaved in the one log (not all of A's, then all of B's).
    let switches = 0;
    for (let offset = 1; offset < total; offset++) {
      if (ackedAt.get(offset)!.server !== ackedAt.get(offset - 1)!.server) switches++;
    }
    expect(switches).toBeGreaterThan(4);

    const expected = range(total).map((offset) => ({
      offset,
      ...expectedReadBack(sent.get(ackedAt.get(offset)!.id)!),
    }));
    const logs = await Promise.all(servers.map((s) => readPartitionFully(s.url, "shared", 0, 300)));
    for (const log of logs) {
      expect(log.logEndOffset).toBe(total);
      expect(log.records.map((r) => ({ offset: r.offset, ...comparable(r) }))).toEqual(expected);
    }
    // Byte-for-byte the same answers from both processes, timestamps included.
    expect(JSON.stringify(logs[1]!.records)).toBe(JSON.stringify(logs[0]!.records));

    for (const server of servers) {
      const described = await callJson(server.url, "GET", "/v1/topics/shared?segments=false");
      expect(described.body.partitions).toEqual([
        { partition: 0, logStartOffset: 0, logEndOffset: total },
      ]);
    }

    // The processes did contend: each had to re-read the head after the other committed, and
    // neither failed a flush.
    const counters = await Promise.all(
      servers.map(async (s) => (await callJson(s.url, "GET", "/v1/metrics")).body.topics.shared),
    );
    expect(counters.map((c) => c.flushFailures)).toEqual([0, 0]);
    expect(counters.reduce((n, c) => n + c.recordsIn, 0)).toBe(total);
    expect(counters.reduce((n, c) => n + c.commitConflicts, 0)).toBeGreaterThan(0);
  }, 60_000);

  it("wakes a long-poll on one process for a record produced through the other", async () => {
    const created = await callJson(a.url, "POST", "/v1/topics", { name: "wake", partitions: 1 });
    expect(created.status).toBe(201);
    const first = await callJson(a.url, "POST", "/v1/topics/wake/records", {
      records: [{ value: "before" }],
    });
    expect(first.body.offsets).toEqual([{ partition: 0, offset: 0 }]);

    for (const [waiter, writer, value] of [
      [b, a, "from A"],
      [a, b, "from B"],
    ] as const) {
      const head = await callJson(waiter.url, "GET", "/v1/topics/wake");
      const end: number = head.body.partitions[0].logEndOffset;
      const started = Date.now();
      const poll = callJson(
        waiter.url,
        "GET",
        `/v1/topics/wake/partitions/0/records?offset=${end}&waitMs=20000`,
        undefined,
        25_000,
      ).then((res) => ({ res, elapsed: Date.now() - started }));
      // Let the long-poll start waiting before the other process writes.
      await sleep(300);
      const produced = await callJson(writer.url, "POST", "/v1/topics/wake/records", {
        records: [{ value }],
      });
      expect(produced.body.offsets).toEqual([{ partition: 0, offset: end }]);
      const producedAt = Date.now() - started;
      const { res, elapsed } = await poll;
      expect(res.status).toBe(200);
      expect(res.body.records.map((r: any) => [r.offset, r.value])).toEqual([[end, value]]);
      expect(res.body.nextOffset).toBe(end + 1);
      expect(elapsed).toBeGreaterThanOrEqual(producedAt - 50);
      // Seen by re-reading the head every 25 ms: far sooner than the 20 s wait.
      expect(elapsed - producedAt).toBeLessThan(5_000);
    }
  }, 60_000);
});
