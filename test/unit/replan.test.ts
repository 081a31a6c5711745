import { Duration } from "luxon";
import { describe, expect, it } from "vitest";
import { type Plan, planFollowUps } from "../../src/domain/planner.js";
import { replanStep } from "../../src/domain/replan.js";
import type { RuleSet } from "../../src/domain/rules.js";
import { REPLAN_MARGIN_MS, replanOf } from "../../src/queue/replanner.js";
import { previewByRule } from "../../src/reports/replan-preview.js";
import type { StepRecord } from "../../src/store/step-record.js";
import {
  instant,
  item,
  MON_TO_SAT,
  oneStepRules,
  purchase,
  rulesFrom,
} from "../support/fixtures.js";

/** Bought 2026-11-02 10:00 London; the step was planned 30 days later. */
const event = purchase({
  occurredAt: "2026-11-02T10:00:00Z",
  items: [item("kitchenware", "75.00")],
});
const planned = {
  stepId: "only.step",
  dueAt: Date.parse("2026-12-02T10:00:00Z"),
  channel: "email" as const,
};
const now = instant("2026-11-20T09:00:00Z");
const history = { previousPurchases: 0 };

describe("re-planning one pending step", () => {
  it("keeps a step whose rule and timing are unchanged", () => {
    expect(replanStep(planned, event, history, oneStepRules({ delay: "P30D" }), now)).toEqual({
      action: "keep",
    });
  });

  it("moves a step whose delay, window or channel changed", () => {
    expect(replanStep(planned, event, history, oneStepRules({ delay: "P40D" }), now)).toEqual({
      action: "move",
      dueAt: Date.parse("2026-12-12T10:00:00Z"),
      channel: "email",
      kind: "thank-you",
    });
    const windowed = oneStepRules({ delay: "P30D", window: { start: "14:00", end: "18:00" } });
    expect(replanStep(planned, event, history, windowed, now)).toMatchObject({
      action: "move",
      dueAt: Date.parse("2026-12-02T14:00:00Z"),
    });
    const bySms = oneStepRules({ delay: "P30D", channel: "sms" });
    expect(replanStep(planned, event, history, bySms, now)).toMatchObject({
      action: "move",
      dueAt: planned.dueAt,
      channel: "sms",
    });
  });

  it("gives a step whose kind changed under the same id its new kind, where it stays", () => {
    // Planned as a custom step; the rules now call the step (same id, same time) a thank-you.
    // Before, it was kept, its record (and the reports, which count by it) still saying custom.
    expect(
      replanStep(
        { ...planned, kind: "custom" },
        event,
        history,
        oneStepRules({ delay: "P30D" }),
        now,
      ),
    ).toEqual({ action: "move", dueAt: planned.dueAt, channel: "email", kind: "thank-you" });
  });

  it("skips a step that would move within the cooldown of another purchase's step, and moves one clear of it", () => {
    const base = oneStepRules({ delay: "P40D" });
    const cooled: RuleSet = {
      ...base,
      rules: base.rules.map((rule) => ({ ...rule, cooldown: Duration.fromISO("P30D") })),
    };
    const withOther = (dueAt: string) => ({
      ...history,
      recent: { byRule: new Map([["only", [Date.parse(dueAt)]]]), byKind: new Map() },
    });
    // Moving to 12 December: another purchase's step is due 1 January, 20 days after.
    expect(replanStep(planned, event, withOther("2027-01-01T10:00:00Z"), cooled, now)).toEqual({
      action: "skip",
      code: "cooldown",
      reason:
        "a thank-you of rule only is planned for this customer on 2027-01-01, within the cooldown of P30D",
    });
    expect(
      replanStep(planned, event, withOther("2027-02-01T10:00:00Z"), cooled, now),
    ).toMatchObject({ action: "move", dueAt: Date.parse("2026-12-12T10:00:00Z") });
  });

  it("cancels a step whose rule or step is gone, or whose rule no longer matches", () => {
    const renamed = oneStepRules({ delay: "P30D" });
    expect(
      replanStep({ ...planned, stepId: "gone.step" }, event, history, renamed, now),
    ).toMatchObject({ action: "cancel", code: "rule-removed" });
    const raised = {
      ...renamed,
      rules: renamed.rules.map((rule) => ({
        ...rule,
        when: {
          type: "total" as const,
          min: { values: [{ minor: 10_000, currency: "GBP" }] },
        },
      })),
    };
    const decision = replanStep(planned, event, history, raised, now);
    expect(decision).toMatchObject({ action: "cancel", code: "no-longer-matches" });
    expect(decision.action === "cancel" && decision.reason).toMatch(
      /^no longer matches: rule only: /,
    );
  });

  it("skips a step whose new due time is past its grace period, and moves one within it to now", () => {
    const earlier = oneStepRules({ delay: "P1D", grace: "P7D" });
    expect(replanStep(planned, event, history, earlier, now)).toMatchObject({
      action: "skip",
      code: "past-due",
    });
    const lenient = oneStepRules({ delay: "P1D", grace: "P30D" });
    expect(replanStep(planned, event, history, lenient, now)).toMatchObject({
      action: "move",
      dueAt: now.toMillis(),
    });
  });

  it("gives a step planned late the end of the grace period the newer rules count", () => {
    // Bought 2 November 10:00, taken in at 20:00: the thank-you due at 11:00 goes at the next
    // opening (3 November 09:00), its grace period of a day ending on the 3rd at 11:00.
    const window = { start: "09:00", end: "17:00" };
    const daily = oneStepRules({ delay: "PT1H", window, grace: "P1D" });
    const late = planFollowUps(event, daily, history, instant("2026-11-02T20:00:00Z")).steps[0];
    expect([late?.dueAt, late?.graceEndsAt]).toEqual([
      "2026-11-03T09:00:00Z",
      "2026-11-03T11:00:00Z",
    ]);
    const pending = {
      stepId: "only.step",
      dueAt: Date.parse(late?.dueAt ?? ""),
      graceEndsAt: Date.parse(late?.graceEndsAt ?? ""),
      channel: "email" as const,
    };
    const at = instant("2026-11-02T21:00:00Z");
    // The rules give thank-yous a week: same due time, the grace period ends on the 9th, as a
    // plan made now would have it. Before, the step was kept with its end of the 3rd, and the
    // send guard skipped it past due after then (a frequency cap, say, holding it a day).
    const weekly = oneStepRules({ delay: "PT1H", window, grace: "P7D" });
    expect(
      planFollowUps(event, weekly, history, at).steps.map((s) => [s.dueAt, s.graceEndsAt]),
    ).toEqual([["2026-11-03T09:00:00Z", "2026-11-09T11:00:00Z"]]);
    expect(replanStep(pending, event, history, weekly, at)).toEqual({
      action: "move",
      dueAt: pending.dueAt,
      graceEndsAt: Date.parse("2026-11-09T11:00:00Z"),
      channel: "email",
      kind: "thank-you",
    });
    // Shorter, but still past the opening: it ends on the 3rd at 10:00.
    const shorter = oneStepRules({ delay: "PT1H", window, grace: "PT23H" });
    expect(replanStep(pending, event, history, shorter, at)).toMatchObject({
      action: "move",
      graceEndsAt: Date.parse("2026-11-03T10:00:00Z"),
    });
    // The same rules again: kept.
    expect(replanStep(pending, event, history, daily, at)).toEqual({ action: "keep" });
  });

  it("is previewed as unchanged when it keeps its due time (a new grace end or channel)", () => {
    expect(
      previewByRule([
        { ruleId: "only", action: "move", shiftMs: 0 },
        { ruleId: "only", action: "keep", shiftMs: 0 },
        { ruleId: "only", action: "move", shiftMs: 60_000 },
      ]),
    ).toEqual([
      {
        ruleId: "only",
        unchanged: 2,
        earlier: { count: 0 },
        later: { count: 1, smallest: "PT1M", largest: "PT1M" },
        cancelled: 0,
        skipped: 0,
        reasons: {},
      },
    ]);
  });
});

