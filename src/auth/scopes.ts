import { SluiceError } from "../errors.js";
import { isValidName } from "../log/names.js";

/**
 * Scopes (docs/rfcs/0005-auth-and-limits.md §1): `operation:kind:pattern`, or `admin` alone.
 * A pattern is an exact name or a prefix ending in `*`; both are checked against the name
 * rules, so a pattern can never match a name outside them.
 */

export const OPERATIONS = ["produce", "consume", "admin"] as const;
export type Operation = (typeof OPERATIONS)[number];
export const RESOURCE_KINDS = ["topic", "group"] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

export type Scope =
  | { operation: "admin" }
  | {
      operation: "produce" | "consume";
      kind: ResourceKind;
      /** The exact name, or the prefix when `prefix` is true. */
      name: string;
      prefix: boolean;
    };

/** The longest scope list a key or token may carry: it is read on every request. */
export const MAX_SCOPES = 64;

/** Parses one scope string, or undefined when it is not one. */
export function parseScope(text: string): Scope | undefined {
  if (text === "admin") return { operation: "admin" };
  const parts = text.split(":");
  if (parts.length !== 3) return undefined;
  const [operation, kind, pattern] = parts as [string, string, string];
  if (operation !== "produce" && operation !== "consume") return undefined;
  if (kind !== "topic" && kind !== "group") return undefined;
  if (operation === "produce" && kind === "group") return undefined;
  const prefix = pattern.endsWith("*");
  const name = prefix ? pattern.slice(0, -1) : pattern;
  // An empty prefix (`*`) matches every name; otherwise the prefix must itself be name-shaped.
  if (prefix ? name !== "" && !/^[a-zA-Z0-9._-]{1,248}$/.test(name) : !isValidName(name)) {
    return undefined;
  }
  return { operation, kind, name, prefix };
}

/** Parses a list of scope strings; any bad one is an `invalid_request` naming it. */
export function parseScopes(texts: readonly string[]): Scope[] {
  if (texts.length > MAX_SCOPES) {
    throw new SluiceError("invalid_request", `at most ${MAX_SCOPES} scopes`);
  }
  return texts.map((text) => {
    const scope = parseScope(text);
    if (!scope) {
      throw new SluiceError(
        "invalid_request",
        'a scope is "admin" or operation:kind:pattern, e.g. produce:topic:events.*',
        { details: { scope: text.slice(0, 300) } },
      );
    }
    return scope;
  });
}

export function formatScope(scope: Scope): string {
  if (scope.operation === "admin") return "admin";
  return `${scope.operation}:${scope.kind}:${scope.name}${scope.prefix ? "*" : ""}`;
}

function matches(scope: Scope, operation: Operation, kind: ResourceKind, name: string): boolean {
  if (scope.operation === "admin") return true;
  if (scope.operation !== operation || scope.kind !== kind) return false;
  return scope.prefix ? name.startsWith(scope.name) : name === scope.name;
}

/** Whether the scopes allow `operation` on the named topic or group. `admin` allows everything. */
export function allows(
  scopes: readonly Scope[],
  operation: Operation,
  kind: ResourceKind,
  name: string,
): boolean {
  return scopes.some((s) => matches(s, operation, kind, name));
}

export function isAdmin(scopes: readonly Scope[]): boolean {
  return scopes.some((s) => s.operation === "admin");
}

/** Whether the scopes allow anything at all on resources of this kind (to see a filtered list). */
export function allowsAnyOf(scopes: readonly Scope[], kind: ResourceKind): boolean {
  return scopes.some((s) => s.operation === "admin" || s.kind === kind);
}

/**
 * Whether `held` covers everything `wanted` allows: a key may mint tokens only for what it may
 * do itself. A prefix covers the exact names and longer prefixes that start with it.
 */
export function covers(held: readonly Scope[], wanted: Scope): boolean {
  if (isAdmin(held)) return true;
  if (wanted.operation === "admin") return false;
  return held.some(
    (h) =>
      h.operation === wanted.operation &&
      h.kind === wanted.kind &&
      (h.prefix ? wanted.name.startsWith(h.name) : !wanted.prefix && wanted.name === h.name),
  );
}
