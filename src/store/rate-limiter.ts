import type { Channel } from "../domain/events.js";
import { StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";

/**
 * How far ahead a send may reserve its slot: a worker slot waits briefly for its reserved slot
 * instead of churning the job through the delayed set, but does not sit idle for long.
 */
export const MAX_RATE_WAIT_MS = 1_000;

/** How long an idle key outlives its last reservation. */
const IDLE_KEY_GRACE_MS = 1_000;

/** A send slot: granted (send after `waitMs`), or denied (ask again in `retryInMs`). */
export type RateTake =
  | { readonly granted: true; readonly waitMs: number }
  | { readonly granted: false; readonly retryInMs: number };

/**
 * Per-channel send rate shared by every worker process: sends are spaced evenly, one every
 * 1000/rate ms (50/s → 20 ms apart; 0.5/s → 2 s apart), by reserving slots in one Redis key, so no
 * second ever sees more than the configured rate plus the one send at its edge.
 */
export class ChannelRateLimiter {
  private readonly redis: RedisClient & StoreCommands;
  private readonly keys: StoreKeys;

  constructor(redis: RedisClient, prefix: string) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(prefix);
  }

  /**
   * Reserves the channel's next free slot if it is at most the max wait away. The time is the Redis
   * server's, one clock for every worker (a worker whose clock ran ahead would otherwise take the
   * slots of the others); tests pass `now` (epoch ms).
   */
  async take(channel: Channel, ratePerSecond: number, now?: number): Promise<RateTake> {
    const [granted, micros] = await this.redis.fuTakeRateSlot(
      this.keys.rateSlot(channel),
      now === undefined ? "" : Math.round(now * 1000),
      slotIntervalMicros(ratePerSecond),
      MAX_RATE_WAIT_MS * 1000,
      IDLE_KEY_GRACE_MS * 1000,
    );
    if (granted === 1) return { granted: true, waitMs: micros / 1000 };
    return { granted: false, retryInMs: Math.max(1, Math.ceil(micros / 1000)) };
  }
}

/** Microseconds between two sends at a rate: 50/s → 20,000; 0.5/s → 2,000,000. */
function slotIntervalMicros(ratePerSecond: number): number {
  return Math.max(1, Math.round(1_000_000 / ratePerSecond));
}
