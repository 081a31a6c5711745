import { DateTime } from "luxon";
import { type Channel, instantMillis, type PurchaseCompleted } from "./events.js";
import {
  type CustomerHistory,
  matchCondition,
  type Rule,
  type RuleSet,
  type SendWindow,
  type StepKind,
  type StepSpec,
} from "./rules.js";
import { NoSendWindowError, nextSendWindow } from "./send-window.js";
import { stepIdOf } from "./step-ref.js";
import { plusCalendar, zoneFor } from "./time-zone.js";

/** A follow-up to schedule: when it is due and what it is. */
export interface PlannedStep {
  /** `<ruleId>.<step id>`: stable across re-plans and rule edits that keep the ids. */
  readonly stepId: string;
  readonly ruleId: string;
  readonly kind: StepKind;
  readonly channel: Channel;
  readonly template: string;
  readonly purpose: "transactional" | "marketing";
  /** Due instant, UTC ISO-8601. */
  readonly dueAt: string;
  /** The same instant on the customer's wall clock, ISO-8601 with their offset. */
  readonly localDueAt: string;
  /** A fallback: the call step (`<ruleId>.<stepId>`) it replaces when that call is not answered. */
  readonly fallbackOf?: string;
  /**
   * A coalescing thank-you: the customer's other purchases until this instant (UTC ISO-8601, the
   * purchase plus the rule's coalesce window) share it.
   */
  readonly coalesceUntil?: string;
  /**
   * Only for a step planned after its due time had passed (an event that arrived late, a re-plan
   * that moved it into the past): when its grace period ends, UTC ISO-8601. It goes at the next
   * send-window opening before then, and the send-time guard skips it after then, however often
   * it is deferred (its grace period counts from its due time under the rules, not from `dueAt`).
   */
  readonly graceEndsAt?: string;
}

/** Machine-readable reason codes for skipped steps (metrics and reports group by them). */
export type SkipCode =
  | "no-rule-matched"
  | "condition-not-met"
  | "stopped-by-final-rule"
  | "superseded"
  | "no-contact"
  | "no-consent"
  | "opted-out"
  | "past-due"
  | "no-send-window"
  | "no-call"
  | "cooldown"
  | "coalesced";

/** A step the planner did not schedule, and why. */
export interface SkippedStep {
  readonly ruleId: string | null;
  readonly stepId: string | null;
  readonly kind: StepKind | null;
  readonly code: SkipCode;
  /** Plain words for operators and owners. */
  readonly reason: string;
}

export interface Plan {
  readonly eventId: string;
  readonly orderId: string;
  readonly customerId: string;
  /** The zone all local times are in, and where it came from. */
  readonly timezone: string;
  readonly timezoneSource: "customer" | "store" | "default";
  readonly rulesVersion: string;
  readonly steps: readonly PlannedStep[];
  readonly skipped: readonly SkippedStep[];
}

const ISO = { suppressMilliseconds: true } as const;

/** What the caller knows beyond the event and history (kept by the stores, passed in). */
export interface PlanOptions {
  /** Channels this customer or their address opted out of. */
  readonly suppressedChannels?: ReadonlySet<Channel>;
  /** Channels on which they opted out of offers only (marketing steps); the rest still go. */
  readonly marketingSuppressedChannels?: ReadonlySet<Channel>;
}

/**
 * Decides which follow-ups a purchase gets and exactly when. Pure: the same event, rules, history
 * and `now` always give the same plan.
 *
 * Rules are considered by priority (then file order). Every matching rule offers its steps; the
 * first step of each kind that can actually be planned wins, later ones of that kind are
 * superseded. A matching `final` rule ends the search.
 */
