import type { DateTime } from "luxon";
import { type PurchaseCompleted, parseEvent } from "../src/domain/events.js";
import { planFollowUps } from "../src/domain/planner.js";
import type { RuleSet } from "../src/domain/rules.js";
import { eventJobId } from "../src/queue/names.js";

/**
 * Synthetic purchases shaped like a shop's real ones: contact details, a store, one or two items.
 * The mix repeats every MIX_PERIOD events, so how many follow-ups a run schedules is known in
 * advance (planned once per position of the mix, not once per event).
 */

interface MixEntry {
  readonly items: readonly { category: string; name: string; unitPrice: string }[];
  readonly emailConsent: boolean;
}

const MIX: readonly MixEntry[] = [
  {
    items: [{ category: "televisions", name: "55in OLED TV", unitPrice: "899.00" }],
    emailConsent: true,
  },
  {
    items: [{ category: "kitchenware", name: "Cast iron pan", unitPrice: "64.50" }],
    emailConsent: true,
  },
  {
    items: [
      { category: "laptops", name: "14in laptop", unitPrice: "1249.00" },
      { category: "accessories", name: "Laptop sleeve", unitPrice: "24.99" },
    ],
    emailConsent: true,
  },
  {
    items: [{ category: "newspapers", name: "Daily paper", unitPrice: "2.50" }],
    emailConsent: false,
  },
  {
    items: [{ category: "furniture", name: "Three-seat sofa", unitPrice: "540.00" }],
    emailConsent: false,
  },
  { items: [{ category: "phones", name: "Smartphone", unitPrice: "329.00" }], emailConsent: false },
  { items: [{ category: "toys", name: "Wooden train", unitPrice: "19.99" }], emailConsent: true },
  { items: [{ category: "salon", name: "Haircut", unitPrice: "45.00" }], emailConsent: true },
  {
    items: [
      { category: "kitchenware", name: "Knife set", unitPrice: "89.00" },
      { category: "kitchenware", name: "Chopping board", unitPrice: "31.00" },
    ],
    emailConsent: true,
  },
  {
    items: [{ category: "cameras", name: "Mirrorless camera", unitPrice: "450.00" }],
    emailConsent: true,
  },
];
const ZONES = [
  "Europe/London",
  "Europe/Berlin",
  "America/New_York",
  "Australia/Sydney",
  "Asia/Kolkata",
];
/** Every planning-relevant attribute repeats with this period. */
export const MIX_PERIOD = MIX.length * ZONES.length;

/** A phone number that validates as a UK mobile, distinct for each n below a million. */
export function benchPhone(n: number): string {
  return `+447400${String(n % 1_000_000).padStart(6, "0")}`;
}

export interface PurchaseShape {
  /** Distinct per run, so events of different phases never collide. */
  readonly tag: string;
  readonly index: number;
  readonly occurredAt: DateTime;
  /** Customers buy more than once: index modulo this is the customer. */
  readonly customers: number;
}

/** A purchase.completed event as a publisher sends it (JSON-ready), position `index` of the mix. */
export function typicalPurchase(shape: PurchaseShape): Record<string, unknown> {
  const mix = MIX[shape.index % MIX.length] ?? MIX[0];
  if (!mix) throw new Error("empty mix");
  const customer = shape.index % shape.customers;
  const total = mix.items.reduce((sum, item) => sum + Math.round(Number(item.unitPrice) * 100), 0);
  return {
    type: "purchase.completed",
    id: `${shape.tag}-evt-${shape.index}`,
    occurredAt: shape.occurredAt.toUTC().toISO(),
    orderId: `${shape.tag}-ord-${shape.index}`,
    customer: {
      id: `${shape.tag}-cus-${customer}`,
      name: "Ana Novak",
      email: `customer${customer}@example.com`,
      phone: benchPhone(customer),
      timezone: ZONES[shape.index % ZONES.length],
      locale: "en-GB",
      consent: { email: mix.emailConsent, sms: true },
    },
    items: mix.items.map((item, i) => ({
      sku: `SKU-${shape.index % MIX.length}-${i}`,
      name: item.name,
      category: item.category,
      quantity: 1,
      unitPrice: item.unitPrice,
    })),
    total: { amount: (total / 100).toFixed(2), currency: "GBP" },
    store: { id: "store-1", name: "Corner Shop", timezone: "Europe/London" },
  };
}

