/**
 * What authentication costs a request: the same concurrent requests through the HTTP app (in
 * process, `app.request`, memory stores) with authentication off (the baseline), with an
 * API key (a cached lookup and a SHA-256) and with an HS256 token (a signature check), in one
 * run, alternated over several rounds. Prints requests/s per mode (median of the rounds) and
 * each as a ratio of the baseline. The request is a ListOffsets, a cheap read: a produce waits
 * out linger.ms and its flush, which would hide what authentication adds.
 *
 *   npx tsx bench/auth-overhead.ts [rounds] [requestsPerRound]
 */
import { generateApiKey } from "../src/auth/api-keys.js";
import { Authenticator } from "../src/auth/authenticator.js";
import { mintToken, type JwtConfig } from "../src/auth/jwt.js";
import { parseScopes } from "../src/auth/scopes.js";
import { Secret } from "../src/auth/secret.js";
import { logConfigDefaults } from "../src/config.js";
import { createApp } from "../src/http/app.js";
import { SluiceLog } from "../src/log/log.js";
import { MemoryMetaStore } from "../src/meta/memory.js";
import { MemoryObjectStore } from "../src/storage/memory.js";

const rounds = Number(process.argv[2] ?? 5);
const perRound = Number(process.argv[3] ?? 2000);
const concurrency = 16;

const jwt: JwtConfig = {
  secret: new Secret("bench-secret-0123456789abcdef0123456789abcdef"),
  jwksUrl: undefined,
  issuer: "sluice",
  audience: "sluice",
  maxTtlS: 3600,
};

async function setUp(auth: boolean) {
  const meta = new MemoryMetaStore();
  const log = new SluiceLog({
    store: new MemoryObjectStore(),
    meta,
    config: { ...logConfigDefaults, lingerMs: 1 },
  });
  await log.topics.create("bench", 1);
  const app = createApp({
    log,
    maxRequestBytes: 1024 * 1024,
    auth: auth
      ? {
          authenticator: new Authenticator({ keys: meta, jwt, keyCacheMs: 10_000 }),
          keys: meta,
          jwt,
          rateLimit: null,
          maxStreams: 16,
        }
      : {},
  });
  const { record, key } = generateApiKey(
    { scopes: ["consume:topic:bench"], description: "", expiresAt: null, rateLimit: null },
    Date.now(),
  );
  await meta.putKey(record);
  const { token } = await mintToken(jwt, jwt.secret!, {
    subject: "bench",
    scopes: parseScopes(["consume:topic:bench"]),
    ttlS: 3600,
  });
  return { app, log, key: key.reveal(), token };
}

async function measure(app: Awaited<ReturnType<typeof setUp>>["app"], credential?: string) {
  const headers: Record<string, string> = {};
  if (credential) headers.authorization = `Bearer ${credential}`;
  let sent = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (sent < perRound) {
        sent++;
        const res = await app.request(
          "http://bench/v1/topics/bench/partitions/0/offsets?timestamp=latest",
          { headers },
        );
        if (res.status !== 200) throw new Error(`status ${res.status}`);
      }
    }),
  );
  return perRound / ((performance.now() - started) / 1000);
}

const open = await setUp(false);
const guarded = await setUp(true);
const rates = { off: [] as number[], key: [] as number[], token: [] as number[] };
for (let round = 0; round < rounds; round++) {
  rates.off.push(await measure(open.app));
  rates.key.push(await measure(guarded.app, guarded.key));
  rates.token.push(await measure(guarded.app, guarded.token));
}
await open.log.close();
await guarded.log.close();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const baseline = median(rates.off);
for (const [mode, xs] of Object.entries(rates)) {
  const m = median(xs);
  console.log(
    `${mode.padEnd(6)} ${m.toFixed(0).padStart(6)} requests/s ` +
      `(${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)}), ratio ${(m / baseline).toFixed(2)}`,
  );
}
