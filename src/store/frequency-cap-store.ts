import type { Channel } from "../domain/events.js";
import type { FrequencyCap } from "../domain/rules.js";
import { type Scope, StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";

export type CapResult =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly freeAt: number };

/**
 * Per-customer send history per channel (a sorted set of follow-up ids by send time), used to
 * keep each customer under the frequency caps across all their purchases and all workers.
 */
export class FrequencyCapStore {
  private readonly redis: RedisClient & StoreCommands;
  private readonly keys: StoreKeys;

  constructor(redis: RedisClient, scope: Scope) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(scope);
  }

  private key(channel: Channel, customerId: string): string {
    return this.keys.capWindow(channel, customerId);
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
    const freeAt = await this.redis.fuTakeCapSlot(
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
