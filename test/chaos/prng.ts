/**
 * A small seeded PRNG (sfc32) for the chaos tests: every random decision a simulation makes
 * (faults, interleavings, workload) comes from one of these, so a seed names a run.
 */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(readonly seed: number) {
    // sfc32 wants 128 bits of state: spread the 32-bit seed with splitmix32, then warm up.
    let s = seed >>> 0;
    const mix = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = mix();
    this.b = mix();
    this.c = mix();
    this.d = mix();
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  nextUint32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** A float in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [min, max], both inclusive. */
  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return p > 0 && this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick from an empty array");
    return items[this.int(items.length)]!;
  }

  /** An independent generator derived from this one, so one actor's draws never shift another's. */
  fork(): Prng {
    return new Prng(this.nextUint32());
  }
}

/** The seed a chaos run uses: `CHAOS_SEED` when set (decimal or 0x-hex), otherwise a random one. */
export function chaosSeed(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.CHAOS_SEED?.trim();
  if (raw !== undefined && raw !== "") {
    const seed = Number(raw);
    if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new Error(`CHAOS_SEED must be an integer from 0 to 4294967295, not ${raw}`);
    }
    return seed;
  }
  return Math.floor(Math.random() * 0x100000000);
}

/** The line a failure message ends with, so that whoever reads it can run the same seed again. */
export function reproduce(seed: number, extra: Record<string, string | number> = {}): string {
  const vars = Object.entries({ CHAOS_SEED: seed, ...extra })
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  return `Reproduce with ${vars}`;
}

/** Runs `fn` and, if it throws, appends the reproduce line to the error's message. */
export async function withSeed<T>(seed: number, fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof Error) {
      err.message = `${err.message}\n${reproduce(seed)}`;
      throw err;
    }
    throw new Error(`${String(err)}\n${reproduce(seed)}`, { cause: err });
  }
}
