import fc from "fast-check";
import { DateTime, Duration, Settings } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { parseRules } from "../../src/config/load-rules.js";
import { type Plan, planFollowUps } from "../../src/domain/planner.js";
import type { RuleSet, SendWindow } from "../../src/domain/rules.js";
import { nextSendWindow, nextSendWindowByCalendar } from "../../src/domain/send-window.js";
import { findStep } from "../../src/domain/step-ref.js";
import { replanOf } from "../../src/queue/replanner.js";
import { mayBePromoted } from "../../src/store/keys.js";
import type { StepRecord } from "../../src/store/step-record.js";
import {
  type DayName,
  EVERY_DAY,
  instant,
  type OneStepOptions,
  oneStepRules,
  oneStepYaml,
  purchase,
  rulesFrom,
  sendWindow,
} from "../support/fixtures.js";

/**
 * Invariants of timing over random zones, purchases, delays, windows and holidays. "Inside the
 * window" is checked against the wall clock, independently of the code under test.
 */

const RUNS = { numRuns: 200 } as const;

const ZONES = [
  "UTC",
  "Europe/London",
  "Europe/Berlin",
  "America/New_York",
  "America/St_Johns", // -03:30 / -02:30
  "America/Santiago", // transitions at midnight
  "America/Havana", // transitions at midnight
  "Australia/Lord_Howe", // 30-minute DST shift
  "Australia/Adelaide",
  "Asia/Kathmandu", // +05:45
  "Asia/Tehran",
  "Pacific/Chatham", // +12:45 / +13:45
  "Pacific/Kiritimati", // +14:00
] as const;

const zoneArb = fc.constantFrom(...ZONES);

/** A zone's offset changes in 2026 and 2027 (UTC milliseconds), found by bisection. */
function transitionsOf(zone: string): number[] {
  const offset = (ms: number) => DateTime.fromMillis(ms, { zone }).offset;
  const found: number[] = [];
  const step = 6 * 3_600_000;
  for (let t = Date.UTC(2026, 0, 1); t < Date.UTC(2028, 0, 1); t += step) {
    if (offset(t) === offset(t + step)) continue;
    let [lo, hi] = [t, t + step];
    while (hi - lo > 60_000) {
      const mid = lo + Math.floor((hi - lo) / 120_000) * 60_000;
      if (offset(mid) === offset(lo)) lo = mid;
      else hi = mid;
    }
    found.push(hi);
  }
  return found;
}
const TRANSITIONS = new Map(ZONES.map((zone) => [zone, transitionsOf(zone)]));

/** An instant and the zone it is looked at in. */
interface Moment {
  readonly zone: string;
  readonly at: DateTime;
  /** Near a DST transition: the local minute of the day at which the clock jumps. */
  readonly jumpMinute?: number;
}

const uniformSecondsArb = fc.integer({
  min: Date.UTC(2024, 0, 1) / 1000,
  max: Date.UTC(2031, 0, 1) / 1000,
});

/** Whole seconds between 2024 and 2031; half of them within two days of one of the zone's DST transitions. */
const momentArb: fc.Arbitrary<Moment> = zoneArb.chain((zone) => {
  const uniform = uniformSecondsArb.map(
    (seconds): Moment => ({ zone, at: DateTime.fromSeconds(seconds, { zone: "utc" }) }),
  );
  const transitions = TRANSITIONS.get(zone) ?? [];
  if (transitions.length === 0) return uniform;
  const near = fc
    .tuple(fc.constantFrom(...transitions), fc.integer({ min: -2 * 86_400, max: 2 * 86_400 }))
    .map(([transition, seconds]): Moment => {
      const before = DateTime.fromMillis(transition - 60_000, { zone });
      return {
        zone,
        at: DateTime.fromMillis(transition + seconds * 1000, { zone: "utc" }),
        jumpMinute: before.hour * 60 + before.minute + 1,
      };
    });
  return fc.oneof(uniform, near);
});

const UNITS = [
  { iso: (n: number) => `PT${n}M`, max: 20_000 },
  { iso: (n: number) => `PT${n}H`, max: 3_000 },
  { iso: (n: number) => `P${n}D`, max: 400 },
  { iso: (n: number) => `P${n}W`, max: 60 },
  { iso: (n: number) => `P${n}M`, max: 36 },
  { iso: (n: number) => `P${n}Y`, max: 4 },
] as const;
const unitArb = fc.constantFrom(...UNITS);
const delayArb = unitArb.chain((unit) => fc.nat(unit.max).map((n) => unit.iso(n)));

