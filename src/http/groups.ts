import { createRoute, type OpenAPIHono, type z } from "@hono/zod-openapi";
import type { GroupFetchResult } from "../groups/fetch.js";
import type { GroupService } from "../groups/service.js";
import { authorizeTopics, visible } from "./auth.js";
import { DEFAULT_MAX_BYTES, DEFAULT_MAX_RECORDS, errors, json, prebuiltJson } from "./openapi.js";
import { recordsJson } from "./records.js";
import {
  CommitBody,
  CommitOut,
  GroupDescription,
  GroupFetchBody,
  GroupFetchOut,
  GroupList,
  GroupParams,
  HeartbeatBody,
  JoinBody,
  MemberParams,
  MemberView,
  ResetBody,
  ResetOut,
} from "./schemas.js";

/** The consumer-group routes (docs/rfcs/0002-consumer-groups.md §3). */

const body = <T extends z.ZodType>(schema: T, required = true) => ({
  body: { content: { "application/json": { schema } }, required },
});

const routes = {
  join: createRoute({
    method: "post",
    path: "/v1/groups/{group}/members",
    request: { params: GroupParams, ...body(JoinBody) },
    responses: {
      201: json(MemberView, "joined"),
      200: json(MemberView, "already a live member: a retried join"),
      ...errors(400, 404, 409, 503),
    },
  }),
  heartbeat: createRoute({
    method: "post",
    path: "/v1/groups/{group}/members/{memberId}/heartbeat",
    request: { params: MemberParams, ...body(HeartbeatBody, false) },
    responses: { 200: json(MemberView, "lease renewed"), ...errors(400, 404, 409, 503) },
  }),
  leave: createRoute({
    method: "delete",
    path: "/v1/groups/{group}/members/{memberId}",
    request: { params: MemberParams },
    responses: { 204: { description: "left (or already gone)" }, ...errors(400, 404, 503) },
  }),
  fetch: createRoute({
    method: "post",
    path: "/v1/groups/{group}/members/{memberId}/fetch",
    request: { params: MemberParams, ...body(GroupFetchBody, false) },
    responses: {
      200: json(GroupFetchOut, "records of the member's assigned partitions"),
      ...errors(400, 404, 409, 503),
    },
  }),
  commit: createRoute({
    method: "post",
    path: "/v1/groups/{group}/offsets",
    request: { params: GroupParams, ...body(CommitBody) },
    responses: { 200: json(CommitOut, "committed"), ...errors(400, 404, 409, 416, 503) },
  }),
  reset: createRoute({
    method: "post",
    path: "/v1/groups/{group}/offsets/reset",
    request: { params: GroupParams, ...body(ResetBody) },
    responses: {
      200: json(ResetOut, "reset (or, with dryRun, what would be)"),
      ...errors(400, 404, 409, 416, 503),
    },
  }),
  describe: createRoute({
    method: "get",
    path: "/v1/groups/{group}",
    request: { params: GroupParams },
    responses: {
      200: json(GroupDescription, "members, offsets and lag"),
      ...errors(400, 404, 503),
    },
  }),
  list: createRoute({
    method: "get",
    path: "/v1/groups",
    responses: { 200: json(GroupList, "groups by name"), ...errors(503) },
  }),
  delete: createRoute({
    method: "delete",
    path: "/v1/groups/{group}",
    request: { params: GroupParams },
    responses: { 204: { description: "deleted" }, ...errors(400, 404, 409, 503) },
  }),
};

export function registerGroupRoutes(app: OpenAPIHono, groups: GroupService): void {
  app.openapi(routes.join, async (c) => {
    const { group } = c.req.valid("param");
    const request = c.req.valid("json");
    authorizeTopics(c, "consume", request.topics);
    const { created, view } = await groups.join(group, request);
    return c.json(view, created ? 201 : 200);
  });

  app.openapi(routes.heartbeat, async (c) => {
    const { group, memberId } = c.req.valid("param");
    const { released, topics } = c.req.valid("json") ?? {};
    if (topics) authorizeTopics(c, "consume", topics);
    const view = await groups.heartbeat(group, memberId, {
      released: released?.map(({ topic, partition }) => [topic, partition]),
      topics,
    });
    return c.json(view, 200);
  });

  app.openapi(routes.leave, async (c) => {
    const { group, memberId } = c.req.valid("param");
    await groups.leave(group, memberId);
    return c.body(null, 204);
  });

  app.openapi(routes.fetch, async (c) => {
    const { group, memberId } = c.req.valid("param");
    const request = c.req.valid("json") ?? {};
    const result = await groups.fetch(group, memberId, {
      maxRecords: request.maxRecords ?? DEFAULT_MAX_RECORDS,
      maxBytes: request.maxBytes ?? DEFAULT_MAX_BYTES,
      waitMs: request.waitMs ?? 0,
      autoCommit: request.autoCommit ?? false,
      signal: c.req.raw.signal,
      authorize: (topics) => authorizeTopics(c, "consume", topics),
    });
    return prebuiltJson<z.output<typeof GroupFetchOut>>(groupFetchJson(result));
  });

  app.openapi(routes.commit, async (c) => {
    const { group } = c.req.valid("param");
    const request = c.req.valid("json");
    authorizeTopics(
      c,
      "consume",
      request.offsets.map((o) => o.topic),
    );
    const offsets = await groups.commit(group, request);
    return c.json({ offsets }, 200);
  });

  app.openapi(routes.reset, async (c) => {
    const { group } = c.req.valid("param");
    return c.json(await groups.reset(group, c.req.valid("json")), 200);
  });

  app.openapi(routes.describe, async (c) => {
    const { group } = c.req.valid("param");
    return c.json(await groups.describe(group), 200);
  });

  app.openapi(routes.list, async (c) => {
    const all = await groups.list();
    return c.json({ groups: all.filter((g) => visible(c, "group", g.group)) }, 200);
  });

  app.openapi(routes.delete, async (c) => {
    const { group } = c.req.valid("param");
    await groups.delete(group);
    return c.body(null, 204);
  });
}

/** The member view plus records, which are spliced in as the topic fetch does. */
function groupFetchJson({ view, partitions }: GroupFetchResult): string {
  const parts = partitions.map(
    (p) =>
      `{"topic":${JSON.stringify(p.topic)},"partition":${p.partition},"records":${recordsJson(p.records)},"nextOffset":${p.nextOffset},"logEndOffset":${p.logEndOffset}${p.reset ? `,"reset":${JSON.stringify(p.reset)}` : ""}}`,
  );
  return `${JSON.stringify(view).slice(0, -1)},"partitions":[${parts.join(",")}]}`;
}
