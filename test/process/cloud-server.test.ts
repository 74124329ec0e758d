import { DeleteTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { readdir } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureTable } from "../../src/meta/dynamodb.js";
import { s3Endpoint, type S3Endpoint } from "../support/standins/s3.js";
import {
  callJson,
  killAllServers,
  makeDataDir,
  readPartitionFully,
  startServer,
  type ServerProcess,
} from "../support/server-process.js";

/**
 * `sluice serve` with SLUICE_BUCKET / SLUICE_TABLE and the SDK's endpoint variables serves the
 * same API over S3 + DynamoDB: two processes share one bucket and one table, and DynamoDB's
 * conditional transaction alone keeps their offsets apart.
 */
describe("two server processes over S3 + DynamoDB", () => {
  let s3: S3Endpoint;
  let data: Awaited<ReturnType<typeof makeDataDir>>;
  const dynamo = new DynamoDBClient({});
  const table = `sluice-proc-${Date.now()}`;
  let a: ServerProcess;
  let b: ServerProcess;

  beforeAll(async () => {
    s3 = await s3Endpoint();
    await ensureTable(dynamo, table);
    // The data directory stays empty: a file appearing in it would mean the embedded path ran.
    data = await makeDataDir("sluice-cloud-");
    const env = {
      SLUICE_BUCKET: s3.bucket,
      SLUICE_PREFIX: "proc",
      SLUICE_TABLE: table,
      SLUICE_LINGER_MS: "2",
      SLUICE_POLL_INTERVAL_MS: "25",
    };
    a = await startServer({ dataDir: data.dir, env });
    b = await startServer({ dataDir: data.dir, env });
  }, 60_000);

  afterAll(async () => {
    await killAllServers();
    await dynamo.send(new DeleteTableCommand({ TableName: table }));
    dynamo.destroy();
    await s3?.stop();
    await data?.cleanup();
  });

  it("gives producers on both processes unique, contiguous offsets and both the same log", async () => {
    expect(a.output().stdout).toContain(`s3://${s3.bucket}/proc/`);
    expect(a.output().stdout).toContain(`dynamodb:${table}`);
    const created = await callJson(a.url, "POST", "/v1/topics", { name: "cloud", partitions: 1 });
    expect(created.status).toBe(201);

    const acked = new Map<number, string>();
    await Promise.all(
      Array.from({ length: 16 }, async (_, p) => {
        const server = p % 2 === 0 ? a : b;
        for (let r = 0; r < 5; r++) {
          const values = [`p${p}-r${r}-a`, `p${p}-r${r}-b`];
          const res = await callJson(server.url, "POST", "/v1/topics/cloud/records", {
            records: values.map((value) => ({ value })),
          });
          expect(res.status).toBe(200);
          res.body.offsets.forEach((o: { offset: number }, i: number) => {
            expect(acked.has(o.offset)).toBe(false);
            acked.set(o.offset, values[i]!);
          });
        }
      }),
    );
    const total = 16 * 5 * 2;
    expect([...acked.keys()].sort((x, y) => x - y)).toEqual(
      Array.from({ length: total }, (_, i) => i),
    );
    for (const server of [a, b]) {
      const { records, logEndOffset } = await readPartitionFully(server.url, "cloud", 0, 37);
      expect(logEndOffset).toBe(total);
      expect(records.map((r) => r.value)).toEqual(
        Array.from({ length: total }, (_, i) => acked.get(i)),
      );
    }
    expect(await readdir(data.dir)).toEqual([]);
  }, 60_000);
});
