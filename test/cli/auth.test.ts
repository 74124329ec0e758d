import { spawn } from "node:child_process";
import { join, resolve } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JwtVerifier } from "../../src/auth/jwt.js";
import { Secret } from "../../src/auth/secret.js";
import { runCli } from "../../src/cli/run.js";
import { serverConfigFromEnv } from "../../src/config.js";
import {
  killAllServers,
  makeDataDir,
  startServer,
  type ServerProcess,
} from "../support/server-process.js";
import { Capture, type CliResult } from "./support.js";

/**
 * `sluice keys` and `sluice tokens`, and `--token` / $SLUICE_TOKEN on every client command:
 * the first admin key written with `keys create --direct` into a data directory, then a real
 * `sluice serve` on that directory with authentication required. The commands run in process
 * (runCli) with the default client, so the token goes over real HTTP.
 */

const SECRET = "cli-test-signing-secret-of-32-bytes-or-more";
const KEY_LINE = /^key: (slk_\S+)\n$/;

/** `sluice ARGS…` in process, with exactly this environment. */
async function sluice(
  args: string[],
  env: Record<string, string | undefined> = {},
): Promise<CliResult> {
  const out = new Capture();
  const err = new Capture();
  const code = await runCli(args, { stdin: Readable.from([]), stdout: out, stderr: err, env });
  return { code, stdout: out.text, stderr: err.text };
}

function keyOf(result: CliResult): string {
  const match = KEY_LINE.exec(result.stdout);
  if (!match) throw new Error(`no key printed: ${JSON.stringify(result)}`);
  return match[1]!;
}

const jwtConfig = () => serverConfigFromEnv({ SLUICE_JWT_SECRET: SECRET }).auth.jwt;

