/** Child processes the bench starts (Hono, Redis, NATS): ready detection and a bounded stop. */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { createInterface } from "node:readline";

export interface Child<T> {
  child: ChildProcess;
  ready: T;
  output: () => string;
  stop: () => Promise<void>;
}

const everyChild = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of everyChild) child.kill("SIGKILL");
});

/**
 * Spawns a command and waits until `isReady` recognises a line of its stdout or stderr (and
 * returns something for it); fails after `timeoutMs` or if the process exits first.
 */
export async function startChild<T>(
  command: string,
  args: string[],
  isReady: (line: string) => T | undefined,
  options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {},
): Promise<Child<T>> {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  everyChild.add(child);
  let log = "";
  const exited = once(child, "exit").then(() => everyChild.delete(child));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      await exited;
      clearTimeout(timer);
    }
  };
  const timeoutMs = options.timeoutMs ?? 20_000;
  try {
    const ready = await new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${command} did not get ready within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const onLine = (line: string) => {
        log = (log + line + "\n").slice(-8000);
        const value = isReady(line);
        if (value !== undefined) {
          clearTimeout(timer);
          resolve(value);
        }
      };
      createInterface({ input: child.stdout }).on("line", onLine);
      createInterface({ input: child.stderr }).on("line", onLine);
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`${command} exited (${child.exitCode ?? child.signalCode})`));
      });
    });
    return { child, ready, output: () => log, stop };
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n${log}`, { cause: err });
  }
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  server.close();
  await once(server, "close");
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}
