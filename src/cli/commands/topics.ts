import {
  UsageError,
  commonOptionsText,
  defineCommand,
  integer,
  line,
  type Command,
} from "../context.js";
import { isoText, plural, table, writeJson } from "../format.js";

export const topicsUsage = `usage:
  sluice topics create NAME [--partitions N] [--config KEY=VALUE]...
      Creates a topic (1 partition by default). Configs use Kafka's names: retention.ms,
      retention.bytes, segment.bytes, segment.ms, max.message.bytes.
  sluice topics list
  sluice topics describe NAME
      Prints the partitions: PARTITION LOG-START-OFFSET LOG-END-OFFSET SEGMENTS.
  sluice topics delete NAME

${commonOptionsText}`;

export const topicsCommands: Record<string, Command> = {
  create: defineCommand({
    usage: topicsUsage,
    options: {
      partitions: { type: "string", short: "p" },
      config: { type: "string", multiple: true, short: "c" },
    },
    args: ["NAME"],
    async run(ctx, values, [name]) {
      const partitions = integer(values.partitions, "partitions", topicsUsage) ?? 1;
      const config = parseConfigs(values.config ?? []);
      const created = await ctx.client.admin.createTopic(
        name!,
        partitions,
        Object.keys(config).length > 0 ? config : undefined,
      );
      if (ctx.json) writeJson(ctx.out, created);
      else line(ctx.err, `created topic ${name} with ${plural(partitions, "partition")}`);
    },
  }),

  list: defineCommand({
    usage: topicsUsage,
    options: {},
    args: [],
    async run(ctx) {
      const topics = await ctx.client.admin.listTopics();
      if (ctx.json) return writeJson(ctx.out, topics);
      ctx.out.write(
        table(
          ["TOPIC", "PARTITIONS"],
          topics.map((t) => [t.name, t.partitions]),
        ),
      );
    },
  }),

  describe: defineCommand({
    usage: topicsUsage,
    options: {},
    args: ["NAME"],
    async run(ctx, _values, [name]) {
      const topic = await ctx.client.admin.describeTopic(name!, { segments: true });
      if (ctx.json) return writeJson(ctx.out, topic);
      const config = Object.entries(topic.config)
        .map(([k, v]) => `${k}=${v}`)
        .join(",");
      line(
        ctx.err,
        `topic ${topic.name} (id ${topic.id}, created ${isoText(topic.createdAt)}): ${config}`,
      );
      ctx.out.write(
        table(
          ["PARTITION", "LOG-START-OFFSET", "LOG-END-OFFSET", "SEGMENTS"],
          topic.partitions.map((p) => [
            p.partition,
            p.logStartOffset,
            p.logEndOffset,
            p.segments?.length,
          ]),
        ),
      );
    },
  }),

  delete: defineCommand({
    usage: topicsUsage,
    options: {},
    args: ["NAME"],
    async run(ctx, _values, [name]) {
      await ctx.client.admin.deleteTopic(name!);
      if (ctx.json) writeJson(ctx.out, { deleted: name });
      else line(ctx.err, `deleted topic ${name}`);
    },
  }),
};

/** `--config retention.ms=60000` flags as a config object of numbers. */
export function parseConfigs(flags: readonly string[]): Record<string, number> {
  const config: Record<string, number> = {};
  for (const flag of flags) {
    const eq = flag.indexOf("=");
    const key = eq > 0 ? flag.slice(0, eq).trim() : "";
    const value = flag.slice(eq + 1).trim();
    if (!key || !/^-?\d{1,16}$/.test(value)) {
      throw new UsageError(`--config takes KEY=INTEGER, not ${JSON.stringify(flag)}`, topicsUsage);
    }
    config[key] = Number(value);
  }
  return config;
}
