import { Readable } from "node:stream";
import { SluiceClient } from "../../src/client/index.js";
import { runCli } from "../../src/cli/run.js";
import { makeHarness, type Harness } from "../support/harness.js";
import { storeKinds, type TestStores } from "../support/stores.js";

export { until } from "../client/support.js";

/** The CLI's command functions in-process, against the real app with no server. */

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class Capture {
  text = "";
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

export interface CliHarness {
  h: Harness;
  client: SluiceClient;
  /** Runs `sluice ARGS…` with `stdin` as its input. */
  cli(
    args: string[],
    options?: { stdin?: string; signal?: AbortSignal; out?: Capture },
  ): Promise<CliResult>;
  close(): Promise<void>;
}

export async function cliHarness(): Promise<CliHarness> {
  const stores: TestStores = await storeKinds.memory!();
  const h = makeHarness(stores);
  const request = h.request as unknown as (
    input: Request | string,
    init?: RequestInit,
  ) => Promise<Response>;
  const client = new SluiceClient({
    url: "http://sluice.test",
    fetch: (input, init) =>
      input instanceof Request
        ? request(input)
        : request(input instanceof URL ? input.href : input, init),
    retry: { retries: 3, initialDelayMs: 1, maxDelayMs: 20 },
  });
  return {
    h,
    client,
    async cli(args, options = {}) {
      const out = options.out ?? new Capture();
      const err = new Capture();
      const code = await runCli(args, {
        stdin: Readable.from(options.stdin ? [options.stdin] : []),
        stdout: out,
        stderr: err,
        env: {},
        client: () => client,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      return { code, stdout: out.text, stderr: err.text };
    },
    async close() {
      await h.log.close();
      await stores.cleanup();
    },
  };
}
