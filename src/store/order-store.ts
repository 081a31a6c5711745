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
  /** Refunded so far, in minor units of `currency`; undefined when nothing was refunded. */
  readonly refunded?: Money;
  /** A refund without an amount: the whole order. */
  readonly fullyRefunded: boolean;
}

/**
 * Records one refund once per refund event id (a redelivered refund changes nothing) and returns
 * the order afterwards. Amount fields are `r:<eventId>` = minor units, or "full".
 */
const REFUND_SCRIPT = `
if redis.call('HSETNX', KEYS[1], 'r:' .. ARGV[1], ARGV[2]) == 1 then
  if ARGV[3] ~= '' then redis.call('HSETNX', KEYS[1], 'currency', ARGV[3]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return redis.call('HGETALL', KEYS[1])
`;

interface OrderScripts {
  followUpRefund(
    key: string,
    refundId: string,
    amount: string,
    currency: string,
    keepMs: number,
  ): Promise<string[]>;
}

export class OrderStore {
  private readonly redis: Redis & OrderScripts;

  constructor(
    redis: Redis,
    private readonly prefix: string,
  ) {
    const scripted = redis as Redis & Partial<OrderScripts>;
    if (!scripted.followUpRefund)
      redis.defineCommand("followUpRefund", { numberOfKeys: 1, lua: REFUND_SCRIPT });
    this.redis = redis as Redis & OrderScripts;
  }

  private key(orderId: string): string {
    return `${this.prefix}:fu:o:${eventKey(orderId)}`;
  }

  /** Links a purchase event to its order, kept at least until `keepUntil` (epoch ms). */
  async addPurchase(orderId: string, eventId: string, keepUntil: number): Promise<void> {
    const key = this.key(orderId);
    await this.redis.hset(key, `e:${eventId}`, "1");
    await this.redis.call("PEXPIREAT", key, keepUntil, "GT");
    if ((await this.redis.pttl(key)) < 0) await this.redis.pexpireat(key, keepUntil);
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
      amount ? String(amount.minor) : "full",
      amount?.currency ?? "",
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
  let minor = 0;
  let anyAmount = false;
  let fullyRefunded = false;
  let currency = "";
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const field = flat[i] ?? "";
    const value = flat[i + 1] ?? "";
    if (field.startsWith("e:")) eventIds.push(field.slice(2));
    else if (field === "currency") currency = value;
    else if (field.startsWith("r:")) {
      if (value === "full") fullyRefunded = true;
      else {
        minor += Number(value);
        anyAmount = true;
      }
    }
  }
  return {
    eventIds,
    fullyRefunded,
    ...(anyAmount && { refunded: { minor, currency } }),
  };
}
