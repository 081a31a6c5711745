import { DateTime, Duration } from "luxon";
import { plainText } from "../domain/unsafe-text.js";
import type {
  CheckInCohort,
  CurrencyAmount,
  Outcome,
  OutcomeChange,
  ReportModel,
  ReportPeriod,
} from "./report-model.js";

/**
 * Wording shared by the text and HTML reports: dates in the owner's zone, change sentences and
 * outcome names. English only, with fixed month and weekday names so output never depends on the
 * host's ICU data.
 */

const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] as const;
const MONTHS = [
  "Jan",
  "Feb",
  "Mar",
  "Apr",
  "May",
  "Jun",
  "Jul",
  "Aug",
  "Sep",
  "Oct",
  "Nov",
  "Dec",
] as const;

/** Outcome names as an owner reads them in tables and sentences. */
export const OUTCOME_NAMES: Readonly<Record<Outcome, string>> = {
  scheduled: "scheduled",
  sent: "sent",
  delivered: "delivered",
  undelivered: "undelivered",
  failed: "failed",
  skipped: "skipped",
  cancelled: "cancelled",
  optout: "opt-outs",
  reply: "replies",
};

/**
 * The report table's outcome columns; undelivered only when some SMS went undelivered. Opt-outs
 * are per channel, not per kind: optOutLines.
 */
export function tableOutcomes(model: ReportModel): readonly Outcome[] {
  const base: Outcome[] = ["scheduled", "sent", "delivered", "failed", "skipped", "cancelled"];
  if (model.totals.undelivered > 0) base.splice(3, 0, "undelivered");
  return base;
}

function localDay(date: DateTime, withYear: boolean): string {
  const text = `${WEEKDAYS[date.weekday - 1]} ${date.day} ${MONTHS[date.month - 1]}`;
  return withYear ? `${text} ${date.year}` : text;
}

/** First and last local day of a period (its end is exclusive). */
function periodDays(period: ReportPeriod): { first: DateTime; last: DateTime } {
  const first = DateTime.fromISO(period.since, { zone: period.timezone }).startOf("day");
  const end = DateTime.fromISO(period.until, { zone: period.timezone }).minus({ milliseconds: 1 });
  const last = end < first ? first : end.startOf("day");
  return { first, last };
}

/** "Mon 16 Nov – Sun 22 Nov 2026"; one date for a one-day period; both years when they differ. */
export function periodTitle(period: ReportPeriod): string {
  const { first, last } = periodDays(period);
  if (first.hasSame(last, "day")) return localDay(first, true);
  const sameYear = first.year === last.year;
  return `${localDay(first, !sameYear)} – ${localDay(last, true)}`;
}

/** "week", "day", "month" or "period": what "the previous …" refers to. */
export function periodNoun(period: ReportPeriod): string {
  const { first, last } = periodDays(period);
  const days = Math.round(last.diff(first, "days").days) + 1;
  if (days === 1) return "day";
  if (days === 7) return "week";
  if (first.day === 1 && last.hasSame(last.endOf("month"), "day") && first.hasSame(last, "month")) {
    return "month";
  }
  return "period";
}

/** "Tue 17 Nov 14:05" in the report's zone. */
export function localDateTime(iso: string, timezone: string): string {
  const at = DateTime.fromISO(iso, { zone: timezone });
  if (!at.isValid) return plainText(iso);
  const time = `${String(at.hour).padStart(2, "0")}:${String(at.minute).padStart(2, "0")}`;
  return `${localDay(at, false)} ${time}`;
}

/** "Mon 16 Nov" for a local YYYY-MM-DD date. */
export function shortDate(date: string): string {
  const day = DateTime.fromISO(date, { zone: "UTC" });
  return day.isValid ? localDay(day, false) : plainText(date);
}

