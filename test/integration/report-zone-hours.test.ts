import { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";
import type { RuleSet } from "../../src/domain/rules.js";
import { collectReport, reportSourcesOn } from "../../src/reports/owner-reports.js";
import { periodFromDates } from "../../src/reports/report-period.js";
import { DeliveryLedger } from "../../src/store/delivery-ledger.js";
import { shardScope } from "../../src/store/keys.js";
import { shippedRules } from "../support/fixtures.js";
import { deleteKeysWithPrefix, uniquePrefix } from "../support/redis-namespace.js";

/**
 * The ledger counts per UTC hour; a report's days start at local midnight. In a zone offset by
 * half or a quarter of an hour, a day's bounds fall inside ledger hours: each hour must count in
 * one day only.
 */

const HOUR = 3_600_000;
const ZONES = ["America/St_Johns", "Asia/Kolkata", "Australia/Adelaide", "Asia/Kathmandu"];
const SENT = { outcome: "sent", channel: "sms", kind: "check-in", ruleId: "big-ticket" };

let redis: Redis;
let prefix: string;
let rules: RuleSet;
beforeEach(async () => {
  redis = new Redis(inject("redisUrl"), { maxRetriesPerRequest: 1 });
  prefix = uniquePrefix("zone-hours");
  rules = await shippedRules();
});
afterEach(async () => {
  await deleteKeysWithPrefix(redis, prefix);
  redis.disconnect();
});

async function sentIn(since: string, until: string, zone: string, now: number): Promise<number> {
  const period = periodFromDates(since, until, zone);
  const model = await collectReport(reportSourcesOn(redis, prefix, 1), rules, "Owner", period, now);
  return model.totals.sent;
}

describe("report periods in zones offset by part of an hour", () => {
  it("counts every ledger hour in exactly one of two adjacent days", async () => {
    const ledger = new DeliveryLedger(redis, shardScope(prefix, 0, 1));
    const first = Date.parse("2026-12-02T00:00:00Z");
    // One sent check-in in each UTC hour from 2 to 8 December.
    for (let hour = first; hour < first + 6 * 24 * HOUR; hour += HOUR)
      await ledger.count(SENT, hour + 10 * 60_000);
    const now = Date.parse("2026-12-09T00:00:00Z");
    for (const zone of ZONES) {
      const day1 = await sentIn("2026-12-04", "2026-12-05", zone, now);
      const day2 = await sentIn("2026-12-05", "2026-12-06", zone, now);
      const both = await sentIn("2026-12-04", "2026-12-06", zone, now);
      expect({ zone, day1, day2, both }).toEqual({ zone, day1: 24, day2: 24, both: 48 });
    }
  });

  it("shows nothing for a day that has not started, though the hour it starts in has counts", async () => {
    const ledger = new DeliveryLedger(redis, shardScope(prefix, 0, 1));
    // 03:10 UTC on 5 December: 23:40 on the 4th in St John's (UTC-03:30), whose 5th starts at 03:30.
    const now = Date.parse("2026-12-05T03:10:00Z");
    await ledger.count(SENT, now);
    expect(await sentIn("2026-12-05", "2026-12-06", "America/St_Johns", now)).toBe(0);
    expect(await sentIn("2026-12-04", "2026-12-05", "America/St_Johns", now)).toBe(1);
  });
});
