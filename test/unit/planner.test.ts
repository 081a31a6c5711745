import fc from "fast-check";
import { DateTime, Duration } from "luxon";
import { describe, expect, it } from "vitest";
import { planFollowUps } from "../../src/domain/planner.js";
import {
  type CustomerHistory,
  cooldownReach,
  cooldownSteps,
  hasCooldowns,
  type RuleSet,
} from "../../src/domain/rules.js";
import {
  instant,
  item,
  MON_TO_SAT,
  type OneStepOptions,
  oneStepRules,
  type PurchaseSpec,
  purchase,
  rulesFrom,
  yaml,
} from "../support/fixtures.js";

const NEW_CUSTOMER: CustomerHistory = { previousPurchases: 0 };

/** Plans one purchase against a one-step rule set; `now` defaults to the purchase instant. */
function planOne(options: OneStepOptions, spec: PurchaseSpec, now?: string) {
  const event = purchase(spec);
  return planFollowUps(
    event,
    oneStepRules(options),
    NEW_CUSTOMER,
    instant(now ?? event.occurredAt),
  );
}

/** [dueAt, localDueAt] of the single planned step, or the skip reason. */
function dueOf(options: OneStepOptions, spec: PurchaseSpec, now?: string) {
  const plan = planOne(options, spec, now);
  const step = plan.steps[0];
  if (step) return [step.dueAt, step.localDueAt];
  return plan.skipped.map((s) => s.reason);
}

describe("delays are calendar arithmetic in the customer's zone", () => {
  it.each([
    // [what, zone, purchase, delay, dueAt, localDueAt]
    [
      "31 Jan + P1M → last day of February",
      "Europe/London",
      "2027-01-31T10:00:00Z",
      "P1M",
      "2027-02-28T10:00:00Z",
      "2027-02-28T10:00:00+00:00",
    ],
    [
      "31 Jan + P1M in a leap year → 29 February",
      "Europe/London",
      "2028-01-31T10:00:00Z",
      "P1M",
      "2028-02-29T10:00:00Z",
      "2028-02-29T10:00:00+00:00",
    ],
    [
      "29 Feb + P1Y → 28 February",
      "Europe/London",
      "2028-02-29T10:00:00Z",
      "P1Y",
      "2029-02-28T10:00:00Z",
      "2029-02-28T10:00:00+00:00",
    ],
    [
      "29 Feb + P4Y → 29 February",
      "Europe/London",
      "2028-02-29T10:00:00Z",
      "P4Y",
      "2032-02-29T10:00:00Z",
      "2032-02-29T10:00:00+00:00",
    ],
    [
      "31 Mar + P1M → 30 April (and the UK is on summer time by then)",
      "Europe/London",
      "2027-03-31T10:00:00+01:00",
      "P1M",
      "2027-04-30T09:00:00Z",
      "2027-04-30T10:00:00+01:00",
    ],
    [
      "month end in the customer's zone, not in UTC: 31 Jan 23:30 in New York is 1 Feb UTC",
      "America/New_York",
      "2027-01-31T23:30:00-05:00",
      "P1M",
      "2027-03-01T04:30:00Z",
      "2027-02-28T23:30:00-05:00",
    ],
    [
      "P1D across US spring-forward is 23 hours: same wall-clock time",
      "America/New_York",
      "2026-03-07T12:00:00-05:00",
      "P1D",
      "2026-03-08T16:00:00Z",
      "2026-03-08T12:00:00-04:00",
    ],
    [
      "PT24H across US spring-forward is 24 hours: one hour later on the wall clock",
      "America/New_York",
      "2026-03-07T12:00:00-05:00",
      "PT24H",
      "2026-03-08T17:00:00Z",
      "2026-03-08T13:00:00-04:00",
    ],
    [
      "P1D across EU fall-back is 25 hours: same wall-clock time",
      "Europe/Berlin",
      "2026-10-24T12:00:00+02:00",
      "P1D",
      "2026-10-25T11:00:00Z",
      "2026-10-25T12:00:00+01:00",
    ],
    [
      "P3M from +05:45 keeps the local time",
      "Asia/Kathmandu",
      "2026-11-23T10:00:00+05:45",
      "P3M",
      "2027-02-23T04:15:00Z",
      "2027-02-23T10:00:00+05:45",
    ],
    [
      "P1M from +14:00: the local date rolls, not the UTC date",
      "Pacific/Kiritimati",
      "2027-01-31T05:00:00+14:00",
      "P1M",
      "2027-02-27T15:00:00Z",
      "2027-02-28T05:00:00+14:00",
    ],
  ])("%s", (_, timezone, occurredAt, delay, dueAt, localDueAt) => {
    expect(dueOf({ delay }, { occurredAt, customer: { timezone } })).toEqual([dueAt, localDueAt]);
  });
});

