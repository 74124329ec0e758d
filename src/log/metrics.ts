/** Per-topic counters, cheap enough to bump on every request. */
export interface TopicCounters {
  produceRequests: number;
  recordsIn: number;
  bytesIn: number;
  flushes: number;
  commitConflicts: number;
  flushFailures: number;
  fetchRequests: number;
  recordsOut: number;
}

export const zeroCounters = (): TopicCounters => ({
  produceRequests: 0,
  recordsIn: 0,
  bytesIn: 0,
  flushes: 0,
  commitConflicts: 0,
  flushFailures: 0,
  fetchRequests: 0,
  recordsOut: 0,
});

export class Metrics {
  private readonly topics = new Map<string, TopicCounters>();

  add(topic: string, counter: keyof TopicCounters, amount = 1): void {
    let counters = this.topics.get(topic);
    if (!counters) {
      counters = zeroCounters();
      this.topics.set(topic, counters);
    }
    counters[counter] += amount;
  }

  snapshot(): Record<string, TopicCounters> {
    return Object.fromEntries([...this.topics].map(([topic, c]) => [topic, { ...c }]));
  }
}