describe("sluice keys and tokens against a server that requires credentials", () => {
  let data: Awaited<ReturnType<typeof makeDataDir>>;
  let server: ServerProcess;
  let adminKey: string;
  let bootstrap: CliResult;
  let url: string;

  beforeAll(async () => {
    data = await makeDataDir("sluice-cli-auth-");
    bootstrap = await sluice([
      "keys",
      "create",
      "--direct",
      "--scope",
      "admin",
      "--description",
      "bootstrap",
      "--data-dir",
      data.dir,
    ]);
    adminKey = keyOf(bootstrap);
    server = await startServer({
      dataDir: data.dir,
      env: { SLUICE_AUTH: "required", SLUICE_JWT_SECRET: SECRET, SLUICE_LINGER_MS: "2" },
    });
    url = server.url;
  }, 60_000);

  afterAll(async () => {
    await killAllServers();
    await data?.cleanup();
  });

  it("writes the first admin key with --direct, which the server then accepts", async () => {
    expect(bootstrap.code).toBe(0);
    expect(bootstrap.stderr).toContain(`wrote the key to ${join(data.dir, "meta.sqlite")}\n`);
    expect(bootstrap.stderr).toMatch(/^created key [0-9A-Z]{26} \(scopes admin; expires never\)$/m);
    expect(bootstrap.stderr).toMatch(/^warning: this is the only time the key is shown/m);
    expect(bootstrap.stderr).not.toContain(adminKey);

    const created = await sluice(["topics", "create", "orders", "--url", url, "--token", adminKey]);
    expect(created).toEqual({
      code: 0,
      stdout: "",
      stderr: "created topic orders with 1 partition\n",
    });
    // $SLUICE_TOKEN and $SLUICE_URL do the same; --token wins over the environment.
    const listed = await sluice(["topics", "list"], { SLUICE_URL: url, SLUICE_TOKEN: adminKey });
    expect(listed).toMatchObject({ code: 0, stdout: "TOPIC   PARTITIONS\norders  1\n" });
    const flagWins = await sluice(["topics", "list", "--token", adminKey], {
      SLUICE_URL: url,
      SLUICE_TOKEN: "slk_not-this-one",
    });
    expect(flagWins.code).toBe(0);
    // Whitespace around the variable's value (a file read into it) is dropped.
    const padded = await sluice(["topics", "list"], {
      SLUICE_URL: url,
      SLUICE_TOKEN: ` ${adminKey}\n`,
    });
    expect(padded.code).toBe(0);
  });

  it("fails clearly, with exit code 1 and no echo of the token, without good credentials", async () => {
    const missing = await sluice(["topics", "list", "--url", url]);
    expect(missing).toEqual({
      code: 1,
      stdout: "",
      stderr:
        "error: unauthorized: credentials are required (no credential was given: pass an API key or token with --token or $SLUICE_TOKEN)\n",
    });

    const wrongKey = `${adminKey.slice(0, -43)}${"B".repeat(43)}`;
    const wrong = await sluice(["topics", "list", "--url", url, "--token", wrongKey]);
    expect(wrong).toEqual({
      code: 1,
      stdout: "",
      stderr:
        "error: unauthorized: the credentials are invalid (the server refused the credential from --token)\n",
    });

    const garbage = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.";
    const fromEnv = await sluice(["groups", "list"], { SLUICE_URL: url, SLUICE_TOKEN: garbage });
    expect(fromEnv.code).toBe(1);
    expect(fromEnv.stderr).toBe(
      "error: unauthorized: the credentials are invalid (the server refused the credential from $SLUICE_TOKEN)\n",
    );

    const spaced = await sluice(["topics", "list", "--url", url, "--token", "slk_a b"]);
    expect(spaced.code).toBe(2);
    expect(spaced.stderr).toBe(
      "error: usage: the credential in --token is not an API key or token: it holds spaces or control characters\n",
    );
    for (const result of [wrong, fromEnv, spaced]) {
      expect(result.stderr).not.toContain(wrongKey.slice(4));
      expect(result.stderr).not.toContain(garbage.slice(0, 20));
      expect(result.stderr).not.toContain("a b");
    }
  });

  it("creates, lists and revokes keys over HTTP", async () => {
    const admin = { SLUICE_URL: url, SLUICE_TOKEN: adminKey };
    const made = await sluice(
      [
        "keys",
        "create",
        "--scope",
        "consume:topic:orders,consume:group:billing",
        "--scope",
        "produce:topic:orders",
        "--description",
        "billing service",
        "--expires-in",
        "3600",
        "--rate",
        "5:10",
        "--json",
      ],
      admin,
    );
    expect(made.code).toBe(0);
    const created = JSON.parse(made.stdout) as Record<string, any>;
    expect(created).toMatchObject({
      scopes: ["consume:topic:orders", "consume:group:billing", "produce:topic:orders"],
      description: "billing service",
      revokedAt: null,
      rateLimit: { perSecond: 5, burst: 10 },
    });
    expect(created.expiresAt - created.createdAt).toBe(3_600_000);
    expect(created.key).toMatch(/^slk_/);

    const human = await sluice(["keys", "create", "--scope", "consume:topic:x*"], admin);
    expect(human.code).toBe(0);
    const humanKey = keyOf(human);
    expect(human.stderr).toMatch(/^warning: this is the only time the key is shown/m);

    const table = await sluice(["keys", "list"], admin);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID +SCOPES +DESCRIPTION +CREATED +EXPIRES +REVOKED$/);
    const row = lines.find((l) => l.startsWith(created.id))!;
    expect(row).toMatch(
      new RegExp(
        `^${created.id} +consume:topic:orders,consume:group:billing,produce:topic:orders +billing service +\\S+Z +${new Date(created.expiresAt).toISOString()} +-$`,
      ),
    );
    expect(lines.some((l) => /^[0-9A-Z]{26} +admin +bootstrap /.test(l))).toBe(true);
    // Never a secret, in either form.
    expect(table.stdout).not.toContain(created.key.slice(31));
    const json = await sluice(["keys", "list", "--json"], admin);
    const keys = JSON.parse(json.stdout) as { id: string }[];
    expect(keys.map((k) => k.id)).toContain(created.id);
    expect(json.stdout).not.toContain(humanKey.slice(31));

    // The new key works until it is revoked; a scope it lacks is a 403.
    const asService = { SLUICE_URL: url, SLUICE_TOKEN: created.key as string };
    expect((await sluice(["topics", "describe", "orders"], asService)).code).toBe(0);
    const forbidden = await sluice(["topics", "delete", "orders"], asService);
    expect(forbidden).toMatchObject({ code: 1 });
    expect(forbidden.stderr).toMatch(/^error: forbidden: /);

    const revoked = await sluice(["keys", "revoke", created.id], admin);
    expect(revoked).toEqual({ code: 0, stdout: "", stderr: `revoked key ${created.id}\n` });
    const after = await sluice(["topics", "describe", "orders"], asService);
    expect(after.code).toBe(1);
    expect(after.stderr).toMatch(/^error: unauthorized: the credentials are revoked/);
    const listedAfter = JSON.parse((await sluice(["keys", "list", "--json"], admin)).stdout) as {
      id: string;
      revokedAt: number | null;
    }[];
    expect(listedAfter.find((k) => k.id === created.id)!.revokedAt).toEqual(expect.any(Number));

    // Only an admin administers keys.
    const notAdmin = await sluice(["keys", "list"], { SLUICE_URL: url, SLUICE_TOKEN: humanKey });
    expect(notAdmin.code).toBe(1);
    expect(notAdmin.stderr).toMatch(/^error: forbidden: /);
    const unknown = await sluice(["keys", "revoke", "01ARZ3NDEKTSV4RRFFQ69G5FAV"], admin);
    expect(unknown).toMatchObject({ code: 1, stderr: "error: not_found: no such key\n" });
  });

  it("mints tokens on the server: only the token on stdout, accepted by the server", async () => {
    const admin = { SLUICE_URL: url, SLUICE_TOKEN: adminKey };
    const minted = await sluice(
      ["tokens", "mint", "--scope", "consume:topic:orders", "--subject", "alice", "--ttl", "600"],
      admin,
    );
    expect(minted.code).toBe(0);
    expect(minted.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    expect(minted.stderr).toMatch(/^the token expires at \d{4}-\d\d-\d\dT/);
    const token = minted.stdout.trimEnd();
    const principal = await new JwtVerifier(jwtConfig()).verify(new Secret(token));
    // Minted by a key: counted within it.
    expect(principal).toMatchObject({
      id: expect.stringMatching(/^token:key:\w+:alice$/),
      kind: "token",
    });
    const claims = decodeJwt(token);
    expect(claims.exp! - claims.iat!).toBe(600);

    const listed = await sluice(["topics", "list"], { SLUICE_URL: url, SLUICE_TOKEN: token });
    expect(listed).toMatchObject({ code: 0, stdout: "TOPIC   PARTITIONS\norders  1\n" });

    const json = await sluice(
      ["tokens", "mint", "--scope", "consume:topic:orders", "--json"],
      admin,
    );
    expect(JSON.parse(json.stdout)).toEqual({
      token: expect.any(String),
      expiresAt: expect.any(Number),
      scopes: ["consume:topic:orders"],
    });

    // A token cannot mint tokens for more than its holder may do.
    const wider = await sluice(["tokens", "mint", "--scope", "admin"], {
      SLUICE_URL: url,
      SLUICE_TOKEN: token,
    });
    expect(wider.code).toBe(1);
    expect(wider.stderr).toMatch(/^error: forbidden: /);
  });

  it("mints tokens locally with the shared secret, which the server accepts", async () => {
    const before = Date.now();
    const local = await sluice(
      [
        "tokens",
        "mint",
        "--local",
        "--scope",
        "consume:topic:orders",
        "--scope",
        "produce:topic:o*",
      ],
      { SLUICE_JWT_SECRET: SECRET },
    );
    expect(local.code).toBe(0);
    const token = local.stdout.trimEnd();
    expect(local.stdout).toBe(`${token}\n`);
    const principal = await new JwtVerifier(jwtConfig()).verify(new Secret(token));
    expect(principal).toMatchObject({ id: "token:sluice-cli", kind: "token" });
    expect(principal.scopes).toEqual([
      { operation: "consume", kind: "topic", name: "orders", prefix: false },
      { operation: "produce", kind: "topic", name: "o", prefix: true },
    ]);
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ iss: "sluice", aud: "sluice", sub: "sluice-cli" });
    expect(claims.exp! - claims.iat!).toBe(900);
    expect(claims.iat! * 1000).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);

    const described = await sluice([
      "topics",
      "describe",
      "orders",
      "--url",
      url,
      "--token",
      token,
    ]);
    expect(described.code).toBe(0);

    // Another variable, a subject, a TTL, and the whole answer as JSON.
    const json = await sluice(
      [
        "tokens",
        "mint",
        "--local",
        "--secret-env",
        "MY_SIGNING_SECRET",
        "--scope",
        "admin",
        "--subject",
        "ops",
        "--ttl",
        "60",
        "--json",
      ],
      { MY_SIGNING_SECRET: SECRET },
    );
    expect(json.code).toBe(0);
    const answer = JSON.parse(json.stdout) as {
      token: string;
      expiresAt: number;
      scopes: string[];
    };
    expect(answer.scopes).toEqual(["admin"]);
    expect(answer.expiresAt).toBe(decodeJwt(answer.token).exp! * 1000);
    expect(await new JwtVerifier(jwtConfig()).verify(new Secret(answer.token))).toMatchObject({
      id: "token:ops",
    });

    // The issuer and audience the server is configured with are honoured.
    const other = await sluice(["tokens", "mint", "--local", "--scope", "admin", "--json"], {
      SLUICE_JWT_SECRET: SECRET,
      SLUICE_JWT_ISSUER: "https://auth.example.com",
      SLUICE_JWT_AUDIENCE: "events",
    });
    expect(decodeJwt(JSON.parse(other.stdout).token as string)).toMatchObject({
      iss: "https://auth.example.com",
      aud: "events",
    });
  });

  it("explains what --local is missing, without printing the secret", async () => {
    const unset = await sluice(["tokens", "mint", "--local", "--scope", "admin"]);
    expect(unset).toEqual({
      code: 1,
      stdout: "",
      stderr:
        "error: invalid_config: --local signs with the secret in $SLUICE_JWT_SECRET, which is not set\n",
    });
    const short = await sluice(["tokens", "mint", "--local", "--scope", "admin"], {
      SLUICE_JWT_SECRET: "too-short-secret",
    });
    expect(short.code).toBe(1);
    expect(short.stderr).toMatch(
      /^error: invalid_config: \$SLUICE_JWT_SECRET must hold at least 32/,
    );
    expect(short.stderr).not.toContain("too-short-secret");
    const tooLong = await sluice(
      ["tokens", "mint", "--local", "--scope", "admin", "--ttl", "7200"],
      {
        SLUICE_JWT_SECRET: SECRET,
      },
    );
    expect(tooLong).toMatchObject({ code: 1, stdout: "" });
    expect(tooLong.stderr).toMatch(/^error: invalid_request: --ttl must be 1 to 3600 seconds/);
    const badScope = await sluice(["tokens", "mint", "--local", "--scope", "write:all"], {
      SLUICE_JWT_SECRET: SECRET,
    });
    expect(badScope.code).toBe(1);
    expect(badScope.stderr).toMatch(/^error: invalid_request: a scope is "admin" or/);
    expect(`${unset.stderr}${short.stderr}${tooLong.stderr}${badScope.stderr}`).not.toContain(
      SECRET,
    );
  });

  it("refuses bad arguments with the usage and exit code 2", async () => {
    const cases: [string[], string][] = [
      [["keys", "create"], "error: usage: at least one --scope is required"],
      [
        ["keys", "create", "--scope", "admin", "--rate", "fast"],
        "error: usage: --rate takes N or N:BURST",
      ],
      [
        ["keys", "create", "--scope", "admin", "--expires-in", "soon"],
        "error: usage: --expires-in must be",
      ],
      [
        ["keys", "create", "--scope", "admin", "--data-dir", "/tmp/x"],
        "error: usage: --data-dir goes with --direct",
      ],
      [
        ["keys", "create", "--direct", "--scope", "admin", "--url", url],
        "error: usage: --direct writes to the storage itself",
      ],
      [["keys", "revoke"], "error: usage: missing ID"],
      [["keys", "rotate"], 'error: usage: unknown command "keys rotate"'],
      [["tokens", "mint"], "error: usage: at least one --scope is required"],
      [
        ["tokens", "mint", "--scope", "admin", "--secret-env", "X"],
        "error: usage: --secret-env goes with --local",
      ],
      [
        ["tokens", "mint", "--scope", "admin", "--ttl", "0"],
        "error: usage: --ttl must be at least 1",
      ],
      [
        ["tokens", "mint", "--local", "--scope", "admin", "--token", adminKey],
        "error: usage: --local signs without a server",
      ],
      [
        ["tokens", "mint", "--scope", "admin", "--subject", "a b"],
        "error: usage: --subject is 1 to 256",
      ],
      [["topics", "list", "--token", ""], "error: usage: --token is empty"],
    ];
    for (const [args, message] of cases) {
      const result = await sluice(args, { SLUICE_URL: url });
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr.startsWith(message), result.stderr).toBe(true);
      expect(result.stderr).not.toContain(adminKey);
    }
    const invalid = await sluice([
      "keys",
      "create",
      "--direct",
      "--scope",
      "admin",
      "--expires-in",
      "5",
      "--data-dir",
      data.dir,
    ]);
    expect(invalid).toMatchObject({ code: 1, stdout: "" });
    expect(invalid.stderr).toMatch(/^error: invalid_request: --expires-in: /);

    for (const args of [
      ["keys", "--help"],
      ["keys", "create", "--help"],
      ["tokens", "mint", "-h"],
    ]) {
      const help = await sluice(args);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(/sluice (keys create --scope SCOPE|tokens mint --scope SCOPE)/);
      expect(help.stdout).toContain("--token TOKEN");
    }
  });

  it("runs `keys create --direct` as a process beside the running server", async () => {
    const repoRoot = resolve(fileURLToPath(new URL("../..", import.meta.url)));
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        join(repoRoot, "src", "cli", "main.ts"),
        "keys",
        "create",
        "--direct",
        "--scope",
        "consume:topic:orders",
      ],
      {
        cwd: repoRoot,
        env: { ...process.env, SLUICE_DATA_DIR: data.dir },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const code = await new Promise((done) => child.once("close", done));
    expect(code, stderr).toBe(0);
    const key = keyOf({ code: 0, stdout, stderr });
    // The server reads the key from the shared SQLite file on first use.
    const listed = await sluice(["topics", "list"], { SLUICE_URL: url, SLUICE_TOKEN: key });
    expect(listed).toMatchObject({ code: 0, stdout: "TOPIC   PARTITIONS\norders  1\n" });
  });
});
