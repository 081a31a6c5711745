import { createHash } from "node:crypto";
import { type ParsedMail, simpleParser } from "mailparser";
import type { DeliveryChannel } from "../channels/channel.js";
import { cutText } from "../domain/cut-text.js";
import { isAutomaticReply, replyBody, subjectAsksToStop } from "../domain/email-reply.js";
import { CHANNELS, type Channel, eventEmailAddress, PHONE_CHANNELS } from "../domain/events.js";
import type { RuleSet } from "../domain/rules.js";
import {
  emailOptOutRequest,
  inboundSmsKeyword,
  isProviderConfirmedOptOut,
  isTwilioOptOut,
} from "../domain/sms-keywords.js";
import { countSmsSegments } from "../domain/sms-segments.js";
import { costOf, spendMonthOf } from "../domain/spend.js";
import { plainText } from "../domain/unsafe-text.js";
import { verifyUnsubscribeToken } from "../domain/unsubscribe-token.js";
import type { Logger } from "../logger.js";
import type { CustomerHistoryStore } from "../store/customer-history.js";
import type { CustomerIndex } from "../store/customer-index.js";
import type { DeliveryLedger, LedgerEntry } from "../store/delivery-ledger.js";
import type { FollowUpStore } from "../store/follow-up-store.js";
import type { Shards } from "../store/shards.js";
import type { SmsReferences, StepRef } from "../store/sms-references.js";
import { monthBefore } from "../store/spend-ledger.js";
import type { StepReason } from "../store/step-record.js";
import { replyId, type StepReplies, type StepReply } from "../store/step-replies.js";
import type { OptOutScope, SuppressionList } from "../store/suppression-list.js";
import {
  type DeliveryOutcome,
  SENT_RECEIPTS,
  type WebhookReceipts,
} from "../store/webhook-receipts.js";
import { renderOptOutConfirmation } from "../templates/opt-out-confirmation.js";
import type { TemplateSet } from "../templates/template-set.js";
import { chargeSpend, type SpendDeps } from "./channel-spend.js";
import { followUpJobId } from "./names.js";
import { stepLabels } from "./step-labels.js";

/**
 * Twilio's final message statuses, as ledger outcomes: `read` (WhatsApp, RCS) comes of a message
 * delivered; `canceled` (a scheduled message cancelled) was never sent; `partially_delivered`
 * (which Twilio's API lists without describing it) reached the phone in part only. A Map, so that
 * a status named as an object's own properties are (`constructor`) is no outcome.
 */
const DELIVERY_OUTCOMES: ReadonlyMap<string, DeliveryOutcome> = new Map([
  ["delivered", "delivered"],
  ["read", "delivered"],
  ["undelivered", "undelivered"],
  ["failed", "undelivered"],
  ["canceled", "undelivered"],
  ["partially_delivered", "undelivered"],
]);

/** Final statuses that say why a message was not delivered when Twilio gives no error code. */
const UNDELIVERED_REASONS: ReadonlySet<string> = new Set([
  "canceled",
  "failed",
  "partially_delivered",
]);

/**
 * Final statuses of a text that never went out: `canceled` (a scheduled message cancelled at
 * Twilio) and `failed` (Twilio could not send it: a queue overflow, the account suspended, a
 * number it refused; it charges nothing for it). Unlike `undelivered` (the carrier reported the
 * text not delivered after Twilio sent it), nothing reached the phone: the step fails, and an
 * operator can send it again.
 */
const NOT_SENT_STATUSES: ReadonlySet<string> = new Set(["canceled", "failed"]);

/**
 * Why a step whose text Twilio reports `canceled` or `failed` failed: the ledger's reason code
 * (reports/reason-words.ts says it in words: the same as these, or by Twilio's error code).
 */
function notSentReason(status: string, errorCode: number | undefined): StepReason {
  if (status === "canceled")
    return {
      code: "undelivered canceled",
      text: "the text was cancelled at the SMS provider before it went out",
    };
  const text = "the SMS provider could not send the text: it never went out";
  return errorCode === undefined
    ? { code: "undelivered failed", text }
    : { code: `undelivered ${errorCode}`, text: `${text} (Twilio error ${errorCode})` };
}

/** The outcome a message's final report contradicts: it is counted as one or the other. */
const CONTRADICTING: Readonly<Record<DeliveryOutcome, DeliveryOutcome>> = {
  delivered: "undelivered",
  undelivered: "delivered",
};

/** Message statuses after which Twilio reports nothing more of the message but `read`. */
const FINAL_STATUSES: ReadonlySet<string> = new Set(DELIVERY_OUTCOMES.keys());

/** Statuses of messages coming in (Twilio's `receiving`, `received`): none of a message we sent. */
const INBOUND_STATUSES: ReadonlySet<string> = new Set(["receiving", "received"]);

