import type { Redis } from "ioredis";
import type { Channel } from "../domain/events.js";

/**
 * Per-channel send rate shared by every worker process: a fixed window counter in Redis. A rate
 * below one per second becomes one message per 1/rate seconds.
 */
const TAKE_SCRIPT = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return count
`;

interface RateScripts {
  followUpRateTake(key: string, expireMs: number): Promise<number>;
}

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

  /** Takes one send slot; returns 0 when granted, else how many ms to wait before asking again. */
  async take(channel: Channel, ratePerSecond: number, now: number): Promise<number> {
    const { max, windowMs } = windowFor(ratePerSecond);
    const window = Math.floor(now / windowMs);
    const count = await this.redis.followUpRateTake(
      `${this.prefix}:fu:rate:${channel}:${window}`,
      windowMs * 2,
    );
    return count <= max ? 0 : (window + 1) * windowMs - now;
  }
}

/** Window and count for a rate: 5/s → 5 per 1000 ms; 0.5/s → 1 per 2000 ms. */
export function windowFor(ratePerSecond: number): { max: number; windowMs: number } {
  if (ratePerSecond >= 1) return { max: Math.floor(ratePerSecond), windowMs: 1000 };
  return { max: 1, windowMs: Math.ceil(1000 / ratePerSecond) };
}
