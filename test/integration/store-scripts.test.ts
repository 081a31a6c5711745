import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { chargeSpend } from "../../src/queue/channel-spend.js";
import { CallScripts, withCallOutcome } from "../../src/store/call-scripts.js";
import { bucketOf, bucketStart, dayOf, hourOf, StoreKeys } from "../../src/store/keys.js";
import { purchaseOfFields } from "../../src/store/purchase-fields.js";
import type { RedisClient } from "../../src/store/redis-client.js";
import { type StoreCommands, withStoreCommands } from "../../src/store/script-registry.js";
import { EMBEDDED_SCRIPTS } from "../../src/store/scripts/embedded.js";
import { monthBefore, SpendLedger } from "../../src/store/spend-ledger.js";
import { decodeStoredStep, encodeStoredStep } from "../../src/store/step-record.js";
import { SuppressionList } from "../../src/store/suppression-list.js";
import { shippedRules } from "../support/fixtures.js";
import { deleteKeysWithPrefix, uniquePrefix } from "../support/redis-namespace.js";

/**
 * Each Lua script of the store called directly, as its header describes it, against a real Redis:
 * the contract the TypeScript stores build on.
 */

const DAY = 86_400_000;
/**
 * 10:00 UTC today: a quarter hour the pending fields name (40), and recent enough that the
 * pending counts' keys, which expire a day after their due day ends, still live in Redis while
 * the tests run (a fixed date made them expire as they were written, once it had passed).
 */
const NOW = (() => {
  const today = new Date();
  return Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate(), 10);
})();
const SPEC = JSON.stringify({
  f: ["cancelled|email|thank-you|r", "reason|cancelled|email|thank-you|refunded"],
  ttl: 3_600_000,
  ch: "email",
  r: "r",
});
/** The pending-count fields of the two steps: channel, rule and quarter hour of the UTC day. */
const EMAIL_PENDING = "email|r|40";
const SMS_PENDING = "sms|r|40";

let redis: RedisClient & StoreCommands;
let prefix: string;
let keys: StoreKeys;

beforeAll(() => {
  redis = withStoreCommands(new Redis(inject("redisUrl"), { maxRetriesPerRequest: 1 }));
});
afterAll(async () => {
  await redis.quit();
});
beforeEach(() => {
  prefix = uniquePrefix("scripts");
  keys = new StoreKeys(prefix);
});
afterEach(async () => {
  await deleteKeysWithPrefix(redis, prefix);
});

const record = () => keys.eventRecord("evt");
/** note-sms-status of `SM1` on the event's step `field` (customer unknown: no cap slot goes back). */
const noteSmsStatus = (field: string, now: number, status: string, code: number | "") =>
  redis.fuNoteSmsStatus(
    record(),
    keys.capWindow("sms", "cus-1"),
    keys.smsStatusFailures(),
    keys.lastSent("cus-1"),
    field,
    now,
    status,
    code,
    "SM1",
    "",
    "",
    "evt/b",
    60_000,
  );
const purchase = () => keys.purchase("evt");
const hour = () => keys.ledgerHour(hourOf(NOW));
const dayKey = (due: number) => keys.pendingDay(dayOf(due));
const stored = async (field: string) => {
  const raw = await redis.hget(record(), field);
  return raw === null ? null : decodeStoredStep(raw);
};

/** Names `sid` as the message step `field` stands for, as a send's `sent` state change does. */
async function sentAs(field: string, sid: string): Promise<void> {
  const step = await stored(field);
  await redis.hset(record(), field, JSON.stringify({ ...step, id: sid }));
}

/** update-step.lua on the test's record, at NOW, for a step due at `due`. */
const updateStep = (
  field: string,
  due: number,
  from: string,
  patch: object,
  spec = "",
  ...trim: [asRead: Buffer, kept: Buffer, summary: string] | []
) =>
  redis.fuUpdateStep(
    record(),
    purchase(),
    hour(),
    dayKey(due),
    field,
    NOW,
    from,
    JSON.stringify(patch),
    spec,
    dayOf(due),
    ...trim,
  );

/**
 * Schedules `s:a` (email, due in a day, straight to BullMQ) and `s:b` (sms, due in 90 days, in the
 * compact schedule) through the script.
 */
async function scheduleTwo(encoded = Buffer.from("the purchase")): Promise<number> {
  const common = { r: "r" };
  const steps = [
    {
      id: "a",
      d: NOW + DAY,
      c: "email",
      k: "thank-you",
      f: "scheduled|email|thank-you|r",
      b: 0,
      bs: 0,
      t: "",
      ...common,
    },
    {
      id: "b",
      d: NOW + 90 * DAY,
      c: "sms",
      k: "check-in",
      f: "scheduled|sms|check-in|r",
      b: bucketOf(NOW + 90 * DAY),
      bs: bucketStart(NOW + 90 * DAY),
      t: '["evt","b"]',
      ...common,
    },
  ];
  const scriptKeys = [
    record(),
    purchase(),
    hour(),
    keys.scheduleIndex(),
    dayKey(NOW + DAY),
    keys.scheduleBucket(bucketOf(NOW + DAY)),
    dayKey(NOW + 90 * DAY),
    keys.scheduleBucket(bucketOf(NOW + 90 * DAY)),
  ];
  return redis.fuScheduleSteps(
    scriptKeys.length,
    ...scriptKeys,
    NOW,
    3_600_000,
    JSON.stringify(steps),
    encoded,
    NOW + 200 * DAY,
    3,
  );
}

