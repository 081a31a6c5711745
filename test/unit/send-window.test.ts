import { type DateTime, Settings } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import type { SendWindow, Weekday } from "../../src/domain/rules.js";
import { isInSendWindow, NoSendWindowError, nextSendWindow } from "../../src/domain/send-window.js";
import { instant, MON_TO_SAT, sendWindow } from "../support/fixtures.js";

const NO_HOLIDAYS: ReadonlySet<string> = new Set();
const iso = (value: ReturnType<typeof instant>) => value.toISO({ suppressMilliseconds: true });

/**
 * Inside the window by the zone's wall clock, independently of send-window.ts: luxon's local
 * weekday, date, hour and minute against the window's days, holidays, start and end. (Not for
 * instants in a repeated fall-back hour, where the wall clock alone cannot tell.)
 */
function wallClockInside(
  at: DateTime,
  zone: string,
  window: SendWindow,
  holidays: ReadonlySet<string>,
): boolean {
  const local = at.setZone(zone);
  const minute = local.hour * 60 + local.minute;
  return (
    window.days.has(local.weekday as Weekday) &&
    !(window.closedOnHolidays && holidays.has(local.toISODate() ?? "")) &&
    minute >= window.startMinute &&
    minute < window.endMinute
  );
}

describe("nextSendWindow: SMS quiet hours (09:00–20:00, Monday–Saturday) in London", () => {
  const sms = sendWindow("09:00", "20:00", MON_TO_SAT);
  // 2026-11-21 is a Saturday, 2026-11-23 a Monday.
  it.each([
    ["Saturday night after closing", "2026-11-21T20:30:00Z", "2026-11-23T09:00:00+00:00"],
    ["Sunday midday", "2026-11-22T12:00:00Z", "2026-11-23T09:00:00+00:00"],
    ["Monday 08:59", "2026-11-23T08:59:00Z", "2026-11-23T09:00:00+00:00"],
    ["Monday 09:00 (the opening itself)", "2026-11-23T09:00:00Z", "2026-11-23T09:00:00+00:00"],
    ["Monday 19:59:59 (still open)", "2026-11-23T19:59:59Z", "2026-11-23T19:59:59+00:00"],
    ["Monday 20:00 (closing is exclusive)", "2026-11-23T20:00:00Z", "2026-11-24T09:00:00+00:00"],
    ["Saturday 15:00", "2026-11-21T15:00:00Z", "2026-11-21T15:00:00+00:00"],
  ])("%s → %s", (_, from, expected) => {
    const due = nextSendWindow(instant(from), "Europe/London", sms, NO_HOLIDAYS);
    expect(iso(due)).toBe(expected);
    expect(wallClockInside(due, "Europe/London", sms, NO_HOLIDAYS)).toBe(true);
    // The earliest such instant: a second earlier the window was still shut (or `from` was later).
    const before = due.minus({ seconds: 1 });
    if (before >= instant(from)) {
      expect(wallClockInside(before, "Europe/London", sms, NO_HOLIDAYS)).toBe(false);
    }
  });

  it("isInSendWindow says no outside the window and yes inside", () => {
    const zone = "Europe/London";
    expect(isInSendWindow(instant("2026-11-22T12:00:00Z"), zone, sms, NO_HOLIDAYS)).toBe(false);
    expect(isInSendWindow(instant("2026-11-23T08:59:59Z"), zone, sms, NO_HOLIDAYS)).toBe(false);
    expect(isInSendWindow(instant("2026-11-23T20:00:00Z"), zone, sms, NO_HOLIDAYS)).toBe(false);
    expect(isInSendWindow(instant("2026-11-23T12:00:00Z"), zone, sms, NO_HOLIDAYS)).toBe(true);
  });
});

describe("nextSendWindow: holidays", () => {
  const holidays = new Set(["2026-12-25", "2026-12-26"]);

  it("a window closed on holidays skips them (Christmas Friday and Boxing Day Saturday)", () => {
    const email = sendWindow("08:00", "21:00");
    const due = nextSendWindow(instant("2026-12-24T22:00:00Z"), "Europe/London", email, holidays);
    expect(iso(due)).toBe("2026-12-27T08:00:00+00:00");
  });

  it("a window that ignores holidays opens on them", () => {
    const email = sendWindow("08:00", "21:00", undefined, false);
    const due = nextSendWindow(instant("2026-12-24T22:00:00Z"), "Europe/London", email, holidays);
    expect(iso(due)).toBe("2026-12-25T08:00:00+00:00");
  });

  it("holidays are local dates: 25 Dec in Kiritimati starts at 10:00 UTC on the 24th", () => {
    const email = sendWindow("08:00", "21:00");
    // 24 Dec 2026 09:00 UTC is 23:00 on the 24th in Kiritimati: next opening is the 27th, 08:00 local.
    const due = nextSendWindow(
      instant("2026-12-24T09:00:00Z"),
      "Pacific/Kiritimati",
      email,
      holidays,
    );
    expect(iso(due)).toBe("2026-12-27T08:00:00+14:00");
  });
});

