import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import type { PurchaseCompleted } from "../../src/domain/events.js";
import { type Plan, planFollowUps } from "../../src/domain/planner.js";
import { cooldownReach, type RecentSteps, underCooldown } from "../../src/domain/rules.js";
import {
  COOLDOWN_PLAN_ATTEMPTS,
  CooldownContention,
  planHeldToCooldowns,
} from "../../src/queue/cooldown-plans.js";
import { CustomerHistoryStore } from "../../src/store/customer-history.js";
import { instant, item, purchase, rulesFrom, yaml } from "../support/fixtures.js";
import { deleteKeysWithPrefix, uniquePrefix } from "../support/redis-namespace.js";

const DAY = 86_400_000;
let redis: Redis;
let prefix: string;
let history: CustomerHistoryStore;

beforeAll(() => {
  redis = new Redis(inject("redisUrl"), { maxRetriesPerRequest: 1 });
});
afterAll(async () => {
  await redis.quit();
});
beforeEach(() => {
  prefix = uniquePrefix("cooldown-plans");
  history = new CustomerHistoryStore(redis, prefix);
});
afterEach(async () => {
  await deleteKeysWithPrefix(redis, prefix);
});

const rules = rulesFrom(yaml`
  version: 1
  defaults:
    timezone: Europe/London
    currency: GBP
  sendWindows:
    email: { start: "00:00", end: "24:00", days: [mon, tue, wed, thu, fri, sat, sun] }
  cooldowns: { discount: P30D }
  rules:
    - id: offer
      steps:
        - { id: discount, kind: discount, channel: email, template: t, delay: P1D }
`);
const now = instant("2026-03-02T10:00:00Z");
const bought = (id: string) =>
  purchase({
    id,
    occurredAt: "2026-03-02T10:00:00Z",
    customer: { id: "cus-burst" },
    items: [item("garden-care", "40.00")],
  });

/** A purchase planned and remembered as intake does it, with `beforePlanning` between read and plan. */
function takeIn(event: PurchaseCompleted, beforePlanning: () => Promise<void>) {
  return planHeldToCooldowns(
    () => history.recentSteps(event.customer.id, event.id),
    async (recent: RecentSteps) => {
      await beforePlanning();
      return planFollowUps(event, rules, { previousPurchases: 0, recent }, now);
    },
    (plan: Plan, readAs) =>
      history.rememberSteps(
        event.customer.id,
        { eventId: event.id, purchasedAt: Date.parse(event.occurredAt) },
        plan.steps.map((step) => ({
          ...step,
          ...underCooldown(rules, step),
          dueAt: Date.parse(step.dueAt),
        })),
        400 * DAY,
        cooldownReach(rules, now),
        readAs,
      ),
  );
}

describe("purchases of one customer planned at once against a cooldown", () => {
  it("both read before either writes: the first to remember keeps its offer, the other is planned again and held", async () => {
    let planning = 0;
    let bothRead: () => void = () => {};
    const together = new Promise<void>((resolve) => {
      bothRead = resolve;
    });
    // Each first plan waits until the other purchase has read too.
    const waitForTheOther = () => {
      planning += 1;
      if (planning === 2) bothRead();
      return planning <= 2 ? together : Promise.resolve();
    };
    const plans = (
      await Promise.all(
        [bought("evt-a"), bought("evt-b")].map((event) => takeIn(event, waitForTheOther)),
      )
    ).map(({ planned }) => planned);
    // Three plans: one each, and the second to remember once more.
    expect(planning).toBe(3);
    const offered = plans.filter((plan) => plan.steps.length === 1);
    const held = plans.filter((plan) => plan.skipped.some((skip) => skip.code === "cooldown"));
    expect(offered).toHaveLength(1);
    expect(held).toHaveLength(1);
    expect(held[0]?.steps).toEqual([]);
    // Only the offer kept is remembered: a third purchase sees one.
    const recent = await history.recentSteps("cus-burst", "evt-c");
    expect(recent.byKind.get("discount")).toEqual([Date.parse(offered[0]?.steps[0]?.dueAt ?? "")]);
  });

  it("gives up after five plans that another purchase's write overtook each time", async () => {
    let others = 0;
    // Every time, another purchase of the customer remembers an offer between read and write.
    const overtaken = async () => {
      others += 1;
      await history.rememberSteps(
        "cus-burst",
        { eventId: `evt-other-${others}`, purchasedAt: now.toMillis() },
        [
          {
            stepId: "offer.discount",
            ruleId: "offer",
            kind: "discount",
            dueAt: now.toMillis() + (40 + 40 * others) * DAY,
            byRule: false,
            byKind: true,
          },
        ],
        400 * DAY,
        cooldownReach(rules, now),
      );
    };
    await expect(takeIn(bought("evt-late"), overtaken)).rejects.toThrow(CooldownContention);
    expect(others).toBe(COOLDOWN_PLAN_ATTEMPTS);
    expect((await history.recentSteps("cus-burst", "evt-new")).byKind.get("discount")).toHaveLength(
      COOLDOWN_PLAN_ATTEMPTS,
    );
  });
});
