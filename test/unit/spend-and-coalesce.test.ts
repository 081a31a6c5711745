import { describe, expect, it } from "vitest";
import { planFollowUps } from "../../src/domain/planner.js";
import {
  billedMinutes,
  budgetAllows,
  costOf,
  formatMicros,
  parseMicros,
  phoneCountry,
  spendMonthOf,
  unitPrice,
} from "../../src/domain/spend.js";
import { instant, purchase, rulesFrom, rulesProblems, yaml } from "../support/fixtures.js";

const RULES = yaml`
  version: 1
  defaults:
    timezone: Europe/London
    currency: GBP
  sendWindows:
    email: { start: "08:00", end: "21:00" }
  prices:
    sms: { GB: "0.04", US: "0.0079", other: "0.10" }
    voice: { GB: "0.014" }
  budget:
    sms: { monthly: "200.00" }
    voice: { monthly: "50", transactional: skip }
  rules:
    - id: thanks
      coalesce: PT2H
      steps:
        - kind: thank-you
          channel: email
          template: thank-you
          delay: PT1H
        - kind: check-in
          channel: sms
          template: check-in
          delay: P3M
`;

describe("prices and budgets in the rules", () => {
  const rules = rulesFrom(RULES);

  it("compiles prices per country in micros, with `other` for the rest, and the budgets", () => {
    expect(rules.spend.prices.sms?.byCountry).toEqual(
      new Map([
        ["GB", 40_000],
        ["US", 7_900],
      ]),
    );
    expect(rules.spend.prices.sms?.other).toBe(100_000);
    expect(rules.spend.prices.voice?.other).toBeUndefined();
    expect(rules.spend.budgets).toEqual({
      sms: { monthlyMicros: 200_000_000, transactional: "continue" },
      voice: { monthlyMicros: 50_000_000, transactional: "skip" },
    });
    expect(rules.spend.estimatedCallMinutes).toBe(1);
  });

  it("prices a number by its country, else `other`, else not at all", () => {
    expect(unitPrice(rules.spend, "sms", "+44 20 7946 0958")).toEqual({
      ok: true,
      micros: 40_000,
      country: "GB",
    });
    expect(unitPrice(rules.spend, "sms", "+1 212 555 0100")).toMatchObject({ micros: 7_900 });
    expect(unitPrice(rules.spend, "sms", "+49 30 901820")).toMatchObject({ micros: 100_000 });
    expect(unitPrice(rules.spend, "voice", "+49 30 901820")).toEqual({
      ok: false,
      reason: 'no voice price for DE and no "other" price',
    });
    expect(costOf(rules.spend, "sms", "+44 20 7946 0958", 3)).toEqual({
      units: 3,
      unit: "segment",
      micros: 120_000,
    });
    expect(phoneCountry("not a number")).toBeUndefined();
  });

  it("refuses unquoted prices, a budget without prices, and coalesce without a thank-you", () => {
    expect(rulesProblems(RULES.replace('GB: "0.04", US', "GB: 0.04, US")).join("\n")).toContain(
      'expected a quoted decimal amount such as "0.04" (YAML numbers are not exact)',
    );
    expect(rulesProblems(RULES.replace(/ *voice: \{ GB: "0\.014" \}\n/, "")).join("\n")).toContain(
      "a voice budget needs voice prices to count spend against it",
    );
    expect(rulesProblems(RULES.replace("kind: thank-you", "kind: custom")).join("\n")).toContain(
      "coalesce joins thank-yous, and rule thanks has no thank-you step",
    );
  });
});

describe("money in micros", () => {
  it.each([
    ["0.0079", 7_900],
    ["0.04", 40_000],
    ["200.00", 200_000_000],
    ["12", 12_000_000],
    ["0.000001", 1],
  ])("parses %s exactly", (text, micros) => {
    expect(parseMicros(text)).toBe(micros);
  });

  it("refuses what is not a plain decimal", () => {
    for (const text of ["1e3", "-1", "0.0000001", "", "abc"])
      expect(parseMicros(text)).toBeUndefined();
  });

  it("formats with the currency's minor digits, and more only when the amount has them", () => {
    expect(formatMicros(7_900, "GBP")).toBe("0.0079");
    expect(formatMicros(40_000, "GBP")).toBe("0.04");
    expect(formatMicros(200_000_000, "GBP")).toBe("200.00");
    expect(formatMicros(120_000, "EUR")).toBe("0.12");
    expect(formatMicros(5_000_000, "JPY")).toBe("5");
    expect(formatMicros(0, "GBP")).toBe("0.00");
  });

  it("bills calls per started minute", () => {
    expect([0, 1, 60, 61, 125].map(billedMinutes)).toEqual([0, 1, 1, 2, 3]);
  });
});

describe("budgets", () => {
  it("stops marketing at a reached budget, and transactional steps only when told to", () => {
    const keepGoing = { monthlyMicros: 100, transactional: "continue" as const };
    const stopAll = { monthlyMicros: 100, transactional: "skip" as const };
    expect(budgetAllows(keepGoing, "marketing", 99)).toBe(true);
    expect(budgetAllows(keepGoing, "marketing", 100)).toBe(false);
    expect(budgetAllows(keepGoing, "transactional", 500)).toBe(true);
    expect(budgetAllows(stopAll, "transactional", 100)).toBe(false);
    expect(budgetAllows(undefined, "marketing", 10 ** 12)).toBe(true);
  });

  it("counts months on the rules' calendar, not UTC's", () => {
    const newYearInBerlin = Date.parse("2026-12-31T23:30:00Z");
    expect(spendMonthOf(newYearInBerlin, "Europe/Berlin")).toBe("2027-01");
    expect(spendMonthOf(newYearInBerlin, "Europe/London")).toBe("2026-12");
  });
});

describe("a coalescing thank-you", () => {
  const rules = rulesFrom(RULES);

  it("waits for the end of the window when that is later than its delay, and says until when others join", () => {
    const event = purchase({ occurredAt: "2026-11-23T10:00:00Z" });
    const plan = planFollowUps(event, rules, { previousPurchases: 0 }, instant(event.occurredAt));
    const thanks = plan.steps.find((step) => step.kind === "thank-you");
    expect(thanks).toMatchObject({
      dueAt: "2026-11-23T12:00:00Z",
      coalesceUntil: "2026-11-23T12:00:00Z",
    });
    // Only the thank-you coalesces; the check-in keeps its own time.
    const checkIn = plan.steps.find((step) => step.kind === "check-in");
    expect(checkIn?.coalesceUntil).toBeUndefined();
    expect(checkIn?.dueAt).toBe("2027-02-23T10:00:00Z");
  });

  it("keeps its delay when that is the later, and its send window", () => {
    const longer = rulesFrom(RULES.replace("coalesce: PT2H", "coalesce: PT30M"));
    const late = purchase({ occurredAt: "2026-11-23T20:30:00Z" });
    const plan = planFollowUps(late, longer, { previousPurchases: 0 }, instant(late.occurredAt));
    expect(plan.steps.find((step) => step.kind === "thank-you")).toMatchObject({
      // 21:30 is outside 08:00–21:00: the next morning.
      dueAt: "2026-11-24T08:00:00Z",
      coalesceUntil: "2026-11-23T21:00:00Z",
    });
  });
});
