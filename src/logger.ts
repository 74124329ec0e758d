import { pino } from "pino";

/**
 * Where a credential could sit in a logged object. Credentials travel as `Secret`s, which print
 * `[redacted]` anyway; this is the second line, for a header or field logged by mistake.
 */
export const REDACTED_PATHS = [
  "authorization",
  "cookie",
  "access_token",
  "token",
  "secret",
  "key",
  "*.authorization",
  "*.cookie",
  "*.access_token",
  "*.token",
  "*.secret",
  "*.key",
  "*.headers.authorization",
  "*.headers.cookie",
];

/** Structured JSON logs on stdout; `LOG_LEVEL` picks the level (default `info`, `silent` in tests). */
export const logger = pino({
  level: process.env.LOG_LEVEL ?? (process.env.VITEST ? "silent" : "info"),
  base: { service: "sluice" },
  redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
});

export type Logger = typeof logger;
