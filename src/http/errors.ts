import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ZodError } from "zod";
import { SluiceError, type ErrorCode } from "../errors.js";
import type { Logger } from "../logger.js";

/** Which error code a validation failure gets, by the first field it names. */
const codeByField: Record<string, ErrorCode> = {
  topic: "invalid_name",
  name: "invalid_name",
  group: "invalid_name",
  offset: "invalid_offset",
  partition: "invalid_partition",
  keyBase64: "invalid_encoding",
  valueBase64: "invalid_encoding",
  config: "invalid_config",
};

export function validationError(error: ZodError): SluiceError {
  const issue = error.issues[0];
  // Too many records is a size limit, like a body over the byte limit: 413, not 400.
  if (issue?.code === "too_big" && issue.path.length === 1 && issue.path[0] === "records") {
    return new SluiceError("payload_too_large", `records: ${issue.message}`);
  }
  const field = issue?.path.find((p): p is string => typeof p === "string" && p in codeByField);
  const code = field ? codeByField[field]! : "invalid_request";
  const where = issue?.path.length ? `${issue.path.join(".")}: ` : "";
  return new SluiceError(code, `${where}${issue?.message ?? "invalid request"}`, {
    details: {
      issues: error.issues.map((i) => ({ path: i.path.map(String), message: i.message })),
    },
  });
}

export function errorBody(err: SluiceError) {
  return {
    error: {
      code: err.code,
      message: err.message,
      ...(err.details === undefined ? {} : { details: err.details }),
    },
  };
}

/** The central error handler: every failure leaves as `{"error": {code, message}}`. */
export function toErrorResponse(err: unknown, c: Context, logger: Logger): Response {
  const sluiceError = asSluiceError(err);
  if (sluiceError.status >= 500) {
    logger.error({ err, method: c.req.method, path: c.req.path }, "request failed");
  }
  return c.json(errorBody(sluiceError), sluiceError.status as ContentfulStatusCode);
}

function asSluiceError(err: unknown): SluiceError {
  if (err instanceof SluiceError) return err;
  if (err instanceof HTTPException) {
    if (err.status === 400 && /json/i.test(err.message)) {
      return new SluiceError("invalid_json", "the request body is not valid JSON");
    }
    if (err.status === 413) {
      return new SluiceError("payload_too_large", "the request body is too large");
    }
    return new SluiceError(err.status < 500 ? "invalid_request" : "internal", err.message);
  }
  // Internals (stack traces, storage messages) stay in the log, never in the response.
  return new SluiceError("internal", "internal error", { cause: err });
}