describe("due times around DST transitions", () => {
  it("a due time in the US fall-back overlap (01:30 happens twice) is the first 01:30", () => {
    expect(
      dueOf(
        { delay: "P1D" },
        { occurredAt: "2026-10-31T01:30:00-04:00", customer: { timezone: "America/New_York" } },
      ),
    ).toEqual(["2026-11-01T05:30:00Z", "2026-11-01T01:30:00-04:00"]);
  });

  it("a due time in the EU fall-back overlap (02:30 happens twice) is the first 02:30", () => {
    expect(
      dueOf(
        { delay: "P1D" },
        { occurredAt: "2026-10-24T02:30:00+02:00", customer: { timezone: "Europe/Berlin" } },
      ),
    ).toEqual(["2026-10-25T00:30:00Z", "2026-10-25T02:30:00+02:00"]);
  });

  it.each([
    [
      "P10M from New Year's Day (EST)",
      "America/New_York",
      "2026-01-01T01:30:00-05:00",
      "P10M",
      "2026-11-01T01:30:00-04:00",
    ],
    [
      "P356D from November (EST)",
      "America/New_York",
      "2025-11-10T01:30:00-05:00",
      "P356D",
      "2026-11-01T01:30:00-04:00",
    ],
    [
      "P9M from January (CET)",
      "Europe/Berlin",
      "2026-01-25T02:30:00+01:00",
      "P9M",
      "2026-10-25T02:30:00+02:00",
    ],
    [
      "P1DT10M: the 10 minutes are real time after the first 01:20",
      "America/New_York",
      "2026-10-31T01:20:00-04:00",
      "P1DT10M",
      "2026-11-01T01:30:00-04:00",
    ],
  ])(
    "a calendar delay into the overlap is the first occurrence whatever the purchase's offset: %s",
    (_, timezone, occurredAt, delay, localDueAt) => {
      const [, local] = dueOf({ delay }, { occurredAt, customer: { timezone } });
      expect(local).toBe(localDueAt);
    },
  );

  it("a due time inside the overlap's second hour stays there (purchase in EST + 20 minutes)", () => {
    expect(
      dueOf(
        { delay: "PT20M" },
        { occurredAt: "2026-11-01T01:10:00-05:00", customer: { timezone: "America/New_York" } },
      ),
    ).toEqual(["2026-11-01T06:30:00Z", "2026-11-01T01:30:00-05:00"]);
  });

  it("a due time that falls into the spring-forward gap moves past it, by the gap's length", () => {
    // 02:30 on 8 March 2026 does not exist in New York; like java.time and Temporal, 03:30.
    expect(
      dueOf(
        { delay: "P1D" },
        { occurredAt: "2026-03-07T02:30:00-05:00", customer: { timezone: "America/New_York" } },
      ),
    ).toEqual(["2026-03-08T07:30:00Z", "2026-03-08T03:30:00-04:00"]);
  });

  it("an SMS window opening inside the spring-forward gap sends when the gap ends (03:00 EDT)", () => {
    const options: OneStepOptions = {
      delay: "P1D",
      kind: "check-in",
      channel: "sms",
      window: { start: "02:30", end: "20:00" },
    };
    expect(
      dueOf(options, {
        occurredAt: "2026-03-07T01:00:00-05:00",
        customer: { timezone: "America/New_York" },
      }),
    ).toEqual(["2026-03-08T07:00:00Z", "2026-03-08T03:00:00-04:00"]);
  });

  it("an EU spring-forward day: a window opening at 02:30 in Berlin sends at 03:00 CEST", () => {
    const options: OneStepOptions = { delay: "PT1H", window: { start: "02:30", end: "20:00" } };
    expect(
      dueOf(options, {
        occurredAt: "2026-03-29T00:30:00+01:00",
        customer: { timezone: "Europe/Berlin" },
      }),
    ).toEqual(["2026-03-29T01:00:00Z", "2026-03-29T03:00:00+02:00"]);
  });
});

describe("grace periods and cooldowns near DST count like a delay", () => {
  // New York: 01:30 on 1 November 2026 happens twice (05:30Z in EDT, 06:30Z in EST). Ten
  // calendar months from 01:30 EST on New Year's Day is the first of them, as for a delay.
  const lenient: OneStepOptions = {
    delay: "PT0S",
    grace: "P10M",
    timezone: "America/New_York",
  };
  const newYork = {
    occurredAt: "2026-01-01T01:30:00-05:00",
    customer: { timezone: "America/New_York" },
  };

  it("a grace period ends at the first occurrence of a repeated local time", () => {
    // 01:15 EDT: inside the grace period, which ends at 01:30 EDT (not an hour later, in EST).
    const inside = planOne(lenient, newYork, "2026-11-01T05:15:00Z");
    expect(inside.steps.map((s) => [s.dueAt, s.graceEndsAt])).toEqual([
      ["2026-11-01T05:15:00Z", "2026-11-01T05:30:00Z"],
    ]);
    // The second 01:00 (EST) is after it.
    expect(planOne(lenient, newYork, "2026-11-01T06:00:00Z").skipped).toEqual([
      expect.objectContaining({ code: "past-due" }),
    ]);
  });

  it("in Berlin too: P9M from 02:30 CET on 25 January ends at the first 02:30 of 25 October", () => {
    const berlin = {
      occurredAt: "2026-01-25T02:30:00+01:00",
      customer: { timezone: "Europe/Berlin" },
    };
    const options = { ...lenient, grace: "P9M", timezone: "Europe/Berlin" };
    expect(planOne(options, berlin, "2026-10-25T00:15:00Z").steps[0]?.graceEndsAt).toBe(
      "2026-10-25T00:30:00Z",
    );
    // 02:00 CET, the second 02:00: past it.
    expect(planOne(options, berlin, "2026-10-25T01:00:00Z").skipped).toEqual([
      expect.objectContaining({ code: "past-due" }),
    ]);
  });

  const cooling = rulesFrom(yaml`
    version: 1
    defaults: { timezone: America/New_York, currency: GBP }
    sendWindows:
      email: { start: "00:00", end: "24:00" }
    rules:
      - id: loyal
        cooldown: P10M
        steps: [{ kind: custom, channel: email, template: test-template, delay: PT0S }]
  `);
  /** The codes of the plan of a purchase at `occurredAt`, the customer's other step due at `other`. */
  const cooled = (occurredAt: string, other: string) => {
    const history: CustomerHistory = {
      previousPurchases: 1,
      recent: { byRule: new Map([["loyal", [Date.parse(other)]]]), byKind: new Map() },
    };
    const event = purchase({ occurredAt, customer: { timezone: "America/New_York" } });
    const plan = planFollowUps(event, cooling, history, instant(occurredAt));
    return [...plan.steps.map(() => "planned"), ...plan.skipped.map((s) => s.code)];
  };

  it("a cooldown ends at the first occurrence of a repeated local time, counted either way", () => {
    // The other step at 01:30 EST on New Year's Day: its P10M ends at the first 01:30 of 1 November.
    expect(cooled("2026-11-01T01:15:00-04:00", "2026-01-01T06:30:00Z")).toEqual(["cooldown"]);
    expect(cooled("2026-11-01T01:15:00-05:00", "2026-01-01T06:30:00Z")).toEqual(["planned"]);
    // A purchase of New Year's Day taken in after the other step planned for the second 01:15.
    expect(cooled("2026-01-01T01:30:00-05:00", "2026-11-01T06:15:00Z")).toEqual(["planned"]);
    expect(cooled("2026-01-01T01:30:00-05:00", "2026-11-01T05:15:00Z")).toEqual(["cooldown"]);
  });
});

