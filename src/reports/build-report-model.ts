import { DateTime, Duration } from "luxon";
import { SMALLEST_COMPARED_GROUP } from "../domain/check-in-comparison.js";
import { cutText } from "../domain/cut-text.js";
import { CHANNELS, type Channel } from "../domain/events.js";
import { formatMinor, fromFormerMinor } from "../domain/money.js";
import { STEP_KINDS, type StepKind } from "../domain/rules.js";
import { type LedgerHour, sumHours } from "../store/delivery-ledger.js";
import { reasonWords } from "./reason-words.js";
import {
  type BroughtBack,
  type CheckInCohort,
  type CheckInEffect,
  type DailySends,
  OUTCOMES,
  type Outcome,
  type OutcomeCounts,
  type ReasonCount,
  type ReportModel,
  type ReportPeriod,
  type ReportRow,
  type UnhappyReply,
} from "./report-model.js";
import { judgeReply } from "./unhappy-replies.js";

/** Reasons listed per kind of trouble. */
const TOP_REASONS = 5;
/** Longest reply text shown in a report line. */
const REPLY_EXCERPT = 240;

export interface ReportInput {
  readonly shopName: string;
  readonly ownerName: string;
  readonly period: ReportPeriod;
  readonly previousPeriod: ReportPeriod;
  /** Ledger hours of the period and of the previous period. */
  readonly hours: readonly LedgerHour[];
  readonly previousHours: readonly LedgerHour[];
  readonly upcoming: {
    readonly next7Days: Record<Channel, number>;
    readonly next30Days: Record<Channel, number>;
  };
  readonly replies: readonly {
    readonly receivedAt: number;
    readonly text: string;
    readonly orderId: string | null;
    readonly customerName: string | null;
    /** How it came (sms, email, voice); sms for replies indexed before December 2026. */
    readonly channel?: string;
    /** When someone marked it resolved (`followups resolve`), if they did. */
    readonly resolvedAt?: number;
    /** `<eventId>/<stepId>/<n>` (`@<shard>` after it outside shard 0), for `followups resolve`. */
    readonly id?: string;
  }[];
  /**
   * The rules' attribution window (ISO 8601; default P30D) and when the report is read (epoch ms):
   * whether customers checked in during the period may still come back.
   */
  readonly attribution?: { readonly window: string; readonly now: number };
  /** How many purchases of the replies could not be read (shown without order and name). */
  readonly unreadablePurchases?: number;
}

/** The attribution window when the input names none (the rules' default). */
const DEFAULT_WINDOW = "P30D";

/** Turns ledger figures into what an owner reads. Pure: the same input gives the same report. */
export function buildReportModel(input: ReportInput): ReportModel {
  const current = sumHours(input.hours);
  const previous = sumHours(input.previousHours);
  const rows = outcomeRows(current);
  const optOuts = optOutsOf(current);
  const totals = { ...totalCounts(rows), optout: optOuts.total };
  const previousTotals = {
    ...totalCounts(outcomeRows(previous)),
    optout: optOutsOf(previous).total,
  };
  return {
    shopName: input.shopName,
    ownerName: input.ownerName,
    period: input.period,
    previousPeriod: input.previousPeriod,
    rows,
    totals,
    changes: OUTCOMES.map((outcome) => ({
      outcome,
      current: totals[outcome],
      previous: previousTotals[outcome],
      percent:
        previousTotals[outcome] === 0
          ? null
          : Math.round(
              ((totals[outcome] - previousTotals[outcome]) / previousTotals[outcome]) * 100,
            ),
    })),
    topFailureReasons: topReasons(current, ["failed", "undelivered"]),
    topSkipReasons: topReasons(current, ["skipped"]),
    topCancelReasons: topReasons(current, ["cancelled"]),
    optOuts: { byChannel: optOuts.byChannel },
    upcoming: input.upcoming,
    unhappyReplies: unhappyReplies(input.replies, input.period.timezone),
    complaints: complaints(input.replies),
    dailySends: dailySends(input.hours, input.period),
    broughtBack: broughtBack(current),
    checkInEffect: checkInEffect(current, input.period, input.attribution),
    unreadable: { count: input.unreadablePurchases ?? 0 },
  };
}

/**
 * The ledger's `checkin|…` and `checkin-back|…` fields of the period: customers whose check-in
 * went out (or, skipped, would have) in it, and who of them bought again within the window.
 */
