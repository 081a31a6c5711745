import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  capFreeAt,
  type ReplayOutcome,
  type ReplayStep,
  replayDeliveries,
  replayKey,
} from "../../src/domain/delivery-simulation.js";
import { DueQueue } from "../../src/domain/due-queue.js";
import type { StepKind } from "../../src/domain/rules.js";
import { purchase, rulesFrom, yaml } from "../support/fixtures.js";

const RULES = yaml`
  version: 1
  defaults: { timezone: Europe/London, currency: GBP }
  shop: { name: Test shop, address: "1 High Street, London N1 1AA" }
  sendWindows:
    email: { start: "09:00", end: "20:00", days: [mon, tue, wed, thu, fri, sat, sun], closedOnHolidays: false }
    sms: { start: "09:00", end: "20:00", days: [mon, tue, wed, thu, fri, sat, sun], closedOnHolidays: false }
    voice: { start: "09:00", end: "20:00", days: [mon, tue, wed, thu, fri, sat, sun], closedOnHolidays: false }
  frequencyCaps:
    email: [{ max: 1, per: PT24H }]
    sms: [{ max: 1, per: PT24H }]
    voice: []
  whenCapped: { thank-you: exempt, discount: defer, check-in: skip, custom: defer }
  gracePeriods: { thank-you: P2D, check-in: P14D, discount: P2D, custom: P60D }
  prices:
    sms: { GB: "0.04", other: "0.10" }
    voice: { GB: "0.02" }
    callMinutes: 2
  budget:
    sms: { monthly: "0.10", transactional: continue }
  rules:
    - id: r
      steps:
        - { kind: thank-you, channel: email, template: t, delay: PT1H }
        - { kind: discount, channel: email, template: d, delay: P1D }
        - { kind: check-in, channel: sms, template: c, delay: P2D }
        - { kind: custom, channel: sms, template: o, delay: P3D, purpose: marketing }
    - id: v
      steps:
        - { kind: custom, channel: voice, template: call, delay: P3D }
`;

const rules = rulesFrom(RULES);

const CHANNEL_OF: Record<string, ReplayStep["channel"]> = {
  "r.thank-you": "email",
  "r.discount": "email",
  "r.check-in": "sms",
  "r.custom": "sms",
  "v.custom": "voice",
};

/** A planned step of customer `customer`, due at `dueAt` (UTC; London is on GMT in November). */
function step(
  stepId: string,
  dueAt: string,
  options: { customer?: string; event?: string; phone?: string; segments?: [number, number] } = {},
): ReplayStep {
  const event = purchase({
    customer: {
      id: options.customer ?? "cus-1",
      phone: options.phone ?? "+442079460958",
      consent: { email: true, sms: true, voice: true },
    },
  });
  const channel = CHANNEL_OF[stepId] ?? "email";
  const kind = stepId.split(".")[1] as StepKind;
  const [later, first] = options.segments ?? [1, 1];
  return {
    eventId: options.event ?? `evt-${dueAt}`,
    stepId,
    kind,
    channel,
    purpose: stepId === "r.custom" ? "marketing" : "transactional",
    dueAt: Date.parse(dueAt),
    event: { customer: event.customer, occurredAt: event.occurredAt },
    ...(channel === "sms" && { smsSegments: { later, first } }),
  };
}

function replay(steps: ReplayStep[]) {
  const outcomes: ReplayOutcome[] = [];
  const summary = replayDeliveries(steps, rules, (outcome) => outcomes.push(outcome));
  const at = (outcome: ReplayOutcome) => new Date(outcome.at).toISOString().slice(0, 16);
  const seen = outcomes.map((o) =>
    o.outcome === "sent"
      ? `${o.step.eventId} sent ${at(o)}${o.waited ? " after waiting" : ""}`
      : `${o.step.eventId} skipped ${o.code} ${at(o)}${o.waited ? " after waiting" : ""}`,
  );
  return { summary, seen, outcomes };
}

