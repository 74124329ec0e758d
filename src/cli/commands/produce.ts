import { createInterface } from "node:readline";
import {
  CliError,
  commonOptionsText,
  defineCommand,
  drained,
  integer,
  line,
  type Command,
} from "../context.js";
import { plural, writeJson } from "../format.js";

export const produceUsage = `usage:
  sluice produce TOPIC [--key-separator SEP] [--partition P] [--json-values]
      Produces one record per line of stdin, through the idempotent batching producer.
      --key-separator SEP  each line is KEY<SEP>VALUE (a line without SEP is an error)
      --partition P        every record goes to partition P (else by key, Kafka's murmur2)
      --json-values        each value is parsed as JSON (blank lines are skipped); else a string
      Prints PARTITION:OFFSET per record once it is durable (--json: one array at the end),
      and "produced N records" on stderr.

${commonOptionsText}`;

/** Records sent but not yet acknowledged, at most: bounds memory when stdin is large. */
const MAX_IN_FLIGHT = 1000;

interface Offset {
  partition: number;
  offset: number;
}

interface OutgoingRecord {
  key?: string;
  value: unknown;
  partition?: number;
}

export const produceCommand: Command = defineCommand({
  usage: produceUsage,
  options: {
    "key-separator": { type: "string" },
    partition: { type: "string" },
    "json-values": { type: "boolean" },
  },
  args: ["TOPIC"],
  async run(ctx, values, [topic]) {
    const separator = values["key-separator"];
    if (separator === "") throw new CliError("invalid_request", "--key-separator may not be empty");
    const partition = integer(values.partition, "partition", produceUsage);
    const jsonValues = values["json-values"] ?? false;

    const toRecord = (text: string, lineNo: number): OutgoingRecord | undefined => {
      let key: string | undefined;
      let valueText = text;
      if (separator !== undefined) {
        const at = text.indexOf(separator);
        if (at < 0) {
          throw new CliError(
            "invalid_input",
            `line ${lineNo} has no key separator ${JSON.stringify(separator)}`,
          );
        }
        key = text.slice(0, at);
        valueText = text.slice(at + separator.length);
      }
      let value: unknown = valueText;
      if (jsonValues) {
        if (valueText.trim() === "" && key === undefined) return undefined;
        try {
          value = JSON.parse(valueText);
        } catch (err) {
          throw new CliError(
            "invalid_json",
            `line ${lineNo} is not JSON: ${err instanceof Error ? err.message : String(err)}`,
          );
        }
      }
      return {
        ...(key === undefined ? {} : { key }),
        value,
        ...(partition === undefined ? {} : { partition }),
      };
    };

    const producer = ctx.client.producer({ idempotent: true });
    const lines = createInterface({ input: ctx.stdin, crlfDelay: Infinity });
    const stop = () => lines.close();
    ctx.signal.addEventListener("abort", stop, { once: true });

    // Acknowledgements are printed in input order; each send is awaited only when the window
    // is full, so the producer batches what arrives in the meantime.
    const inFlight: Promise<Offset>[] = [];
    const acked: Offset[] = [];
    const settle = async () => {
      const offset = await inFlight.shift()!;
      acked.push(offset);
      if (!ctx.json) {
        line(ctx.out, `${offset.partition}:${offset.offset}`);
        await drained(ctx.out);
      }
    };
    let failure: unknown;
    try {
      let lineNo = 0;
      for await (const text of lines) {
        lineNo++;
        const record = toRecord(text, lineNo);
        if (record === undefined) continue;
        const sent = producer.send(topic!, [record]).then(([offset]) => offset!);
        // A failed send stops the reading; its error is thrown when it is settled, in order.
        sent.catch(stop);
        inFlight.push(sent);
        while (inFlight.length >= MAX_IN_FLIGHT) await settle();
      }
    } catch (err) {
      failure = err;
    } finally {
      ctx.signal.removeEventListener("abort", stop);
      lines.close();
    }
    // Whatever was sent before a bad line or an interrupt is still reported.
    try {
      await producer.flush();
      while (inFlight.length > 0) await settle();
    } catch (err) {
      failure ??= err;
    } finally {
      inFlight.length = 0;
      await producer.close().catch(() => {});
    }
    if (ctx.json) writeJson(ctx.out, acked);
    line(ctx.err, `produced ${plural(acked.length, "record")}`);
    if (failure !== undefined)
      throw failure instanceof Error ? failure : new Error("produce failed", { cause: failure });
  },
});