function checkInEffect(
  fields: ReadonlyMap<string, number>,
  period: ReportPeriod,
  attribution: ReportInput["attribution"],
): CheckInEffect {
  const sent = { customers: 0, cameBack: 0 };
  const skipped = { customers: 0, cameBack: 0 };
  const reasons = new Map<string, { customers: number; cameBack: number }>();
  for (const [field, count] of fields) {
    const [tag, group, code = ""] = field.split("|");
    if (tag !== "checkin" && tag !== "checkin-back") continue;
    const key = tag === "checkin" ? "customers" : "cameBack";
    if (group === "sent") sent[key] += count;
    if (group !== "skipped") continue;
    skipped[key] += count;
    const reason = reasons.get(code) ?? { customers: 0, cameBack: 0 };
    reason[key] += count;
    reasons.set(code, reason);
  }
  const cohort = (c: { customers: number; cameBack: number }): CheckInCohort => ({
    ...c,
    rate: c.customers === 0 ? null : Math.round((c.cameBack / c.customers) * 1000) / 1000,
  });
  const window = attribution?.window ?? DEFAULT_WINDOW;
  // A fixed length, as returns are counted (countReturnAfterCheckIns): P1M is 30 days.
  const closes = DateTime.fromISO(period.until, { zone: period.timezone }).plus(
    Duration.fromISO(window).toMillis(),
  );
  const open = attribution !== undefined && closes.toMillis() > attribution.now;
  return {
    window,
    checkedIn: cohort(sent),
    notCheckedIn: {
      ...cohort(skipped),
      byReason: [...reasons.entries()]
        .map(([code, r]) => ({ code, ...r }))
        .sort((a, b) => b.customers - a.customers || a.code.localeCompare(b.code)),
    },
    comparable:
      sent.customers >= SMALLEST_COMPARED_GROUP && skipped.customers >= SMALLEST_COMPARED_GROUP,
    smallestGroup: SMALLEST_COMPARED_GROUP,
    openUntil: open ? (closes.toISO({ suppressMilliseconds: true }) ?? null) : null,
  };
}

/**
 * The ledger's `back|…`, `backrev|…` (and `backrev4217|…`), `redeemed|…`, discount `sent|…` and `codeagain|…` fields,
 * summed.
 */
function broughtBack(fields: ReadonlyMap<string, number>): BroughtBack {
  let orders = 0;
  let byCode = 0;
  const revenue = new Map<string, number>();
  const rules = new Map<string, { orders: number; revenue: Map<string, number> }>();
  const discounts = new Map<string, { sent: number; redeemed: number }>();
  const pairs = new Map<
    string,
    { channel: string; kind: string; orders: number; revenue: Map<string, number> }
  >();
  const pairOf = (channel: string, kind: string) => {
    const key = `${channel}|${kind}`;
    const found = pairs.get(key) ?? { channel, kind, orders: 0, revenue: new Map() };
    pairs.set(key, found);
    return found;
  };
  const ruleOf = (ruleId: string) => {
    const found = rules.get(ruleId) ?? { orders: 0, revenue: new Map<string, number>() };
    rules.set(ruleId, found);
    return found;
  };
  const discountOf = (ruleId: string) => {
    const found = discounts.get(ruleId) ?? { sent: 0, redeemed: 0 };
    discounts.set(ruleId, found);
    return found;
  };
  for (const [field, count] of fields) {
    const [tag, channel, kind, ruleId = "", by, currency = ""] = field.split("|");
    if (tag === "back") {
      orders += count;
      if (by === "code") byCode += count;
      ruleOf(ruleId).orders += count;
      pairOf(channel ?? "", kind ?? "").orders += count;
    } else if (tag === "backrev" || tag === "backrev4217") {
      // `backrev` counts in the minor units of the version that wrote it, `backrev4217` in ISO
      // 4217's (DeliveryLedger.countBroughtBack).
      const minor = tag === "backrev" ? fromFormerMinor({ minor: count, currency }).minor : count;
      revenue.set(currency, (revenue.get(currency) ?? 0) + minor);
      const rule = ruleOf(ruleId);
      rule.revenue.set(currency, (rule.revenue.get(currency) ?? 0) + minor);
      const pair = pairOf(channel ?? "", kind ?? "");
      pair.revenue.set(currency, (pair.revenue.get(currency) ?? 0) + minor);
    } else if (tag === "redeemed" && channel) {
      discountOf(channel).redeemed += count;
    } else if (tag === "sent" && kind === "discount") {
      discountOf(ruleId).sent += count;
    } else if (tag === "codeagain") {
      // A resend of a code already sent: a message more, not a code more.
      discountOf(ruleId).sent -= count;
    }
  }
  const amounts = (byCurrency: ReadonlyMap<string, number>) =>
    [...byCurrency.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([currency, minor]) => ({ currency, amount: formatMinor({ minor, currency }) }));
  return {
    orders,
    byCode,
    revenue: amounts(revenue),
    byRule: [...rules.entries()]
      .map(([ruleId, rule]) => ({ ruleId, orders: rule.orders, revenue: amounts(rule.revenue) }))
      .sort((a, b) => b.orders - a.orders || a.ruleId.localeCompare(b.ruleId)),
    byChannelKind: [...pairs.values()]
      .map((pair) => ({ ...pair, revenue: amounts(pair.revenue) }))
      .sort((a, b) => a.channel.localeCompare(b.channel) || a.kind.localeCompare(b.kind)),
    redemption: [...discounts.entries()]
      .map(([ruleId, d]) => ({
        ruleId,
        sent: d.sent,
        redeemed: d.redeemed,
        rate: d.sent === 0 ? null : Math.round((d.redeemed / d.sent) * 1000) / 1000,
      }))
      .sort((a, b) => a.ruleId.localeCompare(b.ruleId)),
  };
}