describe("replayDeliveries: the worker's send-time decisions, in due order", () => {
  it("a deferred step waits for the cap, then for the window; beyond its grace it is skipped", () => {
    // Three discount emails of one customer on one morning, given in reverse order; cap 1 a day.
    const { seen, summary } = replay([
      step("r.discount", "2026-11-02T10:10:00Z", { event: "c" }),
      step("r.discount", "2026-11-02T10:05:00Z", { event: "b" }),
      step("r.discount", "2026-11-02T10:00:00Z", { event: "a" }),
      step("r.discount", "2026-11-02T19:50:00Z", { event: "d" }),
    ]);
    expect(seen).toEqual([
      "a sent 2026-11-02T10:00",
      // b frees at 10:00 the next day (inside the window), c after b, d after c.
      "b sent 2026-11-03T10:00 after waiting",
      "c sent 2026-11-04T10:00 after waiting",
      // d (due 19:50 on the 2nd) would go at 10:00 on the 5th: over its grace period of P2D.
      "d skipped past-due 2026-11-05T10:00 after waiting",
    ]);
    expect(summary.outcomes).toEqual([
      { channel: "email", kind: "discount", sent: 3, waited: 2, skipped: { "past-due": 1 } },
    ]);
  });

  it("a cap that frees outside the send window waits for its next opening (09:00 local)", () => {
    const halfDay = rulesFrom(
      RULES.replace("email: [{ max: 1, per: PT24H }]", "email: [{ max: 1, per: PT12H }]"),
    );
    const outcomes: ReplayOutcome[] = [];
    replayDeliveries(
      [
        step("r.discount", "2026-11-02T19:00:00Z", { event: "a" }),
        // Its cap frees at 07:00 on the 3rd, before the window opens.
        step("r.discount", "2026-11-02T19:30:00Z", { event: "b" }),
      ],
      halfDay,
      (o) => outcomes.push(o),
    );
    expect(outcomes.map((o) => [o.step.eventId, new Date(o.at).toISOString()])).toEqual([
      ["a", "2026-11-02T19:00:00.000Z"],
      ["b", "2026-11-03T09:00:00.000Z"],
    ]);
    // In summer London is an hour ahead: 07:30 UTC is 08:30 there, so a waits for 09:00 (08:00 UTC).
    const summer = replay([
      step("r.discount", "2026-07-01T07:30:00Z", { event: "a" }),
      step("r.discount", "2026-07-01T08:30:00Z", { event: "b" }),
    ]);
    expect(summer.seen).toEqual([
      "a sent 2026-07-01T08:00",
      "b sent 2026-07-02T08:00 after waiting",
    ]);
  });

  it("whenCapped skip drops the step; exempt neither waits nor uses room", () => {
    const { summary, seen } = replay([
      step("r.check-in", "2026-11-02T10:00:00Z", { event: "a" }),
      step("r.check-in", "2026-11-02T11:00:00Z", { event: "b" }),
      step("r.thank-you", "2026-11-02T10:00:00Z", { event: "t1" }),
      step("r.thank-you", "2026-11-02T10:01:00Z", { event: "t2" }),
      // A discount after two thank-yous still finds the email cap free.
      step("r.discount", "2026-11-02T10:02:00Z", { event: "d" }),
    ]);
    expect(seen).toEqual([
      "a sent 2026-11-02T10:00",
      "t1 sent 2026-11-02T10:00",
      "t2 sent 2026-11-02T10:01",
      "d sent 2026-11-02T10:02",
      "b skipped capped 2026-11-02T11:00",
    ]);
    expect(summary.outcomes).toEqual([
      { channel: "email", kind: "discount", sent: 1, waited: 0, skipped: {} },
      { channel: "email", kind: "thank-you", sent: 2, waited: 0, skipped: {} },
      { channel: "sms", kind: "check-in", sent: 1, waited: 0, skipped: { capped: 1 } },
    ]);
  });

  it("caps are per customer: another customer's sends do not count", () => {
    const { seen } = replay([
      step("r.discount", "2026-11-02T10:00:00Z", { event: "a", customer: "cus-a" }),
      step("r.discount", "2026-11-02T10:00:00Z", { event: "b", customer: "cus-b" }),
    ]);
    expect(seen).toEqual(["a sent 2026-11-02T10:00", "b sent 2026-11-02T10:00"]);
  });

  it("a step without consent or contact is skipped as the guard says", () => {
    const noConsent = step("r.check-in", "2026-11-02T10:00:00Z", { event: "x" });
    const declined: ReplayStep = {
      ...noConsent,
      event: {
        ...noConsent.event,
        customer: { ...noConsent.event.customer, consent: { sms: false } },
      },
    };
    const { seen } = replay([declined]);
    expect(seen).toEqual(["x skipped no-consent 2026-11-02T10:00"]);
  });

  it("monthly budgets: marketing stops at the budget, transactional continues; a new month starts afresh", () => {
    // Budget 0.10 GBP a month; an SMS to GB costs 0.04 a segment. custom is marketing (defer, 1 a
    // day), so each customer sends one a day: five customers, one SMS each, two months.
    const days = ["2026-11-28", "2026-11-29", "2026-11-30", "2026-12-01"];
    const steps = [
      ...[1, 2, 3, 4, 5].map((n) =>
        step("r.custom", `${days[0]}T10:0${n}:00Z`, { event: `m${n}`, customer: `c${n}` }),
      ),
      step("r.check-in", `${days[1]}T11:00:00Z`, { event: "t", customer: "c1" }),
      step("r.custom", `${days[3]}T10:00:00Z`, { event: "dec", customer: "c1" }),
    ];
    const { seen, summary } = replay(steps);
    expect(seen).toEqual([
      "m1 sent 2026-11-28T10:01",
      "m2 sent 2026-11-28T10:02",
      // Spent 0.08 < 0.10: one more goes out, and takes it over the budget.
      "m3 sent 2026-11-28T10:03",
      "m4 skipped budget-reached 2026-11-28T10:04",
      "m5 skipped budget-reached 2026-11-28T10:05",
      // Transactional steps continue (budget.sms.transactional: continue).
      "t sent 2026-11-29T11:00",
      "dec sent 2026-12-01T10:00",
    ]);
    expect(summary.months).toEqual([
      {
        month: "2026-11",
        channel: "sms",
        messages: 4,
        segments: 4,
        costMicros: 160_000,
        unpriced: 0,
      },
      {
        month: "2026-12",
        channel: "sms",
        messages: 1,
        segments: 1,
        costMicros: 40_000,
        unpriced: 0,
      },
    ]);
  });

  it("transactional steps stop too when the budget says skip", () => {
    const strict = rulesFrom(
      RULES.replace(
        'sms: { monthly: "0.10", transactional: continue }',
        'sms: { monthly: "0.04", transactional: skip }',
      ),
    );
    const outcomes: ReplayOutcome[] = [];
    replayDeliveries(
      [
        step("r.check-in", "2026-11-02T10:00:00Z", { customer: "c1" }),
        step("r.check-in", "2026-11-02T10:00:00Z", { customer: "c2" }),
      ],
      strict,
      (o) => outcomes.push(o),
    );
    expect(outcomes.map((o) => (o.outcome === "sent" ? "sent" : o.code))).toEqual([
      "sent",
      "budget-reached",
    ]);
  });

  it("the first SMS to a number carries the opt-out line: its segments; calls cost the estimated minutes", () => {
    const { summary, outcomes } = replay([
      step("r.check-in", "2026-11-02T10:00:00Z", { event: "a", segments: [1, 2] }),
      step("r.check-in", "2026-11-09T10:00:00Z", { event: "b", segments: [1, 2] }),
      // A US number: the "other" price, 0.10 a segment.
      step("r.check-in", "2026-11-02T10:00:00Z", {
        event: "us",
        customer: "cus-us",
        phone: "+14155550123",
        segments: [3, 3],
      }),
      step("v.custom", "2026-11-02T10:00:00Z", { event: "call", customer: "cus-call" }),
      step("v.custom", "2026-11-02T10:00:00Z", {
        event: "call-us",
        customer: "cus-call-us",
        phone: "+14155550124",
      }),
      step("r.thank-you", "2026-11-02T10:00:00Z", { event: "mail" }),
    ]);
    const sent = Object.fromEntries(
      outcomes.map((o) => [
        o.step.eventId,
        o.outcome === "sent" ? [o.segments, o.costMicros] : o.code,
      ]),
    );
    expect(sent).toEqual({
      a: [2, 80_000],
      b: [1, 40_000],
      us: [3, 300_000],
      call: [null, 40_000],
      "call-us": [null, null],
      mail: [null, null],
    });
    expect(summary.months).toEqual([
      {
        month: "2026-11",
        channel: "email",
        messages: 1,
        segments: 0,
        costMicros: null,
        unpriced: 0,
      },
      {
        month: "2026-11",
        channel: "sms",
        messages: 3,
        segments: 6,
        costMicros: 420_000,
        unpriced: 0,
      },
      {
        month: "2026-11",
        channel: "voice",
        messages: 2,
        segments: 0,
        costMicros: 40_000,
        unpriced: 1,
      },
    ]);
  });

  it("an SMS that cannot render within the cap is skipped at send time, as the worker fails it", () => {
    const broken: ReplayStep = { ...step("r.check-in", "2026-11-02T10:00:00Z"), smsSegments: null };
    expect(replay([broken]).seen).toEqual([
      "evt-2026-11-02T10:00:00Z skipped render-failed 2026-11-02T10:00",
    ]);
  });
});

