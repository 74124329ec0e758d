import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";

/**
 * CORS for browser clients, from the configured origins (`SLUICE_CORS_ORIGINS`). With none
 * configured there is no middleware and no CORS header; an origin that is not allowed gets no
 * CORS header either (its preflight is not answered), so the browser refuses the response.
 */

/** Request headers browsers may send: JSON bodies, auth, SSE resumption, idempotent produce. */
export const CORS_ALLOW_HEADERS = [
  "Content-Type",
  "Authorization",
  "Last-Event-ID",
  "Producer-Id",
  "Producer-Epoch",
  "Producer-Seq",
];

/** Response headers scripts may read beyond the CORS-safelisted ones. */
export const CORS_EXPOSE_HEADERS = [
  "Retry-After",
  "WWW-Authenticate",
  "Producer-Id",
  "Producer-Epoch",
  "Producer-Seq",
];

export const CORS_ALLOW_METHODS = ["GET", "HEAD", "POST", "DELETE"];

/** How long a browser may cache a preflight answer. */
export const CORS_MAX_AGE_S = 600;

/** The middleware for `origins` (`["*"]` allows any), or undefined when CORS is off. */
export function corsMiddleware(origins: readonly string[]): MiddlewareHandler | undefined {
  if (origins.length === 0) return undefined;
  const anyOrigin = origins.includes("*");
  const allowed = new Set(origins);
  const handler = cors({
    origin: anyOrigin ? "*" : (origin) => (allowed.has(origin) ? origin : null),
    allowMethods: CORS_ALLOW_METHODS,
    allowHeaders: CORS_ALLOW_HEADERS,
    exposeHeaders: CORS_EXPOSE_HEADERS,
    maxAge: CORS_MAX_AGE_S,
  });
  return async (c, next) => {
    const origin = c.req.header("origin");
    if (origin !== undefined && (anyOrigin || allowed.has(origin))) return handler(c, next);
    await next();
    // The answer depends on the Origin header, so shared caches must key on it.
    if (!anyOrigin) c.header("Vary", "Origin", { append: true });
  };
}
