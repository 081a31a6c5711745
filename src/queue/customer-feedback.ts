import type { Channel } from "../domain/events.js";
import type { RuleSet } from "../domain/rules.js";
import { smsKeyword } from "../domain/sms-keywords.js";
import type { Logger } from "../logger.js";
import type { DeliveryLedger } from "../store/delivery-ledger.js";
import type { FollowUpStore } from "../store/follow-up-store.js";
import type { SmsReferences } from "../store/sms-references.js";
import type { SuppressionList } from "../store/suppression-list.js";
import type { WebhookReceipts } from "../store/webhook-receipts.js";
import { stepLabels } from "./step-labels.js";

/** Twilio's final message statuses, as ledger outcomes. */
const DELIVERY_OUTCOMES: Readonly<Record<string, string>> = {
  delivered: "delivered",
  undelivered: "undelivered",
  failed: "undelivered",
};

/** How long check-in replies stay indexed for the owners' reports. */
export const REPLY_RETENTION_MS = 400 * 24 * 3600 * 1000;
/** Longest reply text kept against a check-in. */
const MAX_REPLY_LENGTH = 1600;
/** Twilio's error code for a message to a number that has opted out (replied STOP). */
const TWILIO_OPTED_OUT = 21610;

export interface CustomerFeedbackDeps {
  readonly rules: () => RuleSet;
  readonly store: FollowUpStore;
  readonly ledger: DeliveryLedger;
  readonly smsReferences: SmsReferences;
  readonly suppressions: SuppressionList;
  readonly receipts: WebhookReceipts;
  readonly logger: Logger;
  /** Epoch ms now. */
  readonly now: () => number;
}

/**
 * What customers and their providers tell us after a send: opt-outs (events, links, SMS
 * keywords), replies to check-ins, and delivery reports. Called by the intake processor for
 * opt-out events and by the HTTP webhooks.
 */
export function createCustomerFeedback(deps: CustomerFeedbackDeps) {
  return {
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
          await deps.ledger.count(
            { outcome: "optout", channel, kind: "-", ruleId: "-", reason: source },
            deps.now(),
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
      if (!(await deps.receipts.firstSighting(`in:${message.messageSid}`))) return "ignored";
      const keyword = smsKeyword(message.body);
      if (keyword === "opt-out") {
        const isNew = await deps.suppressions.suppress("sms", { address: message.from });
        if (isNew)
          await deps.ledger.count(
            { outcome: "optout", channel: "sms", kind: "-", ruleId: "-", reason: "sms-stop" },
            deps.now(),
          );
        return "opted-out";
      }
      if (keyword === "opt-in") {
        await deps.suppressions.allow("sms", { address: message.from });
        return "opted-in";
      }
      const checkIn = await deps.smsReferences.latestCheckIn(message.from);
      if (!checkIn) return "ignored";
      const receivedAt = deps.now();
      const recorded = await deps.store.annotate(
        checkIn.eventId,
        checkIn.stepId,
        { reply: { text: message.body.slice(0, MAX_REPLY_LENGTH), receivedAt } },
        receivedAt,
      );
      if (!recorded) return "ignored";
      await deps.smsReferences.recordReply(checkIn, receivedAt, REPLY_RETENTION_MS);
      const { kind, ruleId } = stepLabels(deps.rules(), checkIn.stepId, recorded);
      await deps.ledger.count(
        { outcome: "reply", channel: "sms", kind: kind === "unknown" ? "check-in" : kind, ruleId },
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
      const at = await deps.smsReferences.stepOfSms(update.messageSid);
      if (!at) return "unknown-message";
      const now = deps.now();
      const outcome = DELIVERY_OUTCOMES[update.status];
      if (outcome && (await deps.receipts.firstSighting(`st:${update.messageSid}:${outcome}`))) {
        const record = (await deps.store.stepRecords(at.eventId, [at.stepId])).get(at.stepId);
        const labels = stepLabels(deps.rules(), at.stepId, record);
        await deps.ledger.count(
          {
            outcome,
            ...labels,
            channel: labels.channel === "unknown" ? "sms" : labels.channel,
            ...(update.errorCode !== undefined && { reason: `undelivered ${update.errorCode}` }),
          },
          now,
        );
      }
      const record = await deps.store.annotate(
        at.eventId,
        at.stepId,
        {
          delivery: {
            status: update.status.slice(0, 20),
            ...(update.errorCode !== undefined && { errorCode: update.errorCode }),
          },
        },
        now,
      );
      if (update.errorCode === TWILIO_OPTED_OUT && at.recipient) {
        await deps.suppressions.suppressMember("sms", at.recipient);
      }
      return record ? "recorded" : "unknown-message";
    },
  };
}

export type CustomerFeedback = ReturnType<typeof createCustomerFeedback>;
