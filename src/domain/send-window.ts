import { DateTime } from "luxon";
import type { SendWindow, Weekday } from "./rules.js";

/** Longest stretch searched for an open window; config validation keeps real windows far inside it. */
const MAX_DAYS_AHEAD = 800;

/**
 * The earliest instant at or after `from` that lies inside the window, in the zone's local time.
 * A window opening that falls into a DST gap moves to the first valid local time after it, so
 * the result always exists on the wall clock; the result is never earlier than `from`.
 */
export function nextSendWindow(
  from: DateTime,
  zone: string,
  window: SendWindow,
  holidays: ReadonlySet<string>,
): DateTime {
  const local = from.setZone(zone);
  let day = local.startOf("day");
  for (let i = 0; i < MAX_DAYS_AHEAD; i++) {
    if (isOpenDay(day, window, holidays)) {
      const opens = atMinute(day, window.startMinute, zone);
      const closes = atMinute(day, window.endMinute, zone);
      if (local < opens) return opens;
      if (local < closes) return local;
    }
    day = day.plus({ days: 1 }).startOf("day");
  }
  throw new Error(`no send window opens within ${MAX_DAYS_AHEAD} days of ${from.toISO()}`);
}

/** Whether `at` lies inside the window (the send-time guard asks this again when a step is due). */
export function isInSendWindow(
  at: DateTime,
  zone: string,
  window: SendWindow,
  holidays: ReadonlySet<string>,
): boolean {
  return nextSendWindow(at, zone, window, holidays).toMillis() === at.toMillis();
}

function isOpenDay(day: DateTime, window: SendWindow, holidays: ReadonlySet<string>): boolean {
  if (!window.days.has(day.weekday as Weekday)) return false;
  return !(window.closedOnHolidays && holidays.has(day.toISODate() ?? ""));
}

/** Local wall-clock time on `day`; luxon moves a time inside a DST gap forward past the gap. */
function atMinute(day: DateTime, minute: number, zone: string): DateTime {
  if (minute >= 24 * 60) return day.plus({ days: 1 }).startOf("day");
  return DateTime.fromObject(
    {
      year: day.year,
      month: day.month,
      day: day.day,
      hour: Math.floor(minute / 60),
      minute: minute % 60,
    },
    { zone },
  );
}
