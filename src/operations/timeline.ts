import { DateTime } from "luxon";
import { consentFor, type StatedConsent } from "../domain/consent-timeline.js";
import type { Channel } from "../domain/events.js";
import { formatMinor, type Money } from "../domain/money.js";
import { isUnknownSmsStatus } from "../domain/sms-statuses.js";
import { ruleIdOf } from "../domain/step-ref.js";
import { judgeReply } from "../reports/unhappy-replies.js";
import type { AuditEntry } from "../store/audit-trail.js";
import type { RecordedRefund } from "../store/order-store.js";
import type { KeptPurchase } from "../store/purchase-codec.js";
import type { PostponeCode, StepRecord, StepState } from "../store/step-record.js";
import type { StepReply } from "../store/step-replies.js";

/**
 * The customer timeline: what `followups customer`, `followups order`, the admin API and the console
 * show of one customer. Built here from what the stores hold (pure); read-timeline.ts gathers it.
 * The JSON form is a contract: the CLI's `--json` and the admin API's bodies are this shape.
 */

/** An amount as the event contract writes it: a decimal string and an ISO currency code. */
export interface TimelineMoney {
  readonly amount: string;
  readonly currency: string;
}

export interface TimelineReply {
  /** `<eventId>/<stepId>/<n>`: how `followups resolve` names it. */
  readonly id: string;
  readonly text: string;
  readonly receivedAt: string;
  /** How it came: sms, email or voice. */
  readonly channel: string;
  /** Whether it looks unhappy (a low score or a complaint), as the owners' reports judge. */
  readonly unhappy: boolean;
  readonly why: string | null;
  /** Who marked it resolved, when, with what note; null while it is not. */
  readonly resolved: {
    readonly at: string;
    readonly by: string;
    readonly note: string | null;
  } | null;
}

export interface TimelineStep {
  /** `<eventId>/<stepId>`: how `cancel` and `resend` name it. */
  readonly ref: string;
  readonly stepId: string;
  readonly ruleId: string;
  readonly channel: string;
  readonly kind: string;
  readonly state: StepState;
  /** When it is (or was) due: UTC, and on the customer's clock (ISO with offset). */
  readonly dueAt: string;
  readonly dueLocal: string;
  /**
   * A scheduled step whose job waits past its due time: until when (UTC, and on the customer's
   * clock), and why. The due time stays the planned one.
   */
  readonly postponed: {
    readonly until: string;
    readonly untilLocal: string;
    readonly code: PostponeCode;
    readonly why: string;
  } | null;
  /** When the state was entered; null while untouched since planning. */
  readonly changedAt: string | null;
  readonly attempts: number;
  readonly reason: { readonly code: string; readonly text: string } | null;
  readonly providerMessageId: string | null;
  /**
   * The provider's last delivery report (SMS status, error code); `unknown` (present only then) for
   * an SMS status this version does not know (one Twilio may add later): it is no outcome.
   */
  readonly delivery: {
    readonly status: string;
    readonly errorCode: number | null;
    readonly unknown?: true;
  } | null;
  readonly replies: readonly TimelineReply[];
  readonly resends: number;
  readonly retries: number;
  /** Sends taken over after a sender vanished: each a possible duplicate. */
  readonly takeovers: number;
}

export interface TimelinePurchase {
  readonly eventId: string;
  readonly orderId: string | null;
  readonly occurredAt: string | null;
  readonly total: TimelineMoney | null;
  readonly items: readonly {
    readonly name: string;
    readonly quantity: number;
    readonly unitPrice: TimelineMoney;
  }[];
  readonly refunded: "full" | "partial" | null;
  /**
   * What is stored of the purchase: `whole` while a step is pending, `kept` (first name, contact,
   * items and prices) after its last step until the records expire, `gone` after; `none` when it
   * planned no step (only the customer's history lists it, with its time); `unreadable` when it
   * is stored but cannot be decoded (its follow-ups are still shown).
   */
  readonly data: "whole" | "kept" | "gone" | "none" | "unreadable";
  readonly steps: readonly TimelineStep[];
}

/** What `TimelinePurchase.data` means, in the words the CLI and the console show. */
export const STORED_DATA_WORDS: Readonly<Record<TimelinePurchase["data"], string>> = {
  whole: "all (a follow-up is pending)",
  kept: "first name, contact, items and prices (kept after the last follow-up)",
  gone: "none (scrubbed after the retention period)",
  none: "none (no follow-up is stored for it: it planned none, or its intake has not finished; only its time is kept, in the customer's purchase history)",
  unreadable:
    "none readable (the stored purchase cannot be read: damaged, or written in a format this version does not know)",
};

/** A channel's opt-out: of everything, of offers only, or none. */
export type Suppression = "all" | "offers" | null;

export interface TimelineAuditEntry {
  readonly at: string;
  readonly by: string;
  readonly action: string;
  readonly target: string;
  readonly detail: string | null;
}

