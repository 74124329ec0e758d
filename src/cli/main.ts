import { parseArgs } from "node:util";
import { serverConfigFromEnv, type ServerConfig } from "../config.js";
import { runMaintenanceOnce } from "./maintenance.js";
import { runServer } from "./serve.js";

const usage = `usage:
  sluice serve [--host HOST] [--port PORT] [--data-dir DIR]
      Runs the HTTP API (embedded storage unless SLUICE_BUCKET / SLUICE_TABLE are set).
  sluice maintenance [--topic TOPIC] [--data-dir DIR]
      Runs one maintenance pass (rolls, retention, cleanup) against the configured storage and
      prints its report as JSON.

Environment: HOST, PORT, SLUICE_DATA_DIR, SLUICE_BUCKET, SLUICE_TABLE, SLUICE_* (see README).`;

const commands: Record<string, (args: string[]) => Promise<void>> = {
  serve: async (args) => {
    const { values } = parseArgs({
      args,
      options: {
        host: { type: "string" },
        port: { type: "string" },
        "data-dir": { type: "string" },
      },
      strict: true,
    });
    await runServer(
      configWith({ HOST: values.host, PORT: values.port, SLUICE_DATA_DIR: values["data-dir"] }),
    );
  },
  maintenance: async (args) => {
    const { values } = parseArgs({
      args,
      options: { topic: { type: "string" }, "data-dir": { type: "string" } },
      strict: true,
    });
    const report = await runMaintenanceOnce(
      configWith({ SLUICE_DATA_DIR: values["data-dir"] }),
      values.topic,
    );
    console.log(JSON.stringify(report, null, 2));
  },
};

/** The environment's configuration, with the flags that were given taking precedence. */
function configWith(flags: Record<string, string | undefined>): ServerConfig {
  const given = Object.entries(flags).filter(([, v]) => v !== undefined);
  return serverConfigFromEnv({ ...process.env, ...Object.fromEntries(given) });
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  const command = name === undefined ? undefined : commands[name];
  if (!command) {
    console.error(usage);
    process.exit(name === undefined || name === "--help" ? 0 : 2);
  }
  await command(rest);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
