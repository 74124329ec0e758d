import { createHash, randomBytes } from "node:crypto";
import { ulid } from "ulid";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isSluiceError } from "../../src/errors.js";
import type { ApiKeyInfo, ApiKeyRecord, KeyStore } from "../../src/meta/key-store.js";

export interface KeyStoreFixture {
  store: KeyStore;
  /** Runs after each test; it closes the store (the port has no close of its own). */
  cleanup: () => Promise<void>;
}

/** A fresh key: new id, and the digest of a new random secret, as the admin API makes them. */
function key(overrides: Partial<ApiKeyRecord> = {}): ApiKeyRecord {
  return {
    id: ulid(),
    secretHash: new Uint8Array(createHash("sha256").update(randomBytes(32)).digest()),
    scopes: ["topics:read", "produce:events.*"],
    description: "ingest service",
    createdAt: 1_700_000_000_123,
    expiresAt: 1_800_000_000_000,
    revokedAt: null,
    rateLimit: { perSecond: 12.5, burst: 40 },
    ...overrides,
  };
}

/** What listKeys shows of a record: everything but the digest. */
function info({ secretHash: _, ...rest }: ApiKeyRecord): ApiKeyInfo {
  return rest;
}

/** Byte order, as every adapter sorts ids (ULIDs are ASCII, so it is also code-unit order). */
const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * The KeyStore contract (docs/rfcs/0005-auth-and-limits.md §3), run unchanged against every
 * adapter. It sees stores only through the port and never assumes an empty table: listings may
 * hold other tests' keys, so it checks only its own, which have fresh ids in every test.
 */