/** A due-now purchase for the delivery benches: email (thank-you) or SMS (check-in) due at `dueAt`. */
export function dueAtPurchase(
  tag: string,
  index: number,
  channel: "email" | "sms",
  dueAt: DateTime,
): Record<string, unknown> {
  // thank-you rule: kitchenware >= 50 gets a thank-you email PT1H later; big-ticket goods get a
  // check-in SMS three calendar months later (their thank-you is long past due and skipped).
  const occurredAt =
    channel === "email" ? dueAt.minus({ hours: 1 }) : dueAt.setZone("UTC").minus({ months: 3 });
  return {
    type: "purchase.completed",
    id: `${tag}-evt-${index}`,
    occurredAt: occurredAt.toUTC().toISO(),
    orderId: `${tag}-ord-${index}`,
    customer: {
      id: `${tag}-cus-${index}`,
      name: "Ana Novak",
      email: `due${index}@example.com`,
      phone: benchPhone(index),
      timezone: "UTC",
      locale: "en-GB",
      consent: { email: true, sms: true },
    },
    items: [
      channel === "email"
        ? {
            sku: "SKU-PAN",
            name: "Cast iron pan",
            category: "kitchenware",
            quantity: 1,
            unitPrice: "64.50",
          }
        : {
            sku: "SKU-TV",
            name: "55in OLED TV",
            category: "televisions",
            quantity: 1,
            unitPrice: "899.00",
          },
    ],
    total: { amount: channel === "email" ? "64.50" : "899.00", currency: "GBP" },
    store: { id: "store-1", name: "Corner Shop", timezone: "Europe/London" },
  };
}

/** Step id each due-now purchase produces. */
export const DUE_STEP = { email: "thank-you.thank-you", sms: "big-ticket.check-in" } as const;

export function parsePurchase(input: Record<string, unknown>): PurchaseCompleted {
  const parsed = parseEvent(input);
  if (!parsed.ok || parsed.event.type !== "purchase.completed")
    throw new Error(`bench fixture invalid: ${JSON.stringify(parsed)}`);
  return parsed.event;
}

/**
 * Follow-ups per mix position, planned with the real planner (no earlier purchases: each
 * customer buys at most twice in a run, below any repeat-customer threshold of the shipped rules).
 */
export function stepsPerMixPosition(rules: RuleSet, now: DateTime, tag: string): number[] {
  const counts: number[] = [];
  for (let i = 0; i < MIX_PERIOD; i++) {
    const event = parsePurchase(
      typicalPurchase({ tag, index: i, occurredAt: now, customers: Number.MAX_SAFE_INTEGER }),
    );
    counts.push(planFollowUps(event, rules, { previousPurchases: 0 }, now).steps.length);
  }
  return counts;
}

/** How many events of the mix schedule at least `followUps` follow-ups, and exactly how many. */
export function eventsForFollowUps(
  perPosition: readonly number[],
  followUps: number,
): { events: number; followUps: number } {
  let events = 0;
  let scheduled = 0;
  while (scheduled < followUps) {
    scheduled += perPosition[events % perPosition.length] ?? 0;
    events++;
  }
  return { events, followUps: scheduled };
}

/** Follow-ups scheduled by the first `events` events of the mix. */
export function followUpsOf(perPosition: readonly number[], events: number): number {
  let total = 0;
  for (let i = 0; i < events; i++) total += perPosition[i % perPosition.length] ?? 0;
  return total;
}

/** Events per addBulk call: big enough to amortise round trips, small enough to keep memory flat. */
export const CHUNK = 1000;

/** The mix's events from `from` (inclusive) to `to` (exclusive), one chunk at a time. */
export function* purchaseChunks(
  tag: string,
  from: number,
  to: number,
  customers: number,
  now: DateTime,
): Generator<Record<string, unknown>[]> {
  for (let start = from; start < to; start += CHUNK) {
    const chunk: Record<string, unknown>[] = [];
    for (let i = start; i < Math.min(to, start + CHUNK); i++)
      chunk.push(typicalPurchase({ tag, index: i, occurredAt: now, customers }));
    yield chunk;
  }
}

/** Input-queue jobs for events, as a publisher adds them: name = type, id from the event id. */
export function eventJobs(events: readonly Record<string, unknown>[]) {
  return events.map((event) => ({
    name: "purchase.completed",
    data: event,
    opts: { jobId: eventJobId(String(event.id)) },
  }));
}