/** How long check-in replies stay indexed for the owners' reports. */
export const REPLY_RETENTION_MS = 400 * 24 * 3600 * 1000;
/** Longest reply text kept against a check-in. */
const MAX_REPLY_LENGTH = 1600;
/** Longest email reply text kept (what the customer wrote, without the quoted original). */
const MAX_EMAIL_REPLY_LENGTH = 10_000;
/** Twilio's error code for a message to a number that has opted out (replied STOP). */
const TWILIO_OPTED_OUT = 21610;
/**
 * A number gets at most one opt-out confirmation within this long; and none for an opt-out that
 * came in longer ago than this (replayed from the webhook spool): the FCC allows the one
 * confirmation within five minutes of the request only.
 */
const CONFIRMATION_WINDOW_MS = 5 * 60_000;
/** The subject of a List-Unsubscribe mailto (templates/unsubscribe-link.ts), as clients send it. */
const UNSUBSCRIBE_SUBJECT = /^\s*unsubscribe\s+(\S+)\s*$/i;

/** What feedback reads and writes in a shard: its purchases' step records and replies. */
export interface FeedbackShard {
  readonly store: Pick<
    FollowUpStore,
    | "readEvent"
    | "readForSend"
    | "stepRecords"
    | "allStepRecords"
    | "annotate"
    | "noteSmsStatus"
    | "storedPurchase"
  >;
  readonly replies: Pick<StepReplies, "add">;
  readonly history: Pick<CustomerHistoryStore, "purchasesOf">;
}

export interface CustomerFeedbackDeps {
  readonly rules: () => RuleSet;
  readonly templates: () => TemplateSet;
  /** Where the opt-out confirmation is sent. */
  readonly sms: Pick<DeliveryChannel, "send">;
  /** Every shard's stores: a message reference names the shard of its step's event. */
  readonly shards: Pick<Shards<FeedbackShard>, "of" | "shardOf">;
  /** Told of every reply recorded (owner alerts); a failure is logged, the reply stays. */
  readonly onReply?: (reply: StepReply) => Promise<void>;
  /** Counts replies and delivery reports (in the global ledger). */
  readonly ledger: Pick<DeliveryLedger, "countOnce" | "countFirstOutcome">;
  readonly smsReferences: SmsReferences;
  readonly suppressions: SuppressionList;
  readonly receipts: WebhookReceipts;
  /** Email replies: who used an address (their latest email), and where to forward replies. */
  readonly customers?: Pick<CustomerIndex, "customersOf">;
  readonly email?: Pick<DeliveryChannel, "send">;
  /** SUPPORT_EMAIL: every accepted email reply is forwarded there. */
  readonly supportEmail?: string;
  /**
   * Verifies the token in the subject of a mail to UNSUBSCRIBE_MAILTO (List-Unsubscribe's mailto,
   * "unsubscribe <token>"), when such a mail reaches the inbound email webhook.
   */
  readonly unsubscribeSecret?: string;
  /**
   * UNSUBSCRIBE_MAILTO: a mail addressed there stops offers to its sender's address even without
   * the token (a customer who typed the address, or a client that dropped the subject).
   */
  readonly unsubscribeMailto?: string;
  /** The month's SMS spend: an opt-out confirmation text costs as any text does. */
  readonly spend?: SpendDeps;
  readonly logger: Logger;
  /** Epoch ms now. */
  readonly now: () => number;
}

/**
 * What customers and their providers tell us after a send: opt-outs (events, links, SMS
 * keywords), replies to check-ins, and delivery reports. Called by the intake processor for
 * opt-out events and by the HTTP webhooks. A webhook's receipt is written only once its effects
 * are stored, so a delivery that fails half-way (a Redis error, a crash) and is retried by the
 * provider is processed again, never dropped as a replay; every step is idempotent.
 */
