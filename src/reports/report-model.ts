import type { Channel } from "../domain/events.js";
import type { StepKind } from "../domain/rules.js";

/**
 * What an owner's report says, independent of how it is shown (email HTML and text, CLI text,
 * JSON, CSV). Built by buildReportModel from ledger figures; rendered by the report renderers.
 */

/**
 * Outcomes counted in the ledger. `optout` counts opt-outs received in the period: in `totals`
 * each once (see `optOuts`), never in a channel-and-kind row.
 */
export const OUTCOMES = [
  "scheduled",
  "sent",
  "delivered",
  "undelivered",
  "failed",
  "skipped",
  "cancelled",
  "optout",
  "reply",
] as const;
export type Outcome = (typeof OUTCOMES)[number];

export interface ReportPeriod {
  /** Inclusive start, ISO date-time with the owner's offset. */
  readonly since: string;
  /** Exclusive end, ISO date-time with the owner's offset. */
  readonly until: string;
  readonly timezone: string;
}

/** Counts of one channel and kind (or a total) by outcome. */
export type OutcomeCounts = Readonly<Record<Outcome, number>>;

export interface ReportRow {
  readonly channel: Channel;
  readonly kind: StepKind;
  readonly counts: OutcomeCounts;
}

export interface ReasonCount {
  /** Machine code, e.g. `capped`, `permanent 550`. */
  readonly code: string;
  /** Plain words for owners, e.g. "the customer's email limit for the day was reached". */
  readonly words: string;
  readonly count: number;
}

export interface OutcomeChange {
  readonly outcome: Outcome;
  readonly current: number;
  readonly previous: number;
  /** Percent change, null when the previous period had none. */
  readonly percent: number | null;
}

export interface UnhappyReply {
  /** When it arrived, ISO with the owner's offset. */
  readonly receivedAt: string;
  readonly orderId: string | null;
  readonly customerName: string | null;
  /** The reply, shortened to what a report line can hold. */
  readonly text: string;
  /** Why it was flagged: "score 2 of 10", "mentions “broken”". */
  readonly why: string;
  /** How it came: sms, email or voice. */
  readonly channel: string;
  /** Whether someone marked it resolved (`followups resolve`). */
  readonly resolved: boolean;
  /**
   * `<eventId>/<stepId>/<n>` (`@<shard>` after it outside shard 0), what `followups resolve`
   * takes (absent for older replies).
   */
  readonly id?: string;
}

export interface DailySends {
  /** Local date YYYY-MM-DD. */
  readonly date: string;
  readonly byChannel: Readonly<Record<Channel, number>>;
}

export interface ReportModel {
  readonly shopName: string;
  readonly ownerName: string;
  readonly period: ReportPeriod;
  readonly previousPeriod: ReportPeriod;
  /** One row per channel and kind with any activity, sorted by channel then kind. */
  readonly rows: readonly ReportRow[];
  readonly totals: OutcomeCounts;
  readonly changes: readonly OutcomeChange[];
  readonly topFailureReasons: readonly ReasonCount[];
  /** Why steps were skipped (not sent when due); cancellations are apart, as in `totals`. */
  readonly topSkipReasons: readonly ReasonCount[];
  /** Why steps were cancelled before they were due (refunded, by an operator, erased). */
  readonly topCancelReasons: readonly ReasonCount[];
  /**
   * Opt-outs received in the period by the channel they stop (they are per channel, not per
   * kind). A text STOP stops texts and calls, so it counts on sms and voice; `totals.optout`
   * counts it once.
   */
  readonly optOuts: { readonly byChannel: Readonly<Record<Channel, number>> };
  /** Pending follow-ups due in the next 7 and 30 days from the end of the period, by channel. */
  readonly upcoming: {
    readonly next7Days: Readonly<Record<Channel, number>>;
    readonly next30Days: Readonly<Record<Channel, number>>;
  };
  readonly unhappyReplies: readonly UnhappyReply[];
  /** The period's unhappy replies by channel, how many were resolved, and the median time to it. */
  readonly complaints: {
    readonly byChannel: Readonly<Record<string, number>>;
    readonly resolved: number;
    /** Whole minutes from the reply to its resolution; null when none was resolved. */
    readonly medianMinutesToResolve: number | null;
  };
  readonly dailySends: readonly DailySends[];
  /** Purchases the follow-ups brought back in the period (see BroughtBack). */
  readonly broughtBack: BroughtBack;
  /** Repeat purchases of customers who got a check-in against those due one who did not. */
  readonly checkInEffect: CheckInEffect;
  /**
   * Purchases of the period's replies whose stored purchase cannot be read (damaged, or a newer
   * version's format): their replies are shown without order and customer name.
   */
  readonly unreadable: { readonly count: number };
}

/** Customers of one group and how many of them bought again within the attribution window. */
export interface CheckInCohort {
  readonly customers: number;
  readonly cameBack: number;
  /** cameBack / customers to three places; null when the group is empty. */
  readonly rate: number | null;
}

/**
 * Whether check-ins pay their way: customers whose check-in went out in the period (or, skipped,
 * would have) and how many bought again within the attribution window after it. A customer is
 * counted once per purchase whose check-in fell in the period.
 */
export interface CheckInEffect {
  /** The attribution window, ISO 8601 (`P30D`). */
  readonly window: string;
  readonly checkedIn: CheckInCohort;
  /** Due a check-in but skipped: no consent, opted out, a frequency cap, the channel's budget. */
  readonly notCheckedIn: CheckInCohort & {
    /** By skip reason, most customers first. */
    readonly byReason: readonly {
      readonly code: string;
      readonly customers: number;
      readonly cameBack: number;
    }[];
  };
  /** Both groups have at least `smallestGroup` customers, so their rates can be compared. */
  readonly comparable: boolean;
  readonly smallestGroup: number;
  /**
   * Until when customers of the period may still buy again and count (ISO, the report's zone);
   * null once every window has closed.
   */
  readonly openUntil: string | null;
}

/** An amount of one currency, exact: `"1299.00"` GBP. */
export interface CurrencyAmount {
  readonly currency: string;
  readonly amount: string;
}

/**
 * Purchases attributed to a follow-up sent before them (within the rules' attribution window):
 * by a discount code the order redeemed, else by the latest follow-up sent to the customer.
 */
export interface BroughtBack {
  readonly orders: number;
  /** Of those, attributed by a redeemed code. */
  readonly byCode: number;
  readonly revenue: readonly CurrencyAmount[];
  /** Per rule of the follow-up that brought them back, most orders first. */
  readonly byRule: readonly {
    readonly ruleId: string;
    readonly orders: number;
    readonly revenue: readonly CurrencyAmount[];
  }[];
  /** Per channel and kind of the follow-up that brought them back (the CSV's columns). */
  readonly byChannelKind: readonly {
    readonly channel: string;
    readonly kind: string;
    readonly orders: number;
    readonly revenue: readonly CurrencyAmount[];
  }[];
  /** Per discount rule: codes sent and redeemed in the period, and the rate (null: none sent). */
  readonly redemption: readonly {
    readonly ruleId: string;
    readonly sent: number;
    readonly redeemed: number;
    readonly rate: number | null;
  }[];
}
