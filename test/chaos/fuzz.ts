import type { OpenAPIHono } from "@hono/zod-openapi";
import fc from "fast-check";
import { pino } from "pino";
import { generateApiKey } from "../../src/auth/api-keys.js";
import { Authenticator } from "../../src/auth/authenticator.js";
import { mintToken, type JwtConfig } from "../../src/auth/jwt.js";
import { parseScopes } from "../../src/auth/scopes.js";
import { Secret } from "../../src/auth/secret.js";
import { groupConfigDefaults, logConfigDefaults } from "../../src/config.js";
import { errorCodes } from "../../src/errors.js";
import { parseGroupDoc, serializeGroupDoc } from "../../src/groups/doc.js";
import { reconcile } from "../../src/groups/reconcile.js";
import { GroupService, groupStoreOf } from "../../src/groups/service.js";
import { createApp } from "../../src/http/app.js";
import { routePermissions } from "../../src/http/permissions.js";
import { SluiceLog } from "../../src/log/log.js";
import type { CommittedOffset, GroupRecord } from "../../src/meta/group-store.js";
import { MemoryMetaStore } from "../../src/meta/memory.js";
import type { PartitionHead, TopicMeta } from "../../src/meta/meta-store.js";
import { MemoryObjectStore } from "../../src/storage/memory.js";

/**
 * Bad-input fuzzing of the HTTP API (issue #8), property-based: random paths, names, methods,
 * queries, headers, bodies, encodings and sizes. Every answer must be a 2xx, or a 4xx whose body
 * is `{"error": {code, message}}` with a code of src/errors.ts and that code's status; never a
 * 5xx, a crash or a hang; never a credential of the request echoed back; and a rejected request
 * must leave the state (topics, heads, producers, groups, offsets, keys) exactly as it was.
 *
 * Each request is built from components (method, path, query, headers, body); each component is
 * clean (valid) or noisy independently, so most requests are valid or one mistake away from
 * valid: near-valid input gets past validation and finds more than noise does.
 */

export interface FuzzOptions {
  seed: number;
  numRuns: number;
  /** Authentication on: requests carry an admin key, a narrow token, garbage or nothing. */
  auth: boolean;
  /** Breaks the app on purpose (tests of the fuzzer itself): called once the app is seeded. */
  plant?: (log: SluiceLog) => void;
  /** A request (its body read included) taking longer than this is a violation (a hang). */
  requestTimeoutMs?: number;
}

export interface FuzzStats {
  seed: number;
  auth: boolean;
  /** Requests sent and checked. */
  cases: number;
  /** Generated requests `new Request` refused (invalid method or header): not sent. */
  skipped: number;
  /** Status → count. */
  statuses: Record<number, number>;
  /** Error code → count. */
  codes: Record<string, number>;
  /** Rejected requests whose only write was a group's reconciliation (allowed; see render). */
  housekeeping: number;
  /** Route template (or `junk`) → status class (`2xx`, `4xx`…) → count. */
  byRoute: Record<string, Record<string, number>>;
  elapsedMs: number;
  runsPerSecond: number;
}

/** A generated request; `credential` names the kind of credential without revealing it. */
export interface FuzzRequest {
  route: string;
  method: string;
  path: string;
  /** `""` or `?…`, exactly as sent. */
  query: string;
  headers: [string, string][];
  body: Uint8Array | undefined;
  credential: "admin" | "narrow" | "garbage" | "none" | "off";
  /** The components that were generated noisy. */
  noisy: string[];
}

export interface ObservedResponse {
  status: number;
  headers: Headers;
  body: string;
}

export const MAX_REQUEST_BYTES = 64 * 1024;
const MAX_RECORDS_PER_REQUEST = 100;
const SEED_TOPIC = "orders";
const TINY_TOPIC = "tiny";
const SEED_GROUP = "billing";
const MEMBER_POOL = ["m-1", "m-2", "fuzz-member"];
const PRODUCER_POOL = ["p-1", "p-2"];
const JWT_SECRET = "fuzz-secret-0123456789abcdef-0123456789abcdef";
/** How likely each component of a request is to be noisy (a wrong method is mostly a 404). */
const NOISE = { method: 0.1, path: 0.3, query: 0.3, headers: 0.3, body: 0.3 };

const knownCodes = new Set(Object.keys(errorCodes));

/**
 * The per-response property: the problems with one answer, none when it is acceptable.
 * `secrets` are the credentials the request carried; none may appear in the answer.
 */
export function checkResponse(
  method: string,
  res: ObservedResponse,
  secrets: readonly string[] = [],
): string[] {
  const problems: string[] = [];
  if (!Number.isInteger(res.status) || res.status < 200 || res.status >= 600) {
    problems.push(`status ${res.status} is not an HTTP answer status`);
  }
  if (res.status >= 500) problems.push(`status ${res.status}: a 5xx for a client's input`);
  const contentType = res.headers.get("content-type") ?? "";
  const json = /^application\/json/i.test(contentType);
  // HEAD answers carry no body to judge.
  if (method !== "HEAD" && res.status >= 400) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(res.body);
    } catch {
      problems.push(`error body is not JSON: ${JSON.stringify(res.body.slice(0, 200))}`);
    }
    if (parsed !== undefined) {
      const error: unknown =
        typeof parsed === "object" && parsed !== null && "error" in parsed
          ? parsed.error
          : undefined;
      if (typeof error !== "object" || error === null) {
        problems.push("error body has no `error` object");
      } else {
        const { code, message } = error as { code?: unknown; message?: unknown };
        if (typeof message !== "string") problems.push("error.message is not a string");
        if (typeof code !== "string" || !knownCodes.has(code)) {
          problems.push(`error.code ${JSON.stringify(code)} is not one of errorCodes`);
        } else {
          const expected = errorCodes[code as keyof typeof errorCodes].status;
          if (expected !== res.status) {
            problems.push(`error.code ${code} is ${expected}, but the status is ${res.status}`);
          }
        }
      }
    }
    if (!json) problems.push(`error content-type is ${JSON.stringify(contentType)}`);
  }
  if (method !== "HEAD" && res.status >= 200 && res.status < 300 && json) {
    try {
      JSON.parse(res.body);
    } catch {
      problems.push(`a ${res.status} JSON answer does not parse: ${res.body.slice(0, 200)}`);
    }
  }
  for (const secret of secrets) {
    if (secret.length < 12) continue;
    if (res.body.includes(secret)) problems.push("the answer's body echoes a credential");
    res.headers.forEach((value, name) => {
      if (value.includes(secret)) problems.push(`the answer's ${name} header echoes a credential`);
    });
  }
  return problems;
}

/** A compact, reproducible description of a request (credentials by kind only). */
export function describeRequest(r: FuzzRequest, maxBody = 400): string {
  const headers = r.headers
    .map(([k, v]) => `  ${k}: ${k === "authorization" ? `<${r.credential}>` : clip(v, 120)}`)
    .join("\n");
  let body = "(none)";
  if (r.body !== undefined) {
    const text = new TextDecoder().decode(r.body);
    const valid = Buffer.from(text, "utf8").equals(Buffer.from(r.body));
    body = `${r.body.length} bytes${valid ? "" : " (not valid UTF-8)"}: ${JSON.stringify(clip(text, maxBody))}`;
  }
  const noisy = r.noisy.length ? r.noisy.join(",") : "none";
  return (
    `${r.method} ${clip(r.path, 300)}${clip(r.query, 300)}` +
    `  [route ${r.route}; credential ${r.credential}; noisy ${noisy}]\n` +
    `${headers}${headers ? "\n" : ""}  body ${body}`
  );
}