export function planFollowUps(
  event: PurchaseCompleted,
  rules: RuleSet,
  history: CustomerHistory,
  now: DateTime,
  options: PlanOptions = {},
): Plan {
  const { zone, source } = customerZone(event, rules);
  const purchasedAt = purchaseTime(event, zone);
  const steps: PlannedStep[] = [];
  const skipped: SkippedStep[] = [];
  const claimed = new Map<StepKind, string>();
  let stoppedBy: Rule | undefined;
  let anyMatched = false;

  for (const rule of rules.rules) {
    if (stoppedBy) {
      const reason = `rule ${stoppedBy.id} matched first and is final`;
      for (const step of rule.steps)
        skipped.push(skip(rule, step, "stopped-by-final-rule", reason));
      continue;
    }
    const match = matchCondition(rule.when, event, history);
    if (!match.matched) {
      for (const step of rule.steps)
        skipped.push(skip(rule, step, "condition-not-met", match.reason));
      continue;
    }
    anyMatched = true;
    if (rule.final) stoppedBy = rule;
    for (const step of rule.steps) {
      if (step.fallbackOf !== undefined) {
        const planned = planFallback(
          rule,
          step,
          step.fallbackOf,
          steps,
          event,
          rules,
          options,
          zone,
          (s, callDue) => dueTime(purchasedAt, s, zone, rules, now, callDue),
        );
        if ("code" in planned) skipped.push(planned);
        else steps.push(planned);
        continue;
      }
      const holder = claimed.get(step.kind);
      if (holder) {
        skipped.push(
          skip(rule, step, "superseded", `superseded by ${holder}: one ${step.kind} per purchase`),
        );
        continue;
      }
      const blocked = stepProblem(event, step, rules, options);
      if (blocked) {
        skipped.push(skip(rule, step, blocked.code, blocked.reason));
        continue;
      }
      const timing = dueTime(purchasedAt, step, zone, rules, now);
      if (!timing.ok) {
        skipped.push(skip(rule, step, timing.code, timing.reason));
        continue;
      }
      const cooling = cooldownProblem(rule, step, timing.due, rules, history);
      if (cooling) {
        skipped.push(skip(rule, step, "cooldown", cooling));
        continue;
      }
      claimed.set(step.kind, stepIdOf(rule, step));
      const planned = plannedStep(rule, step, timing);
      steps.push(
        step.coalesce
          ? {
              ...planned,
              coalesceUntil: plusCalendar(purchasedAt, step.coalesce).toUTC().toISO(ISO) ?? "",
            }
          : planned,
      );
    }
  }
  if (!anyMatched) {
    skipped.unshift({
      ruleId: null,
      stepId: null,
      kind: null,
      code: "no-rule-matched",
      reason: "no rule matched this purchase",
    });
  }
  // By instant, not by text: a whole second is written without a fraction (10:00:00Z), which as
  // text sorts after a later time of the same second (10:00:00.500Z).
  steps.sort(
    (a, b) => Date.parse(a.dueAt) - Date.parse(b.dueAt) || a.stepId.localeCompare(b.stepId),
  );
  return {
    eventId: event.id,
    orderId: event.orderId,
    customerId: event.customer.id,
    timezone: zone,
    timezoneSource: source,
    rulesVersion: rules.version,
    steps,
    skipped,
  };
}

/**
 * Why a step would come too soon before or after one of its rule (`cooldown`) or kind
 * (`cooldowns`) planned for another of the customer's purchases; undefined when it may go.
 */
export function cooldownProblem(
  rule: Rule,
  step: StepSpec,
  due: DateTime,
  rules: RuleSet,
  history: CustomerHistory,
): string | undefined {
  const checks = [
    { others: history.recent?.byRule.get(rule.id), span: rule.cooldown, of: `rule ${rule.id}` },
    {
      others: history.recent?.byKind.get(step.kind),
      span: rules.cooldowns[step.kind],
      of: `kind ${step.kind}`,
    },
  ];
  for (const { others, span, of } of checks) {
    if (span === undefined) continue;
    // Every other purchase's step, not only the latest due: one due earlier may be nearer.
    for (const other of others ?? []) {
      const previous = DateTime.fromMillis(other, { zone: due.zone });
      // Counted like a delay, either way: a repeated local time is its first occurrence.
      if (due < plusCalendar(previous, span) && previous < plusCalendar(due, span)) {
        return `a ${step.kind} of ${of} is planned for this customer on ${previous.toISODate()}, within the cooldown of ${span.toISO()}`;
      }
    }
  }
  return undefined;
}

/** Why a step cannot go to this customer at all: no contact, opted out, or no consent. */
function stepProblem(
  event: PurchaseCompleted,
  step: StepSpec,
  rules: RuleSet,
  options: PlanOptions,
): { code: SkipCode; reason: string } | undefined {
  return (
    contactProblem(event, step) ??
    (options.suppressedChannels?.has(step.channel)
      ? {
          code: "opted-out" as const,
          reason: `customer opted out of ${CHANNEL_NAMES[step.channel]} messages`,
        }
      : undefined) ??
    (step.purpose === "marketing" && options.marketingSuppressedChannels?.has(step.channel)
      ? {
          code: "opted-out" as const,
          reason: `customer opted out of ${CHANNEL_NAMES[step.channel]} offers`,
        }
      : undefined) ??
    consentProblem(event, step, rules)
  );
}

/**
 * A call step's fallback is planned with its call and only then (it never competes for its kind);
 * whether it goes out is decided when it falls due, from how the call ended.
 */
