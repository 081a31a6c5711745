import { DateTime } from "luxon";
import { describe, expect, it } from "vitest";
import { renderScheduleText, scheduleByDay } from "../../src/reports/pending-schedule.js";

const at = (iso: string) => Date.parse(iso);
const now = DateTime.fromISO("2026-12-02T09:00:00Z");

describe("the schedule by local due date", () => {
  it("files counts under the local date of their quarter hour, summed by channel and rule", () => {
    const rows = scheduleByDay(
      [
        { channel: "email", ruleId: "thank-you", at: at("2026-12-02T10:00:00Z"), count: 3 },
        { channel: "email", ruleId: "thank-you", at: at("2026-12-02T10:15:00Z"), count: 2 },
        // 23:30 UTC is already the next day in Berlin.
        { channel: "sms", ruleId: "big-ticket", at: at("2026-12-02T23:30:00Z"), count: 1 },
        { channel: "email", ruleId: null, at: at("2026-12-04T00:00:00Z"), count: 4 },
      ],
      "Europe/Berlin",
      now,
      30,
    );
    expect(rows).toEqual([
      { date: "2026-12-02", channel: "email", ruleId: "thank-you", count: 5 },
      { date: "2026-12-03", channel: "sms", ruleId: "big-ticket", count: 1 },
      { date: "2026-12-04", channel: "email", ruleId: null, count: 4 },
    ]);
  });

  it("keeps half-hour zones on the right day, and leaves out what falls outside the days asked", () => {
    const counts = [
      // 18:15 UTC is 23:45 in Kolkata (+05:30); 18:30 UTC is 00:00 the next day.
      { channel: "email", ruleId: "r", at: at("2026-12-02T18:15:00Z"), count: 1 },
      { channel: "email", ruleId: "r", at: at("2026-12-02T18:30:00Z"), count: 1 },
      { channel: "email", ruleId: "r", at: at("2026-12-01T18:00:00Z"), count: 7 },
    ];
    expect(scheduleByDay(counts, "Asia/Kolkata", now, 1)).toEqual([
      { date: "2026-12-02", channel: "email", ruleId: "r", count: 1 },
    ]);
    expect(scheduleByDay(counts, "Asia/Kolkata", now, 2).map((r) => r.date)).toEqual([
      "2026-12-02",
      "2026-12-03",
    ]);
  });

  it("shows only the days asked for when today began at 01:00 for DST", () => {
    // Santiago skips from Sat 5 Sep 2026 24:00 to Sun 6 Sep 01:00 (-03).
    const sunday = DateTime.fromISO("2026-09-06T12:00:00-03:00");
    const counts = [
      { channel: "email", ruleId: "r", at: at("2026-09-06T23:45:00-03:00"), count: 1 },
      { channel: "email", ruleId: "r", at: at("2026-09-07T00:30:00-03:00"), count: 2 },
    ];
    expect(scheduleByDay(counts, "America/Santiago", sunday, 1)).toEqual([
      { date: "2026-09-06", channel: "email", ruleId: "r", count: 1 },
    ]);
  });

  it("prints a table with a total, or says that nothing is pending", () => {
    const text = renderScheduleText(
      [
        { date: "2026-12-02", channel: "email", ruleId: "thank-you", count: 12 },
        { date: "2026-12-03", channel: "sms", ruleId: null, count: 3 },
      ],
      "Europe/London",
      30,
    );
    expect(text).toContain("by due date in Europe/London");
    expect(text).toMatch(/^2026-12-02 {2}email +thank-you +12$/m);
    expect(text).toContain("(planned before rules were counted)");
    expect(text).toContain("15 pending in these 30 days.");
    expect(renderScheduleText([], "Europe/London", 7)).toBe(
      "No follow-ups pending in the next 7 days (Europe/London).\n",
    );
  });
});
