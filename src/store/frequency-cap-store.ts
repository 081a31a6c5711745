import type { Redis } from "ioredis";
import type { Channel } from "../domain/events.js";
import type { FrequencyCap } from "../domain/rules.js";
import { eventKey } from "../queue/names.js";

/**
 * Per-customer send history per channel (a sorted set of follow-up ids by send time), used to
 * keep each customer under the frequency caps across all their purchases and all workers.
 */

/**
 * Reserves a slot for a follow-up if every cap allows it; a follow-up that already holds a slot
 * (a retry) keeps it. Returns 0 when reserved, else the epoch ms when the tightest cap frees up.
 * ARGV: member, now, then pairs of (max, perMs).
 */
const TAKE_SCRIPT = `
local now = tonumber(ARGV[2])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local freeAt = 0
local longest = 0
for i = 3, #ARGV, 2 do
  local max = tonumber(ARGV[i])
  local per = tonumber(ARGV[i + 1])
  if per > longest then longest = per end
  local inWindow = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (now - per), '+inf', 'WITHSCORES')
  local count = #inWindow / 2
  if count >= max then
    local oldestBlocking = tonumber(inWindow[(count - max) * 2 + 2])
    local frees = oldestBlocking + per
    if frees > freeAt then freeAt = frees end
  end
end
if freeAt > 0 then return freeAt end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - longest)
redis.call('PEXPIRE', KEYS[1], longest)
return 0
`;

interface CapScripts {
  followUpCapTake(key: string, member: string, now: number, ...caps: number[]): Promise<number>;
}

export type CapResult =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly freeAt: number };

export class FrequencyCapStore {
  private readonly redis: Redis & CapScripts;

  constructor(
    redis: Redis,
    private readonly prefix: string,
  ) {
    const scripted = redis as Redis & Partial<CapScripts>;
    if (!scripted.followUpCapTake)
      redis.defineCommand("followUpCapTake", { numberOfKeys: 1, lua: TAKE_SCRIPT });
    this.redis = redis as Redis & CapScripts;
  }

  private key(channel: Channel, customerId: string): string {
    return `${this.prefix}:fu:sent:${channel}:${eventKey(customerId)}`;
  }

  /** Takes a slot for `followUpId` under every cap, or says when one frees up. */
  async take(
    channel: Channel,
    customerId: string,
    followUpId: string,
    caps: readonly FrequencyCap[],
    now: number,
  ): Promise<CapResult> {
    if (caps.length === 0) return { allowed: true };
    const freeAt = await this.redis.followUpCapTake(
      this.key(channel, customerId),
      followUpId,
      now,
      ...caps.flatMap((cap) => [cap.max, cap.perMs]),
    );
    return freeAt === 0 ? { allowed: true } : { allowed: false, freeAt };
  }

  /** Gives a slot back: the message was not sent after all (permanent failure, skipped). */
  async release(channel: Channel, customerId: string, followUpId: string): Promise<void> {
    await this.redis.zrem(this.key(channel, customerId), followUpId);
  }
}