const hhmm = (minute: number) =>
  `${String(Math.floor(minute / 60)).padStart(2, "0")}:${String(minute % 60).padStart(2, "0")}`;

interface WindowSpec {
  start: string;
  end: string;
  days: DayName[];
  closedOnHolidays: boolean;
}

/** A window; near a transition, half of them open or close around the jump, often briefly. */
function windowArb(moment?: Moment): fc.Arbitrary<WindowSpec> {
  const jump = moment?.jumpMinute;
  const uniform = fc.integer({ min: 0, max: 1439 });
  const start =
    jump === undefined
      ? uniform
      : fc.oneof(
          uniform,
          fc.integer({ min: -90, max: 60 }).map((k) => Math.max(0, Math.min(1439, jump + k))),
        );
  return fc
    .record({
      start,
      length: fc.oneof(fc.integer({ min: 1, max: 1440 }), fc.integer({ min: 1, max: 120 })),
      days: fc.subarray([...EVERY_DAY], { minLength: 1 }),
      closedOnHolidays: fc.boolean(),
    })
    .map(({ start: from, length, days, closedOnHolidays }) => ({
      start: hhmm(from),
      end: hhmm(Math.min(1440, from + length)),
      days,
      closedOnHolidays,
    }));
}

const stepArb = fc.record({
  kind: fc.constantFrom("thank-you", "check-in", "discount", "custom" as const),
  channel: fc.constantFrom("email", "sms", "voice" as const),
});
/** Holidays as day offsets from a given local date, so that they actually get in the way. */
const holidayOffsetsArb = fc.uniqueArray(fc.integer({ min: 0, max: 6 }), { maxLength: 4 });
const holidaysFrom = (at: DateTime, offsets: readonly number[]) =>
  offsets.map((k) => at.plus({ days: k }).toISODate() ?? "");

interface Case {
  zone: string;
  purchasedAt: DateTime;
  options: OneStepOptions;
}

/**
 * A purchase and a one-step rule set. The moment drawn is where the delay lands (the purchase is
 * that moment minus the delay), so that due times meet DST transitions often.
 */
const caseArb: fc.Arbitrary<Case> = momentArb.chain((moment) =>
  fc
    .record({
      delay: delayArb,
      window: windowArb(moment),
      step: stepArb,
      holidayOffsets: holidayOffsetsArb,
    })
    .map(({ delay, window, step, holidayOffsets }): Case => {
      const lands = moment.at.setZone(moment.zone);
      const purchasedAt = lands.minus(Duration.fromISO(delay)).toUTC();
      return {
        zone: moment.zone,
        purchasedAt,
        options: {
          delay,
          window,
          holidays: holidaysFrom(lands, holidayOffsets),
          timezone: "UTC",
          ...step,
        },
      };
    }),
);

function planCase(c: Case, rules: RuleSet, now: DateTime) {
  const event = purchase({
    occurredAt: c.purchasedAt.toISO({ suppressMilliseconds: true }) ?? "",
    customer: {
      timezone: c.zone,
      consent: { email: true, sms: true, voice: true },
    },
  });
  return planFollowUps(event, rules, { previousPurchases: 0 }, now);
}

/**
 * Whether `at` is inside the window by the zone's wall clock, independently of the code under test:
 * luxon's local weekday, date, hour and minute against the window's days, holidays, start and end.
 * In a fall-back overlap the window follows the clock's first pass (it opens when the wall clock
 * first reaches the start and closes when it first reaches the end), so the minute compared is the
 * highest the clock has shown that local day, which outside a repeated hour is the clock itself.
 * In a spring-forward gap the clock jumps past the start, and that counts as reaching it.
 */
function wallClockInside(
  at: DateTime,
  zone: string,
  window: SendWindow,
  holidays: ReadonlySet<string>,
): boolean {
  const local = at.setZone(zone);
  const date = local.toISODate() ?? "";
  if (!window.days.has(local.weekday as 1 | 2 | 3 | 4 | 5 | 6 | 7)) return false;
  if (window.closedOnHolidays && holidays.has(date)) return false;
  const minute = highestWallMinuteSoFar(at, zone);
  return minute >= window.startMinute && minute < window.endMinute;
}

/**
 * The highest wall-clock minute (hour × 60 + minute) the zone's clock has shown on `at`'s local
 * date up to `at`. Sampled minute by minute over the last three hours, longer than any fall-back,
 * and offsets change on whole minutes, so no minute the clock showed is missed.
 */