describe("re-planning a purchase's steps near the promotion horizon", () => {
  const HORIZON = 5 * 60_000;
  const rules = oneStepRules({ delay: "P40D" });
  // 09:04:30: the horizon reaches 09:09:30, the minute beyond it 09:10:30 (buckets of ten minutes).
  const at = instant("2026-11-20T09:04:30Z");
  const recordDue = (iso: string) =>
    new Map([
      [
        "only.step",
        {
          state: "scheduled" as const,
          dueAt: Date.parse(iso),
          attempts: 0,
          takeovers: 0,
          resends: 0,
          retries: 0,
        },
      ],
    ]);
  const actionOf = (dueIso: string, promoting?: ReadonlySet<string>) =>
    replanOf("evt", event, recordDue(dueIso), rules, history, at, HORIZON, promoting).steps[0]
      ?.action;

  it("leaves a step a promoter may have made a job (within the horizon and a minute more) as it is", () => {
    expect(REPLAN_MARGIN_MS).toBe(60_000);
    expect(actionOf("2026-11-20T09:08:00Z")).toBe("keep");
    // The bucket of 09:10 starts beyond the horizon, within the minute more.
    expect(actionOf("2026-11-20T09:12:00Z")).toBe("keep");
    expect(actionOf("2026-11-20T09:21:00Z")).toBe("move");
  });

  it("plans again the steps the asking promoter holds, due within the horizon or not", () => {
    expect(actionOf("2026-11-20T09:08:00Z", new Set(["only.step"]))).toBe("move");
    expect(actionOf("2026-11-20T09:08:00Z", new Set(["other.step"]))).toBe("keep");
  });
});

