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

/** Sealed segments are named by base offset, 20 digits, like Kafka's segment files. */
export function segmentKey(
  topic: string,
  topicId: string,
  partition: number,
  baseOffset: number,
): string {
  return `${partitionPrefix(topic, topicId, partition)}${String(baseOffset).padStart(20, "0")}.log`;
}
