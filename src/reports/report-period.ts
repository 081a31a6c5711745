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
  const start = end.minus({ days: owner.frequency === "daily" ? 1 : 7 });
  return periodOf(start, end, owner.timezone);
}

/** The period of the same length just before `period`, for "up 17% on the previous week". */
export function previousPeriod(period: ReportPeriod): ReportPeriod {
  const start = DateTime.fromISO(period.since, { zone: period.timezone });
  const end = DateTime.fromISO(period.until, { zone: period.timezone });
  const days = Math.round(end.diff(start, "days").days);
  return periodOf(start.minus({ days }), start, period.timezone);
}

/** A period from local dates (inclusive since, exclusive until) in a zone, for the CLI. */
export function periodFromDates(since: string, until: string, timezone: string): ReportPeriod {
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

function periodOf(start: DateTime, end: DateTime, timezone: string): ReportPeriod {
  return {
    since: start.toISO({ suppressMilliseconds: true }) ?? "",
    until: end.toISO({ suppressMilliseconds: true }) ?? "",
    timezone,
  };
}
