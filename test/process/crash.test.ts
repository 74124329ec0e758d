import { afterEach, describe, expect, it } from "vitest";
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

const TOPIC = "crashy";
const PARTITIONS = 2;
const env = { SLUICE_LINGER_MS: "2" };

interface Ack {
  partition: number;
  offset: number;
}

/** Everything the producers learned, accumulated over every round of a test. */
interface Ledger {
  sent: Map<string, SentRecord>;
  /** Records whose request got a 200: where they must be, forever. */
  acked: Map<string, Ack>;
  /** Records whose request got no answer (the server died): each may appear at most once. */
  unknown: Set<string>;
  /** Answers that were neither a 200 nor a lost connection: each is a failure. */
  unexpected: string[];
}

const newLedger = (): Ledger => ({
  sent: new Map(),
  acked: new Map(),
  unknown: new Set(),
  unexpected: [],
});

/**
 * Runs `loops` producers against `server`, each sending small requests with unique ids until
 * one fails: a request without an answer is recorded as unknown (and as unexpected unless
 * `dying()`), and ends its loop. Bounded at 400 requests per loop and 15 s.
 */
async function runLoad(
  server: ServerProcess,
  ledger: Ledger,
  round: number,
  loops: number,
  dying: () => boolean,
): Promise<void> {
  const deadline = Date.now() + 15_000;
  await Promise.all(
    range(loops).map(async (p) => {
      for (let n = 0; n < 400 && Date.now() < deadline; n++) {
        const count = 1 + ((p + n) % 3);
        const records = range(count).map((i) =>
          makeRecord(`r${round}-p${p}-n${n}-i${i}`, p * 1000 + n * 3 + i),
        );
        for (const record of records) ledger.sent.set(record.id, record);
        let res;
        try {
          res = await callJson(server.url, "POST", `/v1/topics/${TOPIC}/records`, {
            records: records.map((r) => r.body),
          });
        } catch (err) {
          for (const record of records) ledger.unknown.add(record.id);
          if (!dying()) ledger.unexpected.push(`p${p} n${n}: ${String(err)} before any kill`);
          return;
        }
        if (res.status !== 200) {
          for (const record of records) ledger.unknown.add(record.id);
          ledger.unexpected.push(`p${p} n${n}: ${res.status} ${JSON.stringify(res.body)}`);
          return;
        }
        const offsets: Ack[] = res.body.offsets;
        // Keyless records of one request go to one partition as one batch.
        const [first] = offsets;
        if (
          offsets.length !== records.length ||
          offsets.some((o, i) => o.partition !== first!.partition || o.offset !== first!.offset + i)
        ) {
          ledger.unexpected.push(
            `p${p} n${n}: offsets not one consecutive run: ${JSON.stringify(offsets)}`,
          );
        }
        records.forEach((record, i) => ledger.acked.set(record.id, offsets[i]!));
      }
    }),
  );
}

/**
 * Reads every partition back through `server` and checks the ledger against it: each
 * acknowledged record exactly at its offset and nowhere else, each unknown one at most once,
 * nothing that was never sent, and offsets contiguous from 0 to the log-end offset.
 */
async function verify(
  server: ServerProcess,
  ledger: Ledger,
): Promise<{ logEnds: number[]; found: Map<string, Ack[]> }> {
  const found = new Map<string, Ack[]>();
  const logEnds: number[] = [];
  const problems: string[] = [];
  for (const partition of range(PARTITIONS)) {
    const { records, logEndOffset } = await readPartitionFully(server.url, TOPIC, partition, 400);
    logEnds.push(logEndOffset);
    // Contiguous from 0: every offset readable, in order, no gaps.
    expect(records.map((r) => r.offset)).toEqual(range(logEndOffset));
    for (const read of records) {
      const id: string | undefined = read.headers?.id;
      const sent = id === undefined ? undefined : ledger.sent.get(id);
      if (!sent) {
        problems.push(
          `${partition}@${read.offset}: a record that was never sent: ${JSON.stringify(read)}`,
        );
        continue;
      }
      found.set(id!, [...(found.get(id!) ?? []), { partition, offset: read.offset }]);
      try {
        expect(comparable(read)).toEqual(expectedReadBack(sent));
      } catch {
        problems.push(`${partition}@${read.offset}: ${id} reads back as ${JSON.stringify(read)}`);
      }
    }
  }
  for (const [id, ack] of ledger.acked) {
    const places = found.get(id) ?? [];
    if (
      places.length !== 1 ||
      places[0]!.partition !== ack.partition ||
      places[0]!.offset !== ack.offset
    ) {
      problems.push(`acknowledged ${id} at ${JSON.stringify(ack)} is at ${JSON.stringify(places)}`);
    }
  }
  for (const id of ledger.unknown) {
    const places = found.get(id) ?? [];
    if (places.length > 1) problems.push(`unanswered ${id} appears ${places.length} times`);
  }
  expect(problems.slice(0, 20)).toEqual([]);

  const described = await callJson(server.url, "GET", `/v1/topics/${TOPIC}?segments=false`);
  expect(described.body.partitions).toEqual(
    logEnds.map((logEndOffset, partition) => ({ partition, logStartOffset: 0, logEndOffset })),
  );
  return { logEnds, found };
}

