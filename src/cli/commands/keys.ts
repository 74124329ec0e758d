import type { CreateKeyRequest, CreatedApiKey, MintedToken } from "../../client/index.js";
import {
  UsageError,
  commonOptionsText,
  defineCommand,
  integer,
  line,
  type Command,
  type CommandContext,
} from "../context.js";
import { isoText, table, writeJson } from "../format.js";

/**
 * `sluice keys` and `sluice tokens` (docs/rfcs/0005-auth-and-limits.md): API keys and tokens,
 * administered over the API. `keys create --direct` and `tokens mint --local` work without a
 * server; their modules are imported only then, so that no other command loads the storage
 * adapters, the server's configuration or the signing code.
 */

const scopeHelp = `A SCOPE is "admin" (everything) or OPERATION:KIND:PATTERN: produce:topic:P,
      consume:topic:P or consume:group:P, where P is a name or a prefix ending in * (events.*);
      --scope may be repeated, or list several scopes separated by commas.`;

export const keysUsage = `usage:
  sluice keys create --scope SCOPE [--scope SCOPE]... [--description TEXT]
        [--expires-in SECONDS] [--rate N[:BURST]] [--direct [--data-dir DIR]]
      Creates an API key and prints it once, as "key: slk_…" (--json: the whole answer); it is
      never shown again.
      ${scopeHelp}
      --rate gives the key its own request rate per second and instance (the burst defaults
      to twice the rate). Over HTTP this needs an admin credential.
      --direct needs no server and no credential: it writes the key straight into the
      metadata store the environment configures, opened as \`sluice serve\` opens it (SQLite
      in --data-dir or $SLUICE_DATA_DIR, or DynamoDB when SLUICE_TABLE is set, with the AWS
      credentials of the environment). This is how the first admin key is made.
  sluice keys list
      Prints ID SCOPES DESCRIPTION CREATED EXPIRES REVOKED for every key (never a secret).
  sluice keys revoke ID
      Revokes a key: the server that is asked refuses it at once, other instances within
      SLUICE_KEY_CACHE_MS.

${commonOptionsText}`;

export const tokensUsage = `usage:
  sluice tokens mint --scope SCOPE [--scope SCOPE]... [--subject SUB] [--ttl SECONDS]
      Has the server sign a token (it needs an admin credential, or a key holding every scope
      asked for, and the server needs SLUICE_JWT_SECRET). The subject defaults to the caller
      and the lifetime to 900 s, at most SLUICE_JWT_MAX_TTL_S.
  sluice tokens mint --local --scope SCOPE... [--subject SUB] [--ttl SECONDS]
        [--secret-env NAME]
      Signs the token here, with no server: HS256 with the shared secret in the environment
      variable NAME (default SLUICE_JWT_SECRET), and SLUICE_JWT_ISSUER, SLUICE_JWT_AUDIENCE and
      SLUICE_JWT_MAX_TTL_S read as the server reads them. The subject defaults to "sluice-cli".

      Prints only the token on stdout, so that TOKEN=$(sluice tokens mint …) works; --json
      prints {token, expiresAt, scopes}.
      ${scopeHelp}

${commonOptionsText}`;

/** The lifetime of a locally minted token when none is given (as the server's default). */
const DEFAULT_LOCAL_TTL_S = 900;
const DEFAULT_LOCAL_SUBJECT = "sluice-cli";

export const keysCommands: Record<string, Command> = {
  create: defineCommand({
    usage: keysUsage,
    options: {
      scope: { type: "string", multiple: true },
      description: { type: "string" },
      "expires-in": { type: "string" },
      rate: { type: "string" },
      direct: { type: "boolean" },
      "data-dir": { type: "string" },
    },
    args: [],
    async run(ctx, values) {
      const request: CreateKeyRequest = { scopes: scopeList(values.scope, keysUsage) };
      if (values.description !== undefined) request.description = values.description;
      const expiresIn = integer(values["expires-in"], "expires-in", keysUsage);
      if (expiresIn !== undefined) request.expiresInSeconds = expiresIn;
      if (values.rate !== undefined) request.rateLimit = rateLimit(values.rate, keysUsage);

      if (!values.direct) {
        if (values["data-dir"] !== undefined) {
          throw new UsageError("--data-dir goes with --direct", keysUsage);
        }
        return printKey(ctx, await ctx.client.admin.createKey(request));
      }
      if (values.url !== undefined || values.token !== undefined) {
        throw new UsageError(
          "--direct writes to the storage itself: --url and --token do not apply",
          keysUsage,
        );
      }
      // Imported only here: no other command loads the server's configuration and stores.
      const { createKeyDirect } = await import("./keys-direct.js");
      const { created, metadata } = await createKeyDirect(request, {
        env: ctx.env,
        dataDir: values["data-dir"],
      });
      if (!ctx.json) line(ctx.err, `wrote the key to ${metadata}`);
      printKey(ctx, created);
    },
  }),

  list: defineCommand({
    usage: keysUsage,
    options: {},
    args: [],
    async run(ctx) {
      const keys = await ctx.client.admin.listKeys();
      if (ctx.json) return writeJson(ctx.out, keys);
      ctx.out.write(
        table(
          ["ID", "SCOPES", "DESCRIPTION", "CREATED", "EXPIRES", "REVOKED"],
          keys.map((k) => [
            k.id,
            k.scopes.join(","),
            k.description,
            isoText(k.createdAt),
            isoText(k.expiresAt),
            isoText(k.revokedAt),
          ]),
        ),
      );
    },
  }),

  revoke: defineCommand({
    usage: keysUsage,
    options: {},
    args: ["ID"],
    async run(ctx, _values, [id]) {
      await ctx.client.admin.revokeKey(id!);
      if (ctx.json) writeJson(ctx.out, { revoked: id });
      else line(ctx.err, `revoked key ${id}`);
    },
  }),
};

