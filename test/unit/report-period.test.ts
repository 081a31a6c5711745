import { DateTime } from "luxon";
import { describe, expect, it } from "vitest";
import {
  catchUpDates,
  datesSinceMark,
  nextReportRun,
  periodFromDates,
  previousPeriod,
  reportPeriodAt,
} from "../../src/reports/report-period.js";
import { periodNoun } from "../../src/reports/report-phrases.js";

const LONDON = "Europe/London";
const hours = (period: { since: string; until: string }) =>
  (Date.parse(period.until) - Date.parse(period.since)) / 3_600_000;

describe("report periods", () => {
  it("covers the local days before a report, 23 or 25 hours long across a DST change", () => {
    const daily = { frequency: "daily" as const, timezone: LONDON };
    // London springs forward on Sun 29 Mar 2026: Monday's report covers that 23-hour Sunday.
    const monday = DateTime.fromISO("2026-03-30T08:00", { zone: LONDON });
    expect(reportPeriodAt(daily, monday)).toEqual({
      since: "2026-03-29T00:00:00+00:00",
      until: "2026-03-30T00:00:00+01:00",
      timezone: LONDON,
    });
    expect(hours(reportPeriodAt(daily, monday))).toBe(23);
    // …and falls back on Sun 25 Oct 2026: the week before Mon 26 Oct has 169 hours.
    const weekly = { frequency: "weekly" as const, timezone: LONDON };
    const week = reportPeriodAt(weekly, DateTime.fromISO("2026-10-26T08:00", { zone: LONDON }));
    expect(week.since).toBe("2026-10-19T00:00:00+01:00");
    expect(hours(week)).toBe(169);
    expect(previousPeriod(week)).toEqual({
      since: "2026-10-12T00:00:00+01:00",
      until: "2026-10-19T00:00:00+01:00",
      timezone: LONDON,
    });
  });

  it.each([
    // Santiago's clocks go from Sat 5 Sep 2026 24:00 to Sun 6 Sep 01:00, Beirut's from Sat 28
    // Mar 2026 24:00 to Sun 29 Mar 01:00: the Sunday has no midnight, the Saturday is whole.
    ["America/Santiago", "2026-09-05T04:00:00.000Z", "2026-09-06"],
    ["Asia/Beirut", "2026-03-27T22:00:00.000Z", "2026-03-29"],
  ])(
    "in %s, where a DST day begins at 01:00, counts every hour in one report",
    (zone, saturday, sunday) => {
      const at = (date: string, days: number) =>
        DateTime.fromISO(`${date}T08:00`, { zone }).plus({ days });
      const daily = { frequency: "daily" as const, timezone: zone };
      const weekly = { frequency: "weekly" as const, timezone: zone };
      // The reports sent on the Sunday (for the Saturday) and on the Monday (for the Sunday).
      const forSaturday = reportPeriodAt(daily, at(sunday, 0));
      const forSunday = reportPeriodAt(daily, at(sunday, 1));
      expect(new Date(Date.parse(forSaturday.since)).toISOString()).toBe(saturday);
      expect(forSaturday.until).toBe(forSunday.since);
      expect(hours(forSaturday)).toBe(24);
      expect(hours(forSunday)).toBe(23);
      // Each is the period the same dates give on the command line, and the one before the next.
      for (const period of [forSaturday, forSunday]) {
        expect(periodFromDates(period.since.slice(0, 10), period.until.slice(0, 10), zone)).toEqual(
          period,
        );
      }
      expect(previousPeriod(forSunday)).toEqual(forSaturday);
      // A week that ends on the Sunday begins at the midnight of the Sunday before.
      const week = reportPeriodAt(weekly, at(sunday, 0));
      expect(week).toEqual(
        periodFromDates(
          DateTime.fromISO(sunday).minus({ days: 7 }).toISODate() ?? "",
          sunday,
          zone,
        ),
      );
      expect(hours(week)).toBe(7 * 24);
    },
  );

  it.each([
    ["2026-03-01", "2026-04-01", "2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00"],
    ["2026-11-01", "2026-12-01", "2026-10-01T00:00:00+01:00", "2026-11-01T00:00:00+00:00"],
    ["2027-01-01", "2027-02-01", "2026-12-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"],
    ["2026-02-01", "2026-03-01", "2026-01-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00"],
  ])(
    "compares the month from %s with the calendar month before: the report says “on the previous month”",
    (since, until, before, end) => {
      const period = periodFromDates(since, until, LONDON);
      expect(periodNoun(period)).toBe("month");
      expect(previousPeriod(period)).toEqual({ since: before, until: end, timezone: LONDON });
    },
  );

  it("compares any other period with as many days just before it", () => {
    const period = periodFromDates("2026-03-10", "2026-04-12", LONDON);
    expect(periodNoun(period)).toBe("period");
    expect(previousPeriod(period)).toEqual({
      since: "2026-02-05T00:00:00+00:00",
      until: "2026-03-10T00:00:00+00:00",
      timezone: LONDON,
    });
  });
});

