import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, rename, rm, rmdir, stat, unlink } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import type { Dirent } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { SluiceError } from "../errors.js";
import {
  assertValidKey,
  assertValidPrefix,
  assertValidRange,
  isValidObjectKey,
} from "./object-store.js";
import type { ByteRange, ObjectInfo, ObjectStore } from "./object-store.js";

export interface FileSystemObjectStoreOptions {
  /** Directory that holds the objects; created on the first put. */
  root: string;
}

/** Errors meaning "no object here": a missing component, a directory, an impossible name. */
const MISSING = new Set(["ENOENT", "ENOTDIR", "EISDIR", "ENAMETOOLONG"]);
/** A put whose key needs a file where a directory is, or the other way round. */
const PATH_CLASH = new Set(["ENOTDIR", "EISDIR", "EEXIST", "ENOTEMPTY"]);
/** A concurrent delete can remove a directory between our mkdir and our open in it. */
const CREATE_ATTEMPTS = 3;

/**
 * Objects as files under a root directory, one directory level per key segment. Each put is
 * atomic (temp file, fsync, rename) and durable (the directory entries are fsync'd too) before
 * it resolves. The tree cannot hold both a key and a longer key below it (`a/b` and `a/b/c`);
 * such a put fails with `conflict`. Several processes may share a root (two embedded servers
 * on one data directory): a directory one of them prunes and another re-creates is synced again.
 */
export class FileSystemObjectStore implements ObjectStore {
  private readonly root: string;
  /**
   * Directories whose entry, and every ancestor's, this process has fsync'd: only the first put
   * into a directory pays for the chain. Holding the promise makes a put into a directory that a
   * concurrent put just created wait for that sync too, instead of resolving before it.
   */
  private readonly synced = new Map<string, Promise<void>>();

