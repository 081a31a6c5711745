import { beforeAll, describe, expect, it } from "vitest";
import type { StatedConsent } from "../../src/domain/consent-timeline.js";
import type { Channel } from "../../src/domain/events.js";
import { planFollowUps } from "../../src/domain/planner.js";
import type { RuleSet, SendWindow, StepSpec } from "../../src/domain/rules.js";
import { decideSend, type GuardSkipCode, type SendDecision } from "../../src/domain/send-guard.js";
import {
  instant,
  item,
  oneStepRules,
  type PurchaseSpec,
  purchase,
  sendWindow,
  shippedRules,
} from "../support/fixtures.js";

/**
 * The send-time guard against the shipped policy (config/rules.yaml), one row per decision.
 * `now` is Tuesday 2026-11-24 12:00 UTC (12:00 in London, GMT) unless a row says otherwise; the
 * step was due an hour before `now` unless a row says otherwise. The default customer is in
 * London, has an email address and a phone number, and consented to email and SMS.
 */

const NOW = "2026-11-24T12:00:00Z";
/** A purchase of the same customer's after the step's own (made 2026-11-23 10:00 UTC). */
const LATER_PURCHASE = "2026-11-24T09:00:00Z";
/** One before it. */
const EARLIER_PURCHASE = "2026-11-20T09:00:00Z";

let shipped: RuleSet;
beforeAll(async () => {
  shipped = await shippedRules();
});

type Variant = (rules: RuleSet) => RuleSet;

interface Case {
  /** The step's plan id, `<ruleId>.<stepId>`. */
  stepId: string;
  event?: PurchaseSpec;
  now?: string;
  /** When the step was planned for; an hour before `now` when absent. */
  dueAt?: string;
  suppressed?: Channel[];
  /** The consent the customer's latest purchase stated (CustomerHistoryStore.latestConsent). */
  latestConsent?: StatedConsent;
  /** Derives the rule set in force at send time from the shipped one. */
  rules?: Variant;
}

function decide(c: Case): { decision: SendDecision; rules: RuleSet } {
  const now = instant(c.now ?? NOW);
  const rules = c.rules ? c.rules(shipped) : shipped;
  const decision = decideSend({
    event: purchase(c.event),
    stepId: c.stepId,
    dueAt: c.dueAt ? instant(c.dueAt).toMillis() : now.minus({ hours: 1 }).toMillis(),
    rules,
    now,
    suppressedChannels: new Set(c.suppressed ?? []),
    ...(c.latestConsent && { latestConsent: c.latestConsent }),
  });
  return { decision, rules };
}

const withDefaults =
  (patch: Partial<RuleSet["defaults"]>): Variant =>
  (rules) => ({ ...rules, defaults: { ...rules.defaults, ...patch } });

const withChannelWindow =
  (channel: Channel, window: SendWindow): Variant =>
  (rules) => ({ ...rules, sendWindows: { ...rules.sendWindows, [channel]: window } });

const withStep =
  (stepId: string, patch: Partial<StepSpec>): Variant =>
  (rules) => ({
    ...rules,
    rules: rules.rules.map((rule) => ({
      ...rule,
      steps: rule.steps.map((step) =>
        `${rule.id}.${step.id}` === stepId ? { ...step, ...patch } : step,
      ),
    })),
  });

const withoutRule =
  (ruleId: string): Variant =>
  (rules) => ({ ...rules, rules: rules.rules.filter((rule) => rule.id !== ruleId) });

/** A window with no open day at all. */
const NEVER_OPEN: SendWindow = { ...sendWindow("08:00", "21:00"), days: new Set() };

function expectSkip(decision: SendDecision): Extract<SendDecision, { action: "skip" }> {
  if (decision.action !== "skip") {
    throw new Error(`expected a skip, got ${JSON.stringify(decision)}`);
  }
  return decision;
}

function expectDefer(decision: SendDecision): Extract<SendDecision, { action: "defer" }> {
  if (decision.action !== "defer") {
    throw new Error(`expected a defer, got ${JSON.stringify(decision)}`);
  }
  return decision;
}

