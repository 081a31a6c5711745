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
  // Intake and the rules refuse a zone this process does not know; one known where the purchase
  // was taken in (a newer Node's ICU) can still reach a worker with older time zone data.
  if (!zoneFor(zone).isValid) {
    throw new NoSendWindowError(
      `time zone ${JSON.stringify(zone)} is not in this process's time zone data (Node's ICU): no send window can be found; run this worker on a Node whose time zone data knows it`,
    );
  }
  return (
    nextSendWindowAtFixedOffset(from, zone, window, holidays) ??
    nextSendWindowByCalendar(from, zone, window, holidays)
  );
}

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;

/**
 * The same answer as `nextSendWindowByCalendar`, computed on plain numbers, for the usual case:
 * the zone keeps the offset `from` has from a day before `from`'s local day until the window
 * closes on the day it opens. Then local wall time is UTC plus one fixed offset, so days, openings
 * and closings are simple sums. Undefined when an offset change (DST) lies in between, or no
 * window opens within a week: the calendar walk decides those.
 */
function nextSendWindowAtFixedOffset(
  from: DateTime,
  zoneName: string,
  window: SendWindow,
  holidays: ReadonlySet<string>,
): DateTime | undefined {
  const zone = zoneFor(zoneName);
  if (!zone.isValid) return undefined;
  const at = from.toMillis();
  const offsetMs = zone.offset(at) * MINUTE_MS;
  const local = at + offsetMs;
  const firstDay = Math.floor(local / DAY_MS) * DAY_MS;
  const checkHolidays = window.closedOnHolidays && holidays.size > 0;
  for (let day = firstDay; day < firstDay + 7 * DAY_MS; day += DAY_MS) {
    // The offset holds from a day before the day's start (so the day has one midnight, not two
    // after a fall-back across midnight) until its closing; a zone changes offset at most once in
    // three days (time-zone.ts), so checking both ends is enough.
    if (zone.offset(day - DAY_MS - offsetMs) * MINUTE_MS !== offsetMs) return undefined;
    const date = new Date(day);
    if (!window.days.has((date.getUTCDay() || 7) as Weekday)) continue;
    if (checkHolidays && holidays.has(date.toISOString().slice(0, 10))) continue;
    const opens = day + Math.min(window.startMinute, 24 * 60) * MINUTE_MS;
    const closes = day + Math.min(window.endMinute, 24 * 60) * MINUTE_MS;
    if (zone.offset(closes - offsetMs) * MINUTE_MS !== offsetMs) return undefined;
    if (opens >= closes) continue;
    if (local < opens) return DateTime.fromMillis(opens - offsetMs, { zone });
    if (local < closes) return from.setZone(zone);
  }
  return undefined;
}

/**
 * The general walk over the local calendar with luxon, right across DST gaps and overlaps and
 * double midnights; `nextSendWindow` takes it wherever the offset changes on the way.
 */
export function nextSendWindowByCalendar(
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
