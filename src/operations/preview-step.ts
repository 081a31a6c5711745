import { customerZone } from "../domain/planner.js";
import type { RuleSet } from "../domain/rules.js";
import { findStep } from "../domain/step-ref.js";
import { followUpJobId } from "../queue/names.js";
import type { FollowUpStore } from "../store/follow-up-store.js";
import type { ComposeMessage } from "../templates/compose-message.js";
import { OperatorError, parseStepRef } from "./operator-tools.js";

/** A step's message as the customer gets (or got) it. */
export interface MessagePreview {
  readonly ref: string;
  readonly state: string;
  readonly channel: string;
  readonly to: string;
  readonly subject: string | null;
  readonly text: string;
}

/**
 * Renders a step's message with today's rules and templates, from what is stored of its purchase:
 * what a pending step will say, and near enough what a sent one said (templates may have changed
 * since; a purchase past its last step renders from the part kept, without SKUs and categories).
 */
export async function previewStep(
  deps: { store: FollowUpStore; rules: () => RuleSet; compose: ComposeMessage },
  ref: string,
): Promise<MessagePreview> {
  const step = parseStepRef(ref);
  const record = (await deps.store.stepRecords(step.eventId, [step.stepId])).get(step.stepId);
  if (!record) throw new OperatorError(`no follow-up ${ref} is known`, "not-found");
  const event = await deps.store.loadForSend(step.eventId);
  if (!event)
    throw new OperatorError(`${ref}: its purchase's details have been scrubbed`, "conflict");
  const rules = deps.rules();
  const found = findStep(rules, step.stepId);
  if (!found) throw new OperatorError(`${ref}: its step is no longer in the rules`, "conflict");
  const message = await deps.compose({
    event,
    rule: found.rule,
    step: found.step,
    stepId: step.stepId,
    followUpId: followUpJobId(step.eventId, step.stepId),
    dueAt: record.dueAt,
    zone: customerZone(event, rules).zone,
    rules,
    firstSmsToNumber: false,
  });
  return {
    ref,
    state: record.state,
    channel: message.channel,
    to: message.to,
    subject: message.channel === "email" ? message.subject : null,
    text: message.text,
  };
}