export function createCustomerFeedback(deps: CustomerFeedbackDeps) {
  /**
   * One confirmation text per number within five minutes, in the customer's language when their
   * purchase is still stored; none when the opt-out came in over five minutes ago (replayed from
   * the webhook spool). Not for Twilio's standard keywords, which Twilio confirms itself.
   * The opt-out is stored before; a confirmation that fails is logged, never retried.
   */
  const confirmOptOut = async (message: {
    from: string;
    body: string;
    optOutType?: string;
    /** When the opt-out came in, if not now (replayed from the webhook spool). */
    receivedAt?: number;
  }): Promise<void> => {
    if (
      isTwilioOptOut(message.optOutType) ||
      isProviderConfirmedOptOut(message.body) ||
      !deps.rules().optOutConfirmation
    )
      return;
    if (
      message.receivedAt !== undefined &&
      deps.now() - message.receivedAt > CONFIRMATION_WINDOW_MS
    ) {
      deps.logger.info(
        "opt-out handled over five minutes after it came in (replayed from the webhook spool): no confirmation text",
      );
      return;
    }
    try {
      const member = await deps.suppressions.addressMember(message.from);
      if (!(await deps.smsReferences.takeOptOutConfirmation(member, CONFIRMATION_WINDOW_MS)))
        return;
      const checkIn = await deps.smsReferences.latestCheckIn(member, message.from);
      // A purchase that cannot be read (damaged, a newer version's format) has no language to
      // give: the confirmation goes in the shop's, and its decoder's error is named, not quoted.
      const read = checkIn
        ? await deps.shards.of(checkIn.shard).store.readEvent(checkIn.eventId)
        : undefined;
      if (checkIn && read?.unreadable)
        deps.logger.warn(
          { eventId: checkIn.eventId, error: read.unreadable.errorName },
          "opt-out confirmation in the shop's language: the check-in's stored purchase cannot be read",
        );
      const text = await renderOptOutConfirmation(
        deps.templates(),
        read?.event?.customer.locale,
        deps.rules(),
      );
      if (text === null) return;
      const sent = await deps.sms.send({
        channel: "sms",
        followUpId: `opt-out-${member.slice(2, 14)}`,
        to: message.from,
        text,
      });
      if (!sent.ok) {
        deps.logger.warn({ code: sent.error.code }, "opt-out confirmation not sent");
        return;
      }
      // Counted in the month's SMS spend once it went (always: it must go, budget or not).
      if (deps.spend) {
        const now = deps.now();
        const micros = costOf(deps.rules().spend, "sms", message.from, countSmsSegments(text));
        await chargeSpend(
          deps.spend,
          deps.rules(),
          { channel: "sms", id: `opt-out:${member}:${now}`, micros: micros?.micros ?? 0 },
          undefined,
          now,
        );
      }
    } catch (error) {
      deps.logger.warn({ err: error }, "opt-out confirmation not sent");
    }
  };

  /**
   * Keeps a reply to a step (appended, never overwriting an earlier one) under the message it
   * came in (`receipt`), indexes it for the reports, counts it once per receipt, and tells the
   * owner alerts when this delivery counted it; undefined when the step's record is gone. Every
   * part is idempotent by the receipt: copies delivered at once, and the retry of a delivery that
   * failed half-way (after the append, before the count), file one reply, counted and alerted once.
   */
  const fileReply = async (
    step: StepRef,
    text: string,
    channel: "sms" | "email" | "voice",
    receipt: string,
    /** When it came in, if not now (a webhook replayed from the spool). */
    cameIn = deps.now(),
  ): Promise<StepReply | undefined> =>
    (await fileReplyOnce(step, text, channel, receipt, cameIn))?.reply;

  /** fileReply, saying whether this delivery was the one that counted the reply (`first`). */
  const fileReplyOnce = async (
    step: StepRef,
    text: string,
    channel: "sms" | "email" | "voice",
    receipt: string,
    cameIn: number,
  ): Promise<{ readonly reply: StepReply; readonly first: boolean } | undefined> => {
    const { store, replies } = deps.shards.of(step.shard);
    const filed = await replies.add(
      step.eventId,
      step.stepId,
      { text, receivedAt: cameIn, channel },
      receipt,
    );
    if (!filed) return undefined;
    const { n, receivedAt } = filed;
    const reply: StepReply = {
      id: replyId({ eventId: step.eventId, stepId: step.stepId, n, shard: step.shard }),
      eventId: step.eventId,
      stepId: step.stepId,
      shard: step.shard,
      n,
      text: filed.text,
      receivedAt,
      channel,
    };
    await deps.smsReferences.recordReply({ ...step, n }, receivedAt, REPLY_RETENTION_MS);
    const recorded = (await store.stepRecords(step.eventId, [step.stepId])).get(step.stepId);
    const { kind, ruleId } = stepLabels(deps.rules(), step.stepId, recorded);
    // The count writes the receipt: the one delivery that counts the reply alerts the owners.
    const counted = await deps.ledger.countOnce(
      receipt,
      { outcome: "reply", channel, kind: kind === "unknown" ? "check-in" : kind, ruleId },
      receivedAt,
    );
    if (!counted) return { reply, first: false };
    await deps
      .onReply?.(reply)
      .catch((error: unknown) =>
        deps.logger.warn({ err: error }, "could not file the reply for owner alerts"),
      );
    return { reply, first: true };
  };

  /** The follow-up an email answers, by the Message-IDs it refers to (latest first). */
  const stepOfEmailReply = async (mail: ParsedMail): Promise<StepRef | undefined> => {
    const references = [mail.references ?? []].flat();
    const ids = [mail.inReplyTo, ...references.reverse()].filter(
      (id): id is string => typeof id === "string" && id !== "",
    );
    for (const id of ids) {
      const found = await deps.smsReferences.stepOfEmail(id);
      if (found) return found;
    }
    return undefined;
  };

  /** The latest email follow-up sent to an address (when the reply names no Message-ID we know). */
  const latestEmailTo = async (address: string): Promise<StepRef | undefined> => {
    if (!deps.customers) return undefined;
    let latest: (StepRef & { at: number }) | undefined;
    for (const customerId of await deps.customers.customersOf(address)) {
      // A customer's purchases live in their shard.
      const shard = deps.shards.shardOf(customerId);
      const { history, store } = deps.shards.of(shard);
      for (const { eventId } of (await history.purchasesOf(customerId)).slice(0, 10)) {
        for (const [stepId, record] of await store.allStepRecords(eventId)) {
          const at = record.changedAt ?? 0;
          if (record.channel === "email" && record.state === "sent" && at > (latest?.at ?? -1))
            latest = { eventId, stepId, shard, at };
        }
      }
    }
    return latest && { eventId: latest.eventId, stepId: latest.stepId, shard: latest.shard };
  };

  /** Forwards an accepted reply to SUPPORT_EMAIL; a failure is logged (the reply is stored). */
  const forwardToSupport = async (
    replyId: string,
    subject: string,
    sender: string | undefined,
    text: string,
  ): Promise<void> => {
    if (!deps.supportEmail || !deps.email) return;
    const sent = await deps.email.send({
      channel: "email",
      followUpId: `reply-${createHash("sha256").update(replyId).digest("hex").slice(0, 16)}`,
      to: deps.supportEmail,
      // One plain line: a customer's subject may carry controls or bidi marks and overrides
      // that would turn support's subject line around.
      subject: cutText(plainText(`Customer reply: ${subject}`), 200),
      text: `${sender ?? "A customer"} replied to follow-up ${replyId}:\n\n${text}\n`,
    });
    if (!sent.ok)
      deps.logger.warn({ code: sent.error.code }, "reply not forwarded to SUPPORT_EMAIL");
  };

  const optOut = (
    channel: Channel,
    reason: string,
    now: number,
  ): { entry: LedgerEntry; now: number } => ({
    entry: { outcome: "optout", channel, kind: "-", ruleId: "-", reason },
    now,
  });

  /**
   * Opts a customer (by id, or by its keyed hash as an unsubscribe link names them; and the address
   * or its keyed hash, when known) out of channels; pending steps there are skipped when they fall
   * due. Counted once per person and channel: a second click or a redelivered event adds nothing.
   */
  const unsubscribe = async (
    customer: string | { readonly customerHash: string },
    channels: readonly Channel[],
    source: string,
    address?: { readonly address?: string; readonly addressHash?: string },
    scope: OptOutScope = "all",
    /** Addresses the customer is known by on each channel: suppressed too (counted once). */
    known: ReadonlyMap<Channel, readonly string[]> = new Map(),
    /** When it was asked for, if not now (a link's request replayed from the webhook spool). */
    at?: number,
  ): Promise<void> => {
    const now = at ?? deps.now();
    // Timed first, as a STOP is: a START replayed from the spool must not undo it. A link of a
    // text names its number by keyed hash only.
    const numbers = new Set(PHONE_CHANNELS.flatMap((channel) => known.get(channel) ?? []));
    await deps.suppressions.noteNumbersOptingOut(
      channels,
      [
        ...[...numbers].map((number) => ({ address: number })),
        ...(address?.addressHash !== undefined && channels.some((c) => c !== "email")
          ? [{ addressHash: address.addressHash }]
          : []),
      ],
      scope,
      now,
    );
    for (const channel of channels) {
      await deps.suppressions.suppress(
        channel,
        {
          ...(typeof customer === "string" ? { customerId: customer } : customer),
          ...address,
        },
        optOut(channel, scope === "all" ? source : `${source}-offers`, now),
        scope,
      );
      for (const other of known.get(channel) ?? [])
        await deps.suppressions.suppress(channel, { address: other }, undefined, scope);
    }
    deps.logger.info({ channels, source, scope }, "customer unsubscribed");
  };

  /**
   * An email reply asking for no more emails: the sender's address, and the customer of the
   * follow-up it answers and the address that follow-up was sent to (when its purchase is still
   * kept: a reply from a mailbox it was forwarded to), are opted out of every email, as the
   * unsubscribe link's "Stop all follow-ups" does; counted once (reason `email-reply`).
   */
  const optOutByEmailReply = async (sender: string, step: StepRef | undefined) => {
    const read = step
      ? await deps.shards.of(step.shard).store.readForSend(step.eventId)
      : undefined;
    const customerId = read?.event?.customer.id;
    if (customerId !== undefined) {
      const sentTo = read?.event?.customer.email;
      await unsubscribe(
        customerId,
        ["email"],
        "email-reply",
        { address: sender },
        "all",
        new Map(sentTo ? [["email", [sentTo]]] : []),
      );
      return;
    }
    await deps.suppressions.suppress(
      "email",
      { address: sender },
      optOut("email", "email-reply", deps.now()),
    );
    deps.logger.info(
      { channels: ["email"], source: "email-reply", scope: "all" },
      "customer unsubscribed",
    );
  };

  /**
   * Gives back the charge of a text Twilio cancelled or could not send (it charges nothing for
   * it), by the id it was charged under (`chargeId`, its send's job id), from the month it was
   * charged to: this one, or the one before for a text sent as the month turned. By its id, so
   * never twice.
   */
  const giveBackCharge = async (chargeId: string, now: number): Promise<void> => {
    if (!deps.spend) return;
    const month = spendMonthOf(now, deps.rules().defaults.timezone);
    for (const charged of [month, monthBefore(month)])
      await deps.spend.spend.giveBack("sms", charged, chargeId);
  };

  return {
    /** Files a reply on a step (the voice calls' keypad answers come through here too). */
    fileReply,

    unsubscribe,

    /**
     * STOP/START keywords change the number's subscription; HELP and INFO, which Twilio answers
     * itself, are left to it; anything else is a reply.
     */
    async inboundSms(message: {
      from: string;
      body: string;
      messageSid: string;
      /** How many pictures or files an MMS carried. */
      media?: number;
      /** When it came in, if not now (replayed from the webhook spool). */
      receivedAt?: number;
      /** Twilio's OptOutType (Advanced Opt-Out), when it sent one. */
      optOutType?: string;
    }): Promise<"opted-out" | "opted-in" | "reply-recorded" | "ignored"> {
      const receipt = `in:${message.messageSid}`;
      // What Twilio took for an opt-out (its keywords, and those the shop added to its Messaging
      // Service) is one: Twilio stops texting the number, and calls must stop with it.
      const keyword = inboundSmsKeyword(message);
      // A START handled live notes first how many opt-outs the number had when it came in: one
      // handled while it is being applied (a STOP sent right after it, posted at the same moment
      // to another replica or request) came after it, and stands (allow.lua).
      const seen =
        message.receivedAt === undefined &&
        (keyword === "opt-in" || keyword === "opt-in-if-suppressed")
          ? await deps.suppressions.optOutCounts({ address: message.from })
          : undefined;
      if (await deps.receipts.seen(receipt)) return "ignored";
      if (keyword === "opt-out") {
        const now = message.receivedAt ?? deps.now();
        // Its time first: a START sent before it and replayed from the spool while the number is
        // being suppressed must not take it off again.
        await deps.suppressions.noteOptOutAt({ address: message.from }, now);
        for (const channel of PHONE_CHANNELS) {
          await deps.suppressions.suppress(
            channel,
            { address: message.from },
            optOut(channel, "sms-stop", now),
            "all",
            "text",
          );
        }
        await deps.receipts.remember(receipt);
        await confirmOptOut(message);
        return "opted-out";
      }
      /** Not applied, nor filed (logged why): handled in full, a copy changes nothing either. */
      const ignored = async (why: string) => {
        deps.logger.info({ messageSid: message.messageSid }, why);
        await deps.receipts.remember(receipt);
        return "ignored" as const;
      };
      // Twilio answered it with the account's help message: nothing for the owner to read.
      if (keyword === "help")
        return ignored("a help keyword (HELP, INFO): answered by Twilio, not filed as a reply");
      // YES opts back in only a number that opted out; to "Is all well?" it is an answer.
      const optIn =
        keyword === "opt-in" ||
        (keyword === "opt-in-if-suppressed" &&
          (await deps.suppressions.isSuppressed("sms", { address: message.from })));
      // Dated by its first delivery: Twilio delivers a message again after a time-out or an error,
      // and a copy may wait in the webhook spool. One sent before an opt-out handled since (a
      // START replayed from the spool, or delivered again after a STOP): the customer's last word
      // was the opt-out, which stays; after an opt-out of offers only, that one stays. One on its
      // first delivery, handled live, came after every opt-out handled before it came in (`seen`):
      // it is the latest word, whatever the clocks of the replicas that dated those say (one
      // running a little ahead would otherwise date a STOP just before it later than it).
      const first = optIn
        ? await deps.receipts.firstDelivered(receipt, message.receivedAt ?? deps.now())
        : undefined;
      const sentAt =
        first !== undefined && (first.again || message.receivedAt !== undefined)
          ? first.at
          : undefined;
      const later =
        sentAt !== undefined
          ? await deps.suppressions.optedOutAfter({ address: message.from }, sentAt)
          : undefined;
      if (later === "all")
        return ignored(
          "an opt-in sent before the number's latest opt-out (replayed from the webhook spool, or delivered again): not applied",
        );
      if (optIn) {
        // START resubscribes to texts, and to the calls a text STOP stopped; calls declined
        // another way (a 9 pressed on a call, an event) stay off.
        const kept: Channel[] = [];
        let stale = false;
        for (const channel of PHONE_CHANNELS) {
          // The opt-out times are read again as it applies (allow.lua): an opt-out handled since
          // they were read above stands.
          const allowed = await deps.suppressions.allow(
            channel,
            { address: message.from },
            {
              keepOffers: later === "marketing",
              ...(sentAt !== undefined && { sentAt }),
              ...(seen !== undefined && { seen }),
            },
          );
          if (allowed === "stale") {
            stale = true;
            break;
          }
          if (allowed) kept.push(channel);
        }
        if (stale)
          return ignored(
            "an opt-in sent before the number's latest opt-out (replayed from the webhook spool, delivered again, or an opt-out handled while it was applied): not applied",
          );
        if (kept.length > 0)
          deps.logger.info(
            { messageSid: message.messageSid, kept },
            "opted back in by text: calls declined other than by text stay off",
          );
        if (later === "marketing")
          deps.logger.info(
            { messageSid: message.messageSid },
            "an opt-in sent before the number's latest opt-out of offers (replayed from the webhook spool, or delivered again): offers stay off",
          );
        await deps.receipts.remember(receipt);
        return "opted-in";
      }
      // Words, or for an MMS without them what it carried (the picture may show what broke).
      const media = message.media ?? 0;
      const text =
        message.body.trim() !== ""
          ? cutText(message.body, MAX_REPLY_LENGTH)
          : media > 0
            ? `(${media} ${media === 1 ? "picture or file" : "pictures or files"}, not kept)`
            : undefined;
      const checkIn =
        text === undefined
          ? undefined
          : await deps.smsReferences.latestCheckIn(
              await deps.suppressions.addressMember(message.from),
              message.from,
            );
      if (!checkIn || text === undefined) {
        await deps.receipts.remember(receipt);
        return "ignored";
      }
      // Filed under its message id (fileReply): a copy delivered at once, or the retry of one that
      // failed half-way, adds no second reply, count or alert.
      const reply = await fileReply(checkIn, text, "sms", receipt, message.receivedAt);
      if (!reply) {
        await deps.receipts.remember(receipt);
        return "ignored";
      }
      return "reply-recorded";
    },

    /**
     * An email reply (the raw MIME message an inbound-parse service posts): matched to the
     * follow-up it answers by In-Reply-To/References against our Message-IDs, else to the latest
     * email sent to the sender's address; the quoted original is cut off. Automatic answers and
     * replies that match nothing are ignored (nothing stored). Idempotent per Message-ID.
     */
    async inboundEmail(
      raw: Buffer,
    ): Promise<
      | { outcome: "recorded"; replyId: string }
      | { outcome: "unsubscribed" }
      | { outcome: "ignored"; reason: string }
    > {
      const mail = await simpleParser(raw, { skipImageLinks: true, skipTextToHtml: true });
      // By a digest of its Message-ID (of the whole mail when it has none): a mail client may
      // build the id from the sender's address, which a receipt kept a week must not name.
      const receipt = `in-email:${createHash("sha256")
        .update(mail.messageId ?? raw)
        .digest("base64url")
        .slice(0, 22)}`;
      // A mail taken in by versions before 7 December 2026 has its receipt named the old way (the
      // Message-ID in clear, or the whole mail's hex digest) until that receipt's week is up:
      // read, never written, so that a mail delivered again across the upgrade is taken in once.
      const before = `in-email:${mail.messageId ?? createHash("sha256").update(raw).digest("hex")}`;
      if (await deps.receipts.seen(receipt, before))
        return { outcome: "ignored", reason: "seen before" };
      // A mail client's List-Unsubscribe by mail: the subject carries the link's signed token.
      const token = UNSUBSCRIBE_SUBJECT.exec(mail.subject ?? "")?.[1];
      const target =
        token !== undefined && deps.unsubscribeSecret
          ? verifyUnsubscribeToken(deps.unsubscribeSecret, token)
          : undefined;
      if (target) {
        await unsubscribe(
          target.customerHash === undefined
            ? target.customerId
            : { customerHash: target.customerHash },
          [target.channel],
          "mailto",
          target.addressHash === undefined ? undefined : { addressHash: target.addressHash },
          "marketing",
        );
        await deps.receipts.remember(receipt);
        return { outcome: "unsubscribed" };
      }
      const from = mail.from?.value[0]?.address;
      // As events carry it: a domain a mail gives in Unicode (SMTPUTF8), in its ASCII form.
      const sender = from && (eventEmailAddress(from) ?? from);
      if (sender && deps.unsubscribeMailto && addressedTo(mail, deps.unsubscribeMailto)) {
        // Whatever its subject says, and also when made by a machine for the customer (a mailbox
        // provider's unsubscribe, Auto-Submitted): the address is for nothing else, and no
        // automatic answer is addressed there. Offers stop, as one-click.
        await deps.suppressions.suppress(
          "email",
          { address: sender },
          optOut("email", "mailto-offers", deps.now()),
          "marketing",
        );
        deps.logger.info(
          { channels: ["email"], source: "mailto", scope: "marketing" },
          "customer unsubscribed",
        );
        await deps.receipts.remember(receipt);
        return { outcome: "unsubscribed" };
      }
      const header = (name: string) => {
        const value = mail.headers.get(name);
        return typeof value === "string" ? value : undefined;
      };
      if (
        isAutomaticReply({
          ...(header("auto-submitted") && { autoSubmitted: header("auto-submitted") }),
          ...(header("precedence") && { precedence: header("precedence") }),
          ...(mail.subject && { subject: mail.subject }),
        })
      ) {
        await deps.receipts.remember(receipt);
        return { outcome: "ignored", reason: "automatic reply" };
      }
      const step = (await stepOfEmailReply(mail)) ?? (sender && (await latestEmailTo(sender)));
      const text = cutText(replyBody(mail.text ?? ""), MAX_EMAIL_REPLY_LENGTH);
      // Words that ask for no more emails (CAN-SPAM: a reply is honoured as the link is). Stored
      // before the reply is filed, whose count writes the receipt: a retry after a failure in
      // between opts out again (counted once) and files the reply.
      const optedOut =
        sender !== undefined &&
        ((text !== "" && emailOptOutRequest(text)) || subjectAsksToStop(mail.subject));
      if (optedOut) await optOutByEmailReply(sender, step || undefined);
      if (!step || text === "") {
        await deps.receipts.remember(receipt);
        if (optedOut) return { outcome: "unsubscribed" };
        return { outcome: "ignored", reason: step ? "empty reply" : "no matching follow-up" };
      }
      const filed = await fileReplyOnce(step, text, "email", receipt, deps.now());
      if (!filed) {
        await deps.receipts.remember(receipt);
        return { outcome: "ignored", reason: "the follow-up's record is gone" };
      }
      const replyId = filed.reply.id;
      // Only by the delivery that counted it: copies posted at once reach support once.
      if (filed.first) await forwardToSupport(replyId, mail.subject ?? "", sender, text);
      return { outcome: "recorded", replyId };
    },

    /**
     * Records Twilio's delivery report against the step the message was sent for, dated
     * `receivedAt` when given (a report replayed from the webhook spool), else now. Handling the
     * same report twice has its effect once: the status is written again, the ledger counts it
     * once per message and outcome, and a number is suppressed once.
     */
    async smsStatus(update: {
      messageSid: string;
      status: string;
      errorCode?: number;
      /** When it came in, if not now (replayed from the webhook spool). */
      receivedAt?: number;
    }): Promise<"recorded" | "kept-early" | "unknown-message" | "ignored"> {
      // A status of an inbound message says nothing of one we sent: not kept, not written.
      if (INBOUND_STATUSES.has(update.status)) return "ignored";
      const now = update.receivedAt ?? deps.now();
      let at = await deps.smsReferences.stepOfSms(update.messageSid);
      if (!at) {
        // Its customer was erased (the reference went with them): only its charge is known, by
        // the job it was charged under. A text that never went out gives it back, as below; one
        // another final status came for first went out, and keeps it ('' from then on, so its
        // later reports are answered too). Nothing else of it is kept or written.
        const erasedCharge = await deps.smsReferences.erasedChargeOf(update.messageSid);
        if (erasedCharge !== undefined) {
          if (erasedCharge === "") return "recorded";
          if (NOT_SENT_STATUSES.has(update.status)) await giveBackCharge(erasedCharge, now);
          else if (FINAL_STATUSES.has(update.status))
            await deps.smsReferences.settleErasedCharge(update.messageSid);
          return "recorded";
        }
        // Twilio may post a status (`sent`, even `delivered`) before the worker that sent the SMS
        // has written its reference: kept a short while, and applied by that worker as it writes
        // it (rememberSms). Unless the reference was written in between: then handled as usual.
        const kept = await deps.smsReferences.keepEarlyStatus(update.messageSid, {
          status: update.status.slice(0, 20),
          ...(update.errorCode !== undefined && { errorCode: update.errorCode }),
          receivedAt: now,
        });
        if (kept) return "kept-early";
        at = await deps.smsReferences.stepOfSms(update.messageSid);
        if (!at) return "unknown-message";
      }
      const { store } = deps.shards.of(at.shard);
      // Twilio posts each status on its own, in no guaranteed order: a `sent` that arrives after
      // `delivered` (or `undelivered` with its code) must not take the final outcome's place.
      const known = (await store.stepRecords(at.eventId, [at.stepId])).get(at.stepId);
      const knownStatus = known?.delivery?.status;
      if (knownStatus && FINAL_STATUSES.has(knownStatus) && !FINAL_STATUSES.has(update.status))
        return "recorded";
      if (update.errorCode === TWILIO_OPTED_OUT && at.recipient) {
        // Counted among the opt-outs as a 21610 answered to a send is (reason `provider`).
        const addressHash = /^h:(.+)$/.exec(at.recipient)?.[1];
        // Timed first, as a STOP is: a START sent before and replayed from the spool is older.
        if (addressHash !== undefined) await deps.suppressions.noteOptOutAt({ addressHash }, now);
        for (const channel of PHONE_CHANNELS) {
          if (addressHash === undefined)
            await deps.suppressions.suppressMember(channel, at.recipient);
          else
            await deps.suppressions.suppress(
              channel,
              { addressHash },
              optOut(channel, "provider", now),
              "all",
              "text",
            );
        }
      }
      // Only forward, decided where it is written: a `sent` handled beside a `delivered` never
      // takes its place, whichever of the two reads the record first; and a message is
      // delivered or not: the first final report stays (delivered, then undelivered or failed,
      // or the reverse; canceled and undelivered with a code). A `canceled` or `failed` fails
      // the step it was sent for: nothing went out, an operator can send it again, and the
      // customer's frequency-cap slot it held goes back (in the same script: once).
      const notSent = NOT_SENT_STATUSES.has(update.status);
      const capChannel = stepLabels(deps.rules(), at.stepId, known).channel;
      const customerId = notSent ? (await store.storedPurchase(at.eventId)).customerId : undefined;
      const noted = await store.noteSmsStatus(
        at.eventId,
        at.stepId,
        {
          messageSid: update.messageSid,
          status: update.status.slice(0, 20),
          ...(update.errorCode !== undefined && { errorCode: update.errorCode }),
        },
        now,
        notSentReason(update.status, update.errorCode),
        // The follow-up id also when the customer is unknown (erased while the text was on its
        // way): the send's job, whose charge goes back, needs no customer; their cap slot does.
        {
          channel: (CHANNELS as readonly string[]).includes(capChannel)
            ? (capChannel as Channel)
            : "sms",
          ...(customerId !== undefined && { customerId }),
          followUpId: followUpJobId(at.eventId, at.stepId),
        },
      );
      // Twilio charges nothing for a text it cancelled or could not send: its charge goes back.
      // Also on Twilio's retry of the report after an error here, which the script names the
      // job for again.
      if (noted.failedSend) await giveBackCharge(noted.failedSend, now);
      if (
        // The step this text failed (also on Twilio's retry of the report, after an error here).
        notSent &&
        (noted.noted === "noted" || noted.noted === "kept") &&
        noted.record?.state === "failed" &&
        NOT_SENT_STATUSES.has(noted.record.delivery?.status ?? "") &&
        noted.record.providerId === update.messageSid &&
        at.recipient
      )
        await deps.smsReferences.forgetTexted(at.recipient, update.messageSid);
      if (DELIVERY_OUTCOMES.has(update.status)) {
        // Counted once per message, as its record says after the script decided: two final
        // reports handled at the same moment count as the step shows them, whichever counts
        // first. A report of an earlier message of a step resent since (or whose record is
        // gone) counts as itself. The ledger's script keeps a message from counting as both
        // delivered and undelivered.
        const final =
          noted.noted === "noted" || noted.noted === "kept" ? noted.record?.delivery : update;
        const outcome = final && DELIVERY_OUTCOMES.get(final.status);
        if (final && outcome) {
          const labels = stepLabels(deps.rules(), at.stepId, noted.record ?? known);
          await deps.ledger.countFirstOutcome(
            SENT_RECEIPTS.smsStatus(update.messageSid, outcome),
            SENT_RECEIPTS.smsStatus(update.messageSid, CONTRADICTING[outcome]),
            {
              outcome,
              ...labels,
              channel: labels.channel === "unknown" ? "sms" : labels.channel,
              ...(final.errorCode !== undefined
                ? { reason: `undelivered ${final.errorCode}` }
                : UNDELIVERED_REASONS.has(final.status) && {
                    reason: `undelivered ${final.status}`,
                  }),
            },
            now,
          );
        }
      }
      return noted.noted === "gone" ? "unknown-message" : "recorded";
    },
  };
}

