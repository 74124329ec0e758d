/**
 * The floor under any HTTP API on this machine: @hono/node-server with one POST route that
 * parses the JSON body and answers 200, as a child process of the bench. It prints
 * `{"port": N}` once it listens and exits when its stdin closes (so the bench cannot leak it).
 *
 *   node --import tsx bench/hono-server.ts
 */
import { serve } from "@hono/node-server";
import { Hono } from "hono";

const app = new Hono();
app.post("/v1/topics/:topic/records", async (c) => {
  const body = await c.req.json<{ records?: unknown[] }>();
  return c.json({ accepted: body.records?.length ?? 0 }, 200);
});

serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info) => {
  process.stdout.write(`${JSON.stringify({ port: info.port })}\n`);
});
process.stdin.on("close", () => process.exit(0));
process.stdin.resume();
process.on("SIGTERM", () => process.exit(0));
