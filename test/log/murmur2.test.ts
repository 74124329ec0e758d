import { describe, it, expect } from "vitest";
import { murmur2, partitionForKey, toPositive } from "../../src/log/murmur2.js";

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

describe("murmur2", () => {
  // Verbatim from apache/kafka UtilsTest.testMurmur2
  // (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java).
  const kafkaVectors: [Uint8Array, number][] = [
    [bytes("21"), -973932308],
    [bytes("foobar"), -790332482],
    [bytes("a-little-bit-long-string"), -985981536],
    [bytes("a-little-bit-longer-string"), -1486304829],
    [bytes("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971],
    [new Uint8Array([0x61, 0x62, 0x63]), 479470107],
  ];

  it.each(kafkaVectors)("matches Kafka's Utils.murmur2 for %s", (key, expected) => {
    expect(murmur2(key)).toBe(expected);
  });

  it("hashes a key that is a view into a larger buffer by its own bytes only", () => {
    const buffer = bytes("xxfoobaryy");
    expect(murmur2(buffer.subarray(2, 8))).toBe(-790332482);
  });
});

describe("toPositive", () => {
  it("clears the sign bit like Kafka, rather than taking the absolute value", () => {
    expect(toPositive(-1)).toBe(0x7fffffff);
    expect(toPositive(-0x80000000)).toBe(0);
    expect(toPositive(-973932308)).toBe(-973932308 & 0x7fffffff);
    expect(toPositive(479470107)).toBe(479470107);
  });
});

describe("partitionForKey", () => {
  it("is toPositive(murmur2(key)) % numPartitions", () => {
    // toPositive(-790332482) = 1357151166; toPositive(479470107) = 479470107.
    expect(partitionForKey(bytes("foobar"), 1)).toBe(0);
    expect(partitionForKey(bytes("foobar"), 3)).toBe(1357151166 % 3);
    expect(partitionForKey(bytes("foobar"), 12)).toBe(6);
    expect(partitionForKey(bytes("abc"), 7)).toBe(479470107 % 7);
    expect(partitionForKey(bytes("abc"), 10)).toBe(7);
  });

  it("refuses a partition count that is not a positive integer", () => {
    expect(() => partitionForKey(bytes("abc"), 0)).toThrow(RangeError);
    expect(() => partitionForKey(bytes("abc"), 1.5)).toThrow(RangeError);
  });
});
