import type { Queue } from "bullmq";
import { DateTime } from "luxon";
import type { Channel, PurchaseCompleted, PurchaseRefunded } from "../domain/events.js";
import { describeMoney, type Money } from "../domain/money.js";
import { planFollowUps } from "../domain/planner.js";
import type { RuleSet } from "../domain/rules.js";
import { findStep, ruleIdOf } from "../domain/step-ref.js";
import { smsKeyword } from "../domain/sms-keywords.js";
import type { Logger } from "../logger.js";
import type { FollowUpMetrics } from "../metrics.js";
import type { FollowUpStore } from "../store/follow-up-store.js";
import type { OrderRecord, OrderStore } from "../store/order-store.js";
import type { SuppressionList } from "../store/suppression-list.js";
import { type FollowUpJobData, followUpJobId, legacyFollowUpJobId } from "./names.js";

/** Twilio's final message statuses, as ledger outcomes. */
const DELIVERY_OUTCOMES: Readonly<Record<string, string>> = {
  delivered: "delivered",
  undelivered: "undelivered",
  failed: "undelivered",
};

/** How long refunds and message references are kept. */
export const LIFECYCLE_RETENTION_MS = 400 * 24 * 3600 * 1000;
/** Longest reply text kept against a check-in. */
const MAX_REPLY_LENGTH = 1600;

export interface LifecycleDeps {
  readonly rules: () => RuleSet;
  readonly store: FollowUpStore;
  readonly orders: OrderStore;
  readonly suppressions: SuppressionList;
  readonly followUps: Queue<FollowUpJobData>;
  readonly metrics: FollowUpMetrics;
  readonly logger: Logger;
  /** Marks a message id seen; false when it was seen before (replayed webhooks). */
  readonly firstSighting: (key: string) => Promise<boolean>;
}

/** A refund that cannot apply to its order: the event fails with this reason, without retries. */
export class RefundCurrencyError extends Error {
  override readonly name = "RefundCurrencyError";
}

/** What a refund did, for the intake job's return value. */
export interface RefundSummary {
  readonly cancelled: number;
  readonly kept: number;
}

/**
 * What happens after the purchase: refunds, opt-outs, SMS keywords and replies, delivery
 * reports. Called by the intake processor for lifecycle events and by the HTTP webhooks.
 */
