import { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";
import { runReport } from "../../src/cli/report-command.js";
import type { PurchaseCompleted } from "../../src/domain/events.js";
import type { RuleSet } from "../../src/domain/rules.js";
import { createLogger } from "../../src/logger.js";
import { collectReport, reportSourcesOn } from "../../src/reports/owner-reports.js";
import { renderReportJson } from "../../src/reports/render-report.js";
import { periodFromDates } from "../../src/reports/report-period.js";
import { DeliveryLedger } from "../../src/store/delivery-ledger.js";
import { StoreKeys, shardScope } from "../../src/store/keys.js";
import { LEGACY_PURCHASE_FIELD } from "../../src/store/legacy-layout.js";
import { encodePurchase } from "../../src/store/purchase-codec.js";
import { SmsReferences } from "../../src/store/sms-references.js";
import { StepReplies } from "../../src/store/step-replies.js";
import { captureIo } from "../support/capture-io.js";
import { purchaseInput, SHIPPED_CONFIG_DIR, shippedRules } from "../support/fixtures.js";
import { deleteKeysWithPrefix, uniquePrefix } from "../support/redis-namespace.js";

/**
 * The ledger counts per UTC hour; a report's days start at local midnight. In a zone offset by
 * half or a quarter of an hour, a day's bounds fall inside ledger hours: each hour must count in
 * one day only. And a report whose replies' purchases cannot be read is produced all the same.
 */

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
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

const CHECK_IN = "big-ticket.check-in";
/** Bytes a JSON parser refuses, its message quoting them (and so the customer's name). */
const DAMAGED = '{"customer":{"name":Una Read}}';

describe("an owners' report with replies to purchases whose stored purchase cannot be read", () => {
  it("is produced, those replies without order and name, the purchases counted and warned of by error name only", async () => {
    const keys = new StoreKeys(shardScope(prefix, 0, 1));
    const now = Date.now();
    /** A sent check-in's record with the given fields, and an unhappy reply to it. */
    const replied = async (eventId: string, fields: Record<string, string | Buffer>) => {
      const record = keys.eventRecord(eventId);
      await redis.hset(record, {
        [`s:${CHECK_IN}`]: JSON.stringify({ s: "sent", t: now, d: now, c: "sms", k: "check-in" }),
        ...fields,
      });
      await redis.pexpire(record, DAY);
      const filed = await new StepReplies(redis, shardScope(prefix, 0, 1)).add(eventId, CHECK_IN, {
        text: "The screen cracked, 2/10",
        receivedAt: now - 60_000,
        channel: "sms",
      });
      await new SmsReferences(redis, prefix).recordReply(
        { eventId, stepId: CHECK_IN, shard: 0, n: filed?.n ?? 1 },
        now - 60_000,
        DAY,
      );
    };
    const event = purchaseInput({
      id: "evt-ok",
      orderId: "ord-ok",
      customer: { id: "cus-ok", name: "Rita Able" },
    }) as unknown as PurchaseCompleted;
    await replied("evt-ok", { p0: encodePurchase(event) });
    // Damaged bytes (or a newer version's format); a damaged summary of a trimmed purchase; an
    // earlier version's JSON, damaged.
    await replied("evt-bad", { p0: Buffer.from(DAMAGED) });
    await replied("evt-bad-summary", { m: '{"o":"ord-m","n":Una Read}' });
    await replied("evt-bad-legacy", { [LEGACY_PURCHASE_FIELD]: DAMAGED });

    const logs: Record<string, unknown>[] = [];
    const logger = createLogger({
      level: "info",
      pretty: false,
      destination: { write: (line: string) => void logs.push(JSON.parse(line)) },
    });
    const model = await collectReport(
      reportSourcesOn(redis, prefix, 1, undefined, logger),
      rules,
      "Owner",
      {
        since: new Date(now - DAY).toISOString(),
        until: new Date(now + DAY).toISOString(),
        timezone: "UTC",
      },
      now,
    );
    const replies = new Map(model.unhappyReplies.map((reply) => [reply.id?.split("/")[0], reply]));
    expect(replies.get("evt-ok")).toMatchObject({ orderId: "ord-ok", customerName: "Rita Able" });
    for (const eventId of ["evt-bad", "evt-bad-summary", "evt-bad-legacy"])
      expect(replies.get(eventId)).toMatchObject({ orderId: null, customerName: null });
    expect(model.unreadable).toEqual({ count: 3 });
    expect(JSON.parse(renderReportJson(model)).unreadable).toEqual({ count: 3 });
    const warned = logs.filter((line) => line.unreadable !== undefined);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ level: 40, unreadable: 3, errors: ["SyntaxError"] });
    expect(logs.map((line) => JSON.stringify(line)).filter((line) => line.includes("Una"))).toEqual(
      [],
    );

    // followups report: the count in its JSON, and a warning on stderr.
    Object.assign(process.env, { REDIS_URL: inject("redisUrl"), QUEUE_PREFIX: prefix });
    const io = captureIo();
    const today = new Date(now - DAY).toISOString().slice(0, 10);
    const tomorrow = new Date(now + DAY).toISOString().slice(0, 10);
    const code = await runReport(
      {
        config: SHIPPED_CONFIG_DIR,
        format: "json",
        since: today,
        until: tomorrow,
        timezone: "UTC",
      },
      io,
    );
    expect(code).toBe(0);
    expect(JSON.parse(io.output()).unreadable).toEqual({ count: 3 });
    expect(io.errors()).toBe(
      "warning: 3 purchases of the period's replies cannot be read (damaged, or a newer version's format): their replies are shown without order and name\n",
    );
  });
});
