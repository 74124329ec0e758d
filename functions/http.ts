/**
 * AWS Lambda entry point for the HTTP API, behind a Function URL or an API Gateway HTTP API
 * (both send the payload format 2.0 event, which Hono's adapter reads).
 *
 * The log is built once per instance, outside the handler, so warm invocations reuse the
 * clients and the object cache. An instance serves one request at a time, so a request's own
 * records are the whole flush: lingering would only add latency.
 *
 * Authentication is always on here, whatever SLUICE_AUTH says (docs/rfcs/0005-auth-and-limits.md
 * §1): every route but the public ones needs an API key or a token. The stack passes the ARN of
 * the token signing secret (SLUICE_JWT_SECRET_ARN), never its value; the secret is read from
 * Secrets Manager once, at init.
 */
import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { defaultIsContentTypeBinary, handle } from "hono/aws-lambda";
import { MIN_SECRET_BYTES } from "../src/auth/jwt.js";
import { Secret } from "../src/auth/secret.js";
import { serverConfigFromEnv, type AuthConfig } from "../src/config.js";
import { GroupService } from "../src/groups/service.js";
import { createApp } from "../src/http/app.js";
import { authFromConfig } from "../src/http/auth.js";
import { SluiceLog } from "../src/log/log.js";
import { logger } from "../src/logger.js";
import { openStores } from "../src/stores.js";

/**
 * The authentication settings with the token signing secret read from Secrets Manager when
 * `jwtSecretArn` is set (one GetSecretValue, by ARN); unchanged otherwise. The secret must be a
 * SecretString of at least MIN_SECRET_BYTES: anything else throws, so a misconfigured function
 * fails at init instead of refusing every token. The value is held only as a Secret, and no
 * error message or log line carries it. The SDK client is loaded only when it is needed; pass
 * `client` to use another (tests).
 */
export async function resolveJwtSecret(
  auth: AuthConfig,
  client?: SecretsManagerClient,
): Promise<AuthConfig> {
  const arn = auth.jwtSecretArn;
  if (arn === undefined) return auth;
  if (auth.jwt.secret !== undefined) {
    throw new Error(
      "set SLUICE_JWT_SECRET or SLUICE_JWT_SECRET_ARN, not both: the token secret has one source",
    );
  }
  const sdk = await import("@aws-sdk/client-secrets-manager");
  const secrets = client ?? new sdk.SecretsManagerClient({});
  let value: string | undefined;
  try {
    ({ SecretString: value } = await secrets.send(
      new sdk.GetSecretValueCommand({ SecretId: arn }),
    ));
  } catch (err) {
    throw new Error(`cannot read the token signing secret ${arn} from Secrets Manager`, {
      cause: err,
    });
  } finally {
    // Read once per instance: no connection is kept for it.
    if (client === undefined) secrets.destroy();
  }
  if (value === undefined || Buffer.byteLength(value, "utf8") < MIN_SECRET_BYTES) {
    throw new Error(
      `the token signing secret ${arn} must be a SecretString of at least ${MIN_SECRET_BYTES} bytes`,
    );
  }
  return { ...auth, jwt: { ...auth.jwt, secret: new Secret(value) } };
}

const config = serverConfigFromEnv();
const auth = await resolveJwtSecret(config.auth);
const { store, meta } = await openStores(config);
const log = new SluiceLog({ store, meta, config: { ...config.log, lingerMs: 0 }, logger });

const groups = new GroupService({ log, meta, config: config.groups, logger });

export const app = createApp({
  log,
  groups,
  maxRequestBytes: config.maxRequestBytes,
  maxRecordsPerRequest: config.maxRecordsPerRequest,
  logger,
  maintenance: false,
  // The adapter buffers whole responses: an event stream answers one batch (or one wait) and
  // ends, and EventSource reconnects with Last-Event-ID.
  sse: { ...config.sse, bounded: true },
  corsOrigins: config.corsOrigins,
  // Reachable from the internet (a public Function URL, an API Gateway): never off.
  auth: authFromConfig({ ...auth, mode: "required" }, meta),
});
// Event streams are text: sent as is, not grown by a third in base64 against the 6 MB limit.
export const handler = handle(app, {
  isContentTypeBinary: (type) =>
    !/^text\/event-stream\s*(;|$)/i.test(type) && defaultIsContentTypeBinary(type),
});