function expectSend(decision: SendDecision): Extract<SendDecision, { action: "send" }> {
  if (decision.action !== "send") {
    throw new Error(`expected a send, got ${JSON.stringify(decision)}`);
  }
  return decision;
}

interface SkipRow extends Case {
  code: GuardSkipCode;
  /** Pieces the operator-facing reason must contain. */
  reasonHas: string[];
}

describe("decideSend skips", () => {
  const rows: [string, SkipRow][] = [
    [
      "a step of a rule that is not in the rules",
      { stepId: "gone.thank-you", code: "rule-removed", reasonHas: ["step gone.thank-you"] },
    ],
    [
      "a step whose rule was removed since planning",
      {
        stepId: "big-ticket.check-in",
        rules: withoutRule("big-ticket"),
        code: "rule-removed",
        reasonHas: ["step big-ticket.check-in", "no longer in the rules"],
      },
    ],
    [
      "a step id the rule (still present) does not have",
      {
        stepId: "accessories.check-in",
        code: "rule-removed",
        reasonHas: ["step accessories.check-in"],
      },
    ],
    [
      "an email step for a customer without an email address",
      {
        stepId: "big-ticket.thank-you",
        event: { customer: { email: undefined } },
        code: "no-contact",
        reasonHas: ["no email address"],
      },
    ],
    [
      "an sms step for a customer without a phone number",
      {
        stepId: "big-ticket.check-in",
        event: { customer: { phone: undefined } },
        code: "no-contact",
        reasonHas: ["no phone number"],
      },
    ],
    [
      "a voice step for a customer without a phone number",
      {
        stepId: "big-ticket.check-in",
        rules: withStep("big-ticket.check-in", { channel: "voice" }),
        event: { customer: { phone: undefined } },
        code: "no-contact",
        reasonHas: ["no phone number"],
      },
    ],
    [
      "an email step when email is suppressed",
      {
        stepId: "big-ticket.thank-you",
        suppressed: ["email"],
        code: "opted-out",
        reasonHas: ["opted out", "email"],
      },
    ],
    [
      "an sms step when sms is suppressed",
      {
        stepId: "big-ticket.check-in",
        suppressed: ["sms", "voice"],
        code: "opted-out",
        reasonHas: ["opted out", "sms"],
      },
    ],
    [
      "a transactional email step when email consent is false",
      {
        stepId: "big-ticket.thank-you",
        event: { customer: { consent: { email: false, sms: true } } },
        code: "no-consent",
        reasonHas: ["declined", "email"],
      },
    ],
    [
      "a transactional sms step when sms consent is false",
      {
        stepId: "big-ticket.check-in",
        event: { customer: { consent: { email: true, sms: false } } },
        code: "no-consent",
        reasonHas: ["declined", "sms"],
      },
    ],
    [
      "a step whose purchase gave email consent, withdrawn at a later purchase's checkout",
      {
        stepId: "accessories.discount",
        event: { customer: { consent: { email: true, sms: true } } },
        latestConsent: { email: { given: false, at: Date.parse(LATER_PURCHASE) } },
        code: "no-consent",
        reasonHas: ["declined", "email"],
      },
    ],
    [
      "a marketing email step without email consent",
      {
        stepId: "accessories.discount",
        event: { customer: { consent: { sms: true } } },
        code: "no-consent",
        reasonHas: ["no consent", "marketing", "email"],
      },
    ],
    [
      "a marketing email step when the customer gave no consent flags at all",
      {
        stepId: "loyal-customer.discount",
        event: { customer: { consent: undefined } },
        code: "no-consent",
        reasonHas: ["no consent", "marketing", "email"],
      },
    ],
    [
      "a transactional step without consent when transactionalNeedsConsent",
      {
        stepId: "big-ticket.thank-you",
        rules: withDefaults({ transactionalNeedsConsent: true }),
        event: { customer: { consent: { sms: true } } },
        code: "no-consent",
        reasonHas: ["no consent", "transactional", "email"],
      },
    ],
    [
      "a thank-you due 2 days and 1 ms ago (grace P2D)",
      {
        stepId: "big-ticket.thank-you",
        dueAt: "2026-11-22T11:59:59.999Z",
        code: "past-due",
        reasonHas: ["2026-11-22T11:59:59.999Z", "P2D", "thank-you grace period"],
      },
    ],
    [
      "a check-in due 14 days and 1 minute ago (grace P14D)",
      {
        stepId: "big-ticket.check-in",
        dueAt: "2026-11-10T11:59:00Z",
        code: "past-due",
        reasonHas: ["2026-11-10T11:59:00.000Z", "P14D", "check-in grace period"],
      },
    ],
    [
      "a discount due 7 days and 1 hour ago (grace P7D)",
      {
        stepId: "accessories.discount",
        dueAt: "2026-11-17T11:00:00Z",
        code: "past-due",
        reasonHas: ["2026-11-17T11:00:00.000Z", "P7D", "discount grace period"],
      },
    ],
    [
      "an email step when the email window has no open day",
      {
        stepId: "big-ticket.thank-you",
        rules: withChannelWindow("email", NEVER_OPEN),
        code: "no-send-window",
        reasonHas: ["no send window", "800 days", "2026-11-24T12:00:00.000Z"],
      },
    ],
    [
      "a step whose own window has no open day (it overrides the channel's open one)",
      {
        stepId: "big-ticket.check-in",
        rules: withStep("big-ticket.check-in", { sendWindow: NEVER_OPEN }),
        code: "no-send-window",
        reasonHas: ["no send window", "800 days"],
      },
    ],
    [
      // Taken in (and the rules loaded) where the zone was known: a worker on an older Node.
      "a step in a zone this process's time zone data does not know",
      {
        stepId: "big-ticket.thank-you",
        rules: withDefaults({ timezone: "America/Not_In_This_ICU" }),
        event: { customer: { timezone: undefined } },
        code: "no-send-window",
        reasonHas: ['time zone "America/Not_In_This_ICU"', "time zone data"],
      },
    ],
  ];

  it.each(rows)("%s", (_what, row) => {
    const skip = expectSkip(decide(row).decision);
    expect(skip.code).toBe(row.code);
    for (const piece of row.reasonHas) expect(skip.reason).toContain(piece);
  });
});