describe("when a report runs next", () => {
  const next = (afterIso: string, pattern: string, zone: string) => {
    const after = DateTime.fromISO(afterIso, { zone }).toMillis();
    const ms = nextReportRun(after, pattern, zone);
    return ms === undefined ? undefined : DateTime.fromMillis(ms, { zone }).toISO();
  };

  it("runs at its local time, also on a day whose DST change skips that time", () => {
    // Santiago and Beirut skip midnight as DST begins; Lord Howe skips 02:00 to 02:30.
    expect(next("2026-09-05T00:00", "0 0 * * *", "America/Santiago")).toBe(
      "2026-09-06T01:00:00.000-03:00",
    );
    expect(next("2026-09-06T01:00", "0 0 * * *", "America/Santiago")).toBe(
      "2026-09-07T00:00:00.000-03:00",
    );
    expect(next("2026-03-28T00:00", "0 0 * * *", "Asia/Beirut")).toBe(
      "2026-03-29T01:00:00.000+03:00",
    );
    expect(next("2026-10-03T02:15", "15 2 * * *", "Australia/Lord_Howe")).toBe(
      "2026-10-04T02:45:00.000+11:00",
    );
    // A weekly report on Sundays at midnight loses no week.
    expect(next("2026-08-30T00:00", "0 0 * * 0", "America/Santiago")).toBe(
      "2026-09-06T01:00:00.000-03:00",
    );
  });

  it("runs once on a day whose local time happens twice, and on its weekday", () => {
    expect(next("2026-10-25T01:30", "30 1 * * *", "Europe/London")).toBe(
      "2026-10-26T01:30:00.000+00:00",
    );
    expect(next("2026-12-05T08:00", "0 8 * * 1", "Europe/Berlin")).toBe(
      "2026-12-07T08:00:00.000+01:00",
    );
    expect(next("2026-12-05T07:59", "0 8 * * *", "Europe/Berlin")).toBe(
      "2026-12-05T08:00:00.000+01:00",
    );
  });

  it("leaves a schedule of another form to cron", () => {
    expect(nextReportRun(0, "*/5 * * * *", "Europe/London")).toBeUndefined();
  });
});

