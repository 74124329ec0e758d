import { SluiceClient, isSluiceApiError } from "../client/index.js";
import { consumeCommand, consumeUsage } from "./commands/consume.js";
import { groupsCommands, groupsUsage } from "./commands/groups.js";
import { keysCommands, keysUsage, tokensCommands, tokensUsage } from "./commands/keys.js";
import { produceCommand, produceUsage } from "./commands/produce.js";
import { topicsCommands, topicsUsage } from "./commands/topics.js";
import {
  CliError,
  DEFAULT_URL,
  UsageError,
  line,
  type CliIO,
  type Command,
  type CommandContext,
} from "./context.js";

/** The client commands: `sluice topics|groups|keys|tokens SUB …`, `sluice produce|consume …`. */

interface CommandGroup {
  usage: string;
  /** Subcommands by name, or the one command of a group without subcommands. */
  commands: Record<string, Command> | Command;
}

const groups: Record<string, CommandGroup> = {
  topics: { usage: topicsUsage, commands: topicsCommands },
  groups: { usage: groupsUsage, commands: groupsCommands },
  produce: { usage: produceUsage, commands: produceCommand },
  consume: { usage: consumeUsage, commands: consumeCommand },
  keys: { usage: keysUsage, commands: keysCommands },
  tokens: { usage: tokensUsage, commands: tokensCommands },
};

export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERRUPTED = 130;

/**
 * Runs one client command and answers its exit code; output goes only to the injected
 * writers, so tests run it in-process. Never throws.
 */
export async function runCli(argv: readonly string[], io: CliIO): Promise<number> {
  const [name, ...rest] = argv;
  const group = name === undefined ? undefined : groups[name];
  if (!group) {
    line(io.stderr, `error: usage: unknown command ${JSON.stringify(name ?? "")}`);
    return EXIT_USAGE;
  }
  let command: Command;
  let args: string[];
  if ("parse" in group.commands) {
    command = group.commands as Command;
    args = rest;
  } else {
    const [sub, ...subArgs] = rest;
    if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
      io[sub === undefined ? "stderr" : "stdout"].write(`${group.usage}\n`);
      return sub === undefined ? EXIT_USAGE : EXIT_OK;
    }
    const found = group.commands[sub];
    if (!found) return usageError(io, `unknown command "${name} ${sub}"`, group.usage);
    command = found;
    args = subArgs;
  }

  let url = "";
  let credential: Credential | undefined;
  try {
    const parsed = command.parse(args);
    if (parsed.help) {
      io.stdout.write(`${command.usage}\n`);
      return EXIT_OK;
    }
    url = parsed.url ?? io.env.SLUICE_URL ?? DEFAULT_URL;
    credential = credentialOf(parsed.token, io.env.SLUICE_TOKEN);
    const token = credential?.token;
    const ctx: CommandContext = {
      client:
        typeof io.client === "function"
          ? io.client(url, token)
          : (io.client ?? new SluiceClient({ url, ...(token === undefined ? {} : { token }) })),
      stdin: io.stdin,
      out: io.stdout,
      err: io.stderr,
      json: parsed.json,
      signal: io.signal ?? new AbortController().signal,
      env: io.env,
    };
    await parsed.run(ctx);
    return EXIT_OK;
  } catch (err) {
    if (err instanceof UsageError) return usageError(io, err.message, err.usage);
    line(io.stderr, redact(errorLine(err, url) + credentialHint(err, credential), credential));
    return EXIT_ERROR;
  }
}

/** The credential a command sends, and where it came from (for error messages, never its value). */
interface Credential {
  token: string;
  source: "--token" | "$SLUICE_TOKEN";
}

/** `--token`, else $SLUICE_TOKEN (an empty one counts as unset); surrounding whitespace is dropped. */
function credentialOf(flag: string | undefined, env: string | undefined): Credential | undefined {
  const given =
    flag !== undefined
      ? { token: flag.trim(), source: "--token" as const }
      : env !== undefined && env.trim() !== ""
        ? { token: env.trim(), source: "$SLUICE_TOKEN" as const }
        : undefined;
  if (given === undefined) return undefined;
  if (given.token === "") throw new UsageError("--token is empty");
  // Checked here so that no later error (fetch's own, say) quotes a malformed value.
  if (!/^[\x21-\x7e]+$/.test(given.token)) {
    throw new UsageError(
      `the credential in ${given.source} is not an API key or token: it holds spaces or control characters`,
    );
  }
  return given;
}

/** What to do about a 401: say whether a credential was sent at all, and where it came from. */
function credentialHint(err: unknown, credential: Credential | undefined): string {
  if (!isSluiceApiError(err, "unauthorized")) return "";
  return credential === undefined
    ? " (no credential was given: pass an API key or token with --token or $SLUICE_TOKEN)"
    : ` (the server refused the credential from ${credential.source})`;
}

/** The line with the credential blanked out, should any error have quoted it. */
function redact(text: string, credential: Credential | undefined): string {
  return credential === undefined ? text : text.split(credential.token).join("[redacted]");
}

function usageError(io: CliIO, message: string, usage: string | undefined): number {
  line(io.stderr, `error: usage: ${message}`);
  if (usage) io.stderr.write(`\n${usage}\n`);
  return EXIT_USAGE;
}

/** `error: <code>: <message>` for an API error, a CLI error, or a failure to connect. */
export function errorLine(err: unknown, url: string): string {
  if (err instanceof CliError) return `error: ${err.code}: ${err.message}`;
  const e = err as { code?: unknown; status?: unknown; cause?: unknown };
  if (err instanceof Error && typeof e.code === "string" && typeof e.status === "number") {
    // The client's own code for no answer at all: say where it was asked.
    if (e.code === "network_error") {
      return `error: network_error: cannot reach ${url}: ${err.message}`;
    }
    return `error: ${e.code}: ${err.message}`;
  }
  // fetch's own failure, unwrapped: the reason is in its cause (ECONNREFUSED, ENOTFOUND, …).
  const cause = e.cause as { code?: unknown; message?: unknown } | undefined;
  if (err instanceof TypeError && cause !== undefined) {
    const reason = typeof cause.code === "string" ? cause.code : String(cause.message);
    return `error: network_error: cannot reach ${url}: ${err.message} (${reason})`;
  }
  return `error: internal: ${err instanceof Error ? err.message : String(err)}`;
}
