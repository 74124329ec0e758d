import type { CliIO, Writer } from "./context.js";

const usage = `usage:
  sluice serve [--host HOST] [--port PORT] [--data-dir DIR]
      Runs the HTTP API (embedded storage unless SLUICE_BUCKET / SLUICE_TABLE are set).
  sluice maintenance [--topic TOPIC] [--data-dir DIR]
      Runs one maintenance pass (rolls, retention, cleanup) against the configured storage and
      prints its report as JSON.

  sluice topics create|list|describe|delete ...
  sluice produce TOPIC ...          stdin lines as records
  sluice consume TOPIC ...          records as stdout lines
  sluice groups list|describe|reset-offsets|delete ...
  sluice keys create|list|revoke ...   API keys (shown once, at creation)
  sluice tokens mint ...               short-lived tokens (JWTs)
      These talk to a running server: --url URL (default $SLUICE_URL or http://127.0.0.1:8080),
      --token TOKEN (an API key or a token; default $SLUICE_TOKEN), --json for machine
      output; \`sluice COMMAND --help\` describes each.
  sluice keys create --direct --scope admin [--data-dir DIR]
      Writes a key straight into the configured metadata store, with no server: the first
      admin key.
  sluice tokens mint --local --scope SCOPE ...
      Signs a token here with $SLUICE_JWT_SECRET, with no server.

Environment: HOST, PORT, SLUICE_DATA_DIR, SLUICE_BUCKET, SLUICE_TABLE, SLUICE_URL, SLUICE_TOKEN,
SLUICE_AUTH, SLUICE_JWT_SECRET, SLUICE_* (see README).`;

const serverCommandNames = new Set(["serve", "maintenance"]);
/**
 * Client commands; `keys create --direct` and `tokens mint --local` among them import what they
 * need of the server only when they run.
 */
const clientCommandNames = new Set(["topics", "produce", "consume", "groups", "keys", "tokens"]);
/** Commands that stop cleanly on the first Ctrl-C: they get an abort signal instead. */
const interruptible = new Set(["produce", "consume"]);

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name !== undefined && serverCommandNames.has(name)) {
    // Imported only here: the client commands never load the storage adapters.
    const { serverCommands } = await import("./commands/server.js");
    return serverCommands[name]!(rest);
  }
  if (name !== undefined && clientCommandNames.has(name)) {
    return runClientCommand(name, argv);
  }
  const help = name === undefined || name === "--help" || name === "-h" || name === "help";
  if (help) console.log(usage);
  else console.error(`error: usage: unknown command ${JSON.stringify(name)}\n\n${usage}`);
  process.exit(help ? 0 : 2);
}

async function runClientCommand(name: string, argv: string[]): Promise<void> {
  const { runCli, EXIT_INTERRUPTED } = await import("./run.js");
  const interrupt = new AbortController();
  if (interruptible.has(name)) {
    process.on("SIGINT", () => {
      // A second Ctrl-C does not wait for the clean stop.
      if (interrupt.signal.aborted) process.exit(EXIT_INTERRUPTED);
      interrupt.abort();
    });
  }
  // A closed pipe (`sluice consume … | head`) ends the command as Ctrl-C would, without a crash.
  let stdoutClosed = false;
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    stdoutClosed = true;
    interrupt.abort();
    if (err.code !== "EPIPE") console.error(`error: output: ${err.message}`);
  });
  const stdout: Writer & Partial<NodeJS.WritableStream> = {
    write: (chunk: string) => stdoutClosed || process.stdout.write(chunk),
    get writableNeedDrain() {
      return !stdoutClosed && process.stdout.writableNeedDrain;
    },
    once: (event: string, fn: () => void) => process.stdout.once(event, fn),
    off: (event: string, fn: () => void) => process.stdout.off(event, fn),
  } as Writer & Partial<NodeJS.WritableStream>;
  const io: CliIO = {
    stdin: process.stdin,
    stdout,
    stderr: process.stderr,
    env: process.env,
    signal: interrupt.signal,
  };
  let code = await runCli(argv, io);
  if (code === 0 && name === "produce" && interrupt.signal.aborted && !stdoutClosed) {
    code = EXIT_INTERRUPTED;
  }
  // Exits once stdout has taken everything (it is asynchronous on some platforms), so that
  // neither a paused stdin nor an idle connection keeps the process alive.
  if (stdoutClosed) process.exit(code);
  process.stdout.write("", () => process.exit(code));
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