const emptyCounts = (): Record<Outcome, number> =>
  Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;

function outcomeRows(fields: ReadonlyMap<string, number>): ReportRow[] {
  const rows = new Map<
    string,
    { channel: Channel; kind: StepKind; counts: Record<Outcome, number> }
  >();
  for (const [field, count] of fields) {
    const [outcome, channel, kind] = field.split("|");
    if (!isOutcome(outcome) || !isChannel(channel) || !isKind(kind)) continue;
    const key = `${channel}|${kind}`;
    const row = rows.get(key) ?? { channel, kind, counts: emptyCounts() };
    row.counts[outcome] += count;
    rows.set(key, row);
  }
  // Opt-outs are per channel, not per kind (`optout|sms|-|-`): not in these rows (optOutsOf).
  return [...rows.values()].sort(
    (a, b) =>
      CHANNELS.indexOf(a.channel) - CHANNELS.indexOf(b.channel) ||
      STEP_KINDS.indexOf(a.kind) - STEP_KINDS.indexOf(b.kind),
  );
}

/**
 * Opt-outs that stop texts and calls to a number together, each counted on both phone channels:
 * a text STOP, a 9 pressed on a call, the SMS provider's opt-out.
 */
const PHONE_WIDE_OPT_OUTS = ["sms-stop", "call-keypad", "provider"];

/**
 * The ledger's `optout|<channel>|-|-` counts by channel, and opt-outs in all: one that stopped
 * texts and calls to a number together is counted on both channels but once in all.
 */
function optOutsOf(fields: ReadonlyMap<string, number>): {
  byChannel: Record<Channel, number>;
  total: number;
} {
  const byChannel = Object.fromEntries(CHANNELS.map((c) => [c, 0])) as Record<Channel, number>;
  const phoneWide = new Map<string, { sms: number; voice: number }>();
  for (const [field, count] of fields) {
    const parts = field.split("|");
    if (parts[0] === "optout" && isChannel(parts[1])) byChannel[parts[1]] += count;
    const [tag, outcome, channel, , reason = ""] = parts;
    if (tag !== "reason" || outcome !== "optout" || !PHONE_WIDE_OPT_OUTS.includes(reason)) continue;
    if (channel !== "sms" && channel !== "voice") continue;
    const both = phoneWide.get(reason) ?? { sms: 0, voice: 0 };
    both[channel] += count;
    phoneWide.set(reason, both);
  }
  const counted = CHANNELS.reduce((sum, c) => sum + byChannel[c], 0);
  const twice = [...phoneWide.values()].reduce((sum, b) => sum + Math.min(b.sms, b.voice), 0);
  return { byChannel, total: Math.max(0, counted - twice) };
}