describe("re-planning a call's fallback", () => {
  /** A call `delay` after the purchase, and an SMS `after` it (a day) if it was not answered. */
  const callRules = (delay: string, after = "P1D", grace?: string) =>
    rulesFrom(
      [
        "version: 1",
        "defaults: { timezone: Europe/London, currency: GBP, locale: en-GB }",
        ...(grace ? [`gracePeriods: { check-in: ${grace} }`] : []),
        "sendWindows:",
        `  voice: { start: "09:00", end: "20:00", days: [${MON_TO_SAT.join(", ")}] }`,
        `  sms: { start: "09:00", end: "20:00", days: [${MON_TO_SAT.join(", ")}] }`,
        "rules:",
        "  - id: calls",
        "    steps:",
        `      - { kind: check-in, channel: voice, template: check-in-call, delay: ${delay},`,
        `          fallback: { channel: sms, template: check-in, after: ${after} } }`,
        "",
      ].join("\n"),
    );
  const rules = callRules("P7D");
  const HORIZON = 5 * 60_000;
  // Bought Monday 2 November; the call was due Monday 9 November 10:00.
  const bought = purchase({
    occurredAt: "2026-11-02T10:00:00Z",
    customer: { phone: "+447400123456" },
  });
  const recordsOf = (plan: Plan) =>
    new Map(
      plan.steps.map((s) => [
        s.stepId,
        {
          state: "scheduled" as const,
          dueAt: Date.parse(s.dueAt),
          // As intake stores it: the steps of a purchase taken in late carry their grace's end.
          ...(s.graceEndsAt !== undefined && { graceEndsAt: Date.parse(s.graceEndsAt) }),
          attempts: 0,
          takeovers: 0,
          resends: 0,
          retries: 0,
        },
      ]),
    );
  /** The steps of `plan`, as scheduled, re-planned under `rules` at `at`: id, action, due time. */
  const replanned = (plan: Plan, rules: RuleSet, at: string) =>
    replanOf("evt", bought, recordsOf(plan), rules, history, instant(at), HORIZON).steps.map(
      (s) => [s.stepId, s.action, new Date(s.dueAt).toISOString().replace(".000Z", "Z")],
    );
  const dueTimes = (plan: Plan) => plan.steps.map((s) => [s.stepId, s.dueAt]);

  it("counts `after` from a call planned late, not from the call's time under the rules", () => {
    // The event came in on Thursday evening, within the grace period: the call goes at Friday's
    // opening, its fallback a day after that.
    const late = planFollowUps(bought, rules, history, instant("2026-11-12T21:00:00Z"));
    expect(dueTimes(late)).toEqual([
      ["calls.check-in", "2026-11-13T09:00:00Z"],
      ["calls.check-in-fallback", "2026-11-14T09:00:00Z"],
    ]);
    // Rules reloaded on Friday at 08:00: both stay, where the planner would put them then. The
    // fallback does not go to Friday 09:00 beside its call (a day after the call's time under
    // the rules, past but within its grace period).
    expect(replanned(late, rules, "2026-11-13T08:00:00Z")).toEqual([
      ["calls.check-in", "keep", "2026-11-13T09:00:00Z"],
      ["calls.check-in-fallback", "keep", "2026-11-14T09:00:00Z"],
    ]);
    expect(
      dueTimes(planFollowUps(bought, rules, history, instant("2026-11-13T08:00:00Z"))),
    ).toEqual(dueTimes(late));
  });

  it("counts `after` from a call left where it was, within the promotion horizon", () => {
    const onTime = planFollowUps(bought, rules, history, instant(bought.occurredAt));
    expect(dueTimes(onTime)).toEqual([
      ["calls.check-in", "2026-11-09T10:00:00Z"],
      ["calls.check-in-fallback", "2026-11-10T10:00:00Z"],
    ]);
    // The call's delay grows by two days minutes before the call: the call is a job already and
    // goes as planned, so its fallback stays a day after it, not a day after the call's new time.
    const longer = callRules("P9D");
    expect(replanned(onTime, longer, "2026-11-09T09:58:00Z")).toEqual([
      ["calls.check-in", "keep", "2026-11-09T10:00:00Z"],
      ["calls.check-in-fallback", "keep", "2026-11-10T10:00:00Z"],
    ]);
    // Re-planned a day earlier, the call moves and its fallback with it.
    expect(replanned(onTime, longer, "2026-11-08T09:00:00Z")).toEqual([
      ["calls.check-in", "move", "2026-11-11T10:00:00Z"],
      ["calls.check-in-fallback", "move", "2026-11-12T10:00:00Z"],
    ]);
  });

  it("times a fallback alike in every generation once its call is skipped or cancelled", () => {
    const onTime = planFollowUps(bought, rules, history, instant(bought.occurredAt));
    // The call would move to 3 November, past its hour of grace on the 5th: skipped, where it
    // was (the 9th); the fallback, ten days after it, moves to the 19th.
    const sooner = callRules("P1D", "P10D", "PT1H");
    const at = instant("2026-11-05T10:00:00Z");
    const first = replanOf("evt", bought, recordsOf(onTime), sooner, history, at, HORIZON);
    const moved = first.steps.find((s) => s.stepId === "calls.check-in-fallback");
    expect(first.steps.map((s) => [s.stepId, s.action])).toEqual([
      ["calls.check-in", "skip"],
      ["calls.check-in-fallback", "move"],
    ]);
    expect(new Date(moved?.dueAt ?? 0).toISOString()).toBe("2026-11-19T10:00:00.000Z");
    // The same rules loaded again as a newer generation (a comment edited): nothing changes.
    // Before, the first re-plan timed the fallback from the call's time under the rules (the
    // 13th), and every later one from the skipped call's record (the 19th): it moved again.
    const after = new Map(
      [...recordsOf(onTime)].map(([id, record]) => [
        id,
        id === "calls.check-in"
          ? { ...record, state: "skipped" as StepRecord["state"] }
          : { ...record, dueAt: moved?.dueAt ?? 0 },
      ]),
    );
    const again = replanOf("evt", bought, after, sooner, history, at, HORIZON);
    expect(again.steps.map((s) => [s.stepId, s.action])).toEqual([
      ["calls.check-in-fallback", "keep"],
    ]);
    // Likewise a call an operator cancelled.
    const cancelled = new Map(after);
    const call = after.get("calls.check-in");
    if (call) cancelled.set("calls.check-in", { ...call, state: "cancelled" });
    expect(
      replanOf("evt", bought, cancelled, sooner, history, at, HORIZON).steps.map((s) => s.action),
    ).toEqual(["keep"]);
  });
});

