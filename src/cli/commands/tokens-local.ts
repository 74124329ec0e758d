import { MIN_SECRET_BYTES, mintToken } from "../../auth/jwt.js";
import { formatScope, parseScopes } from "../../auth/scopes.js";
import { Secret } from "../../auth/secret.js";
import type { MintedToken } from "../../client/index.js";
import { serverConfigFromEnv } from "../../config.js";
import { CliError } from "../context.js";

/**
 * `sluice tokens mint --local`: an HS256 token signed here with the shared secret, as a
 * customer's backend or an operator holding the secret would sign one; no server is asked.
 * Issuer, audience and the longest lifetime come from the environment as the server reads them,
 * so the server accepts what this signs. Imported only by that command.
 */
export async function mintTokenLocally(
  request: {
    scopes: string[];
    subject: string;
    ttlSeconds: number | undefined;
    defaultTtlSeconds: number;
  },
  options: { env: Record<string, string | undefined>; secretEnv: string; now?: number },
): Promise<MintedToken> {
  const { env, secretEnv } = options;
  const value = env[secretEnv];
  // Neither message quotes the value: it is the signing secret.
  if (value === undefined || value === "") {
    throw new CliError(
      "invalid_config",
      `--local signs with the secret in $${secretEnv}, which is not set`,
    );
  }
  if (Buffer.byteLength(value) < MIN_SECRET_BYTES) {
    throw new CliError(
      "invalid_config",
      `$${secretEnv} must hold at least ${MIN_SECRET_BYTES} bytes, as the server requires`,
    );
  }
  let jwt;
  try {
    // The secret is checked above; the rest of the configuration as the server reads it.
    jwt = serverConfigFromEnv({ ...env, SLUICE_JWT_SECRET: value }).auth.jwt;
  } catch (err) {
    throw new CliError("invalid_config", err instanceof Error ? err.message : String(err));
  }
  const ttlS = request.ttlSeconds ?? Math.min(request.defaultTtlSeconds, jwt.maxTtlS);
  if (ttlS < 1 || ttlS > jwt.maxTtlS) {
    throw new CliError(
      "invalid_request",
      `--ttl must be 1 to ${jwt.maxTtlS} seconds (SLUICE_JWT_MAX_TTL_S), not ${ttlS}`,
    );
  }
  const scopes = parseScopes(request.scopes);
  const { token, expiresAt } = await mintToken(
    jwt,
    new Secret(value),
    { subject: request.subject, scopes, ttlS },
    options.now,
  );
  return { token, expiresAt, scopes: scopes.map(formatScope) };
}
