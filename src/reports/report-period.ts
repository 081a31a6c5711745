import { DateTime } from "luxon";
import type { Owner } from "../domain/rules.js";
import type { ReportPeriod } from "./report-model.js";

/**
 * The period a report covers: the whole local days before the moment it is sent (yesterday for
 * daily reports, the 7 days before today for weekly ones), in the owner's zone, so DST days are
 * 23 or 25 hours long and nothing is counted twice or missed.
 */
export function reportPeriodAt(
  owner: Pick<Owner, "frequency" | "timezone">,
  at: DateTime,
): ReportPeriod {
  const end = at.setZone(owner.timezone).startOf("day");
  return periodOf(daysBefore(end, owner.frequency === "daily" ? 1 : 7), end, owner.timezone);
}

/**
 * The period just before `period`, for "up 17% on the previous week": as many days, or for a
 * calendar month the month before ("on the previous month" means that one, whatever its length).
 */
export function previousPeriod(period: ReportPeriod): ReportPeriod {
  const start = DateTime.fromISO(period.since, { zone: period.timezone });
  const end = DateTime.fromISO(period.until, { zone: period.timezone });
  const wholeMonth =
    start.day === 1 && +start === +start.startOf("day") && +end === +start.plus({ months: 1 });
  if (wholeMonth)
    return periodOf(start.minus({ months: 1 }).startOf("day"), start, period.timezone);
  return periodOf(
    daysBefore(start, Math.round(end.diff(start, "days").days)),
    start,
    period.timezone,
  );
}

/**
 * The start of the local day `days` before the day `start` begins. Not `start.minus({ days })`
 * alone: where a DST change skips midnight (Santiago, Beirut) that day starts at 01:00, and the
 * same wall time days earlier is an hour after that day's midnight.
 */
function daysBefore(start: DateTime, days: number): DateTime {
  return start.minus({ days }).startOf("day");
}

/**
 * The longest period a report covers: a year and a few days. The ledger keeps hourly counts 401
 * days, and a report reads every hour of its period and of the one before it, so a longer
 * period would read hours that hold nothing, at a cost that grows with its length.
 */
const MAX_REPORT_DAYS = 400;

/**
 * Why local dates (YYYY-MM-DD, inclusive since, exclusive until) make no report period, in words
 * for the operator who typed them; undefined when they make one.
 */
export function reportDatesProblem(since: string, until: string): string | undefined {
  const start = DateTime.fromISO(since, { zone: "UTC" });
  const end = DateTime.fromISO(until, { zone: "UTC" });
  if (!start.isValid || !end.isValid) return "dates are YYYY-MM-DD";
  if (start >= end) return "the first day must come before the end";
  if (end.diff(start, "days").days > MAX_REPORT_DAYS)
    return `a report covers at most ${MAX_REPORT_DAYS} days (the ledger keeps 401)`;
  return undefined;
}

/**
 * The local dates (YYYY-MM-DD, inclusive since, exclusive until) of the run sent for a scheduled
 * run that came due while no worker took it (`missed`, the period its own schedule gave it): from
 * its first day up to the first day of the period the schedule's next run covers (`next`), so
 * that the days of the runs the scheduler never made while no worker took its waiting one (a
 * scheduler makes its next run only when one is taken) are in it, and no day is in both. At
 * most MAX_REPORT_DAYS, the latest (the ledger keeps none older). Undefined when the next run
 * covers the missed run's days from their first (the owner's time moved later that day). Without
 * a next run, the missed run's own period.
 */
export function catchUpDates(
  missed: ReportPeriod,
  next: ReportPeriod | undefined,
): { since: string; until: string } | undefined {
  const first = missed.since.slice(0, 10);
  if (next === undefined) return { since: first, until: missed.until.slice(0, 10) };
  // By instant: the two may be in different zones (the rules moved the owner since).
  if (Date.parse(next.since) <= Date.parse(missed.since)) return undefined;
  return latestDays(first, next.since.slice(0, 10));
}

/**
 * The local dates (YYYY-MM-DD, inclusive since, exclusive until) a scheduled run covers given the
 * owner's mark (the date up to which, exclusive, the reports sent to them cover): from the mark
 * up to the end of the run's own period (`period`: its schedule's, or its catch-up's), so that a
 * change of weekday, frequency or zone, or a run dropped after its last failed attempt, neither
 * repeats nor skips a day. At most the latest MAX_REPORT_DAYS. Undefined when the mark is at or
 * after the period's end: its days were reported.
 */