describe("decideSend counts a grace period as the planner does: in calendar days of the customer's zone", () => {
  // London: summer time begins 29 March 2026 and ends 25 October 2026. A thank-you (big-ticket,
  // delay PT1H) of a purchase at 09:00 UTC on the Saturday before is due at 10:00 UTC, and its
  // grace period P2D ends on Monday at the same local time: an hour sooner (spring) or later
  // (autumn) than 48 hours of real time.
  const both = (occurredAt: string, now: string) => {
    const event = purchase({ occurredAt, items: [item("televisions", "899.00")] });
    const plan = planFollowUps(event, shipped, { previousPurchases: 0 }, instant(now));
    const decision = decideSend({
      event,
      stepId: "big-ticket.thank-you",
      dueAt: instant(occurredAt).plus({ hours: 1 }).toMillis(),
      rules: shipped,
      now: instant(now),
      suppressedChannels: new Set(),
    });
    const planned = plan.steps.some((step) => step.stepId === "big-ticket.thank-you");
    return { planned, action: decision.action };
  };

  it("spring: due Saturday 10:00 GMT, Monday 10:30 BST (47½ hours on) is past its grace period", () => {
    expect(both("2026-03-28T09:00:00Z", "2026-03-30T09:30:00Z")).toEqual({
      planned: false,
      action: "skip",
    });
  });

  it("autumn: due Saturday 11:00 BST, Monday 10:30 GMT (48½ hours on) is still inside it", () => {
    expect(both("2026-10-24T09:00:00Z", "2026-10-26T10:30:00Z")).toEqual({
      planned: true,
      action: "send",
    });
  });
});

interface DeferRow extends Case {
  /** The next window opening, in the zone that decides it, with its offset. */
  until: string;
  zone: string;
}

