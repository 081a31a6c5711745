import type { Channel } from "../domain/events.js";
import type { AuditTrail } from "../store/audit-trail.js";
import { LISTED_PURCHASES } from "../store/customer-history.js";
import type { FollowUpStore } from "../store/follow-up-store.js";
import type { OrderStore } from "../store/order-store.js";
import type { ShardStores, Shards } from "../store/shards.js";
import type { SuppressionList } from "../store/suppression-list.js";
import type { EventInShard } from "./locate-event.js";
import {
  buildTimeline,
  type CustomerTimeline,
  type PurchaseFacts,
  type Suppression,
} from "./timeline.js";

/** The stores a timeline is read from. */
export interface TimelineSources {
  /** Every shard's stores: a customer's purchases are read in their shard. */
  readonly shards: Shards<Pick<ShardStores, "store" | "history" | "replies">>;
  readonly orders: OrderStore;
  readonly suppressions: SuppressionList;
  readonly audit: AuditTrail;
  readonly defaultZone: string;
}

const CHANNELS: readonly Channel[] = ["email", "sms", "voice"];

/**
 * A customer's timeline from the stores: their purchases (the customer history's last 100), each
 * with its steps, refunds and what is kept of it; their opt-outs per channel; the operators'
 * actions on them. Undefined for a customer nothing is stored about. `onlyEvents` (an order's)
 * are read in the shards given instead.
 */
export async function readCustomerTimeline(
  sources: TimelineSources,
  customerId: string,
  onlyEvents?: readonly EventInShard[],
): Promise<CustomerTimeline | undefined> {
  const shard = sources.shards.shardOf(customerId);
  const listed = onlyEvents ? [] : await sources.shards.of(shard).history.purchasesOf(customerId);
  const known = onlyEvents
    ? onlyEvents.map((event) => ({ ...event, purchasedAt: undefined }))
    : listed.slice(0, LISTED_PURCHASES).map((p) => ({ ...p, shard }));
  // Every purchase the customer's history lists, also one that planned nothing or whose records
  // have expired: what is kept of the customer is what an operator is asked about. An order's
  // purchases, only while something of them is stored.
  const purchases = (
    await Promise.all(known.map((p) => readPurchase(sources, p, p.purchasedAt)))
  ).filter((p) => !onlyEvents || p.steps.size > 0 || p.purchase !== undefined);
  const member = await sources.suppressions.customerMember(customerId);
  const audit = await sources.audit.entries({ customer: member, limit: 200 });
  if (purchases.length === 0 && audit.length === 0 && !onlyEvents) return undefined;
  purchases.sort(
    (a, b) =>
      (b.purchase?.occurredAt ?? "").localeCompare(a.purchase?.occurredAt ?? "") ||
      (b.purchasedAt ?? 0) - (a.purchasedAt ?? 0),
  );
  const latest = purchases.find((p) => p.purchase)?.purchase?.customer;
  // Every channel's lists in one round trip, as intake asks them.
  const optOuts = await sources.suppressions.optOutsOf(
    CHANNELS.map((channel) => {
      const address = channel === "email" ? latest?.email : latest?.phone;
      return { channel, who: { customerId, ...(address && { address }) } };
    }),
  );
  const suppressions = Object.fromEntries(
    CHANNELS.map((channel) => [
      channel,
      optOuts.all.has(channel) ? "all" : optOuts.marketing.has(channel) ? "offers" : null,
    ]),
  ) as Record<Channel, Suppression>;
  return buildTimeline({
    customerId,
    purchases,
    suppressions,
    audit,
    defaultZone: sources.defaultZone,
    statedConsent: await sources.shards.of(shard).history.latestConsent(customerId),
    purchasesNotListed: await sources.shards.of(shard).history.keptPastListed(listed),
  });
}

/** The customer an event was for, while anything of its purchase is stored. */
export async function customerOfEvent(
  store: FollowUpStore,
  eventId: string,
): Promise<string | undefined> {
  return (await store.storedPurchase(eventId)).customerId;
}

async function readPurchase(
  sources: TimelineSources,
  { eventId, shard }: EventInShard,
  purchasedAt: number | undefined,
): Promise<PurchaseFacts> {
  const { store, replies: stepReplies } = sources.shards.of(shard);
  const [stored, { exists, steps }, summary, replies] = await Promise.all([
    store.storedPurchase(eventId),
    store.recordSteps(eventId),
    store.summary(eventId),
    stepReplies.ofEvent(eventId),
  ]);
  // Nothing stored, no step, but a record: intake's count of a purchase that planned nothing.
  const plannedNothing = stored.data === "gone" && steps.size === 0 && exists;
  const orderId = stored.kept?.orderId ?? summary.orderId;
  const order = orderId ? await sources.orders.get(orderId) : undefined;
  return {
    eventId,
    ...(purchasedAt !== undefined && { purchasedAt }),
    ...(stored.kept && { purchase: stored.kept }),
    data: plannedNothing ? "none" : stored.data,
    summary,
    steps,
    replies,
    refunds: {
      full: order?.fullyRefunded ?? false,
      partial: order?.refunds ?? [],
      returns: order?.returns ?? [],
    },
  };
}