function highestWallMinuteSoFar(at: DateTime, zone: string): number {
  const local = at.setZone(zone);
  const date = local.toISODate();
  let highest = local.hour * 60 + local.minute;
  if (local.offset >= at.minus({ hours: 3 }).setZone(zone).offset) return highest; // no fall-back
  for (let back = 1; back <= 180; back++) {
    const earlier = at.minus({ minutes: back }).setZone(zone);
    if (earlier.toISODate() === date) {
      highest = Math.max(highest, earlier.hour * 60 + earlier.minute);
    }
  }
  return highest;
}

/** The window a case's rules declare, read from the case itself rather than from the parsed rules. */
function declaredWindow(c: Case): SendWindow {
  const w = c.options.window ?? { start: "00:00", end: "24:00" };
  return sendWindow(w.start, w.end, w.days, w.closedOnHolidays);
}

afterEach(() => {
  Settings.now = () => Date.now();
});

describe("nextSendWindow (properties)", () => {
  it("returns the earliest instant at or after `from` that is inside the window by the wall clock", () => {
    fc.assert(
      fc.property(
        momentArb.chain((m) => fc.tuple(fc.constant(m), windowArb(m), holidayOffsetsArb)),
        ([{ zone, at: from }, w, offsets]) => {
          const window = sendWindow(w.start, w.end, w.days, w.closedOnHolidays);
          const holidays = new Set(holidaysFrom(from.setZone(zone), offsets));
          const due = nextSendWindow(from, zone, window, holidays);
          expect(due.toMillis()).toBeGreaterThanOrEqual(from.toMillis());
          expect(
            wallClockInside(due, zone, window, holidays),
            `${due.toISO()} is outside ${w.start}–${w.end} ${w.days.join(",")} in ${zone}`,
          ).toBe(true);
          const before = due.minus({ minutes: 1 });
          if (due > from && before >= from) {
            expect(
              wallClockInside(before, zone, window, holidays),
              `${before.toISO()} is already inside ${w.start}–${w.end} in ${zone}`,
            ).toBe(false);
          }
        },
      ),
      RUNS,
    );
  });

  it("gives the calendar walk's answer, to the millisecond and offset, near DST changes too", () => {
    fc.assert(
      fc.property(
        momentArb.chain((m) =>
          fc.tuple(fc.constant(m), windowArb(m), holidayOffsetsArb, fc.nat(59_999)),
        ),
        ([{ zone, at }, w, offsets, millis]) => {
          const from = at.plus({ milliseconds: millis });
          const window = sendWindow(w.start, w.end, w.days, w.closedOnHolidays);
          const holidays = new Set(holidaysFrom(from.setZone(zone), offsets));
          const fast = nextSendWindow(from, zone, window, holidays);
          const walked = nextSendWindowByCalendar(from, zone, window, holidays);
          expect(fast.toISO(), `${from.toISO()} ${w.start}–${w.end} in ${zone}`).toBe(
            walked.toISO(),
          );
        },
      ),
      { numRuns: 2_000 },
    );
  });
});

