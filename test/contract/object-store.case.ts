import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SluiceError } from "../../src/errors.js";
import type { ErrorCode } from "../../src/errors.js";
import type { ObjectInfo, ObjectStore } from "../../src/storage/object-store.js";

export interface ObjectStoreFixture {
  store: ObjectStore;
  cleanup: () => Promise<void>;
}

const MiB = 1024 * 1024;

/**
 * The ObjectStore port's contract, run unchanged against every adapter. It asserts only what the
 * port promises, and every test writes under its own prefix of a per-run prefix, so it can run
 * against a shared bucket that holds other data.
 */
export function objectStoreContract(name: string, factory: () => Promise<ObjectStoreFixture>) {
  describe(`ObjectStore contract: ${name}`, () => {
    let fixture: ObjectStoreFixture | undefined;
    const run = `contract-${Date.now()}-${randomBytes(4).toString("hex")}`;
    let tests = 0;

    /** The store, and a key prefix no other test (or earlier run) uses. */
    function setup(): { store: ObjectStore; p: string } {
      if (fixture === undefined) throw new Error("the store fixture was not created");
      return { store: fixture.store, p: `${run}/t${++tests}/` };
    }

    beforeAll(async () => {
      fixture = await factory();
    });

    afterAll(async () => {
      if (fixture === undefined) return;
      await fixture.store.close();
      await fixture.cleanup();
    });

    describe("put and get", () => {
      it("round-trips bytes exactly", async () => {
        const { store, p } = setup();
        const body = pattern(1000);
        await store.put(`${p}obj`, body);
        expectBytes(await store.get(`${p}obj`), body);
      });

      it("round-trips an empty object", async () => {
        const { store, p } = setup();
        await store.put(`${p}empty`, new Uint8Array(0));
        expectBytes(await store.get(`${p}empty`), new Uint8Array(0));
        expectBytes(await store.get(`${p}empty`, { start: 0, end: 10 }), new Uint8Array(0));
      });

      it("round-trips a 5 MiB object", async () => {
        const { store, p } = setup();
        const body = new Uint8Array(randomBytes(5 * MiB));
        await store.put(`${p}big`, body);
        expectBytes(await store.get(`${p}big`), body);
        const start = 3 * MiB + 17;
        expectBytes(
          await store.get(`${p}big`, { start, end: start + 4096 }),
          body.subarray(start, start + 4096),
        );
      });

      it("keeps stored bytes apart from the caller's buffers", async () => {
        const { store, p } = setup();
        const body = pattern(64);
        const original = body.slice();
        await store.put(`${p}obj`, body);
        body.fill(0);
        const first = await store.get(`${p}obj`);
        first.fill(0);
        expectBytes(await store.get(`${p}obj`), original);
      });

      it("accepts a retried put of the same bytes, also concurrently", async () => {
        const { store, p } = setup();
        const body = pattern(5000);
        await store.put(`${p}obj`, body);
        await store.put(`${p}obj`, body);
        await Promise.all(Array.from({ length: 5 }, () => store.put(`${p}obj`, body)));
        expectBytes(await store.get(`${p}obj`), body);
        expect(await keysOf(store, p)).toEqual([`${p}obj`]);
      });

      it("rejects a get of a missing key with not_found", async () => {
        const { store, p } = setup();
        await expectCode(store.get(`${p}missing`), "not_found", { key: `${p}missing` });
        await expectCode(store.get(`${p}missing`, { start: 0, end: 1 }), "not_found");
        await store.put(`${p}dir/obj`, pattern(1));
        await expectCode(store.get(`${p}dir`), "not_found");
      });
    });

    describe("ranged get", () => {
      const body = pattern(1000);

      it.each([
        { what: "the start", start: 0, end: 10 },
        { what: "the middle", start: 100, end: 200 },
        { what: "the end", start: 990, end: 1000 },
        { what: "the whole object", start: 0, end: 1000 },
        { what: "the last byte", start: 999, end: 1000 },
      ])("reads $what", async ({ start, end }) => {
        const { store, p } = setup();
        await store.put(`${p}obj`, body);
        expectBytes(await store.get(`${p}obj`, { start, end }), body.subarray(start, end));
      });

      it("clamps a range that runs past the end", async () => {
        const { store, p } = setup();
        await store.put(`${p}obj`, body);
        expectBytes(await store.get(`${p}obj`, { start: 990, end: 2000 }), body.subarray(990));
        expectBytes(await store.get(`${p}obj`, { start: 0, end: 1_000_000 }), body);
      });

      it("returns no bytes for an empty range or one that starts at or past the end", async () => {
        const { store, p } = setup();
        await store.put(`${p}obj`, body);
        for (const range of [
          { start: 10, end: 10 },
          { start: 1000, end: 1010 },
          { start: 5000, end: 6000 },
        ]) {
          expectBytes(await store.get(`${p}obj`, range), new Uint8Array(0));
        }
      });

      it("rejects a malformed range with invalid_request", async () => {
        const { store, p } = setup();
        await store.put(`${p}obj`, body);
        for (const range of [
          { start: -1, end: 10 },
          { start: 20, end: 10 },
          { start: 1.5, end: 10 },
        ]) {
          await expectCode(store.get(`${p}obj`, range), "invalid_request");
        }
      });
    });

    describe("list", () => {
      it("yields every key under the prefix in ascending byte order, with sizes", async () => {
        const { store, p } = setup();
        // `/` sorts between `.` and `0`, so a flat sort and a directory walk can disagree.
        const ordered = ["a-1", "a.1", "a/b", "a/c/d", "a0", "a=", "aA", "a_", "ab", "b"];
        const shuffled = ["aA", "a.1", "b", "a-1", "a/c/d", "ab", "a/b", "a_", "a0", "a="];
        for (const [i, key] of shuffled.entries()) await store.put(`${p}${key}`, pattern(i));
        const listed = await collect(store.list(p));
        expect(listed.map((o) => o.key)).toEqual(ordered.map((key) => `${p}${key}`));
        for (const info of listed) {
          expect(info.size).toBe(shuffled.indexOf(info.key.slice(p.length)));
          expect(info.lastModified).toBeInstanceOf(Date);
          expect(Number.isNaN(info.lastModified.getTime())).toBe(false);
        }
      });

      it("matches the prefix as a string, not as whole path segments", async () => {
        const { store, p } = setup();
        const keys = ["s/a/b-", "s/a/b/c", "s/a/bb/x", "s/a/bc", "s/a/c", "s/ab", "s/b"];
        await Promise.all(keys.map((key) => store.put(`${p}${key}`, pattern(3))));
        const listKeys = async (prefix: string) =>
          (await keysOf(store, `${p}${prefix}`)).map((key) => key.slice(p.length));
        expect(await listKeys("s/a/b")).toEqual(["s/a/b-", "s/a/b/c", "s/a/bb/x", "s/a/bc"]);
        expect(await listKeys("s/a/b/")).toEqual(["s/a/b/c"]);
        expect(await listKeys("s/a/")).toEqual(keys.slice(0, 5));
        expect(await listKeys("s/a")).toEqual(keys.slice(0, 6));
        expect(await listKeys("s/a/c")).toEqual(["s/a/c"]);
        expect(await listKeys("s/")).toEqual(keys);
        expect(await listKeys("s/a/b/c/")).toEqual([]);
        expect(await listKeys("s/a/x")).toEqual([]);
      });

      it("yields nothing for a prefix no key has", async () => {
        const { store, p } = setup();
        expect(await collect(store.list(p))).toEqual([]);
        expect(await collect(store.list(`${p}nothing/here`))).toEqual([]);
      });

      it("yields more than one page of keys", async () => {
        const { store, p } = setup();
        const keys = Array.from({ length: 1100 }, (_, i) => `${p}k${String(i).padStart(5, "0")}`);
        await eachLimited(keys, 32, (key) => store.put(key, pattern(1)));
        expect(await keysOf(store, p)).toEqual(keys);
      });

      it("does not yield deleted keys", async () => {
        const { store, p } = setup();
        await Promise.all(["a", "b", "c"].map((k) => store.put(`${p}${k}`, pattern(1))));
        await store.delete([`${p}b`]);
        expect(await keysOf(store, p)).toEqual([`${p}a`, `${p}c`]);
      });
    });

    describe("delete", () => {
      it("removes existing keys and ignores missing ones", async () => {
        const { store, p } = setup();
        await Promise.all(["x/1", "x/2", "y"].map((k) => store.put(`${p}${k}`, pattern(4))));
        await store.delete([`${p}x/1`, `${p}missing`, `${p}x/nope/deeper`, `${p}y`]);
        await expectCode(store.get(`${p}x/1`), "not_found");
        await expectCode(store.get(`${p}y`), "not_found");
        expectBytes(await store.get(`${p}x/2`), pattern(4));
        expect(await keysOf(store, p)).toEqual([`${p}x/2`]);
        await store.delete([`${p}x/1`, `${p}y`]);
        await store.delete([]);
      });

      it("lets a deleted key be written again", async () => {
        const { store, p } = setup();
        await store.put(`${p}d/e/f`, pattern(10));
        await store.delete([`${p}d/e/f`]);
        await store.put(`${p}d/e/f`, pattern(20));
        expectBytes(await store.get(`${p}d/e/f`), pattern(20));
      });
    });

    it("stores 200 concurrent puts of distinct keys", async () => {
      const { store, p } = setup();
      // Ten keys share each new directory-like prefix, so adapters must handle racing creates.
      const keys = Array.from(
        { length: 200 },
        (_, i) => `${p}c/${i % 10}/${String(i).padStart(3, "0")}`,
      );
      const bodyOf = (i: number) => pattern(100 + i);
      await Promise.all(keys.map((key, i) => store.put(key, bodyOf(i))));
      const read = await Promise.all(keys.map((key) => store.get(key)));
      read.forEach((bytes, i) => expectBytes(bytes, bodyOf(i)));
      expect(await keysOf(store, p)).toEqual([...keys].sort());
    });

    describe("validation", () => {
      const invalidKeys = [
        "",
        "../x",
        "a/../../x",
        "..",
        ".",
        "a//b",
        "a/./b",
        "/a",
        "a/",
        "a b",
        "a\\b",
      ];

      it.each(invalidKeys)("rejects the key %j with invalid_request", async (bad) => {
        const { store, p } = setup();
        const key = bad.startsWith("/") || bad === "" ? bad : `${p}${bad}`;
        await expectCode(store.put(key, pattern(1)), "invalid_request");
        await expectCode(store.get(key), "invalid_request");
        await expectCode(store.delete([key]), "invalid_request");
        // Also unprefixed, as a path-traversal attempt would be.
        await expectCode(store.put(bad, pattern(1)), "invalid_request");
      });

      it("rejects a delete with any invalid key, deleting none", async () => {
        const { store, p } = setup();
        await store.put(`${p}keep`, pattern(1));
        await expectCode(store.delete([`${p}keep`, "../x"]), "invalid_request");
        expectBytes(await store.get(`${p}keep`), pattern(1));
      });

      it("rejects an invalid list prefix with invalid_request", async () => {
        const { store, p } = setup();
        for (const prefix of ["../", `${p}a//`, `${p}../`, "/"]) {
          await expectCode(collect(store.list(prefix)), "invalid_request");
        }
      });
    });
  });
}

/** Deterministic bytes that differ between neighbouring positions, so an off-by-one shows. */
function pattern(length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + 7) % 251);
}

function expectBytes(actual: Uint8Array, expected: Uint8Array): void {
  expect(actual).toBeInstanceOf(Uint8Array);
  expect(actual.length).toBe(expected.length);
  // A byte-wise compare: toEqual on megabytes is slow and prints unreadable diffs.
  const mismatch = actual.findIndex((byte, i) => byte !== expected[i]);
  expect(mismatch, `first differing byte at ${mismatch}`).toBe(-1);
}

async function expectCode(
  promise: Promise<unknown>,
  code: ErrorCode,
  details?: Record<string, unknown>,
): Promise<void> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SluiceError);
  expect(err).toMatchObject(details === undefined ? { code } : { code, details });
}

async function collect(items: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const item of items) out.push(item);
  return out;
}

async function keysOf(store: ObjectStore, prefix: string): Promise<string[]> {
  return (await collect(store.list(prefix))).map((info) => info.key);
}

/** Runs `fn` over the items with at most `limit` in flight, as a real store needs. */
async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
}
