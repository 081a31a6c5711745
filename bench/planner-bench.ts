import { DateTime } from "luxon";
import { loadRules } from "../src/config/load-rules.js";
import { type PurchaseCompleted, parseEvent } from "../src/domain/events.js";
import { planFollowUps } from "../src/domain/planner.js";

const CATEGORIES = [
  "newspapers",
  "kitchenware",
  "televisions",
  "laptops",
  "furniture",
  "salon",
  "phones",
  "toys",
];
const ZONES = [
  "Europe/London",
  "Europe/Berlin",
  "America/New_York",
  "Asia/Kathmandu",
  "Pacific/Kiritimati",
  "Australia/Sydney",
];

function syntheticPurchases(count: number): PurchaseCompleted[] {
  const start = DateTime.fromISO("2026-01-01T00:00:00Z");
  const events: PurchaseCompleted[] = [];
  for (let i = 0; i < count; i++) {
    const category = CATEGORIES[i % CATEGORIES.length] ?? "toys";
    const price = ((i * 7919) % 150000) / 100 + 1;
    const parsed = parseEvent({
      type: "purchase.completed",
      id: `bench-${i}`,
      occurredAt: start.plus({ minutes: i * 17 }).toISO(),
      orderId: `ord-${i}`,
      customer: {
        id: `cus-${i % 5000}`,
        email: `c${i}@example.com`,
        phone: "+447911123456",
        timezone: ZONES[i % ZONES.length],
        consent: { email: i % 3 !== 0, sms: true },
      },
      items: [{ sku: `S${i}`, name: category, category, quantity: 1, unitPrice: price.toFixed(2) }],
      total: { amount: price.toFixed(2), currency: "GBP" },
    });
    if (!parsed.ok || parsed.event.type !== "purchase.completed")
      throw new Error("bench fixture invalid");
    events.push(parsed.event);
  }
  return events;
}

function timed(run: () => number): { seconds: number; work: number } {
  const started = process.hrtime.bigint();
  const work = run();
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, work };
}

/** Plans per second of the pure planner against the calendar math of one step per event. */
export async function plannerBench(EVENTS: number) {
  const rules = await loadRules("config");
  if (!rules.ok) throw new Error("config/rules.yaml is invalid");
  const events = syntheticPurchases(EVENTS);
  // Baseline: the irreducible calendar work of one step per event (zone, +3 months, to UTC).
  const baseline = timed(() => {
    let n = 0;
    for (const event of events) {
      const zone = event.customer.timezone ?? "UTC";
      n +=
        DateTime.fromISO(event.occurredAt, { zone }).plus({ months: 3 }).toUTC().toMillis() > 0
          ? 1
          : 0;
    }
    return n;
  });
  const planner = timed(() => {
    let steps = 0;
    for (const [i, event] of events.entries()) {
      const now = DateTime.fromISO(event.occurredAt);
      steps += planFollowUps(event, rules.rules, { previousPurchases: i % 5 }, now).steps.length;
    }
    return steps;
  });
  return {
    events: EVENTS,
    plansPerSecond: Math.round(EVENTS / planner.seconds),
    stepsPlanned: planner.work,
    baselineDateMathPerSecond: Math.round(EVENTS / baseline.seconds),
    ratioToBaseline: Number((baseline.seconds / planner.seconds).toFixed(3)),
  };
}