  constructor(options: FileSystemObjectStoreOptions) {
    this.root = resolve(options.root);
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    const path = this.pathOf(key);
    const dir = dirname(path);
    // The `~` is outside the key alphabet, so no key can name a temp file and list skips them.
    const temp = join(dir, `.${randomBytes(8).toString("hex")}~tmp`);
    try {
      await this.ensureRoot();
    } catch (err) {
      throw unavailable(err, `cannot create the store's root ${this.root}`, { key });
    }
    try {
      const { file, created } = await createInDir(dir, temp);
      // Another process may have pruned and this put re-created directories this store had
      // synced before: their new entries must be synced again.
      if (created !== undefined) this.forgetSynced(created, dir);
      try {
        await file.writeFile(body);
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(temp, path);
    } catch (err) {
      await rm(temp, { force: true }).catch(() => undefined);
      throw putError(err, key);
    }
    try {
      await Promise.all([syncDir(dir), this.durableDir(dir)]);
    } catch (err) {
      throw unavailable(err, `cannot sync the directory of ${key}`, { key });
    }
  }

  async get(key: string, range?: ByteRange): Promise<Uint8Array> {
    const path = this.pathOf(key);
    if (range !== undefined) assertValidRange(range);
    try {
      const file = await open(path, "r");
      try {
        const { size } = await file.stat();
        const start = Math.min(range?.start ?? 0, size);
        const bytes = new Uint8Array(Math.min(range?.end ?? size, size) - start);
        let filled = 0;
        while (filled < bytes.length) {
          const { bytesRead } = await file.read(
            bytes,
            filled,
            bytes.length - filled,
            start + filled,
          );
          // Only an outside hand truncating the file gets here; return what is there.
          if (bytesRead === 0) return bytes.subarray(0, filled);
          filled += bytesRead;
        }
        return bytes;
      } finally {
        await file.close();
      }
    } catch (err) {
      if (MISSING.has(errorCode(err))) {
        throw new SluiceError("not_found", `no object at key ${key}`, { details: { key } });
      }
      throw unavailable(err, `cannot read ${key}`, { key });
    }
  }

  async *list(prefix: string): AsyncGenerator<ObjectInfo> {
    assertValidPrefix(prefix);
    // A string prefix: its last, partial segment filters names in the directory above it.
    const cut = prefix.lastIndexOf("/") + 1;
    yield* this.walk(prefix.slice(0, cut), prefix.slice(cut));
  }

  async delete(keys: readonly string[]): Promise<void> {
    // All keys are checked before any is removed, so a bad request changes nothing.
    const paths = new Map(keys.map((key) => [key, this.pathOf(key)]));
    await Promise.all(
      [...paths].map(async ([key, path]) => {
        try {
          await unlink(path);
        } catch (err) {
          if (MISSING.has(errorCode(err))) return;
          throw unavailable(err, `cannot delete ${key}`, { key });
        }
        await this.pruneEmptyDirs(dirname(path));
      }),
    );
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private pathOf(key: string): string {
    assertValidKey(key);
    return join(this.root, ...key.split("/"));
  }

  /** Yields the objects under `dirKey` (`""` or ending in `/`) whose names start with `partial`. */
  private async *walk(dirKey: string, partial: string): AsyncGenerator<ObjectInfo> {
    let entries: Dirent[];
    try {
      entries = await readdir(join(this.root, ...dirKey.split("/")), { withFileTypes: true });
    } catch (err) {
      if (MISSING.has(errorCode(err))) return;
      throw unavailable(err, `cannot list ${dirKey || "the root"}`, { prefix: dirKey });
    }
    const children = entries
      .filter((e) => (e.isFile() || e.isDirectory()) && e.name.startsWith(partial))
      // Temp files and foreign names are not single key segments.
      .filter((e) => isValidObjectKey(e.name))
      // A directory's keys all continue with `/`, so it sorts as `name/`: `a-b` < `a/c` < `a0`.
      .map((e) => ({
        name: e.name,
        isDir: e.isDirectory(),
        order: e.name + (e.isDirectory() ? "/" : ""),
      }))
      .sort((a, b) => (a.order < b.order ? -1 : a.order > b.order ? 1 : 0));
    for (const child of children) {
      const key = dirKey + child.name;
      if (child.isDir) {
        yield* this.walk(`${key}/`, "");
        continue;
      }
      try {
        const info = await stat(join(this.root, ...key.split("/")));
        yield { key, size: info.size, lastModified: info.mtime };
      } catch (err) {
        // Deleted since readdir: it is simply not there any more.
        if (!MISSING.has(errorCode(err))) throw unavailable(err, `cannot stat ${key}`, { key });
      }
    }
  }

  /** Creates the root on first use; resolves once it, and any parent mkdir made, is durable. */
  private ensureRoot(): Promise<void> {
    return this.remember(this.root, async () => {
      const first = await mkdir(this.root, { recursive: true });
      // The root's parent is synced even if the root existed: a crashed run may have made it.
      const parents = [dirname(this.root)];
      for (let dir = this.root; first !== undefined && dir !== first && dir !== dirname(dir);) {
        dir = dirname(dir);
        parents.push(dirname(dir));
      }
      await Promise.all(parents.map(syncDir));
    });
  }

  /** Resolves once `dir`'s entry, and each ancestor's, would survive a crash. */
  private durableDir(dir: string): Promise<void> {
    if (dir === this.root) return this.ensureRoot();
    return this.remember(dir, async () => {
      const parent = dirname(dir);
      await Promise.all([syncDir(parent), this.durableDir(parent)]);
    });
  }

  /** Runs `sync` for `dir` once per process; a failure is forgotten so the next put retries. */
  private remember(dir: string, sync: () => Promise<void>): Promise<void> {
    const known = this.synced.get(dir);
    if (known !== undefined) return known;
    const done = sync();
    this.synced.set(dir, done);
    void done.catch(() => {
      if (this.synced.get(dir) === done) this.synced.delete(dir);
    });
    return done;
  }

  /** Forgets that `top` and the directories below it down to `dir` were synced. */
  private forgetSynced(top: string, dir: string): void {
    for (let current = dir; ; current = dirname(current)) {
      this.synced.delete(current);
      if (current === top || current === this.root || current === dirname(current)) return;
    }
  }

  /** Removes `dir` and its ancestors below the root while they are empty; best effort. */
  private async pruneEmptyDirs(dir: string): Promise<void> {
    for (let current = dir; current !== this.root;) {
      // Forgotten before removal: a put that re-creates it must sync its parent again.
      this.synced.delete(current);
      try {
        await rmdir(current);
      } catch {
        return;
      }
      current = dirname(current);
    }
  }
}

/**
 * Creates `path` exclusively, making its directory first; retries if a delete pruned it
 * meanwhile. Also answers the highest directory mkdir had to create, if any.
 */
async function createInDir(
  dir: string,
  path: string,
): Promise<{ file: FileHandle; created: string | undefined }> {
  let created: string | undefined;
  for (let attempt = 1; ; attempt++) {
    created = (await mkdir(dir, { recursive: true })) ?? created;
    try {
      return { file: await open(path, "wx"), created };
    } catch (err) {
      if (errorCode(err) !== "ENOENT" || attempt === CREATE_ATTEMPTS) throw err;
    }
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function putError(err: unknown, key: string): SluiceError {
  const code = errorCode(err);
  if (PATH_CLASH.has(code)) {
    return new SluiceError(
      "conflict",
      `key ${key} clashes with another key: one names a directory the other needs as a file`,
      { details: { key }, cause: err },
    );
  }
  if (code === "ENAMETOOLONG") {
    return new SluiceError("invalid_request", `key ${key} is too long for the file system`, {
      details: { key },
      cause: err,
    });
  }
  return unavailable(err, `cannot write ${key}`, { key });
}

function unavailable(err: unknown, message: string, details: Record<string, unknown>): SluiceError {
  return new SluiceError("storage_unavailable", message, { details, cause: err });
}

function errorCode(err: unknown): string {
  return err instanceof Error && "code" in err && typeof err.code === "string" ? err.code : "";
}