function clip(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n)}…(${s.length} chars)`;
}

/* The app under test. */

interface Credentials {
  admin: string;
  narrow: string;
  /** An admin token signed with another secret, and the admin key with one character changed. */
  forged: [string, string];
}

interface Fixture {
  app: OpenAPIHono;
  log: SluiceLog;
  meta: MemoryMetaStore;
  groups: GroupService;
  credentials: Credentials | undefined;
  /** A key the fuzzer may revoke (its id is among the keyIds it tries). */
  victimKeyId: string;
}

async function buildFixture(auth: boolean): Promise<Fixture> {
  const silent = pino({ level: "silent" });
  const meta = new MemoryMetaStore();
  const now = () => Date.now();
  const log = new SluiceLog({
    store: new MemoryObjectStore(),
    meta,
    // Waits are tiny so that long polls and event streams end fast.
    config: { ...logConfigDefaults, lingerMs: 1, maxWaitMs: 20, pollIntervalMs: 5 },
    logger: silent,
  });
  const groups = new GroupService({ log, meta: groupStoreOf(meta), logger: silent });
  const jwt: JwtConfig = {
    secret: new Secret(JWT_SECRET),
    jwksUrl: undefined,
    issuer: "sluice",
    audience: "sluice",
    maxTtlS: 3600,
  };
  const app = createApp({
    log,
    logger: silent,
    groups,
    maxRequestBytes: MAX_REQUEST_BYTES,
    maxRecordsPerRequest: MAX_RECORDS_PER_REQUEST,
    sse: { maxStreamMs: 30, heartbeatMs: 10, retryMs: 10 },
    ...(auth
      ? {
          auth: {
            authenticator: new Authenticator({ keys: meta, jwt, keyCacheMs: 10_000, now }),
            keys: meta,
            jwt,
            rateLimit: null,
            maxStreams: 4,
            now,
          },
        }
      : {}),
  });

  const newKey = async (scopes: string[]) => {
    const { record, key } = generateApiKey(
      { scopes, description: "fuzz", expiresAt: null, rateLimit: null },
      Date.now(),
    );
    await meta.putKey(record);
    return { id: record.id, key: key.reveal() };
  };
  const victim = await newKey([`consume:topic:${SEED_TOPIC}`]);
  let credentials: Credentials | undefined;
  if (auth) {
    const admin = await newKey(["admin"]);
    const token = async (scopes: string[], secret: string) =>
      (
        await mintToken(
          jwt,
          new Secret(secret),
          { subject: "fuzzer", scopes: parseScopes(scopes), ttlS: 3600 },
          Date.now(),
        )
      ).token;
    const narrow = await token(
      [
        `produce:topic:${SEED_TOPIC}`,
        `consume:topic:${SEED_TOPIC}`,
        `consume:topic:${TINY_TOPIC}`,
        `consume:group:${SEED_GROUP}`,
      ],
      JWT_SECRET,
    );
    const forged = await token(["admin"], "another-secret-0123456789abcdef-0123456789ab");
    const last = admin.key.at(-1) === "A" ? "B" : "A";
    credentials = {
      admin: admin.key,
      narrow,
      forged: [forged, `${admin.key.slice(0, -1)}${last}`],
    };
  }
  const fixture = { app, log, meta, groups, credentials, victimKeyId: victim.id };
  await ensureSeed(fixture);
  return fixture;
}

/** The seeded topics and group; put back when a successful request removed them. */
async function ensureSeed(f: Fixture): Promise<void> {
  const { log, meta, groups } = f;
  if (!(await meta.getTopic(SEED_TOPIC))) {
    await log.topics.create(SEED_TOPIC, 2);
    await log.produce(
      SEED_TOPIC,
      Array.from({ length: 10 }, (_, i) => ({
        key: new TextEncoder().encode(`k${i}`),
        keyEncoding: "utf8" as const,
        value: new TextEncoder().encode(JSON.stringify({ n: i })),
        valueEncoding: "json" as const,
        headers: { seed: "yes" },
        partition: i % 2,
      })),
    );
  }
  if (!(await meta.getTopic(TINY_TOPIC))) {
    await log.topics.create(TINY_TOPIC, 1, { "max.message.bytes": 512 });
  }
  if (!(await meta.getGroup(SEED_GROUP))) {
    await groups.commit(SEED_GROUP, { offsets: [{ topic: SEED_TOPIC, partition: 0, offset: 3 }] });
  }
  // Keep snapshots cheap: topics the fuzzer created go once there are many, or a big one.
  const topics = (await meta.listTopics()).filter(
    (t) => t.name !== SEED_TOPIC && t.name !== TINY_TOPIC,
  );
  for (const t of topics) {
    if (topics.length > 10 || t.partitions > 8) await log.topics.delete(t.name);
  }
}

/** Everything a rejected request must leave alone, read from the stores (not over HTTP). */
interface State {
  topics: (TopicMeta & { heads: PartitionHead[]; producers: Record<string, unknown>[] })[];
  groups: { record: GroupRecord | undefined; offsets: CommittedOffset[] }[];
  keys: { id: string; scopes: string[]; revokedAt: number | null; expiresAt: number | null }[];
}

async function snapshot(f: Fixture): Promise<State> {
  const { meta } = f;
  const topics: State["topics"] = [];
  for (const t of (await meta.listTopics()).sort((a, b) => a.name.localeCompare(b.name))) {
    const heads = [];
    for (let p = 0; p < t.partitions; p++) heads.push(await meta.getHead(t.id, p));
    const producers = [];
    for (let p = 0; p < Math.min(t.partitions, 4); p++) {
      producers.push(Object.fromEntries(await meta.getProducers(t.id, p, PRODUCER_POOL)));
    }
    topics.push({ ...t, heads, producers });
  }
  const groups: State["groups"] = [];
  for (const g of (await meta.listGroups()).sort((a, b) => a.name.localeCompare(b.name))) {
    const record = await meta.getGroup(g.name);
    const offsets = record
      ? (await meta.getOffsets(g.name, record.incarnation)).sort(
          (a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition,
        )
      : [];
    groups.push({ record, offsets });
  }
  const keys = (await meta.listKeys()).map((k) => ({
    id: k.id,
    scopes: k.scopes,
    revokedAt: k.revokedAt,
    expiresAt: k.expiresAt,
  }));
  return { topics, groups, keys };
}

/**
 * The state as text; with `reconcileAt`, each group's document as reconciling would leave it
 * at that time, and without the version and fence such a write moves.
 *
 * Every group request first reconciles the stored document (leases that lapsed, topics deleted
 * or re-created: docs/rfcs/0002-consumer-groups.md §4), and some write that before they look
 * at the request (src/groups/state.ts, readDurable). Such a write is housekeeping any request
 * would have done, not the rejected request's doing, so it is allowed when comparing states.
 */
function render(state: State, reconcileAt?: number): string {
  if (reconcileAt === undefined) return JSON.stringify(state);
  const known = new Map(state.topics.map((t) => [t.name, { id: t.id, partitions: t.partitions }]));
  const groups = state.groups.map(({ record, offsets }) => {
    if (!record) return { record, offsets };
    const { version: _v, fence: _f, doc, ...rest } = record;
    const reconciled = reconcile(
      parseGroupDoc(doc),
      reconcileAt,
      known,
      groupConfigDefaults.clockSkewMs,
    );
    return { record: { ...rest, doc: serializeGroupDoc(reconciled.doc) }, offsets };
  });
  return JSON.stringify({ ...state, groups });
}

function firstDifference(a: string, b: string): string {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const from = Math.max(0, i - 150);
  return `before: …${a.slice(from, i + 150)}…\n  after:  …${b.slice(from, i + 150)}…`;
}

/* Bodies as JSON text. */

/** Raw JSON text spliced into a body as is (numbers JSON.stringify cannot write, deep nesting). */
class Raw {
  constructor(readonly text: string) {}
  toString(): string {
    return clip(this.text, 60);
  }
}

const ABSENT: unique symbol = Symbol("absent");
type Maybe<T> = T | typeof ABSENT;

function toJson(value: unknown): string {
  if (value instanceof Raw) return value.text;
  if (Array.isArray(value)) return `[${value.map(toJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const parts = Object.keys(value).map(
      (k) => `${JSON.stringify(k)}:${toJson((value as Record<string, unknown>)[k])}`,
    );
    return `{${parts.join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** An object of the present fields; `__proto__` and friends become own properties. */
function build(fields: Record<string, unknown>, extra: [string, unknown][] = []) {
  const out: Record<string, unknown> = {};
  const put = (k: string, v: unknown) =>
    Object.defineProperty(out, k, {
      value: v,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  for (const [k, v] of Object.entries(fields)) if (v !== ABSENT) put(k, v);
  for (const [k, v] of extra) put(k, v);
  return out;
}

type Mutation =
  | { kind: "none" }
  | { kind: "truncate"; at: number }
  | { kind: "replace"; text: string }
  | { kind: "wrap"; how: "bom" | "trailing" | "utf16" }
  | { kind: "bytes"; at: number; bytes: number[] }
  | { kind: "oversize"; over: number }
  | { kind: "random"; bytes: Uint8Array };

const utf8 = new TextEncoder();

function applyMutation(text: string, m: Mutation): Uint8Array {
  switch (m.kind) {
    case "none":
      return utf8.encode(text);
    case "truncate":
      return utf8.encode(text.slice(0, Math.floor(text.length * m.at)));
    case "replace":
      return utf8.encode(m.text);
    case "wrap":
      if (m.how === "bom") return utf8.encode(`\ufeff${text}`);
      if (m.how === "trailing") return utf8.encode(`${text} garbage`);
      return new Uint8Array(Buffer.from(text, "utf16le"));
    case "bytes": {
      // Just after a quote where there is one (inside a key or a string value), so that only
      // the encoding is wrong, not the JSON.
      const bytes = utf8.encode(text);
      const quotes: number[] = [];
      bytes.forEach((b, i) => b === 0x22 && quotes.push(i + 1));
      const at = quotes.length
        ? quotes[Math.floor(quotes.length * m.at) % quotes.length]!
        : Math.floor(bytes.length * m.at);
      return new Uint8Array([...bytes.subarray(0, at), ...m.bytes, ...bytes.subarray(at)]);
    }
    case "oversize": {
      // Valid JSON padded with whitespace to the limit (0: exactly at it, allowed) or past it.
      const bytes = utf8.encode(text);
      const pad = Math.max(0, MAX_REQUEST_BYTES - bytes.length + m.over);
      return utf8.encode(text + " ".repeat(pad));
    }
    case "random":
      return m.bytes;
  }
}

function safeEncode(s: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    return s; // lone surrogates: sent raw, the URL parser encodes them its own way
  }
}

/* Request generators. */

/*
 * Strings from arrays of characters: fast-check's unicode string units build a reverse map of
 * every code point when created, which costs seconds per arbitrary.
 */
const charOf = (min: number, max: number) =>
  fc.integer({ min, max }).map((c) => String.fromCodePoint(c));
const textOf = (chars: fc.Arbitrary<string>, maxLength: number) =>
  fc.array(chars, { maxLength }).map((a) => a.join(""));
/** Printable ASCII. */
const ascii = (maxLength: number) => textOf(charOf(0x20, 0x7e), maxLength);
/** Any code point, lone surrogates included, ASCII more often. */
const unicode = (maxLength: number) =>
  textOf(fc.oneof(charOf(0x20, 0x7e), charOf(0, 0x10ffff)), maxLength);
/** Printable Latin-1, what a header value may hold. */
const latin1 = (maxLength: number) =>
  textOf(fc.oneof(charOf(0x20, 0x7e), charOf(0xa0, 0xff)), maxLength);

type Pair = [string, string];
type Weighted<T> = { weight: number; arbitrary: fc.Arbitrary<T> };

const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype);

/**
 * Every arbitrary of one flavour: clean ones make valid values (of every kind the API accepts,
 * edge cases included), noisy ones mix in wrong types, out-of-range numbers, junk names, extra
 * keys and broken encodings.
 */
function generators(noisy: boolean, victimKeyId: string) {
  const w = <T>(weight: number, arbitrary: fc.Arbitrary<T>): Weighted<T> => ({ weight, arbitrary });
  /** Weight of a noisy alternative: 0 (left out) when clean. */
  const n = (weight: number) => (noisy ? weight : 0);
  const one = <T>(...alternatives: Weighted<T>[]): fc.Arbitrary<T> =>
    fc.oneof(...alternatives.filter((a) => a.weight > 0));
  /** The field present or left out. */
  const opt = <T>(arb: fc.Arbitrary<T>, present = 3, absent = 1): fc.Arbitrary<Maybe<T>> =>
    one<Maybe<T>>(w(absent, fc.constant(ABSENT)), w(present, arb));

  const rawNumber = fc
    .constantFrom(
      "1e309",
      "-1e309",
      "1.0",
      "-0",
      "1E2",
      "0.5e1",
      "12345678901234567890",
      "1e-400",
      "9007199254740993",
      "-9007199254740993",
    )
    .map((t) => new Raw(t));
  const junk: fc.Arbitrary<unknown> = fc.oneof(
    w(4, fc.constantFrom(null, true, false, 0, -1, 1.5, "", "x", "0", "1", [], {}, [1], { a: 1 })),
    w(1, rawNumber),
    w(2, fc.jsonValue({ maxDepth: 2 })),
    w(1, unicode(8)),
  );
  /** The valid generator, or (noisy) sometimes a value of the wrong type or range. */
  const field = <T>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> =>
    one<unknown>(w(6, valid), w(n(1), junk));
  /** Keys no schema has (noisy only). */
  const extraKeys: fc.Arbitrary<[string, unknown][]> = one(
    w(8, fc.constant([])),
    w(
      n(1),
      fc.array(
        fc.tuple(
          fc.oneof(
            fc.constantFrom(
              "__proto__",
              "constructor",
              "prototype",
              "toString",
              "",
              "Records",
              "x",
            ),
            ascii(6),
          ),
          junk,
        ),
        { minLength: 1, maxLength: 2 },
      ),
    ),
  );
  const object = <T extends Record<string, fc.Arbitrary<unknown>>>(fields: T) =>
    fc
      .tuple(fc.record(fields), extraKeys)
      .map(([values, extra]) => build(values as Record<string, unknown>, extra));

  const nameJunk = fc.oneof(
    w(
      4,
      fc.constantFrom(
        "",
        ".",
        "..",
        "%2E%2E",
        "%2e",
        "a%2Fb",
        "%2F",
        "%00",
        "orders%00",
        "orders%2F..",
        "%",
        "%zz",
        "%E0%A4%A",
        "%C3%28",
        "%FF",
        "%F0%9F%98%80",
        "ördérs",
        "😀",
        "orders ",
        " orders",
        "ORDERS",
        "orders.",
        "-",
        "_",
        "a".repeat(249),
        "a".repeat(250),
        "b".repeat(5_000),
        "c".repeat(100_000),
        "orders;x",
        "orders\\x",
        "1e309",
        "-1",
        "\ud800",
        ...PROTOTYPE_NAMES,
      ),
    ),
    w(3, fc.stringMatching(/^[a-zA-Z0-9._-]{1,30}$/)),
    w(1, unicode(20)),
  );
  /** Valid names the fuzzer may create topics and groups under, prototype names among them. */
  const freshName = fc.oneof(
    w(3, fc.stringMatching(/^fz-[a-z0-9]{1,6}$/)),
    w(1, fc.constantFrom("a".repeat(249), "__proto__", "constructor", "toString", "_", "-.")),
  );

  const topicName = one(
    w(10, fc.constant(SEED_TOPIC)),
    w(2, fc.constant(TINY_TOPIC)),
    w(1, fc.constant("missing-topic")),
    w(1, freshName),
    w(n(6), nameJunk),
  );
  const groupName = one(
    w(10, fc.constant(SEED_GROUP)),
    w(1, fc.constant("missing-group")),
    w(1, freshName),
    w(n(6), nameJunk),
  );
  const partitionParam = one(
    w(8, fc.constantFrom("0", "1")),
    w(
      n(4),
      fc.constantFrom(
        "2",
        "1023",
        "1024",
        "-1",
        "1.5",
        "1e309",
        "1e3",
        "9007199254740993",
        "99999999999999999",
        "00",
        "01",
        "0x1",
        " 1",
        "",
        "NaN",
        "Infinity",
        "-0",
        "+1",
        "0.0",
        "%30",
        "١",
      ),
    ),
    w(n(1), fc.nat().map(String)),
    w(n(1), fc.integer().map(String)),
    w(n(1), nameJunk),
  );
  const memberId = one(
    w(10, fc.constantFrom(...MEMBER_POOL)),
    w(1, fc.stringMatching(/^[a-zA-Z0-9._-]{1,20}$/)),
    w(1, fc.constantFrom("a".repeat(128), "_", "...")),
    w(n(2), fc.constantFrom("a".repeat(129), "..", ".", "m 1", "m%2F1", "")),
    w(n(2), nameJunk),
  );
  const keyId = one(
    w(3, fc.constant(victimKeyId)),
    w(3, fc.stringMatching(/^[0-9A-HJKMNP-TV-Z]{26}$/)),
    w(
      n(2),
      fc.constantFrom(
        victimKeyId.toLowerCase(),
        victimKeyId.slice(1),
        `${victimKeyId}0`,
        "I".repeat(26),
      ),
    ),
    w(n(2), nameJunk),
  );

  /** Printable header text (Latin-1 without controls). */
  const headerText = (maxLength = 40) => latin1(maxLength);
  /** A decimal in a query or a header: one of the valid ones, or (noisy) junk. */
  const decimal = (valid: string[]) =>
    one(
      w(6, fc.constantFrom(...valid)),
      w(
        n(3),
        fc.constantFrom(
          "-1",
          "1.5",
          "1e309",
          "1e2",
          "abc",
          "",
          "99999999999999999",
          "9007199254740992",
          "9007199254740993",
          "0x10",
          " 1",
          "1 ",
          "+1",
          "١",
          "NaN",
          "Infinity",
          "100001",
          "67108865",
          "0".repeat(20),
          "%00",
        ),
      ),
      w(n(1), fc.nat().map(String)),
      w(n(1), headerText(12)),
    );

  /** Query pairs: each key present or not; noisy: sometimes twice, junk keys, raw encoding. */
  const query = (specs: [string, fc.Arbitrary<string>, number?][]): fc.Arbitrary<string> =>
    fc
      .tuple(
        fc.tuple(
          fc.constant(null),
          ...specs.map(([k, arb, present = 2]) => opt(arb, present, 1).map((v) => [k, v] as const)),
        ),
        one(
          w(8, fc.constant([] as Pair[])),
          w(n(1), fc.array(fc.tuple(headerText(8), headerText(8)), { maxLength: 2 })),
        ),
        one(w(8, fc.constant(false)), w(n(1), fc.constant(true))),
        one(w(9, fc.constant(false)), w(n(1), fc.constant(true))),
        one(
          w(12, fc.constant("")),
          w(n(1), fc.constantFrom("?", "&&=&", "%zz=1", "offset", "#frag")),
        ),
      )
      .map(([[, ...pairs], junkPairs, duplicate, raw, tail]) => {
        const present = pairs.filter((p): p is readonly [string, string] => p[1] !== ABSENT);
        const all: (readonly [string, string])[] = [...present, ...junkPairs];
        if (duplicate && present.length) all.push(present[0]!);
        const enc = (s: string) => (raw ? s : safeEncode(s));
        const text = all.map(([k, v]) => `${enc(k)}=${enc(v)}`).join("&");
        if (tail.startsWith("#")) return `${text ? `?${text}` : ""}${tail}`;
        if (tail) return `?${text}${text ? "&" : ""}${tail}`;
        return text ? `?${text}` : "";
      });

  /* Bodies. */

  const base64 = one(
    w(
      5,
      fc.uint8Array({ maxLength: 16 }).map((b) => Buffer.from(b).toString("base64")),
    ),
    w(
      n(3),
      fc.constantFrom(
        "!!!",
        "abc",
        "YQ",
        "YQ===",
        " YQ==",
        "YQ==\n",
        "-_-_",
        "====",
        "YQ=a",
        "Y Q==",
      ),
    ),
  );
  const deepNesting = fc
    .tuple(fc.constantFrom(10, 100, 1_000, 3_000, 6_000, 12_000, 30_000), fc.boolean())
    .map(([depth, arrays]) =>
      arrays
        ? new Raw("[".repeat(depth) + "]".repeat(depth))
        : new Raw('{"a":'.repeat(depth) + "1" + "}".repeat(depth)),
    );
  /** Any JSON value is a valid record value: these are all clean. */
  const recordValue: fc.Arbitrary<unknown> = fc.oneof(
    w(8, fc.jsonValue({ maxDepth: 3 })),
    w(
      2,
      fc.constantFrom(
        null,
        "",
        "\ud800",
        "\u0000",
        "\u2028",
        0,
        -0,
        Number.MAX_SAFE_INTEGER,
        build({}, [["__proto__", { a: 1 }]]),
      ),
    ),
    w(1, rawNumber),
    w(1, deepNesting),
    w(
      1,
      fc.constantFrom(100, 600, 5_000, 70_000).map((size) => "v".repeat(size)),
    ),
    w(1, unicode(30)),
  );
  const produceRecord = fc
    .tuple(
      fc.oneof(fc.constant("utf8"), fc.constant("binary")),
      fc.oneof(w(6, fc.constant("json")), w(1, fc.constant("binary"))),
      object({
        key: opt(field(fc.oneof(fc.constantFrom("k1", "k2", ""), unicode(10))), 1, 2),
        keyBase64: opt(field(base64), 1, 2),
        value: opt(recordValue, 10, n(1)),
        valueBase64: opt(field(base64), 1, 1),
        headers: opt(
          field(
            fc.dictionary(unicode(8), unicode(8), {
              maxKeys: 3,
            }),
          ),
          1,
          3,
        ),
        partition: opt(
          one(
            w(6, fc.constantFrom(0, 1)),
            w(n(2), fc.constantFrom(2, -1, 1023, 1024, 1.5)),
            w(n(1), junk),
          ),
          1,
          2,
        ),
        timestamp: opt(
          one(
            w(
              6,
              fc.oneof(
                fc.constant(1_700_000_000_000),
                fc.constantFrom(0, Number.MAX_SAFE_INTEGER),
                fc.nat(),
              ),
            ),
            w(n(2), fc.constantFrom(-1, 1.5, 2 ** 53)),
            w(n(1), junk),
          ),
          1,
          3,
        ),
      }),
    )
    .map(([keyKind, valueKind, record]) => {
      // Clean records carry exactly one value field and at most one key field.
      if (!noisy) {
        if (keyKind === "utf8") delete record.keyBase64;
        else delete record.key;
        if (valueKind === "json") delete record.valueBase64;
        else delete record.value;
        if (!("value" in record) && !("valueBase64" in record)) record.value = null;
      }
      return record;
    });
  const produceRecords: fc.Arbitrary<unknown> = one(
    w(12, fc.array(produceRecord, { minLength: 1, maxLength: 4 })),
    w(
      1,
      fc
        .constantFrom(
          MAX_RECORDS_PER_REQUEST,
          ...(noisy ? [MAX_RECORDS_PER_REQUEST + 1, 5_000, 10_001] : []),
        )
        .map((count) => Array.from({ length: count }, (_, i) => ({ value: i }))),
    ),
    w(n(1), fc.constant([])),
    w(n(1), junk),
  );
  const produceBody = object({ records: opt(produceRecords, 12, n(1)) });

  const topicConfig = object({
    "retention.ms": opt(
      one(
        w(3, fc.constantFrom(-1, 1, 60_000)),
        w(n(2), fc.constantFrom(0, -2, 1.5)),
        w(n(1), junk),
      ),
      1,
      2,
    ),
    "retention.bytes": opt(
      one(w(3, fc.constantFrom(-1, 0, 1024)), w(n(2), fc.constantFrom(-2, 0.5)), w(n(1), junk)),
      1,
      2,
    ),
    "segment.bytes": opt(
      one(
        w(3, fc.constantFrom(1024, 5 * 1024 ** 3)),
        w(n(2), fc.constantFrom(1023, 5 * 1024 ** 3 + 1)),
        w(n(1), junk),
      ),
      1,
      2,
    ),
    "segment.ms": opt(
      one(w(3, fc.constantFrom(1, 3_600_000)), w(n(2), fc.constantFrom(0, -1)), w(n(1), junk)),
      1,
      2,
    ),
    "max.message.bytes": opt(
      one(
        w(3, fc.constantFrom(1, 512, 16 * 1024 ** 2)),
        w(n(2), fc.constantFrom(0, 16 * 1024 ** 2 + 1)),
        w(n(1), junk),
      ),
      1,
      2,
    ),
    // Kafka's other names are not Sluice's: unknown keys.
    ...(noisy ? { "cleanup.policy": opt(fc.constantFrom("delete", "compact"), 1, 6) } : {}),
  });
  const createTopicBody = object({
    name: opt(field(one(w(3, freshName), w(1, topicName))), 8, n(1)),
    partitions: opt(
      one<unknown>(
        w(6, fc.constantFrom(1, 2, 3)),
        w(1, fc.constant(1024)),
        w(n(3), fc.constantFrom(0, 1025, -1, 1.5, "2", null)),
        w(n(1), rawNumber),
      ),
      3,
      1,
    ),
    config: opt(field(topicConfig), 1, 1),
  });

  const topicList = one(
    w(6, fc.array(topicName, { minLength: 1, maxLength: 3 })),
    w(1, fc.constant(Array.from({ length: 100 }, (_, i) => (i % 2 ? SEED_TOPIC : TINY_TOPIC)))),
    w(
      n(1),
      fc.constantFrom(
        [],
        Array.from({ length: 101 }, () => SEED_TOPIC),
      ),
    ),
    w(n(1), junk),
  );
  const topicPartition = object({
    topic: field(topicName),
    partition: one(
      w(6, fc.constantFrom(0, 1)),
      w(n(2), fc.constantFrom(2, -1, 1024)),
      w(n(1), junk),
    ),
  });
  const joinBody = object({
    topics: opt(topicList, 10, n(1)),
    memberId: opt(field(memberId), 3, 1),
    clientId: opt(
      field(fc.oneof(ascii(10), fc.constant(null), fc.constant("c".repeat(255)))),
      1,
      3,
    ),
    sessionTimeoutMs: opt(
      one(
        w(3, fc.constantFrom(6_000, 30_000, 300_000)),
        w(n(2), fc.constantFrom(5_999, 300_001, 0)),
        w(n(1), junk),
      ),
      1,
      2,
    ),
    resetPolicy: opt(field(fc.constantFrom("earliest", "latest")), 1, 2),
  });
  const heartbeatBody = object({
    released: opt(field(fc.array(topicPartition, { maxLength: 3 })), 1, 2),
    topics: opt(topicList, 1, 2),
  });
  const groupFetchBody = object({
    maxRecords: opt(
      one(
        w(3, fc.constantFrom(1, 5, 100_000)),
        w(n(2), fc.constantFrom(0, 100_001)),
        w(n(1), junk),
      ),
      1,
      2,
    ),
    maxBytes: opt(
      one(
        w(3, fc.constantFrom(1, 1024, 64 * 1024 * 1024)),
        w(n(2), fc.constantFrom(0, 64 * 1024 * 1024 + 1)),
        w(n(1), junk),
      ),
      1,
      2,
    ),
    waitMs: opt(
      one(w(3, fc.constantFrom(0, 5, 20, 1e9)), w(n(2), fc.constant(-1)), w(n(1), junk)),
      1,
      2,
    ),
    autoCommit: opt(field(fc.boolean()), 1, 2),
  });
  const offsetCommit = object({
    topic: field(topicName),
    partition: one(w(6, fc.constantFrom(0, 1)), w(n(2), fc.constantFrom(2, -1)), w(n(1), junk)),
    offset: one(
      w(6, fc.constantFrom(0, 1, 3, 5, 6, 10, 11, 1_000)),
      w(n(2), fc.constantFrom(-1, 2 ** 53, 0.5)),
      w(n(1), junk),
    ),
    metadata: opt(
      field(
        fc.oneof(
          ascii(10),
          fc.constant(null),
          fc.constant("m".repeat(4096)),
          fc.constant("m".repeat(5_000)),
        ),
      ),
      1,
      3,
    ),
  });
  // Clean commits name each partition once, and a member with its generation or neither.
  const offsetCommits = noisy
    ? fc.array(offsetCommit, { minLength: 1, maxLength: 3 })
    : fc.uniqueArray(offsetCommit, {
        minLength: 1,
        maxLength: 3,
        selector: (o) => `${String(o.topic)}/${String(o.partition)}`,
      });
  const commitBody = object({
    offsets: opt(
      one(
        w(8, offsetCommits),
        w(
          n(1),
          fc.constantFrom(
            [],
            Array.from({ length: 501 }, () => ({ topic: SEED_TOPIC, partition: 0, offset: 1 })),
          ),
        ),
        w(n(1), junk),
      ),
      10,
      n(1),
    ),
    memberId: opt(field(memberId), 1, 3),
    generation: opt(
      one(w(3, fc.constantFrom(0, 1, 2, 3)), w(n(1), fc.constant(-1)), w(n(1), junk)),
      1,
      3,
    ),
    rewind: opt(field(fc.boolean()), 1, 3),
  }).map((body) => {
    if (!noisy && "memberId" in body !== "generation" in body) {
      delete body.memberId;
      delete body.generation;
    }
    return body;
  });
  const resetBody = object({
    to: opt(
      one(
        w(6, fc.constantFrom("earliest", "latest", "timestamp", "offset")),
        w(n(1), fc.constantFrom("middle", "EARLIEST")),
        w(n(1), junk),
      ),
      10,
      n(1),
    ),
    timestamp: opt(
      one(
        w(3, fc.constantFrom(0, 1_700_000_000_000, Number.MAX_SAFE_INTEGER)),
        w(n(1), fc.constantFrom(-1, 2 ** 53)),
        w(n(1), junk),
      ),
      1,
      2,
    ),
    offset: opt(
      one(w(3, fc.constantFrom(0, 1, 5, 100)), w(n(1), fc.constant(-1)), w(n(1), junk)),
      1,
      2,
    ),
    topic: opt(field(topicName), 1, 2),
    partitions: opt(
      one(
        w(3, fc.array(fc.constantFrom(0, 1), { minLength: 1, maxLength: 2 })),
        w(n(1), fc.array(fc.constantFrom(2, -1, 1024), { maxLength: 3 })),
        w(n(1), junk),
      ),
      1,
      2,
    ),
    dryRun: opt(field(fc.boolean()), 1, 2),
  });
  const scopeList = one(
    w(
      6,
      fc.array(
        one(
          w(
            3,
            fc.constantFrom(
              "admin",
              "produce:topic:orders",
              "consume:topic:*",
              "consume:group:billing",
              "produce:topic:fz-*",
            ),
          ),
          w(
            n(2),
            fc.constantFrom(
              "root",
              "produce:group:x",
              "consume:topic:..",
              "consume:topic:",
              "produce:topic:a*b",
              "x".repeat(301),
            ),
          ),
          w(n(1), ascii(20)),
        ),
        { minLength: 1, maxLength: 3 },
      ),
    ),
    w(
      n(1),
      fc.constantFrom(
        [],
        Array.from({ length: 65 }, () => "admin"),
      ),
    ),
    w(n(1), junk),
  );
  const rateLimit = object({
    perSecond: opt(
      one(
        w(3, fc.constantFrom(1, 0.5, 1_000_000)),
        w(n(2), fc.constantFrom(0, -1, 1_000_001)),
        w(n(1), junk),
      ),
      6,
      n(1),
    ),
    burst: opt(
      one(
        w(3, fc.constantFrom(1, 1_000_000)),
        w(n(2), fc.constantFrom(0, 1.5, 1_000_001)),
        w(n(1), junk),
      ),
      6,
      n(1),
    ),
  });
  const createKeyBody = object({
    scopes: opt(scopeList, 10, n(1)),
    description: opt(field(fc.oneof(ascii(10), fc.constant("d".repeat(256)))), 1, 2),
    expiresInSeconds: opt(
      one(
        w(3, fc.constantFrom(60, 86_400)),
        w(n(2), fc.constantFrom(59, 10 * 365 * 86_400 + 1)),
        w(n(1), junk),
      ),
      1,
      2,
    ),
    rateLimit: opt(field(rateLimit), 1, 2),
  });
  const mintTokenBody = object({
    scopes: opt(scopeList, 10, n(1)),
    subject: opt(
      one(
        w(3, fc.constantFrom("svc", "~!", "s".repeat(256))),
        w(n(2), fc.constantFrom("", "a b", "é", "s".repeat(257))),
        w(n(1), junk),
      ),
      1,
      2,
    ),
    ttlSeconds: opt(
      one(
        w(3, fc.constantFrom(1, 60, 3_600)),
        w(n(2), fc.constantFrom(3_601, 0, 1e9)),
        w(n(1), junk),
      ),
      1,
      2,
    ),
  });

  /** What happens to a body's text on its way out: nothing when clean. */
  const mutation: fc.Arbitrary<Mutation> = one<Mutation>(
    w(noisy ? 6 : 1, fc.constant({ kind: "none" })),
    w(
      n(1),
      fc.double({ min: 0, max: 1, noNaN: true }).map((at) => ({ kind: "truncate", at })),
    ),
    w(
      n(1),
      fc
        .constantFrom("", "null", "[]", '"str"', "{", "}", "{}", "1", "true", "\ufeff{}", "a=b&c=d")
        .map((text) => ({ kind: "replace", text })),
    ),
    w(
      n(1),
      fc.json({ maxDepth: 3 }).map((text) => ({ kind: "replace", text })),
    ),
    w(
      n(1),
      fc.constantFrom("bom", "trailing", "utf16").map((how) => ({ kind: "wrap", how })),
    ),
    w(
      n(1),
      fc
        .tuple(
          fc.double({ min: 0, max: 1, noNaN: true }),
          fc.constantFrom(
            [0xff],
            [0xc3, 0x28],
            [0xed, 0xa0, 0x80],
            [0xc0, 0xaf],
            [0xf4, 0x90, 0x80, 0x80],
            [0x00],
            [0xe2, 0x82],
          ),
        )
        .map(([at, bytes]) => ({ kind: "bytes", at, bytes: [...bytes] })),
    ),
    w(
      n(1),
      fc.constantFrom(0, 1, 1_000).map((over) => ({ kind: "oversize", over })),
    ),
    w(
      n(1),
      fc.uint8Array({ maxLength: 64 }).map((bytes) => ({ kind: "random", bytes })),
    ),
  );
  const bodyOf = (objects: fc.Arbitrary<unknown>) =>
    fc.tuple(objects, mutation).map(([o, m]) => applyMutation(toJson(o), m));
  /** Routes that take no body get none when clean, sometimes a junk one when noisy. */
  const strayBody: fc.Arbitrary<Uint8Array | undefined> = one(
    w(6, fc.constant(undefined)),
    w(n(2), bodyOf(fc.jsonValue({ maxDepth: 2 }))),
  );
  /** Routes whose body is optional. */
  const optionalBody = (objects: fc.Arbitrary<unknown>) =>
    one<Uint8Array | undefined>(w(1, fc.constant(undefined)), w(4, bodyOf(objects)));

  /* Headers. */

  const producerHeaders: fc.Arbitrary<Pair[]> = one(
    w(6, fc.constant([] as Pair[])),
    w(
      3,
      fc
        .tuple(
          fc.constantFrom(...PRODUCER_POOL),
          fc.constantFrom("0", "1", "2147483647"),
          fc.constantFrom("0", "1", "2", "5"),
        )
        .map(([id, epoch, seq]): Pair[] => [
          ["producer-id", id],
          ["producer-epoch", epoch],
          ["producer-seq", seq],
        ]),
    ),
    w(
      n(3),
      fc
        .tuple(
          opt(
            fc.oneof(
              fc.constantFrom(...PRODUCER_POOL, "", "p 1", "p".repeat(65), "ü"),
              headerText(10),
            ),
            3,
            1,
          ),
          opt(decimal(["0", "1", "2147483647", "2147483648"]), 3, 1),
          opt(decimal(["0", "1", "2147483647", "2147483648"]), 3, 1),
        )
        .map(([id, epoch, seq]) =>
          (
            [
              ["producer-id", id],
              ["producer-epoch", epoch],
              ["producer-seq", seq],
            ] as [string, Maybe<string>][]
          ).filter((p): p is Pair => p[1] !== ABSENT),
        ),
    ),
  );
  const streamHeaders: fc.Arbitrary<Pair[]> = fc
    .tuple(
      one<Maybe<string>>(
        w(5, fc.constant(ABSENT)),
        w(3, fc.constantFrom("text/event-stream", "text/event-stream; charset=utf-8")),
        w(
          1,
          fc.constantFrom("application/json", "*/*", "text/event-stream;q=0.5, application/json"),
        ),
        w(n(1), fc.constantFrom("TEXT/EVENT-STREAM", "text/event-streamx", "text/event-stream,")),
        w(n(1), headerText(20)),
      ),
      one<Maybe<string>>(w(6, fc.constant(ABSENT)), w(1, decimal(["0", "3", "5", "11", ""]))),
    )
    .map(([accept, lastEventId]) => {
      const out: Pair[] = [];
      if (accept !== ABSENT) out.push(["accept", accept]);
      if (lastEventId !== ABSENT) out.push(["last-event-id", lastEventId]);
      return out;
    });
  const contentType = one<Maybe<string>>(
    w(10, fc.constant("application/json")),
    w(
      2,
      fc.constantFrom(
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "APPLICATION/JSON",
      ),
    ),
    w(
      n(6),
      fc.constantFrom(
        ABSENT,
        "application/json; charset=latin1",
        "application/json; charset",
        "application/vnd.api+json",
        "application/json, text/plain",
        "text/plain",
        "text/json",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "",
        "application/jsonx",
        'application/json; boundary="x"',
      ),
    ),
    w(n(1), headerText(30)),
  );
  const strayHeaders: fc.Arbitrary<Pair[]> = one(
    w(8, fc.constant([] as Pair[])),
    w(
      n(1),
      fc.array(fc.tuple(fc.stringMatching(/^x-[a-z-]{1,10}$/), headerText(20)), {
        minLength: 1,
        maxLength: 2,
      }),
    ),
  );

  return {
    one,
    w,
    n,
    topicName,
    groupName,
    partitionParam,
    memberId,
    keyId,
    nameJunk,
    decimal,
    query,
    headerText,
    junk,
    bodies: {
      produce: bodyOf(produceBody),
      createTopic: bodyOf(createTopicBody),
      join: bodyOf(joinBody),
      heartbeat: optionalBody(heartbeatBody),
      groupFetch: optionalBody(groupFetchBody),
      commit: bodyOf(commitBody),
      reset: bodyOf(resetBody),
      createKey: bodyOf(createKeyBody),
      mintToken: bodyOf(mintTokenBody),
      stray: strayBody,
      junk: bodyOf(junk),
    },
    producerHeaders,
    streamHeaders,
    contentType,
    strayHeaders,
  };
}

type Generators = ReturnType<typeof generators>;

interface RouteShape {
  query: fc.Arbitrary<string>;
  body: fc.Arbitrary<Uint8Array | undefined>;
  /** Headers worth varying on this route beyond content-type and authorization. */
  headers: fc.Arbitrary<Pair[]>;
}

/** How often each route is picked (others: 1). */
const routeWeights: Record<string, number> = {
  "POST /v1/topics/{topic}/records": 10,
  "GET /v1/topics/{topic}/partitions/{partition}/records": 6,
  "POST /v1/groups/{group}/offsets": 5,
  "POST /v1/groups/{group}/members": 4,
  "POST /v1/groups/{group}/offsets/reset": 4,
  "POST /v1/topics": 3,
  "GET /v1/topics/{topic}/partitions/{partition}/offsets": 3,
  "POST /v1/groups/{group}/members/{memberId}/heartbeat": 3,
  "POST /v1/groups/{group}/members/{memberId}/fetch": 3,
  "GET /v1/topics/{topic}": 2,
  "POST /v1/auth/keys": 2,
  "POST /v1/auth/tokens": 2,
};

function routeShape(key: string, g: Generators, credentials: Credentials | undefined): RouteShape {
  const method = key.split(" ")[0]!;
  const none: fc.Arbitrary<Pair[]> = fc.constant([]);
  const shape = (
    body: fc.Arbitrary<Uint8Array | undefined>,
    query = g.query([]),
    headers = none,
  ) => ({
    query,
    body,
    headers,
  });
  switch (key) {
    case "POST /v1/topics":
      return shape(g.bodies.createTopic);
    case "GET /v1/topics/{topic}":
      return shape(
        fc.constant(undefined),
        g.query([
          [
            "segments",
            g.one(
              g.w(3, fc.constantFrom("true", "false")),
              g.w(g.n(1), fc.constantFrom("TRUE", "1", "", "yes")),
            ),
          ],
        ]),
      );
    case "POST /v1/topics/{topic}/records":
      return shape(g.bodies.produce, g.query([]), g.producerHeaders);
    case "GET /v1/topics/{topic}/partitions/{partition}/records": {
      const token = credentials
        ? fc.constantFrom(
            credentials.narrow,
            credentials.admin,
            credentials.forged[0],
            "garbage-token-1234567",
          )
        : fc.constant("garbage-token-1234567");
      return shape(
        fc.constant(undefined),
        g.query([
          ["offset", g.decimal(["0", "1", "3", "5", "6", "100"]), 8],
          ["maxRecords", g.decimal(["1", "2", "100000"])],
          ["maxBytes", g.decimal(["1", "100", "67108864"])],
          ["waitMs", g.decimal(["0", "5", "20", "1000000"])],
          ...(credentials
            ? ([["access_token", token, 1]] as [string, fc.Arbitrary<string>, number][])
            : []),
        ]),
        g.streamHeaders,
      );
    }
    case "GET /v1/topics/{topic}/partitions/{partition}/offsets":
      return shape(
        fc.constant(undefined),
        g.query([
          [
            "timestamp",
            g.decimal(["earliest", "latest", "0", "1700000000000", "9007199254740991"]),
            8,
          ],
        ]),
      );
    case "POST /v1/admin/maintenance":
      return shape(g.bodies.stray, g.query([["topic", g.topicName]]));
    case "POST /v1/groups/{group}/members":
      return shape(g.bodies.join);
    case "POST /v1/groups/{group}/members/{memberId}/heartbeat":
      return shape(g.bodies.heartbeat);
    case "POST /v1/groups/{group}/members/{memberId}/fetch":
      return shape(g.bodies.groupFetch);
    case "POST /v1/groups/{group}/offsets":
      return shape(g.bodies.commit);
    case "POST /v1/groups/{group}/offsets/reset":
      return shape(g.bodies.reset);
    case "POST /v1/auth/keys":
      return shape(g.bodies.createKey);
    case "POST /v1/auth/tokens":
      return shape(g.bodies.mintToken);
    default:
      // GETs and DELETEs without bodies, and any route added after this file was written.
      return shape(
        method === "POST"
          ? g.bodies.junk
          : method === "DELETE"
            ? g.bodies.stray
            : fc.constant(undefined),
      );
  }
}

function paramArb(name: string, g: Generators): fc.Arbitrary<string> {
  switch (name) {
    case "topic":
      return g.topicName;
    case "group":
      return g.groupName;
    case "partition":
      return g.partitionParam;
    case "memberId":
      return g.memberId;
    case "keyId":
      return g.keyId;
    default:
      return g.nameJunk;
  }
}

function pathArb(template: string, g: Generators): fc.Arbitrary<string> {
  const names = [...template.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
  const suffix = g.one(
    g.w(14, fc.constant("")),
    g.w(g.n(2), fc.constantFrom("/", "/..", "/extra", "//", "/.", "%2F", "?")),
  );
  if (names.length === 0) {
    return fc
      .tuple(
        g.one(g.w(12, fc.constant(template)), g.w(g.n(1), fc.constant(template.toUpperCase()))),
        suffix,
      )
      .map(([p, s]) => p + s);
  }
  return fc
    .tuple(
      fc.tuple(...names.map((name) => paramArb(name, g))),
      g.one(g.w(7, fc.constant(false)), g.w(g.n(3), fc.constant(true))),
      suffix,
    )
    .map(([values, raw, s]) => {
      let i = 0;
      const path = template.replace(/\{\w+\}/g, () => {
        const v = values[i++]!;
        return raw ? v : safeEncode(v);
      });
      return path + s;
    });
}

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "get", "FOO"];

function junkPathArb(g: Generators): fc.Arbitrary<string> {
  return fc.oneof(
    fc
      .array(
        fc.oneof(
          fc.stringMatching(/^[a-zA-Z0-9._~-]{0,12}$/),
          fc.constantFrom("v1", "topics", "groups", "..", ".", "%2F", "%00", "%", "%GG", ";x=1"),
          unicode(6),
        ),
        { maxLength: 6 },
      )
      .map((segments) => `/${segments.join("/")}`),
    fc.constantFrom(
      "/",
      "//",
      "/v1",
      "/v1/",
      "/v1/topics/orders/partitions",
      "/v1/topics/orders/partitions/0",
      "/v1//topics",
      "/V1/TOPICS",
      "/v1/topics/orders/records/extra",
      "/v1/groups/billing/members/m-1",
      "/%",
      "/v1/%ZZ",
      "/v1/topics/%E0%A4%A/records",
      "/v1/\u0000",
      "/v2/topics",
      "/healthz/",
      "/v1/openapi.json/",
      "/v1/auth",
      "/v1/auth/keys/",
      "/v1/topics/orders/partitions/0/records/../offsets",
      "/v1/topics/orders/./records",
    ),
    unicode(30).map((s) => `/v1/${s}`),
    g.nameJunk.map((s) => `/v1/topics/${s}/partitions/0/records`),
  );
}

type CredentialKind = FuzzRequest["credential"];
interface Credential {
  kind: CredentialKind;
  header: string | undefined;
}

function credentialArb(credentials: Credentials | undefined, headerText: Generators["headerText"]) {
  const garbage = fc
    .oneof(
      fc.constantFrom(
        "Basic dXNlcjpwYXNz",
        "Bearer ",
        "Bearer",
        "bearer not-a-token-at-all-xyz",
        "Bearer slk_notanid_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "Bearer slk_01ARZ3NDEKTSV4RRFFQ69G5FAV_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4In0.",
        "Bearer a.b.c.d.e-fuzz",
      ),
      ...(credentials
        ? [
            fc.constantFrom(
              `Bearer ${credentials.forged[0]}`,
              `Bearer ${credentials.forged[1]}`,
              `Bearer ${credentials.admin} ${credentials.narrow}`,
              `Bearer ${credentials.narrow.slice(0, -3)}`,
              `Token ${credentials.admin}`,
              `Bearer  ${credentials.admin}x`,
            ),
          ]
        : []),
      headerText(40).map((s) => `Bearer fz${s}`),
    )
    .map((header): Credential => ({ kind: "garbage", header }));
  const fixed = (kind: CredentialKind, header: string | undefined) =>
    fc.constant<Credential>({ kind, header });
  if (!credentials) {
    return fc.oneof(
      { weight: 10, arbitrary: fixed("off", undefined) },
      { weight: 1, arbitrary: garbage },
    );
  }
  return fc.oneof(
    { weight: 10, arbitrary: fixed("admin", `Bearer ${credentials.admin}`) },
    { weight: 5, arbitrary: fixed("narrow", `Bearer ${credentials.narrow}`) },
    { weight: 3, arbitrary: garbage },
    { weight: 2, arbitrary: fixed("none", undefined) },
  );
}

const COMPONENTS = ["method", "path", "query", "headers", "body"] as const;

function requestArb(f: Fixture): fc.Arbitrary<FuzzRequest> {
  const clean = generators(false, f.victimKeyId);
  const noisy = generators(true, f.victimKeyId);
  const pick = <T>(make: (g: Generators) => fc.Arbitrary<T>) => {
    const a = make(clean);
    const b = make(noisy);
    return (isNoisy: boolean) => (isNoisy ? b : a);
  };
  const creds = credentialArb(f.credentials, clean.headerText);
  // Shrinks toward clean.
  const noise = fc.tuple(
    ...COMPONENTS.map((c) =>
      fc.oneof(
        { weight: Math.round((1 - NOISE[c]) * 10), arbitrary: fc.constant(false) },
        { weight: Math.round(NOISE[c] * 10), arbitrary: fc.constant(true) },
      ),
    ),
  );

  const routes = Object.keys(routePermissions).map((key) => {
    const [method, template] = key.split(" ") as [string, string];
    const cleanShape = routeShape(key, clean, f.credentials);
    const noisyShape = routeShape(key, noisy, f.credentials);
    const path = pick((g) => pathArb(template, g));
    const contentType = pick((g) => g.contentType);
    const strayHeaders = pick((g) => g.strayHeaders);
    const arb = noise.chain((flags) => {
      const [mNoisy, pNoisy, qNoisy, hNoisy, bNoisy] = flags as [
        boolean,
        boolean,
        boolean,
        boolean,
        boolean,
      ];
      return fc
        .record({
          method: mNoisy ? fc.constantFrom(...METHODS) : fc.constant(method),
          path: path(pNoisy),
          query: (qNoisy ? noisyShape : cleanShape).query,
          routeHeaders: (hNoisy ? noisyShape : cleanShape).headers,
          contentType: contentType(hNoisy),
          stray: strayHeaders(hNoisy),
          body: (bNoisy ? noisyShape : cleanShape).body,
          credential: creds,
        })
        .map(
          ({
            method: m,
            path: p,
            query,
            routeHeaders,
            contentType: ct,
            stray,
            body,
            credential,
          }) => {
            const headers: Pair[] = [...routeHeaders, ...stray];
            // Bodies go out as application/json, or (noisy headers) another type or none.
            if (body !== undefined && ct !== ABSENT) headers.push(["content-type", ct]);
            if (credential.header !== undefined) headers.push(["authorization", credential.header]);
            return {
              route: key,
              method: m,
              path: p,
              query,
              headers,
              body,
              credential: credential.kind,
              noisy: COMPONENTS.filter((_, i) => flags[i]),
            } satisfies FuzzRequest;
          },
        );
    });
    return { weight: routeWeights[key] ?? 1, arbitrary: arb };
  });
  const junkRoute = fc
    .record({
      method: fc.constantFrom(...METHODS),
      path: junkPathArb(noisy),
      query: noisy.query([]),
      body: noisy.bodies.stray,
      credential: creds,
    })
    .map(({ method, path, query, body, credential }): FuzzRequest => ({
      route: "junk",
      method,
      path,
      query,
      headers: [
        ...(body ? ([["content-type", "application/json"]] as Pair[]) : []),
        ...(credential.header !== undefined
          ? ([["authorization", credential.header]] as Pair[])
          : []),
      ],
      body,
      credential: credential.kind,
      noisy: ["path"],
    }));
  return fc.oneof(...routes, { weight: 3, arbitrary: junkRoute });
}

/* Running requests. */

function toRequest(r: FuzzRequest): Request {
  const headers = new Headers();
  for (const [k, v] of r.headers) headers.append(k, v);
  const method = r.method.toUpperCase();
  const init: RequestInit = { method: r.method, headers };
  // Bytes, not strings: a string body would get a text/plain content-type of its own.
  if (r.body !== undefined && method !== "GET" && method !== "HEAD")
    init.body = new Uint8Array(r.body);
  return new Request(`http://sluice.test${r.path}${r.query}`, init);
}

function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

async function readBody(res: Response, ms: number): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  try {
    await within(
      ms,
      "reading the answer",
      (async () => {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          chunks.push(value);
        }
      })(),
    );
  } finally {
    await reader.cancel().catch(() => {});
  }
  return new TextDecoder().decode(Buffer.concat(chunks));
}