describe("the store's Lua scripts", () => {
  it("registers every script file as a command, with the KEYS count its header declares", () => {
    expect(Object.keys(EMBEDDED_SCRIPTS).sort()).toEqual([
      "add-reply",
      "add-spend",
      "adoptable-call",
      "advance-report-mark",
      "allow",
      "begin-walk",
      "claim-alerts",
      "claim-bucket",
      "claim-event-id",
      "claim-report-mark",
      "claim-step",
      "close-thank-you",
      "count-first-outcome",
      "count-in-record",
      "count-once",
      "count-outcomes",
      "decide-joined-thank-you",
      "erase-event",
      "finish-alerts",
      "fold-counts",
      "forget-customer",
      "join-thank-you",
      "keep-early-sms-status",
      "keep-order-link",
      "leave-thank-you",
      "link-purchase",
      "note-code",
      "note-dropped-purchase",
      "note-postponed",
      "note-sms-status",
      "opt-outs",
      "pack-address-index",
      "queue-alert",
      "read-order",
      "record-purchase",
      "record-refund",
      "redeem-code",
      "release-bucket",
      "remember-check-in",
      "remember-customer",
      "remember-latest-check-in",
      "remember-sms",
      "remember-steps",
      "replace-purchase",
      "replan-event",
      "requeue-step",
      "resolve-reply",
      "return-spend",
      "revoke-code",
      "rules-generation",
      "schedule-steps",
      "settle-sent",
      "stop-event",
      "suppress",
      "swap-call",
      "sweep-bucket",
      "take-cap-slot",
      "take-rate-slot",
      "update-step",
    ]);
    expect(EMBEDDED_SCRIPTS["claim-step"].numberOfKeys).toBe(4);
    expect(EMBEDDED_SCRIPTS["claim-bucket"].numberOfKeys).toBe(3);
    expect(EMBEDDED_SCRIPTS["replace-purchase"].numberOfKeys).toBe(1);
    expect(EMBEDDED_SCRIPTS["schedule-steps"].numberOfKeys).toBeUndefined();
    expect(EMBEDDED_SCRIPTS["record-purchase"].numberOfKeys).toBe(5);
    expect(EMBEDDED_SCRIPTS["redeem-code"].numberOfKeys).toBe(2);
    expect(EMBEDDED_SCRIPTS["revoke-code"].numberOfKeys).toBe(1);
    expect(EMBEDDED_SCRIPTS["note-code"].numberOfKeys).toBe(1);
    expect(EMBEDDED_SCRIPTS["remember-check-in"].numberOfKeys).toBe(2);
    expect(EMBEDDED_SCRIPTS["keep-order-link"].numberOfKeys).toBe(1);
    expect(EMBEDDED_SCRIPTS["remember-latest-check-in"].numberOfKeys).toBe(1);
    expect(EMBEDDED_SCRIPTS["note-dropped-purchase"].numberOfKeys).toBe(1);
    expect(EMBEDDED_SCRIPTS["note-sms-status"].numberOfKeys).toBe(4);
    expect(EMBEDDED_SCRIPTS["keep-early-sms-status"].numberOfKeys).toBe(2);
    expect(EMBEDDED_SCRIPTS["remember-sms"].numberOfKeys).toBe(2);
    expect(EMBEDDED_SCRIPTS["join-thank-you"].numberOfKeys).toBe(4);
    expect(EMBEDDED_SCRIPTS["remember-steps"].numberOfKeys).toBe(3);
    expect(EMBEDDED_SCRIPTS["close-thank-you"].numberOfKeys).toBe(3);
    expect(EMBEDDED_SCRIPTS["decide-joined-thank-you"].numberOfKeys).toBe(4);
    expect(EMBEDDED_SCRIPTS["leave-thank-you"].numberOfKeys).toBe(2);
    expect(EMBEDDED_SCRIPTS["add-spend"].numberOfKeys).toBe(4);
    expect(EMBEDDED_SCRIPTS["return-spend"].numberOfKeys).toBe(2);
    expect(EMBEDDED_SCRIPTS["settle-sent"].numberOfKeys).toBe(2);
    expect(EMBEDDED_SCRIPTS["begin-walk"].numberOfKeys).toBe(1);
    expect(EMBEDDED_SCRIPTS["claim-alerts"].numberOfKeys).toBe(2);
    expect(EMBEDDED_SCRIPTS["finish-alerts"].numberOfKeys).toBe(2);
    expect(EMBEDDED_SCRIPTS["claim-report-mark"].numberOfKeys).toBe(2);
    expect(EMBEDDED_SCRIPTS["advance-report-mark"].numberOfKeys).toBe(2);
    expect(EMBEDDED_SCRIPTS["swap-call"].numberOfKeys).toBeUndefined();
    expect(EMBEDDED_SCRIPTS["adoptable-call"].numberOfKeys).toBeUndefined();
  });

  it("schedule-steps: records new steps compactly, counts them once, keeps the purchase while pending", async () => {
    expect(await scheduleTwo()).toBe(2);
    // A few characters (state, channel, kind, due time in base 36), not JSON.
    expect(await redis.hget(record(), "s:a")).toBe(`set${(NOW + DAY).toString(36)}`);
    expect(await stored("s:a")).toEqual({
      s: "scheduled",
      d: NOW + DAY,
      c: "email",
      k: "thank-you",
    });
    expect(await redis.object("ENCODING", record())).toBe("listpack");
    expect(await redis.hgetall(hour())).toEqual({
      "scheduled|email|thank-you|r": "1",
      "scheduled|sms|check-in|r": "1",
    });
    expect(await redis.hget(dayKey(NOW + DAY), EMAIL_PENDING)).toBe("1");
    expect(await redis.hget(dayKey(NOW + 90 * DAY), SMS_PENDING)).toBe("1");
    // Only the far step waits in the schedule: one entry in its bucket, indexed by the bucket's start.
    expect(await redis.exists(keys.scheduleBucket(bucketOf(NOW + DAY)))).toBe(0);
    expect(await redis.lrange(keys.scheduleBucket(bucketOf(NOW + 90 * DAY)), 0, -1)).toEqual([
      '["evt","b"]',
    ]);
    expect(await redis.zrange(keys.scheduleIndex(), "0", "-1", "WITHSCORES")).toEqual([
      String(bucketOf(NOW + 90 * DAY)),
      String(NOW + 90 * DAY),
    ]);
    // A day's count outlives its day by one day.
    expect(await redis.pexpiretime(dayKey(NOW + DAY))).toBe(
      (Math.floor((NOW + DAY) / DAY) + 2) * DAY,
    );
    // The purchase is in the record, which it lives and expires with.
    expect(await redis.hget(record(), "p0")).toBe("the purchase");
    expect(await redis.exists(purchase())).toBe(0);
    expect(await redis.pexpiretime(record())).toBe(NOW + 200 * DAY);
    // No summary while the whole purchase is there (reports read it from the purchase).
    expect(await redis.hexists(record(), "m")).toBe(0);
    expect(await redis.hget(record(), "g")).toBe("3");

    // The same plan again adds nothing and counts nothing.
    expect(await scheduleTwo()).toBe(0);
    expect(await redis.hget(hour(), "scheduled|email|thank-you|r")).toBe("1");
    expect(await redis.hget(dayKey(NOW + DAY), EMAIL_PENDING)).toBe("1");
    expect(await redis.lrange(keys.scheduleBucket(bucketOf(NOW + 90 * DAY)), 0, -1)).toEqual([
      '["evt","b"]',
    ]);
  });

  it("claim-step: claims a scheduled step once, takes over an expired lease, and says when the due day is wrong", async () => {
    await scheduleTwo();
    const args = ["s:a", NOW, 60_000, "", dayOf(NOW + DAY)] as const;
    const first = await redis.fuClaimStep(record(), purchase(), hour(), dayKey(NOW + DAY), ...args);
    expect(first[0]).toBe(1);
    expect(first[2]).toBe(0);
    expect(decodeStoredStep(first[1])).toMatchObject({ s: "sending", t: NOW });

    const again = await redis.fuClaimStep(record(), purchase(), hour(), dayKey(NOW + DAY), ...args);
    expect(again[0]).toBe(0);
    expect(decodeStoredStep(again[1])).toMatchObject({ s: "sending" });

    const later = NOW + 60_000;
    const takeover = await redis.fuClaimStep(
      record(),
      purchase(),
      hour(),
      dayKey(NOW + DAY),
      "s:a",
      later,
      60_000,
      "",
      dayOf(NOW + DAY),
    );
    expect(takeover[0]).toBe(1);
    expect(takeover[2]).toBe(1);
    expect(decodeStoredStep(takeover[1])).toMatchObject({ s: "sending", t: later, r: 1 });

    // Counting a change needs the step's own due day: the script names it instead of guessing.
    const wrongDay = await redis.fuClaimStep(
      record(),
      purchase(),
      hour(),
      dayKey(NOW),
      "s:b",
      NOW,
      60_000,
      SPEC,
      dayOf(NOW),
    );
    expect(wrongDay[0]).toBe(-1);
    expect(decodeStoredStep(wrongDay[1])).toMatchObject({ s: "scheduled", d: NOW + 90 * DAY });
    expect(await stored("s:b")).toMatchObject({ s: "scheduled" });
  });

  it("schedule-steps: cuts the purchase into fields of at most 64 bytes, keeping the record a listpack", async () => {
    const encoded = Buffer.from(Array.from({ length: 150 }, (_, i) => (i * 37) % 256));
    await scheduleTwo(encoded);
    const fields = await redis.hgetallBuffer(record());
    expect([fields.p0?.length, fields.p1?.length, fields.p2?.length, fields.p3]).toEqual([
      64,
      64,
      22,
      undefined,
    ]);
    expect(purchaseOfFields(fields)).toEqual(encoded);
    expect(await redis.object("ENCODING", record())).toBe("listpack");
    // Never overwritten while the record holds one (a stale plan must not bring back scrubbed data).
    await scheduleTwo(Buffer.from("another purchase"));
    expect(purchaseOfFields(await redis.hgetallBuffer(record()))).toEqual(encoded);
  });

  it("schedule-steps: stores a purchase of half a megabyte (thousands of fields) whole", async () => {
    const encoded = Buffer.from(Array.from({ length: 512 * 1024 + 7 }, (_, i) => (i * 131) % 256));
    expect(await scheduleTwo(encoded)).toBe(2);
    const fields = await redis.hgetallBuffer(record());
    expect(purchaseOfFields(fields)).toEqual(encoded);
    expect(fields.p8192?.length).toBe(7);
    // And replaced by a small one, nothing of it is left.
    for (const field of ["s:a", "s:b"]) {
      const rec = await stored(field);
      await redis.hset(record(), field, JSON.stringify({ ...rec, s: "sent" }));
    }
    expect(await redis.fuReplacePurchase(record(), encoded, Buffer.from("kept"), "{}")).toBe(1);
    expect(Object.keys(await redis.hgetall(record())).filter((f) => /^p\d+$/.test(f))).toEqual([
      "p0",
    ]);
  });

  it("replace-purchase: never keeps a record longer than it was to be kept", async () => {
    const whole = Buffer.from("w".repeat(150));
    await scheduleTwo(whole);
    const planned = await redis.pexpiretime(record());
    for (const field of ["s:a", "s:b"]) {
      const rec = await stored(field);
      await redis.hset(record(), field, JSON.stringify({ ...rec, s: "sent" }));
    }
    expect(
      await redis.fuReplacePurchase(record(), whole, Buffer.from("kept"), "{}", planned + DAY),
    ).toBe(1);
    expect(await redis.pexpiretime(record())).toBe(planned);
  });

  it("schedule-steps: keeps extending the purchase key of an earlier version instead of copying it", async () => {
    await redis.set(purchase(), "stored by an earlier version", "PXAT", NOW + 100 * DAY);
    await scheduleTwo();
    expect(await redis.hexists(record(), "p0")).toBe(0);
    expect(await redis.get(purchase())).toBe("stored by an earlier version");
    expect(await redis.pexpiretime(purchase())).toBe(NOW + 200 * DAY);
  });

  it("replace-purchase: replaces the purchase only when no step is pending and it is the one read", async () => {
    const SUMMARY = '{"o":"ord-1","n":"Ana Novak"}';
    const whole = Buffer.from("w".repeat(150));
    const kept = Buffer.from("k".repeat(70));
    await scheduleTwo(whole);
    // Steps pending: nothing changes.
    expect(await redis.fuReplacePurchase(record(), whole, kept, SUMMARY)).toBe(0);
    for (const field of ["s:a", "s:b"]) {
      const rec = await stored(field);
      // Each sent a discount code (its hash, `dc`), which erasure revokes before the scrub.
      await redis.hset(record(), field, JSON.stringify({ ...rec, s: "sent", dc: "code-hash" }));
    }
    // Another purchase than the one read: nothing changes.
    expect(await redis.fuReplacePurchase(record(), Buffer.from("other"), kept, SUMMARY)).toBe(0);
    expect(purchaseOfFields(await redis.hgetallBuffer(record()))).toEqual(whole);
    expect(await redis.hexists(record(), "m")).toBe(0);
    // Ended before the planned time of its last step: kept from now, not from that time.
    const planned = await redis.pexpiretime(record());
    expect(planned).toBeGreaterThan(NOW + 10 * DAY);
    expect(await redis.fuReplacePurchase(record(), whole, kept, SUMMARY, NOW + 10 * DAY)).toBe(1);
    expect(await redis.pexpiretime(record())).toBe(NOW + 10 * DAY);
    const fields = await redis.hgetallBuffer(record());
    expect(purchaseOfFields(fields)).toEqual(kept);
    expect(fields.p2).toBeUndefined();
    // What reports show once the whole purchase is gone.
    expect(fields.m?.toString()).toBe(SUMMARY);
    // Erased meanwhile (no purchase): nothing comes back.
    expect(await redis.fuEraseEvent(record(), purchase(), "erased: gone")).toBe(2);
    expect(await redis.hexists(record(), "p0")).toBe(0);
    for (const field of ["s:a", "s:b"]) {
      expect(await stored(field)).toMatchObject({ s: "sent" });
      expect(await stored(field)).not.toHaveProperty("dc");
    }
    expect(await redis.fuReplacePurchase(record(), kept, whole, SUMMARY)).toBe(0);
    expect(await redis.hexists(record(), "p0")).toBe(0);
    // Stopped: a reply that arrives after the erasure is not filed.
    expect(await redis.hget(record(), "stop")).toBe("erased: gone");
    expect(await redis.fuAddReply(record(), "a", '{"t":"my new address is…"}')).toEqual([0, ""]);
    expect(Object.keys(await redis.hgetall(record())).filter((f) => f.startsWith("y"))).toEqual([]);
    // A record that is gone stays gone (no key without an expiry).
    expect(await redis.fuEraseEvent(keys.eventRecord("none"), purchase(), "erased: gone")).toBe(0);
    expect(await redis.exists(keys.eventRecord("none"))).toBe(0);
  });

  it("claim-step: cancels a step of a stopped event, counts it, and keeps an earlier version's purchase key with the record when none is pending", async () => {
    await scheduleTwo();
    await redis.pexpireat(record(), NOW + 300 * DAY);
    await redis.set(purchase(), "stored by an earlier version", "PXAT", NOW + 200 * DAY);
    expect(await redis.fuStopEvent(record(), "refunded: order ord-1 fully refunded")).toBe(1);
    for (const [field, due] of [
      ["s:a", NOW + DAY],
      ["s:b", NOW + 90 * DAY],
    ] as const) {
      const [claimed, raw] = await redis.fuClaimStep(
        record(),
        purchase(),
        hour(),
        dayKey(due),
        field,
        NOW,
        60_000,
        SPEC,
        dayOf(due),
      );
      expect(claimed).toBe(0);
      expect(decodeStoredStep(raw)).toMatchObject({
        s: "cancelled",
        x: "refunded: order ord-1 fully refunded",
      });
    }
    expect(await redis.hget(hour(), "cancelled|email|thank-you|r")).toBe("2");
    expect(await redis.hget(hour(), "reason|cancelled|email|thank-you|refunded")).toBe("2");
    // The spec names the channel it takes a pending step from: email's day goes to 0.
    expect(await redis.hget(dayKey(NOW + DAY), EMAIL_PENDING)).toBe("0");
    // Kept as long as the record (the worker then trims it: FollowUpStore.trimIfFinished).
    expect(await redis.pexpiretime(purchase())).toBe(NOW + 300 * DAY);
    expect(await redis.hget(record(), "g")).toBe("3");
  });

  it("update-step: applies a patch only from the allowed states, counts it, keeps an earlier version's purchase key with the record after the last pending step", async () => {
    await scheduleTwo();
    await redis.pexpireat(record(), NOW + 300 * DAY);
    await redis.set(purchase(), "stored by an earlier version", "PXAT", NOW + 200 * DAY);
    const update = updateStep;
    const [refused, found] = await update("s:a", NOW + DAY, "sending", { s: "sent" });
    expect(refused).toBe(0);
    expect(decodeStoredStep(found)).toEqual({
      s: "scheduled",
      d: NOW + DAY,
      c: "email",
      k: "thank-you",
    });
    const [changed, raw] = await update("s:a", NOW + DAY, "scheduled,sending", { s: "sent" }, SPEC);
    expect(changed).toBe(1);
    expect(decodeStoredStep(raw)).toMatchObject({ s: "sent", t: NOW, d: NOW + DAY });
    expect(await redis.hget(hour(), "cancelled|email|thank-you|r")).toBe("1");
    expect(await redis.hget(dayKey(NOW + DAY), EMAIL_PENDING)).toBe("0");
    // s:b still waits, so the purchase keeps its own expiry; after it, the record's.
    expect(await redis.pexpiretime(purchase())).toBe(NOW + 200 * DAY);
    await update("s:b", NOW + 90 * DAY, "scheduled", { s: "skipped", x: "opted-out: stop" });
    expect(await redis.pexpiretime(purchase())).toBe(NOW + 300 * DAY);

    expect(await update("s:a", NOW, "sent", { dl: "delivered" }, SPEC)).toEqual([
      -1,
      expect.any(String),
    ]);
    await redis.del(record());
    expect(await update("s:a", NOW + DAY, "sent", { dl: "delivered" })).toEqual([0, ""]);
    expect(await redis.exists(record())).toBe(0);
  });

  it("note-postponed: notes on a scheduled step when its job waits and why; the note goes when the step settles or is put back in the queue", async () => {
    await scheduleTwo();
    const later = NOW + DAY + 7 * 3_600_000;
    expect(await redis.fuNotePostponed(record(), "s:a", later, "s")).toBe(1);
    // The due time stays the planned one; only the wait is added.
    expect(await stored("s:a")).toEqual({
      s: "scheduled",
      d: NOW + DAY,
      c: "email",
      k: "thank-you",
      w: later,
      wy: "s",
    });
    // A step that is not scheduled (here: claimed), or has no record, is left alone.
    const claim = () =>
      redis.fuClaimStep(
        record(),
        purchase(),
        hour(),
        dayKey(NOW + 90 * DAY),
        "s:b",
        NOW,
        60_000,
        "",
        dayOf(NOW + 90 * DAY),
      );
    expect((await claim())[0]).toBe(1);
    expect(await redis.fuNotePostponed(record(), "s:b", later, "f")).toBe(0);
    expect(await stored("s:b")).not.toHaveProperty("w");
    expect(await redis.fuNotePostponed(record(), "s:none", later, "r")).toBe(0);
    expect(await redis.hexists(record(), "s:none")).toBe(0);

    const update = (field: string, due: number, from: string, patch: object) =>
      updateStep(field, due, from, patch, SPEC);
    // Back to scheduled for a retry: the patch notes the wait in the same change.
    await update("s:b", NOW + 90 * DAY, "sending", { s: "scheduled", w: later, wy: "r" });
    expect(await stored("s:b")).toMatchObject({ s: "scheduled", w: later, wy: "r" });
    // Settled: no note of a wait any more.
    await update("s:a", NOW + DAY, "scheduled", { s: "sent" });
    await update("s:b", NOW + 90 * DAY, "scheduled", { s: "failed" });
    for (const field of ["s:a", "s:b"]) {
      const settled = await stored(field);
      expect(settled).not.toHaveProperty("w");
      expect(settled).not.toHaveProperty("wy");
    }
    // Put back in the queue by an operator after it failed: due now, nothing waits.
    await redis.hset(
      record(),
      "s:b",
      // As a worker of an earlier version left it: settled, with the note still on (and the
      // discount code its send carried).
      `${encodeStoredStep({ s: "failed", d: NOW, c: "sms", k: "check-in" })} ${JSON.stringify({ w: later, wy: "r", dc: "code-hash" })}`,
    );
    const [requeued] = await redis.fuRequeueStep(
      record(),
      hour(),
      dayKey(NOW),
      "s:b",
      NOW,
      "failed",
      SPEC,
      "rq",
    );
    expect(requeued).toBe(1);
    // The same step sends the same code again: its note stays, for erasure to revoke it.
    expect(await stored("s:b")).toMatchObject({ s: "scheduled", d: NOW, rq: 1, dc: "code-hash" });
    expect(await stored("s:b")).not.toHaveProperty("w");
  });

  it("update-step: scrubs the purchase with the last pending step's change when passed the purchase it read", async () => {
    const SUMMARY = '{"o":"ord-1","n":"Ana Novak"}';
    const whole = Buffer.from("w".repeat(150));
    const kept = Buffer.from("k".repeat(70));
    await scheduleTwo(whole);
    const end = (field: string, due: number, asRead: Buffer) =>
      updateStep(field, due, "scheduled,sending", { s: "sent" }, "", asRead, kept, SUMMARY);
    // s:b still waits: the purchase stays whole.
    expect((await end("s:a", NOW + DAY, whole))[2]).toBe(0);
    expect(purchaseOfFields(await redis.hgetallBuffer(record()))).toEqual(whole);
    expect(await redis.hexists(record(), "m")).toBe(0);
    // The last one, but the worker read another purchase (planned again meanwhile): left whole.
    const [changed, , trimmed] = await end("s:b", NOW + 90 * DAY, Buffer.from("another"));
    expect([changed, trimmed]).toEqual([1, 0]);
    expect(purchaseOfFields(await redis.hgetallBuffer(record()))).toEqual(whole);
    // The last one, with the purchase as read: the kept part and the summary, in the same script.
    const waiting = { s: "scheduled", d: NOW + 90 * DAY, c: "sms", k: "check-in" } as const;
    await redis.hset(record(), "s:b", encodeStoredStep(waiting));
    expect(await end("s:b", NOW + 90 * DAY, whole)).toEqual([1, expect.any(String), 1]);
    const fields = await redis.hgetallBuffer(record());
    expect(purchaseOfFields(fields)).toEqual(kept);
    expect(fields.p2).toBeUndefined();
    expect(fields.m?.toString()).toBe(SUMMARY);
  });

  it("add-reply and resolve-reply: append every reply, turn a reply kept the old way into reply 1, resolve once", async () => {
    const legacyStep = JSON.stringify({ s: "sent", d: NOW, c: "sms", rp: "All good", rt: NOW + 1 });
    await redis.hset(record(), "s:big-ticket.check-in", legacyStep, "s:other.step", legacyStep);
    const reply = (text: string) => JSON.stringify({ t: text, at: NOW + 5, c: "sms" });
    expect(await redis.fuAddReply(record(), "big-ticket.check-in", reply("Broken, 2/10"))).toEqual([
      2,
      "",
    ]);
    expect(await redis.fuAddReply(record(), "big-ticket.check-in", reply("Still broken"))).toEqual([
      3,
      "",
    ]);
    expect(await redis.fuAddReply(record(), "no.step", reply("?"))).toEqual([0, ""]);
    // Filed under its message: the same message again appends nothing and gets the reply as filed.
    const flickers = reply("Screen flickers");
    expect(await redis.fuAddReply(record(), "big-ticket.check-in", flickers, "msg-key-1")).toEqual([
      4,
      "",
    ]);
    expect(
      await redis.fuAddReply(record(), "big-ticket.check-in", reply("a later copy"), "msg-key-1"),
    ).toEqual([4, flickers]);
    expect(
      await redis.fuAddReply(record(), "big-ticket.check-in", reply("New"), "msg-key-2"),
    ).toEqual([5, ""]);
    expect(await redis.hget(record(), "yn:big-ticket.check-in")).toBe("5");
    expect(await redis.hget(record(), "yr:big-ticket.check-in:msg-key-1")).toBe("4");
    expect(JSON.parse((await redis.hget(record(), "y:big-ticket.check-in:1")) ?? "{}")).toEqual({
      t: "All good",
      at: NOW + 1,
      c: "sms",
    });
    // The old copy leaves the step record.
    expect(decodeStoredStep((await redis.hget(record(), "s:big-ticket.check-in")) ?? "{}")).toEqual(
      {
        s: "sent",
        d: NOW,
        c: "sms",
      },
    );
    const resolution = JSON.stringify({ at: NOW + 9, by: "ops" });
    const [first] = await redis.fuResolveReply(record(), "big-ticket.check-in", 2, resolution);
    expect(first).toBe(1);
    const [again, kept] = await redis.fuResolveReply(record(), "big-ticket.check-in", 2, "{}");
    expect([again, JSON.parse(kept).res]).toEqual([2, { at: NOW + 9, by: "ops" }]);
    expect(await redis.fuResolveReply(record(), "big-ticket.check-in", 7, resolution)).toEqual([
      0,
      "",
    ]);
    // Reply 1 of a step that only ever had the old kind is resolvable too.
    expect((await redis.fuResolveReply(record(), "other.step", 1, resolution))[0]).toBe(1);
    expect(await redis.hget(record(), "yn:other.step")).toBe("1");
    // Erasure takes the replies and the messages they were filed under; their counts stay.
    await redis.fuEraseEvent(record(), purchase(), "erased: gone");
    expect(
      Object.keys(await redis.hgetall(record()))
        .filter((f) => f.startsWith("y"))
        .sort(),
    ).toEqual(["yn:big-ticket.check-in", "yn:other.step"]);
  });

  it("join-thank-you and close-thank-you: keep the group in the customer's history, the filing in the purchase's record, and take over a group of key layout 4", async () => {
    const HOUR = 3_600_000;
    const history = keys.customerHistory("cus");
    const legacy = keys.thankYouGroup("cus");
    const join = (eventId: string, at: number, now = NOW) =>
      redis.fuJoinThankYou(
        history,
        keys.eventRecord(eventId),
        legacy,
        keys.erasedCustomer("cus-hash"),
        eventId,
        "ty.ty",
        at,
        HOUR,
        at + HOUR,
        DAY,
        9,
        now,
      );
    await redis.hset(history, "n", "2");
    await redis.pexpire(history, 30 * DAY);
    const oldJoined = `joined\nold-1\nty.ty\n${NOW + HOUR}`;
    // A group as key layout 4 kept it: a key of its own, with the filings of its purchases.
    await redis.hset(legacy, {
      lead: "old-1",
      step: "ty.ty",
      due: String(NOW + HOUR),
      start: String(NOW),
      until: String(NOW + HOUR),
      n: "1",
      "m:old-2": String(NOW + 1_000),
      "f:old-2": oldJoined,
    });
    await redis.pexpire(legacy, DAY);
    // A purchase filed before is answered from the older key, and the group moves.
    expect(await join("old-2", NOW + 1_000)).toEqual([
      "joined",
      "old-1",
      "ty.ty",
      String(NOW + HOUR),
    ]);
    expect(await redis.hgetall(legacy)).toEqual({ "f:old-2": oldJoined });
    expect(await redis.hget(history, "tl")).toBe("old-1");
    expect(await redis.hget(history, "tm:old-2")).toBe(String(NOW + 1_000));
    // Due time, window, members, closed and end in one short field; it ends when the older key
    // would have expired.
    expect((await redis.hkeys(history)).sort()).toEqual(["n", "tg", "tl", "tm:old-2", "ts"]);
    const group = async () => ((await redis.hget(history, "tg")) ?? "").split(" ");
    expect(await group()).toEqual([
      (NOW + HOUR).toString(36),
      NOW.toString(36),
      (NOW + HOUR).toString(36),
      "1",
      "0",
      (await redis.pexpiretime(legacy)).toString(36),
    ]);
    // A new purchase joins the moved group; its filing lives in its record, which expires.
    expect(await join("new-3", NOW + 2_000)).toEqual([
      "joined",
      "old-1",
      "ty.ty",
      String(NOW + HOUR),
    ]);
    expect(await redis.hget(keys.eventRecord("new-3"), "ty")).toBe(oldJoined);
    expect(await redis.pttl(keys.eventRecord("new-3"))).toBeGreaterThan(0);
    expect(
      await redis.fuCloseThankYou(
        history,
        legacy,
        keys.eventRecord("old-2"),
        "old-2",
        NOW,
        "ty.ty",
        "",
      ),
    ).toEqual([]);
    expect(
      await redis.fuCloseThankYou(
        history,
        legacy,
        keys.eventRecord("old-1"),
        "old-1",
        NOW,
        "ty.ty",
        "",
      ),
    ).toEqual(["old-2", "new-3"]);
    expect((await group())[4]).toBe("1");
    // Left out of its leader's thank-you: filed alone, in its record, filed either way; not when
    // filed with another leader, nor for a record that is gone (none is created).
    const leave = (eventId: string, leader: string) =>
      redis.fuLeaveThankYou(keys.eventRecord(eventId), legacy, eventId, leader);
    expect(await leave("new-3", "old-9")).toBe(0);
    expect(await redis.hget(keys.eventRecord("new-3"), "ty")).toBe(oldJoined);
    expect(await leave("new-3", "old-1")).toBe(1);
    expect(await redis.hget(keys.eventRecord("new-3"), "ty")).toBe("alone");
    expect(await leave("old-2", "old-1")).toBe(0);
    expect(await redis.exists(keys.eventRecord("old-2"))).toBe(0);
    await redis.hset(keys.eventRecord("old-2"), "s:ty.ty", "x");
    expect(await leave("old-2", "old-1")).toBe(1);
    expect(await redis.hget(keys.eventRecord("old-2"), "ty")).toBe("alone");
    await redis.del(keys.eventRecord("old-2"));
    await redis.hset(keys.eventRecord("new-3"), "ty", oldJoined);
    // Erasing the purchase takes its filing, which names the customer's other purchases.
    await redis.fuEraseEvent(keys.eventRecord("new-3"), keys.purchase("new-3"), "erased: gone");
    expect(await redis.hget(keys.eventRecord("new-3"), "ty")).toBeNull();
    // After the window, with the thank-you gone: a new group, and no trace of the old members.
    expect(await join("new-4", NOW + 2 * HOUR)).toEqual(["lead"]);
    expect(await redis.hget(history, "tm:old-2")).toBeNull();
    expect(await redis.hget(history, "n")).toBe("2");
    // A group whose leader's thank-you never went (refunded, say) ends a day (the keep) after
    // its last filing, as its key of its own expired, though the history lives on.
    expect(await join("new-5", NOW + DAY - 1, NOW + DAY - 1)).toEqual(["alone"]);
    expect(await join("new-6", NOW + 3 * DAY, NOW + 2 * DAY - 2)).toEqual(["alone"]);
    expect(await join("new-7", NOW + 3 * DAY, NOW + 3 * DAY)).toEqual(["lead"]);
    expect(await redis.hget(history, "tl")).toBe("new-7");
    expect(
      await redis.fuCloseThankYou(
        history,
        legacy,
        keys.eventRecord("new-7"),
        "new-7",
        NOW + 5 * DAY,
        "ty.ty",
        "",
      ),
    ).toEqual([]);
    // A group only ever in the older key is found when its leader's thank-you goes out.
    const other = keys.customerHistory("cus-b");
    await redis.hset(keys.thankYouGroup("cus-b"), { lead: "b-1", n: "1", "m:b-2": "5" });
    await redis.pexpire(keys.thankYouGroup("cus-b"), DAY);
    expect(
      await redis.fuCloseThankYou(
        other,
        keys.thankYouGroup("cus-b"),
        keys.eventRecord("b-1"),
        "b-1",
        NOW,
        "ty.ty",
        "",
      ),
    ).toEqual(["b-2"]);
    expect(await redis.pttl(other)).toBeGreaterThan(0);
    expect(await redis.exists(keys.thankYouGroup("cus-b"))).toBe(0);
  });

  it("decide-joined-thank-you: a leader sent before `tj` listed its members only if it closed its group; a scheduled one is waited on until its grace end and the margin, a sending one also until its claim and the lease", async () => {
    const HOUR = 3_600_000;
    const LEASE = 120_000;
    const legacy = keys.thankYouGroup("cus-d");
    const history = keys.customerHistory("cus-d");
    const member = keys.eventRecord("d-2");
    const leader = keys.eventRecord("d-1");
    await redis.hset(member, "ty", `joined\nd-1\nty.ty\n${NOW}`);
    const decide = (graceMs: number | "" = "", now = NOW) =>
      redis.fuDecideJoinedThankYou(
        member,
        legacy,
        leader,
        history,
        "d-2",
        "d-1",
        graceMs,
        HOUR,
        now,
        LEASE,
        "ty.ty",
      );
    // Sent by a version that recorded nothing, its group (as key layout 4 kept it) still open:
    // it went without closing it, and listed none.
    await redis.hset(leader, "s:ty.ty", `oet${NOW.toString(36)}`);
    await redis.hset(legacy, { lead: "d-1", step: "ty.ty", n: "1", "m:d-2": String(NOW) });
    expect(await decide()).toEqual(["own"]);
    expect(await redis.hget(member, "ty")).toBe("alone");
    // Closed: it listed every purchase still joined.
    await redis.hset(member, "ty", `joined\nd-1\nty.ty\n${NOW}`);
    await redis.hset(legacy, "closed", "1");
    expect(await decide()).toEqual(["coalesced"]);
    // The same for a group in the customer's history (the fifth number: closed).
    await redis.del(legacy);
    await redis.hset(history, { tl: "d-1", ts: "ty.ty", tg: "a b c 1 0 z" });
    expect(await decide()).toEqual(["own"]);
    await redis.hset(member, "ty", `joined\nd-1\nty.ty\n${NOW}`);
    await redis.hset(history, "tg", "a b c 1 1 z");
    expect(await decide()).toEqual(["coalesced"]);
    // Still scheduled: waited on, however long without a grace period; with one, until the end
    // of the leader's (its own `e` when it has one, or its noted wait `w` if later) and the margin.
    const scheduled = `set${NOW.toString(36)}`;
    await redis.hset(leader, "s:ty.ty", scheduled);
    expect(await decide("", NOW + 100 * HOUR)).toEqual(["wait", scheduled]);
    expect(await decide(2 * HOUR, NOW + 3 * HOUR - 1)).toEqual(["wait", scheduled]);
    await redis.hset(leader, "s:ty.ty", `${scheduled} ${JSON.stringify({ w: NOW + 5 * HOUR })}`);
    expect((await decide(2 * HOUR, NOW + 3 * HOUR))[0]).toBe("wait");
    await redis.hset(leader, "s:ty.ty", `${scheduled} ${JSON.stringify({ e: NOW + 10 * HOUR })}`);
    expect((await decide(2 * HOUR, NOW + 11 * HOUR - 1))[0]).toBe("wait");
    expect(await decide(2 * HOUR, NOW + 11 * HOUR)).toEqual(["own", "lost"]);
    expect(await redis.hget(member, "ty")).toBe("alone");
    // A leader being sent is waited on while that send may be live or taken over: until the
    // later of its grace end and its claim (`t`) plus the lease, and the margin; without a grace
    // period, whatever the time.
    await redis.hset(member, "ty", `joined\nd-1\nty.ty\n${NOW}`);
    await redis.hset(leader, "s:ty.ty", `net${NOW.toString(36)}`);
    expect((await decide("", NOW + 100 * HOUR))[0]).toBe("wait");
    const claimedAt = NOW + 2 * HOUR - 1000;
    await redis.hset(leader, "s:ty.ty", `net${NOW.toString(36)}.${claimedAt.toString(36)}`);
    expect((await decide(2 * HOUR, NOW + 3 * HOUR))[0]).toBe("wait");
    expect((await decide(2 * HOUR, claimedAt + LEASE + HOUR - 1))[0]).toBe("wait");
    // Past it, the send is stuck (its worker died, its job gone): this one goes on its own, filed
    // alone. A group the leader led still open says it listed nothing: no possible duplicate.
    await redis.hset(member, "s:ty.ty", `set${NOW.toString(36)}`);
    await redis.hset(history, "tg", "a b c 1 0 z");
    expect(await decide(2 * HOUR, claimedAt + LEASE + HOUR)).toEqual(["own", "stuck"]);
    expect(await redis.hget(member, "ty")).toBe("alone");
    expect(await redis.hget(member, "s:ty.ty")).toBe(`set${NOW.toString(36)}`);
    // What it listed, recorded as it closed the group, and it did not list this one: the same.
    await redis.hset(member, "ty", `joined\nd-1\nty.ty\n${NOW}`);
    await redis.hset(leader, "tj", "ty.ty\nd-3");
    expect(await decide(2 * HOUR, claimedAt + LEASE + HOUR)).toEqual(["own", "stuck"]);
    expect(await redis.hget(member, "s:ty.ty")).toBe(`set${NOW.toString(36)}`);
    // It listed this one: that message may have reached the customer. Its own is a possible
    // duplicate, counted in its step record (`r`) as it is decided.
    await redis.hset(member, "ty", `joined\nd-1\nty.ty\n${NOW}`);
    await redis.hset(leader, "tj", "ty.ty\nd-3 d-2");
    expect(await decide(2 * HOUR, claimedAt + LEASE + HOUR)).toEqual(["own", "stuck", "listed"]);
    expect(await redis.hget(member, "ty")).toBe("alone");
    expect(await redis.hget(member, "s:ty.ty")).toBe(`set${NOW.toString(36)} {"r":1}`);
    // Decided once: filed alone, it is not counted again.
    expect(await decide(2 * HOUR, claimedAt + LEASE + HOUR)).toEqual(["own"]);
    expect(await redis.hget(member, "s:ty.ty")).toBe(`set${NOW.toString(36)} {"r":1}`);
  });

  it("stop-event: marks a record it finds and creates none", async () => {
    expect(await redis.fuStopEvent(record(), "refunded: why")).toBe(0);
    expect(await redis.exists(record())).toBe(0);
    await scheduleTwo();
    expect(await redis.fuStopEvent(record(), "refunded: why")).toBe(1);
    expect(await redis.hget(record(), "stop")).toBe("refunded: why");
  });

  it("count-outcomes: counts each field once into the hour and keeps it for the given time", async () => {
    await redis.fuCountOutcomes(hour(), 5_000, "optout|sms|-|-", "reason|optout|sms|-|sms-stop");
    await redis.fuCountOutcomes(hour(), 5_000, "optout|sms|-|-");
    expect(await redis.hgetall(hour())).toEqual({
      "optout|sms|-|-": "2",
      "reason|optout|sms|-|sms-stop": "1",
    });
    const ttl = await redis.pttl(hour());
    expect(ttl).toBeGreaterThan(4_000);
    expect(ttl).toBeLessThanOrEqual(5_000);
  });

  it("suppress: adds members and counts the opt-out only when one of them is new", async () => {
    const set = keys.suppressions("sms");
    const fields = JSON.stringify(["optout|sms|-|-", "reason|optout|sms|-|sms-stop"]);
    expect(await redis.fuSuppress(set, hour(), 5_000, fields, "", "h:abc", "c:cus-1")).toBe(2);
    expect(await redis.fuSuppress(set, hour(), 5_000, fields, "", "h:abc")).toBe(0);
    expect(await redis.fuSuppress(set, hour(), 5_000, "", "", "c:cus-2")).toBe(1);
    // Marks are added with the members, never counted, and count as no new member.
    expect(await redis.fuSuppress(set, hour(), 5_000, fields, "d:abc", "h:abc")).toBe(0);
    expect((await redis.smembers(set)).sort()).toEqual(["c:cus-1", "c:cus-2", "d:abc", "h:abc"]);
    expect(await redis.hgetall(hour())).toEqual({
      "optout|sms|-|-": "1",
      "reason|optout|sms|-|sms-stop": "1",
    });
  });

  it("allow: takes members off both lists, but leaves a list that holds one of the marks", async () => {
    const all = keys.suppressions("voice");
    const offers = keys.marketingSuppressions("voice");
    await redis.sadd(all, "h:abc", "d:abc", "k:cus");
    await redis.sadd(offers, "h:abc");
    expect(await redis.fuAllow(2, all, offers, "d:abc", "", "", "", "h:abc", "a:old")).toBe(1);
    expect((await redis.smembers(all)).sort()).toEqual(["d:abc", "h:abc", "k:cus"]);
    expect(await redis.smembers(offers)).toEqual([]);
    expect(await redis.fuAllow(2, all, offers, "", "", "", "", "h:abc")).toBe(0);
    expect((await redis.smembers(all)).sort()).toEqual(["d:abc", "k:cus"]);
    // 'keep-offers': the list of offers only stays as it is.
    await redis.sadd(all, "h:abc");
    await redis.sadd(offers, "h:abc");
    expect(await redis.fuAllow(2, all, offers, "", "keep-offers", "", "", "h:abc")).toBe(0);
    expect((await redis.smembers(all)).sort()).toEqual(["d:abc", "k:cus"]);
    expect(await redis.smembers(offers)).toEqual(["h:abc"]);
    // A START sent at 1,000 (replayed): an opt-out of offers noted at 2,000 keeps the list of
    // offers; one of everything at 3,000 keeps both, and nothing is removed.
    const times = keys.phoneOptedOutAt("h:abc");
    await redis.zadd(times, 2_000, "offers");
    await redis.sadd(all, "h:abc");
    expect(await redis.fuAllow(3, all, offers, times, "", "", 1_000, "", "h:abc")).toBe(0);
    expect((await redis.smembers(all)).sort()).toEqual(["d:abc", "k:cus"]);
    expect(await redis.smembers(offers)).toEqual(["h:abc"]);
    await redis.zadd(times, 3_000, "at");
    await redis.sadd(all, "h:abc");
    expect(await redis.fuAllow(3, all, offers, times, "", "", 1_000, "", "h:abc")).toBe(-1);
    expect((await redis.smembers(all)).sort()).toEqual(["d:abc", "h:abc", "k:cus"]);
    // Sent after both: taken off both lists.
    expect(await redis.fuAllow(3, all, offers, times, "", "", 4_000, "", "h:abc")).toBe(0);
    expect((await redis.smembers(all)).sort()).toEqual(["d:abc", "k:cus"]);
    expect(await redis.smembers(offers)).toEqual([]);
    // A live START that came in when the number had one opt-out of everything and none of
    // offers noted: one of offers noted since keeps the list of offers; one of everything keeps
    // both, and nothing is removed.
    await redis.zadd(times, 1, "n", 1, "n-offers");
    await redis.sadd(all, "h:abc");
    await redis.sadd(offers, "h:abc");
    expect(await redis.fuAllow(3, all, offers, times, "", "", "", "1 0", "h:abc")).toBe(0);
    expect((await redis.smembers(all)).sort()).toEqual(["d:abc", "k:cus"]);
    expect(await redis.smembers(offers)).toEqual(["h:abc"]);
    await redis.zadd(times, 2, "n");
    await redis.sadd(all, "h:abc");
    expect(await redis.fuAllow(3, all, offers, times, "", "", "", "1 1", "h:abc")).toBe(-1);
    expect((await redis.smembers(all)).sort()).toEqual(["d:abc", "h:abc", "k:cus"]);
    // None noted since: taken off both lists.
    expect(await redis.fuAllow(3, all, offers, times, "", "", "", "2 1", "h:abc")).toBe(0);
    expect((await redis.smembers(all)).sort()).toEqual(["d:abc", "k:cus"]);
    expect(await redis.smembers(offers)).toEqual([]);
  });

  it("suppress and allow at the same moment: a decline made with its marks is never half undone", async () => {
    const list = new SuppressionList(redis, prefix, { addressHashSecret: "test-secret" });
    const number = "+447700900123";
    const member = await list.addressMember(number);
    const all = keys.suppressions("voice");
    for (let round = 0; round < 40; round++) {
      await redis.del(all);
      // A text STOP stood; a 9 pressed on a call and a texted START arrive together.
      await list.suppress("voice", { address: number }, undefined, "all", "text");
      await Promise.all([
        list.suppress("voice", { address: number }, undefined, "all", "other"),
        list.allow("voice", { address: number }),
      ]);
      const marked = (await redis.sismember(all, `d:${member.slice(2)}`)) === 1;
      const suppressed = (await redis.sismember(all, member)) === 1;
      // Either the decline came second (suppressed, marked) or the START did, and saw the mark.
      expect({ round, marked, suppressed }).toEqual({ round, marked: true, suppressed: true });
    }
  });

  it("count-once: counts once per receipt and remembers the receipt for the given time", async () => {
    const receipt = keys.webhookReceipt("st:SM1:delivered");
    expect(await redis.fuCountOnce(receipt, hour(), 60, 5_000, "delivered|sms|check-in|r")).toBe(1);
    expect(await redis.fuCountOnce(receipt, hour(), 60, 5_000, "delivered|sms|check-in|r")).toBe(0);
    expect(await redis.hgetall(hour())).toEqual({ "delivered|sms|check-in|r": "1" });
    const ttl = await redis.ttl(receipt);
    expect(ttl).toBeGreaterThan(55);
    expect(ttl).toBeLessThanOrEqual(60);
  });

  it("count-first-outcome: counts an outcome once, and not when the contradicting one was counted first", async () => {
    const delivered = keys.webhookReceipt("st:SM2:delivered");
    const undelivered = keys.webhookReceipt("st:SM2:undelivered");
    const count = (receipt: string, other: string, field: string) =>
      redis.fuCountFirstOutcome(receipt, other, hour(), 60, 5_000, field);
    expect(await count(delivered, undelivered, "delivered|sms|check-in|r")).toBe(1);
    expect(await count(delivered, undelivered, "delivered|sms|check-in|r")).toBe(0);
    expect(await count(undelivered, delivered, "undelivered|sms|check-in|r")).toBe(-1);
    expect(await redis.hgetall(hour())).toEqual({ "delivered|sms|check-in|r": "1" });
    expect(await redis.exists(undelivered)).toBe(0);
    const ttl = await redis.ttl(delivered);
    expect(ttl).toBeGreaterThan(55);
    expect(ttl).toBeLessThanOrEqual(60);
  });

  it("note-sms-status: notes a status only forward, and the first final one stays (read may follow delivered)", async () => {
    await scheduleTwo();
    await sentAs("s:b", "SM1");
    const note = async (status: string, code: number | "" = "") =>
      (await noteSmsStatus("s:b", NOW, status, code))[0];
    const delivery = async () => {
      const step = await stored("s:b");
      return { dl: step?.dl, de: step?.de };
    };
    expect(await note("sending")).toBe(1);
    expect(await note("queued")).toBe(0);
    expect(await note("sending")).toBe(0);
    expect(await note("sent")).toBe(1);
    expect(await note("accepted")).toBe(0);
    expect(await delivery()).toEqual({ dl: "sent", de: undefined });
    expect(await note("undelivered", 30003)).toBe(1);
    expect(await note("sent")).toBe(0);
    expect(await note("delivered")).toBe(0);
    // Of the same outcome, but the first stays with its code: the ledger counted it so.
    expect(await note("failed", 30007)).toBe(0);
    expect(await note("canceled")).toBe(0);
    expect(await delivery()).toEqual({ dl: "undelivered", de: 30003 });
    expect(await noteSmsStatus("s:none", NOW, "sent", "")).toEqual([0, ""]);
    expect((await stored("s:b"))?.s).toBe("scheduled");
  });

  it("note-sms-status: never dates the record earlier than it is (a status handled by a replica whose clock is behind)", async () => {
    await scheduleTwo();
    await sentAs("s:b", "SM1");
    expect((await noteSmsStatus("s:b", NOW + 5_000, "sent", ""))[0]).toBe(1);
    expect((await stored("s:b"))?.t).toBe(NOW + 5_000);
    expect((await noteSmsStatus("s:b", NOW, "delivered", ""))[0]).toBe(1);
    expect(await stored("s:b")).toMatchObject({ dl: "delivered", t: NOW + 5_000 });
    expect((await noteSmsStatus("s:b", NOW + 9_000, "read", ""))[0]).toBe(1);
    expect(await stored("s:b")).toMatchObject({ dl: "read", t: NOW + 9_000 });
  });

  it("settle-sent and note-sms-status: the latest sent keeps the one it replaced, which comes back when Twilio reports the latest canceled or failed", async () => {
    await scheduleTwo();
    const lastSent = keys.lastSent("cus-1");
    const sentStep = (stepId: string, at: number) => ({
      eventId: "evt",
      stepId,
      channel: "sms",
      kind: "check-in",
      ruleId: "r",
      at,
    });
    const settle = (field: string, at: number) =>
      redis.fuSettleSent(
        record(),
        lastSent,
        field,
        JSON.stringify(sentStep(field.slice(2), at)),
        at,
        60_000,
      );
    const latest = async () => JSON.parse((await redis.get(lastSent)) ?? "null");
    const asSent = async (field: string, sid: string) => {
      const step = await stored(field);
      await redis.hset(record(), field, JSON.stringify({ ...step, s: "sent", id: sid }));
    };
    // `a` sent, then `b`: `b` is the latest, keeping `a`.
    await asSent("s:a", "SM0");
    expect(await settle("s:a", NOW)).toBe(1);
    await asSent("s:b", "SM1");
    expect(await settle("s:b", NOW + 1_000)).toBe(1);
    expect(await latest()).toEqual({ ...sentStep("b", NOW + 1_000), p: sentStep("a", NOW) });
    // `b` never went out: `a` is the latest again, for as long as the key was kept.
    expect((await noteSmsStatus("s:b", NOW + 2_000, "failed", 30001))[0]).toBe(1);
    expect(await latest()).toEqual(sentStep("a", NOW));
    expect(await redis.pttl(lastSent)).toBeGreaterThan(50_000);
    // Twilio repeating the report changes nothing more.
    await noteSmsStatus("s:b", NOW + 3_000, "failed", 30001);
    expect(await latest()).toEqual(sentStep("a", NOW));
    // A step such a report failed before its bookkeeping ended does not become the latest.
    expect(await settle("s:b", NOW + 1_000)).toBe(1);
    expect(await latest()).toEqual(sentStep("a", NOW));
  });

  it("note-sms-status: a canceled text kept as the one the latest sent replaced goes from it, and the latest sent goes when it kept none", async () => {
    await scheduleTwo();
    const lastSent = keys.lastSent("cus-1");
    const entry = (stepId: string, at: number) => ({ eventId: "evt", stepId, at });
    const step = await stored("s:b");
    await redis.hset(record(), "s:b", JSON.stringify({ ...step, s: "sent", id: "SM1" }));
    await redis.set(lastSent, JSON.stringify({ ...entry("a", NOW + 1), p: entry("b", NOW) }));
    await noteSmsStatus("s:b", NOW + 2_000, "canceled", "");
    expect(JSON.parse((await redis.get(lastSent)) ?? "null")).toEqual(entry("a", NOW + 1));
    // The text the latest sent names, with none kept before it: no latest sent.
    await redis.hset(record(), "s:b", JSON.stringify({ ...step, s: "sent", id: "SM1" }));
    await redis.set(lastSent, JSON.stringify(entry("b", NOW)));
    await noteSmsStatus("s:b", NOW + 3_000, "canceled", "");
    expect(await redis.exists(lastSent)).toBe(0);
  });

  it("keep-early-sms-status and remember-sms: a status kept before the reference is handed over as it is written, and none after", async () => {
    const reference = keys.smsMessage("SM3");
    const early = keys.earlySmsStatuses("SM3");
    const keep = (status: string) =>
      redis.fuKeepEarlySmsStatus(reference, early, status, 60_000, 2);
    expect(await keep("a")).toBe(1);
    expect(await keep("b")).toBe(1);
    expect(await keep("c")).toBe(1);
    const ttl = await redis.pttl(early);
    expect(ttl).toBeGreaterThan(55_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    // The latest two, earliest first; kept until the caller drops them. The reference's expiry
    // is an hour from the real clock: NOW (10:00 today) plus an hour has passed after 11:00 UTC,
    // and the reference then expired as it was written (seen in CI at 11:30).
    const expiresAt = Date.now() + 3_600_000;
    expect(await redis.fuRememberSms(reference, early, "evt\ns:a", expiresAt)).toEqual(["b", "c"]);
    expect(await redis.get(reference)).toBe("evt\ns:a");
    expect(await redis.pexpiretime(reference)).toBe(expiresAt);
    expect(await keep("d")).toBe(0);
    expect(await redis.lrange(early, 0, -1)).toEqual(["b", "c"]);
  });

  it("remember-steps: keeps each purchase's due time per cooldown field, replaces its own, drops a re-planned step's others, prunes old ones, and writes nothing for a purchase from before an erasure", async () => {
    const recent = keys.recentSteps("cus-1");
    const marker = keys.erasedCustomer("cus-1-hash");
    const remember = (
      eventId: string,
      purchasedAt: number,
      pruneBefore: number,
      ...entries: (string | number)[]
    ) =>
      redis.fuRememberSteps(
        recent,
        marker,
        keys.eventRecord(eventId),
        purchasedAt,
        30 * DAY,
        eventId,
        pruneBefore,
        "",
        0,
        0,
        ...entries,
      );
    // A field the version before wrote (the latest due, of e1), and one of another purchase.
    await redis.hset(recent, "k:discount", `${NOW + 9 * DAY} e1`, "r:acc", `${NOW + 9 * DAY} e0`);
    expect(
      await remember(
        "e1",
        NOW,
        NOW,
        "r:acc acc.discount",
        NOW + 14 * DAY,
        "k:discount acc.discount",
        NOW + 14 * DAY,
      ),
    ).toBe(2);
    // An earlier due time of another purchase (taken in at the same moment) is kept beside it.
    expect(
      await remember(
        "e2",
        NOW,
        NOW,
        "k:discount loyal.discount",
        NOW + 3 * DAY,
        "r:loyal loyal.discount",
        NOW + 3 * DAY,
      ),
    ).toBe(2);
    // Each rule and kind counts the writes that changed a due time under it.
    expect(await redis.hgetall(recent)).toEqual({
      "r:acc": `${NOW + 9 * DAY} e0`,
      "r:acc acc.discount e1": `${NOW + 14 * DAY}`,
      "k:discount acc.discount e1": `${NOW + 14 * DAY}`,
      "k:discount loyal.discount e2": `${NOW + 3 * DAY}`,
      "r:loyal loyal.discount e2": `${NOW + 3 * DAY}`,
      "v:r:acc": "#1",
      "v:k:discount": "#2",
      "v:r:loyal": "#1",
    });
    expect(await redis.pttl(recent)).toBeGreaterThan(29 * DAY);
    // e1 planned again (a re-plan moved its step): its own entry changes; what is due before
    // the pruning time (e2's, e0's) goes, the counts stay.
    expect(
      await remember("e1", NOW, NOW + 10 * DAY, "k:discount acc.discount", NOW + 20 * DAY),
    ).toBe(1);
    expect(await redis.hgetall(recent)).toEqual({
      "r:acc acc.discount e1": `${NOW + 14 * DAY}`,
      "k:discount acc.discount e1": `${NOW + 20 * DAY}`,
      "v:r:acc": "#1",
      "v:k:discount": "#3",
      "v:r:loyal": "#1",
    });
    // The same due time again changes nothing, so it counts no write.
    expect(await remember("e1", NOW, NOW, "k:discount acc.discount", NOW + 20 * DAY)).toBe(1);
    expect(await redis.hget(recent, "v:k:discount")).toBe("#3");
    // A re-plan names the steps it decided: their entries it does not write go, and count as a
    // write (acc.discount is a custom step now: no longer under the discount cooldown); another
    // step of the purchase (ended before, sent) keeps its entry.
    await redis.hset(recent, "k:discount loyal.discount e1", `${NOW + 15 * DAY}`);
    const replanned = (...entries: (string | number)[]) =>
      redis.fuRememberSteps(
        recent,
        marker,
        keys.eventRecord("e1"),
        NOW,
        30 * DAY,
        "e1",
        NOW,
        "",
        0,
        1,
        "acc.discount",
        ...entries,
      );
    expect(await replanned("r:acc acc.discount", NOW + 14 * DAY)).toBe(1);
    expect(await redis.hgetall(recent)).toEqual({
      "r:acc acc.discount e1": `${NOW + 14 * DAY}`,
      "k:discount loyal.discount e1": `${NOW + 15 * DAY}`,
      "v:r:acc": "#1",
      "v:k:discount": "#4",
      "v:r:loyal": "#1",
    });
    // Skipped or cancelled by a re-plan: nothing written, its entries go.
    expect(await replanned()).toBe(0);
    expect(Object.keys(await redis.hgetall(recent)).filter((f) => f.includes("acc."))).toEqual([]);
    expect(await redis.hget(recent, "v:r:acc")).toBe("#2");
    // Erased at NOW + 1: a purchase made before then remembers nothing, one after does.
    await redis.del(recent);
    await redis.set(marker, NOW + 1);
    expect(await remember("e3", NOW, NOW, "r:acc acc.discount", NOW + 20 * DAY)).toBe(-1);
    expect(await redis.exists(recent)).toBe(0);
    expect(await remember("e4", NOW + 2, NOW, "r:acc acc.discount", NOW + 20 * DAY)).toBe(1);
  });

  it("remember-steps: refuses a write checked against counts that moved since they were read, whole", async () => {
    const recent = keys.recentSteps("cus-2");
    const marker = keys.erasedCustomer("cus-2-hash");
    const remember = (eventId: string, checks: string[], ...entries: (string | number)[]) =>
      redis.fuRememberSteps(
        recent,
        marker,
        keys.eventRecord(eventId),
        NOW,
        30 * DAY,
        eventId,
        NOW,
        "",
        checks.length / 2,
        ...checks,
        0,
        ...entries,
      );
    // A hash of the version before (no counts): read as none, so a write checked against none goes.
    await redis.hset(recent, "k:discount", `${NOW + 9 * DAY} e0`);
    const offer = ["r:offer offer.discount", NOW + DAY, "k:discount offer.discount", NOW + DAY];
    expect(await remember("e1", ["r:offer", "", "k:discount", ""], ...offer)).toBe(2);
    // e2 read before e1 wrote: refused, nothing of it written.
    expect(await remember("e2", ["r:offer", "", "k:discount", ""], ...offer)).toBe(-2);
    // One count moved is enough: the kind's, though the rule's is as read.
    expect(await remember("e2", ["r:offer", "#1", "k:discount", ""], ...offer)).toBe(-2);
    expect(Object.keys(await redis.hgetall(recent)).filter((f) => f.endsWith(" e2"))).toEqual([]);
    // Read again, after e1's write: it goes.
    expect(await remember("e2", ["r:offer", "#1", "k:discount", "#1"], ...offer)).toBe(2);
    expect(await redis.hmget(recent, "v:r:offer", "v:k:discount")).toEqual(["#2", "#2"]);
    // An erasure since the purchase is said before a moved count.
    await redis.set(marker, NOW);
    expect(await remember("e3", ["r:offer", ""], "r:offer offer.discount", NOW + DAY)).toBe(-1);
  });

  it("remember-check-in: counts a purchase's check-in once, keeps it for its window, drops old ones", async () => {
    const checkIns = keys.checkIns("cus-1");
    const keep = 31 * DAY;
    const remember = (purchase: string, entry: string, field: string, at: number, now = NOW) =>
      redis.fuRememberCheckIn(checkIns, hour(), purchase, entry, field, 5_000, now, keep, at);
    expect(
      await remember("p1", `skipped ${NOW} no-consent`, "checkin|skipped|no-consent", NOW),
    ).toBe(1);
    // A later outcome of the same purchase's check-in (a fallback text) changes nothing.
    expect(await remember("p1", `sent ${NOW + 1}`, "checkin|sent", NOW + 1)).toBe(0);
    // A check-in that would go out in 90 days keeps the customer's hash that long and its window.
    const later = NOW + 90 * DAY;
    expect(
      await remember("p2", `skipped ${later} opted-out`, "checkin|skipped|opted-out", later),
    ).toBe(1);
    expect(await redis.hgetall(hour())).toEqual({
      "checkin|skipped|no-consent": "1",
      "checkin|skipped|opted-out": "1",
    });
    expect(await redis.hgetall(checkIns)).toEqual({
      p1: `skipped ${NOW} no-consent`,
      p2: `skipped ${later} opted-out`,
    });
    const ttl = await redis.pttl(checkIns);
    expect(ttl).toBeGreaterThan(90 * DAY + keep - 60_000);
    expect(ttl).toBeLessThanOrEqual(90 * DAY + keep);
    expect(await redis.pttl(hour())).toBeLessThanOrEqual(5_000);
    // Past p1's window, the next write drops it; a check-in whose window is over is not kept.
    const afterWindow = NOW + keep + 1;
    expect(
      await remember("p3", `sent ${afterWindow}`, "checkin|sent", afterWindow, afterWindow),
    ).toBe(1);
    expect(Object.keys(await redis.hgetall(checkIns)).sort()).toEqual(["p2", "p3"]);
    expect(await remember("p4", `sent ${NOW}`, "checkin|sent", NOW, afterWindow)).toBe(0);
  });

  it("record-purchase: counts a purchase once per event and answers a repeat with the same count", async () => {
    const customer = keys.customerHistory("cus-1");
    const other = keys.eventRecord("evt-2");
    const at = (time: string, key = record(), fingerprint = "fp-a") =>
      redis.fuRecordPurchase(
        key,
        customer,
        keys.erasedCustomer("cus-1-hash"),
        keys.lastSent("cus-1"),
        keys.checkIns("cus-1"),
        time,
        DAY,
        DAY,
        fingerprint,
        key === record() ? "evt" : "evt-2",
        Date.parse(time),
      );
    // Last, whether the history has grown past its next pruning (`pn`, default 120 fields).
    expect(await at("2026-11-01T10:00:00.000Z")).toEqual([0, "", 1, "", [], 0]);
    expect(await at("2026-11-01T10:00:00.000Z")).toEqual([
      0,
      "2026-11-01T10:00:00.000Z",
      0,
      "",
      [],
      0,
    ]);
    // What attributing a purchase reads of its customer comes with the count.
    await redis.set(keys.lastSent("cus-1"), '{"stepId":"s"}');
    await redis.hset(keys.checkIns("cus-1"), "p1", "sent 1 -");
    expect(await at("2026-10-01T10:00:00.000Z", other, "fp-b")).toEqual([
      1,
      "2026-11-01T10:00:00.000Z",
      1,
      '{"stepId":"s"}',
      ["p1", "sent 1 -"],
      0,
    ]);
    // An earlier purchase arriving late does not move `last` back; both purchases are listed.
    const history = {
      n: "2",
      last: "2026-11-01T10:00:00.000Z",
      "e:evt": String(Date.parse("2026-11-01T10:00:00.000Z")),
      "e:evt-2": String(Date.parse("2026-10-01T10:00:00.000Z")),
    };
    expect(await redis.hgetall(customer)).toEqual(history);
    // The id used again for other content: a conflict that counts nothing.
    expect(await at("2026-11-02T10:00:00.000Z", record(), "fp-other")).toEqual([-1, "", 0]);
    expect(await redis.hgetall(customer)).toEqual(history);
    expect(await redis.hget(record(), "f")).toBe("fp-a");
  });

  it("record-purchase: fails with nothing written when a key it reads for attribution is of another type", async () => {
    const customer = keys.customerHistory("cus-1");
    await redis.set(keys.checkIns("cus-1"), "not a hash");
    const at = "2026-11-01T10:00:00.000Z";
    await expect(
      redis.fuRecordPurchase(
        record(),
        customer,
        keys.erasedCustomer("cus-1-hash"),
        keys.lastSent("cus-1"),
        keys.checkIns("cus-1"),
        at,
        DAY,
        DAY,
        "fp-a",
        "evt",
        Date.parse(at),
      ),
    ).rejects.toThrow(/WRONGTYPE/);
    // Nothing counted: once the key is repaired the purchase is recorded as a first sighting.
    expect(await redis.exists(customer, record())).toBe(0);
  });

  it("record-purchase: a purchase from before the customer's erasure records nothing", async () => {
    const customer = keys.customerHistory("cus-1");
    const erased = keys.erasedCustomer("cus-1-hash");
    await redis.set(erased, String(Date.parse("2026-11-01T10:00:00.000Z")));
    const at = (time: string, eventId: string) =>
      redis.fuRecordPurchase(
        keys.eventRecord(eventId),
        customer,
        erased,
        keys.lastSent("cus-1"),
        keys.checkIns("cus-1"),
        time,
        DAY,
        DAY,
        `fp-${eventId}`,
        eventId,
        Date.parse(time),
      );
    expect(await at("2026-11-01T09:59:00.000Z", "evt-before")).toEqual([-2, "", 0]);
    expect(await redis.exists(customer, keys.eventRecord("evt-before"))).toBe(0);
    // A purchase after the erasure is a new start.
    expect(await at("2026-11-01T10:01:00.000Z", "evt-after")).toEqual([0, "", 1, "", [], 0]);
  });

  it("record-purchase: a record written before fingerprints takes the first one it sees", async () => {
    await redis.hset(record(), "h", "3");
    await redis.pexpire(record(), DAY);
    const customer = keys.customerHistory("cus-1");
    expect(
      await redis.fuRecordPurchase(
        record(),
        customer,
        keys.erasedCustomer("cus-1-hash"),
        keys.lastSent("cus-1"),
        keys.checkIns("cus-1"),
        "2026-11-01T10:00:00.000Z",
        DAY,
        DAY,
        "fp",
        "evt",
        Date.parse("2026-11-01T10:00:00.000Z"),
      ),
    ).toEqual([3, "", 0, "", [], 0]);
    expect(await redis.hget(record(), "f")).toBe("fp");
  });

  it("forget-customer: removes the customer's entries from every bucket given, no one else's", async () => {
    const first = keys.addressBucket(1);
    const second = keys.addressBucket(2);
    await redis.hset(first, {
      "aaaaaaaaaaacus-1": "1:9",
      "bbbbbbbbbbbcus-1": "1:9",
      "aaaaaaaaaaacus-12": "1:9",
      "cccccccccccxcus-1": "1:9",
      "~": "5",
    });
    await redis.hset(second, { "dddddddddddcus-1": "1:9", "dddddddddddcus-2": "1:9" });
    expect(await redis.fuForgetCustomer(2, first, second, "cus-1", 11)).toBe(3);
    expect(Object.keys(await redis.hgetall(first)).sort()).toEqual([
      "aaaaaaaaaaacus-12",
      "cccccccccccxcus-1",
      "~",
    ]);
    expect(await redis.hgetall(second)).toEqual({ "dddddddddddcus-2": "1:9" });
  });

  it("record-purchase: lists every purchase of a customer, however many", async () => {
    const customer = keys.customerHistory("cus-1");
    const buy = (i: number) =>
      redis.fuRecordPurchase(
        keys.eventRecord(`evt-${i}`),
        customer,
        keys.erasedCustomer("cus-1-hash"),
        keys.lastSent("cus-1"),
        keys.checkIns("cus-1"),
        new Date(NOW + i * 1000).toISOString(),
        DAY,
        DAY,
        `fp-${i}`,
        `evt-${i}`,
        NOW + i * 1000,
        `order-hash-${String(i).padStart(11, "0")}`,
        "h:phone-hash",
      );
    for (let i = 0; i < 103; i++) expect((await buy(i))[5]).toBe(0);
    // Each purchase's entry names its order (the order id's hash); the phone number once.
    expect(await redis.hget(customer, "e:evt-7")).toBe(`${NOW + 7000}:order-hash-00000000007`);
    expect(await redis.hget(customer, "ph:h:phone-hash")).toBe("1");
    const listed = Object.keys(await redis.hgetall(customer)).filter((f) => f.startsWith("e:"));
    // Erasure finds a customer's purchases by this list: none is dropped here.
    expect(listed).toHaveLength(103);
    expect(listed).toContain("e:evt-0");
    expect(listed).toContain("e:evt-102");
    expect(await redis.hget(customer, "n")).toBe("103");
    // Past 120 fields the store is asked to prune; after that, at the size it set in `pn`.
    for (let i = 103; i < 116; i++) await buy(i);
    // 117 purchases, `n`, `last` and the number: 120 fields.
    expect((await buy(116))[5]).toBe(0);
    expect((await buy(117))[5]).toBe(1);
    await redis.hset(customer, "pn", 500);
    expect((await buy(118))[5]).toBe(0);
  });

  it("rules-generation: numbers each rules version once, in the order first seen", async () => {
    const generations = keys.rulesGenerations();
    expect(await redis.fuRulesGeneration(generations, "aaa")).toEqual([1, 1]);
    expect(await redis.fuRulesGeneration(generations, "bbb")).toEqual([2, 2]);
    // A worker still on the first rules gets its number back, and learns it is not the newest.
    expect(await redis.fuRulesGeneration(generations, "aaa")).toEqual([1, 2]);
  });

  it("claim-event-id: first, repeat, or conflict; an old purchase record is never shared", async () => {
    expect(await redis.fuClaimEventId(record(), "fp-refund", DAY)).toBe(1);
    expect(await redis.fuClaimEventId(record(), "fp-refund", DAY)).toBe(0);
    expect(await redis.fuClaimEventId(record(), "fp-other", DAY)).toBe(-1);
    const ttl = await redis.pttl(record());
    expect(ttl).toBeGreaterThan(DAY - 5_000);
    const old = keys.eventRecord("evt-old");
    await redis.hset(old, "h", "0");
    expect(await redis.fuClaimEventId(old, "fp-refund", DAY)).toBe(-1);
  });

  it("claim-event-id and record-purchase: a 22-character fingerprint of key layout 4 is the same event's when it begins with the 11 characters kept now", async () => {
    const legacy = "abcdefghijkLMNOPQRSTUV";
    const refund = keys.eventRecord("evt-refund-4");
    await redis.hset(refund, "f", legacy);
    await redis.pexpire(refund, DAY);
    expect(await redis.fuClaimEventId(refund, "abcdefghijk", DAY)).toBe(0);
    expect(await redis.fuClaimEventId(refund, "abcdefghijX", DAY)).toBe(-1);
    const purchase = keys.eventRecord("evt-purchase-4");
    await redis.hset(purchase, { f: legacy, h: "3" });
    await redis.pexpire(purchase, DAY);
    const record = (fingerprint: string) =>
      redis.fuRecordPurchase(
        purchase,
        keys.customerHistory("cus-4"),
        keys.erasedCustomer("cus-4-hash"),
        keys.lastSent("cus-4"),
        keys.checkIns("cus-4"),
        "2026-11-01T10:00:00.000Z",
        DAY,
        DAY,
        fingerprint,
        "evt-purchase-4",
        Date.parse("2026-11-01T10:00:00.000Z"),
      );
    // The same event again: the count it saw before, not a second purchase.
    expect((await record("abcdefghijk"))[0]).toBe(3);
    expect((await record("abcdefghijZ"))[0]).toBe(-1);
    expect(await redis.hget(purchase, "f")).toBe(legacy);
  });

  it("link-purchase and record-refund: link purchases in the order's bucket and record each refund once", async () => {
    const order = keys.order("ord-1");
    const links = keys.orderLinks(7);
    // No address to file, and no erasure.
    const linkOrder = (eventId: string, keepMs: number, link: string, entry: string, now: number) =>
      redis.fuLinkPurchase(
        3,
        order,
        links,
        keys.erasedCustomerGlobal("none"),
        eventId,
        keepMs,
        link,
        entry,
        now,
        "cus",
        DAY,
        0,
        "[]",
      );
    // Another order's link in the same bucket is not this order's.
    await redis.hset(links, "zzzzzzzzzzzevt-other", `s1:${NOW + 2 * DAY}`);
    expect(
      await redis.fuRecordRefund(order, links, "ref-1", "500 GBP", DAY, "ABCDEFGHIJK", NOW),
    ).toEqual(["r:ref-1", "500 GBP"]);
    expect(
      await redis.fuRecordRefund(order, links, "ref-1", "900 GBP", DAY, "ABCDEFGHIJK", NOW),
    ).toEqual(["r:ref-1", "500 GBP"]);
    expect(await linkOrder("evt", 3 * DAY, "s2", "ABCDEFGHIJK", NOW)).toEqual([
      ["r:ref-1", "500 GBP", "e:evt", `s2:${NOW + 3 * DAY}`],
      [],
    ]);
    expect(await redis.pttl(links)).toBeGreaterThan(2 * DAY);
    // A shorter keep never shortens the bucket.
    await linkOrder("evt-2", 1_000, "s0", "ABCDEFGHIJK", NOW);
    expect(await redis.pttl(links)).toBeGreaterThan(2 * DAY);
    expect(
      (await redis.fuRecordRefund(order, links, "ref-2", "full", DAY, "ABCDEFGHIJK", NOW)).slice(4),
    ).toEqual(["e:evt", `s2:${NOW + 3 * DAY}`, "e:evt-2", `s0:${NOW + 1_000}`]);
    // Past its expiry, a link is left out before any sweep has removed it.
    expect(
      (
        await redis.fuRecordRefund(order, links, "ref-2", "full", DAY, "ABCDEFGHIJK", NOW + 2_000)
      ).slice(4),
    ).toEqual(["e:evt", `s2:${NOW + 3 * DAY}`]);
    expect(await redis.hexists(links, "ABCDEFGHIJKevt-2")).toBe(1);
    // Linked again with a shorter keep (a retried intake), a link keeps its later expiry.
    await linkOrder("evt", 1_000, "s2", "ABCDEFGHIJK", NOW);
    expect(await redis.hget(links, "ABCDEFGHIJKevt")).toBe(`s2:${NOW + 3 * DAY}`);
    // A day later, the next link sweeps each expired link out of the bucket, and only those.
    await linkOrder("evt-3", 3 * DAY, "s1", "ABCDEFGHIJK", NOW + DAY);
    expect(Object.keys(await redis.hgetall(links)).sort()).toEqual([
      "ABCDEFGHIJKevt",
      "ABCDEFGHIJKevt-3",
      "zzzzzzzzzzzevt-other",
      "~",
    ]);
  });

  it("keep-order-link: keeps an order link longer (never shorter), and brings back none that is gone", async () => {
    const links = keys.orderLinks(9);
    await redis.hset(links, "ABCDEFGHIJKevt", `s3:${NOW + DAY}`, "ABCDEFGHIJKold", `s3:${NOW - 1}`);
    await redis.pexpire(links, DAY);
    // Expired, or never there (an erasure forgot it): not written.
    expect(await redis.fuKeepOrderLink(links, "ABCDEFGHIJKold", NOW + 30 * DAY, NOW)).toBe(0);
    expect(await redis.hget(links, "ABCDEFGHIJKold")).toBe(`s3:${NOW - 1}`);
    expect(await redis.fuKeepOrderLink(links, "ABCDEFGHIJKgone", NOW + 30 * DAY, NOW)).toBe(0);
    expect(await redis.hexists(links, "ABCDEFGHIJKgone")).toBe(0);
    expect(await redis.fuKeepOrderLink(links, "ABCDEFGHIJKevt", NOW + 30 * DAY, NOW)).toBe(1);
    // Its shard stays; the bucket lasts as long as the link (and was swept, as any write does).
    expect(await redis.hget(links, "ABCDEFGHIJKevt")).toBe(`s3:${NOW + 30 * DAY}`);
    expect(await redis.hexists(links, "ABCDEFGHIJKold")).toBe(0);
    expect(await redis.pttl(links)).toBeGreaterThan(29 * DAY);
    expect(await redis.fuKeepOrderLink(links, "ABCDEFGHIJKevt", NOW + 2 * DAY, NOW)).toBe(1);
    expect(await redis.hget(links, "ABCDEFGHIJKevt")).toBe(`s3:${NOW + 30 * DAY}`);
  });

  it("link-purchase: files the customer's addresses and the order link in one call, neither for an erased customer", async () => {
    const order = keys.order("ord-1");
    const links = keys.orderLinks(7);
    const marker = keys.erasedCustomerGlobal("customer-hash");
    const email = keys.addressBucket(11);
    const phone = keys.addressBucket(12);
    const link = async (eventId: string, purchasedAt: number, now = NOW) => {
      const answer = await linkAsking(eventId, purchasedAt, now);
      return answer === -1 ? answer : answer[0];
    };
    // The customer's opt-outs asked in the same call, once the link and the filing are written.
    const emailOptOuts = keys.suppressions("email");
    const smsOffers = keys.marketingSuppressions("sms");
    const linkAsking = (
      eventId: string,
      purchasedAt: number,
      now = NOW,
      lists: string[] = [],
      members: string[][] = [],
    ) =>
      redis.fuLinkPurchase(
        5 + lists.length,
        order,
        links,
        marker,
        email,
        phone,
        ...lists,
        eventId,
        3 * DAY,
        "s2",
        "ABCDEFGHIJK",
        now,
        "cus-1",
        400 * DAY,
        purchasedAt,
        JSON.stringify(members),
        "EEEEEEEEEEE",
        "PPPPPPPPPPP",
      );
    await redis.fuRecordRefund(order, links, "ref-1", "500 GBP", DAY, "ABCDEFGHIJK", NOW);
    // Entries keep the purchase time in seconds.
    const purchased = Math.floor(NOW / 1000) - 60;
    const at = (seconds: number, ms = 0) => seconds * 1000 + ms;
    expect(await link("evt", at(purchased, 250))).toEqual([
      "r:ref-1",
      "500 GBP",
      "e:evt",
      `s2:${NOW + 3 * DAY}`,
    ]);
    expect(await redis.hget(email, "EEEEEEEEEEEcus-1")).toBe(`${purchased}:${NOW + 400 * DAY}`);
    expect(await redis.hget(phone, "PPPPPPPPPPPcus-1")).toBe(`${purchased}:${NOW + 400 * DAY}`);
    // An earlier purchase taken in later keeps the latest purchase time; its expiry moves on.
    await link("evt-0", at(purchased - 3600), NOW + 1000);
    expect(await redis.hget(email, "EEEEEEEEEEEcus-1")).toBe(
      `${purchased}:${NOW + 1000 + 400 * DAY}`,
    );
    // Erased after a purchase: that purchase files nothing; a later one files as before.
    await redis.set(marker, String(at(purchased + 10, 400)));
    await redis.del(email, phone);
    expect(await link("evt-2", at(purchased + 10, 400))).toBe(-1);
    expect(await redis.exists(email, phone)).toBe(0);
    expect(await redis.hexists(links, "ABCDEFGHIJKevt-2")).toBe(0);
    // Compared in ms, as schedule-steps.lua does: later in the same second is after the erasure.
    expect(await link("evt-3", at(purchased + 10, 900))).toContain("e:evt-3");
    expect(await link("evt-4", at(purchased + 20))).toContain("e:evt-4");
    expect(await redis.hget(email, "EEEEEEEEEEEcus-1")).toBe(
      `${purchased + 20}:${NOW + 400 * DAY}`,
    );
    // Asked of suppression lists: per list, whether it holds one of its members; the addresses
    // are filed as without them (the lists are not taken for address buckets).
    await redis.sadd(emailOptOuts, "h:other", "k:customer");
    await redis.sadd(smsOffers, "k:someone-else");
    await redis.del(email, phone);
    expect(
      await linkAsking(
        "evt-5",
        at(purchased + 30),
        NOW,
        [emailOptOuts, smsOffers, keys.suppressions("sms")],
        [["k:customer"], ["k:customer"], []],
      ),
    ).toEqual([expect.arrayContaining(["e:evt-5"]), [1, 0, 0]]);
    expect(await redis.hget(email, "EEEEEEEEEEEcus-1")).toBe(
      `${purchased + 30}:${NOW + 400 * DAY}`,
    );
    expect(await redis.hget(phone, "PPPPPPPPPPPcus-1")).toBe(
      `${purchased + 30}:${NOW + 400 * DAY}`,
    );
    // Erased after the purchase: nothing asked either.
    expect(await linkAsking("evt-6", at(purchased), NOW, [emailOptOuts], [["k:customer"]])).toBe(
      -1,
    );
  });

  it("read-order: the order's refunds and unexpired links only, with the suppression lists asked in the same call", async () => {
    const order = keys.order("ord-1");
    const links = keys.orderLinks(7);
    await redis.hset(order, "r:ref-1", "500 GBP");
    await redis.hset(links, {
      ABCDEFGHIJKevt: `s2:${NOW + DAY}`,
      "ABCDEFGHIJKevt-old": `s0:${NOW - 1}`,
      "zzzzzzzzzzzevt-other": `s1:${NOW + DAY}`,
    });
    const email = keys.suppressions("email");
    const smsOffers = keys.marketingSuppressions("sms");
    await redis.sadd(email, "h:other", "k:customer");
    await redis.sadd(smsOffers, "h:phone");
    const answer = ["r:ref-1", "500 GBP", "e:evt", `s2:${NOW + DAY}`];
    expect(await redis.fuReadOrder(2, order, links, "ABCDEFGHIJK", NOW)).toEqual([answer, []]);
    expect(
      await redis.fuReadOrder(
        5,
        order,
        links,
        email,
        smsOffers,
        keys.suppressions("sms"),
        "ABCDEFGHIJK",
        NOW,
        JSON.stringify([["k:customer", "h:mail"], ["k:customer", "h:phone"], []]),
      ),
    ).toEqual([answer, [1, 1, 0]]);
    // A list asked for members it does not hold; an order never seen: nothing.
    expect(
      await redis.fuReadOrder(
        3,
        keys.order("ord-2"),
        keys.orderLinks(8),
        smsOffers,
        "BBBBBBBBBBB",
        NOW,
        JSON.stringify([["k:customer"]]),
      ),
    ).toEqual([[], [0]]);
  });

  it("take-cap-slot: reserves under every cap, counts a retry from when it goes, and says when the cap frees", async () => {
    const key = keys.capWindow("email", "cus-1");
    expect(await redis.fuTakeCapSlot(key, "f1", NOW, 1, DAY)).toBe(0);
    // A retry an hour later keeps its slot, which now counts from the retry.
    expect(await redis.fuTakeCapSlot(key, "f1", NOW + 3_600_000, 1, DAY)).toBe(0);
    expect(await redis.zscore(key, "f1")).toBe(String(NOW + 3_600_000));
    expect(await redis.fuTakeCapSlot(key, "f2", NOW + 3_600_000, 1, DAY)).toBe(
      NOW + 3_600_000 + DAY,
    );
    expect(await redis.zrange(key, "0", "-1")).toEqual(["f1"]);
    // A day after f1's first attempt, but not after it went: still held back.
    expect(await redis.fuTakeCapSlot(key, "f2", NOW + DAY, 1, DAY)).toBe(NOW + 3_600_000 + DAY);
    expect(await redis.fuTakeCapSlot(key, "f2", NOW + 3_600_000 + DAY, 1, DAY)).toBe(0);
    // A follow-up holding a slot is checked against the others' sends when it goes again.
    const other = keys.capWindow("sms", "cus-1");
    await redis.zadd(other, NOW, "held", NOW + 1_000, "sent-meanwhile");
    expect(await redis.fuTakeCapSlot(other, "held", NOW + 2_000, 1, DAY)).toBe(NOW + 1_000 + DAY);
    expect(await redis.zscore(other, "held")).toBe(String(NOW));
    expect(await redis.fuTakeCapSlot(other, "held", NOW + 2_000, 2, DAY)).toBe(0);
  });

  it("take-rate-slot: spaces slots by the interval and refuses one beyond the longest wait", async () => {
    const key = keys.rateSlot("email");
    const nowUs = NOW * 1000;
    expect(await redis.fuTakeRateSlot(key, nowUs, 20_000, 50_000, 1_000_000)).toEqual([1, 0]);
    expect(await redis.fuTakeRateSlot(key, nowUs, 20_000, 50_000, 1_000_000)).toEqual([1, 20_000]);
    expect(await redis.fuTakeRateSlot(key, nowUs, 20_000, 50_000, 1_000_000)).toEqual([1, 40_000]);
    expect(await redis.fuTakeRateSlot(key, nowUs, 20_000, 50_000, 1_000_000)).toEqual([0, 10_000]);
    expect(await redis.get(key)).toBe(String(nowUs + 60_000));
  });

  it("swap-call and adoptable-call: a record naming its call binds it to the follow-up, and a call bound to another is never adoptable", async () => {
    const call = keys.callScript("f-mine");
    const asRead = JSON.stringify({ script: {} });
    await redis.set(call, asRead, "PX", DAY);
    const named = JSON.stringify({ script: {}, callSid: "CA1" });
    // Written with the binding of the call it names.
    expect(
      await redis.fuSwapCall(2, call, keys.callBinding("CA1"), asRead, named, 0, "f-mine", DAY),
    ).toBe(1);
    expect(await redis.get(keys.callBinding("CA1"))).toBe("f-mine");
    expect(await redis.pttl(keys.callBinding("CA1"))).toBeGreaterThan(DAY - 60_000);
    // A record changed since it was read binds nothing.
    expect(
      await redis.fuSwapCall(2, call, keys.callBinding("CA2"), asRead, named, 0, "f-mine", DAY),
    ).toBe(0);
    expect(await redis.exists(keys.callBinding("CA2"))).toBe(0);
    // Without a binding, as before: the record alone.
    expect(await redis.fuSwapCall(1, call, named, JSON.stringify({ script: {} }), 0)).toBe(1);
    await redis.set(keys.callBinding("CA0"), "f-theirs");

    const adoptable = (followUpId: string, ...sids: string[]) =>
      redis.fuAdoptableCall(
        sids.length,
        ...sids.map((sid) => keys.callBinding(sid)),
        followUpId,
        DAY,
      );
    // Earliest first: another follow-up's call is passed over, an unknown one or its own taken.
    expect(await adoptable("f-mine", "CA0", "CA3")).toBe(2);
    // An unknown call taken is bound to the taker at once, for as long as it was told.
    expect(await redis.get(keys.callBinding("CA3"))).toBe("f-mine");
    expect(await redis.pttl(keys.callBinding("CA3"))).toBeGreaterThan(DAY - 60_000);
    expect(await adoptable("f-theirs", "CA3")).toBe(0);
    expect(await adoptable("f-mine", "CA0", "CA1", "CA3")).toBe(2);
    expect(await adoptable("f-mine", "CA0")).toBe(0);
    expect(await adoptable("f-theirs", "CA1", "CA0")).toBe(2);

    // Several calls named anew in one write: each bound.
    const read = (await redis.get(call)) as string;
    const both = JSON.stringify({ script: {}, callSid: "CA4", outcomes: { CA5: "unheard" } });
    expect(
      await redis.fuSwapCall(
        3,
        call,
        keys.callBinding("CA4"),
        keys.callBinding("CA5"),
        read,
        both,
        0,
        "f-mine",
        DAY,
      ),
    ).toBe(1);
    expect(await redis.mget(keys.callBinding("CA4"), keys.callBinding("CA5"))).toEqual([
      "f-mine",
      "f-mine",
    ]);
  });

  it("a call's record binds a step's second call once its outcome is kept, so another follow-up's retry never takes it", async () => {
    const calls = new CallScripts(redis, prefix);
    await redis.set(
      keys.callScript("f-two"),
      JSON.stringify({ script: { shard: 0 }, callSid: "CA-own" }),
      "PX",
      DAY,
    );
    await calls.change("f-two", async (call) => ({
      call: withCallOutcome(call, "CA-second", "answered"),
    }));
    expect(await redis.get(keys.callBinding("CA-second"))).toBe("f-two");
    expect(await calls.adoptable("f-other", ["CA-second"])).toBeUndefined();
    expect(await calls.adoptable("f-two", ["CA-second"])).toBe("CA-second");
  });

  it("two retries asking at once about the same number's calls never take the same call", async () => {
    const calls = new CallScripts(redis, prefix);
    const listed = ["CA-first", "CA-later"];
    const taken = await Promise.all([
      calls.adoptable("f-ana-tv", listed),
      calls.adoptable("f-ana-sofa", listed),
    ]);
    // One takes the earliest call, the other the next one: each is bound to its taker.
    expect(new Set(taken)).toEqual(new Set(listed));
    expect(await redis.mget(...listed.map((sid) => keys.callBinding(sid)))).toEqual(
      taken[0] === "CA-first" ? ["f-ana-tv", "f-ana-sofa"] : ["f-ana-sofa", "f-ana-tv"],
    );
    // Asked again, each gets its own, and a third finds none left.
    expect(await calls.adoptable("f-ana-tv", listed)).toBe(taken[0]);
    expect(await calls.adoptable("f-ana-sofa", listed)).toBe(taken[1]);
    expect(await calls.adoptable("f-ana-car", listed)).toBeUndefined();
  });
});

describe("add-spend and return-spend", () => {
  const month = () => new StoreKeys(prefix).spendMonth("sms", "2026-12");
  const charges = () => new StoreKeys(prefix).spendCharges("sms", "2026-12");
  const alerts = () => new StoreKeys(prefix).spendAlerts("sms", "2026-12");
  const november = () => new StoreKeys(prefix).spendCharges("sms", "2026-11");
  const add = (id: string, cost: number, enforce: 0 | 1, budget = 100_000) =>
    redis.fuAddSpend(
      month(),
      charges(),
      alerts(),
      november(),
      id,
      cost,
      budget,
      enforce,
      60_000,
      80,
      100,
    );

  it("charges each message once while the budget is not reached, refuses one that must respect a reached one, and alerts at each threshold once", async () => {
    expect(await add("f1", 40_000, 1)).toEqual([1, 0, 40_000]);
    // A retried send of the same message: charged already, not again.
    expect(await add("f1", 40_000, 1)).toEqual([1, 40_000, 40_000]);
    expect(await add("f2", 40_000, 1)).toEqual([1, 40_000, 80_000, 80]);
    // Under the budget before it: it goes, and takes the spend past it.
    expect(await add("f3", 40_000, 1)).toEqual([1, 80_000, 120_000, 100]);
    expect(await add("f4", 40_000, 1)).toEqual([0, 120_000, 120_000]);
    // A transactional message that continues, or a call that already happened, is charged.
    expect(await add("call:CA1", 40_000, 0)).toEqual([1, 120_000, 160_000]);
    expect(await redis.pttl(month())).toBeGreaterThan(50_000);

    // Given back twice: taken back once. Crossing 100 % again does not alert again.
    expect(await redis.fuReturnSpend(month(), charges(), "f3")).toBe(40_000);
    expect(await redis.fuReturnSpend(month(), charges(), "f3")).toBe(0);
    expect(await add("f5", 40_000, 0)).toEqual([1, 120_000, 160_000]);
    expect(await redis.get(month())).toBe("160000");
    // A retry of a message charged in November, just before the month turned: not again.
    await redis.hset(november(), "f-november", "40000");
    expect(await add("f-november", 40_000, 0)).toEqual([2, 160_000, 160_000]);
    expect(await redis.get(month())).toBe("160000");
  });

  it("treats a budget of 0 as reached and -1 as none", async () => {
    expect(await add("z1", 40_000, 1, 0)).toEqual([0, 0, 0]);
    expect(await add("z2", 40_000, 1, -1)).toEqual([1, 0, 40_000]);
  });

  it("charges one retried SMS once when its retry falls in the next month, and gives it back there", async () => {
    const shipped = await shippedRules();
    const rules = {
      ...shipped,
      spend: {
        ...shipped.spend,
        budgets: { sms: { monthlyMicros: 200_000_000, transactional: "continue" as const } },
      },
    };
    const ledger = new SpendLedger(redis, prefix);
    const deps = { spend: ledger, onBudgetAlert: async () => {} };
    const sms = { channel: "sms" as const, id: "f-month-edge", micros: 40_000 };
    // 19:59 on 31 January (London): handed over, but the connection broke (uncertain): retried
    // at 09:00 on 1 February, after the send window.
    const first = await chargeSpend(
      deps,
      rules,
      sms,
      "marketing",
      Date.parse("2027-01-31T19:59:00Z"),
    );
    expect(first).toMatchObject({ charged: true, month: "2027-01" });
    const retry = await chargeSpend(
      deps,
      rules,
      sms,
      "marketing",
      Date.parse("2027-02-01T09:00:00Z"),
    );
    expect(retry).toMatchObject({ charged: true, month: "2027-01" });
    expect([await ledger.spent("sms", "2027-01"), await ledger.spent("sms", "2027-02")]).toEqual([
      40_000, 0,
    ]);
    expect(monthBefore("2027-01")).toBe("2026-12");
  });
});

describe("fold-counts (followups reshard)", () => {
  it("adds a shard's counts into another's at once, keeps the later expiry, and deletes them", async () => {
    // Expiries from the real clock: Redis drops a key whose expiry has passed.
    const now = Date.now();
    const from = keys.ofShard(0).pendingDay(20_000).replace(":due:", ":fold:due:");
    const to = keys.pendingDay(20_000);
    await redis.hset(from, EMAIL_PENDING, 3, SMS_PENDING, -1);
    await redis.pexpireat(from, now + 9 * DAY);
    await redis.hset(to, EMAIL_PENDING, 2);
    await redis.pexpireat(to, now + 2 * DAY);
    expect(await redis.fuFoldCounts(from, to)).toBe(2);
    expect(await redis.hgetall(to)).toEqual({ [EMAIL_PENDING]: "5", [SMS_PENDING]: "-1" });
    expect(await redis.pexpiretime(to)).toBe(now + 9 * DAY);
    expect(await redis.exists(from)).toBe(0);
    // Run again (a crash after the script): nothing is added twice.
    expect(await redis.fuFoldCounts(from, to)).toBe(0);
    expect(await redis.hget(to, EMAIL_PENDING)).toBe("5");
    // Into counts that did not exist: they take the expiry; an earlier expiry never shortens one.
    const fresh = keys.pendingDay(20_001);
    await redis.hset(from, EMAIL_PENDING, 1);
    await redis.pexpireat(from, now + 3 * DAY);
    await redis.fuFoldCounts(from, fresh);
    expect(await redis.pexpiretime(fresh)).toBe(now + 3 * DAY);
    await redis.hset(from, EMAIL_PENDING, 1);
    await redis.pexpireat(from, now + DAY);
    await redis.fuFoldCounts(from, to);
    expect(await redis.pexpiretime(to)).toBe(now + 9 * DAY);
  });

  it("claim-alerts and finish-alerts: one holder at a time, and exactly the ids it sent leave", async () => {
    const pending = keys.ownerAlerts("owner-1");
    const lease = keys.ownerAlertLease("owner-1");
    await redis.rpush(pending, "a", "b");
    expect(await redis.fuClaimAlerts(pending, lease, "t1", 60_000)).toEqual([1, ["a", "b"]]);
    const [held, ms] = await redis.fuClaimAlerts(pending, lease, "t2", 60_000);
    expect(held).toBe(0);
    expect(ms).toBeGreaterThan(59_000);
    // Filed while t1 sends: stays for the next email.
    await redis.rpush(pending, "c");
    expect(await redis.fuFinishAlerts(pending, lease, "t2")).toBe(0);
    expect(await redis.get(lease)).toBe("t1");
    expect(await redis.fuFinishAlerts(pending, lease, "t1", "a", "b")).toBe(1);
    expect(await redis.lrange(pending, 0, -1)).toEqual(["c"]);
    expect(await redis.exists(lease)).toBe(0);
    // A lease lost to its expiry: the ids sent still leave, the new holder's lease stays.
    expect(await redis.fuClaimAlerts(pending, lease, "t3", 60_000)).toEqual([1, ["c"]]);
    expect(await redis.fuFinishAlerts(pending, lease, "t1", "c")).toBe(0);
    expect(await redis.lrange(pending, 0, -1)).toEqual([]);
    expect(await redis.get(lease)).toBe("t3");
  });
});
