import { type Scope, StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";

/** What an event id was used for before: nothing, this same event, or other content. */
export type EventIdClaim = "first" | "repeat" | "conflict";

/**
 * Event ids are unique per deployment: each is kept with the fingerprint of the event it named
 * (in the event record, for as long as the record lives), so a repeat is recognised and an id
 * reused for other content is refused instead of merged or dropped.
 */
export class EventIdRegistry {
  private readonly redis: RedisClient & StoreCommands;
  private readonly keys: StoreKeys;

  constructor(redis: RedisClient, scope: Scope) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(scope);
  }

  /** Claims the id for a refund or opt-out event (purchases claim it with their history). */
  async claim(eventId: string, fingerprint: string, keepMs: number): Promise<EventIdClaim> {
    const answer = await this.redis.fuClaimEventId(
      this.keys.eventRecord(eventId),
      fingerprint,
      keepMs,
    );
    return answer === 1 ? "first" : answer === 0 ? "repeat" : "conflict";
  }

  /** Whether the id was used for an event with another fingerprint. */
  async conflicts(eventId: string, fingerprint: string): Promise<boolean> {
    const stored = await this.redis.hget(this.keys.eventRecord(eventId), "f");
    return stored !== null && stored !== fingerprint;
  }
}
