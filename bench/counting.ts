/**
 * Counting wrappers for the cost counters: every request that reaches the object store, every
 * call to the metadata store, and (DynamoDB) the capacity units the table reports consuming.
 * Like test/support/counting-store.ts, with bytes, listings, deletes and the metadata side.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { ByteRange, ObjectInfo, ObjectStore } from "../src/storage/object-store.js";
import type { StoreCounts } from "./types.js";

export function zeroCounts(): StoreCounts {
  return {
    puts: 0,
    gets: 0,
    lists: 0,
    deletes: 0,
    bytesPut: 0,
    bytesGot: 0,
    kvReads: 0,
    kvWrites: 0,
    readUnits: 0,
    writeUnits: 0,
  };
}

/** One object shared by the wrappers below; `reset` starts a new step. */
export class Counter {
  counts = zeroCounts();

  reset(): void {
    this.counts = zeroCounts();
  }

  snapshot(): StoreCounts {
    return { ...this.counts };
  }
}

/** S3 lists and deletes up to 1,000 keys per request. */
const PAGE = 1000;

export class CountingObjectStore implements ObjectStore {
  constructor(
    private readonly inner: ObjectStore,
    private readonly counter: Counter,
  ) {}

  put(key: string, body: Uint8Array): Promise<void> {
    this.counter.counts.puts++;
    this.counter.counts.bytesPut += body.byteLength;
    return this.inner.put(key, body);
  }

  async get(key: string, range?: ByteRange): Promise<Uint8Array> {
    this.counter.counts.gets++;
    const bytes = await this.inner.get(key, range);
    this.counter.counts.bytesGot += bytes.byteLength;
    return bytes;
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    this.counter.counts.lists++;
    let n = 0;
    for await (const info of this.inner.list(prefix)) {
      if (++n % PAGE === 0) this.counter.counts.lists++;
      yield info;
    }
  }

  delete(keys: readonly string[]): Promise<void> {
    this.counter.counts.deletes += Math.ceil(keys.length / PAGE);
    return this.inner.delete(keys);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

const READS = /^(get|list|read)/;

/**
 * The metadata store with every method call counted as a read (`get…`, `list…`, `read…`) or a
 * write (the rest). A Proxy, so it forwards whatever the store offers; methods run on the
 * store itself (its private fields need that).
 */
export function countingMeta<T extends object>(inner: T, counter: Counter): T {
  return new Proxy(inner, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop);
      if (typeof value !== "function") return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (typeof prop !== "string" || prop === "close") return fn.bind(target);
      return (...args: unknown[]) => {
        if (READS.test(prop)) counter.counts.kvReads++;
        else if (prop !== "constructor") counter.counts.kvWrites++;
        return fn.apply(target, args);
      };
    },
  });
}

interface Consumed {
  CapacityUnits?: number;
}

/**
 * A DynamoDB client that asks every item operation for `ReturnConsumedCapacity: TOTAL` and adds
 * up what the table answers: read units for gets and queries, write units for the rest.
 */
export function countingDynamoClient(counter: Counter): DynamoDBClient {
  const client = new DynamoDBClient({});
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = context.commandName ?? "";
      const tableOp = /Table|Tags|Ttl|Backups?|Export|Import/.test(name);
      if (!tableOp) (args.input as Record<string, unknown>).ReturnConsumedCapacity = "TOTAL";
      const out = await next(args);
      if (tableOp) return out;
      const consumed = (out.output as { ConsumedCapacity?: Consumed | Consumed[] })
        .ConsumedCapacity;
      const list = consumed === undefined ? [] : Array.isArray(consumed) ? consumed : [consumed];
      const units = list.reduce((sum, c) => sum + (c.CapacityUnits ?? 0), 0);
      if (/Get|Query|Scan/.test(name)) counter.counts.readUnits += units;
      else counter.counts.writeUnits += units;
      return out;
    },
    { step: "initialize", name: "benchConsumedCapacity" },
  );
  return client;
}
