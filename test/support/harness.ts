import { logConfigDefaults, type LogConfig } from "../../src/config.js";
import { createApp } from "../../src/http/app.js";
import { SluiceLog } from "../../src/log/log.js";
import type { MetaStore } from "../../src/meta/meta-store.js";
import type { ObjectStore } from "../../src/storage/object-store.js";
import { CountingObjectStore } from "./counting-store.js";

export interface Harness {
  log: SluiceLog;
  store: CountingObjectStore;
  meta: MetaStore;
  request: (path: string, init?: RequestInit) => Promise<Response>;
  /** Sends JSON and returns the status and the parsed body (undefined when there is none). */
  call: <T = any>(
    method: string,
    path: string,
    body?: unknown,
  ) => Promise<{ status: number; body: T }>;
}

export function makeHarness(
  stores: { store: ObjectStore; meta: MetaStore },
  config: Partial<LogConfig> = {},
  maxRequestBytes = 8 * 1024 * 1024,
): Harness {
  const store = new CountingObjectStore(stores.store);
  const log = new SluiceLog({
    store,
    meta: stores.meta,
    config: { ...logConfigDefaults, lingerMs: 2, pollIntervalMs: 20, ...config },
  });
  const app = createApp({ log, maxRequestBytes });
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
  return { log, store, meta: stores.meta, request, call };
}
