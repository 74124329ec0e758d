// s3rver in a process of its own, because it must run under `node --openssl-legacy-provider`
// (its listing continuation tokens use a cipher Node 20 disables), which the test runner is not.
// Usage: node --openssl-legacy-provider s3rver-runner.js <directory> <bucket>
// Prints {"port": N} on one line once it listens; exits on SIGTERM or when stdin closes.
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import process from "node:process";

// require, not import: the patches below must run before s3rver loads its modules.
const require = createRequire(import.meta.url);
const utils = require("s3rver/lib/utils");

// Two s3rver bugs are fixed here, so that the adapter is tested against S3's behaviour rather
// than taught s3rver's: no client can undo the first, and the second only by distrusting HTTP.
// Listing: S3 lists keys in byte order. s3rver walks its directory tree in file-name order, where
// a directory `a` comes before a file `a-1` although its keys `a/...` sort after `a-1`; and as it
// pages by "keys after the last one listed", later pages then skip and repeat keys. Walking each
// directory with a subdirectory `a` sorted as `a/` gives S3's order, and with it right pages.
// Must be patched before s3rver loads, which copies `walk` out of this module.
utils.walk = function* walk(dir, recurseFilter) {
  const entries = fs.readdirSync(dir, { withFileTypes: true }).map((entry) => ({
    entry,
    order: entry.isDirectory() ? `${entry.name}/` : entry.name.replace(/\._S3rver_[^/]*$/, ""),
  }));
  entries.sort((a, b) => (a.order < b.order ? -1 : a.order > b.order ? 1 : 0));
  for (const { entry } of entries) {
    const entryPath = path.posix.join(dir, entry.name);
    if (!entry.isDirectory()) yield entryPath;
    else if (!recurseFilter || recurseFilter(entryPath)) yield* walk(entryPath, recurseFilter);
  }
};

// A range of an empty object is unsatisfiable, and S3 answers 416. s3rver answers 206 with a
// Content-Length of 1 and no body, so the client waits for a byte that never comes.
const FilesystemStore = require("s3rver/lib/stores/filesystem");
const { getObject } = FilesystemStore.prototype;
FilesystemStore.prototype.getObject = async function (...args) {
  const object = await getObject.apply(this, args);
  if (object?.range && object.size === 0 && object.content) {
    object.content.destroy();
    object.content = null;
  }
  return object;
};

const S3rver = require("s3rver");

const [directory, bucket] = process.argv.slice(2);
const server = new S3rver({
  port: 0,
  address: "127.0.0.1",
  directory,
  silent: true,
  configureBuckets: [{ name: bucket }],
});

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  const exit = () => process.exit(0);
  server.close().then(exit, exit);
}

server.run().then(
  ({ port }) => process.stdout.write(`${JSON.stringify({ port })}\n`),
  (err) => {
    process.stderr.write(`${err?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
process.once("SIGTERM", stop);
// The parent holds our stdin open: if it dies without signalling us, we must not linger.
process.stdin.on("end", stop).resume();