describe("decideSend ends a grace period in a repeated local hour where a delay would land: at its first occurrence", () => {
  // Berlin: 02:30 on 25 October 2026 happens twice (00:30Z in CEST, 01:30Z in CET). A step due
  // 02:30 CET on 25 January with a grace period of P9M may go until the first of them.
  const rules = oneStepRules({ delay: "PT0S", grace: "P9M", timezone: "Europe/Berlin" });
  const at = (now: string) =>
    decideSend({
      event: purchase({ customer: { timezone: "Europe/Berlin" } }),
      stepId: "only.step",
      dueAt: Date.parse("2026-01-25T02:30:00+01:00"),
      rules,
      now: instant(now),
      suppressedChannels: new Set(),
    }).action;

  it("02:15 CEST is inside it, the second 02:00 (CET) past it", () => {
    expect(at("2026-10-25T00:15:00Z")).toBe("send");
    expect(at("2026-10-25T01:00:00Z")).toBe("skip");
  });
});

describe("decideSend counts the grace period of a step planned late from the due time it missed", () => {
  // Planned late: its due time is the opening it was planned for, its grace ended at graceEndsAt.
  const lateStep = (graceEndsAt: string) =>
    decideSend({
      event: purchase(),
      stepId: "big-ticket.thank-you",
      dueAt: instant("2026-11-23T12:00:00Z").toMillis(),
      graceEndsAt: instant(graceEndsAt).toMillis(),
      rules: shipped,
      now: instant(NOW),
      suppressedChannels: new Set(),
    });

  it("skips it once that grace period has ended, though dueAt + P2D has not", () => {
    const skip = expectSkip(lateStep("2026-11-24T11:59:59.999Z"));
    expect(skip.code).toBe("past-due");
    expect(skip.reason).toBe(
      "past due: planned late, and its thank-you grace period ended 2026-11-24T11:59:59.999Z",
    );
  });

  it("sends it until then", () => {
    expect(lateStep("2026-11-24T12:00:00Z").action).toBe("send");
  });
});

