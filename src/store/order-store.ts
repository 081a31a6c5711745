import type { Redis } from "ioredis";
import type { Money } from "../domain/money.js";
import { eventKey } from "../queue/names.js";

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

/**
 * Records one refund once per refund event id (a redelivered refund changes nothing) and returns
 * the order afterwards. Refund fields are `r:<eventId>` = "<minor units> <currency>", or "full".
 */
const REFUND_SCRIPT = `
redis.call('HSETNX', KEYS[1], 'r:' .. ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return redis.call('HGETALL', KEYS[1])
`;

/** Links a purchase to its order and returns the order, refunds included, in one step. */
const LINK_SCRIPT = `
redis.call('HSET', KEYS[1], 'e:' .. ARGV[1], '1')
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return redis.call('HGETALL', KEYS[1])
`;

interface OrderScripts {
  followUpRefund(key: string, refundId: string, amount: string, keepMs: number): Promise<string[]>;
  followUpLinkOrder(key: string, eventId: string, keepMs: number): Promise<string[]>;
}

export class OrderStore {
  private readonly redis: Redis & OrderScripts;

  constructor(
    redis: Redis,
    private readonly prefix: string,
  ) {
    const scripted = redis as Redis & Partial<OrderScripts>;
    if (!scripted.followUpLinkOrder)
      redis.defineCommand("followUpLinkOrder", { numberOfKeys: 1, lua: LINK_SCRIPT });
    if (!scripted.followUpRefund)
      redis.defineCommand("followUpRefund", { numberOfKeys: 1, lua: REFUND_SCRIPT });
    this.redis = redis as Redis & OrderScripts;
  }

  private key(orderId: string): string {
    return `${this.prefix}:fu:o:${eventKey(orderId)}`;
  }

  /**
   * Links a purchase event to its order and returns the order as it stands right after: a refund
   * recorded before this moment is in the answer, one recorded after it will find the link.
   */
  async linkPurchase(orderId: string, eventId: string, keepMs: number): Promise<OrderRecord> {
    return parseOrder(await this.redis.followUpLinkOrder(this.key(orderId), eventId, keepMs));
  }

  /** Records a refund (idempotent per refund event) and returns the order as it now stands. */
  async addRefund(
    orderId: string,
    refundEventId: string,
    amount: Money | undefined,
    keepMs: number,
  ): Promise<OrderRecord> {
    const flat = await this.redis.followUpRefund(
      this.key(orderId),
      refundEventId,
      amount ? `${amount.minor} ${amount.currency}` : "full",
      keepMs,
    );
    return parseOrder(flat);
  }

  async get(orderId: string): Promise<OrderRecord> {
    const all = await this.redis.hgetall(this.key(orderId));
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
