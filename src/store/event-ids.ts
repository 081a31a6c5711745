import {
  type EventFingerprints,
  eventFingerprints,
  fingerprintMatches,
} from "../domain/event-fingerprint.js";
import { customerOfEvent, type FollowUpEvent } from "../domain/events.js";
import { prefixOf, type Scope, StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";

/** What an event id was used for before: nothing, this same event, or other content. */
export type EventIdClaim = "first" | "repeat" | "conflict";

/**
 * Event ids are unique per deployment: each is kept with the fingerprint of the event it named
 * (in the event record, for as long as the record lives), so a repeat is recognised and an id
 * reused for other content is refused instead of merged or dropped. A registry sees its shard's
 * records; with several shards, DeploymentEventIds keeps each id once for all of them.
 */
export class EventIdRegistry {
  private readonly redis: RedisClient & StoreCommands;
  private readonly keys: StoreKeys;

  constructor(redis: RedisClient, scope: Scope) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(scope);
  }

  /** Claims the id for a refund or opt-out event (purchases claim it with their history). */
  async claim(
    eventId: string,
    fingerprints: EventFingerprints,
    keepMs: number,
  ): Promise<EventIdClaim> {
    const key = this.keys.eventRecord(eventId);
    // The kept fingerprint first; an earlier one of the event's only when that conflicts (rare).
    for (const fingerprint of fingerprints) {
      const answer = await this.redis.fuClaimEventId(key, fingerprint, keepMs);
      if (answer !== -1) return answer === 1 ? "first" : "repeat";
    }
    return "conflict";
  }

  /** Whether the id was used for an event with another fingerprint. */
  async conflicts(eventId: string, fingerprints: EventFingerprints): Promise<boolean> {
    const stored = await this.redis.hget(this.keys.eventRecord(eventId), "f");
    return stored !== null && !fingerprintMatches(stored, fingerprints);
  }
}

/**
 * With customers spread over several shards each shard knows its own customers' event ids only,
 * so the deployment keeps each id once more, in a global key (`id:<hash>` → fingerprint), as long
 * as the event's record: an id reused for another customer's event, or a refund under a
 * purchase's id, is refused as it is with one shard. Not used with one shard (the record does it),
 * so a single-shard deployment pays nothing for it.
 */
export class DeploymentEventIds {
  private readonly keys: StoreKeys;

  constructor(
    private readonly redis: RedisClient,
    scope: Scope,
  ) {
    this.keys = new StoreKeys(prefixOf(scope));
  }

  /** Claims the id for an event's content, kept `keepMs`; a repeat or a conflict if it was taken. */
  async claim(
    eventId: string,
    fingerprints: EventFingerprints,
    keepMs: number,
  ): Promise<EventIdClaim> {
    const key = this.keys.eventIdClaim(eventId);
    for (;;) {
      if ((await this.redis.set(key, fingerprints[0], "PX", keepMs, "NX")) === "OK") return "first";
      const stored = await this.redis.get(key);
      // Expired between the two commands: claim it again.
      if (stored !== null) return fingerprintMatches(stored, fingerprints) ? "repeat" : "conflict";
    }
  }

  /** Keeps the claim at least `keepMs` from now (as long as the event's record). */
  async keep(eventId: string, keepMs: number): Promise<void> {
    await this.redis.pexpire(this.keys.eventIdClaim(eventId), keepMs, "GT");
  }

  /** Whether the id was claimed for an event with another fingerprint. */
  async conflicts(eventId: string, fingerprints: EventFingerprints): Promise<boolean> {
    const stored = await this.redis.get(this.keys.eventIdClaim(eventId));
    return stored !== null && !fingerprintMatches(stored, fingerprints);
  }
}

/** Every shard's event ids (a Shards of them), as idTakenByAnother reads them. */
interface ShardsEventIds {
  of(shard: number): { readonly eventIds: Pick<EventIdRegistry, "conflicts"> };
  ofCustomer(customerId: string): { readonly eventIds: Pick<EventIdRegistry, "conflicts"> };
}

/**
 * Whether intake took `event`'s id for another event before (its job may be cleaned up already):
 * looked up where intake claims it, in the shard of the event's customer (shard 0 for a refund,
 * which names none), and with several shards in the deployment's ids (`deploymentIds`) too.
 */
export async function idTakenByAnother(
  event: FollowUpEvent,
  shards: ShardsEventIds,
  deploymentIds?: Pick<DeploymentEventIds, "conflicts">,
): Promise<boolean> {
  const customerId = customerOfEvent(event);
  const { eventIds } = customerId === undefined ? shards.of(0) : shards.ofCustomer(customerId);
  const fingerprints = eventFingerprints(event);
  return (
    (await eventIds.conflicts(event.id, fingerprints)) ||
    ((await deploymentIds?.conflicts(event.id, fingerprints)) ?? false)
  );
}