describe("cooldowns against every other purchase's step", () => {
  const twoOffers = rulesFrom(yaml`
    version: 1
    defaults: { timezone: Europe/London, currency: GBP }
    cooldowns: { custom: P30D }
    sendWindows:
      email: { start: "00:00", end: "24:00" }
    rules:
      - id: offer
        steps: [{ kind: custom, channel: email, template: test-template, delay: P1D }]
  `);
  const planWith = (...others: string[]) => {
    const history: CustomerHistory = {
      previousPurchases: others.length,
      recent: { byRule: new Map(), byKind: new Map([["custom", others.map(Date.parse)]]) },
    };
    const event = purchase({ occurredAt: "2026-03-01T10:00:00Z" });
    const plan = planFollowUps(event, twoOffers, history, instant(event.occurredAt));
    return [...plan.steps.map(() => "planned"), ...plan.skipped.map((s) => s.reason)];
  };

  it("is held by an earlier-due step although a later one is remembered beyond the cooldown", () => {
    // Due 2 March: 1 March's step is a day before it; 2 May's is two months after.
    expect(planWith("2026-05-02T10:00:00Z", "2026-03-01T10:00:00Z")).toEqual([
      "a custom of kind custom is planned for this customer on 2026-03-01, within the cooldown of P30D",
    ]);
    expect(planWith("2026-05-02T10:00:00Z", "2026-01-01T10:00:00Z")).toEqual(["planned"]);
  });

  it("are looked for by rule as well as by kind (hasCooldowns: intake then reads the recent steps)", () => {
    const byRuleOnly: RuleSet = {
      ...twoOffers,
      cooldowns: {},
      rules: twoOffers.rules.map((rule) => ({ ...rule, cooldown: Duration.fromISO("P2M") })),
    };
    expect(hasCooldowns(twoOffers)).toBe(true);
    expect(hasCooldowns(byRuleOnly)).toBe(true);
    expect(hasCooldowns({ ...twoOffers, cooldowns: {} })).toBe(false);
  });

  it("ends exactly a cooldown apart, either way (P30D in London's calendar, across BST)", () => {
    // Due 2 March 10:00 GMT: 31 January 10:00 GMT + P30D is that instant; the due time + P30D is
    // 1 April 10:00 BST (09:00 UTC).
    expect(planWith("2026-01-31T10:00:00Z")).toEqual(["planned"]);
    expect(planWith("2026-01-31T10:00:01Z")).toEqual([
      "a custom of kind custom is planned for this customer on 2026-01-31, within the cooldown of P30D",
    ]);
    expect(planWith("2026-04-01T09:00:00Z")).toEqual(["planned"]);
    expect(planWith("2026-04-01T08:59:59Z")).toEqual([
      "a custom of kind custom is planned for this customer on 2026-04-01, within the cooldown of P30D",
    ]);
  });

  it("remember each step with the cooldowns that hold it, by rule and by kind (cooldownSteps)", () => {
    const withRuleCooldown: RuleSet = {
      ...twoOffers,
      rules: twoOffers.rules.map((rule) => ({ ...rule, cooldown: Duration.fromISO("P2M") })),
    };
    const due = Date.parse("2026-03-02T10:00:00Z");
    // As a re-plan has them: the due time already in ms, other fields left behind.
    const steps = [
      { stepId: "offer.0", ruleId: "offer", kind: "custom" as const, dueAt: due, action: "keep" },
      { stepId: "x.0", ruleId: "gone", kind: "thank-you" as const, dueAt: due, action: "move" },
    ];
    const of = (step: (typeof steps)[number]) => ({ kind: step.kind, dueAt: step.dueAt });
    expect(cooldownSteps(twoOffers, steps, of)).toEqual([
      {
        stepId: "offer.0",
        ruleId: "offer",
        kind: "custom",
        dueAt: due,
        byRule: false,
        byKind: true,
      },
      {
        stepId: "x.0",
        ruleId: "gone",
        kind: "thank-you",
        dueAt: due,
        byRule: false,
        byKind: false,
      },
    ]);
    expect(cooldownSteps(withRuleCooldown, steps, of).map((s) => [s.byRule, s.byKind])).toEqual([
      [true, true],
      [false, false],
    ]);
    // As intake has them: the due time an ISO string.
    expect(
      cooldownSteps(
        { ...withRuleCooldown, cooldowns: {} },
        [
          {
            stepId: "offer.0",
            ruleId: "offer",
            kind: "custom" as const,
            dueAt: "2026-03-02T10:00:00Z",
          },
        ],
        (step) => ({ kind: step.kind, dueAt: Date.parse(step.dueAt) }),
      ),
    ).toEqual([
      {
        stepId: "offer.0",
        ruleId: "offer",
        kind: "custom",
        dueAt: due,
        byRule: true,
        byKind: false,
      },
    ]);
  });

  it("are remembered back the longest cooldown and a week from now (cooldownReach)", () => {
    const now = instant("2026-05-01T10:00:00Z");
    const reach = (rules: RuleSet) => new Date(cooldownReach(rules, now)).toISOString();
    expect(reach(twoOffers)).toBe("2026-03-25T10:00:00.000Z");
    const ruleCooldown = twoOffers.rules.map((rule) => ({
      ...rule,
      cooldown: Duration.fromISO("P2M"),
    }));
    expect(reach({ ...twoOffers, rules: ruleCooldown })).toBe("2026-02-22T10:00:00.000Z");
    expect(reach({ ...twoOffers, cooldowns: {} })).toBe("2026-05-01T10:00:00.000Z");
  });

  it("forgets no step that could still hold back one due from now, in any zone", () => {
    const zones = ["Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Karachi", "America/New_York"];
    const spans = ["P1M", "P2M", "P30D", "P1Y", "P7D"];
    fc.assert(
      fc.property(
        fc.integer({ min: Date.UTC(2026, 0, 1), max: Date.UTC(2029, 0, 1) }),
        fc.constantFrom(...zones),
        fc.constantFrom(...spans),
        (nowMs, zone, span) => {
          const rules: RuleSet = { ...twoOffers, cooldowns: { custom: Duration.fromISO(span) } };
          const now = DateTime.fromMillis(nowMs, { zone: "utc" });
          // The latest step it forgets, and one purchased now whose step is due at once.
          const forgotten = cooldownReach(rules, now) - 1;
          const history: CustomerHistory = {
            previousPurchases: 1,
            recent: { byRule: new Map(), byKind: new Map([["custom", [forgotten]]]) },
          };
          const event = purchase({
            occurredAt: now.minus({ days: 1 }).toISO() ?? "",
            customer: { timezone: zone },
          });
          const plan = planFollowUps(event, rules, history, now);
          expect(plan.skipped.map((s) => s.code)).not.toContain("cooldown");
        },
      ),
    );
  });
});

