import {
  CliError,
  UsageError,
  commonOptionsText,
  defineCommand,
  drained,
  integer,
  isoTime,
  line,
  type Command,
  type CommandContext,
} from "../context.js";
import type { ConsumedRecord } from "../../client/index.js";
import { plural } from "../format.js";

export const consumeUsage = `usage:
  sluice consume TOPIC [--from earliest|latest|OFFSET|ISO-8601] [--partition P]
                       [--group GROUP] [--follow] [--max N] [--print-key] [--print-offset]
      Prints one value per line (JSON values as JSON text, binary ones as base64), or with
      --json one JSON object per record (JSON Lines). Stops once it has caught up with the
      log-end offsets it saw at the start; --follow keeps tailing until Ctrl-C.
      --from          where to start without a group: earliest (default), latest, an offset,
                      or the first record at or after a time (2024-05-01T12:00:00Z)
      --partition P   read only partition P (default: all)
      --group GROUP   consume as a member of GROUP, committing what was printed; --from is
                      then the reset policy (earliest|latest) for partitions without a
                      committed offset. Ctrl-C leaves the group cleanly.
      --max N         stop after N records
      --print-key     prefix each value with its key and a tab
      --print-offset  prefix each value with PARTITION:OFFSET and a tab

${commonOptionsText}`;

/** How long a fetch or a tail waits for records on the server while following. */
const FOLLOW_WAIT_MS = 5_000;
/** How often a group consumer without --follow checks whether the group has caught up. */
const CAUGHT_UP_POLL_MS = 200;
const PAGE_RECORDS = 500;

type From = "earliest" | "latest" | { offset: number } | { time: number };

export interface ConsumeOptions {
  topic: string;
  from: From | undefined;
  partition: number | undefined;
  group: string | undefined;
  follow: boolean;
  max: number | undefined;
  printKey: boolean;
  printOffset: boolean;
}

export const consumeCommand: Command = defineCommand({
  usage: consumeUsage,
  options: {
    from: { type: "string" },
    partition: { type: "string" },
    group: { type: "string", short: "g" },
    follow: { type: "boolean", short: "f" },
    max: { type: "string" },
    "print-key": { type: "boolean" },
    "print-offset": { type: "boolean" },
  },
  args: ["TOPIC"],
  async run(ctx, values, [topic]) {
    const options: ConsumeOptions = {
      topic: topic!,
      from: values.from === undefined ? undefined : parseFrom(values.from),
      partition: integer(values.partition, "partition", consumeUsage),
      group: values.group,
      follow: values.follow ?? false,
      max: integer(values.max, "max", consumeUsage),
      printKey: values["print-key"] ?? false,
      printOffset: values["print-offset"] ?? false,
    };
    const printed =
      options.max === 0
        ? 0
        : await (options.group === undefined
            ? consumePartitions(ctx, options)
            : consumeGroup(ctx, options, options.group));
    line(ctx.err, `processed ${plural(printed, "record")}`);
  },
});

export function parseFrom(text: string): From {
  if (text === "earliest" || text === "latest") return text;
  if (/^\d+$/.test(text)) return { offset: integer(text, "from", consumeUsage)! };
  return { time: isoTime(text, "from", consumeUsage) };
}

/** Writes records as they should look on stdout, and counts them against --max. */
class Printer {
  count = 0;

  constructor(
    private readonly ctx: CommandContext,
    private readonly options: ConsumeOptions,
  ) {}

  get done(): boolean {
    return this.options.max !== undefined && this.count >= this.options.max;
  }

  /** Prints what --max still allows; false once it is reached. */
  async print(
    topic: string,
    partition: number,
    records: readonly ConsumedRecord[],
  ): Promise<boolean> {
    for (const record of records) {
      if (this.done) return false;
      this.count++;
      line(this.ctx.out, this.format(topic, partition, record));
    }
    await drained(this.ctx.out);
    return !this.done;
  }

  private format(topic: string, partition: number, r: ConsumedRecord): string {
    if (this.ctx.json) {
      const binary = r.valueBase64 !== undefined;
      return JSON.stringify({
        topic,
        partition,
        offset: r.offset,
        timestamp: r.timestamp,
        key: r.key,
        ...(r.keyBase64 === undefined ? {} : { keyBase64: r.keyBase64 }),
        ...(binary ? { valueBase64: r.valueBase64 } : { value: r.value ?? null }),
        headers: r.headers,
      });
    }
    const columns: string[] = [];
    if (this.options.printOffset) columns.push(`${partition}:${r.offset}`);
    if (this.options.printKey) columns.push(r.key ?? r.keyBase64 ?? "null");
    columns.push(valueText(r));
    return columns.join("\t");
  }
}

/** A value as one line of text: strings as they are, other JSON as JSON, bytes as base64. */
export function valueText(r: { value?: unknown; valueBase64?: string }): string {
  if (r.valueBase64 !== undefined) return r.valueBase64;
  return typeof r.value === "string" ? r.value : (JSON.stringify(r.value) ?? "null");
}

