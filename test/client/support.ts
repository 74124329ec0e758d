import { makeHarness, type Harness } from "../support/harness.js";
import { storeKinds } from "../support/stores.js";
import { SluiceClient, type ClientOptions } from "../../src/client/index.js";

/** The client against the real app in process: no server, no sockets. */

export const BASE_URL = "http://sluice.test";

export async function memoryHarness(): Promise<Harness> {
  return makeHarness(await storeKinds.memory!());
}

/** A fetch that hands the request to the app (app.request accepts a Request or a URL). */
export function appFetch(h: Harness): typeof fetch {
  const request = h.request as unknown as (
    input: Request | string,
    init?: RequestInit,
  ) => Promise<Response>;
  return (input, init) =>
    input instanceof Request
      ? request(input)
      : request(input instanceof URL ? input.href : input, init);
}

export interface SentRequest {
  method: string;
  path: string;
  headers: Headers;
  body: string | undefined;
}

/** Wraps a fetch, recording each request; `answer` may replace the response or throw. */
export function spyFetch(
  inner: typeof fetch,
  answer?: (request: SentRequest, send: () => Promise<Response>) => Promise<Response>,
): { fetch: typeof fetch; requests: SentRequest[] } {
  const requests: SentRequest[] = [];
  const wrapped: typeof fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const sent: SentRequest = {
      method: init?.method ?? "GET",
      path: url.pathname + url.search,
      headers: new Headers(init?.headers),
      body: typeof init?.body === "string" ? init.body : undefined,
    };
    requests.push(sent);
    const send = () => inner(input, init);
    return answer ? answer(sent, send) : send();
  };
  return { fetch: wrapped, requests };
}

/**
 * Loses the answers of the first `count` requests that `match`: the server handles each one
 * fully, then the client sees a network error (as when a connection drops after the write).
 */
export function dropResponses(
  inner: typeof fetch,
  match: (request: SentRequest) => boolean,
  count = 1,
) {
  let dropped = 0;
  return spyFetch(inner, async (request, send) => {
    const response = await send();
    if (dropped < count && match(request)) {
      dropped++;
      await response.text();
      throw new TypeError("fetch failed (injected: the answer was lost)");
    }
    return response;
  });
}

export function clientFor(
  h: Harness,
  options: Partial<ClientOptions> = {},
  fetchImpl: typeof fetch = appFetch(h),
): SluiceClient {
  return new SluiceClient({
    url: BASE_URL,
    fetch: fetchImpl,
    retry: { retries: 5, initialDelayMs: 1, maxDelayMs: 20 },
    ...options,
  });
}

export const isProduce = (r: SentRequest) =>
  r.method === "POST" && /^\/v1\/topics\/[^/]+\/records$/.test(r.path);

/** Every record of a partition, read back through the raw API. */
export async function readAll(h: Harness, topic: string, partition: number): Promise<any[]> {
  const records: any[] = [];
  let offset = 0;
  for (;;) {
    const res = await h.call(
      "GET",
      `/v1/topics/${topic}/partitions/${partition}/records?offset=${offset}&maxRecords=1000`,
    );
    if (res.status !== 200) throw new Error(`read ${topic}/${partition}: ${res.status}`);
    records.push(...res.body.records);
    if (res.body.nextOffset >= res.body.logEndOffset) return records;
    offset = res.body.nextOffset;
  }
}

export async function until(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