/** The restarted server appends after the recovered log end, on every partition. */
async function expectAppendsContinue(
  server: ServerProcess,
  ledger: Ledger,
  round: number,
  logEnds: number[],
): Promise<void> {
  for (const partition of range(PARTITIONS)) {
    const record = makeRecord(`r${round}-after-restart-${partition}`, partition);
    ledger.sent.set(record.id, record);
    const res = await callJson(server.url, "POST", `/v1/topics/${TOPIC}/records`, {
      records: [{ ...record.body, partition }],
    });
    expect(res.status).toBe(200);
    expect(res.body.offsets).toEqual([{ partition, offset: logEnds[partition] }]);
    ledger.acked.set(record.id, { partition, offset: logEnds[partition]! });
    logEnds[partition]! += 1;
  }
}

describe("server process crashes and restarts", () => {
  let cleanup: (() => Promise<void>) | undefined;

  afterEach(async () => {
    await killAllServers();
    await cleanup?.();
    cleanup = undefined;
  });

  it("loses no acknowledged record across three SIGKILLs under load", async () => {
    const data = await makeDataDir("sluice-crash-");
    cleanup = data.cleanup;
    const ledger = newLedger();
    let server = await startServer({ dataDir: data.dir, env });
    const created = await callJson(server.url, "POST", "/v1/topics", {
      name: TOPIC,
      partitions: PARTITIONS,
    });
    expect(created.status).toBe(201);

    const killedWithInFlight: number[] = [];
    for (let round = 0; round < 3; round++) {
      let killed = false;
      const ackedBefore = ledger.acked.size;
      const load = runLoad(server, ledger, round, 16, () => killed);
      // Kill at a different point each round: after a few hundred acknowledgements, or after
      // 0.3-1 s of load, whichever comes first (but never before this round's first one).
      const target = ackedBefore + 150 + Math.floor(Math.random() * 250);
      const killAfterMs = 300 + Math.random() * 700;
      const started = Date.now();
      for (;;) {
        const elapsed = Date.now() - started;
        const roundAcks = ledger.acked.size - ackedBefore;
        if (ledger.acked.size >= target || elapsed > 10_000) break;
        if (elapsed >= killAfterMs && roundAcks > 0) break;
        await sleep(2);
      }
      const unknownBefore = ledger.unknown.size;
      killed = true;
      server.kill("SIGKILL");
      expect(await server.exited).toEqual({ code: null, signal: "SIGKILL" });
      await load;
      killedWithInFlight.push(ledger.unknown.size - unknownBefore);
      expect(ledger.unexpected).toEqual([]);
      expect(ledger.acked.size).toBeGreaterThan(ackedBefore);

      server = await startServer({ dataDir: data.dir, env });
      const { logEnds } = await verify(server, ledger);
      await expectAppendsContinue(server, ledger, round, logEnds);
    }
    // The kills did land while requests were in flight (16 loops never all idle at once).
    expect(killedWithInFlight.every((n) => n > 0)).toBe(true);

    // A last check after the final round's extra appends, through yet another restart.
    await server.stop();
    server = await startServer({ dataDir: data.dir, env });
    await verify(server, ledger);
  }, 60_000);

  it("on SIGTERM under load, flushes what it acknowledged and exits 0", async () => {
    const data = await makeDataDir("sluice-term-");
    cleanup = data.cleanup;
    const ledger = newLedger();
    // A long linger keeps appends buffered, so the shutdown has real work to flush.
    let server = await startServer({ dataDir: data.dir, env: { SLUICE_LINGER_MS: "50" } });
    const created = await callJson(server.url, "POST", "/v1/topics", {
      name: TOPIC,
      partitions: PARTITIONS,
    });
    expect(created.status).toBe(201);

    let terminated = false;
    const load = runLoad(server, ledger, 0, 16, () => terminated);
    const started = Date.now();
    while (ledger.acked.size < 200 && Date.now() - started < 1_000) await sleep(5);
    terminated = true;
    const terminatedAt = Date.now();
    server.kill("SIGTERM");
    const exit = await server.exited;
    const exitedAfter = Date.now() - terminatedAt;
    await load;
    expect(exit, server.output().stderr).toEqual({ code: 0, signal: null });
    expect(server.output().stdout).toMatch(/"msg":"shutting down"/);
    expect(exitedAfter).toBeLessThan(10_000);
    expect(ledger.unexpected).toEqual([]);
    expect(ledger.acked.size).toBeGreaterThan(0);

    server = await startServer({ dataDir: data.dir, env });
    const { logEnds, found } = await verify(server, ledger);
    // A clean stop leaves no write in doubt: a request without an answer was never taken in
    // (refused, or cut on an idle connection), so none of its records were written.
    expect([...ledger.unknown].filter((id) => found.has(id))).toEqual([]);
    await expectAppendsContinue(server, ledger, 1, logEnds);
  }, 60_000);
  it("on SIGTERM, answers appends still waiting out linger.ms at once instead of dropping them", async () => {
    const data = await makeDataDir("sluice-drain-");
    cleanup = data.cleanup;
    const ledger = newLedger();
    // The first flush of each partition would wait 30 s: only the shutdown drain can send it.
    let server = await startServer({ dataDir: data.dir, env: { SLUICE_LINGER_MS: "30000" } });
    const created = await callJson(server.url, "POST", "/v1/topics", {
      name: TOPIC,
      partitions: PARTITIONS,
    });
    expect(created.status).toBe(201);

    const requests = range(12).map(async (n) => {
      const partition = n % PARTITIONS;
      const records = range(2).map((i) => makeRecord(`drain-${n}-${i}`, n * 2 + i));
      for (const record of records) ledger.sent.set(record.id, record);
      // A lost answer is a result here, not an error: it is what this test looks for.
      const res = await callJson(server.url, "POST", `/v1/topics/${TOPIC}/records`, {
        records: records.map((r) => ({ ...r.body, partition })),
      }).catch((err: unknown) => ({
        status: `no answer: ${String((err as Error).cause ?? err)}`,
        body: undefined,
      }));
      return { n, records, res };
    });
    // Long enough for the server to have taken every request into its buffers.
    await sleep(1_000);
    const terminatedAt = Date.now();
    server.kill("SIGTERM");
    const exit = await server.exited;
    const exitedAfter = Date.now() - terminatedAt;
    const answers = await Promise.all(requests);
    expect(exit, server.output().stderr).toEqual({ code: 0, signal: null });
    expect(exitedAfter).toBeLessThan(15_000);

    // Every buffered request is answered before the process exits.
    expect(answers.map(({ n, res }) => [n, res.status])).toEqual(range(12).map((n) => [n, 200]));
    for (const { records, res } of answers) {
      records.forEach((record, i) => ledger.acked.set(record.id, res.body.offsets[i]));
    }
    // Each partition's buffered requests left in one flush, in some order: 6 requests x 2.
    for (const partition of range(PARTITIONS)) {
      const offsets = answers
        .filter(({ n }) => n % PARTITIONS === partition)
        .flatMap(({ res }) => res.body.offsets.map((o: Ack) => [o.partition, o.offset]));
      expect(offsets.sort((x, y) => x[1] - y[1])).toEqual(range(12).map((o) => [partition, o]));
    }

    server = await startServer({ dataDir: data.dir, env });
    expect((await verify(server, ledger)).logEnds).toEqual([12, 12]);
  }, 60_000);
});
