import { randomBytes } from "node:crypto";

/**
 * Records for the multi-process tests. Every record carries its unique id in a header, so a
 * read-back record can be matched to what was sent whatever offset it landed at; values
 * alternate between JSON and random binary so that both encodings are compared exactly.
 */
export interface SentRecord {
  id: string;
  body: { value?: unknown; valueBase64?: string; headers: { id: string } };
}

export function makeRecord(id: string, serial: number): SentRecord {
  const body =
    serial % 2 === 0
      ? {
          value: { id, n: serial, text: `värde ${id} 👩‍🚀`, list: [serial, null, true] },
          headers: { id },
        }
      : { valueBase64: randomBytes(1 + (serial % 97)).toString("base64"), headers: { id } };
  return { id, body };
}

/** What a fetched record must look like for the record that was sent: value, bytes and headers. */
export function expectedReadBack(sent: SentRecord): Record<string, unknown> {
  return sent.body.valueBase64 === undefined
    ? { key: null, value: sent.body.value, headers: sent.body.headers }
    : { key: null, valueBase64: sent.body.valueBase64, headers: sent.body.headers };
}

/** The fields of a fetched record that `expectedReadBack` describes. */
export function comparable(read: any): Record<string, unknown> {
  const { offset: _offset, timestamp: _timestamp, ...rest } = read;
  return rest;
}

export const range = (n: number) => Array.from({ length: n }, (_, i) => i);

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
