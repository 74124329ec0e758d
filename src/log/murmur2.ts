/**
 * Kafka's default partitioner for keyed records, bit for bit: Utils.murmur2 (MurmurHash2, 32-bit,
 * seed 0x9747b28c) and Utils.toPositive. Matching it means a key lands on the same partition
 * here as with a Kafka producer, so data can move between the two without reshuffling.
 */

const SEED = 0x9747b28c;
const M = 0x5bd1e995;
const R = 24;

/** The hash as a signed 32-bit integer, exactly as Java's `int` result. */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = SEED ^ length;
  const tail = length & ~3;

  for (let i = 0; i < tail; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> R;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }

  // Java's switch falls through from case 3 to case 1; so do these ifs.
  const remaining = length & 3;
  if (remaining === 3) h ^= data[tail + 2]! << 16;
  if (remaining >= 2) h ^= data[tail + 1]! << 8;
  if (remaining >= 1) h = Math.imul(h ^ data[tail]!, M);

  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** Kafka's Utils.toPositive: clears the sign bit (not Math.abs, which differs for negatives). */
export function toPositive(n: number): number {
  return n & 0x7fffffff;
}

export function partitionForKey(keyBytes: Uint8Array, numPartitions: number): number {
  if (!Number.isInteger(numPartitions) || numPartitions < 1 || numPartitions > 0x7fffffff) {
    throw new RangeError(`numPartitions must be a positive int32, got ${numPartitions}`);
  }
  return toPositive(murmur2(keyBytes)) % numPartitions;
}
