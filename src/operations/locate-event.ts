import { StoreKeys, shardScope } from "../store/keys.js";
import type { RedisClient } from "../store/redis-client.js";

/** A purchase event and the shard its record lives in (its customer's). */
export interface EventInShard {
  readonly eventId: string;
  readonly shard: number;
}

/**
 * Finds the shard holding an event's record, for what names an event without its customer (a step
 * as operators name it, `<eventId>/<stepId>`): one EXISTS per shard, all sent at once. Undefined
 * when no shard holds it; with one shard it is shard 0 without asking.
 */
export function eventLocator(
  redis: RedisClient,
  prefix: string,
  shards: number,
): (eventId: string) => Promise<number | undefined> {
  const first = new StoreKeys(shardScope(prefix, 0, shards));
  const keys = Array.from({ length: shards }, (_, shard) => first.ofShard(shard));
  return async (eventId) => {
    if (shards === 1) return 0;
    // Separate commands, not one pipeline: on a Redis Cluster each shard's key is in its own slot.
    const found = await Promise.all(keys.map((shard) => redis.exists(shard.eventRecord(eventId))));
    const at = found.findIndex((count) => count > 0);
    return at < 0 ? undefined : at;
  };
}