describe("send windows, quiet days and holidays in the planner", () => {
  const sms: OneStepOptions = {
    delay: "PT1H",
    kind: "check-in",
    channel: "sms",
    window: { start: "09:00", end: "20:00", days: MON_TO_SAT },
  };

  it.each([
    ["Saturday 19:30 + 1h → Saturday night → Monday 09:00", "2026-11-21T19:30:00Z"],
    ["Sunday 10:00 + 1h → Monday 09:00", "2026-11-22T10:00:00Z"],
  ])("%s", (_, occurredAt) => {
    expect(dueOf(sms, { occurredAt })).toEqual([
      "2026-11-23T09:00:00Z",
      "2026-11-23T09:00:00+00:00",
    ]);
  });

  it("a holiday Monday pushes the SMS to Tuesday 09:00", () => {
    expect(
      dueOf({ ...sms, holidays: ["2026-11-23"] }, { occurredAt: "2026-11-22T10:00:00Z" }),
    ).toEqual(["2026-11-24T09:00:00Z", "2026-11-24T09:00:00+00:00"]);
  });

  it("a step's own send window overrides the channel's", () => {
    const rules = rulesFrom(yaml`
      version: 1
      defaults: { timezone: Europe/London, currency: GBP }
      rules:
        - id: evening
          steps:
            - kind: custom
              channel: email
              template: evening-note
              delay: PT1H
              sendWindow: { start: "18:00", end: "19:00" }
    `);
    const plan = planFollowUps(
      purchase({ occurredAt: "2026-11-23T10:00:00Z" }),
      rules,
      NEW_CUSTOMER,
      instant("2026-11-23T10:00:00Z"),
    );
    expect(plan.steps.map((s) => [s.stepId, s.localDueAt])).toEqual([
      ["evening.custom", "2026-11-23T18:00:00+00:00"],
    ]);
  });

  it("a step's own window that names only hours keeps its channel's days and holidays", () => {
    const rules = rulesFrom(yaml`
      version: 1
      defaults: { timezone: Europe/London, currency: GBP }
      holidays: [2026-11-23]
      rules:
        - id: later
          steps:
            - kind: check-in
              channel: sms
              template: check-in
              delay: PT1H
              sendWindow: { start: "10:00", end: "18:00" }
    `);
    // Bought Saturday 17:30: not Sunday (SMS is Monday to Saturday), not the holiday Monday.
    const plan = planFollowUps(
      purchase({ occurredAt: "2026-11-21T17:30:00Z" }),
      rules,
      NEW_CUSTOMER,
      instant("2026-11-21T17:30:00Z"),
    );
    expect(plan.steps.map((s) => [s.stepId, s.localDueAt])).toEqual([
      ["later.check-in", "2026-11-24T10:00:00+00:00"],
    ]);
  });
});