describe("planFollowUps timing (properties)", () => {
  it("every planned step is due inside its send window, never before the purchase or now", () => {
    fc.assert(
      fc.property(caseArb, fc.integer({ min: -86_400, max: 4 * 86_400 }), (c, nowOffsetSeconds) => {
        const rules = oneStepRules(c.options);
        const now = c.purchasedAt.plus({ seconds: nowOffsetSeconds });
        const plan = planCase(c, rules, now);
        const step = plan.steps[0];
        if (!step) {
          expect(plan.skipped.map((s) => s.code)).toEqual(["past-due"]);
          return;
        }
        const due = instant(step.dueAt);
        expect(step.channel).toBe(c.options.channel);
        expect(due.toMillis()).toBeGreaterThanOrEqual(c.purchasedAt.toMillis());
        expect(due.toMillis()).toBeGreaterThanOrEqual(now.toMillis());
        expect(
          wallClockInside(due, c.zone, declaredWindow(c), new Set(c.options.holidays)),
          `${step.dueAt} is outside ${JSON.stringify(c.options.window)} in ${c.zone}`,
        ).toBe(true);
        // localDueAt is the same instant on the customer's clock.
        const local = instant(step.localDueAt);
        expect(local.toMillis()).toBe(due.toMillis());
        expect(local.offset).toBe(due.setZone(c.zone).offset);
      }),
      RUNS,
    );
  });

  it("is monotone in the delay: a longer delay of the same unit is never due earlier", () => {
    fc.assert(
      fc.property(
        momentArb,
        unitArb,
        fc.nat(),
        fc.nat(),
        ({ zone, at: purchasedAt }, unit, x, y) => {
          const [a, b] = [x % (unit.max + 1), y % (unit.max + 1)].sort((p, q) => p - q) as [
            number,
            number,
          ];
          const due = (n: number) => {
            const c: Case = { zone, purchasedAt, options: { delay: unit.iso(n) } };
            const step = planCase(c, oneStepRules(c.options), purchasedAt).steps[0];
            if (!step) throw new Error("a step due after now must be planned");
            return step.dueAt;
          };
          const [dueA, dueB] = [due(a), due(b)];
          expect(
            instant(dueA).toMillis(),
            `${unit.iso(a)} → ${dueA} but ${unit.iso(b)} → ${dueB}`,
          ).toBeLessThanOrEqual(instant(dueB).toMillis());
        },
      ),
      RUNS,
    );
  });

  it("is monotone in the delay within a send window too", () => {
    fc.assert(
      fc.property(caseArb, unitArb, fc.nat(), fc.nat(), (c, unit, x, y) => {
        const [a, b] = [x % (unit.max + 1), y % (unit.max + 1)].sort((p, q) => p - q) as [
          number,
          number,
        ];
        const due = (n: number) => {
          const options = { ...c.options, delay: unit.iso(n) };
          const step = planCase(c, oneStepRules(options), c.purchasedAt).steps[0];
          if (!step) throw new Error("a step due after now must be planned");
          return instant(step.dueAt).toMillis();
        };
        expect(due(a)).toBeLessThanOrEqual(due(b));
      }),
      RUNS,
    );
  });

  it("is deterministic: the same inputs give a deep-equal plan, whatever the wall clock says", () => {
    fc.assert(
      fc.property(
        caseArb,
        fc.integer({ min: -86_400, max: 4 * 86_400 }),
        uniformSecondsArb,
        uniformSecondsArb,
        (c, nowOffsetSeconds, clockA, clockB) => {
          const now = c.purchasedAt.plus({ seconds: nowOffsetSeconds });
          const fresh = () => {
            const result = parseRules(oneStepYaml(c.options), "rules.yaml");
            if (!result.ok) throw new Error("the generated rules must be valid");
            return result.rules;
          };
          Settings.now = () => clockA * 1000;
          const first = planCase(c, fresh(), now);
          Settings.now = () => clockB * 1000;
          const second = planCase(c, fresh(), now);
          expect(second).toEqual(first);
        },
      ),
      RUNS,
    );
  });

  it("plans the same instant whatever offset `now` is written with", () => {
    fc.assert(
      fc.property(caseArb, zoneArb, (c, nowZone) => {
        const rules = oneStepRules(c.options);
        const a = planCase(c, rules, c.purchasedAt);
        const b = planCase(c, rules, c.purchasedAt.setZone(nowZone));
        expect(b).toEqual(a);
      }),
      RUNS,
    );
  });
});

