import type { ServerConfig } from "../config.js";
import { SluiceLog } from "../log/log.js";
import type { MaintenanceReport } from "../log/maintenance.js";
import { logger } from "../logger.js";
import { openStores } from "../stores.js";

/** One maintenance pass against the configured stores, as the scheduled function runs it. */
export async function runMaintenanceOnce(
  config: ServerConfig,
  topic: string | undefined,
): Promise<MaintenanceReport> {
  const { store, meta } = await openStores(config);
  const log = new SluiceLog({ store, meta, config: config.log, logger });
  try {
    return await log.runMaintenance(topic === undefined ? {} : { topic });
  } finally {
    await log.close();
    await meta.close();
    await store.close();
  }
}