export function keyStoreContract(name: string, factory: () => Promise<KeyStoreFixture>): void {
  describe(`KeyStore contract: ${name}`, () => {
    let store: KeyStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await factory());
    });

    afterEach(async () => {
      await cleanup();
    });

    /** The listed keys among `ids`, in the order listKeys gave them. */
    async function listed(ids: string[]): Promise<ApiKeyInfo[]> {
      const wanted = new Set(ids);
      return (await store.listKeys()).filter((k) => wanted.has(k.id));
    }

    describe("putKey and getKey", () => {
      it("stores a key and reads every field back exactly", async () => {
        const k = key();
        await store.putKey(k);
        const got = await store.getKey(k.id);
        expect(got).toEqual(k);
        expect(got?.secretHash).toBeInstanceOf(Uint8Array);
        expect(Array.from(got!.secretHash)).toEqual(Array.from(k.secretHash));
        expect(got!.secretHash).toHaveLength(32);
      });

      it("round-trips null and non-null expiry and rate limit alike", async () => {
        const bare = key({ expiresAt: null, rateLimit: null, scopes: [], description: "" });
        const full = key({ expiresAt: 1_900_000_000_000, rateLimit: { perSecond: 1, burst: 1 } });
        const revoked = key({ revokedAt: 1_700_000_000_500, scopes: ["admin"] });
        for (const k of [bare, full, revoked]) await store.putKey(k);
        expect(await store.getKey(bare.id)).toEqual(bare);
        expect(await store.getKey(full.id)).toEqual(full);
        expect(await store.getKey(revoked.id)).toEqual(revoked);
        expect(await listed([bare.id, full.id, revoked.id])).toEqual(
          [bare, full, revoked].map(info).sort(byId),
        );
      });

      it("reads an unknown id as undefined", async () => {
        expect(await store.getKey(ulid())).toBeUndefined();
      });

      it("keeps no reference to the caller's record, nor hands out its own", async () => {
        const k = key();
        const original = structuredClone(k);
        await store.putKey(k);
        k.secretHash.fill(0);
        k.scopes.push("admin");
        k.rateLimit!.burst = 1_000;
        expect(await store.getKey(k.id)).toEqual(original);

        const got = (await store.getKey(k.id))!;
        got.secretHash.fill(0);
        got.scopes.length = 0;
        got.rateLimit!.perSecond = 0;
        expect(await store.getKey(k.id)).toEqual(original);
        const [listedKey] = await listed([k.id]);
        listedKey!.scopes.push("admin");
        expect(await listed([k.id])).toEqual([info(original)]);
      });

      it("refuses a second key with the same id as a conflict, changing nothing", async () => {
        const k = key();
        await store.putKey(k);
        const other = key({
          id: k.id,
          scopes: ["admin"],
          description: "impostor",
          expiresAt: null,
          rateLimit: null,
        });
        await expect(store.putKey(other)).rejects.toSatisfy((err) =>
          isSluiceError(err, "conflict"),
        );
        expect(await store.getKey(k.id)).toEqual(k);
        expect(await listed([k.id])).toEqual([info(k)]);
      });

      it("lets exactly one of 8 concurrent puts of one id win", async () => {
        const id = ulid();
        const candidates = Array.from({ length: 8 }, (_, i) => key({ id, description: `c${i}` }));
        const results = await Promise.allSettled(candidates.map((k) => store.putKey(k)));
        const winners = results.flatMap((r, i) => (r.status === "fulfilled" ? [i] : []));
        expect(winners).toHaveLength(1);
        for (const r of results) {
          if (r.status === "rejected") expect(isSluiceError(r.reason, "conflict")).toBe(true);
        }
        expect(await store.getKey(id)).toEqual(candidates[winners[0]!]);
        expect(await listed([id])).toEqual([info(candidates[winners[0]!]!)]);
      });
    });

    describe("listKeys", () => {
      it("lists keys by id, without their digests, revoked and expired ones included", async () => {
        const keys = Array.from({ length: 5 }, (_, i) =>
          key({ description: `key ${i}`, createdAt: 1_700_000_000_000 + i }),
        );
        keys[1] = { ...keys[1]!, revokedAt: 1_700_000_000_900 };
        keys[3] = { ...keys[3]!, expiresAt: 1 };
        // Stored out of id order, so that the listing has to sort.
        for (const k of [...keys].sort(byId).reverse()) await store.putKey(k);
        expect(await store.revokeKey(keys[4]!.id, 1_700_000_000_950)).toBe(true);
        keys[4] = { ...keys[4]!, revokedAt: 1_700_000_000_950 };

        const all = await store.listKeys();
        for (const k of all) expect(k).not.toHaveProperty("secretHash");
        const ids = all.map((k) => k.id);
        expect(ids).toEqual([...ids].sort());
        expect(new Set(ids).size).toBe(ids.length);

        const mine = await listed(keys.map((k) => k.id));
        expect(mine).toEqual([...keys].sort(byId).map(info));
      });
    });

    describe("revokeKey", () => {
      it("sets the revocation time, keeps the first one, and says the key exists", async () => {
        const k = key();
        await store.putKey(k);
        expect(await store.revokeKey(k.id, 1_700_000_001_000)).toBe(true);
        const revoked = { ...k, revokedAt: 1_700_000_001_000 };
        expect(await store.getKey(k.id)).toEqual(revoked);
        expect(await listed([k.id])).toEqual([info(revoked)]);

        expect(await store.revokeKey(k.id, 1_700_000_002_000)).toBe(true);
        expect(await store.getKey(k.id)).toEqual(revoked);
        expect(await listed([k.id])).toEqual([info(revoked)]);
      });

      it("keeps the revocation time a key was stored with", async () => {
        const k = key({ revokedAt: 1_700_000_000_700 });
        await store.putKey(k);
        expect(await store.revokeKey(k.id, 1_700_000_003_000)).toBe(true);
        expect(await store.getKey(k.id)).toEqual(k);
        expect(await listed([k.id])).toEqual([info(k)]);
      });

      it("answers false for an unknown id and creates nothing", async () => {
        const id = ulid();
        expect(await store.revokeKey(id, 1_700_000_004_000)).toBe(false);
        expect(await store.getKey(id)).toBeUndefined();
        expect(await listed([id])).toEqual([]);
      });

      it("leaves other keys alone", async () => {
        const a = key();
        const b = key();
        await store.putKey(a);
        await store.putKey(b);
        expect(await store.revokeKey(a.id, 1_700_000_005_000)).toBe(true);
        expect(await store.getKey(b.id)).toEqual(b);
        expect(await listed([a.id, b.id])).toEqual(
          [{ ...a, revokedAt: 1_700_000_005_000 }, b].map(info).sort(byId),
        );
      });
    });
  });
}
