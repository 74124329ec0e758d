import { generateApiKey, newApiKey } from "../../auth/api-keys.js";
import type { CreateKeyRequest, CreatedApiKey } from "../../client/index.js";
import { serverConfigFromEnv, type ServerConfig } from "../../config.js";
import { CreateKeyBody } from "../../http/schemas.js";
import { openStores } from "../../stores.js";
import { CliError } from "../context.js";

/**
 * `sluice keys create --direct`: a key written straight into the metadata store, with no server
 * and no credential. The stores are opened from the environment exactly as `sluice serve` opens
 * them (SQLite in the data directory, or DynamoDB when SLUICE_TABLE is set), so this is how the
 * first admin key is made, on a laptop or against the cloud table with AWS credentials.
 * Imported only by that command: it loads the server's configuration and storage adapters.
 */

/** The request's fields as the flags that set them, for error messages. */
const flagOf: Record<string, string> = {
  scopes: "--scope",
  description: "--description",
  expiresInSeconds: "--expires-in",
  rateLimit: "--rate",
};

export async function createKeyDirect(
  request: CreateKeyRequest,
  options: {
    env: Record<string, string | undefined>;
    /** `--data-dir`, over $SLUICE_DATA_DIR as with `sluice serve`. */
    dataDir?: string | undefined;
    now?: number;
  },
): Promise<{ created: CreatedApiKey; metadata: string }> {
  // The server's own validation of `POST /v1/auth/keys`, so both ways make the same keys.
  const parsed = CreateKeyBody.safeParse(request);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const field = String(issue.path[0] ?? "");
      return `${flagOf[field] ?? field}: ${issue.message}`;
    });
    throw new CliError("invalid_request", problems.join("; "));
  }
  const body = parsed.data;
  const config = configFrom(options.env, options.dataDir);
  const createdAt = options.now ?? Date.now();
  const { record, key } = generateApiKey(newApiKey(body, createdAt), createdAt);
  const { store, meta, description } = await openStores(config);
  try {
    await meta.putKey(record);
  } finally {
    await meta.close();
    await store.close();
  }
  const { secretHash: _, ...info } = record;
  return { created: { ...info, key: key.reveal() }, metadata: description.metadata! };
}

function configFrom(
  env: Record<string, string | undefined>,
  dataDir: string | undefined,
): ServerConfig {
  try {
    return serverConfigFromEnv({
      ...env,
      ...(dataDir === undefined ? {} : { SLUICE_DATA_DIR: dataDir }),
    });
  } catch (err) {
    throw new CliError("invalid_config", err instanceof Error ? err.message : String(err));
  }
}
