import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from "vitest";
import { isSluiceError } from "../../src/errors.js";
import { FileSystemObjectStore } from "../../src/storage/filesystem.js";
import type { ObjectInfo } from "../../src/storage/object-store.js";
import { objectStoreContract } from "../contract/object-store.case.js";

objectStoreContract("filesystem", async () => {
  const root = await mkdtemp(join(tmpdir(), "sluice-fs-contract-"));
  return {
    store: new FileSystemObjectStore({ root }),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
});

describe("FileSystemObjectStore", () => {
  let parent: string;
  let root: string;
  let store: FileSystemObjectStore;

  beforeEach(async () => {
    parent = await mkdtemp(join(tmpdir(), "sluice-fs-"));
    // Not created up front: the store must create its root itself.
    root = join(parent, "data", "objects");
    store = new FileSystemObjectStore({ root });
  });

  afterEach(async () => {
    await store.close();
    await rm(parent, { recursive: true, force: true });
  });

  it("lists only complete objects while puts are in flight, and leaves no temp files", async () => {
    const size = 256 * 1024;
    const keys = Array.from({ length: 40 }, (_, i) => `t/0/${String(i).padStart(2, "0")}`);
    let writing = true;
    const puts = Promise.all(
      keys.map((key) => store.put(key, new Uint8Array(size).fill(7))),
    ).finally(() => (writing = false));
    const seen: ObjectInfo[] = [];
    while (writing) seen.push(...(await collect(store.list(""))));
    await puts;
    for (const info of seen) {
      expect(keys).toContain(info.key);
      expect(info.size).toBe(size);
    }
    expect((await readdir(join(root, "t", "0"))).sort()).toEqual(keys.map((k) => k.slice(4)));
  });

  it("does not list a temp file left behind by a crash", async () => {
    await store.put("t/0/a", bytes(3));
    // Temp names carry a `~`, which is outside the key alphabet.
    await writeFile(join(root, "t", "0", ".0123456789abcdef~tmp"), bytes(2));
    await writeFile(join(root, "t", "half~written"), bytes(2));
    expect(await keysOf(store, "")).toEqual(["t/0/a"]);
  });

  it("keeps every key inside its root", async () => {
    await writeFile(join(parent, "secret"), "outside");
    await mkdir(join(parent, "data", "objects"), { recursive: true });
    const attempts = [
      "../secret",
      "../../secret",
      "a/../../../secret",
      "/etc/passwd",
      "..",
      "./x",
      "a/./../x",
      "..\\secret",
      "%2e%2e/secret",
      "a\0b",
    ];
    for (const key of attempts) {
      await expectInvalid(store.put(key, bytes(1)));
      await expectInvalid(store.get(key));
      await expectInvalid(store.delete([key]));
    }
    for (const prefix of ["../", "../../", "/", "a/../"]) {
      await expectInvalid(collect(store.list(prefix)));
    }
    expect((await readdir(parent)).sort()).toEqual(["data", "secret"]);
    expect(await readdir(root)).toEqual([]);
    expect(await readFile(join(parent, "secret"), "utf8")).toBe("outside");
  });

  it("keeps objects across a new store on the same root", async () => {
    await store.put("topic/0/00000000000000000000.log", bytes(100));
    await store.put("topic/1/00000000000000000007.log", bytes(50));
    await store.close();
    store = new FileSystemObjectStore({ root });
    expect(await store.get("topic/0/00000000000000000000.log")).toEqual(bytes(100));
    expect(await store.get("topic/1/00000000000000000007.log", { start: 10, end: 20 })).toEqual(
      bytes(50).subarray(10, 20),
    );
    expect(await keysOf(store, "")).toEqual([
      "topic/0/00000000000000000000.log",
      "topic/1/00000000000000000007.log",
    ]);
  });

  it("keeps every acknowledged put, and no partial object, when the writer is SIGKILLed", async () => {
    const size = 64 * 1024;
    const module = fileURLToPath(new URL("../../src/storage/filesystem.ts", import.meta.url));
    // Eight writers loop until killed, printing each key once its put has resolved.
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "--input-type=module",
        "-e",
        `const { FileSystemObjectStore } = await import(${JSON.stringify(module)});
        const store = new FileSystemObjectStore({ root: ${JSON.stringify(root)} });
        await Promise.all(Array.from({ length: 8 }, async (_, w) => {
          for (let seq = 0; ; seq++) {
            const key = "k/" + w + "/" + String(seq).padStart(6, "0");
            await store.put(key, new Uint8Array(${size}).fill(seq % 251));
            console.log(key);
          }
        }));`,
      ],
      {
        cwd: fileURLToPath(new URL("../..", import.meta.url)),
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    const exited = once(child, "exit");
    // Also when the test fails or times out first: the writer must not outlive it, nor refill
    // the directory afterEach removed.
    onTestFinished(async () => {
      child.kill("SIGKILL");
      await exited;
      await rm(parent, { recursive: true, force: true });
    });
    const acknowledged: string[] = [];
    for await (const line of createInterface({ input: child.stdout })) {
      acknowledged.push(line);
      if (acknowledged.length === 100) child.kill("SIGKILL");
    }
    await exited;
    expect(acknowledged.length).toBeGreaterThanOrEqual(100);
    // Each put's bytes all equal its sequence number, so a torn or mixed-up object shows.
    const intact = async (key: string) => {
      const body = await store.get(key);
      const fill = Number(key.slice(-6)) % 251;
      return body.length === size && body.every((byte) => byte === fill);
    };
    for (const key of acknowledged) expect(await intact(key), key).toBe(true);
    // Puts in flight at the kill may or may not have landed, but never partly.
    for (const info of await collect(store.list(""))) {
      expect(await intact(info.key), info.key).toBe(true);
    }
  });

  it("walks the whole tree in key order from the root", async () => {
    const ordered = ["a-b", "a/b/c", "a/b0", "a0", "b/c/d/e", "b/c/d0"];
    for (const key of [...ordered].reverse()) await store.put(key, bytes(1));
    expect(await keysOf(store, "")).toEqual(ordered);
    expect(await keysOf(store, "a")).toEqual(ordered.slice(0, 4));
  });

  it("refuses, with conflict, a key that needs a file where a directory is or the reverse", async () => {
    await store.put("a/b/c", bytes(5));
    await expect(store.put("a/b", bytes(1))).rejects.toMatchObject({ code: "conflict" });
    await expect(store.put("a/b/c/d", bytes(1))).rejects.toMatchObject({ code: "conflict" });
    expect(await store.get("a/b/c")).toEqual(bytes(5));
    // The failed puts' temp files are gone too.
    expect(await readdir(join(root, "a"))).toEqual(["b"]);
    expect(await readdir(join(root, "a", "b"))).toEqual(["c"]);
  });

  it("removes directories a delete left empty, but never the root", async () => {
    await store.put("t/0/a", bytes(1));
    await store.put("t/1/a", bytes(1));
    await store.delete(["t/0/a"]);
    expect(await readdir(join(root, "t"))).toEqual(["1"]);
    await store.delete(["t/1/a"]);
    expect(await readdir(root)).toEqual([]);
    await store.put("t/0/a", bytes(2));
    expect(await store.get("t/0/a")).toEqual(bytes(2));
  });
});

function bytes(length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => i % 256);
}

async function expectInvalid(promise: Promise<unknown>): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isSluiceError(err, "invalid_request")).toBe(true);
}

async function collect(items: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const item of items) out.push(item);
  return out;
}

async function keysOf(store: FileSystemObjectStore, prefix: string): Promise<string[]> {
  return (await collect(store.list(prefix))).map((info) => info.key);
}
