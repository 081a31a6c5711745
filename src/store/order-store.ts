import type { Redis } from "ioredis";
import type { Money } from "../domain/money.js";
import { StoreKeys } from "./keys.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";

/**
 * What is known of an order: the purchase events that created follow-ups for it and the refunds
 * against it. Refunds may arrive before their purchase (queues do not promise order), so a refund
 * of an unknown order is kept and applied when the purchase shows up.
 */
export interface OrderRecord {
  readonly eventIds: readonly string[];
  /** Every partial refund recorded, each in its own currency. */
  readonly refunds: readonly Money[];
  /** A refund without an amount: the whole order. */
  readonly fullyRefunded: boolean;
}

export class OrderStore {
  private readonly redis: Redis & StoreCommands;
  private readonly keys: StoreKeys;

  constructor(redis: Redis, prefix: string) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(prefix);
  }

  /**
   * Links a purchase event to its order and returns the order as it stands right after: a refund
   * recorded before this moment is in the answer, one recorded after it will find the link.
   */
  async linkPurchase(orderId: string, eventId: string, keepMs: number): Promise<OrderRecord> {
    return parseOrder(await this.redis.fuLinkOrder(this.keys.order(orderId), eventId, keepMs));
  }

  /** Records a refund (idempotent per refund event) and returns the order as it now stands. */
  async addRefund(
    orderId: string,
    refundEventId: string,
    amount: Money | undefined,
    keepMs: number,
  ): Promise<OrderRecord> {
    const flat = await this.redis.fuRecordRefund(
      this.keys.order(orderId),
      refundEventId,
      amount ? `${amount.minor} ${amount.currency}` : "full",
      keepMs,
    );
    return parseOrder(flat);
  }

  async get(orderId: string): Promise<OrderRecord> {
    const all = await this.redis.hgetall(this.keys.order(orderId));
    return parseOrder(Object.entries(all).flat());
  }
}

function parseOrder(flat: readonly string[]): OrderRecord {
  const eventIds: string[] = [];
  const refunds: Money[] = [];
  let fullyRefunded = false;
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const field = flat[i] ?? "";
    const value = flat[i + 1] ?? "";
    if (field.startsWith("e:")) eventIds.push(field.slice(2));
    else if (field.startsWith("r:")) {
      if (value === "full") fullyRefunded = true;
      else {
        const [minor = "0", currency = ""] = value.split(" ");
        refunds.push({ minor: Number(minor), currency });
      }
    }
  }
  return { eventIds, refunds, fullyRefunded };
}