export function datesSinceMark(
  period: ReportPeriod,
  mark: string,
): { since: string; until: string } | undefined {
  const until = period.until.slice(0, 10);
  const valid = /^\d{4}-\d{2}-\d{2}$/.test(mark) && DateTime.fromISO(mark).isValid;
  return latestDays(valid ? mark : period.since.slice(0, 10), until);
}

/** Local dates from `since` to `until` (exclusive), at most the latest MAX_REPORT_DAYS. */
function latestDays(since: string, until: string): { since: string; until: string } | undefined {
  const day = (date: string) => DateTime.fromISO(date, { zone: "UTC" });
  const first =
    DateTime.max(day(since), day(until).minus({ days: MAX_REPORT_DAYS })).toISODate() ?? since;
  return first < until ? { since: first, until } : undefined;
}

/**
 * Why the `since` and `until` a report run added by hand names make no report period, in words;
 * undefined when they make one. Each is a local date (YYYY-MM-DD; a date-time's day is taken),
 * and a run names both or neither.
 */
export function namedPeriodProblem(since: unknown, until: unknown): string | undefined {
  if (typeof since !== "string" || typeof until !== "string")
    return "a run names both since and until";
  const whole = [since, until].every(
    (text) =>
      /^\d{4}-\d{2}-\d{2}(?:$|T)/.test(text) && DateTime.fromISO(text, { zone: "UTC" }).isValid,
  );
  return whole
    ? reportDatesProblem(since.slice(0, 10), until.slice(0, 10))
    : "dates are YYYY-MM-DD";
}

/** A period from local dates (inclusive since, exclusive until) in a zone, for the CLI. */
export function periodFromDates(since: string, until: string, timezone: string): ReportPeriod {
  const problem = reportDatesProblem(since.slice(0, 10), until.slice(0, 10));
  if (problem) throw new RangeError(`report period ${since} to ${until}: ${problem}`);
  return periodOf(
    DateTime.fromISO(since, { zone: timezone }).startOf("day"),
    DateTime.fromISO(until, { zone: timezone }).startOf("day"),
    timezone,
  );
}

/** BullMQ cron pattern firing at the owner's local time (the scheduler applies their zone). */
export function reportCronPattern(owner: Pick<Owner, "frequency" | "weekday" | "time">): string {
  const [hour = "8", minute = "0"] = owner.time.split(":");
  const dayOfWeek = owner.frequency === "weekly" ? String(owner.weekday % 7) : "*";
  return `${Number(minute)} ${Number(hour)} * * ${dayOfWeek}`;
}

/**
 * When a report of `pattern` (reportCronPattern's form: `<minute> <hour> * * <weekday or *>`) runs
 * next in `timezone`, strictly after `afterMs`: its local time on the next day (or weekday) it runs.
 * A local time that does not exist that day (the hour skipped as DST begins: midnight in
 * Santiago or Beirut, 02:15 in Lord Howe's half hour) runs as much later as was skipped, that
 * day: cron's arithmetic (cron-parser) skipped such a day, and a daily report covers only the day
 * before, so that day was in no report. A time that happens twice runs once. Undefined for a
 * pattern of another form.
 */
export function nextReportRun(
  afterMs: number,
  pattern: string,
  timezone: string,
): number | undefined {
  const parts = /^(\d{1,2}) (\d{1,2}) \* \* (\*|[0-6])$/.exec(pattern);
  if (!parts) return undefined;
  const [, minute = "0", hour = "0", weekday = "*"] = parts;
  const from = DateTime.fromMillis(afterMs, { zone: timezone });
  if (!from.isValid) return undefined;
  for (let days = 0; days <= 8; days++) {
    const day = from.plus({ days });
    if (weekday !== "*" && day.weekday % 7 !== Number(weekday)) continue;
    const at = DateTime.fromObject(
      {
        year: day.year,
        month: day.month,
        day: day.day,
        hour: Number(hour),
        minute: Number(minute),
      },
      { zone: timezone },
    );
    if (at.toMillis() > afterMs) return at.toMillis();
  }
  return undefined;
}

function periodOf(start: DateTime, end: DateTime, timezone: string): ReportPeriod {
  return {
    since: start.toISO({ suppressMilliseconds: true }) ?? "",
    until: end.toISO({ suppressMilliseconds: true }) ?? "",
    timezone,
  };
}