describe("nextSendWindow: far and fractional zones", () => {
  const email = sendWindow("08:00", "21:00");

  it("Asia/Kathmandu (+05:45): 06:15 local waits for 08:00 local, which is 02:15 UTC", () => {
    const due = nextSendWindow(
      instant("2026-11-23T00:30:00Z"),
      "Asia/Kathmandu",
      email,
      NO_HOLIDAYS,
    );
    expect(iso(due)).toBe("2026-11-23T08:00:00+05:45");
    expect(due.toUTC().toISO({ suppressMilliseconds: true })).toBe("2026-11-23T02:15:00Z");
  });

  it("Pacific/Kiritimati (+14:00): 21:30 Monday local waits for 08:00 Tuesday local", () => {
    const due = nextSendWindow(
      instant("2026-11-23T07:30:00Z"),
      "Pacific/Kiritimati",
      email,
      NO_HOLIDAYS,
    );
    expect(iso(due)).toBe("2026-11-24T08:00:00+14:00");
    expect(due.toUTC().toISO({ suppressMilliseconds: true })).toBe("2026-11-23T18:00:00Z");
  });

  it("a window up to 24:00 stays open until local midnight", () => {
    const late = sendWindow("18:00", "24:00");
    const zone = "Asia/Kathmandu";
    expect(iso(nextSendWindow(instant("2026-11-23T23:59:00+05:45"), zone, late, NO_HOLIDAYS))).toBe(
      "2026-11-23T23:59:00+05:45",
    );
    expect(iso(nextSendWindow(instant("2026-11-24T00:00:00+05:45"), zone, late, NO_HOLIDAYS))).toBe(
      "2026-11-24T18:00:00+05:45",
    );
  });
});