export interface CustomerTimeline {
  readonly customer: {
    readonly id: string;
    readonly firstName: string | null;
    readonly email: string | null;
    readonly phone: string | null;
    /** The zone local times are shown in: the customer's, else the store's or the rules' default. */
    readonly timezone: string;
    readonly locale: string | null;
    /** Consent as their latest stored purchase gave it (null: not stated). */
    readonly consent: Readonly<Record<Channel, boolean | null>>;
  };
  readonly suppressions: Readonly<Record<Channel, Suppression>>;
  /** Latest first. */
  readonly purchases: readonly TimelinePurchase[];
  /**
   * The purchases in the customer's history past the latest 100 listed (by arrival), still
   * kept (a follow-up of one may be pending): present only when there are any.
   */
  readonly purchasesNotListed?: number;
  /** Operators' actions on this customer, latest first. */
  readonly audit: readonly TimelineAuditEntry[];
}

/** What is known of one purchase, as read from the stores. */
export interface PurchaseFacts {
  readonly eventId: string;
  readonly purchasedAt?: number;
  readonly purchase?: KeptPurchase;
  /** What is stored of the purchase (whole while a step is pending), as TimelinePurchase.data. */
  readonly data: TimelinePurchase["data"];
  readonly summary: { readonly orderId: string | null; readonly customerName: string | null };
  readonly steps: ReadonlyMap<string, StepRecord>;
  /** Every reply, by step id, in the order received. */
  readonly replies: ReadonlyMap<string, readonly StepReply[]>;
  readonly refunds: {
    readonly full: boolean;
    readonly partial: readonly Money[];
    /** Items handed back. */
    readonly returns?: readonly { readonly sku: string; readonly quantity: number }[];
  };
}

export interface TimelineFacts {
  readonly customerId: string;
  /** Latest first. */
  readonly purchases: readonly PurchaseFacts[];
  readonly suppressions: Readonly<Record<Channel, Suppression>>;
  readonly audit: readonly AuditEntry[];
  /** Zone for customers whose purchases name none. */
  readonly defaultZone: string;
  /**
   * The consent the customer's latest purchase that stated one gave (CustomerHistoryStore
   * .latestConsent): what the send-time guard goes by, shown over a purchase's own flags.
   */
  readonly statedConsent?: StatedConsent;
  /** The history's purchases past those listed (CustomerTimeline.purchasesNotListed). */
  readonly purchasesNotListed?: number;
}

const CHANNEL_LIST: readonly Channel[] = ["email", "sms", "voice"];

/** The timeline of one customer from the facts gathered about them. */
export function buildTimeline(facts: TimelineFacts): CustomerTimeline {
  const latest = facts.purchases.find((p) => p.purchase)?.purchase;
  const zone = validZone(latest?.customer.timezone ?? latest?.store?.timezone) ?? facts.defaultZone;
  return {
    customer: {
      id: facts.customerId,
      firstName: latest?.customer.firstName ?? null,
      email: latest?.customer.email ?? null,
      phone: latest?.customer.phone ?? null,
      timezone: zone,
      locale: latest?.customer.locale ?? null,
      consent: Object.fromEntries(
        // What the send-time guard goes by for the latest purchase's steps.
        CHANNEL_LIST.map((channel) => [
          channel,
          consentFor(latest, channel, facts.statedConsent) ?? null,
        ]),
      ) as Record<Channel, boolean | null>,
    },
    suppressions: facts.suppressions,
    purchases: facts.purchases.map((p) => timelinePurchase(p, zone)),
    ...(facts.purchasesNotListed ? { purchasesNotListed: facts.purchasesNotListed } : {}),
    audit: facts.audit.map(timelineAudit),
  };
}

/** The audit entry as the timeline shows it. */
export function timelineAudit(entry: AuditEntry): TimelineAuditEntry {
  return {
    at: iso(entry.at),
    by: entry.by,
    action: entry.action,
    target: entry.target,
    detail: entry.detail ?? null,
  };
}

function timelinePurchase(facts: PurchaseFacts, zone: string): TimelinePurchase {
  const p = facts.purchase;
  const stepZone = validZone(p?.customer.timezone ?? p?.store?.timezone) ?? zone;
  const steps = [...facts.steps.entries()]
    .map(([stepId, record]) =>
      timelineStep(facts.eventId, stepId, record, facts.replies.get(stepId) ?? [], stepZone),
    )
    .sort((a, b) => a.dueAt.localeCompare(b.dueAt) || a.stepId.localeCompare(b.stepId));
  // An amount takes something only in the purchase's currency (another one is ignored or
  // refused, see refund.ts) and above nothing; what is kept names no SKUs to match returns with.
  const amounts = facts.refunds.partial.filter(
    (refund) => !p || (refund.currency === p.total.currency && refund.minor > 0),
  );
  const refunded = facts.refunds.full
    ? "full"
    : amounts.length > 0 || (facts.refunds.returns?.length ?? 0) > 0
      ? "partial"
      : null;
  return {
    eventId: facts.eventId,
    orderId: p?.orderId ?? facts.summary.orderId,
    occurredAt: p?.occurredAt ?? (facts.purchasedAt !== undefined ? iso(facts.purchasedAt) : null),
    total: p ? money(p.total) : null,
    items: (p?.items ?? []).map((item) => ({
      name: item.name,
      quantity: item.quantity,
      unitPrice: money(item.unitPrice),
    })),
    refunded,
    data: facts.data,
    steps,
  };
}

