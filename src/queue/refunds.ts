import type { Queue } from "bullmq";
import { DateTime } from "luxon";
import type { Channel, PurchaseCompleted, PurchaseRefunded } from "../domain/events.js";
import { describeMoney } from "../domain/money.js";
import { planFollowUps } from "../domain/planner.js";
import { afterRefunds } from "../domain/refund.js";
import type { RuleSet } from "../domain/rules.js";
import { findStep } from "../domain/step-ref.js";
import type { Logger } from "../logger.js";
import type { FollowUpMetrics } from "../metrics.js";
import type { CustomerHistoryStore } from "../store/customer-history.js";
import type { FollowUpStore } from "../store/follow-up-store.js";
import type { FrequencyCapStore } from "../store/frequency-cap-store.js";
import { legacyFollowUpJobId } from "../store/legacy-layout.js";
import type { OrderRecord, OrderStore } from "../store/order-store.js";
import type { Shards } from "../store/shards.js";
import { abandonedSending, isAbandonedSending, type StepRecord } from "../store/step-record.js";
import { type FollowUpJobData, followUpJobId, latestSendJobId } from "./names.js";
import { stepLabels } from "./step-labels.js";

/** How long an order's refunds (and links to its purchases) are kept. */
export const REFUND_RETENTION_MS = 400 * 24 * 3600 * 1000;

/** What refunds work on in a purchase's shard. */
export interface RefundShard {
  readonly store: Pick<
    FollowUpStore,
    "readEvent" | "allStepRecords" | "stopEvent" | "cancelAtNextClaim" | "transition"
  >;
  readonly history: Pick<CustomerHistoryStore, "historyAt">;
  /** A step cancelled after a failed attempt gives back the cap slot that attempt took. */
  readonly caps: Pick<FrequencyCapStore, "release">;
}

export interface RefundDeps {
  readonly rules: () => RuleSet;
  /** Every shard's stores: an order names the shard of each of its purchases. */
  readonly shards: Pick<Shards<RefundShard>, "of">;
  readonly orders: OrderStore;
  /** Every shard's follow-ups queue: a cancelled step's job is in its event's shard. */
  readonly followUps: Pick<Shards<Pick<Queue<FollowUpJobData>, "remove">>, "of">;
  readonly metrics: FollowUpMetrics;
  readonly logger: Logger;
  /** DELIVERY_LEASE_MS: a step `sending` this long untouched lost its sender and is cancelled. */
  readonly sendLeaseMs: number;
}

/** A refund that cannot apply to its order: the event fails with this reason, without retries. */
export class RefundCurrencyError extends Error {
  override readonly name = "RefundCurrencyError";
  constructor(
    message: string,
    /** The refund's currency and its order's, for logs (the message names the order). */
    readonly currencies: { readonly refund: string; readonly order: string },
  ) {
    super(message);
  }
}

/** What a refund did, for the intake job's return value. */
export interface RefundSummary {
  readonly cancelled: number;
  readonly kept: number;
}

/**
 * Refunds: a full refund cancels every pending step of the order (and stops one being claimed
 * right now); a partial one re-plans with what is left (the items not handed back, the remaining
 * value) and cancels steps that drop out.
 * Refunds may arrive before their purchase, so the same reconciliation runs when a purchase
 * arrives after its refund.
 */
