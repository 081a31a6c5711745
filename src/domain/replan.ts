import type { DateTime } from "luxon";
import type { Channel, PurchaseCompleted } from "./events.js";
import { cooldownProblem, stepTiming } from "./planner.js";
import { type CustomerHistory, matchCondition, type RuleSet, type StepKind } from "./rules.js";
import { findStep } from "./step-ref.js";

/** A pending step as re-planning sees it. */
export interface PendingStep {
  readonly stepId: string;
  /** Planned due time (epoch ms). */
  readonly dueAt: number;
  /** For a step planned late: when its grace period ends (epoch ms; PlannedStep.graceEndsAt). */
  readonly graceEndsAt?: number;
  readonly channel?: Channel;
  readonly kind?: StepKind;
}

/** What newer rules do to a pending step. */
export type ReplanDecision =
  | { readonly action: "keep" }
  | {
      readonly action: "move";
      readonly dueAt: number;
      /** When the new due time had passed: the end of its grace period (PlannedStep.graceEndsAt). */
      readonly graceEndsAt?: number;
      readonly channel: Channel;
      readonly kind: StepKind;
    }
  | {
      readonly action: "cancel";
      readonly code: "rule-removed" | "no-longer-matches";
      readonly reason: string;
    }
  | {
      readonly action: "skip";
      readonly code: "past-due" | "no-send-window" | "cooldown" | "superseded";
      readonly reason: string;
    };

/**
 * Re-plans one pending step of a purchase under newer rules. Only the step's own rule is asked:
 * is the step still in it, does the rule still match the purchase (its value after refunds, the
 * customer's history when it was first planned), and when does the step fall due now. Whether the
 * customer can still be reached (contact, consent, opt-outs) is left to the send-time guard, and
 * new rules or steps apply to new purchases only. A step that would move within the cooldown of
 * another purchase's step (`history.recent`), or that would take there a kind under a cooldown
 * that holds it, is skipped. A call's fallback is timed from `callDueAt`, when its call is due as
 * planned (epoch ms: its stored due time, or the one this re-plan moves it to), as the planner
 * times it from the call it planned; without it, from the call's due time under the rules. Pure:
 * `now` is an argument.
 */
export function replanStep(
  step: PendingStep,
  event: PurchaseCompleted,
  history: CustomerHistory,
  rules: RuleSet,
  now: DateTime,
  callDueAt?: number,
): ReplanDecision {
  const found = findStep(rules, step.stepId);
  if (!found) {
    return {
      action: "cancel",
      code: "rule-removed",
      reason: `rule removed: step ${step.stepId} is no longer in the rules`,
    };
  }
  const match = matchCondition(found.rule.when, event, history);
  if (!match.matched) {
    return {
      action: "cancel",
      code: "no-longer-matches",
      reason: `no longer matches: rule ${found.rule.id}: ${match.reason}`,
    };
  }
  const timing = stepTiming(event, found.step, rules, now, callDueAt);
  if (!timing.ok) {
    const code = timing.code === "no-send-window" ? "no-send-window" : "past-due";
    return { action: "skip", code, reason: timing.reason };
  }
  const dueAt = timing.due.toMillis();
  const graceEndsAt = timing.graceEndsAt?.toMillis();
  const stays = dueAt === step.dueAt && found.step.channel === (step.channel ?? found.step.channel);
  // Where it stays, it may still take the grace period's end the rules now count (the send guard
  // reads a late step's end from its record) and its step's kind (reports count by the record's).
  const sameKind = found.step.kind === (step.kind ?? found.step.kind);
  if (stays && sameKind && graceEndsAt === step.graceEndsAt) return { action: "keep" };
  // Where it moves to, or where it stays as a step of another kind, held to the cooldowns as a new
  // step is (history.recent: the customer's other purchases' steps): a kind with a cooldown of its
  // own is decided as the planner would decide it for a new purchase.
  const cooling =
    (!stays || !sameKind) && cooldownProblem(found.rule, found.step, timing.due, rules, history);
  if (cooling) return { action: "skip", code: "cooldown", reason: cooling };
  return {
    action: "move",
    dueAt,
    ...(graceEndsAt !== undefined && { graceEndsAt }),
    channel: found.step.channel,
    kind: found.step.kind,
  };
}

/**
 * How many times a purchase noted for re-planning under newer rules (replanLater) is tried before
 * it is given up: its steps stay as planned.
 */
export const REPLAN_LATER_ATTEMPTS = 8;
/** The wait after a noted purchase's first failed re-plan; twice as long after each next one. */
const LATER_RETRY_FIRST_MS = 60_000;
/** The longest wait between two re-plans of a noted purchase. */
const LATER_RETRY_MAX_MS = 3_600_000;

/**
 * After a noted purchase's `failures`-th failed re-plan (at `nowMs`): when the next may be tried
 * (a minute later, then twice as long each time up to an hour: about two hours in all), or, once
 * REPLAN_LATER_ATTEMPTS have failed, that it is given up.
 */
export function nextLaterTry(
  failures: number,
  nowMs: number,
): { readonly giveUp: true } | { readonly giveUp: false; readonly nextAt: number } {
  if (failures >= REPLAN_LATER_ATTEMPTS) return { giveUp: true };
  const waitMs = Math.min(LATER_RETRY_MAX_MS, LATER_RETRY_FIRST_MS * 2 ** (failures - 1));
  return { giveUp: false, nextAt: nowMs + waitMs };
}