describe("re-planning keeps one step of a kind beside a step that is a job already", () => {
  const HORIZON = 5 * 60_000;
  /** Two rules for every purchase: `first`'s step due in a day, `second`'s in 30 days. */
  const twoRules = (firstKind: string | undefined, secondKind: string) =>
    rulesFrom(
      [
        "version: 1",
        "defaults: { timezone: Europe/London, currency: GBP, locale: en-GB }",
        "rules:",
        ...(firstKind === undefined
          ? []
          : [
              "  - id: first",
              "    steps:",
              `      - { id: soon, kind: ${firstKind}, channel: email, template: thank-you, delay: P1D }`,
            ]),
        "  - id: second",
        "    steps:",
        `      - { id: later, kind: ${secondKind}, channel: email, template: thank-you, delay: P30D }`,
        "",
      ].join("\n"),
    );
  const bought = purchase({ occurredAt: "2026-11-02T10:00:00Z" });
  const scheduled = (iso: string, kind: StepRecord["kind"]) => ({
    state: "scheduled" as const,
    dueAt: Date.parse(iso),
    channel: "email" as const,
    kind,
    attempts: 0,
    takeovers: 0,
    resends: 0,
    retries: 0,
  });
  // Planned as a discount a day after the purchase and a check-in 30 days after it.
  const records = new Map<string, StepRecord>([
    ["first.soon", scheduled("2026-11-03T10:00:00Z", "discount")],
    ["second.later", scheduled("2026-12-02T10:00:00Z", "check-in")],
  ]);
  // Two minutes before the first step: a job already, sent as the rules at send time say.
  const at = instant("2026-11-03T09:58:00Z");
  const actions = (rules: RuleSet) =>
    replanOf("evt", bought, records, rules, history, at, HORIZON).steps.map((s) => [
      s.stepId,
      s.action,
      s.reason?.code,
    ]);

  it("takes the job's kind as the rules now give it, which it is sent as", () => {
    // The first rule's step (a job) is now a check-in: it goes out as one, so the second rule's
    // check-in is the purchase's second. Before, the job held `discount` (its record's kind), and
    // the purchase got two check-ins.
    expect(actions(twoRules("check-in", "check-in"))).toEqual([
      ["first.soon", "keep", undefined],
      ["second.later", "skip", "superseded"],
    ]);
  });

  it("lets a job whose rule is gone hold no kind: the send guard skips it", () => {
    // The first rule is taken out: its job is skipped (`rule-removed`) when due and sends
    // nothing, so the check-in of the second rule is the purchase's one. Before, the job held
    // its record's kind and the check-in was skipped: no check-in at all.
    // Planned as a check-in and a discount; the discount (same id) is now a check-in.
    const gone = new Map<string, StepRecord>([
      ["first.soon", scheduled("2026-11-03T10:00:00Z", "check-in")],
      ["second.later", scheduled("2026-12-02T10:00:00Z", "discount")],
    ]);
    expect(
      replanOf(
        "evt",
        bought,
        gone,
        twoRules(undefined, "check-in"),
        history,
        at,
        HORIZON,
      ).steps.map((s) => [s.stepId, s.action, s.reason?.code]),
    ).toEqual([
      ["first.soon", "keep", undefined],
      ["second.later", "move", undefined],
    ]);
  });
});