/** 1234 → "1,234". */
export function formatCount(value: number): string {
  return String(Math.round(value)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** "sent 42, up 17% on the previous week (36)". */
export function changeSentence(change: OutcomeChange, noun: string): string {
  const head = `${OUTCOME_NAMES[change.outcome]} ${formatCount(change.current)}`;
  return `${head}, ${changeWords(change, noun)}`;
}

/** "up 17% on the previous week (36)", "none the previous week", "same as the previous week". */
export function changeWords(change: OutcomeChange, noun: string): string {
  const previous = `the previous ${noun}`;
  if (change.percent === null || change.previous === 0) {
    return change.current === 0 ? `none ${previous} either` : `none ${previous}`;
  }
  const rounded = Math.round(change.percent);
  if (change.current === change.previous) return `same as ${previous}`;
  if (rounded === 0) return `about the same as ${previous} (${formatCount(change.previous)})`;
  const direction = rounded > 0 ? "up" : "down";
  return `${direction} ${formatCount(Math.abs(rounded))}% on ${previous} (${formatCount(change.previous)})`;
}

/** Changes worth a line: skips outcomes with nothing in either period. */
export function notableChanges(model: ReportModel): readonly OutcomeChange[] {
  return model.changes.filter((change) => change.current !== 0 || change.previous !== 0);
}

/** Capitalises the first letter of a reason for use as a list item. */
export function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/**
 * The period's complaints in one sentence: unhappy replies by channel, how many were resolved, and
 * the median time to resolve them. Empty when there were none.
 */
export function complaintsSentence(complaints: {
  readonly byChannel: Readonly<Record<string, number>>;
  readonly resolved: number;
  readonly medianMinutesToResolve: number | null;
}): string {
  const channels = Object.entries(complaints.byChannel).filter(([, n]) => n > 0);
  const total = channels.reduce((sum, [, n]) => sum + n, 0);
  if (total === 0) return "";
  const by = channels
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([channel, n]) => `${n} by ${channel}`)
    .join(", ");
  const median = complaints.medianMinutesToResolve;
  const speed =
    median === null
      ? ""
      : `; half were resolved within ${median < 60 ? `${median} min` : `${Math.floor(median / 60)} h ${median % 60} min`}`;
  return `${by}. Resolved: ${complaints.resolved} of ${total}${speed}.`;
}

/** "412.50 EUR and 89.99 GBP". */
export function describeAmounts(amounts: readonly CurrencyAmount[]): string {
  const parts = amounts.map((a) => `${a.amount} ${a.currency}`);
  return parts.length <= 1
    ? (parts[0] ?? "nothing")
    : `${parts.slice(0, -1).join(", ")} and ${parts.at(-1)}`;
}

/** The owner's answer to "do the follow-ups bring customers back?". */
export function broughtBackLines(model: ReportModel, noun: string): string[] {
  const back = model.broughtBack;
  const lines: string[] = [];
  if (back.orders === 0) {
    lines.push(`No purchase in this ${noun} came within the attribution window after a follow-up.`);
  } else {
    const orders = `${formatCount(back.orders)} order${back.orders === 1 ? "" : "s"}`;
    lines.push(
      `${orders} came after a follow-up (${formatCount(back.byCode)} with its discount code), worth ${describeAmounts(back.revenue)}.`,
    );
    for (const rule of back.byRule) {
      lines.push(
        `${rule.ruleId}: ${formatCount(rule.orders)} order${rule.orders === 1 ? "" : "s"}, ${describeAmounts(rule.revenue)}`,
      );
    }
  }
  for (const rule of back.redemption) {
    const rate = rule.rate === null ? "" : ` (${Math.round(rule.rate * 100)}%)`;
    lines.push(
      `${rule.ruleId} codes: ${formatCount(rule.redeemed)} redeemed of ${formatCount(rule.sent)} sent${rate}`,
    );
  }
  return lines;
}

/** Skip codes of the check-in comparison in a few words, for a parenthesis. */
const SKIP_SHORT_WORDS: Readonly<Record<string, string>> = {
  "no-consent": "no consent",
  "opted-out": "opted out",
  capped: "message limit reached",
  "budget-reached": "budget spent",
};

/** "30 days", "1 month and 2 weeks": an ISO 8601 duration in words, without the host's ICU. */
export function durationWords(iso: string): string {
  const duration = Duration.fromISO(iso);
  if (!duration.isValid) return plainText(iso);
  const units = ["years", "months", "weeks", "days", "hours", "minutes"] as const;
  const parts = units.flatMap((unit) => {
    const n = duration.get(unit);
    return n === 0 ? [] : [`${formatCount(n)} ${n === 1 ? unit.slice(0, -1) : unit}`];
  });
  return parts.length === 0 ? plainText(iso) : parts.join(" and ");
}

/** "12 (15%)": a group's returns and its rate. */
function cameBackWords(cohort: CheckInCohort): string {
  const rate = cohort.rate === null ? "" : ` (${Math.round(cohort.rate * 100)}%)`;
  return `${formatCount(cohort.cameBack)}${rate}`;
}

/**
 * The owner's answer to "do the check-ins work?": the repeat-purchase rate of customers who got a
 * check-in against those due one who did not, and whether the groups are big enough to compare.
 */
export function checkInEffectLines(model: ReportModel, noun: string): string[] {
  const effect = model.checkInEffect;
  const { checkedIn, notCheckedIn } = effect;
  const within = `within ${durationWords(effect.window)}`;
  if (checkedIn.customers === 0 && notCheckedIn.customers === 0) {
    return [`No customer was due a check-in in this ${noun}, so there is nothing to compare yet.`];
  }
  const customers = (n: number) => `${formatCount(n)} customer${n === 1 ? "" : "s"}`;
  const lines = [
    checkedIn.customers === 0
      ? `No customer got a check-in in this ${noun}.`
      : `Of ${customers(checkedIn.customers)} who got a check-in in this ${noun}, ${cameBackWords(checkedIn)} bought again ${within}.`,
  ];
  if (notCheckedIn.customers === 0) {
    lines.push("Every customer due a check-in got one, so there is no one to compare them with.");
  } else {
    const why = notCheckedIn.byReason
      .map((reason) => SKIP_SHORT_WORDS[reason.code] ?? reason.code)
      .join(", ");
    lines.push(
      `Of ${customers(notCheckedIn.customers)} due a check-in who did not get one (${why}), ${cameBackWords(notCheckedIn)} bought again ${within}.`,
    );
  }
  if (checkedIn.customers > 0 && notCheckedIn.customers > 0) {
    if (!effect.comparable) {
      lines.push(
        `Too few customers to compare yet: each group needs at least ${effect.smallestGroup} before a difference means more than chance.`,
      );
    } else {
      const a = Math.round((checkedIn.rate ?? 0) * 100);
      const b = Math.round((notCheckedIn.rate ?? 0) * 100);
      const often = a === b ? "about as often as" : a > b ? "more often than" : "less often than";
      lines.push(
        `Customers who got a check-in bought again ${often} those who did not (${a}% against ${b}%).`,
      );
    }
  }
  if (effect.openUntil !== null) {
    const until = DateTime.fromISO(effect.openUntil, { zone: model.period.timezone });
    lines.push(
      `Customers of this ${noun} have until ${localDay(until, true)} to buy again, so these figures may still rise.`,
    );
  }
  return lines;
}

/**
 * The opt-outs of the period: how many in all (a text STOP, which stops texts and calls to the
 * number, once) and why the channels' counts may add up to more.
 */
export function optOutLines(model: ReportModel, noun: string): string[] {
  const total = model.totals.optout;
  if (total === 0) return [`No one opted out in this ${noun}.`];
  const lines = [`${formatCount(total)} ${total === 1 ? "opt-out" : "opt-outs"} in this ${noun}.`];
  if (model.optOuts.byChannel.sms > 0 && model.optOuts.byChannel.voice > 0)
    lines.push(
      "A text STOP, or 9 pressed on a call, stops texts and calls to the number: it counts once here, and under both sms and voice below.",
    );
  return lines;
}
