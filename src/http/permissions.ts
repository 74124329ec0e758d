import type { Operation, ResourceKind } from "../auth/scopes.js";

/**
 * What each route needs (docs/rfcs/0005-auth-and-limits.md §1), checked before the request is
 * parsed or any storage touched. A test fails when a route of the OpenAPI document has no
 * entry here, so a new route cannot ship unguarded.
 *
 * - `public`: no credential (health, the API description).
 * - `admin`: the `admin` scope.
 * - `resource`: the operation on the topic or group named in the path.
 * - `describe`: produce or consume on the topic (producers read partition counts too).
 * - `listed`: any valid credential; the handler filters the answer to what it may see.
 *
 * Some routes also name topics in their bodies (a group's subscription, committed offsets):
 * their handlers check those with `authorizeTopics` once the body is parsed.
 */
export type Permission =
  | { need: "public" }
  | { need: "admin" }
  | { need: "resource"; operation: "produce" | "consume"; kind: ResourceKind }
  | { need: "describe" }
  | { need: "listed" };

const publicRoute: Permission = { need: "public" };
const admin: Permission = { need: "admin" };
const listed: Permission = { need: "listed" };
const on = (operation: Exclude<Operation, "admin">, kind: ResourceKind): Permission => ({
  need: "resource",
  operation,
  kind,
});

/** Keyed by `METHOD path` with the OpenAPI document's `{param}` syntax. */
export const routePermissions: Readonly<Record<string, Permission>> = {
  "GET /healthz": publicRoute,
  "GET /v1/openapi.json": publicRoute,
  "GET /v1/metrics": admin,
  "POST /v1/admin/maintenance": admin,

  "POST /v1/topics": admin,
  "GET /v1/topics": listed,
  "GET /v1/topics/{topic}": { need: "describe" },
  "DELETE /v1/topics/{topic}": admin,
  "POST /v1/topics/{topic}/records": on("produce", "topic"),
  "GET /v1/topics/{topic}/partitions/{partition}/records": on("consume", "topic"),
  "GET /v1/topics/{topic}/partitions/{partition}/offsets": on("consume", "topic"),

  "POST /v1/groups/{group}/members": on("consume", "group"),
  "POST /v1/groups/{group}/members/{memberId}/heartbeat": on("consume", "group"),
  "DELETE /v1/groups/{group}/members/{memberId}": on("consume", "group"),
  "POST /v1/groups/{group}/members/{memberId}/fetch": on("consume", "group"),
  "POST /v1/groups/{group}/offsets": on("consume", "group"),
  "POST /v1/groups/{group}/offsets/reset": admin,
  "GET /v1/groups/{group}": on("consume", "group"),
  "GET /v1/groups": listed,
  "DELETE /v1/groups/{group}": admin,

  "POST /v1/auth/keys": admin,
  "GET /v1/auth/keys": admin,
  "DELETE /v1/auth/keys/{keyId}": admin,
  // Any credential may ask; the handler mints only scopes the caller holds itself.
  "POST /v1/auth/tokens": listed,
};

export interface MatchedRoute {
  /** The table's key, `METHOD /path/{param}`. */
  key: string;
  permission: Permission;
  params: Record<string, string>;
}

interface CompiledRoute {
  key: string;
  method: string;
  pattern: RegExp;
  names: string[];
  permission: Permission;
}

const compiled: CompiledRoute[] = Object.entries(routePermissions).map(([key, permission]) => {
  const [method, path] = key.split(" ") as [string, string];
  const names: string[] = [];
  const source = path
    .split("/")
    .map((part) => {
      const param = /^\{(\w+)\}$/.exec(part);
      if (!param) return part.replace(/[.*+?^$()|[\]\\]/g, "\\$&");
      names.push(param[1]!);
      return "([^/]+)";
    })
    .join("/");
  return { key, method, pattern: new RegExp(`^${source}/?$`), names, permission };
});

/**
 * The route a request will reach and its decoded path parameters (decoded as the router does,
 * so the name checked is the name served), or undefined for a path no route serves.
 */
export function matchRoute(method: string, path: string): MatchedRoute | undefined {
  const m = method === "HEAD" ? "GET" : method;
  for (const route of compiled) {
    if (route.method !== m) continue;
    const match = route.pattern.exec(path);
    if (!match) continue;
    const params: Record<string, string> = {};
    try {
      route.names.forEach((name, i) => (params[name] = decodeURIComponent(match[i + 1]!)));
    } catch {
      return undefined;
    }
    return { key: route.key, permission: route.permission, params };
  }
  return undefined;
}
