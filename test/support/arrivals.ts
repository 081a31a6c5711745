/**
 * Things a test server receives (mails, SMS) and promises that resolve once enough have arrived,
 * shared by the SMTP sink and the Twilio fake.
 */
export class Arrivals<T> {
  readonly items: T[] = [];
  private readonly waiters = new Set<{ count: number; resolve(items: T[]): void }>();

  /** Records an arrival and wakes every waiter whose count is now reached. */
  push(item: T): void {
    this.items.push(item);
    for (const waiter of this.waiters) {
      if (this.items.length >= waiter.count) {
        this.waiters.delete(waiter);
        waiter.resolve(this.items.slice());
      }
    }
  }

  /** Resolves with all arrivals once `count` are in; rejects with `describeShortfall()` on timeout. */
  waitFor(count: number, timeoutMs: number, describeShortfall: () => string): Promise<T[]> {
    if (this.items.length >= count) return Promise.resolve(this.items.slice());
    return new Promise((resolve, reject) => {
      const waiter = {
        count,
        resolve(items: T[]) {
          clearTimeout(timer);
          resolve(items);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(describeShortfall()));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }
}