describe("re-planning (properties)", () => {
  const channelWindowArb = fc
    .record({
      start: fc.integer({ min: 0, max: 1380 }),
      length: fc.integer({ min: 30, max: 1440 }),
      days: fc.subarray([...EVERY_DAY], { minLength: 1 }),
    })
    .map(
      ({ start, length, days }) =>
        `{ start: "${hhmm(start)}", end: "${hhmm(Math.min(1440, start + length))}", days: [${days.join(", ")}] }`,
    );
  const shortDelayArb = fc.oneof(
    fc.nat(200).map((n) => `PT${n}H`),
    fc.nat(90).map((n) => `P${n}D`),
    fc.nat(6).map((n) => `P${n}M`),
  );
  /** Rules (YAML, so a counterexample reads as such): a thank-you email and a check-in call with an SMS fallback, timed at random. */
  const callRulesArb = fc
    .record({
      email: channelWindowArb,
      sms: channelWindowArb,
      voice: channelWindowArb,
      thankYou: shortDelayArb,
      call: shortDelayArb,
      after: fc.constantFrom("PT30M", "PT1H", "P1D", "P2D"),
      grace: fc.constantFrom("PT2H", "P1D", "P14D"),
    })
    .map((r) =>
      [
        "version: 1",
        "defaults: { timezone: Europe/London, currency: GBP }",
        `gracePeriods: { check-in: ${r.grace} }`,
        "sendWindows:",
        `  email: ${r.email}`,
        `  sms: ${r.sms}`,
        `  voice: ${r.voice}`,
        "rules:",
        "  - id: r",
        "    steps:",
        `      - { kind: thank-you, channel: email, template: t, delay: ${r.thankYou} }`,
        `      - { kind: check-in, channel: voice, template: t, delay: ${r.call}, fallback: { channel: sms, template: t, after: ${r.after} } }`,
        "",
      ].join("\n"),
    );
  const HORIZON = 5 * 60_000;
  /** The step records intake writes for a plan: every step scheduled. */
  const recordsOf = (planned: Plan) =>
    new Map<string, StepRecord>(
      planned.steps.map((s) => [
        s.stepId,
        {
          state: "scheduled",
          dueAt: Date.parse(s.dueAt),
          ...(s.graceEndsAt && { graceEndsAt: Date.parse(s.graceEndsAt) }),
          attempts: 0,
          takeovers: 0,
          resends: 0,
          retries: 0,
          channel: s.channel,
          kind: s.kind,
        },
      ]),
    );

  it("is idempotent: the same rules loaded again after a re-plan keep every step it left scheduled", () => {
    fc.assert(
      fc.property(
        zoneArb,
        fc.integer({ min: Date.UTC(2026, 0, 1) / 1000, max: Date.UTC(2028, 0, 1) / 1000 }),
        callRulesArb,
        callRulesArb,
        fc.integer({ min: 0, max: 20 * 86_400 }),
        (zone, seconds, beforeYaml, afterYaml, replanAfterSeconds) => {
          const [before, after] = [rulesFrom(beforeYaml), rulesFrom(afterYaml)];
          const purchasedAt = DateTime.fromSeconds(seconds, { zone: "utc" });
          const event = purchase({
            occurredAt: purchasedAt.toISO({ suppressMilliseconds: true }) ?? "",
            customer: { timezone: zone, consent: { email: true, sms: true, voice: true } },
          });
          const history = { previousPurchases: 0 };
          const planned = planFollowUps(event, before, history, purchasedAt);
          const records = recordsOf(planned);
          const now = purchasedAt.plus({ seconds: replanAfterSeconds });
          const first = replanOf("evt", event, records, after, history, now, HORIZON);
          // The record as the store leaves it (replan-event.lua).
          const applied = new Map(records);
          for (const step of first.steps) {
            const record = records.get(step.stepId);
            if (!record) continue;
            if (step.action === "move") {
              const { graceEndsAt: _, ...rest } = record;
              applied.set(step.stepId, {
                ...rest,
                dueAt: step.dueAt,
                channel: step.channel as StepRecord["channel"],
                ...(step.graceEndsAt !== undefined && { graceEndsAt: step.graceEndsAt }),
              });
            } else if (step.action !== "keep") {
              applied.set(step.stepId, {
                ...record,
                state: step.action === "skip" ? "skipped" : "cancelled",
              });
            }
          }
          const again = replanOf("evt", event, applied, after, history, now, HORIZON);
          expect(
            again.steps.filter((s) => s.action !== "keep").map((s) => [s.stepId, s.action]),
            `first re-plan: ${JSON.stringify(first.steps.map((s) => [s.stepId, s.action, new Date(s.dueAt).toISOString()]))}`,
          ).toEqual([]);
        },
      ),
      { numRuns: 300, seed: 20261207 },
    );
  });
  it("decides a step whose delay, window or kind changed as fresh planning would: its due time, kind, a cooldown of its kind and one step of a kind per purchase", () => {
    // Rules `r` and, below it, `s`, each of one email step `id: t` of a random kind, their kinds
    // alone changed half the time (two steps may so take one kind: fresh planning plans the
    // first); the customer has another purchase's discount or custom step nearby (cooldowns of
    // both kinds).
    const kindArb = fc.constantFrom("thank-you", "custom", "discount");
    const rulesArb = fc
      .record({
        email: channelWindowArb,
        delay: shortDelayArb,
        kind: kindArb,
        second: fc.record({ delay: shortDelayArb, kind: kindArb }),
        cooldown: fc.constantFrom("P10D", "P30D"),
      })
      .map((r) =>
        [
          "version: 1",
          "defaults: { timezone: Europe/London, currency: GBP }",
          `cooldowns: { discount: ${r.cooldown}, custom: ${r.cooldown} }`,
          "sendWindows:",
          `  email: ${r.email}`,
          "rules:",
          "  - id: r",
          "    priority: 1",
          "    steps:",
          `      - { id: t, kind: ${r.kind}, channel: email, template: t, delay: ${r.delay} }`,
          "  - id: s",
          "    steps:",
          `      - { id: t, kind: ${r.second.kind}, channel: email, template: t, delay: ${r.second.delay} }`,
          "",
        ].join("\n"),
      );
    fc.assert(
      fc.property(
        zoneArb,
        fc.integer({ min: Date.UTC(2026, 0, 1) / 1000, max: Date.UTC(2028, 0, 1) / 1000 }),
        rulesArb,
        fc.oneof(rulesArb, fc.tuple(kindArb, kindArb)),
        fc.integer({ min: 0, max: 20 * 86_400 }),
        fc.integer({ min: -120 * 86_400, max: 120 * 86_400 }),
        fc.constantFrom("discount", "custom"),
        (zone, seconds, beforeYaml, afterYaml, replanAfterSeconds, otherOffset, otherKind) => {
          const kinds = [...(typeof afterYaml === "string" ? [] : afterYaml)];
          const afterText =
            typeof afterYaml === "string"
              ? afterYaml
              : beforeYaml.replace(/kind: [a-z-]+,/g, () => `kind: ${kinds.shift()},`);
          const [before, after] = [rulesFrom(beforeYaml), rulesFrom(afterText)];
          const purchasedAt = DateTime.fromSeconds(seconds, { zone: "utc" });
          const event = purchase({
            occurredAt: purchasedAt.toISO({ suppressMilliseconds: true }) ?? "",
            customer: { timezone: zone, consent: { email: true, sms: true, voice: true } },
          });
          const other = (seconds + otherOffset) * 1000;
          const history = {
            previousPurchases: 0,
            recent: { byRule: new Map(), byKind: new Map([[otherKind as "discount", [other]]]) },
          };
          const planned = planFollowUps(event, before, history, purchasedAt);
          const records = recordsOf(planned);
          const now = purchasedAt.plus({ seconds: replanAfterSeconds });
          const first = replanOf("evt", event, records, after, history, now, HORIZON);
          const fresh = planFollowUps(event, after, history, now);
          const promotable = (rec: StepRecord) =>
            mayBePromoted(rec.dueAt, now.toMillis() + 60_000, HORIZON);
          // A step that is (or is about to be) a job stays as planned and holds its kind first:
          // the kind it is sent as, which the send guard takes from the rules then.
          const jobKinds = new Set(
            [...records]
              .filter(([, rec]) => promotable(rec))
              .map(([id]) => findStep(after, id)?.step.kind),
          );
          const problems: string[] = [];
          for (const s of first.steps) {
            const rec = records.get(s.stepId);
            if (!rec || promotable(rec)) continue;
            const f = fresh.steps.find((x) => x.stepId === s.stepId);
            const fs = fresh.skipped.find((x) => x.stepId === s.stepId);
            const kindNow = (f ?? fs)?.kind;
            if (kindNow && jobKinds.has(kindNow)) continue;
            // Superseded by a step the purchase never had (it was skipped when planned), or that
            // is a job, of the kind it was planned with: a re-plan adds no step and changes no job,
            // so this one is the purchase's only one of its kind.
            const holder =
              fs?.code === "superseded" && /^superseded by (\S+):/.exec(fs.reason)?.[1];
            const held = holder ? records.get(holder) : undefined;
            if (holder && (!held || promotable(held))) continue;
            const desc = `${s.stepId} ${s.action} ${s.kind} ${new Date(s.dueAt).toISOString()} fresh ${f ? `${f.kind} ${f.dueAt}` : fs?.code}`;
            if (s.action === "keep" || s.action === "move") {
              if (!f) problems.push(`kept but fresh skipped: ${desc}`);
              else if (Date.parse(f.dueAt) !== s.dueAt) problems.push(`due differs: ${desc}`);
              else if (f.kind !== s.kind) problems.push(`kind differs: ${desc}`);
            } else if (f) problems.push(`ended but fresh plans: ${desc} ${s.reason?.code}`);
          }
          expect(
            problems,
            `planned ${JSON.stringify(planned.steps.map((s) => [s.stepId, s.kind, s.dueAt]))} other ${new Date(other).toISOString()}`,
          ).toEqual([]);
        },
      ),
      { numRuns: 300, seed: 20261207 },
    );
  });
});