function timelineStep(
  eventId: string,
  stepId: string,
  record: StepRecord,
  stepReplies: readonly StepReply[],
  zone: string,
): TimelineStep {
  const replies = stepReplies.map((reply) => ({
    id: reply.id,
    text: reply.text,
    receivedAt: iso(reply.receivedAt),
    channel: reply.channel,
    ...judgeReply(reply.text),
    resolved: reply.resolved
      ? { at: iso(reply.resolved.at), by: reply.resolved.by, note: reply.resolved.note ?? null }
      : null,
  }));
  return {
    ref: `${eventId}/${stepId}`,
    stepId,
    ruleId: ruleIdOf(stepId),
    channel: record.channel ?? "unknown",
    kind: record.kind ?? "unknown",
    state: record.state,
    dueAt: iso(record.dueAt),
    dueLocal: isoIn(zone, record.dueAt),
    postponed: record.postponed
      ? {
          until: iso(record.postponed.until),
          untilLocal: isoIn(zone, record.postponed.until),
          code: record.postponed.code,
          why: POSTPONED_WHY[record.postponed.code],
        }
      : null,
    changedAt: record.changedAt !== undefined ? iso(record.changedAt) : null,
    attempts: record.attempts,
    reason: record.reason ? { code: record.reason.code, text: record.reason.text } : null,
    providerMessageId: record.providerId ?? null,
    delivery: record.delivery
      ? {
          status: record.delivery.status,
          errorCode: record.delivery.errorCode ?? null,
          ...(isUnknownSmsStatus(record.channel, record.delivery.status) && {
            unknown: true as const,
          }),
        }
      : null,
    replies,
    resends: record.resends,
    retries: record.retries,
    takeovers: record.takeovers,
  };
}

/** Why a step's job waits, for people. */
const POSTPONED_WHY: Readonly<Record<PostponeCode, string>> = {
  "send-window": "outside its send window",
  "frequency-cap": "the customer's frequency cap is reached",
  "call-not-over": "its call is not over",
  "thank-you-joined": "the thank-you it joined has not gone yet",
  retry: "a transient failure; tried again then",
};

function money(value: Money): TimelineMoney {
  return { amount: formatMinor(value), currency: value.currency };
}

function iso(epochMs: number): string {
  return new Date(epochMs).toISOString();
}

/**
 * An instant on the customer's clock, ISO with offset, to the second (the console cuts the offset
 * from a fixed place in it).
 */
function isoIn(zone: string, epochMs: number): string {
  const local = DateTime.fromMillis(epochMs, { zone }).startOf("second");
  return local.toISO({ suppressMilliseconds: true }) ?? "";
}

function validZone(zone: string | undefined): string | undefined {
  return zone && DateTime.local().setZone(zone).isValid ? zone : undefined;
}

/** A refund recorded against an order, as operators see it. */
export interface TimelineRefund {
  /** The refund event's id. */
  readonly eventId: string;
  /** A refund naming neither amount nor items: the whole order. */
  readonly full: boolean;
  readonly amount: TimelineMoney | null;
  /** Items handed back. */
  readonly items: readonly { readonly sku: string; readonly quantity: number }[];
}

/** An order's refunds as the timeline shows them. */
export function timelineRefunds(recorded: readonly RecordedRefund[]): TimelineRefund[] {
  return recorded.map((refund) => ({
    eventId: refund.refundId,
    full: refund.amount === undefined && refund.items === undefined,
    amount: refund.amount ? money(refund.amount) : null,
    items: (refund.items ?? []).map(({ sku, quantity }) => ({ sku, quantity })),
  }));
}

/**
 * What an order's refunds do to its purchase, for an order whose purchase has not arrived (as
 * intake applies refunds recorded before their purchase, domain/refund.ts).
 */
export function whenPurchaseArrives(refunds: readonly TimelineRefund[]): string {
  if (refunds.some((refund) => refund.full))
    return "the order is refunded in full: when its purchase arrives, nothing is planned for it (no follow-ups are sent) and nothing of it is kept";
  return "when its purchase arrives, its follow-ups are planned for what these refunds leave of it (the total less the amounts refunded in its currency, without the items handed back; an amount in another currency is ignored), and none when they leave nothing";
}
