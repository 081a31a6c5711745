import type { Redis } from "ioredis";
import type { PurchaseCompleted } from "../domain/events.js";
import { StoreKeys } from "./keys.js";
import { decodePurchase, encodePurchase } from "./purchase-codec.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";

/** At most this many purchases join one thank-you (it lists one more: the first); later ones get their own. */
export const MAX_JOINED = 9;

/** How a purchase's coalescing thank-you was filed. */
export type ThankYouFiling =
  | { readonly role: "lead" }
  | { readonly role: "alone" }
  | { readonly role: "joined"; readonly leaderEventId: string; readonly leaderStepId: string };

/**
 * One thank-you for a customer's purchases within a rule's `coalesce` window: the first purchase
 * leads a group, later ones join it until the leader's thank-you goes out (it closes the group and
 * lists every member's order). A joined purchase is kept here, compressed, until then: its own
 * record keeps nothing, as it has no step of its own. The key is named by the customer's hash.
 */
export class ThankYouGroups {
  private readonly redis: Redis & StoreCommands;
  private readonly keys: StoreKeys;

  constructor(redis: Redis, prefix: string) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(prefix);
  }

  /** Files the purchase: leads, joins or stays alone (join-thank-you.lua); repeatable. */
  async file(
    event: PurchaseCompleted,
    stepId: string,
    windowMs: number,
    keepMs: number,
  ): Promise<ThankYouFiling> {
    const [role, leaderEventId, leaderStepId] = await this.redis.fuJoinThankYou(
      this.keys.thankYouGroup(event.customer.id),
      event.id,
      stepId,
      Date.parse(event.occurredAt),
      windowMs,
      Math.max(1, Math.ceil(keepMs)),
      encodePurchase(event),
      MAX_JOINED,
    );
    if (role === "joined" && leaderEventId && leaderStepId)
      return { role, leaderEventId, leaderStepId };
    return { role: role === "lead" ? "lead" : "alone" };
  }

  /** Closes the group as its leader's thank-you goes out; the purchases that joined it. */
  async close(customerId: string, leaderEventId: string): Promise<PurchaseCompleted[]> {
    const flat = await this.redis.fuCloseThankYouBuffer(
      this.keys.thankYouGroup(customerId),
      leaderEventId,
    );
    const members: PurchaseCompleted[] = [];
    for (let i = 1; i < flat.length; i += 2) {
      const stored = flat[i];
      if (stored) members.push(decodePurchase(stored));
    }
    return members;
  }

  /** The group's key, for erasure. */
  keyOf(customerId: string): string {
    return this.keys.thankYouGroup(customerId);
  }
}
