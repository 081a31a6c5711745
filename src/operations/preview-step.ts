import { customerZone } from "../domain/planner.js";
import { afterRefunds } from "../domain/refund.js";
import type { RuleSet } from "../domain/rules.js";
import { findStep } from "../domain/step-ref.js";
import { followUpJobId } from "../queue/names.js";
import { reasonWords } from "../reports/reason-words.js";
import type { FollowUpStore } from "../store/follow-up-store.js";
import type { OrderStore } from "../store/order-store.js";
import type { Shards } from "../store/shards.js";
import type { StepRecord } from "../store/step-record.js";
import type { ComposeMessage } from "../templates/compose-message.js";
import { OperatorError, parseStepRef, quote, said } from "./operator-tools.js";

/** A step's message as the customer gets (or got) it. */
export interface MessagePreview {
  readonly ref: string;
  readonly state: string;
  readonly channel: string;
  readonly to: string;
  readonly subject: string | null;
  readonly text: string;
  /**
   * Why a step that was not sent (skipped or cancelled) was not, in plain words (`reasonWords`);
   * null otherwise, or when its record gives no reason.
   */
  readonly notSentBecause: string | null;
}

/**
 * Renders a step's message with today's rules and templates, from what is stored of its purchase:
 * what a pending step will say, and near enough what a sent one said (templates may have changed
 * since; a purchase past its last step renders from the part kept, without SKUs and categories).
 * A step not sent renders as the worker would render it now: without the items handed back since
 * and with the total less what was refunded (a sent one, as it was bought).
 */
export async function previewStep(
  deps: {
    /** Every shard's stores: the step is looked for in each. */
    shards: Pick<Shards<{ readonly store: FollowUpStore }>, "all">;
    rules: () => RuleSet;
    compose: ComposeMessage;
    /** The orders' refunds, which a message leaves out as the worker does when it sends. */
    orders: Pick<OrderStore, "get">;
  },
  ref: string,
): Promise<MessagePreview> {
  const step = parseStepRef(ref);
  const held = await findStepRecord(deps.shards.all(), step.eventId, step.stepId);
  if (!held) throw new OperatorError(said`no follow-up ${quote(ref)} is known`, "not-found");
  const { store, record } = held;
  const { event: stored, unreadable } = await store.readForSend(step.eventId);
  // Damaged, or a newer version's format: named by the decoder's error, whose message may quote it.
  if (unreadable)
    throw new OperatorError(
      said`${quote(ref)}: its purchase's stored details cannot be read (${unreadable.errorName})`,
      "conflict",
    );
  if (!stored)
    throw new OperatorError(
      said`${quote(ref)}: its purchase's details have been scrubbed`,
      "conflict",
    );
  const event =
    record.state === "sent"
      ? stored
      : afterRefunds(stored, await deps.orders.get(stored.orderId)).event;
  const rules = deps.rules();
  const found = findStep(rules, step.stepId);
  if (!found)
    throw new OperatorError(said`${quote(ref)}: its step is no longer in the rules`, "conflict");
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
    notSentBecause:
      (record.state === "skipped" || record.state === "cancelled") && record.reason
        ? reasonWords(record.reason.code)
        : null,
  };
}

/** The step's record and the store of the shard holding it (every shard asked at once). */
async function findStepRecord(
  shards: readonly { readonly store: FollowUpStore }[],
  eventId: string,
  stepId: string,
): Promise<{ store: FollowUpStore; record: StepRecord } | undefined> {
  const records = await Promise.all(
    shards.map(async ({ store }) => (await store.stepRecords(eventId, [stepId])).get(stepId)),
  );
  const at = records.findIndex((record) => record !== undefined);
  const store = shards[at]?.store;
  const record = records[at];
  return store && record ? { store, record } : undefined;
}
