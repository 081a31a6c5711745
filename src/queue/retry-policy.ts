/** Retry policy of transient failures: attempts in all, and the wait before attempt n+1. */
export interface RetryPolicy {
  readonly maxAttempts: number;
  readonly delayMs: (attemptsMade: number) => number;
}

/**
 * Capped exponential backoff with full jitter: attempt 1 waits up to `baseMs`, each further one
 * doubles, never more than `capMs`. Jitter spreads retries of a burst so they do not collide again.
 */
export function cappedBackoff(baseMs: number, capMs: number, random: () => number) {
  return (attemptsMade: number) => {
    const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attemptsMade - 1));
    return Math.round(ceiling / 2 + (random() * ceiling) / 2);
  };
}