describe("re-planning keeps one step of a kind as planning chooses it", () => {
  const HORIZON = 5 * 60_000;
  /** `first`'s check-in (on `channel`) 10 days after the purchase, `second`'s step in 30. */
  const rules = (channel: string, secondKind: string) =>
    rulesFrom(
      [
        "version: 1",
        "defaults: { timezone: Europe/London, currency: GBP, locale: en-GB }",
        "rules:",
        "  - id: first",
        "    steps:",
        `      - { id: soon, kind: check-in, channel: ${channel}, template: thank-you, delay: P10D }`,
        "  - id: second",
        "    steps:",
        `      - { id: later, kind: ${secondKind}, channel: email, template: thank-you, delay: P30D }`,
        "",
      ].join("\n"),
    );
  // No phone number: reachable by email only.
  const bought = purchase({ occurredAt: "2026-11-02T10:00:00Z", customer: { phone: undefined } });
  const at = instant("2026-11-03T10:00:00Z");

  it("lets a step that cannot reach the customer on its new channel hold no kind, as planning", () => {
    const before = rules("email", "discount");
    const planned = planFollowUps(bought, before, history, instant(bought.occurredAt));
    const records = new Map<string, StepRecord>(
      planned.steps.map((s) => [
        s.stepId,
        {
          state: "scheduled",
          dueAt: Date.parse(s.dueAt),
          channel: s.channel,
          kind: s.kind,
          attempts: 0,
          takeovers: 0,
          resends: 0,
          retries: 0,
        },
      ]),
    );
    // The check-in is now a text (the customer has no phone: planning would skip it, no-contact,
    // and it claims no kind), and the discount a check-in email.
    const after = rules("sms", "check-in");
    const fresh = planFollowUps(bought, after, history, at);
    expect(fresh.steps.map((s) => [s.stepId, s.kind])).toEqual([["second.later", "check-in"]]);
    // The re-plan leaves the check-in text (its send is decided when due: no phone, skipped) and
    // keeps the check-in email, which the customer gets. Before, the text held the kind and the
    // email was skipped as superseded: no check-in at all.
    const replanned = replanOf("evt", bought, records, after, history, at, HORIZON);
    expect(replanned.steps.map((s) => [s.stepId, s.action, s.kind, s.reason?.code])).toEqual([
      ["first.soon", "move", "check-in", undefined],
      ["second.later", "move", "check-in", undefined],
    ]);
  });
});
