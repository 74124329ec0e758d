import { SluiceError } from "../errors.js";

/**
 * Kafka's rule for topic names, applied to group names too: they become object-key segments
 * and table keys, so nothing outside this alphabet may reach storage.
 */
export const NAME_PATTERN = /^[a-zA-Z0-9._-]{1,249}$/;

export function isValidName(name: string): boolean {
  return NAME_PATTERN.test(name) && name !== "." && name !== "..";
}

export function assertValidName(kind: "topic" | "group", name: string): void {
  if (!isValidName(name)) {
    throw new SluiceError(
      "invalid_name",
      `${kind} name must be 1-249 characters of [a-zA-Z0-9._-] and not "." or ".."`,
      { details: { [kind]: name.slice(0, 300) } },
    );
  }
}