export type CustomerFeedback = ReturnType<typeof createCustomerFeedback>;

/**
 * Whether a mail was addressed to `address`: in To or Cc, or in the headers an inbound-parse
 * service or a mail server records the envelope recipient in (Delivered-To, X-Original-To).
 */
function addressedTo(mail: ParsedMail, address: string): boolean {
  // Both with a domain of other letters in its ASCII form (punycode), as List-Unsubscribe's
  // mailto names UNSUBSCRIBE_MAILTO: a mail client writes either form.
  const comparable = (text: string) => (eventEmailAddress(text) ?? text).trim().toLowerCase();
  const wanted = comparable(address);
  const headers = ["to", "cc", "delivered-to", "x-original-to"].map((name) =>
    mail.headers.get(name),
  );
  return headers.flatMap(addressesIn).some((found) => comparable(found) === wanted);
}

/** The addresses a header holds, parsed (mailparser's address objects) or as text. */
function addressesIn(value: unknown): string[] {
  if (typeof value === "string")
    return value.split(",").map((part) => /<([^>]*)>/.exec(part)?.[1] ?? part);
  if (Array.isArray(value)) return value.flatMap(addressesIn);
  if (value && typeof value === "object" && "value" in value && Array.isArray(value.value))
    return value.value.flatMap((entry: { address?: string; group?: unknown[] }) => [
      ...(entry.address ? [entry.address] : []),
      ...(entry.group ? addressesIn({ value: entry.group }) : []),
    ]);
  return [];
}
