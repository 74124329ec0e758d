/**
 * Wakes long-polling readers in this process the moment a local flush commits. Commits made by
 * other processes are noticed by the readers' own bounded re-reads of the log-end offset.
 */
export class AppendNotifier {
  private readonly waiters = new Map<string, Set<() => void>>();

  notify(partitionKey: string): void {
    const set = this.waiters.get(partitionKey);
    if (!set) return;
    this.waiters.delete(partitionKey);
    for (const wake of set) wake();
  }

  /** Resolves on the next notify for the partition, after `timeoutMs`, or on abort. */
  waitForNotify(partitionKey: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let set = this.waiters.get(partitionKey);
      if (!set) {
        set = new Set();
        this.waiters.set(partitionKey, set);
      }
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        const current = this.waiters.get(partitionKey);
        current?.delete(done);
        if (current?.size === 0) this.waiters.delete(partitionKey);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, timeoutMs));
      signal?.addEventListener("abort", done, { once: true });
      set.add(done);
    });
  }
}