describe("time zone: customer, else store, else the configured default", () => {
  const options: OneStepOptions = {
    delay: "PT1H",
    window: { start: "08:00", end: "21:00" },
    timezone: "Europe/London",
  };
  // 06:30 UTC: 07:30 in Berlin, 06:30 in London, 01:30 in New York.
  it.each([
    [
      "customer zone wins over the store's",
      { timezone: "America/New_York" },
      { id: "s1", timezone: "Europe/Berlin" },
      "America/New_York",
      "customer",
      ["2026-11-23T13:00:00Z", "2026-11-23T08:00:00-05:00"],
    ],
    [
      "no customer zone: the store's",
      { timezone: undefined },
      { id: "s1", timezone: "Europe/Berlin" },
      "Europe/Berlin",
      "store",
      ["2026-11-23T07:30:00Z", "2026-11-23T08:30:00+01:00"],
    ],
    [
      "neither: the rules' default",
      { timezone: undefined },
      { id: "s1" },
      "Europe/London",
      "default",
      ["2026-11-23T08:00:00Z", "2026-11-23T08:00:00+00:00"],
    ],
  ])("%s", (_, customer, store, zone, source, due) => {
    const plan = planOne(options, { occurredAt: "2026-11-23T06:30:00Z", customer, store });
    expect([plan.timezone, plan.timezoneSource]).toEqual([zone, source]);
    expect(plan.steps.map((s) => [s.dueAt, s.localDueAt])).toEqual([due]);
  });
});

describe("lateness: grace periods and never before the purchase", () => {
  const options: OneStepOptions = {
    delay: "PT1H",
    window: { start: "08:00", end: "21:00" },
    grace: "P2D",
  };

  it("past due within the grace period → sent at the next window opening after now", () => {
    // Due Friday 11:00; now is Saturday 06:00 (window shut) → Saturday 08:00.
    expect(dueOf(options, { occurredAt: "2026-11-20T10:00:00Z" }, "2026-11-21T06:00:00Z")).toEqual([
      "2026-11-21T08:00:00Z",
      "2026-11-21T08:00:00+00:00",
    ]);
  });

  it("a step planned late remembers when its grace period ends; one on time does not", () => {
    // Due Friday 11:00 with P2D of grace; planned Saturday 06:00, it goes Saturday 08:00, but its
    // grace still ends Sunday 11:00, two days after the due time it missed (not after Saturday 08:00).
    const late = planOne(options, { occurredAt: "2026-11-20T10:00:00Z" }, "2026-11-21T06:00:00Z");
    expect(late.steps.map((s) => [s.dueAt, s.graceEndsAt])).toEqual([
      ["2026-11-21T08:00:00Z", "2026-11-22T11:00:00Z"],
    ]);
    const onTime = planOne(options, { occurredAt: "2026-11-20T10:00:00Z" }, "2026-11-20T10:00:00Z");
    expect(onTime.steps.map((s) => [s.dueAt, s.graceEndsAt])).toEqual([
      ["2026-11-20T11:00:00Z", undefined],
    ]);
  });

  it("a step due exactly now is on time: it carries no grace period end", () => {
    const exactly = planOne(
      options,
      { occurredAt: "2026-11-20T10:00:00Z" },
      "2026-11-20T11:00:00Z",
    );
    expect(exactly.steps.map((s) => [s.dueAt, s.graceEndsAt])).toEqual([
      ["2026-11-20T11:00:00Z", undefined],
    ]);
  });

  it("past due within the grace period, window open now → sent now", () => {
    expect(dueOf(options, { occurredAt: "2026-11-20T10:00:00Z" }, "2026-11-21T12:34:00Z")).toEqual([
      "2026-11-21T12:34:00Z",
      "2026-11-21T12:34:00+00:00",
    ]);
  });

  it("exactly at the end of the grace period → still sent", () => {
    expect(dueOf(options, { occurredAt: "2026-11-20T10:00:00Z" }, "2026-11-22T11:00:00Z")).toEqual([
      "2026-11-22T11:00:00Z",
      "2026-11-22T11:00:00+00:00",
    ]);
  });

  it("past due beyond the grace period → skipped with a 'past due' reason", () => {
    const plan = planOne(options, { occurredAt: "2026-11-20T10:00:00Z" }, "2026-11-22T11:00:01Z");
    expect(plan.steps).toEqual([]);
    expect(plan.skipped).toEqual([
      {
        ruleId: "only",
        stepId: "only.step",
        kind: "thank-you",
        code: "past-due",
        reason:
          "past due: was due 2026-11-20T11:00:00+00:00, more than P2D (the thank-you grace period) ago",
      },
    ]);
  });

  it("late, within the grace period, but the next window opens after it ends → skipped", () => {
    // Due Friday 11:00, grace until Sunday 11:00; now is Sunday 10:00, the window opens at 08:00
    // on weekdays only: Monday 08:00 would be a day past the grace period.
    const weekdays: OneStepOptions = {
      ...options,
      window: { start: "08:00", end: "21:00", days: ["mon", "tue", "wed", "thu", "fri"] },
    };
    const plan = planOne(weekdays, { occurredAt: "2026-11-20T10:00:00Z" }, "2026-11-22T10:00:00Z");
    expect(plan.steps).toEqual([]);
    expect(plan.skipped).toEqual([
      expect.objectContaining({
        code: "past-due",
        reason:
          "past due: was due 2026-11-20T11:00:00+00:00, and its thank-you grace period (P2D) ends before the next send window opens",
      }),
    ]);
    // Planned on Friday evening instead, it goes at Friday's next opening… none: Monday; skipped too.
    expect(
      planOne(weekdays, { occurredAt: "2026-11-20T10:00:00Z" }, "2026-11-20T21:30:00Z").skipped,
    ).toEqual([expect.objectContaining({ code: "past-due" })]);
  });

  it("a purchase reported before it happened (now earlier) is planned from the purchase", () => {
    expect(dueOf(options, { occurredAt: "2026-11-23T10:00:00Z" }, "2026-11-20T00:00:00Z")).toEqual([
      "2026-11-23T11:00:00Z",
      "2026-11-23T11:00:00+00:00",
    ]);
  });

  it("a zero delay inside the window is due at the purchase itself, not before", () => {
    expect(dueOf({ ...options, delay: "PT0S" }, { occurredAt: "2026-11-23T10:00:00Z" })).toEqual([
      "2026-11-23T10:00:00Z",
      "2026-11-23T10:00:00+00:00",
    ]);
  });
});