export const tokensCommands: Record<string, Command> = {
  mint: defineCommand({
    usage: tokensUsage,
    options: {
      scope: { type: "string", multiple: true },
      subject: { type: "string" },
      ttl: { type: "string" },
      local: { type: "boolean" },
      "secret-env": { type: "string" },
    },
    args: [],
    async run(ctx, values) {
      const scopes = scopeList(values.scope, tokensUsage);
      const subject = values.subject;
      if (subject !== undefined && !/^[\x21-\x7e]{1,256}$/.test(subject)) {
        throw new UsageError(
          "--subject is 1 to 256 characters of printable ASCII without spaces",
          tokensUsage,
        );
      }
      const ttl = integer(values.ttl, "ttl", tokensUsage);
      if (ttl === 0) throw new UsageError("--ttl must be at least 1 second", tokensUsage);

      let minted: MintedToken;
      if (values.local) {
        if (values.url !== undefined || values.token !== undefined) {
          throw new UsageError(
            "--local signs without a server: --url and --token do not apply",
            tokensUsage,
          );
        }
        const secretEnv = values["secret-env"] ?? "SLUICE_JWT_SECRET";
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(secretEnv)) {
          throw new UsageError(
            "--secret-env takes the name of an environment variable",
            tokensUsage,
          );
        }
        // Imported only here: the server's configuration and the signing code.
        const { mintTokenLocally } = await import("./tokens-local.js");
        minted = await mintTokenLocally(
          {
            scopes,
            subject: subject ?? DEFAULT_LOCAL_SUBJECT,
            ttlSeconds: ttl,
            defaultTtlSeconds: DEFAULT_LOCAL_TTL_S,
          },
          { env: ctx.env, secretEnv },
        );
      } else {
        if (values["secret-env"] !== undefined) {
          throw new UsageError("--secret-env goes with --local", tokensUsage);
        }
        minted = await ctx.client.admin.mintToken({
          scopes,
          ...(subject === undefined ? {} : { subject }),
          ...(ttl === undefined ? {} : { ttlSeconds: ttl }),
        });
      }
      if (ctx.json) return writeJson(ctx.out, minted);
      line(ctx.out, minted.token);
      line(ctx.err, `the token expires at ${isoText(minted.expiresAt)}`);
    },
  }),
};

/** The new key, once: `key: slk_…` on stdout, what it is and a warning on stderr. */
function printKey(ctx: CommandContext, created: CreatedApiKey): void {
  if (ctx.json) return writeJson(ctx.out, created);
  const expires = created.expiresAt === null ? "never" : isoText(created.expiresAt);
  line(
    ctx.err,
    `created key ${created.id} (scopes ${created.scopes.join(",")}; expires ${expires})`,
  );
  line(ctx.out, `key: ${created.key}`);
  line(
    ctx.err,
    "warning: this is the only time the key is shown; store it now, it cannot be recovered",
  );
}

/** The `--scope` flags, each of which may hold several scopes separated by commas or spaces. */
export function scopeList(flags: readonly string[] | undefined, usage: string): string[] {
  const scopes = (flags ?? []).flatMap((flag) => flag.split(/[\s,]+/)).filter((s) => s !== "");
  if (scopes.length === 0) throw new UsageError("at least one --scope is required", usage);
  return scopes;
}

/** `--rate N[:BURST]`: N requests per second (a decimal), the burst twice N unless given. */
export function rateLimit(value: string, usage: string): { perSecond: number; burst: number } {
  const match = /^\s*(\d{1,9}(?:\.\d{1,6})?)\s*(?::\s*(\d{1,9})\s*)?$/.exec(value);
  const perSecond = match ? Number(match[1]) : NaN;
  const burst = match?.[2] === undefined ? Math.max(1, Math.ceil(perSecond * 2)) : Number(match[2]);
  if (!(perSecond > 0) || !(burst >= 1)) {
    throw new UsageError(
      `--rate takes N or N:BURST (requests per second, burst), not ${JSON.stringify(value)}`,
      usage,
    );
  }
  return { perSecond, burst };
}
