import { parseArgs } from "node:util";
import { serverConfigFromEnv } from "../config.js";
import { runServer } from "./serve.js";

const usage = `usage: sluice serve [--host HOST] [--port PORT] [--data-dir DIR]

Environment: HOST, PORT, SLUICE_DATA_DIR, SLUICE_LINGER_MS, SLUICE_FLUSH_BYTES (see README).`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command !== "serve") {
    console.error(usage);
    process.exit(command === undefined || command === "--help" ? 0 : 2);
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      host: { type: "string" },
      port: { type: "string" },
      "data-dir": { type: "string" },
    },
    strict: true,
  });
  const config = serverConfigFromEnv({
    ...process.env,
    ...(values.host === undefined ? {} : { HOST: values.host }),
    ...(values.port === undefined ? {} : { PORT: values.port }),
    ...(values["data-dir"] === undefined ? {} : { SLUICE_DATA_DIR: values["data-dir"] }),
  });
  await runServer(config);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
