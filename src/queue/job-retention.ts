/**
 * How long BullMQ keeps finished jobs, set once on the workers instead of on every job (the
 * bench's reference workers keep theirs the same way, so both sides of a ratio trim alike).
 */

/** Completed follow-up jobs: a day, at most 10,000 (a job holds only its step's reference). */
export const KEEP_COMPLETED = { age: 24 * 3600, count: 10_000 };

/**
 * Completed intake jobs hold the whole event (personal data, about 1.5 kB each); our own records
 * make re-publishing safe without them, so only a short window is kept for inspection.
 */
export const KEEP_COMPLETED_EVENTS = { age: 3600, count: 1_000 };

/** Failed jobs of either queue: 30 days, for inspection and `followups failed --retry`. */
export const KEEP_FAILED = { age: 30 * 24 * 3600 };