describe("the run sent for a scheduled run no worker took", () => {
  const daily = { frequency: "daily" as const, timezone: LONDON };
  const weekly = { frequency: "weekly" as const, timezone: LONDON };
  type Run = [schedule: typeof daily | typeof weekly, at: string];
  /** The dates sent for the run missed at `missed`, with the schedule's next run at `next`. */
  const catchUp = ([schedule, at]: Run, next?: Run) =>
    catchUpDates(
      reportPeriodAt(schedule, DateTime.fromISO(at, { zone: schedule.timezone })),
      next && reportPeriodAt(next[0], DateTime.fromISO(next[1], { zone: next[0].timezone })),
    );

  it("covers from the missed run's first day to the first day the next run covers", () => {
    // Monday's daily run missed, workers back on Wednesday after 08:00: Thursday's run covers
    // Wednesday, so Sunday, Monday and Tuesday are the missed run's.
    expect(catchUp([daily, "2026-11-30T08:00"], [daily, "2026-12-03T08:00"])).toEqual({
      since: "2026-11-29",
      until: "2026-12-02",
    });
    // A weekly run missed three weeks ago: the weeks of the runs never made are in it.
    expect(catchUp([weekly, "2026-11-09T08:00"], [weekly, "2026-12-07T08:00"])).toEqual({
      since: "2026-11-02",
      until: "2026-11-30",
    });
    // A weekly run missed, the owner made daily, whose next run comes that day: the day before
    // it is left to the next run, not covered twice.
    expect(catchUp([weekly, "2026-11-30T08:00"], [daily, "2026-11-30T10:00"])).toEqual({
      since: "2026-11-23",
      until: "2026-11-29",
    });
  });

  it("covers the latest 400 days at most", () => {
    expect(catchUp([daily, "2025-01-10T08:00"], [daily, "2026-12-03T08:00"])).toEqual({
      since: "2025-10-28",
      until: "2026-12-02",
    });
  });

  it("is none when the next run covers the missed run's days from their first", () => {
    // The owner's time moved later that day.
    expect(catchUp([daily, "2026-11-30T08:00"], [daily, "2026-11-30T10:00"])).toBeUndefined();
    // The owner moved to a zone behind: the next run's day begins after the missed one's, by
    // instant, but on the same date.
    const newYork = { frequency: "daily" as const, timezone: "America/New_York" };
    expect(catchUp([daily, "2026-11-30T08:00"], [newYork, "2026-11-30T08:00"])).toBeUndefined();
  });

  it("is the missed run's own period when the schedule has no next run", () => {
    expect(catchUp([weekly, "2026-11-30T08:00"])).toEqual({
      since: "2026-11-23",
      until: "2026-11-30",
    });
  });
});

describe("the days a scheduled run covers since the owner's last report", () => {
  const weekly = { frequency: "weekly" as const, timezone: LONDON };
  const daily = { frequency: "daily" as const, timezone: LONDON };
  const run = (schedule: typeof weekly | typeof daily, at: string) =>
    reportPeriodAt(schedule, DateTime.fromISO(at, { zone: schedule.timezone }));

  it.each([
    // Weekly on Monday 30 Nov (covered up to 30 Nov), moved to Thursday.
    [
      "weekly moved to Thursday",
      weekly,
      "2026-12-03T08:00",
      "2026-11-30",
      "2026-11-30",
      "2026-12-03",
    ],
    // Daily up to Wednesday's, made weekly on Monday: from Wednesday.
    ["daily made weekly", weekly, "2026-12-07T08:00", "2026-12-02", "2026-12-02", "2026-12-07"],
    // Weekly, made daily: the day after the week.
    ["weekly made daily", daily, "2026-12-01T08:00", "2026-11-30", "2026-11-30", "2026-12-01"],
    // At most the latest 400 days.
    ["a mark long ago", daily, "2026-12-03T08:00", "2024-01-01", "2025-10-29", "2026-12-03"],
    // A mark it cannot read: its own period.
    ["an unreadable mark", daily, "2026-12-03T08:00", "2026-13-40", "2026-12-02", "2026-12-03"],
  ] as const)(
    "%s: from the last report's end to the run's own",
    (_, schedule, at, mark, since, until) => {
      expect(datesSinceMark(run(schedule, at), mark)).toEqual({ since, until });
    },
  );

  it("is none when its days were reported", () => {
    expect(datesSinceMark(run(daily, "2026-12-03T08:00"), "2026-12-03")).toBeUndefined();
    expect(datesSinceMark(run(weekly, "2026-12-03T08:00"), "2026-12-04")).toBeUndefined();
  });
});
