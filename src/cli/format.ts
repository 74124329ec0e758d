import type { Writer } from "./context.js";

export type Cell = string | number | boolean | null | undefined;

/** A cell as printed: `-` for a missing value, as kafka-consumer-groups prints it. */
export function cellText(cell: Cell): string {
  return cell === null || cell === undefined || cell === "" ? "-" : String(cell);
}

/**
 * A table of left-aligned columns padded to their widest cell, two spaces apart, with no
 * trailing spaces: the layout of Kafka's command-line tools and kubectl.
 */
export function table(headers: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const text = rows.map((row) => headers.map((_, i) => cellText(row[i])));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((row) => row[i]!.length)));
  const format = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [format(headers), ...text.map(format)].map((l) => `${l}\n`).join("");
}

/** Pretty JSON for one-shot answers (`--json`). */
export function writeJson(writer: Writer, value: unknown): void {
  writer.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A time in ms since the epoch as ISO-8601, `-` if unknown. */
export function isoText(ms: number | null | undefined): string {
  return ms === null || ms === undefined ? "-" : new Date(ms).toISOString();
}

/** `1 record`, `2 records`. */
export function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