export function createRefunds(deps: RefundDeps) {
  /**
   * Cancels a step that has not been sent: its record says why, its delayed job goes away. The
   * customer is unknown when the stored purchase cannot be read: then no cap slot is given back.
   */
  const cancel = async (
    event: { readonly id: string; readonly customerId?: string },
    shard: number,
    stepId: string,
    record: StepRecord,
    reason: string,
    now: number,
  ): Promise<boolean> => {
    const labels = stepLabels(deps.rules(), stepId, record);
    const { store, caps } = deps.shards.of(shard);
    const changed = await store.transition(
      event.id,
      stepId,
      ["scheduled", abandonedSending(now, deps.sendLeaseMs)],
      { state: "cancelled", reason: { code: "refunded", text: reason } },
      now,
      { outcome: "cancelled", ...labels, reason: "refunded" },
      record.dueAt,
    );
    if (!changed) return false;
    const followUps = deps.followUps.of(shard);
    // The pending send's job (a resend's `-r<n>` or retry's `-q<n>` after one) and its cap slot,
    // not the first send's, which reached the customer; for a step both resent and retried by a
    // version that did not note which came last, none: its job gives its own back when it runs.
    const base = followUpJobId(event.id, stepId);
    const sendJob = latestSendJobId(base, record);
    await Promise.all([
      followUps.remove(base),
      followUps.remove(legacyFollowUpJobId(event.id, stepId)),
      sendJob !== undefined && sendJob !== base && followUps.remove(sendJob),
      labels.channel !== "unknown" &&
        event.customerId !== undefined &&
        sendJob !== undefined &&
        caps.release(labels.channel as Channel, event.customerId, sendJob),
    ]);
    deps.metrics.cancelled.inc({ channel: labels.channel, kind: labels.kind, reason: "refunded" });
    return true;
  };

  /**
   * Brings one purchase's pending steps in line with its order's refunds: all cancelled (and the
   * event stopped) on a full refund, those whose kind the remaining value no longer earns on a
   * partial one. The purchase must be linked in `order`: the link names its shard.
   */
  const applyRefunds = async (
    eventId: string,
    orderId: string,
    order: OrderRecord,
    now: number,
  ): Promise<RefundSummary> => {
    const shard = order.events.find((linked) => linked.eventId === eventId)?.shard;
    if (shard === undefined)
      throw new Error(
        `purchase ${eventId} is not linked to order ${orderId}: its shard is unknown`,
      );
    const { store, history } = deps.shards.of(shard);
    const fullReason = `order ${orderId} fully refunded`;
    const { event, unreadable } = await store.readEvent(eventId);
    if (!event && !unreadable) {
      // Nothing left to re-plan; a full refund still stops any step a worker might be holding.
      if (order.fullyRefunded) await store.stopEvent(eventId, `refunded: ${fullReason}`);
      return { cancelled: 0, kept: 0 };
    }
    const records = await store.allStepRecords(eventId);
    // Pending: scheduled, or being sent (a live sender's message is on its way, but a retry or
    // a takeover after its attempt would send it again: it is marked instead, below).
    const open = [...records.entries()].filter(
      ([, record]) => record.state === "scheduled" || record.state === "sending",
    );
    // A purchase that cannot be read (damaged, a newer version's format): a full refund needs
    // nothing of it; a partial one needs its items and total, so its steps are left as planned
    // (the send-time guard reads the order's refunds again, should a worker read the purchase).
    const after = event && afterRefunds(event, order);
    const full = after ? after.full : order.fullyRefunded;
    if (unreadable && !full) {
      deps.logger.warn(
        { eventId, error: unreadable.errorName, pending: open.length },
        "partial refund not applied to a purchase whose stored purchase cannot be read; its follow-ups are left as planned",
      );
      return { cancelled: 0, kept: open.length };
    }
    let keep = new Set<string>();
    let reasonFor = (_stepId: string) => fullReason;
    // (Without the purchase, only a full refund comes this far.)
    if (full || !event || !after) {
      await store.stopEvent(eventId, `refunded: ${fullReason}`);
    } else {
      const remaining = after.event.total;
      // Items handed back: fewer left than were bought (the list is rebuilt either way).
      const count = (items: PurchaseCompleted["items"]) =>
        items.reduce((sum, item) => sum + item.quantity, 0);
      const itemsBack = count(after.event.items) !== count(event.items);
      if (remaining.minor === event.total.minor && !itemsBack)
        return { cancelled: 0, kept: open.length };
      const replanned = planFollowUps(
        after.event,
        deps.rules(),
        await history.historyAt(eventId),
        DateTime.fromISO(event.occurredAt),
      );
      // A step stays if the smaller order still earns it. A thank-you stays if the order still
      // earns one on its channel, under whichever rule (it lists what is left of the order); any
      // other step only if its own rule still plans it: an offer earned by the items handed back
      // (accessories for a returned camera) goes, even when what is left earns another offer.
      const stillEarned = new Set(
        replanned.steps.flatMap((s) =>
          s.kind === "thank-you" ? [s.stepId, `${s.kind}/${s.channel}`] : [s.stepId],
        ),
      );
      keep = new Set(
        open
          .filter(([id]) => {
            const step = findStep(deps.rules(), id)?.step;
            if (step === undefined) return false;
            return (
              stillEarned.has(id) ||
              (step.kind === "thank-you" && stillEarned.has(`${step.kind}/${step.channel}`))
            );
          })
          .map(([id]) => id),
      );
      const why = new Map(replanned.skipped.map((s) => [s.stepId, s.reason]));
      const left = itemsBack
        ? `${describeMoney(remaining)} (${after.event.items.map((item) => `${item.quantity} × ${item.sku}`).join(", ")})`
        : describeMoney(remaining);
      reasonFor = (stepId) =>
        `partial refund leaves ${left}; ${why.get(stepId) ?? "no longer planned"}`;
    }
    let cancelled = 0;
    for (const [stepId, record] of open) {
      if (keep.has(stepId)) continue;
      if (record.state === "sending" && !isAbandonedSending(record, now, deps.sendLeaseMs)) {
        // Being sent right now: what it sends goes; a retry or a takeover after it cancels.
        await store.cancelAtNextClaim(eventId, stepId, `refunded: ${reasonFor(stepId)}`);
        continue;
      }
      const whose = { id: eventId, ...(event && { customerId: event.customer.id }) };
      if (await cancel(whose, shard, stepId, record, reasonFor(stepId), now)) cancelled++;
    }
    return { cancelled, kept: open.length - cancelled };
  };

  return {
    async refund(refund: PurchaseRefunded, now: number): Promise<RefundSummary> {
      const before = await deps.orders.get(refund.orderId);
      // A refund in another currency than its order is refused before it is recorded.
      // (A purchase whose stored purchase cannot be read has no currency to compare: passed over.)
      for (const { eventId, shard } of before.events) {
        const { event } = await deps.shards.of(shard).store.readEvent(eventId);
        if (event && refund.amount && refund.amount.currency !== event.total.currency) {
          throw new RefundCurrencyError(
            `refund ${refund.id} is in ${refund.amount.currency} but order ${refund.orderId} was paid in ${event.total.currency}`,
            { refund: refund.amount.currency, order: event.total.currency },
          );
        }
      }
      const order = await deps.orders.addRefund(
        refund.orderId,
        refund.id,
        {
          ...(refund.amount && { amount: refund.amount }),
          ...(refund.items && { items: refund.items }),
        },
        REFUND_RETENTION_MS,
      );
      let cancelled = 0;
      let kept = 0;
      for (const eventId of order.eventIds) {
        const result = await applyRefunds(eventId, refund.orderId, order, now);
        cancelled += result.cancelled;
        kept += result.kept;
      }
      deps.logger.info(
        { eventId: refund.id, cancelled, kept, full: order.fullyRefunded },
        "refund applied",
      );
      return { cancelled, kept };
    },

    applyRefunds,
  };
}

export type Refunds = ReturnType<typeof createRefunds>;
