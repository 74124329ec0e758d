import { serve, type ServerType } from "@hono/node-server";
import { build } from "esbuild";
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { chromium, type Browser } from "playwright-core";
import type { SluiceClient as Client } from "../../src/client/index.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { logConfigDefaults } from "../../src/config.js";
import { createApp } from "../../src/http/app.js";
import { SluiceLog } from "../../src/log/log.js";
import { MemoryMetaStore } from "../../src/meta/memory.js";
import { MemoryObjectStore } from "../../src/storage/memory.js";

/**
 * The client and the SSE tail in a real browser: Debian's Chromium, driven by playwright-core,
 * loads a page from one origin and talks to Sluice on another, so CORS is on the path. CI
 * installs Chromium (.ci/run); a developer machine without it skips this file, CI never does.
 */
const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const available = existsSync(executablePath);
if (!available && process.env.CI) {
  throw new Error(`Chromium is required in CI and missing at ${executablePath}`);
}

/** The page loads the bundled client as a module and hands it to the test's scripts. */
const PAGE = `<!doctype html><title>sluice</title><script type="module">
import { SluiceClient } from "/client.js";
window.SluiceClient = SluiceClient;
</script>`;

const listen = async (server: Server | ServerType) => {
  await new Promise((resolve) => server.once("listening", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
};

describe.skipIf(!available)("the client in Chromium", () => {
  let browser: Browser;
  let page: Server;
  let api: ServerType;
  let pageOrigin: string;
  let apiOrigin: string;
  let log: SluiceLog;

  beforeAll(async () => {
    const bundle = await build({
      entryPoints: ["src/client/index.ts"],
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      write: false,
    });
    const clientJs = bundle.outputFiles[0]!.text;
    page = createServer((req, res) => {
      if (req.url === "/client.js") {
        res.writeHead(200, { "content-type": "text/javascript" }).end(clientJs);
      } else {
        res.writeHead(200, { "content-type": "text/html" }).end(PAGE);
      }
    }).listen(0, "127.0.0.1");
    pageOrigin = await listen(page);

    log = new SluiceLog({
      store: new MemoryObjectStore(),
      meta: new MemoryMetaStore(),
      config: { ...logConfigDefaults, lingerMs: 2 },
    });
    const app = createApp({ log, maxRequestBytes: 1 << 20, corsOrigins: [pageOrigin] });
    api = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 });
    apiOrigin = await listen(api);

    browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => page?.close(resolve));
    await new Promise((resolve) => api?.close(resolve));
    await log?.close();
  });

  it("produces with the client and tails over Server-Sent Events across origins", async () => {
    const tab = await browser.newPage();
    await tab.goto(`${pageOrigin}/`);
    await tab.waitForFunction(() => "SluiceClient" in window);
    const result = await tab.evaluate(async (apiUrl: string) => {
      const { SluiceClient } = window as unknown as { SluiceClient: typeof Client };
      const client = new SluiceClient({ url: apiUrl });
      await client.admin.createTopic("web", 1);
      const seen: { id: string; value: unknown }[] = [];
      const source = new EventSource(`${apiUrl}/v1/topics/web/partitions/0/records?offset=0`);
      const three = new Promise<void>((resolve, reject) => {
        source.addEventListener("record", (event) => {
          const record = JSON.parse((event as MessageEvent<string>).data) as { value: unknown };
          seen.push({ id: (event as MessageEvent<string>).lastEventId, value: record.value });
          if (seen.length === 3) resolve();
        });
        source.onerror = () => {
          if (source.readyState === EventSource.CLOSED) reject(new Error("stream closed"));
        };
      });
      const producer = client.producer({ lingerMs: 1 });
      const offsets = await producer.send("web", [
        { value: { n: 1 } },
        { value: "two" },
        { key: "k", value: [3] },
      ]);
      await producer.close();
      await three;
      source.close();
      return { offsets, seen };
    }, apiOrigin);

    expect(result.offsets.map((o) => o.offset)).toEqual([0, 1, 2]);
    expect(result.seen).toEqual([
      { id: "1", value: { n: 1 } },
      { id: "2", value: "two" },
      { id: "3", value: [3] },
    ]);
    await tab.close();
  }, 60_000);

  it("is refused by the browser from an origin the server does not allow", async () => {
    const tab = await browser.newPage();
    await tab.goto(`${apiOrigin.replace("127.0.0.1", "localhost")}/healthz`);
    const outcome = await tab.evaluate(async (apiUrl: string) => {
      try {
        await fetch(`${apiUrl}/v1/topics`);
        return "allowed";
      } catch {
        return "blocked";
      }
    }, apiOrigin);
    expect(outcome).toBe("blocked");
    await tab.close();
  }, 60_000);
});
