import { decodeTime, isValid } from "ulid";

/**
 * Where a partition's objects live. The topic id sits under the name so that a re-created
 * topic never reads (or deletes) the objects of the topic it replaced.
 */
export function partitionPrefix(topic: string, topicId: string, partition: number): string {
  return `${topic}/${topicId}/${partition}/`;
}

/** Flush objects get a unique name because their base offset is unknown until the commit. */
export function chunkKey(topic: string, topicId: string, partition: number, id: string): string {
  return `${partitionPrefix(topic, topicId, partition)}chunks/${id}.chunk`;
}

/**
 * Sealed segments are named by base offset, 20 digits, like Kafka's segment files, so a listing
 * reads in offset order. The roll id makes the key unique: two rollers of one base never write
 * the same key, so a key's bytes never change.
 */
export function segmentKey(
  topic: string,
  topicId: string,
  partition: number,
  baseOffset: number,
  rollId: string,
): string {
  const base = String(baseOffset).padStart(20, "0");
  return `${partitionPrefix(topic, topicId, partition)}${base}-${rollId}.log`;
}

const CHUNK_ID = /\/chunks\/([0-9A-HJKMNP-TV-Z]{26})\.chunk$/;

/**
 * When a chunk was uploaded, by the server clock, from the ULID in its key; undefined for a key
 * that is not a chunk's.
 */
export function chunkUploadedAt(key: string): number | undefined {
  const id = CHUNK_ID.exec(key)?.[1];
  if (id === undefined || !isValid(id)) return undefined;
  return decodeTime(id);
}
