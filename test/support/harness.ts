import { logConfigDefaults, type LogConfig } from "../../src/config.js";
import { GroupService } from "../../src/groups/service.js";
import type { GroupConfig } from "../../src/config.js";
import { createApp } from "../../src/http/app.js";
import { SluiceLog } from "../../src/log/log.js";
import type { GroupStore } from "../../src/meta/group-store.js";
import type { MetaStore } from "../../src/meta/meta-store.js";
import type { ObjectStore } from "../../src/storage/object-store.js";
import { CountingObjectStore } from "./counting-store.js";

export interface Harness {
  log: SluiceLog;
  groups: GroupService;
  store: CountingObjectStore;
  meta: MetaStore & GroupStore;
  request: (path: string, init?: RequestInit) => Promise<Response>;
  /** Sends JSON and returns the status and the parsed body (undefined when there is none). */
  call: <T = any>(
    method: string,
    path: string,
    body?: unknown,
  ) => Promise<{ status: number; body: T }>;
}

/** Consumer groups' clock and settings; tests drive leases with a fake clock. */
export interface GroupOptions {
  now?: () => number;
  config?: Partial<GroupConfig>;
}

export function makeHarness(
  stores: { store: ObjectStore; meta: MetaStore & GroupStore },
  config: Partial<LogConfig> = {},
  maxRequestBytes = 8 * 1024 * 1024,
  groupOptions: GroupOptions = {},
): Harness {
  const store = new CountingObjectStore(stores.store);
  const log = new SluiceLog({
    store,
    meta: stores.meta,
    config: { ...logConfigDefaults, lingerMs: 2, pollIntervalMs: 20, ...config },
  });
  const groups = new GroupService({ log, meta: stores.meta, ...groupOptions });
  const app = createApp({ log, maxRequestBytes, groups });
  const request = async (path: string, init?: RequestInit) => app.request(path, init);
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await request(path, {
      method,
      ...(body === undefined
        ? {}
        : {
            headers: { "content-type": "application/json" },
            body: typeof body === "string" ? body : JSON.stringify(body),
          }),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  return { log, groups, store, meta: stores.meta, request, call };
}
