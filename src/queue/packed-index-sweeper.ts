import type { Logger } from "../logger.js";
import { hourOf, PACKED_BUCKETS, StoreKeys } from "../store/keys.js";
import type { RedisClient } from "../store/redis-client.js";
import { type StoreCommands, withStoreCommands } from "../store/script-registry.js";
import { periodic } from "./periodic.js";

/**
 * Sweeps the packed indexes (the address index and the order links) of expired entries, a
 * twenty-fourth of their buckets each hour, so that every bucket is swept once a day even if
 * nothing is filed in it again: an entry (a customer id, an order's link) stays in Redis at most
 * about a day past its expiry. Every worker runs it, and the first to claim an hour sweeps its
 * round (the others skip it); one that fails or is stopped gives the hour back, one that dies
 * while sweeping leaves the rest of its round to the next day's (an entry stays at most about
 * two days then).
 */

const HOUR_MS = 3_600_000;
/** Rounds per full pass: one pass a day at a round an hour. */
const ROUNDS = 24;
/** Buckets swept at once. */
const BATCH = 100;

export interface PackedIndexSweeper {
  /**
   * Sweeps the buckets of the round `now` falls in, unless another worker claimed its hour; how
   * many entries it dropped.
   */
  sweepRound(now: number): Promise<number>;
  /** Sweeps a round now, then one an hour. */
  start(): void;
  stop(): Promise<void>;
}

/** The buckets of round `round` (0 to 23): a contiguous twenty-fourth of them. */
export function bucketsOfRound(round: number): number[] {
  const from = Math.floor((round * PACKED_BUCKETS) / ROUNDS);
  const to = Math.floor(((round + 1) * PACKED_BUCKETS) / ROUNDS);
  return Array.from({ length: to - from }, (_, i) => from + i);
}

export function createPackedIndexSweeper(deps: {
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly now: () => number;
  readonly logger: Logger;
}): PackedIndexSweeper {
  const redis: RedisClient & StoreCommands = withStoreCommands(deps.redis);
  const keys = new StoreKeys(deps.prefix);
  const task = periodic({
    firstMs: 0,
    everyMs: HOUR_MS,
    run: async () => {
      const dropped = await sweepRound(deps.now());
      if (dropped > 0) deps.logger.info({ dropped }, "expired index entries swept");
    },
    failed: (error) => deps.logger.warn({ err: error }, "index sweep failed"),
  });

  async function sweepRound(now: number): Promise<number> {
    const claimKey = keys.indexSweep(hourOf(now));
    if ((await redis.set(claimKey, "1", "PX", 2 * HOUR_MS, "NX")) !== "OK") return 0;
    try {
      const dropped = await sweepClaimed(now);
      // Stopped half-way (a deploy): another worker may sweep the hour's round.
      if (task.stopped()) await redis.del(claimKey);
      return dropped;
    } catch (error) {
      await redis.del(claimKey).catch(() => undefined);
      throw error;
    }
  }

  async function sweepClaimed(now: number): Promise<number> {
    const round = hourOf(now) % ROUNDS;
    const buckets = bucketsOfRound(round).flatMap((bucket) => [
      keys.addressBucket(bucket),
      keys.orderLinks(bucket),
    ]);
    let dropped = 0;
    for (let start = 0; start < buckets.length && !task.stopped(); start += BATCH) {
      const counts = await Promise.all(
        buckets.slice(start, start + BATCH).map((bucket) => redis.fuSweepBucket(bucket, now)),
      );
      dropped += counts.reduce((sum, count) => sum + count, 0);
    }
    return dropped;
  }

  return { sweepRound, start: task.start, stop: task.stop };
}
