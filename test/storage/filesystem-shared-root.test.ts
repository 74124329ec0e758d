import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type * as FsPromises from "node:fs/promises";
import { afterEach, beforeEach, expect, it, vi } from "vitest";

/** Records every directory this process opens read-only: that is how a directory is fsync'd. */
const dirOpens: string[] = [];
vi.mock("node:fs/promises", async (importOriginal) => {
  const actual = await importOriginal<typeof FsPromises>();
  return {
    ...actual,
    open: (path: string, flags?: string, mode?: number) => {
      if (flags === "r") dirOpens.push(path);
      return actual.open(path, flags, mode);
    },
  };
});

const { FileSystemObjectStore } = await import("../../src/storage/filesystem.js");

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "sluice-shared-root-"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

// Regression: a store remembered which directories it had synced; when another process sharing
// the root pruned them and this store's next put re-created them, it skipped syncing their new
// entries, so an acknowledged chunk could vanish on power loss.
it("syncs directories again when another store pruned and this one re-created them", async () => {
  const writer = new FileSystemObjectStore({ root });
  const collector = new FileSystemObjectStore({ root });
  await writer.put("t/id/0/chunks/a.chunk", new Uint8Array([1]));
  await collector.delete(["t/id/0/chunks/a.chunk"]);

  dirOpens.length = 0;
  await writer.put("t/id/0/chunks/b.chunk", new Uint8Array([2]));
  for (const dir of ["", "t", "t/id", "t/id/0", "t/id/0/chunks"]) {
    expect(dirOpens).toContain(join(root, dir));
  }
  const keys: string[] = [];
  for await (const object of writer.list("t/")) keys.push(object.key);
  expect(keys).toEqual(["t/id/0/chunks/b.chunk"]);
});
