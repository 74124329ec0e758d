import { inspect } from "node:util";

/**
 * A credential held in memory: keys, tokens and signing secrets. Every way a value reaches text
 * by accident (string conversion, JSON, `util.inspect`, pino's serializers) prints
 * `[redacted]`; only `reveal()` hands out the value, and only the code that needs it calls that.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return "[redacted]";
  }

  toJSON(): string {
    return "[redacted]";
  }

  [inspect.custom](): string {
    return "[redacted]";
  }
}
