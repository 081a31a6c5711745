/** Retry policy of transient failures: attempts in all, and the wait before attempt n+1. */
export interface RetryPolicy {
  readonly maxAttempts: number;
  readonly delayMs: (attemptsMade: number) => number;
  /** The longest wait between attempts: a provider's Retry-After is waited up to this long. */
  readonly maxDelayMs: number;
}

/**
 * The wait before attempt n+1: the backoff, or what the provider asked (`atLeastMs`, its
 * Retry-After) when that is longer, but never more than the policy's longest wait.
 */
export function retryDelayMs(policy: RetryPolicy, attemptsMade: number, atLeastMs?: number) {
  const backoff = policy.delayMs(attemptsMade);
  if (atLeastMs === undefined) return backoff;
  return Math.max(backoff, Math.min(Math.ceil(atLeastMs), policy.maxDelayMs));
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