function planFallback(
  rule: Rule,
  step: StepSpec,
  callStepId: string,
  planned: readonly PlannedStep[],
  event: PurchaseCompleted,
  rules: RuleSet,
  options: PlanOptions,
  zone: string,
  timeOf: (step: StepSpec, callDue: DateTime) => Timing,
): PlannedStep | SkippedStep {
  const callId = stepIdOf(rule, { id: callStepId });
  const call = planned.find((other) => other.stepId === callId);
  if (!call) {
    return skip(rule, step, "no-call", `a fallback of ${callId}, which is not planned`);
  }
  const blocked = stepProblem(event, step, rules, options);
  if (blocked) return skip(rule, step, blocked.code, blocked.reason);
  // From the call as planned: a call planned later than its time (an event that came late) takes
  // its fallback with it.
  const callDue = DateTime.fromMillis(Date.parse(call.dueAt), { zone: zoneFor(zone) });
  const timing = timeOf(step, callDue);
  if (!timing.ok) return skip(rule, step, timing.code, timing.reason);
  return { ...plannedStep(rule, step, timing), fallbackOf: callId };
}

/** A fallback's call step, in the rule that has both. */
function callOf(rule: Rule, step: StepSpec): StepSpec | undefined {
  return step.fallbackOf === undefined
    ? undefined
    : rule.steps.find((other) => other.id === step.fallbackOf);
}

function plannedStep(
  rule: Rule,
  step: StepSpec,
  { due, graceEndsAt }: { due: DateTime; graceEndsAt?: DateTime },
): PlannedStep {
  return {
    stepId: stepIdOf(rule, step),
    ruleId: rule.id,
    kind: step.kind,
    channel: step.channel,
    template: step.template,
    purpose: step.purpose,
    dueAt: due.toUTC().toISO(ISO) ?? "",
    localDueAt: due.toISO(ISO) ?? "",
    ...(graceEndsAt && { graceEndsAt: graceEndsAt.toUTC().toISO(ISO) ?? "" }),
  };
}

/**
 * When a call's fallback may go at the earliest: `after` from the call's due time, its send
 * window included, counted in milliseconds as the worker counts it from the call's end
 * (decideFallback). Not from the purchase: a call that its window moves from Sunday to Monday
 * morning moves its fallback with it, instead of leaving it at the call's own time.
 */
function fallbackStart(callDue: DateTime, step: StepSpec): DateTime {
  return callDue.plus(step.fallbackAfter?.toMillis() ?? 0);
}

/** A call step's due time from the purchase (delay, coalescing wait, send window), never late. */
function callDueTime(
  purchasedAt: DateTime,
  call: StepSpec,
  zone: string,
  rules: RuleSet,
): DateTime {
  const callWindow = call.sendWindow ?? rules.sendWindows[call.channel];
  return nextSendWindow(earliestDue(purchasedAt, call), zone, callWindow, rules.holidays);
}

/**
 * The purchase plus the step's delay; a coalescing thank-you waits for its window's end as well
 * (the customer may buy again within it). Before the send window.
 */
function earliestDue(purchasedAt: DateTime, step: StepSpec): DateTime {
  const delayed = plusCalendar(purchasedAt, step.delay);
  const windowEnds = step.coalesce && plusCalendar(purchasedAt, step.coalesce);
  return windowEnds && windowEnds > delayed ? windowEnds : delayed;
}

/** The zone local times are computed in: the customer's, else the store's, else the default. */
export function customerZone(
  event: Pick<PurchaseCompleted, "customer" | "store">,
  rules: RuleSet,
): { zone: string; source: Plan["timezoneSource"] } {
  if (event.customer.timezone) return { zone: event.customer.timezone, source: "customer" };
  if (event.store?.timezone) return { zone: event.store.timezone, source: "store" };
  return { zone: rules.defaults.timezone, source: "default" };
}

/**
 * A step's due time, or why it has none. `graceEndsAt` only when its due time had passed: the
 * next opening it goes at is then not the due time its grace period counts from.
 */
type Timing =
  | { ok: true; due: DateTime; graceEndsAt?: DateTime }
  | { ok: false; code: SkipCode; reason: string };

/**
 * When one step of a purchase falls due under `rules`, as `planFollowUps` times it (delay from
 * the purchase in the customer's zone, send window, grace period against `now`): for re-planning.
 * A fallback counts `after` from `callDueAt`, its call's due time as planned (epoch ms: a call
 * planned late, or kept where it was, is not where its delay alone would put it); without it,
 * from the call's due time under `rules`.
 */
export function stepTiming(
  event: PurchaseCompleted,
  step: StepSpec,
  rules: RuleSet,
  now: DateTime,
  callDueAt?: number,
): Timing {
  const { zone } = customerZone(event, rules);
  const purchasedAt = purchaseTime(event, zone);
  if (step.fallbackOf !== undefined && callDueAt !== undefined) {
    const callDue = DateTime.fromMillis(callDueAt, { zone: purchasedAt.zone });
    return dueTime(purchasedAt, step, zone, rules, now, callDue);
  }
  const rule = rules.rules.find((candidate) => candidate.steps.includes(step));
  return dueTime(purchasedAt, step, zone, rules, now, rule && callOf(rule, step));
}