describe("capFreeAt: the sliding window of take-cap-slot.lua", () => {
  const day = 24 * 3600_000;
  it("frees when the oldest of the last `max` sends leaves the window", () => {
    expect(capFreeAt([], [{ max: 1, perMs: day }], 0)).toBeUndefined();
    expect(capFreeAt([0], [{ max: 1, perMs: day }], day - 1)).toBe(day);
    // The window's start is exclusive: a send exactly `per` ago no longer counts.
    expect(capFreeAt([0], [{ max: 1, perMs: day }], day)).toBeUndefined();
    const week = 7 * day;
    const caps = [
      { max: 1, perMs: day },
      { max: 3, perMs: week },
    ];
    expect(capFreeAt([0, day, 2 * day], caps, 3 * day)).toBe(week);
    expect(capFreeAt([0, day, 2 * day], caps, 2 * day + 1)).toBe(week);
  });
});

describe("DueQueue", () => {
  it("pops by due time, ties in the order they were added", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 200 }), (times) => {
        const queue = new DueQueue<number>();
        for (const [index, at] of times.entries()) queue.push(at, index);
        const popped: number[] = [];
        for (let next = queue.pop(); next !== undefined; next = queue.pop()) popped.push(next.item);
        const expected = times
          .map((at, index) => ({ at, index }))
          .sort((a, b) => a.at - b.at || a.index - b.index)
          .map((entry) => entry.index);
        expect(popped).toEqual(expected);
        expect(queue.size).toBe(0);
      }),
    );
  });
});

