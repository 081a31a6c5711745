import type { Redis } from "ioredis";
import type { Channel } from "../domain/events.js";

/**
 * How far ahead a send may reserve its slot: a worker slot waits briefly for its reserved slot
 * instead of churning the job through the delayed set, but does not sit idle for long.
 */
export const MAX_RATE_WAIT_MS = 1_000;

/** How long an idle key outlives its last reservation. */
const IDLE_KEY_GRACE_MS = 1_000;

/**
 * Reserves the next free send slot of a channel (GCRA: the key holds the theoretical arrival time
 * of the next send, in integer epoch microseconds so the spacing stays exact and adds up over time).
 * ARGV: now (empty: the Redis server's clock, which all workers share), interval, max wait, idle
 * grace (all µs). Returns {1, wait} when granted, {0, retry in} when the next free slot is further
 * than max wait away (nothing is reserved then).
 * string.format('%.0f') writes numbers in full; Lua's tostring would round them to 14 digits.
 */
const TAKE_SCRIPT = `
local now = tonumber(ARGV[1])
if not now then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end
local interval = tonumber(ARGV[2])
local maxWait = tonumber(ARGV[3])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if slot < now then slot = now end
local wait = slot - now
if wait > maxWait then return {0, wait - maxWait} end
local reservedUntil = slot + interval
local ttlMs = math.ceil((reservedUntil - now + tonumber(ARGV[4])) / 1000)
redis.call('SET', KEYS[1], string.format('%.0f', reservedUntil), 'PX', string.format('%.0f', ttlMs))
return {1, wait}
`;

interface RateScripts {
  followUpRateTake(
    key: string,
    nowUs: number | "",
    intervalUs: number,
    maxWaitUs: number,
    graceUs: number,
  ): Promise<[number, number]>;
}

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
  private readonly redis: Redis & RateScripts;

  constructor(
    redis: Redis,
    private readonly prefix: string,
  ) {
    const scripted = redis as Redis & Partial<RateScripts>;
    if (!scripted.followUpRateTake)
      redis.defineCommand("followUpRateTake", { numberOfKeys: 1, lua: TAKE_SCRIPT });
    this.redis = redis as Redis & RateScripts;
  }

  /**
   * Reserves the channel's next free slot if it is at most the max wait away. The time is the Redis
   * server's, one clock for every worker (a worker whose clock ran ahead would otherwise take the
   * slots of the others); tests pass `now` (epoch ms).
   */
  async take(channel: Channel, ratePerSecond: number, now?: number): Promise<RateTake> {
    const [granted, micros] = await this.redis.followUpRateTake(
      `${this.prefix}:fu:rate:${channel}`,
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