describe("how matching rules combine", () => {
  const rules = rulesFrom(yaml`
    version: 1
    defaults: { timezone: Europe/London, currency: EUR }
    groups:
      garden: [plants, tools]
    rules:
      - id: low-first-in-file
        priority: 1
        steps:
          - { kind: thank-you, channel: email, template: plain-thanks, delay: PT3H }
      - id: garden
        priority: 5
        when: { anyItem: { categories: [garden], minPrice: "0.30" } }
        steps:
          - { kind: thank-you, channel: email, template: garden-thanks, delay: PT2H }
          - { id: tips, kind: custom, channel: sms, template: garden-tips, delay: P7D }
      - id: big-store
        priority: 5
        when: { stores: [store-9] }
        final: true
        steps:
          - { kind: check-in, channel: email, template: store-note, delay: PT1H }
      - id: newcomers
        when: { customer: { maxPreviousPurchases: 0 }, total: { max: "10.00" } }
        steps:
          - { kind: discount, channel: email, template: welcome, delay: P1D }
  `);
  const plan = (spec: PurchaseSpec, history: CustomerHistory = NEW_CUSTOMER) =>
    planFollowUps(
      purchase({ currency: "EUR", ...spec }),
      rules,
      history,
      instant("2026-11-23T10:00:00Z"),
    );

  it("higher priority first, ties in file order; one step per kind; steps sorted by due time", () => {
    const result = plan({ occurredAt: "2026-11-23T10:00:00Z", items: [item("plants", "0.30")] });
    expect(result.steps.map((s) => [s.stepId, s.template, s.dueAt])).toEqual([
      ["garden.thank-you", "garden-thanks", "2026-11-23T12:00:00Z"],
      ["newcomers.discount", "welcome", "2026-11-24T10:00:00Z"],
      ["garden.tips", "garden-tips", "2026-11-30T10:00:00Z"],
    ]);
    expect(result.skipped).toEqual([
      {
        ruleId: "big-store",
        stepId: "big-store.check-in",
        kind: "check-in",
        code: "condition-not-met",
        reason: "store (none) is not one of store-9",
      },
      {
        ruleId: "low-first-in-file",
        stepId: "low-first-in-file.thank-you",
        kind: "thank-you",
        code: "superseded",
        reason: "superseded by garden.thank-you: one thank-you per purchase",
      },
    ]);
  });

  it("unit prices compare exactly: 0.29 misses a 0.30 minimum, and the reason says so", () => {
    const result = plan({ items: [item("plants", "0.29")] });
    expect(result.skipped).toContainEqual({
      ruleId: "garden",
      stepId: "garden.thank-you",
      kind: "thank-you",
      code: "condition-not-met",
      reason: "no item in garden has a unit price of at least 0.30 EUR",
    });
  });

  it("a final rule that matches stops the rules below it, but not the ones above", () => {
    const result = plan({ items: [item("plants", "1.00")], store: { id: "store-9" } });
    expect(result.steps.map((s) => s.stepId)).toEqual([
      "big-store.check-in",
      "garden.thank-you",
      "garden.tips",
    ]);
    expect(result.skipped.map((s) => [s.stepId, s.code, s.reason])).toEqual([
      [
        "low-first-in-file.thank-you",
        "stopped-by-final-rule",
        "rule big-store matched first and is final",
      ],
      ["newcomers.discount", "stopped-by-final-rule", "rule big-store matched first and is final"],
    ]);
  });

  it("a step that cannot be planned is skipped with its reason", () => {
    const result = plan({ items: [item("plants", "1.00")], customer: { phone: undefined } });
    expect(result.skipped).toContainEqual({
      ruleId: "garden",
      stepId: "garden.tips",
      kind: "custom",
      code: "no-contact",
      reason: "no phone number for SMS",
    });
    const noEmail = plan({ items: [item("plants", "1.00")], customer: { email: undefined } });
    expect(noEmail.steps.map((s) => s.stepId)).toEqual(["garden.tips"]);
    expect(noEmail.skipped.filter((s) => s.kind === "thank-you")).toEqual([
      {
        ruleId: "garden",
        stepId: "garden.thank-you",
        kind: "thank-you",
        code: "no-contact",
        reason: "no email address for email",
      },
      {
        ruleId: "low-first-in-file",
        stepId: "low-first-in-file.thank-you",
        kind: "thank-you",
        code: "no-contact",
        reason: "no email address for email",
      },
    ]);
  });

  it("a step that cannot be planned does not claim its kind: a lower rule's step of that kind is used", () => {
    const fallback = rulesFrom(yaml`
      version: 1
      defaults: { timezone: Europe/London, currency: GBP }
      rules:
        - id: by-sms
          priority: 2
          steps: [{ kind: thank-you, channel: sms, template: thanks-sms, delay: PT1H }]
        - id: by-email
          priority: 1
          steps: [{ kind: thank-you, channel: email, template: thanks-email, delay: PT1H }]
    `);
    const result = planFollowUps(
      purchase({ customer: { phone: undefined } }),
      fallback,
      NEW_CUSTOMER,
      instant("2026-11-23T10:00:00Z"),
    );
    expect(result.steps.map((s) => [s.stepId, s.channel, s.dueAt])).toEqual([
      ["by-email.thank-you", "email", "2026-11-23T11:00:00Z"],
    ]);
    expect(result.skipped).toEqual([
      {
        ruleId: "by-sms",
        stepId: "by-sms.thank-you",
        kind: "thank-you",
        code: "no-contact",
        reason: "no phone number for SMS",
      },
    ]);
  });

  it("history and total bounds: a returning customer or a total above 10.00 gets no welcome", () => {
    const returning = plan({ items: [item("plants", "1.00")] }, { previousPurchases: 1 });
    expect(returning.skipped).toContainEqual({
      ruleId: "newcomers",
      stepId: "newcomers.discount",
      kind: "discount",
      code: "condition-not-met",
      reason: "customer has 1 earlier purchase, allows at most 0",
    });
    const big = plan({ items: [item("plants", "10.01")] });
    expect(big.skipped).toContainEqual({
      ruleId: "newcomers",
      stepId: "newcomers.discount",
      kind: "discount",
      code: "condition-not-met",
      reason: "above threshold: order total 10.01 EUR is above 10.00 EUR",
    });
  });

  it("the plan names the event, order, customer and the rules version", () => {
    const result = plan({ id: "evt-77", orderId: "ord-77", customer: { id: "cus-77" } });
    expect(result).toMatchObject({
      eventId: "evt-77",
      orderId: "ord-77",
      customerId: "cus-77",
      rulesVersion: rules.version,
    });
    expect(rules.version).toMatch(/^[0-9a-f]{12}$/);
  });
});

