import { parseArgs, type ParseArgsConfig } from "node:util";
import type { SluiceClient } from "../client/index.js";

/** Where a command writes: process.stdout / process.stderr, or a test's capture. */
export interface Writer {
  write(chunk: string): unknown;
}

/** Everything a client command touches outside itself, injected so tests can run it in-process. */
export interface CliIO {
  stdin: NodeJS.ReadableStream;
  stdout: Writer;
  stderr: Writer;
  env: Record<string, string | undefined>;
  /** Aborted on SIGINT: long-running commands (consume, produce) stop cleanly. */
  signal?: AbortSignal;
  /**
   * The client, or how to make one for `--url` and `--token` (or $SLUICE_TOKEN); by default
   * `new SluiceClient({ url, token })`.
   */
  client?: SluiceClient | ((url: string, token: string | undefined) => SluiceClient);
}

/** What a parsed command runs with. */
export interface CommandContext {
  readonly client: SluiceClient;
  readonly stdin: NodeJS.ReadableStream;
  readonly out: Writer;
  readonly err: Writer;
  readonly json: boolean;
  readonly signal: AbortSignal;
  /** The environment: what `--direct` and `--local` read the server's configuration from. */
  readonly env: Record<string, string | undefined>;
}

export const DEFAULT_URL = "http://127.0.0.1:8080";

/** Bad arguments: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage?: string,
  ) {
    super(message);
    this.name = "UsageError";
  }
}

/** A failure the CLI itself detects (bad input on stdin, …): `error: <code>: <message>`, exit 1. */
export class CliError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** The options every client command takes, as each command's usage ends with them. */
export const commonOptionsText = `Options: --url URL (default $SLUICE_URL or ${DEFAULT_URL}), --json (machine output),
  --token TOKEN (an API key or a token; default $SLUICE_TOKEN, which keeps it out of \`ps\`).`;

/** The options every client command takes. */
export const commonOptions = {
  url: { type: "string" },
  token: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies NonNullable<ParseArgsConfig["options"]>;

type Options = NonNullable<ParseArgsConfig["options"]>;

/** What parseArgs gives for a command's options plus the common ones. */
export type Values<O extends Options> = ReturnType<
  typeof parseArgs<{
    options: typeof commonOptions & O;
    allowPositionals: true;
    strict: true;
  }>
>["values"];

/** One command: its options, its usage text and what it does with them. */
export interface Command {
  readonly usage: string;
  /** Parses the arguments; usage errors are thrown as UsageError. */
  parse(args: string[]): ParsedCommand;
}

export interface ParsedCommand {
  url: string | undefined;
  token: string | undefined;
  json: boolean;
  help: boolean;
  run(ctx: CommandContext): Promise<void>;
}

export function defineCommand<const O extends Options>(spec: {
  usage: string;
  options: O;
  /** The names of the positional arguments, all required. */
  args: readonly string[];
  run(ctx: CommandContext, values: Values<O>, args: string[]): Promise<void>;
}): Command {
  return {
    usage: spec.usage,
    parse(args) {
      let parsed;
      try {
        parsed = parseArgs({
          args,
          options: { ...commonOptions, ...spec.options },
          allowPositionals: true,
          strict: true,
        });
      } catch (err) {
        throw new UsageError(err instanceof Error ? err.message : String(err), spec.usage);
      }
      const common = parsed.values as {
        url?: string;
        token?: string;
        json?: boolean;
        help?: boolean;
      };
      return {
        url: common.url,
        token: common.token,
        json: common.json ?? false,
        help: common.help ?? false,
        run: (ctx) =>
          spec.run(ctx, parsed.values, positionals(parsed.positionals, spec.args, spec.usage)),
      };
    },
  };
}

/** The positional arguments, exactly `names.length` of them. */
export function positionals(given: string[], names: readonly string[], usage: string): string[] {
  if (given.length < names.length) {
    throw new UsageError(`missing ${names.slice(given.length).join(" and ")}`, usage);
  }
  if (given.length > names.length) {
    throw new UsageError(`unexpected argument ${JSON.stringify(given[names.length])}`, usage);
  }
  return given;
}

/** A non-negative integer flag. */
export function integer(
  value: string | undefined,
  flag: string,
  usage: string,
): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,16}$/.test(value)) {
    throw new UsageError(
      `--${flag} must be a non-negative integer, not ${JSON.stringify(value)}`,
      usage,
    );
  }
  return Number(value);
}

/** Milliseconds since the epoch from an ISO-8601 time (a date is required). */
export function isoTime(value: string, flag: string, usage: string): number {
  const ms = /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : NaN;
  if (Number.isNaN(ms)) {
    throw new UsageError(
      `--${flag} must be an ISO-8601 time such as 2024-05-01T12:00:00Z, not ${JSON.stringify(value)}`,
      usage,
    );
  }
  return ms;
}

/** Writes one line. */
export function line(writer: Writer, text: string): void {
  writer.write(`${text}\n`);
}

/** Resolves once a stream writer that is backed up has drained (or failed). */
export async function drained(writer: Writer): Promise<void> {
  const stream = writer as Partial<NodeJS.WritableStream> & { writableNeedDrain?: boolean };
  if (!stream.writableNeedDrain || !stream.once || !stream.off) return;
  const once = stream.once.bind(stream);
  const off = stream.off.bind(stream);
  await new Promise<void>((resolve) => {
    const done = () => {
      for (const event of ["drain", "error", "close"]) off(event, done);
      resolve();
    };
    for (const event of ["drain", "error", "close"]) once(event, done);
  });
}
