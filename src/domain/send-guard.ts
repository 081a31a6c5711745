import { DateTime } from "luxon";
import { consentFor, type StatedConsent } from "./consent-timeline.js";
import type { Channel, PurchaseCompleted } from "./events.js";
import { customerZone } from "./planner.js";
import type { Rule, RuleSet, StepKind, StepSpec } from "./rules.js";
import { NoSendWindowError, nextSendWindow } from "./send-window.js";
import { findStep } from "./step-ref.js";
import { plusCalendar, zoneFor } from "./time-zone.js";

/** Reason codes for steps skipped at send time (metrics and reports group by them). */
export type GuardSkipCode =
  | "rule-removed"
  | "channel-unavailable"
  | "no-contact"
  | "no-consent"
  | "opted-out"
  | "past-due"
  | "no-send-window";

/** What to do with a due follow-up, decided again at send time from the current rules. */
export type SendDecision =
  | { readonly action: "send"; readonly rule: Rule; readonly step: StepSpec; readonly zone: string }
  | { readonly action: "skip"; readonly code: GuardSkipCode; readonly reason: string }
  | { readonly action: "defer"; readonly until: DateTime; readonly reason: string };

/** What the guard reads of a purchase: who the customer is, how to reach them, their zone. */
export type GuardEvent = Pick<PurchaseCompleted, "customer" | "store" | "occurredAt">;

export interface GuardInput {
  readonly event: GuardEvent;
  readonly stepId: string;
  /** The instant the step was planned for (epoch ms). */
  readonly dueAt: number;
  /**
   * When its grace period ends, for a step planned after its due time had passed (epoch ms;
   * PlannedStep.graceEndsAt): `dueAt` is then a later opening, not what the grace counts from.
   */
  readonly graceEndsAt?: number;
  readonly rules: RuleSet;
  readonly now: DateTime;
  /** Channels on which this customer or their address is on the suppression list. */
  readonly suppressedChannels: ReadonlySet<Channel>;
  /** Channels on which they opted out of offers only: marketing steps there are skipped. */
  readonly marketingSuppressedChannels?: ReadonlySet<Channel>;
  /** Channels this deployment cannot send on, with the reason (e.g. no voice provider yet). */
  readonly unavailableChannels?: ReadonlyMap<Channel, string>;
  /**
   * The consent the customer's latest purchase that stated one gave, per channel, and when
   * (CustomerHistoryStore.latestConsent): it stands for theirs now, unless the step's own
   * purchase is the later (consentFor).
   */
  readonly latestConsent?: StatedConsent;
}

/**
 * When a step's grace period ends: the guard sends it up to this instant and skips it as past due
 * after. For a step planned late, the end it was planned with (`graceEndsAt`); else its due time
 * plus its kind's grace period in calendar terms of the customer's zone, as the planner counts it
 * (P2D across a DST change is 47 or 49 hours; a repeated local time is its first occurrence), so
 * a step is not sent that intake would have skipped. The job watch (queue/lost-jobs.ts) decides
 * by it too whether a step whose job was lost may still go.
 */
export function graceEnd(
  input: Pick<GuardInput, "dueAt" | "graceEndsAt"> & {
    readonly event: Pick<GuardEvent, "customer" | "store">;
  },
  kind: StepKind,
  rules: RuleSet,
): DateTime {
  if (input.graceEndsAt !== undefined)
    return DateTime.fromMillis(input.graceEndsAt, { zone: "utc" });
  const { zone } = customerZone(input.event, rules);
  const dueAt = DateTime.fromMillis(input.dueAt, { zone: zoneFor(zone) });
  return plusCalendar(dueAt, rules.gracePeriods[kind]);
}

/**
 * Whether the customer's consent for the step's channel now (consentFor) lets it go: undefined,
 * else why not, and whether they declined the channel (`declined`) or gave no consent a step of
 * its purpose needs. Pure; also asked when a call placed earlier is answered.
 */
export function consentRefusal(
  step: Pick<StepSpec, "channel" | "purpose">,
  consent: boolean | undefined,
  transactionalNeedsConsent: boolean,
): { readonly declined: boolean; readonly reason: string } | undefined {
  if (consent === false)
    return { declined: true, reason: `customer declined ${step.channel} messages` };
  const needsConsent = step.purpose === "marketing" || transactionalNeedsConsent;
  if (needsConsent && consent !== true)
    return {
      declined: false,
      reason: `no consent for ${step.purpose} ${step.channel} messages`,
    };
  return undefined;
}

/**
 * The send-time guard: is the step still in the rules, can the customer still be reached, is it
 * inside the send window now, is it not hopelessly late. Pure, like the planner.
 */
export function decideSend(input: GuardInput): SendDecision {
  const { event, stepId, rules, now } = input;
  const found = findStep(rules, stepId);
  if (!found) {
    return {
      action: "skip",
      code: "rule-removed",
      reason: `step ${stepId} is no longer in the rules`,
    };
  }
  const { rule, step } = found;
  const unavailable = input.unavailableChannels?.get(step.channel);
  if (unavailable !== undefined) {
    return { action: "skip", code: "channel-unavailable", reason: unavailable };
  }
  const contact = step.channel === "email" ? event.customer.email : event.customer.phone;
  if (!contact) {
    return {
      action: "skip",
      code: "no-contact",
      reason: `no ${step.channel === "email" ? "email address" : "phone number"} to send to`,
    };
  }
  if (input.suppressedChannels.has(step.channel)) {
    return {
      action: "skip",
      code: "opted-out",
      reason: `customer opted out of ${step.channel} messages`,
    };
  }
  if (step.purpose === "marketing" && input.marketingSuppressedChannels?.has(step.channel)) {
    return {
      action: "skip",
      code: "opted-out",
      reason: `customer opted out of ${step.channel} offers`,
    };
  }
  // A later purchase may have given or withdrawn it (a box ticked or cleared at its checkout).
  const refused = consentRefusal(
    step,
    consentFor(event, step.channel, input.latestConsent),
    rules.defaults.transactionalNeedsConsent,
  );
  if (refused) return { action: "skip", code: "no-consent", reason: refused.reason };
  const { zone } = customerZone(event, rules);
  const ended = graceEnd(input, step.kind, rules);
  if (ended < now) {
    const reason =
      input.graceEndsAt !== undefined
        ? `past due: planned late, and its ${step.kind} grace period ended ${ended.toISO()}`
        : `past due: was due ${DateTime.fromMillis(input.dueAt, { zone: "utc" }).toISO()}, more than ${rules.gracePeriods[step.kind].toISO()} (the ${step.kind} grace period) ago`;
    return { action: "skip", code: "past-due", reason };
  }
  const window = step.sendWindow ?? rules.sendWindows[step.channel];
  let opens: DateTime;
  try {
    opens = nextSendWindow(now, zone, window, rules.holidays);
  } catch (error) {
    if (!(error instanceof NoSendWindowError)) throw error;
    return { action: "skip", code: "no-send-window", reason: error.message };
  }
  if (opens > now) {
    return { action: "defer", until: opens, reason: "outside the send window" };
  }
  return { action: "send", rule, step, zone };
}