export function createLifecycle(deps: LifecycleDeps) {
  /** Cancels a step that has not been sent: its record says why, its delayed job goes away. */
  const cancel = async (
    event: PurchaseCompleted,
    stepId: string,
    reason: string,
    now: number,
  ): Promise<boolean> => {
    const step = findStep(deps.rules(), stepId)?.step;
    const entry = {
      outcome: "cancelled",
      channel: step?.channel ?? "unknown",
      kind: step?.kind ?? "unknown",
      ruleId: ruleIdOf(stepId),
      reason: "refunded",
    };
    const changed = await deps.store.transition(
      event.id,
      stepId,
      ["scheduled"],
      { s: "cancelled", x: reason },
      now,
      entry,
    );
    if (!changed) return false;
    await Promise.all([
      deps.followUps.remove(followUpJobId(event.id, stepId)),
      deps.followUps.remove(legacyFollowUpJobId(event.id, stepId)),
    ]);
    deps.metrics.cancelled.inc({
      channel: step?.channel ?? "unknown",
      kind: step?.kind ?? "unknown",
      reason: reason.split(":")[0] ?? "",
    });
    return true;
  };

  /**
   * Brings one purchase's pending steps in line with its order's refunds: all cancelled (and the
   * event stopped) on a full refund, those whose kind the remaining value no longer earns on a
   * partial one. Used when a refund arrives and when a purchase arrives after its refund.
   */
  const applyRefunds = async (
    eventId: string,
    orderId: string,
    order: OrderRecord,
    now: number,
  ): Promise<RefundSummary> => {
    const fullReason = `refunded: order ${orderId} fully refunded`;
    const event = await deps.store.loadEvent(eventId);
    if (!event) {
      // Nothing left to re-plan; a full refund still stops any step a worker might be holding.
      if (order.fullyRefunded) await deps.store.stopEvent(eventId, fullReason);
      return { cancelled: 0, kept: 0 };
    }
    const remaining = remainingTotal(event.total, order.refunds);
    const full = order.fullyRefunded || remaining.minor === 0;
    const records = await deps.store.allStepRecords(eventId);
    const open = [...records.entries()]
      .filter(([, record]) => record.s === "scheduled")
      .map(([id]) => id);
    let keep = new Set<string>();
    let reasonFor = (_stepId: string) => fullReason;
    if (full) {
      await deps.store.stopEvent(eventId, fullReason);
    } else {
      if (remaining.minor === event.total.minor) return { cancelled: 0, kept: open.length };
      const history = await deps.store.historyAt(eventId);
      const replanned = planFollowUps(
        { ...event, total: remaining },
        deps.rules(),
        history,
        DateTime.fromISO(event.occurredAt),
      );
      // A step stays if the smaller order still earns a follow-up of its kind on its channel.
      const stillEarned = new Set(replanned.steps.map((s) => `${s.kind}/${s.channel}`));
      keep = new Set(
        open.filter((id) => {
          const step = findStep(deps.rules(), id)?.step;
          return step !== undefined && stillEarned.has(`${step.kind}/${step.channel}`);
        }),
      );
      const why = new Map(replanned.skipped.map((s) => [s.stepId, s.reason]));
      reasonFor = (stepId) =>
        `refunded: partial refund leaves ${describeMoney(remaining)}; ${why.get(stepId) ?? "no longer planned"}`;
    }
    let cancelled = 0;
    for (const stepId of open) {
      if (!keep.has(stepId) && (await cancel(event, stepId, reasonFor(stepId), now))) cancelled++;
    }
    return { cancelled, kept: open.length - cancelled };
  };

  return {
    /**
     * A full refund cancels every pending step of the order (and stops one being claimed right
     * now); a partial one re-plans with the remaining value and cancels steps that drop out.
     */
    async refund(refund: PurchaseRefunded, now: number): Promise<RefundSummary> {
      const before = await deps.orders.get(refund.orderId);
      // A refund in another currency than its order is refused before it is recorded.
      for (const eventId of before.eventIds) {
        const event = await deps.store.loadEvent(eventId);
        if (event && refund.amount && refund.amount.currency !== event.total.currency) {
          throw new RefundCurrencyError(
            `refund ${refund.id} is in ${refund.amount.currency} but order ${refund.orderId} was paid in ${event.total.currency}`,
          );
        }
      }
      const order = await deps.orders.addRefund(
        refund.orderId,
        refund.id,
        refund.amount,
        LIFECYCLE_RETENTION_MS,
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

    /** Opts a customer out of channels; pending steps there are skipped when they fall due. */
    async unsubscribe(
      customerId: string,
      channels: readonly Channel[],
      source: string,
      address?: string,
    ): Promise<void> {
      for (const channel of channels) {
        const isNew = await deps.suppressions.suppress(channel, {
          customerId,
          ...(address && { address }),
        });
        // Counted once per person and channel: a second click or a redelivered event adds nothing.
        if (isNew)
          await deps.store.count(
            { outcome: "optout", channel, kind: "-", ruleId: "-", reason: source },
            Date.now(),
          );
      }
      deps.logger.info({ channels, source }, "customer unsubscribed");
    },

    /** STOP/START keywords change the number's SMS subscription; anything else is a reply. */
    async inboundSms(message: {
      from: string;
      body: string;
      messageSid: string;
    }): Promise<"opted-out" | "opted-in" | "reply-recorded" | "ignored"> {
      if (!(await deps.firstSighting(`in:${message.messageSid}`))) return "ignored";
      const keyword = smsKeyword(message.body);
      if (keyword === "opt-out") {
        const isNew = await deps.suppressions.suppress("sms", { address: message.from });
        if (isNew)
          await deps.store.count(
            { outcome: "optout", channel: "sms", kind: "-", ruleId: "-", reason: "sms-stop" },
            Date.now(),
          );
        return "opted-out";
      }
      if (keyword === "opt-in") {
        await deps.suppressions.allow("sms", { address: message.from });
        return "opted-in";
      }
      const checkIn = await deps.store.latestCheckIn(message.from);
      if (!checkIn) return "ignored";
      const receivedAt = Date.now();
      const recorded = await deps.store.annotate(checkIn.eventId, checkIn.stepId, {
        rp: message.body.slice(0, MAX_REPLY_LENGTH),
        rt: receivedAt,
      });
      if (!recorded) return "ignored";
      await deps.store.recordReply(checkIn, receivedAt, LIFECYCLE_RETENTION_MS);
      const kind = findStep(deps.rules(), checkIn.stepId)?.step.kind ?? "check-in";
      await deps.store.count(
        { outcome: "reply", channel: "sms", kind, ruleId: ruleIdOf(checkIn.stepId) },
        receivedAt,
      );
      return "reply-recorded";
    },

    /** Records Twilio's delivery report against the step the message was sent for. */
    async smsStatus(update: {
      messageSid: string;
      status: string;
      errorCode?: number;
    }): Promise<"recorded" | "unknown-message"> {
      const at = await deps.store.stepOfSms(update.messageSid);
      if (!at) return "unknown-message";
      const outcome = DELIVERY_OUTCOMES[update.status];
      if (outcome && (await deps.firstSighting(`st:${update.messageSid}:${outcome}`))) {
        const step = findStep(deps.rules(), at.stepId)?.step;
        await deps.store.count(
          {
            outcome,
            channel: step?.channel ?? "sms",
            kind: step?.kind ?? "unknown",
            ruleId: ruleIdOf(at.stepId),
            ...(update.errorCode !== undefined && { reason: `undelivered ${update.errorCode}` }),
          },
          Date.now(),
        );
      }
      const record = await deps.store.annotate(at.eventId, at.stepId, {
        dl: update.status.slice(0, 20),
        ...(update.errorCode !== undefined && { de: update.errorCode }),
      });
      if (update.errorCode === 21610 && at.recipient) {
        await deps.suppressions.suppressMember("sms", at.recipient);
      }
      return record ? "recorded" : "unknown-message";
    },
  };
}

export type Lifecycle = ReturnType<typeof createLifecycle>;

/** The order total after refunds, never below zero; refunds in another currency are ignored. */
export function remainingTotal(total: Money, refunds: readonly Money[]): Money {
  const refunded = refunds
    .filter((r) => r.currency === total.currency)
    .reduce((sum, r) => sum + r.minor, 0);
  return { minor: Math.max(0, total.minor - refunded), currency: total.currency };
}