describe("nextSendWindow: DST transitions", () => {
  afterEach(() => {
    Settings.now = () => Date.now();
  });

  it.each([
    // US: 8 March 2026, 02:00 EST → 03:00 EDT. The window opens at 02:30, which does not exist.
    ["America/New_York", "2026-03-08T01:00:00-05:00", "02:30", "2026-03-08T03:00:00-04:00"],
    // EU: 29 March 2026, 02:00 CET → 03:00 CEST.
    ["Europe/Berlin", "2026-03-29T00:30:00+01:00", "02:30", "2026-03-29T03:00:00+02:00"],
    // UK: 29 March 2026, 01:00 GMT → 02:00 BST.
    ["Europe/London", "2026-03-29T00:10:00+00:00", "01:15", "2026-03-29T02:00:00+01:00"],
    // Lord Howe Island shifts by half an hour: 4 October 2026, 02:00 → 02:30.
    ["Australia/Lord_Howe", "2026-10-04T00:00:00+10:30", "02:10", "2026-10-04T02:30:00+11:00"],
  ])(
    "%s: a window opening inside the spring-forward gap opens when the gap ends",
    (zone, from, start, expected) => {
      const window = sendWindow(start, "20:00");
      const due = nextSendWindow(instant(from), zone, window, NO_HOLIDAYS);
      expect(iso(due)).toBe(expected);
      // Where the gap ends, the wall clock is past the opening…
      expect(wallClockInside(due, zone, window, NO_HOLIDAYS)).toBe(true);
      // …and a second earlier it still read a time before the gap, so before the opening.
      expect(wallClockInside(due.minus({ seconds: 1 }), zone, window, NO_HOLIDAYS)).toBe(false);
    },
  );

  it("in New York on spring-forward day, 03:10 EDT is inside a window that opens at 02:30", () => {
    const window = sendWindow("02:30", "20:00");
    const zone = "America/New_York";
    expect(isInSendWindow(instant("2026-03-08T03:10:00-04:00"), zone, window, NO_HOLIDAYS)).toBe(
      true,
    );
    expect(isInSendWindow(instant("2026-03-08T01:59:00-05:00"), zone, window, NO_HOLIDAYS)).toBe(
      false,
    );
  });

  it("a window closing inside the gap closes when the gap begins", () => {
    const window = sendWindow("00:00", "02:30");
    const zone = "America/New_York";
    // 03:01 EDT is after 02:30 on the wall clock: closed until Monday 00:00.
    expect(
      iso(nextSendWindow(instant("2026-03-08T03:01:00-04:00"), zone, window, NO_HOLIDAYS)),
    ).toBe("2026-03-09T00:00:00-04:00");
    expect(
      iso(nextSendWindow(instant("2026-03-08T01:59:00-05:00"), zone, window, NO_HOLIDAYS)),
    ).toBe("2026-03-08T01:59:00-05:00");
  });

  it.each([
    ["a winter clock", "2026-01-15T12:00:00Z"],
    ["a summer clock", "2026-07-15T12:00:00Z"],
  ])(
    "a window opening in the fall-back overlap opens at its first occurrence, whatever the clock (%s)",
    (_, clock) => {
      // 1 November 2026 in New York: 01:00–02:00 happens twice (EDT, then EST).
      Settings.now = () => Date.parse(clock);
      const window = sendWindow("01:30", "20:00");
      const due = nextSendWindow(
        instant("2026-11-01T00:10:00-04:00"),
        "America/New_York",
        window,
        NO_HOLIDAYS,
      );
      expect(iso(due)).toBe("2026-11-01T01:30:00-04:00");
    },
  );

  it("an instant in the second 01:xx of fall-back night inside the window stays where it is", () => {
    const window = sendWindow("01:00", "20:00");
    const from = instant("2026-11-01T01:40:00-05:00");
    const due = nextSendWindow(from, "America/New_York", window, NO_HOLIDAYS);
    expect(iso(due)).toBe("2026-11-01T01:40:00-05:00");
  });

  it.each([
    // Havana, 7 November 2027: at 01:00 CDT the clock goes back to 00:00 CST, so midnight repeats.
    ["America/Havana", "2027-11-07T00:10:00-05:00"],
    // Azores, 25 October 2026: at 01:00 (+00:00) the clock goes back to 00:00 (-01:00).
    ["Atlantic/Azores", "2026-10-25T00:10:00-01:00"],
  ])(
    "%s: a window that opened at 00:30 on the first pass stays open when the clock repeats midnight",
    (zone, from) => {
      // The day began on the first pass, so 00:30 (first pass) opened the window an hour earlier.
      const window = sendWindow("00:30", "12:00");
      const due = nextSendWindow(instant(from), zone, window, NO_HOLIDAYS);
      expect(iso(due)).toBe(from);
      expect(isInSendWindow(instant(from), zone, window, NO_HOLIDAYS)).toBe(true);
    },
  );

  it("Berlin fall-back (25 October 2026): an opening at 02:15 is the first 02:15 (CEST)", () => {
    const window = sendWindow("02:15", "20:00");
    const due = nextSendWindow(
      instant("2026-10-25T00:00:00+02:00"),
      "Europe/Berlin",
      window,
      NO_HOLIDAYS,
    );
    expect(iso(due)).toBe("2026-10-25T02:15:00+02:00");
  });
});

describe("nextSendWindow: a zone this process's time zone data does not know", () => {
  it("says so, naming the zone, instead of walking 800 days of invalid dates", () => {
    const call = () =>
      nextSendWindow(
        instant("2026-11-23T10:00:00Z"),
        "America/Not_In_This_ICU",
        sendWindow("09:00", "20:00", MON_TO_SAT),
        NO_HOLIDAYS,
      );
    expect(call).toThrow(NoSendWindowError);
    expect(call).toThrow(
      'time zone "America/Not_In_This_ICU" is not in this process\'s time zone data',
    );
  });
});

describe("nextSendWindow: the calendar walk's edge cases (an offset change on the way)", () => {
  // London springs forward on Sunday 28 March 2027: 01:00 GMT becomes 02:00 BST.
  it.each([
    [
      "a window lying wholly inside the gap (01:10–01:50) does not open that day",
      sendWindow("01:10", "01:50"),
      new Set<string>(),
      "2027-03-29T01:10:00+01:00",
    ],
    [
      "a window that ignores holidays opens on a holiday that is the change's day",
      sendWindow("08:00", "21:00", undefined, false),
      new Set(["2027-03-28"]),
      "2027-03-28T08:00:00+01:00",
    ],
    [
      "a window closed on holidays skips a holiday that is the change's day",
      sendWindow("08:00", "21:00"),
      new Set(["2027-03-28"]),
      "2027-03-29T08:00:00+01:00",
    ],
  ])("%s", (_, window, holidays, expected) => {
    const due = nextSendWindow(instant("2027-03-27T22:00:00Z"), "Europe/London", window, holidays);
    expect(iso(due)).toBe(expected);
  });
});
