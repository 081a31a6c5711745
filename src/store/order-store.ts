import { fromFormerMinor, type Money, minorUnitChanged } from "../domain/money.js";
import type { ItemReturn, OrderRefunds } from "../domain/refund.js";
import type { CustomerFiling } from "./customer-index.js";
import { idHash, packedEntries, packedPlace, StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";
import { type OptOutQuery, optOutAnswer } from "./suppression-list.js";

/**
 * What is known of an order: the purchase events that created follow-ups for it and the refunds
 * against it. Refunds may arrive before their purchase (queues do not promise order), so a refund
 * of an unknown order is kept and applied when the purchase shows up.
 */
export interface OrderRecord extends OrderRefunds {
  /** The order's purchase events, each with the shard its records live in. */
  readonly events: readonly OrderEvent[];
  /** The same events' ids. */
  readonly eventIds: readonly string[];
  /** Each refund event recorded, as it took something back (what operators are shown). */
  readonly recorded: readonly RecordedRefund[];
  /** Purchases that arrived after a full refund, dropped with nothing planned (noteDropped). */
  readonly dropped: readonly { readonly eventId: string; readonly at: number }[];
}

/** One refund event of an order and what it took back. */
export interface RecordedRefund extends RefundRecord {
  readonly refundId: string;
}

/** A purchase event of an order, and the shard (FOLLOW_UP_SHARDS) where its records are. */
export interface OrderEvent {
  readonly eventId: string;
  readonly shard: number;
}

/** What one refund event took back: an amount, items, both, or (neither) the whole order. */
export interface RefundRecord {
  readonly amount?: Money;
  readonly items?: readonly { readonly sku: string; readonly quantity: number }[];
}

/**
 * What links a purchase to its order (OrderStore.linkPurchase): the order, the event, the shard
 * its records live in, how long to keep the link (ms), now (epoch ms), and its address filing.
 */
type PurchaseLink = [
  orderId: string,
  eventId: string,
  shard: number,
  keepMs: number,
  now: number,
  filing: CustomerFiling,
];

export class OrderStore {
  private readonly redis: RedisClient & StoreCommands;
  private readonly keys: StoreKeys;

  constructor(
    redis: RedisClient,
    prefix: string,
    private readonly options: { now?: () => number } = {},
  ) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(prefix);
  }

  /**
   * Links a purchase event to its order and files its customer in the address index (`filing`,
   * CustomerIndex.filingOf), in one script; returns the order as it stands right after: a refund
   * recorded before this moment is in the answer, one recorded after it will find the link.
   * Nothing is filed, and undefined returned, when the customer was erased after the purchase.
   */
  async linkPurchase(...link: PurchaseLink): Promise<OrderRecord | undefined> {
    return (await this.linkPurchaseWithOptOuts(...link, { lists: [], members: [], asked: [] }))
      ?.order;
  }

  /**
   * linkPurchase, and the answer to an opt-out question (SuppressionList.optOutQuery) asked in
   * the same script, once the link and the filing are written (both are global keys): what intake
   * asks of a purchase's customer id once the purchase is stored.
   */
  async linkPurchaseWithOptOuts(
    ...[orderId, eventId, shard, keepMs, now, filing, optOuts]: [
      ...PurchaseLink,
      optOuts: OptOutQuery,
    ]
  ): Promise<{ order: OrderRecord; optedOut: ReturnType<typeof optOutAnswer> } | undefined> {
    const { key, links, entry } = this.placeOf(orderId);
    const answer = await this.redis.fuLinkPurchase(
      3 + filing.buckets.length + optOuts.lists.length,
      key,
      links,
      filing.erasureKey,
      ...filing.buckets,
      ...optOuts.lists,
      eventId,
      keepMs,
      orderLink(shard),
      entry,
      now,
      filing.customerId,
      filing.keepMs,
      filing.purchasedAt,
      JSON.stringify(optOuts.members),
      ...filing.entries,
    );
    if (answer === -1) return undefined;
    const [flat, flags] = answer;
    return { order: parseOrder(flat), optedOut: optOutAnswer(optOuts, flags) };
  }

  /**
   * Keeps a purchase's link to its order at least until `until` (epoch ms): a re-plan that moves
   * a step later than the link lasts. A link that is gone (expired, erased) is not brought back;
   * whether the link lasts until then.
   */
  async keepLink(orderId: string, eventId: string, until: number): Promise<boolean> {
    const { links, entry } = this.placeOf(orderId);
    return (await this.redis.fuKeepOrderLink(links, `${entry}${eventId}`, until, this.now())) === 1;
  }

  /**
   * Records a refund (idempotent per refund event) and returns the order as it now stands. A
   * refund with neither amount nor items is the whole order.
   */
  async addRefund(
    orderId: string,
    refundEventId: string,
    refund: RefundRecord,
    keepMs: number,
  ): Promise<OrderRecord> {
    const { amount, items } = refund;
    // Amount-only and full refunds keep the form written before item refunds existed. An amount
    // in a currency whose minor unit changed (money.ts FORMER_MINOR_DIGITS) is `n`, in ISO 4217
    // minor units, never `m` or the plain form, which hold the former units; without items it has
    // no `i`, so that a version up to 6 December 2026 fails on it rather than misreads it.
    const changed = amount !== undefined && minorUnitChanged(amount.currency);
    const stored =
      items || changed
        ? JSON.stringify({
            ...(amount && { [changed ? "n" : "m"]: amount.minor, c: amount.currency }),
            ...(items && { i: items.map((item) => [item.sku, item.quantity]) }),
          })
        : amount
          ? `${amount.minor} ${amount.currency}`
          : "full";
    const { key, links, entry } = this.placeOf(orderId);
    const flat = await this.redis.fuRecordRefund(
      key,
      links,
      refundEventId,
      stored,
      keepMs,
      entry,
      this.now(),
    );
    return parseOrder(flat);
  }

  /**
   * Notes that a purchase arrived after its order was refunded in full and was dropped (nothing
   * planned, nothing kept), so the order does not look as if it still awaited it.
   */
  async noteDropped(orderId: string, eventId: string, at: number): Promise<void> {
    await this.redis.fuNoteDroppedPurchase(this.placeOf(orderId).key, eventId, at);
  }

  async get(orderId: string): Promise<OrderRecord> {
    return (await this.getWithOptOuts(orderId, { lists: [], members: [], asked: [] })).order;
  }

  /**
   * The order and the answer to an opt-out question (SuppressionList.optOutQuery) in one round
   * trip: what intake reads about every purchase before planning it (both are global keys).
   */
  async getWithOptOuts(
    orderId: string,
    optOuts: OptOutQuery,
  ): Promise<{ order: OrderRecord; optedOut: ReturnType<typeof optOutAnswer> }> {
    const { key, links, entry } = this.placeOf(orderId);
    const [flat, flags] = await this.redis.fuReadOrder(
      2 + optOuts.lists.length,
      key,
      links,
      ...optOuts.lists,
      entry,
      this.now(),
      JSON.stringify(optOuts.members),
    );
    return { order: parseOrder(flat), optedOut: optOutAnswer(optOuts, flags) };
  }

  /**
   * Removes an order's refunds and links (erasure); whether there was anything to remove. Its
   * bucket's other orders stay.
   */
  async forget(orderId: string): Promise<boolean> {
    return this.forgetByHash(idHash(orderId));
  }

  /** The same, by the idHash of the order id (as a customer's history notes it). */
  async forgetByHash(orderHash: string): Promise<boolean> {
    const { key, links, entry } = this.placeOfHash(orderHash);
    const fields = packedEntries(await this.redis.hgetall(links), entry).map(
      ([eventId]) => `${entry}${eventId}`,
    );
    const removed = fields.length > 0 ? await this.redis.hdel(links, ...fields) : 0;
    return (await this.redis.del(key)) + removed > 0;
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** The order's own key (refunds), its bucket of links, and its part of their names there. */
  private placeOf(orderId: string): { key: string; links: string; entry: string } {
    return this.placeOfHash(idHash(orderId));
  }

  private placeOfHash(orderHash: string): { key: string; links: string; entry: string } {
    const { bucket, entry } = packedPlace(orderHash);
    return { key: this.keys.orderOfHash(orderHash), links: this.keys.orderLinks(bucket), entry };
  }
}

/** How an order links a purchase event in a shard (linkShard reads it back). */
export function orderLink(shard: number): string {
  return `s${shard}`;
}

/**
 * The shard of an order's link: `s<shard>`, in a bucket followed by `:<epoch ms filed>`; anything
 * else (`1`, as linked before shards) is 0.
 */
export function linkShard(value: string): number {
  const match = /^s(\d{1,4})(?::\d+)?$/.exec(value);
  return match ? Number(match[1]) : 0;
}

/** A link's value with its shard changed (a reshard), keeping when it was filed. */
export function relinked(value: string, shard: number): string {
  const filed = /:\d+$/.exec(value)?.[0] ?? "";
  return `${orderLink(shard)}${filed}`;
}

function parseOrder(flat: readonly string[]): OrderRecord {
  // An event linked both in the order's own key (by a version of key layout 3) and in its bucket
  // (an intake retried after the upgrade) is one event; the bucket's link, read last, wins.
  const linked = new Map<string, number>();
  const refunds: Money[] = [];
  const returns: ItemReturn[] = [];
  const recorded: RecordedRefund[] = [];
  const dropped: { eventId: string; at: number }[] = [];
  let fullyRefunded = false;
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const field = flat[i] ?? "";
    const value = flat[i + 1] ?? "";
    if (field.startsWith("e:")) linked.set(field.slice(2), linkShard(value));
    else if (field.startsWith("d:")) dropped.push({ eventId: field.slice(2), at: Number(value) });
    else if (!field.startsWith("r:")) continue;
    else if (value === "full") {
      fullyRefunded = true;
      recorded.push({ refundId: field.slice(2) });
    } else if (value.startsWith("{")) {
      const stored = JSON.parse(value) as {
        m?: number;
        n?: number;
        c?: string;
        i?: [string, number][];
      };
      const minor = stored.n ?? stored.m;
      const priced = minor !== undefined && stored.c !== undefined;
      // `m` is in the minor units of the version that wrote it, `n` in ISO 4217's.
      const written = { minor: minor ?? 0, currency: stored.c ?? "" };
      const amount = stored.n === undefined ? fromFormerMinor(written) : written;
      if (priced) refunds.push(amount);
      for (const [sku, quantity] of stored.i ?? [])
        returns.push({ sku, quantity, priced, ...(priced && { currency: amount.currency }) });
      recorded.push({
        refundId: field.slice(2),
        ...(priced && { amount }),
        ...(stored.i && { items: stored.i.map(([sku, quantity]) => ({ sku, quantity })) }),
      });
    } else {
      const [minor = "0", currency = ""] = value.split(" ");
      const amount = fromFormerMinor({ minor: Number(minor), currency });
      refunds.push(amount);
      recorded.push({ refundId: field.slice(2), amount });
    }
  }
  const events: OrderEvent[] = [...linked].map(([eventId, shard]) => ({ eventId, shard }));
  return {
    events,
    eventIds: events.map((event) => event.eventId),
    refunds,
    returns,
    fullyRefunded,
    recorded,
    dropped,
  };
}
