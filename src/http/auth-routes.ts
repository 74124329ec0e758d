import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { generateApiKey, newApiKey } from "../auth/api-keys.js";
import type { Authenticator } from "../auth/authenticator.js";
import { mintToken, type JwtConfig } from "../auth/jwt.js";
import { covers, formatScope, isAdmin, parseScopes } from "../auth/scopes.js";
import { SluiceError } from "../errors.js";
import type { ApiKeyInfo, KeyStore } from "../meta/key-store.js";
import { errors, json } from "./openapi.js";
import type { KeyInfo } from "./schemas.js";
import {
  CreateKeyBody,
  KeyCreatedOut,
  KeyList,
  KeyParams,
  MintTokenBody,
  TokenOut,
} from "./schemas.js";

/** Keys and tokens (docs/rfcs/0005-auth-and-limits.md §1): administered over the API itself. */

/** A minted token's lifetime when the request names none. */
export const DEFAULT_TOKEN_TTL_S = 900;

const routes = {
  createKey: createRoute({
    method: "post",
    path: "/v1/auth/keys",
    request: {
      body: { content: { "application/json": { schema: CreateKeyBody } }, required: true },
    },
    responses: {
      201: json(KeyCreatedOut, "created; the key is in this answer only"),
      ...errors(400, 401, 403, 503),
    },
  }),
  listKeys: createRoute({
    method: "get",
    path: "/v1/auth/keys",
    responses: { 200: json(KeyList, "every key, without secrets"), ...errors(401, 403, 503) },
  }),
  revokeKey: createRoute({
    method: "delete",
    path: "/v1/auth/keys/{keyId}",
    request: { params: KeyParams },
    responses: { 204: { description: "revoked" }, ...errors(400, 401, 403, 404, 503) },
  }),
  mintToken: createRoute({
    method: "post",
    path: "/v1/auth/tokens",
    request: {
      body: { content: { "application/json": { schema: MintTokenBody } }, required: true },
    },
    responses: { 201: json(TokenOut, "a signed token"), ...errors(400, 401, 403, 503) },
  }),
};

export interface AuthRoutesOptions {
  keys: KeyStore;
  jwt: JwtConfig | undefined;
  /** Forgets revoked keys in this process at once; other instances within the key cache time. */
  authenticator: Authenticator | undefined;
  now: () => number;
}

export function registerAuthRoutes(app: OpenAPIHono, options: AuthRoutesOptions): void {
  const { keys, jwt, now } = options;

  app.openapi(routes.createKey, async (c) => {
    const body = c.req.valid("json");
    const createdAt = now();
    const { record, key } = generateApiKey(newApiKey(body, createdAt), createdAt);
    await keys.putKey(record);
    const { secretHash: _, ...info } = record;
    return c.json({ ...info, key: key.reveal() }, 201);
  });

  app.openapi(routes.listKeys, async (c) =>
    c.json({ keys: (await keys.listKeys()).map(keyInfo) }, 200),
  );

  app.openapi(routes.revokeKey, async (c) => {
    const { keyId } = c.req.valid("param");
    if (!(await keys.revokeKey(keyId, now()))) {
      throw new SluiceError("not_found", "no such key", { details: { keyId } });
    }
    options.authenticator?.keys.forget(keyId);
    return c.body(null, 204);
  });

  app.openapi(routes.mintToken, async (c) => {
    const body = c.req.valid("json");
    const principal = c.get("principal");
    if (!jwt?.secret) {
      throw new SluiceError(
        "invalid_request",
        "minting tokens needs SLUICE_JWT_SECRET on the server",
      );
    }
    if (principal.kind === "anonymous") {
      throw new SluiceError("forbidden", "minting tokens needs authentication to be on");
    }
    const scopes = parseScopes(body.scopes);
    // A token may not mint tokens unless it is an admin's, and nothing minted outlives its
    // minter (notAfter below), so no chain of tokens extends a credential's life.
    const mayMint = isAdmin(principal.scopes) || principal.kind === "key";
    if (!mayMint || !scopes.every((s) => covers(principal.scopes, s))) {
      throw new SluiceError("forbidden", "a token may carry only scopes its minter holds");
    }
    const { token, expiresAt } = await mintToken(
      jwt,
      jwt.secret,
      {
        minter: principal.kind === "key" ? principal.id : undefined,
        notAfter: principal.expiresAt,
        subject: body.subject ?? principal.id,
        scopes,
        ttlS: body.ttlSeconds ?? Math.min(DEFAULT_TOKEN_TTL_S, jwt.maxTtlS),
      },
      now(),
    );
    return c.json({ token, expiresAt, scopes: scopes.map(formatScope) }, 201);
  });
}

function keyInfo(key: ApiKeyInfo): typeof KeyInfo._output {
  return {
    id: key.id,
    scopes: key.scopes,
    description: key.description,
    createdAt: key.createdAt,
    expiresAt: key.expiresAt,
    revokedAt: key.revokedAt,
    rateLimit: key.rateLimit,
  };
}
