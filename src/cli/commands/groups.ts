import type { ResetBody } from "../../client/index.js";
import {
  UsageError,
  commonOptionsText,
  defineCommand,
  integer,
  isoTime,
  line,
  type Command,
} from "../context.js";
import { isoText, plural, table, writeJson } from "../format.js";

export const groupsUsage = `usage:
  sluice groups list
  sluice groups describe GROUP
      Prints GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID per partition,
      like kafka-consumer-groups --describe ("-" where the group has no committed offset).
  sluice groups reset-offsets GROUP --to earliest|latest|datetime|offset
        [--datetime ISO-8601 | --timestamp MS] [--offset N] [--topic TOPIC[:P,P...]] [--dry-run]
      Moves the committed offsets of a group without live members (of every topic it has
      offsets for, or of one topic or some of its partitions). --dry-run only shows the plan.
  sluice groups delete GROUP

${commonOptionsText}`;

export const groupsCommands: Record<string, Command> = {
  list: defineCommand({
    usage: groupsUsage,
    options: {},
    args: [],
    async run(ctx) {
      const groups = await ctx.client.admin.listGroups();
      if (ctx.json) return writeJson(ctx.out, groups);
      ctx.out.write(
        table(
          ["GROUP", "CREATED"],
          groups.map((g) => [g.group, isoText(g.createdAt)]),
        ),
      );
    },
  }),

  describe: defineCommand({
    usage: groupsUsage,
    options: {},
    args: ["GROUP"],
    async run(ctx, _values, [group]) {
      const d = await ctx.client.admin.describeGroup(group!);
      if (ctx.json) return writeJson(ctx.out, d);
      line(
        ctx.err,
        d.members.length === 0
          ? `group ${d.group} has no active members (total lag ${d.totalLag})`
          : `group ${d.group}: ${d.state}, generation ${d.generation}, ${plural(d.members.length, "member")} (total lag ${d.totalLag})`,
      );
      ctx.out.write(
        table(
          ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID"],
          d.partitions.map((p) => [
            d.group,
            p.topic,
            p.partition,
            p.currentOffset,
            p.logEndOffset,
            p.lag,
            p.memberId,
          ]),
        ),
      );
    },
  }),

  "reset-offsets": defineCommand({
    usage: groupsUsage,
    options: {
      to: { type: "string" },
      datetime: { type: "string" },
      timestamp: { type: "string" },
      offset: { type: "string" },
      topic: { type: "string" },
      "dry-run": { type: "boolean" },
    },
    args: ["GROUP"],
    async run(ctx, values, [group]) {
      const request = resetRequest(values);
      const result = await ctx.client.admin.resetOffsets(group!, request);
      if (ctx.json) return writeJson(ctx.out, result);
      ctx.out.write(
        table(
          ["GROUP", "TOPIC", "PARTITION", "PREVIOUS-OFFSET", "NEW-OFFSET"],
          result.offsets.map((o) => [group, o.topic, o.partition, o.previousOffset, o.offset]),
        ),
      );
      line(
        ctx.err,
        result.dryRun
          ? `dry run: nothing changed (${plural(result.offsets.length, "partition")} would be reset)`
          : `reset ${plural(result.offsets.length, "partition")} of group ${group}`,
      );
    },
  }),

  delete: defineCommand({
    usage: groupsUsage,
    options: {},
    args: ["GROUP"],
    async run(ctx, _values, [group]) {
      await ctx.client.admin.deleteGroup(group!);
      if (ctx.json) writeJson(ctx.out, { deleted: group });
      else line(ctx.err, `deleted group ${group}`);
    },
  }),
};

/** The API's reset request from the flags, Kafka's `--to-datetime` spelled `--to datetime`. */
export function resetRequest(values: {
  to?: string | undefined;
  datetime?: string | undefined;
  timestamp?: string | undefined;
  offset?: string | undefined;
  topic?: string | undefined;
  "dry-run"?: boolean | undefined;
}): ResetBody {
  const usage = groupsUsage;
  const to = values.to === "datetime" ? "timestamp" : values.to;
  if (to !== "earliest" && to !== "latest" && to !== "timestamp" && to !== "offset") {
    throw new UsageError("--to must be earliest, latest, datetime or offset", usage);
  }
  const request: ResetBody = { to };
  if (to === "timestamp") {
    if ((values.datetime === undefined) === (values.timestamp === undefined)) {
      throw new UsageError(
        "--to datetime needs one of --datetime ISO-8601 or --timestamp MS",
        usage,
      );
    }
    request.timestamp =
      values.datetime !== undefined
        ? isoTime(values.datetime, "datetime", usage)
        : integer(values.timestamp, "timestamp", usage);
  } else if (values.datetime !== undefined || values.timestamp !== undefined) {
    throw new UsageError("--datetime and --timestamp go with --to datetime", usage);
  }
  if (to === "offset") {
    request.offset = integer(values.offset, "offset", usage);
    if (request.offset === undefined) throw new UsageError("--to offset needs --offset N", usage);
  } else if (values.offset !== undefined) {
    throw new UsageError("--offset goes with --to offset", usage);
  }
  if (values.topic !== undefined) {
    const [topic, list] = splitOnce(values.topic, ":");
    request.topic = topic;
    if (list !== undefined) {
      request.partitions = list.split(",").map((p) => integer(p.trim(), "topic partition", usage)!);
    }
  }
  if (values["dry-run"]) request.dryRun = true;
  return request;
}

function splitOnce(text: string, separator: string): [string, string | undefined] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + separator.length)];
}