describe("decideSend defers outside the send window until its next opening", () => {
  const rows: [string, DeferRow][] = [
    [
      "email before 08:00 in London → 08:00 the same day",
      {
        stepId: "big-ticket.thank-you",
        now: "2026-11-24T06:30:00Z",
        until: "2026-11-24T08:00:00.000+00:00",
        zone: "Europe/London",
      },
    ],
    [
      "email at 21:00 (the window closes then) → 08:00 the next day",
      {
        stepId: "big-ticket.thank-you",
        now: "2026-11-24T21:00:00Z",
        until: "2026-11-25T08:00:00.000+00:00",
        zone: "Europe/London",
      },
    ],
    [
      "sms on a Sunday (closed) → Monday 09:00",
      {
        stepId: "big-ticket.check-in",
        now: "2026-11-29T12:00:00Z",
        until: "2026-11-30T09:00:00.000+00:00",
        zone: "Europe/London",
      },
    ],
    [
      "email on Christmas Eve evening → past both holidays, 27 December 08:00",
      {
        stepId: "big-ticket.thank-you",
        now: "2026-12-24T21:30:00Z",
        until: "2026-12-27T08:00:00.000+00:00",
        zone: "Europe/London",
      },
    ],
    [
      "London spring forward: Saturday 22:00 GMT → Sunday 08:00 BST (07:00 UTC)",
      {
        stepId: "big-ticket.thank-you",
        now: "2027-03-27T22:00:00Z",
        until: "2027-03-28T08:00:00.000+01:00",
        zone: "Europe/London",
      },
    ],
    [
      "London spring forward, a step window opening at 01:30 (in the gap) → 02:00 BST",
      {
        stepId: "big-ticket.thank-you",
        rules: withStep("big-ticket.thank-you", { sendWindow: sendWindow("01:30", "21:00") }),
        now: "2027-03-27T22:00:00Z",
        until: "2027-03-28T02:00:00.000+01:00",
        zone: "Europe/London",
      },
    ],
    [
      "London fall back: Saturday 21:00 BST → Sunday 08:00 GMT",
      {
        stepId: "big-ticket.thank-you",
        now: "2026-10-24T20:00:00Z",
        until: "2026-10-25T08:00:00.000+00:00",
        zone: "Europe/London",
      },
    ],
    [
      "New York spring forward, email: Saturday 21:30 EST → Sunday 08:00 EDT",
      {
        stepId: "big-ticket.thank-you",
        event: { customer: { timezone: "America/New_York" } },
        now: "2027-03-14T02:30:00Z",
        until: "2027-03-14T08:00:00.000-04:00",
        zone: "America/New_York",
      },
    ],
    [
      "New York spring forward, sms: Saturday 20:30 EST, Sunday closed → Monday 09:00 EDT",
      {
        stepId: "big-ticket.check-in",
        event: { customer: { timezone: "America/New_York" } },
        now: "2027-03-14T01:30:00Z",
        until: "2027-03-15T09:00:00.000-04:00",
        zone: "America/New_York",
      },
    ],
    [
      "no customer zone: the store's (Tokyo, 21:00 there) decides",
      {
        stepId: "big-ticket.thank-you",
        event: {
          customer: { timezone: undefined },
          store: { id: "store-1", timezone: "Asia/Tokyo" },
        },
        until: "2026-11-25T08:00:00.000+09:00",
        zone: "Asia/Tokyo",
      },
    ],
    [
      "no customer or store zone: the rules' default (New York, 07:00 there) decides",
      {
        stepId: "big-ticket.thank-you",
        event: { customer: { timezone: undefined } },
        rules: withDefaults({ timezone: "America/New_York" }),
        until: "2026-11-24T08:00:00.000-05:00",
        zone: "America/New_York",
      },
    ],
  ];

  it.each(rows)("%s", (_what, row) => {
    const defer = expectDefer(decide(row).decision);
    expect(defer.until.toISO()).toBe(row.until);
    expect(defer.until.toMillis()).toBe(instant(row.until).toMillis());
    expect(defer.until.zoneName).toBe(row.zone);
    expect(defer.reason).toContain("outside the send window");
  });
});

interface SendRow extends Case {
  ruleId: string;
  /** The step's id within its rule. */
  step: string;
  channel: Channel;
  zone: string;
}