/** The credential texts a request carried (header and query), which no answer may contain. */
function secretsOf(r: FuzzRequest): string[] {
  const out: string[] = [];
  for (const [k, v] of r.headers) {
    if (k !== "authorization") continue;
    out.push(v.trim());
    const m = /^\S+\s+(.+)$/.exec(v.trim());
    if (m) out.push(...m[1]!.split(/\s+/));
  }
  const q = /[?&]access_token=([^&#]*)/.exec(r.query);
  if (q) {
    try {
      out.push(decodeURIComponent(q[1]!));
    } catch {
      out.push(q[1]!);
    }
  }
  return out;
}

/**
 * Runs the fuzzer against a fresh app; resolves with what it saw, or rejects with the first
 * violation (shrunk by fast-check) and the seed to replay it.
 */
export async function runFuzz(options: FuzzOptions): Promise<FuzzStats> {
  const { seed, numRuns, auth } = options;
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  const f = await buildFixture(auth);
  options.plant?.(f.log);
  const stats: FuzzStats = {
    seed,
    auth,
    cases: 0,
    skipped: 0,
    statuses: {},
    codes: {},
    housekeeping: 0,
    byRoute: {},
    elapsedMs: 0,
    runsPerSecond: 0,
  };
  let before = await snapshot(f);
  let lastFailure = "";
  const started = Date.now();

  const property = fc.asyncProperty(requestArb(f), async (r) => {
    let request: Request;
    try {
      request = toRequest(r);
    } catch {
      stats.skipped++;
      return;
    }
    const fail = (problem: string, res?: ObservedResponse): never => {
      lastFailure = `${problem}\nrequest:\n${describeRequest(r)}${
        res ? `\nresponse: ${res.status} ${clip(res.body, 600)}` : ""
      }`;
      throw new Error(lastFailure);
    };
    let response: Response;
    try {
      response = await within(timeoutMs, "the answer", Promise.resolve(f.app.request(request)));
    } catch (err) {
      return fail(`the app threw or hung: ${err instanceof Error ? err.stack : String(err)}`);
    }
    let body: string;
    try {
      body = await readBody(response, timeoutMs);
    } catch (err) {
      return fail(`reading the answer failed: ${String(err)}`, {
        status: response.status,
        headers: response.headers,
        body: "",
      });
    }
    const observed = { status: response.status, headers: response.headers, body };
    stats.cases++;
    stats.statuses[observed.status] = (stats.statuses[observed.status] ?? 0) + 1;
    const cls = `${Math.floor(observed.status / 100)}xx`;
    const route = (stats.byRoute[r.route] ??= {});
    route[cls] = (route[cls] ?? 0) + 1;
    const method = r.method.toUpperCase();
    if (observed.status >= 400 && method !== "HEAD") {
      try {
        const code = (JSON.parse(body) as { error?: { code?: unknown } }).error?.code;
        if (typeof code === "string") stats.codes[code] = (stats.codes[code] ?? 0) + 1;
      } catch {
        // checkResponse reports it
      }
    }
    const problems = checkResponse(method, observed, secretsOf(r));
    if (problems.length) fail(problems.join("; "), observed);

    const after = await snapshot(f);
    if (observed.status >= 400) {
      const [was, is] = [render(before), render(after)];
      if (was !== is) {
        const at = Date.now();
        if (render(before, at) === render(after, at)) {
          stats.housekeeping++;
        } else {
          fail(`a rejected request changed the state:\n  ${firstDifference(was, is)}`, observed);
        }
      }
    }
    if (observed.status < 400) {
      await ensureSeed(f);
      before = await snapshot(f);
    }
  });

  try {
    await fc.assert(property, { seed, numRuns });
  } catch (err) {
    const header = err instanceof Error ? err.message.split("\n")[0] : String(err);
    throw new Error(
      `HTTP fuzzing (seed ${seed}, auth ${auth ? "on" : "off"}, numRuns ${numRuns}) found a violation.\n` +
        `${header}\nReplay: CHAOS_SEED=${seed} CHAOS_FUZZ_RUNS=${numRuns}\n` +
        `Shrunk counterexample: ${lastFailure || String(err)}`,
      { cause: err },
    );
  }
  stats.elapsedMs = Date.now() - started;
  stats.runsPerSecond = Math.round((stats.cases / Math.max(1, stats.elapsedMs)) * 1000);
  return stats;
}

/** The stats in a few lines, for logs. */
export function formatStats(s: FuzzStats): string {
  const statuses = Object.entries(s.statuses)
    .map(([k, v]) => `${k}:${v}`)
    .join(" ");
  const codes = Object.entries(s.codes)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k}:${v}`)
    .join(" ");
  return (
    `seed ${s.seed} auth ${s.auth ? "on" : "off"}: ${s.cases} cases (${s.skipped} skipped) ` +
    `in ${s.elapsedMs} ms, ${s.runsPerSecond}/s, ${s.housekeeping} housekeeping writes\n  statuses ${statuses}\n  codes ${codes}`
  );
}
