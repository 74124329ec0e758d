import type { ConsumedRecord, WireRecord } from "./types.js";

/** Base64 and record shapes with web-standard globals only (btoa/atob, TextEncoder). */

export const utf8 = new TextEncoder();

export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  // String.fromCharCode takes arguments: chunked, so large values never overflow the stack.
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

export function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** UTF-8 byte length without encoding the string. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      bytes += 4; // a surrogate pair
      i++;
    } else bytes += 3;
  }
  return bytes;
}

export function toConsumedRecord(r: WireRecord): ConsumedRecord {
  const record: ConsumedRecord = {
    offset: r.offset,
    timestamp: r.timestamp,
    key: r.key ?? null,
    value: r.valueBase64 === undefined ? r.value : fromBase64(r.valueBase64),
    headers: r.headers,
  };
  if (r.keyBase64 !== undefined) record.keyBase64 = r.keyBase64;
  if (r.valueBase64 !== undefined) record.valueBase64 = r.valueBase64;
  return record;
}
