import { describe, expect, it } from "vitest";
import { collectReport, type ReportSources } from "../../src/reports/owner-reports.js";
import type { CountedPending } from "../../src/reports/pending-schedule.js";
import { shippedRules } from "../support/fixtures.js";

/**
 * "Coming up" in an owner's report: the follow-ups pending in the 7 and 30 days of the owner's
 * zone after the period, with the schedule's correction for postponed ones.
 */

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
// Midnight in Tokyo: 15:00 UTC the day before.
const PERIOD = {
  since: "2026-11-30T00:00:00+09:00",
  until: "2026-12-07T00:00:00+09:00",
  timezone: "Asia/Tokyo",
};
const UNTIL = Date.parse(PERIOD.until);

function sources(
  counted: readonly CountedPending[],
  moves?: readonly CountedPending[],
): ReportSources {
  return {
    ledger: { hours: async () => [], pendingCounts: async () => [...counted] },
    smsReferences: { repliesBetween: async () => [] },
    shards: {
      count: 1,
      of: () => ({
        store: { summary: async () => undefined },
        replies: { get: async () => undefined },
      }),
    },
    ...(moves && { postponed: async () => moves }),
  } as unknown as ReportSources;
}

async function upcoming(
  counted: readonly CountedPending[],
  moves?: readonly CountedPending[],
  period = PERIOD,
) {
  const model = await collectReport(
    sources(counted, moves),
    await shippedRules(),
    "Owner",
    period,
    Date.parse(period.until),
  );
  return model.upcoming;
}

const email = (at: number, count = 1): CountedPending => ({
  channel: "email",
  ruleId: "thank-you",
  at,
  count,
});

describe("an owner's report's follow-ups coming up", () => {
  it("counts the owner's days after the period's end, not UTC days", async () => {
    const coming = await upcoming([
      // Due before the period ended (same UTC day as its end): not to come.
      email(UNTIL - HOUR),
      email(UNTIL),
      email(UNTIL + 7 * DAY - 15 * 60_000),
      email(UNTIL + 7 * DAY),
      email(UNTIL + 30 * DAY - 15 * 60_000),
      email(UNTIL + 30 * DAY),
    ]);
    expect(coming.next7Days.email).toBe(2);
    expect(coming.next30Days.email).toBe(4);
  });

  it("ends its days at midnight after a period that ends on a day DST starts at 01:00", async () => {
    // Santiago skips from Sat 5 Sep 2026 24:00 to Sun 6 Sep 01:00: the Saturday's report ends
    // at 01:00, and its seven days at midnight between Sat 12 and Sun 13 Sep.
    const saturday = {
      since: "2026-09-05T00:00:00-04:00",
      until: "2026-09-06T01:00:00-03:00",
      timezone: "America/Santiago",
    };
    const midnight = Date.parse("2026-09-13T00:00:00-03:00");
    const coming = await upcoming([email(midnight - 15 * 60_000), email(midnight)], [], saturday);
    expect(coming.next7Days.email).toBe(1);
    expect(coming.next30Days.email).toBe(2);
  });

  it("counts a follow-up postponed past the period's end on the day it will go", async () => {
    const planned = UNTIL - 2 * HOUR;
    const coming = await upcoming([email(planned, 3)], [email(planned, -1), email(UNTIL + DAY, 1)]);
    expect(coming.next7Days.email).toBe(1);
    expect(coming.next30Days.email).toBe(1);
    // Without the correction (a deployment whose queues cannot be read): by planned due time.
    expect((await upcoming([email(planned, 3)])).next7Days.email).toBe(0);
  });
});
