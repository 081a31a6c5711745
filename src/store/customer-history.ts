import type { Redis } from "ioredis";
import type { PurchaseCompleted } from "../domain/events.js";
import type { CustomerHistory } from "../domain/rules.js";
import { StoreKeys } from "./keys.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";

/** The event record's field holding the customer's earlier purchases as counted at first sight. */
const HISTORY_FIELD = "h";

/**
 * How many purchases a customer made before and when the latest was, for rules such as "loyal
 * customer": counted once per event, so redelivered events do not inflate it.
 */
export class CustomerHistoryStore {
  private readonly redis: Redis & StoreCommands;
  private readonly keys: StoreKeys;

  constructor(redis: Redis, prefix: string) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(prefix);
  }

  /**
   * The customer's purchase history before this event, counting this event in for later ones.
   * Idempotent per event id; an id used before for other content (another fingerprint) is a
   * conflict and counts nothing. History is forgotten after `keepCustomerMs` without purchases.
   */
  async recordPurchase(
    event: PurchaseCompleted,
    fingerprint: string,
    keepCustomerMs: number,
    keepEventMs: number,
  ): Promise<{ history: CustomerHistory; firstSeen: boolean } | { conflict: true }> {
    const [count, last, firstSeen] = await this.redis.fuRecordPurchase(
      this.keys.eventRecord(event.id),
      this.keys.customerHistory(event.customer.id),
      new Date(event.occurredAt).toISOString(),
      keepCustomerMs,
      keepEventMs,
      fingerprint,
      event.id,
      Date.parse(event.occurredAt),
    );
    if (count === -1) return { conflict: true };
    const history = last
      ? { previousPurchases: count, lastPurchaseAt: last }
      : { previousPurchases: count };
    return { history, firstSeen: firstSeen === 1 };
  }

  /** The customer's purchases (event ids), latest first: at most the last 100. */
  async purchasesOf(customerId: string): Promise<{ eventId: string; purchasedAt: number }[]> {
    const all = await this.redis.hgetall(this.keys.customerHistory(customerId));
    return Object.entries(all)
      .filter(([field]) => field.startsWith("e:"))
      .map(([field, at]) => ({ eventId: field.slice(2), purchasedAt: Number(at) }))
      .sort((a, b) => b.purchasedAt - a.purchasedAt || a.eventId.localeCompare(b.eventId));
  }

  /** The history recorded when the event was first planned (none if it never was). */
  async historyAt(eventId: string): Promise<CustomerHistory> {
    const count = await this.redis.hget(this.keys.eventRecord(eventId), HISTORY_FIELD);
    return { previousPurchases: count ? Number(count) : 0 };
  }
}