describe("each condition, at its bounds", () => {
  // One rule with the row's `when` (EUR by default), a purchase on 23 November 2026: whether its
  // step is planned, or the reason the condition gives.
  const outcome = (when: string, spec: PurchaseSpec, previousPurchases = 0) => {
    const rules = rulesFrom(yaml`
      version: 1
      defaults: { timezone: Europe/London, currency: EUR }
      rules:
        - id: only
          when: ${when}
          steps:
            - { kind: thank-you, channel: email, template: thanks, delay: PT1H }
    `);
    const plan = planFollowUps(
      purchase({ currency: "EUR", ...spec }),
      rules,
      { previousPurchases },
      instant("2026-11-23T10:00:00Z"),
    );
    if (plan.steps.length > 0) return "planned";
    return plan.skipped
      .filter((s) => s.ruleId === "only")
      .map((s) => s.reason)
      .join(" | ");
  };
  const plants = (price: string) => ({ items: [item("plants", price)] });

  it.each([
    [
      "a unit price exactly at maxPrice",
      '{ anyItem: { maxPrice: "20.00" } }',
      plants("20.00"),
      0,
      "planned",
    ],
    [
      "a unit price a cent above maxPrice",
      '{ anyItem: { maxPrice: "20.00" } }',
      plants("20.01"),
      0,
      "no item in any category has a unit price of at most 20.00 EUR",
    ],
    [
      "a unit price in a currency the rules cannot compare",
      '{ anyItem: { minPrice: "0.30" } }',
      { currency: "JPY", items: [item("plants", "500")] },
      0,
      "no item in any category has a unit price of at least 0.30 EUR",
    ],
    ["a total exactly at max", '{ total: { max: "10.00" } }', plants("10.00"), 0, "planned"],
    [
      "a total a cent above max",
      '{ total: { max: "10.00" } }',
      plants("10.01"),
      0,
      "above threshold: order total 10.01 EUR is above 10.00 EUR",
    ],
    [
      "an item outside noItem's categories",
      "{ noItem: { categories: [plants, tools] } }",
      { items: [item("books", "5.00")] },
      0,
      "planned",
    ],
    [
      "an item in one of noItem's categories",
      "{ noItem: { categories: [plants, tools] } }",
      { items: [item("books", "5.00"), item("tools", "5.00")] },
      0,
      "item SKU-TOOLS (tools) is in plants, tools",
    ],
    [
      "a purchase in one of the stores",
      "{ stores: [store-9, store-3] }",
      { store: { id: "store-3" } },
      0,
      "planned",
    ],
    [
      "a purchase in another store",
      "{ stores: [store-9, store-3] }",
      { store: { id: "store-1" } },
      0,
      "store store-1 is not one of store-9, store-3",
    ],
    ["exactly maxPreviousPurchases", "{ customer: { maxPreviousPurchases: 2 } }", {}, 2, "planned"],
    [
      "one more than maxPreviousPurchases",
      "{ customer: { maxPreviousPurchases: 2 } }",
      {},
      3,
      "customer has 3 earlier purchases, allows at most 2",
    ],
    ["exactly minPreviousPurchases", "{ customer: { minPreviousPurchases: 2 } }", {}, 2, "planned"],
    [
      "one fewer than minPreviousPurchases",
      "{ customer: { minPreviousPurchases: 2 } }",
      {},
      1,
      "customer has 1 earlier purchase, needs 2 or more",
    ],
  ] satisfies [string, string, PurchaseSpec, number, string][])(
    "%s",
    (_, when, spec, previousPurchases, expected) => {
      expect(outcome(when, spec, previousPurchases)).toBe(expected);
    },
  );
});

