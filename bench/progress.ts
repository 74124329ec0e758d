/**
 * One progress bar per phase on stderr when it is a terminal; nothing otherwise, unless
 * `--verbose` asks for a plain line per step (for logs of a background run).
 */
import cliProgress from "cli-progress";

export interface Phase {
  /** Names the step about to run. */
  step: (label: string) => void;
  /** Marks the step done. */
  tick: () => void;
  done: () => void;
}

export class Progress {
  private readonly tty = Boolean(process.stderr.isTTY);
  private readonly started = performance.now();

  constructor(private readonly verbose: boolean) {}

  phase(name: string, total: number): Phase {
    if (this.tty) {
      const bar = new cliProgress.SingleBar(
        {
          stream: process.stderr,
          format: `${name.padEnd(10)} [{bar}] {value}/{total} {label} | {duration_formatted} / eta {eta_formatted}`,
          barsize: 24,
          hideCursor: true,
          clearOnComplete: false,
          etaBuffer: 20,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(Math.max(total, 1), 0, { label: "" });
      return {
        step: (label) => bar.update({ label }),
        tick: () => bar.increment(),
        done: () => {
          bar.update(Math.max(total, 1), { label: "done" });
          bar.stop();
        },
      };
    }
    let value = 0;
    const at = () => `${((performance.now() - this.started) / 1000).toFixed(0)}s`;
    if (this.verbose) process.stderr.write(`[${at()}] ${name}: ${total} steps\n`);
    return {
      step: (label) => {
        if (this.verbose)
          process.stderr.write(`[${at()}] ${name} ${value + 1}/${total} ${label}\n`);
      },
      tick: () => void value++,
      done: () => {
        if (this.verbose) process.stderr.write(`[${at()}] ${name} done\n`);
      },
    };
  }

  /** A note that must be seen whatever the output (a skipped phase, a failed cell). */
  note(message: string): void {
    process.stderr.write(`${message}\n`);
  }
}
