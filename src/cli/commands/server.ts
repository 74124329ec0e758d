import { parseArgs } from "node:util";
import { serverConfigFromEnv, type ServerConfig } from "../../config.js";
import { runMaintenanceOnce } from "../maintenance.js";
import { runServer } from "../serve.js";

/** The commands that run Sluice itself, against the storage the environment configures. */

export const serverCommands: Record<string, (args: string[]) => Promise<void>> = {
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