/**
 * Purchase time plus the delay, in calendar terms in the customer's zone, then moved to the next
 * send-window opening. A due time in the past is sent at the next opening if it is within the
 * kind's grace period, and skipped otherwise.
 */
function dueTime(
  purchasedAt: DateTime,
  step: StepSpec,
  zone: string,
  rules: RuleSet,
  now: DateTime,
  /** A fallback's call: its step (timed from the purchase) or its due time as planned. */
  call?: StepSpec | DateTime,
): Timing {
  const window = step.sendWindow ?? rules.sendWindows[step.channel];
  try {
    return windowedDueTime(purchasedAt, step, zone, rules, now, window, call);
  } catch (error) {
    if (!(error instanceof NoSendWindowError)) throw error;
    return { ok: false, code: "no-send-window", reason: error.message };
  }
}

function windowedDueTime(
  purchasedAt: DateTime,
  step: StepSpec,
  zone: string,
  rules: RuleSet,
  now: DateTime,
  window: SendWindow,
  call: StepSpec | DateTime | undefined,
): Timing {
  const earliest =
    call === undefined
      ? earliestDue(purchasedAt, step)
      : fallbackStart(
          DateTime.isDateTime(call) ? call : callDueTime(purchasedAt, call, zone, rules),
          step,
        );
  const due = nextSendWindow(earliest, zone, window, rules.holidays);
  if (due >= now) return { ok: true, due };
  const grace = rules.gracePeriods[step.kind];
  // Counted like a delay: a repeated local time is its first occurrence.
  const deadline = plusCalendar(due, grace);
  if (deadline < now) {
    return {
      ok: false,
      code: "past-due",
      reason: `past due: was due ${due.toISO(ISO)}, more than ${grace.toISO()} (the ${step.kind} grace period) ago`,
    };
  }
  // Late, but within its grace period: it goes at the next opening, if that comes before the
  // grace period ends (a step planned late must not gain a second grace period from there).
  const next = nextSendWindow(now, zone, window, rules.holidays);
  if (next > deadline) {
    return {
      ok: false,
      code: "past-due",
      reason: `past due: was due ${due.toISO(ISO)}, and its ${step.kind} grace period (${grace.toISO()}) ends before the next send window opens`,
    };
  }
  return { ok: true, due: next, graceEndsAt: deadline };
}

const CHANNEL_NAMES: Record<Channel, string> = { email: "email", sms: "SMS", voice: "voice call" };

/**
 * Why a step cannot reach this customer as their purchase says (no contact for its channel, its
 * consent declined or missing): planning skips it, and it claims no kind. Opt-outs are not asked.
 */
export function unreachable(
  event: PurchaseCompleted,
  step: StepSpec,
  rules: RuleSet,
): { code: SkipCode; reason: string } | undefined {
  return contactProblem(event, step) ?? consentProblem(event, step, rules);
}

function contactProblem(
  event: PurchaseCompleted,
  step: StepSpec,
): { code: SkipCode; reason: string } | undefined {
  if (step.channel === "email") {
    return event.customer.email
      ? undefined
      : { code: "no-contact", reason: "no email address for email" };
  }
  return event.customer.phone
    ? undefined
    : { code: "no-contact", reason: `no phone number for ${CHANNEL_NAMES[step.channel]}` };
}

function consentProblem(
  event: PurchaseCompleted,
  step: StepSpec,
  rules: RuleSet,
): { code: SkipCode; reason: string } | undefined {
  const flag = event.customer.consent?.[step.channel];
  if (flag === false) {
    return {
      code: "no-consent",
      reason: `customer declined ${CHANNEL_NAMES[step.channel]} messages`,
    };
  }
  const needsConsent = step.purpose === "marketing" || rules.defaults.transactionalNeedsConsent;
  if (needsConsent && flag !== true) {
    return {
      code: "no-consent",
      reason: `no consent for ${step.purpose} ${CHANNEL_NAMES[step.channel]} messages`,
    };
  }
  return undefined;
}

function skip(rule: Rule, step: StepSpec, code: SkipCode, reason: string): SkippedStep {
  return { ruleId: rule.id, stepId: stepIdOf(rule, step), kind: step.kind, code, reason };
}

/** The purchase instant in `zone` (occurredAt always carries an offset: events.ts requires one). */
function purchaseTime(event: PurchaseCompleted, zone: string): DateTime {
  // occurredAt is validated (an instant with its offset): Date.parse reads it as luxon would.
  return DateTime.fromMillis(instantMillis(event.occurredAt), { zone: zoneFor(zone) });
}