describe("decideSend sends inside the window", () => {
  const rows: [string, SendRow][] = [
    [
      "a transactional email in the window, consent given",
      {
        stepId: "big-ticket.thank-you",
        ruleId: "big-ticket",
        step: "thank-you",
        channel: "email",
        zone: "Europe/London",
      },
    ],
    [
      "the same step id in another rule resolves to that rule",
      {
        stepId: "thank-you.thank-you",
        ruleId: "thank-you",
        step: "thank-you",
        channel: "email",
        zone: "Europe/London",
      },
    ],
    [
      "exactly at the window opening (08:00)",
      {
        stepId: "big-ticket.thank-you",
        now: "2026-11-24T08:00:00Z",
        ruleId: "big-ticket",
        step: "thank-you",
        channel: "email",
        zone: "Europe/London",
      },
    ],
    [
      "the last millisecond before the window closes (21:00)",
      {
        stepId: "big-ticket.thank-you",
        now: "2026-11-24T20:59:59.999Z",
        ruleId: "big-ticket",
        step: "thank-you",
        channel: "email",
        zone: "Europe/London",
      },
    ],
    [
      "London summer time: 07:30 UTC is 08:30 BST, inside the window",
      {
        stepId: "big-ticket.thank-you",
        now: "2027-03-28T07:30:00Z",
        ruleId: "big-ticket",
        step: "thank-you",
        channel: "email",
        zone: "Europe/London",
      },
    ],
    [
      "a transactional step with no consent flags (defaults do not require them)",
      {
        stepId: "big-ticket.check-in",
        event: { customer: { consent: undefined } },
        ruleId: "big-ticket",
        step: "check-in",
        channel: "sms",
        zone: "Europe/London",
      },
    ],
    [
      "a transactional step with consent when transactionalNeedsConsent",
      {
        stepId: "big-ticket.thank-you",
        rules: withDefaults({ transactionalNeedsConsent: true }),
        ruleId: "big-ticket",
        step: "thank-you",
        channel: "email",
        zone: "Europe/London",
      },
    ],
    [
      "a marketing email with email consent",
      {
        stepId: "accessories.discount",
        event: { customer: { consent: { email: true } } },
        ruleId: "accessories",
        step: "discount",
        channel: "email",
        zone: "Europe/London",
      },
    ],
    [
      "an email step when only sms is suppressed",
      {
        stepId: "big-ticket.thank-you",
        suppressed: ["sms"],
        ruleId: "big-ticket",
        step: "thank-you",
        channel: "email",
        zone: "Europe/London",
      },
    ],
    [
      "a thank-you due exactly 2 days ago (the grace period, not beyond it)",
      {
        stepId: "big-ticket.thank-you",
        dueAt: "2026-11-22T12:00:00Z",
        ruleId: "big-ticket",
        step: "thank-you",
        channel: "email",
        zone: "Europe/London",
      },
    ],
    [
      "a thank-you due 1 minute inside its 2-day grace period",
      {
        stepId: "big-ticket.thank-you",
        dueAt: "2026-11-22T12:01:00Z",
        ruleId: "big-ticket",
        step: "thank-you",
        channel: "email",
        zone: "Europe/London",
      },
    ],
    [
      "a check-in due 1 second inside its 14-day grace period",
      {
        stepId: "big-ticket.check-in",
        dueAt: "2026-11-10T12:00:01Z",
        ruleId: "big-ticket",
        step: "check-in",
        channel: "sms",
        zone: "Europe/London",
      },
    ],
    [
      "zone: the customer's (Kolkata) wins over the store's",
      {
        stepId: "big-ticket.thank-you",
        now: "2026-11-24T13:00:00Z",
        event: {
          customer: { timezone: "Asia/Kolkata" },
          store: { id: "store-1", timezone: "America/New_York" },
        },
        ruleId: "big-ticket",
        step: "thank-you",
        channel: "email",
        zone: "Asia/Kolkata",
      },
    ],
    [
      "zone: the store's (New York, 08:00 there) when the customer has none",
      {
        stepId: "big-ticket.thank-you",
        now: "2026-11-24T13:00:00Z",
        event: {
          customer: { timezone: undefined },
          store: { id: "store-1", timezone: "America/New_York" },
        },
        ruleId: "big-ticket",
        step: "thank-you",
        channel: "email",
        zone: "America/New_York",
      },
    ],
    [
      "zone: the rules' default (Berlin) when neither customer nor store has one",
      {
        stepId: "big-ticket.thank-you",
        now: "2026-11-24T13:00:00Z",
        event: { customer: { timezone: undefined }, store: { id: "store-1" } },
        rules: withDefaults({ timezone: "Europe/Berlin" }),
        ruleId: "big-ticket",
        step: "thank-you",
        channel: "email",
        zone: "Europe/Berlin",
      },
    ],
  ];

  it.each(rows)("%s", (_what, row) => {
    const { decision, rules } = decide(row);
    const send = expectSend(decision);
    expect(send.rule.id).toBe(row.ruleId);
    expect(send.step.id).toBe(row.step);
    expect(send.step.channel).toBe(row.channel);
    expect(send.zone).toBe(row.zone);
    // The rule and step are the ones of the rule set in force, not copies.
    const rule = rules.rules.find((r) => r.id === row.ruleId);
    expect(send.rule).toBe(rule);
    expect(send.step).toBe(rule?.steps.find((s) => s.id === row.step));
  });
});

describe("variant rule sets leave the shipped one untouched", () => {
  it("still has the shipped defaults and windows", () => {
    expect(shipped.defaults.timezone).toBe("Europe/London");
    expect(shipped.defaults.transactionalNeedsConsent).toBe(false);
    expect([...shipped.sendWindows.email.days]).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(shipped.rules.map((r) => r.id)).toContain("big-ticket");
  });
});

