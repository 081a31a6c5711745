import { DateTime } from "luxon";
import type { SendWindow, Weekday } from "./rules.js";
import { zoneFor } from "./time-zone.js";

/** Longest stretch searched for an open window; config validation keeps real windows far inside it. */
const MAX_DAYS_AHEAD = 800;

/** A window that never opens (every open day a holiday, say): the step cannot be sent. */
export class NoSendWindowError extends Error {
  override readonly name = "NoSendWindowError";
}

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
  const local = from.setZone(zoneFor(zone));
  let day = startOfLocalDay(local);
  for (let i = 0; i < MAX_DAYS_AHEAD; i++) {
    if (isOpenDay(day, window, holidays)) {
      const opens = atMinute(day, window.startMinute);
      const closes = atMinute(day, window.endMinute);
      // A window that lies wholly inside a DST gap does not open that day.
      if (opens < closes) {
        if (local < opens) return opens;
        if (local < closes) return local;
      }
    }
    day = startOfLocalDay(day.plus({ days: 1 }));
  }
  throw new NoSendWindowError(
    `no send window opens within ${MAX_DAYS_AHEAD} days of ${from.toISO()}`,
  );
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

/**
 * The first instant of `at`'s local date. Where the clock falls back across midnight (Havana,
 * the Azores), midnight happens twice and luxon's startOf("day") of an instant in the second pass
 * is the second midnight; the day began at the first.
 */
function startOfLocalDay(at: DateTime): DateTime {
  const start = at.startOf("day");
  const before = start.minus({ minutes: 1 });
  if (before.toISODate() !== start.toISODate()) return start;
  const first = start.minus({ minutes: before.offset - start.offset });
  const isMidnight = first.hour === 0 && first.minute === 0;
  return isMidnight && first.toISODate() === start.toISODate() ? first : start;
}

/**
 * Local wall-clock time on `day`. A repeated time (DST overlap) resolves with the offset the day
 * starts with, so the first occurrence wins and the result never depends on the clock (luxon's
 * fromObject guesses from the current offset); a time inside a DST gap becomes the gap's end.
 */
function atMinute(day: DateTime, minute: number): DateTime {
  if (minute >= 24 * 60) return startOfLocalDay(day.plus({ days: 1 }));
  const wall = { hour: Math.floor(minute / 60), minute: minute % 60 };
  const at = day.set(wall);
  if (at.hour === wall.hour && at.minute === wall.minute) return at;
  // In a gap luxon reads the time with the offset before the gap, which lands after the gap;
  // read with the offset after it, the same wall time lands before the gap.
  const wallMs = Date.UTC(day.year, day.month - 1, day.day, wall.hour, wall.minute);
  return gapEnd(wallMs - at.offset * 60_000, at);
}

/** Where a DST gap ends: the first whole minute after `before` that has `after`'s offset. */
function gapEnd(before: number, after: DateTime): DateTime {
  let lo = before;
  let hi = after.toMillis();
  while (hi - lo > 60_000) {
    const mid = lo + Math.floor((hi - lo) / 120_000) * 60_000;
    if (after.zone.offset(mid) === after.offset) hi = mid;
    else lo = mid;
  }
  return DateTime.fromMillis(hi, { zone: after.zone });
}
