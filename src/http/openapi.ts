import type { z } from "@hono/zod-openapi";
import type { TypedResponse } from "hono";
import { ErrorOut } from "./schemas.js";

/** Pieces every route module's OpenAPI definitions share. */

export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  content: { "application/json": { schema } },
  description,
});

export const errors = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((s) => [s, json(ErrorOut, "error")]));

export const DEFAULT_MAX_RECORDS = 500;
export const DEFAULT_MAX_BYTES = 1024 * 1024;

/** A JSON body serialized by hand; the type records which schema the text follows. */
export function prebuiltJson<T>(text: string): TypedResponse<T, 200, "json"> {
  const response = new Response(text, { headers: { "content-type": "application/json" } });
  return response as unknown as TypedResponse<T, 200, "json">;
}