describe("replayDeliveries: a thank-you joined to an earlier purchase's, as the worker decides it", () => {
  const leads = replayKey("leader", "r.thank-you");
  const joined = () => ({
    ...step("r.thank-you", "2026-11-02T11:15:00Z", { event: "joined" }),
    joinedTo: leads,
  });
  const seenOf = (steps: ReplayStep[], with_ = rules) => {
    const outcomes: ReplayOutcome[] = [];
    const summary = replayDeliveries(steps, with_, (o) => outcomes.push(o));
    const at = (o: ReplayOutcome) => new Date(o.at).toISOString().slice(0, 16);
    const seen = outcomes.map(
      (o) =>
        `${o.step.eventId} ${o.outcome === "sent" ? "sent" : `skipped ${o.code}`} ${at(o)}${o.waited ? " after waiting" : ""}`,
    );
    return { seen, summary };
  };

  it("is thanked for in the leader's once that went, waiting behind it while a cap defers it", () => {
    const deferred = rulesFrom(RULES.replace("thank-you: exempt", "thank-you: defer"));
    const { seen, summary } = seenOf(
      [
        step("r.discount", "2026-11-02T10:00:00Z", { event: "earlier" }),
        step("r.thank-you", "2026-11-02T11:00:00Z", { event: "leader" }),
        joined(),
      ],
      deferred,
    );
    expect(seen).toEqual([
      "earlier sent 2026-11-02T10:00",
      "leader sent 2026-11-03T10:00 after waiting",
      "joined skipped coalesced 2026-11-03T10:15",
    ]);
    // Counted apart, not among the thank-yous' skips.
    expect(summary.coalesced).toBe(1);
    expect(summary.outcomes.find((o) => o.kind === "thank-you")).toEqual({
      channel: "email",
      kind: "thank-you",
      sent: 1,
      waited: 1,
      skipped: {},
    });
  });

  it("goes on its own when the leader's never goes", () => {
    const leader = step("r.thank-you", "2026-11-02T11:00:00Z", { event: "leader" });
    const { email: _none, ...unreachable } = leader.event.customer;
    const { seen, summary } = seenOf([
      { ...leader, event: { ...leader.event, customer: unreachable } },
      joined(),
    ]);
    expect(seen).toEqual([
      "leader skipped no-contact 2026-11-02T11:00",
      "joined sent 2026-11-02T11:15",
    ]);
    expect(summary.coalesced).toBe(0);
  });
});