describe("decideSend takes the consent of the customer's latest purchase that stated one", () => {
  it("sends an offer whose own purchase gave no consent once a later checkout gave it", () => {
    const { decision } = decide({
      stepId: "accessories.discount",
      event: { customer: { consent: { sms: true } } },
      latestConsent: { email: { given: true, at: Date.parse(LATER_PURCHASE) } },
    });
    expect(decision.action).toBe("send");
  });

  it("keeps the purchase's own consent for a channel the later ones did not state", () => {
    const { decision } = decide({
      stepId: "accessories.discount",
      event: { customer: { consent: { email: true } } },
      latestConsent: { sms: { given: false, at: Date.parse(LATER_PURCHASE) } },
    });
    expect(decision.action).toBe("send");
  });

  it("keeps the step's own purchase's flag when it is the later one (the stated one is older)", () => {
    const { decision } = decide({
      stepId: "big-ticket.thank-you",
      event: { customer: { consent: { email: false } } },
      latestConsent: { email: { given: true, at: Date.parse(EARLIER_PURCHASE) } },
    });
    expect(decision).toMatchObject({ action: "skip", code: "no-consent" });
  });

  it("takes an earlier purchase's flag for a channel the step's own purchase did not state", () => {
    const { decision } = decide({
      stepId: "accessories.discount",
      event: { customer: { consent: { sms: true } } },
      latestConsent: { email: { given: true, at: Date.parse(EARLIER_PURCHASE) } },
    });
    expect(decision.action).toBe("send");
  });
});

describe("decideSend: offers-only opt-outs and channels this deployment cannot send on", () => {
  // Each row: the step, the channels opted out of offers only, the channels unavailable (with
  // their reason), and the decision expected (action, and code and reason for a skip).
  interface Row {
    stepId: string;
    event?: PurchaseSpec;
    marketingSuppressed?: Channel[];
    unavailable?: [Channel, string][];
    expected: { action: SendDecision["action"]; code?: GuardSkipCode; reason?: string };
  }
  const rows: [string, Row][] = [
    [
      "a marketing email step when the customer opted out of email offers",
      {
        stepId: "accessories.discount",
        marketingSuppressed: ["email"],
        expected: {
          action: "skip",
          code: "opted-out",
          reason: "customer opted out of email offers",
        },
      },
    ],
    [
      "a marketing email step when only sms offers are opted out of",
      {
        stepId: "accessories.discount",
        marketingSuppressed: ["sms"],
        expected: { action: "send" },
      },
    ],
    [
      "a transactional email step still goes to a customer who opted out of email offers only",
      {
        stepId: "big-ticket.thank-you",
        marketingSuppressed: ["email"],
        expected: { action: "send" },
      },
    ],
    [
      "an sms step when this deployment cannot send sms",
      {
        stepId: "big-ticket.check-in",
        unavailable: [["sms", "no sms provider configured"]],
        expected: {
          action: "skip",
          code: "channel-unavailable",
          reason: "no sms provider configured",
        },
      },
    ],
    [
      "an email step when only voice is unavailable",
      {
        stepId: "big-ticket.thank-you",
        unavailable: [["voice", "no voice provider yet"]],
        expected: { action: "send" },
      },
    ],
    [
      "an unavailable channel is reported before a missing contact",
      {
        stepId: "big-ticket.check-in",
        event: { customer: { phone: undefined } },
        unavailable: [["sms", "no sms provider configured"]],
        expected: { action: "skip", code: "channel-unavailable" },
      },
    ],
  ];

  it.each(rows)("%s", (_what, row) => {
    const now = instant(NOW);
    const decision = decideSend({
      event: purchase(row.event),
      stepId: row.stepId,
      dueAt: now.minus({ hours: 1 }).toMillis(),
      rules: shipped,
      now,
      suppressedChannels: new Set(),
      marketingSuppressedChannels: new Set(row.marketingSuppressed ?? []),
      unavailableChannels: new Map(row.unavailable ?? []),
    });
    expect(decision).toMatchObject(row.expected);
  });
});