describe("consent", () => {
  const strict = rulesFrom(yaml`
    version: 1
    defaults: { timezone: Europe/London, currency: GBP, transactionalNeedsConsent: true }
    rules:
      - id: all
        steps:
          - { kind: thank-you, channel: email, template: thanks, delay: PT1H }
          - { kind: check-in, channel: voice, template: call, delay: P7D }
          - { kind: custom, channel: sms, template: promo, delay: P1D, purpose: marketing }
  `);
  const reasons = (customer: Record<string, unknown>) =>
    planFollowUps(
      purchase({ customer }),
      strict,
      NEW_CUSTOMER,
      instant("2026-11-23T10:00:00Z"),
    ).skipped.map((s) => [s.stepId, s.code, s.reason]);

  it("with transactionalNeedsConsent, a missing flag blocks transactional steps too", () => {
    expect(reasons({ consent: { sms: true } })).toEqual([
      ["all.thank-you", "no-consent", "no consent for transactional email messages"],
      ["all.check-in", "no-consent", "no consent for transactional voice call messages"],
    ]);
  });

  it("an explicit no wins over everything, and is reported as declined", () => {
    expect(reasons({ consent: { email: true, sms: false, voice: true } })).toEqual([
      ["all.custom", "no-consent", "customer declined SMS messages"],
    ]);
  });

  it.each([
    [
      "opted out of SMS offers only: the offer is skipped, not the rest",
      { marketingSuppressedChannels: new Set(["sms"] as const) },
      [["all.custom", "opted-out", "customer opted out of SMS offers"]],
    ],
    [
      "opted out of email and voice offers only: nothing transactional is skipped",
      { marketingSuppressedChannels: new Set(["email", "voice"] as const) },
      [],
    ],
    [
      "opted out of SMS and voice altogether",
      { suppressedChannels: new Set(["sms", "voice"] as const) },
      [
        ["all.check-in", "opted-out", "customer opted out of voice call messages"],
        ["all.custom", "opted-out", "customer opted out of SMS messages"],
      ],
    ],
  ])("%s", (_, options, expected) => {
    const plan = planFollowUps(
      purchase({ customer: { consent: { email: true, sms: true, voice: true } } }),
      strict,
      NEW_CUSTOMER,
      instant("2026-11-23T10:00:00Z"),
      options,
    );
    expect(plan.skipped.map((s) => [s.stepId, s.code, s.reason])).toEqual(expected);
  });

  it("a missing phone is reported before a missing consent", () => {
    expect(reasons({ phone: undefined, consent: { email: true } })).toEqual([
      ["all.check-in", "no-contact", "no phone number for voice call"],
      ["all.custom", "no-contact", "no phone number for SMS"],
    ]);
  });
});

describe("the plan's steps in due order", () => {
  it("orders a due time with milliseconds after the whole second before it", () => {
    // A window's opening is a whole second, written without a fraction (10:00:00Z); a delay keeps
    // the purchase's milliseconds (10:00:00.500Z). As text the later one sorted first: '.' < 'Z'.
    const rules = rulesFrom(
      [
        "version: 1",
        "defaults:",
        "  timezone: Europe/London",
        "  currency: GBP",
        "sendWindows:",
        '  email: { start: "00:00", end: "24:00", days: [mon, tue, wed, thu, fri, sat, sun] }',
        '  sms: { start: "10:00", end: "20:00", days: [mon, tue, wed, thu, fri, sat, sun] }',
        "rules:",
        "  - id: only",
        "    steps:",
        "      - { id: mail, kind: thank-you, channel: email, template: test-template, delay: PT1H }",
        "      - { id: text, kind: custom, channel: sms, template: test-template, delay: PT0S }",
        "",
      ].join("\n"),
    );
    // 09:00:00.500 in London (GMT in March before the change).
    const event = purchase({ occurredAt: "2027-03-01T09:00:00.500Z" });
    const plan = planFollowUps(event, rules, NEW_CUSTOMER, instant(event.occurredAt));
    expect(plan.steps.map((step) => [step.stepId, step.dueAt])).toEqual([
      ["only.text", "2027-03-01T10:00:00Z"],
      ["only.mail", "2027-03-01T10:00:00.500Z"],
    ]);
  });
});

describe("a zone this process's time zone data does not know", () => {
  // Valid where the purchase was taken in (a newer Node's ICU); re-planned on an older one.
  it("skips each step naming the zone, not as a window that never opens after `null`", () => {
    const known = purchase({});
    const event = {
      ...known,
      customer: { ...known.customer, timezone: "America/Not_In_This_ICU" },
    };
    const plan = planFollowUps(
      event,
      oneStepRules({ delay: "P3D" }),
      NEW_CUSTOMER,
      instant(event.occurredAt),
    );
    expect(plan.steps).toEqual([]);
    expect(plan.skipped).toEqual([
      expect.objectContaining({ stepId: "only.step", code: "no-send-window" }),
    ]);
    expect(plan.skipped[0]?.reason).toContain('time zone "America/Not_In_This_ICU"');
    expect(plan.skipped[0]?.reason).not.toContain("null");
  });
});
