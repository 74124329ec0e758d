import type { Context, MiddlewareHandler } from "hono";
import { unauthorized } from "../auth/api-keys.js";
import { Authenticator } from "../auth/authenticator.js";
import { ANONYMOUS, type Principal } from "../auth/principal.js";
import type { StreamLimiter } from "../auth/rate-limit.js";
import { RateLimiter } from "../auth/rate-limit.js";
import { allows, allowsAnyOf, isAdmin, type Operation, type ResourceKind } from "../auth/scopes.js";
import { Secret } from "../auth/secret.js";
import type { AuthConfig } from "../config.js";
import { SluiceError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { KeyStore } from "../meta/key-store.js";
import type { AppAuth } from "./app.js";
import { matchRoute, type Permission } from "./permissions.js";
import { wantsEventStream } from "./sse.js";

declare module "hono" {
  interface ContextVariableMap {
    principal: Principal;
  }
}

export const WWW_AUTHENTICATE = 'Bearer realm="sluice"';

/**
 * Authenticates the request, checks the route's permission against the names in its path and
 * takes one request from the principal's rate. It runs before the body is read, so a caller
 * without the right credential costs a header parse, never a storage call.
 */
export function authMiddleware(
  options: Pick<AppAuth, "authenticator" | "rateLimit" | "now">,
  logger: Logger,
): MiddlewareHandler {
  const limiter = new RateLimiter(options.now);
  return async (c, next) => {
    const started = Date.now();
    let status: number | undefined;
    try {
      await check(c, next);
      status = c.res.status;
    } catch (err) {
      status = err instanceof SluiceError ? err.status : 500;
      throw err;
    } finally {
      // The principal's id only: never the credential, and the path without its query.
      logger.debug(
        {
          method: c.req.method,
          path: c.req.path,
          status,
          principal: c.get("principal")?.id,
          ms: Date.now() - started,
        },
        "request",
      );
    }
  };

  async function check(c: Context, next: () => Promise<void>): Promise<void> {
    // Preflights carry no credentials by design; CORS answers the allowed ones before this.
    if (c.req.method === "OPTIONS") return next();
    const route = matchRoute(c.req.method, c.req.path);
    if (route?.permission.need === "public") return next();
    const principal = await authenticate(c, options.authenticator, route?.key);
    c.set("principal", principal);
    // Unknown paths need admin: a route missing from the table is refused, not served.
    const permission: Permission = route?.permission ?? { need: "admin" };
    if (!permitted(principal, permission, route?.params ?? {})) {
      throw new SluiceError("forbidden", "the credentials do not allow this request");
    }
    const rate = principal.rateLimit ?? (principal.kind === "anonymous" ? null : options.rateLimit);
    if (rate) {
      const admission = limiter.take(principal.id, rate);
      if (!admission.ok) {
        c.header("Retry-After", String(admission.retryAfterS));
        throw new SluiceError(
          "rate_limited",
          "too many requests; retry after Retry-After seconds",
          {
            details: { retryAfterSeconds: admission.retryAfterS },
          },
        );
      }
    }
    await next();
  }
}

/** The one route that takes a credential in its URL: EventSource cannot set headers. */
const EVENT_STREAM_ROUTE = "GET /v1/topics/{topic}/partitions/{partition}/records";

async function authenticate(
  c: Context,
  authenticator: Authenticator | undefined,
  route: string | undefined,
): Promise<Principal> {
  if (!authenticator) return ANONYMOUS;
  const header = c.req.header("authorization");
  try {
    if (header !== undefined)
      return await authenticator.authenticate(Authenticator.fromHeader(header), "header");
    // EventSource cannot set headers: the event-stream route alone takes a token in its URL.
    const queryToken = c.req.query("access_token");
    if (
      queryToken !== undefined &&
      route === EVENT_STREAM_ROUTE &&
      wantsEventStream(c.req.header("accept"))
    ) {
      return await authenticator.authenticate(new Secret(queryToken), "query");
    }
    throw unauthorized("missing");
  } catch (err) {
    if (err instanceof SluiceError && err.code === "unauthorized") {
      c.header("WWW-Authenticate", `${WWW_AUTHENTICATE}, error="invalid_token"`);
    }
    throw err;
  }
}

function permitted(principal: Principal, permission: Permission, params: Record<string, string>) {
  const { scopes } = principal;
  switch (permission.need) {
    case "public":
      return true;
    case "admin":
      return isAdmin(scopes);
    case "listed":
      return true;
    case "describe": {
      const topic = params.topic ?? "";
      return allows(scopes, "produce", "topic", topic) || allows(scopes, "consume", "topic", topic);
    }
    case "resource": {
      const name = params[permission.kind] ?? "";
      return allows(scopes, permission.operation, permission.kind, name);
    }
  }
}

/** Refuses the request unless its principal may do `operation` on every topic named in its body. */
export function authorizeTopics(
  c: Context,
  operation: Exclude<Operation, "admin">,
  topics: Iterable<string>,
): void {
  const principal = c.get("principal");
  for (const topic of topics) {
    if (!allows(principal.scopes, operation, "topic", topic)) {
      throw new SluiceError("forbidden", "the credentials do not allow this request", {
        details: { topic },
      });
    }
  }
}

/** Whether the request's principal may see `name` in a list of topics or groups. */
export function visible(c: Context, kind: ResourceKind, name: string): boolean {
  const { scopes } = c.get("principal");
  if (!allowsAnyOf(scopes, kind)) return false;
  return kind === "topic"
    ? allows(scopes, "consume", "topic", name) || allows(scopes, "produce", "topic", name)
    : allows(scopes, "consume", "group", name);
}

/** Opens an event stream for the principal, or refuses it with 429 when it has too many open. */
export function streamSlot(c: Context, streams: StreamLimiter): () => void {
  const release = streams.acquire(c.get("principal").id);
  if (!release) {
    c.header("Retry-After", "1");
    throw new SluiceError(
      "rate_limited",
      `at most ${streams.maxPerPrincipal} open event streams per credential`,
    );
  }
  return release;
}

/** The app's authentication from the server configuration, on the given key store. */
export function authFromConfig(config: AuthConfig, keys: KeyStore): Omit<AppAuth, "now"> {
  return {
    authenticator:
      config.mode === "required"
        ? new Authenticator({ keys, jwt: config.jwt, keyCacheMs: config.keyCacheMs })
        : undefined,
    keys,
    jwt: config.jwt,
    rateLimit: config.rateLimit,
    maxStreams: config.maxStreams,
  };
}
