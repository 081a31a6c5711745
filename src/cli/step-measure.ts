import type { OutgoingMessage } from "../channels/channel.js";
import type { PurchaseCompleted } from "../domain/events.js";
import type { Plan, PlannedStep } from "../domain/planner.js";
import type { RuleSet } from "../domain/rules.js";
import { countSmsSegments } from "../domain/sms-segments.js";
import { costOf, isPricedChannel } from "../domain/spend.js";
import { findStep } from "../domain/step-ref.js";
import { followUpJobId } from "../queue/names.js";
import type { ComposeMessage } from "../templates/compose-message.js";

/** SMS segments and cost of a planned step, rendered as the worker renders it at send time. */
export function stepMeasure(rules: RuleSet, compose: ComposeMessage) {
  /** Renders the step as the worker would; a failure is what the worker would fail it with. */
  async function render(
    event: PurchaseCompleted,
    plan: Plan,
    step: PlannedStep,
    firstSmsToNumber: boolean,
  ): Promise<{ ok: true; message: OutgoingMessage } | { ok: false; error: string } | null> {
    const found = findStep(rules, step.stepId);
    if (!found) return null;
    try {
      const message = await compose({
        event,
        rule: found.rule,
        step: found.step,
        stepId: step.stepId,
        followUpId: followUpJobId(plan.eventId, step.stepId),
        dueAt: Date.parse(step.dueAt),
        zone: plan.timezone,
        rules,
        firstSmsToNumber,
      });
      return { ok: true, message };
    } catch (error) {
      // The worker fails such a step at send time ("template … failed to render").
      return { ok: false, error: error instanceof Error ? error.message : String(error) };
    }
  }
  async function segments(
    event: PurchaseCompleted,
    plan: Plan,
    step: PlannedStep,
    firstSmsToNumber: boolean,
  ): Promise<number | null> {
    const rendered = await render(event, plan, step, firstSmsToNumber);
    return rendered?.ok ? countSmsSegments(rendered.message.text) : null;
  }
  return {
    render,
    segments,
    /** Without and with the opt-out line; which one applies depends on the order of sends. */
    async smsVariants(event: PurchaseCompleted, plan: Plan, step: PlannedStep) {
      const later = await segments(event, plan, step, false);
      const first = await segments(event, plan, step, true);
      return later === null || first === null ? null : { later, first };
    },
  };
}

/**
 * What a step costs in micros of the default currency, from its SMS segments (rendered by the
 * caller) or the rules' assumed call minutes; null for email, unpriced numbers, and an SMS
 * whose segments are unknown (it failed to render, or no templates were at hand).
 */
export function stepCost(
  rules: RuleSet,
  event: PurchaseCompleted,
  step: PlannedStep,
  smsSegments: number | null,
): number | null {
  const phone = event.customer.phone;
  if (!isPricedChannel(step.channel) || phone === undefined) return null;
  const units = step.channel === "sms" ? smsSegments : rules.spend.estimatedCallMinutes;
  if (units === null) return null;
  return costOf(rules.spend, step.channel, phone, units)?.micros ?? null;
}