function totalCounts(rows: readonly ReportRow[]): OutcomeCounts {
  const totals = emptyCounts();
  for (const row of rows) for (const outcome of OUTCOMES) totals[outcome] += row.counts[outcome];
  return totals;
}

function topReasons(
  fields: ReadonlyMap<string, number>,
  outcomes: readonly string[],
): ReasonCount[] {
  const byCode = new Map<string, number>();
  for (const [field, count] of fields) {
    const [tag, outcome, , , code] = field.split("|");
    if (tag !== "reason" || !outcome || !outcomes.includes(outcome) || !code) continue;
    byCode.set(code, (byCode.get(code) ?? 0) + count);
  }
  return [...byCode.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, TOP_REASONS)
    .map(([code, count]) => ({ code, words: reasonWords(code), count }));
}

function unhappyReplies(replies: ReportInput["replies"], zone: string): UnhappyReply[] {
  const flagged: UnhappyReply[] = [];
  for (const reply of [...replies].sort((a, b) => a.receivedAt - b.receivedAt)) {
    const verdict = judgeReply(reply.text);
    if (!verdict.unhappy) continue;
    flagged.push({
      receivedAt:
        DateTime.fromMillis(reply.receivedAt, { zone }).toISO({ suppressMilliseconds: true }) ?? "",
      orderId: reply.orderId,
      customerName: reply.customerName,
      text:
        reply.text.length > REPLY_EXCERPT
          ? `${cutText(reply.text, REPLY_EXCERPT - 1)}…`
          : reply.text,
      why: verdict.why ?? "looks unhappy",
      channel: reply.channel ?? "sms",
      resolved: reply.resolvedAt !== undefined,
      ...(reply.id !== undefined && { id: reply.id }),
    });
  }
  return flagged;
}

/** Unhappy replies of the period by channel, how many were resolved, and how fast (median). */
function complaints(replies: ReportInput["replies"]): ReportModel["complaints"] {
  const byChannel: Record<string, number> = {};
  const minutes: number[] = [];
  let resolved = 0;
  for (const reply of replies) {
    if (!judgeReply(reply.text).unhappy) continue;
    const channel = reply.channel ?? "sms";
    byChannel[channel] = (byChannel[channel] ?? 0) + 1;
    if (reply.resolvedAt !== undefined) {
      resolved++;
      minutes.push(Math.max(0, reply.resolvedAt - reply.receivedAt) / 60_000);
    }
  }
  minutes.sort((a, b) => a - b);
  const middle = minutes.length / 2;
  const median =
    minutes.length === 0
      ? null
      : minutes.length % 2 === 1
        ? (minutes[Math.floor(middle)] ?? 0)
        : ((minutes[middle - 1] ?? 0) + (minutes[middle] ?? 0)) / 2;
  return {
    byChannel,
    resolved,
    medianMinutesToResolve: median === null ? null : Math.round(median),
  };
}

/** Sends per local day of the period, every day present (zero days too) so the chart has no gaps. */
function dailySends(hours: readonly LedgerHour[], period: ReportPeriod): DailySends[] {
  const zone = period.timezone;
  const days = new Map<string, Record<Channel, number>>();
  let day = DateTime.fromISO(period.since, { zone });
  const end = DateTime.fromISO(period.until, { zone });
  while (day < end) {
    days.set(
      day.toISODate() ?? "",
      Object.fromEntries(CHANNELS.map((c) => [c, 0])) as Record<Channel, number>,
    );
    day = day.plus({ days: 1 });
  }
  for (const hour of hours) {
    const date = DateTime.fromMillis(hour.start, { zone }).toISODate() ?? "";
    const counts = days.get(date);
    if (!counts) continue;
    for (const [field, n] of hour.counts) {
      const [outcome, channel] = field.split("|");
      if (outcome === "sent" && isChannel(channel)) counts[channel] += n;
    }
  }
  return [...days.entries()].map(([date, byChannel]) => ({ date, byChannel }));
}

function isOutcome(value: string | undefined): value is Outcome {
  return (OUTCOMES as readonly string[]).includes(value ?? "");
}
function isChannel(value: string | undefined): value is Channel {
  return (CHANNELS as readonly string[]).includes(value ?? "");
}
function isKind(value: string | undefined): value is StepKind {
  return (STEP_KINDS as readonly string[]).includes(value ?? "");
}