/** Without a group: each partition read directly from its starting offset. */
async function consumePartitions(ctx: CommandContext, options: ConsumeOptions): Promise<number> {
  const { client } = ctx;
  const { topic } = options;
  const description = await client.admin.describeTopic(topic, { segments: false });
  const partitions =
    options.partition === undefined
      ? description.partitions.map((p) => p.partition)
      : [options.partition];
  if (options.partition !== undefined && options.partition >= description.partitions.length) {
    throw new CliError(
      "invalid_partition",
      `topic ${topic} has ${plural(description.partitions.length, "partition")}; there is no partition ${options.partition}`,
    );
  }
  const starts = await Promise.all(partitions.map((p) => startOf(ctx, topic, p, options.from)));
  const printer = new Printer(ctx, options);

  if (!options.follow) {
    // Up to the log-end offsets seen at the start, partition after partition.
    for (const [i, partition] of partitions.entries()) {
      let { offset } = starts[i]!;
      const end = starts[i]!.logEndOffset;
      while (offset < end && !printer.done && !ctx.signal.aborted) {
        let page;
        try {
          page = await client.fetch(topic, partition, offset, {
            maxRecords: Math.min(PAGE_RECORDS, end - offset),
            signal: ctx.signal,
          });
        } catch (err) {
          // Interrupted (Ctrl-C, or stdout closed): what was printed stands.
          if (ctx.signal.aborted) break;
          throw err;
        }
        const records = page.records.filter((r) => r.offset < end);
        await printer.print(topic, partition, records);
        if (page.nextOffset <= offset) break;
        offset = page.nextOffset;
      }
    }
    return printer.count;
  }

  // --follow: one tail per partition until Ctrl-C or --max.
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  ctx.signal.addEventListener("abort", onAbort, { once: true });
  if (ctx.signal.aborted) stop.abort();
  try {
    await Promise.all(
      partitions.map(async (partition, i) => {
        try {
          for await (const record of client.tail(topic, partition, {
            from: starts[i]!.offset,
            signal: stop.signal,
          })) {
            if (!(await printer.print(topic, partition, [record]))) stop.abort();
            if (stop.signal.aborted) break;
          }
        } catch (err) {
          if (!stop.signal.aborted) {
            stop.abort();
            throw err;
          }
        }
      }),
    );
  } finally {
    ctx.signal.removeEventListener("abort", onAbort);
  }
  return printer.count;
}

/** Where a partition's reading starts, and its log-end offset now. */
async function startOf(
  ctx: CommandContext,
  topic: string,
  partition: number,
  from: From | undefined,
): Promise<{ offset: number; logEndOffset: number }> {
  const at = from ?? "earliest";
  const spec = typeof at === "string" ? at : "time" in at ? at.time : "latest";
  const listed = await ctx.client.admin.listOffsets(topic, partition, spec);
  const { logStartOffset, logEndOffset } = listed;
  if (typeof at === "object" && "offset" in at) {
    // Kafka's console consumer would fail; within [log start, log end] is what can be read.
    const offset = Math.min(Math.max(at.offset, logStartOffset), logEndOffset);
    if (offset !== at.offset) {
      line(
        ctx.err,
        `partition ${partition}: offset ${at.offset} is outside [${logStartOffset}, ${logEndOffset}]; starting at ${offset}`,
      );
    }
    return { offset, logEndOffset };
  }
  // No record at or after the time: start at the end, for what comes next.
  return { offset: listed.offset ?? logEndOffset, logEndOffset };
}

/**
 * As a member of a group: the client joins, fetches its assigned partitions and commits what was
 * printed. Without --follow it stops once the group has committed up to the log-end offsets
 * seen at the start; stopping leaves the group.
 */
async function consumeGroup(
  ctx: CommandContext,
  options: ConsumeOptions,
  group: string,
): Promise<number> {
  const { client } = ctx;
  const { topic, from } = options;
  if (options.partition !== undefined) {
    throw new UsageError("--partition cannot be used with --group", consumeUsage);
  }
  if (from !== undefined && typeof from !== "string") {
    throw new UsageError(
      "with --group, --from is earliest or latest; move a group's offsets with `sluice groups reset-offsets`",
      consumeUsage,
    );
  }
  // Fails early, with topic_not_found, before joining anything.
  const description = await client.admin.describeTopic(topic, { segments: false });
  const ends = new Map(description.partitions.map((p) => [p.partition, p.logEndOffset]));

  const printer = new Printer(ctx, options);
  const consumer = client.consumer({
    group,
    topics: [topic],
    ...(from === undefined ? {} : { resetPolicy: from }),
    waitMs: options.follow ? FOLLOW_WAIT_MS : CAUGHT_UP_POLL_MS,
  });
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= consumer.stop());

  // One record at a time, so that the position committed is exactly what was printed: --max
  // stops the consumer after its last record, and stopping commits and leaves.
  const running = consumer.run({
    autoCommit: true,
    eachRecord: async ({ topic: t, partition, ...record }) => {
      if (!(await printer.print(t, partition, [record]))) void stop();
    },
  });
  const onAbort = () => void stop();
  ctx.signal.addEventListener("abort", onAbort, { once: true });
  if (ctx.signal.aborted) void stop();

  let pollFailure: { error: unknown } | undefined;
  if (!options.follow) {
    void (async () => {
      while (!stopping) {
        await sleep(CAUGHT_UP_POLL_MS);
        if (stopping) return;
        if (await caughtUp(ctx, group, topic, ends)) void stop();
      }
    })().catch((error: unknown) => {
      pollFailure = { error };
      void stop();
    });
  }
  try {
    await running;
  } finally {
    ctx.signal.removeEventListener("abort", onAbort);
    await stop();
  }
  if (pollFailure) throw pollFailure.error;
  return printer.count;
}

/** Whether every partition's committed offset has reached the log end seen at the start. */
async function caughtUp(
  ctx: CommandContext,
  group: string,
  topic: string,
  ends: Map<number, number>,
): Promise<boolean> {
  let described;
  try {
    described = await ctx.client.admin.describeGroup(group);
  } catch (err) {
    // The first join may not have created the group yet.
    if ((err as { code?: unknown }).code === "group_not_found") return false;
    throw err;
  }
  const rows = described.partitions.filter((p) => p.topic === topic);
  if (rows.length < ends.size) return false;
  return rows.every((p) => {
    const end = ends.get(p.partition) ?? p.logEndOffset;
    return p.currentOffset === null ? p.lag === 0 : p.currentOffset >= end;
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
