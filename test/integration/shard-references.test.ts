import { Redis } from "ioredis";
import { DateTime } from "luxon";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { normalizeCode } from "../../src/domain/discount-code.js";
import type { CallScript } from "../../src/domain/voice-call.js";
import { createLogger } from "../../src/logger.js";
import { FollowUpMetrics } from "../../src/metrics.js";
import { createCustomerFeedback } from "../../src/queue/customer-feedback.js";
import { createRefunds } from "../../src/queue/refunds.js";
import { createVoiceCalls } from "../../src/queue/voice-calls.js";
import { collectReport, reportSourcesOn } from "../../src/reports/owner-reports.js";
import { CallScripts } from "../../src/store/call-scripts.js";
import { DiscountCodes } from "../../src/store/discount-codes.js";
import { idHash, packedPlace, StoreKeys, shardScope } from "../../src/store/keys.js";
import { OrderStore } from "../../src/store/order-store.js";
import type { RedisClient } from "../../src/store/redis-client.js";
import { Shards, shardStores } from "../../src/store/shards.js";
import { SmsReferences } from "../../src/store/sms-references.js";
import { parseReplyId, replyId, type StepReply } from "../../src/store/step-replies.js";
import { SuppressionList } from "../../src/store/suppression-list.js";
import { WebhookReceipts } from "../../src/store/webhook-receipts.js";
import { shippedRules } from "../support/fixtures.js";
import { noAddresses } from "../support/order-links.js";
import { deleteKeysWithPrefix, uniquePrefix } from "../support/redis-namespace.js";

/**
 * References kept in global keys (message references, order links, discount codes, call scripts,
 * reply ids) name the shard of the event they refer to, and what reads them works in that shard.
 * References written before shards name none and mean shard 0.
 */

const DAY = 86_400_000;
const PHONE = "+447400123456";
const CHECK_IN = "big-ticket.check-in";

let redis: RedisClient;
let prefix: string;
let keys: StoreKeys;

beforeAll(() => {
  redis = new Redis(inject("redisUrl"), { maxRetriesPerRequest: 1 });
});
afterAll(async () => {
  await redis.quit();
});
beforeEach(() => {
  prefix = uniquePrefix("shard-refs");
  keys = new StoreKeys(prefix);
});
afterEach(async () => {
  await deleteKeysWithPrefix(redis, prefix);
});

/** A step record as the stores keep it, written straight into a shard's event record. */
async function seedStep(
  shard: number,
  eventId: string,
  state: string,
  providerId?: string,
): Promise<void> {
  const record = new StoreKeys(shardScope(prefix, shard, 3)).eventRecord(eventId);
  const now = Date.now();
  await redis.hset(
    record,
    `s:${CHECK_IN}`,
    JSON.stringify({
      s: state,
      t: now,
      d: now + DAY,
      c: "sms",
      k: "check-in",
      ...(providerId !== undefined && { id: providerId }),
    }),
  );
  await redis.pexpire(record, DAY);
}

describe("message references", () => {
  it("name shard 3 when written for it, and are as before for shard 0", async () => {
    const refs = new SmsReferences(redis, prefix);
    await refs.rememberSms(
      "SM3",
      "h:three",
      { eventId: "evt-3", stepId: CHECK_IN, shard: 3, kind: "check-in" },
      DAY,
    );
    await refs.rememberEmail("<m3@shop>", { eventId: "evt-3", stepId: "r.thanks", shard: 3 }, DAY);
    await refs.recordReply({ eventId: "evt-3", stepId: CHECK_IN, shard: 3, n: 2 }, 1_000, DAY);

    expect(await refs.stepOfSms("SM3")).toEqual({
      eventId: "evt-3",
      stepId: CHECK_IN,
      shard: 3,
      recipient: "h:three",
    });
    expect(await refs.latestCheckIn("h:three")).toEqual({
      eventId: "evt-3",
      stepId: CHECK_IN,
      shard: 3,
    });
    expect(await refs.stepOfEmail("m3@shop")).toEqual({
      eventId: "evt-3",
      stepId: "r.thanks",
      shard: 3,
    });
    expect(await refs.repliesBetween(0, 2_000)).toEqual([
      { eventId: "evt-3", stepId: CHECK_IN, shard: 3, n: 2 },
    ]);
    // The shard is an extra last line; the lines before it are as they were.
    expect(await redis.get(keys.smsMessage("SM3"))).toBe(`evt-3\n${CHECK_IN}\nh:three\n@3`);
    expect(await redis.get(keys.latestCheckIn("h:three"))).toBe(`evt-3\n${CHECK_IN}\n@3`);
    expect(await redis.zrange(keys.replies(), "0", "-1")).toEqual([`evt-3\n${CHECK_IN}\n2\n@3`]);

    // Shard 0's are written byte for byte as before shards.
    await refs.rememberSms(
      "SM0",
      "h:zero",
      { eventId: "evt-0", stepId: CHECK_IN, shard: 0, kind: "check-in" },
      DAY,
    );
    await refs.recordReply({ eventId: "evt-0", stepId: CHECK_IN, shard: 0, n: 1 }, 1_500, DAY);
    expect(await redis.get(keys.smsMessage("SM0"))).toBe(`evt-0\n${CHECK_IN}\nh:zero`);
    expect(await redis.get(keys.latestCheckIn("h:zero"))).toBe(`evt-0\n${CHECK_IN}`);
    expect(await refs.stepOfSms("SM0")).toEqual({
      eventId: "evt-0",
      stepId: CHECK_IN,
      shard: 0,
      recipient: "h:zero",
    });
    expect(await refs.repliesBetween(1_200, 2_000)).toEqual([
      { eventId: "evt-0", stepId: CHECK_IN, shard: 0, n: 1 },
    ]);
  });

  it("written before shards read as shard 0", async () => {
    const refs = new SmsReferences(redis, prefix);
    await redis.set(keys.smsMessage("SMold"), `evt-old\n${CHECK_IN}\nh:old`);
    await redis.set(keys.smsMessage("SMolder"), `evt-older\n${CHECK_IN}`);
    // By an unkeyed hash of the number, as versions before 4 December 2026 named it.
    await redis.set(keys.legacyLatestCheckIn(PHONE), `evt-old\n${CHECK_IN}`);
    await redis.set(keys.emailMessage("<old@shop>"), "evt-old\nr.thanks");
    await redis.zadd(keys.replies(), 100, `evt-old\n${CHECK_IN}\n3`, 200, `evt-older\n${CHECK_IN}`);

    expect(await refs.stepOfSms("SMold")).toEqual({
      eventId: "evt-old",
      stepId: CHECK_IN,
      shard: 0,
      recipient: "h:old",
    });
    expect(await refs.stepOfSms("SMolder")).toEqual({
      eventId: "evt-older",
      stepId: CHECK_IN,
      shard: 0,
    });
    expect(await refs.latestCheckIn("h:old", PHONE)).toEqual({
      eventId: "evt-old",
      stepId: CHECK_IN,
      shard: 0,
    });
    expect(await refs.stepOfEmail("<old@shop>")).toEqual({
      eventId: "evt-old",
      stepId: "r.thanks",
      shard: 0,
    });
    expect(await refs.repliesBetween(0, 1_000)).toEqual([
      { eventId: "evt-old", stepId: CHECK_IN, shard: 0, n: 3 },
      { eventId: "evt-older", stepId: CHECK_IN, shard: 0, n: 1 },
    ]);
  });
});

describe("order links", () => {
  it("keep each purchase's shard; links from before shards ('1') are shard 0", async () => {
    const orders = new OrderStore(redis, prefix);
    // Linked by a worker before shards: the value was '1', which is not shard 1.
    await redis.hset(keys.order("ord-1"), "e:evt-old", "1");
    const linked = await orders.linkPurchase(
      "ord-1",
      "evt-new",
      3,
      DAY,
      Date.now(),
      noAddresses(prefix),
    );
    // Linked now in the order's bucket of links, dated.
    const { bucket, entry } = packedPlace(idHash("ord-1"));
    expect(await redis.hget(keys.orderLinks(bucket), `${entry}evt-new`)).toMatch(/^s3:\d{13}$/);
    expect([...(linked?.events ?? [])].sort((a, b) => a.eventId.localeCompare(b.eventId))).toEqual([
      { eventId: "evt-new", shard: 3 },
      { eventId: "evt-old", shard: 0 },
    ]);
    await orders.linkPurchase("ord-1", "evt-zero", 0, DAY, Date.now(), noAddresses(prefix));
    const refunded = await orders.addRefund("ord-1", "ref-1", {}, DAY);
    expect(refunded.fullyRefunded).toBe(true);
    expect(new Map(refunded.events.map((e) => [e.eventId, e.shard]))).toEqual(
      new Map([
        ["evt-old", 0],
        ["evt-new", 3],
        ["evt-zero", 0],
      ]),
    );
    expect([...(await orders.get("ord-1")).eventIds].sort()).toEqual([
      "evt-new",
      "evt-old",
      "evt-zero",
    ]);
  });
});

describe("discount code origins and call scripts", () => {
  it("name their step's shard; those stored before shards are shard 0", async () => {
    const codes = new DiscountCodes(redis, prefix);
    const expiresAt = Date.now() + DAY;
    await codes.issue(
      { code: "KIT-AAAA-BBBB-CCCC", percent: 10, validUntil: "2099-01-01" },
      expiresAt,
      { eventId: "evt-3", stepId: "r.discount", shard: 3, customer: "k:c3" },
      Date.now(),
      DAY,
    );
    expect(await codes.origin("kit-aaaa-bbbb-cccc")).toEqual({
      eventId: "evt-3",
      stepId: "r.discount",
      shard: 3,
      customer: "k:c3",
    });
    await redis.hset(keys.discountCode(normalizeCode("KIT-OLD0-0000-0001")), {
      c: "KIT-OLD0-0000-0001",
      p: 10,
      v: "2099-01-01",
      x: expiresAt,
      e: "evt-old",
      s: "r.discount",
      k: "k:old",
      i: 1,
    });
    expect(await codes.origin("KIT-OLD0-0000-0001")).toMatchObject({
      eventId: "evt-old",
      shard: 0,
    });

    const calls = new CallScripts(redis, prefix);
    const script: CallScript = {
      eventId: "evt-3",
      stepId: CHECK_IN,
      shard: 3,
      recipient: "h:three",
      language: "en",
      sayLanguage: "en-GB",
      text: "Hello",
      answeringMachine: "hangup",
      speech: false,
    };
    await calls.prepare("f3", script, Date.now());
    expect((await calls.get("f3"))?.script).toEqual(script);
    const { shard: _, ...before } = script;
    await redis.set(keys.callScript("f-old"), JSON.stringify({ script: before, callSid: "CA1" }));
    expect(await calls.get("f-old")).toEqual({ script: { ...before, shard: 0 }, callSid: "CA1" });
  });
});

describe("reply ids", () => {
  it("name the shard after `@` outside shard 0, and read ids without one as shard 0", () => {
    expect(replyId({ eventId: "evt-1", stepId: CHECK_IN, n: 2, shard: 0 })).toBe(
      `evt-1/${CHECK_IN}/2`,
    );
    expect(replyId({ eventId: "evt/1", stepId: CHECK_IN, n: 2, shard: 7 })).toBe(
      `evt/1/${CHECK_IN}/2@7`,
    );
    expect(parseReplyId(`evt/1/${CHECK_IN}/2@7`)).toEqual({
      eventId: "evt/1",
      stepId: CHECK_IN,
      n: 2,
      shard: 7,
    });
    expect(parseReplyId(`evt-1/${CHECK_IN}/2`)).toEqual({
      eventId: "evt-1",
      stepId: CHECK_IN,
      n: 2,
      shard: 0,
    });
    expect(parseReplyId(`evt-1/${CHECK_IN}/2@`)).toBeUndefined();
    expect(parseReplyId("not-a-reply")).toBeUndefined();
  });
});

describe("webhooks, refunds and reports", () => {
  const logger = createLogger({ level: "silent", pretty: false });

  it("find an event's records in the shard its reference names", async () => {
    const rules = await shippedRules();
    const shards = shardStores(redis, prefix, 3);
    const smsReferences = new SmsReferences(redis, prefix);
    const counted: string[] = [];
    const ledger = {
      countOnce: async (receipt: string) => {
        counted.push(receipt);
        return true;
      },
      recountOnce: async (receipt: string) => {
        counted.push(receipt);
        return true;
      },
      countFirstOutcome: async (receipt: string) => {
        counted.push(receipt);
        return "counted" as const;
      },
    };
    const replies: StepReply[] = [];
    const suppressions = new SuppressionList(redis, prefix, { addressHashSecret: "secret" });
    const feedback = createCustomerFeedback({
      rules: () => rules,
      templates: () => {
        throw new Error("no confirmation texts in this test");
      },
      sms: { send: async () => ({ ok: true, id: "SMx" }) },
      shards,
      onReply: async (reply) => {
        replies.push(reply);
      },
      ledger,
      smsReferences,
      suppressions,
      receipts: new WebhookReceipts(redis, prefix),
      logger,
      now: () => Date.now(),
    });

    // A check-in sent for a purchase in shard 2: its delivery report lands on its step there.
    await seedStep(2, "evt-2", "sent", "SM2");
    await smsReferences.rememberSms(
      "SM2",
      await suppressions.addressMember(PHONE),
      { eventId: "evt-2", stepId: CHECK_IN, shard: 2, kind: "check-in" },
      DAY,
    );
    expect(await feedback.smsStatus({ messageSid: "SM2", status: "delivered" })).toBe("recorded");
    const delivered = (await shards.of(2).store.stepRecords("evt-2", [CHECK_IN])).get(CHECK_IN);
    expect(delivered?.delivery).toEqual({ status: "delivered" });
    expect(counted).toEqual(["st:SM2:delivered"]);

    // A reply is filed on the step in shard 2, with an id naming the shard.
    const body = "The screen cracked, 2/10";
    expect(await feedback.inboundSms({ from: PHONE, body, messageSid: "SMin" })).toBe(
      "reply-recorded",
    );
    expect(replies).toMatchObject([
      { id: `evt-2/${CHECK_IN}/1@2`, eventId: "evt-2", shard: 2, n: 1, text: body },
    ]);
    expect(await shards.of(2).replies.get("evt-2", CHECK_IN, 1)).toMatchObject({
      id: `evt-2/${CHECK_IN}/1@2`,
      shard: 2,
      text: body,
    });
    expect(await shards.of(0).replies.get("evt-2", CHECK_IN, 1)).toBeUndefined();

    // The owners' report reads the reply from its shard.
    const today = DateTime.utc().startOf("day");
    const model = await collectReport(reportSourcesOn(redis, prefix, 3), rules, "Owner", {
      since: today.toISO() ?? "",
      until: today.plus({ days: 1 }).toISO() ?? "",
      timezone: "UTC",
    });
    expect(model.unhappyReplies).toMatchObject([{ id: `evt-2/${CHECK_IN}/1@2`, text: body }]);

    // A call in shard 1 records its end on its step there.
    await seedStep(1, "evt-1", "sent");
    const calls = new CallScripts(redis, prefix);
    await calls.prepare(
      "f-call",
      {
        eventId: "evt-1",
        stepId: CHECK_IN,
        shard: 1,
        recipient: "h:one",
        language: "en",
        sayLanguage: "en-GB",
        text: "Hello",
        answeringMachine: "hangup",
        speech: false,
      },
      Date.now(),
    );
    const voice = createVoiceCalls({
      rules: () => rules,
      shopName: () => rules.shopName,
      calls,
      shards,
      fileReply: feedback.fileReply,
      suppressions: {
        suppress: async () => true,
        optOutsOf: async () => ({ all: new Set(), marketing: new Set() }),
        noteOptOutAt: async () => undefined,
      },
      spend: {
        spend: {
          add: async (_channel, month) => ({
            added: true,
            beforeMicros: 0,
            afterMicros: 0,
            crossed: [],
            month,
          }),
          giveBack: async () => {},
        },
        onBudgetAlert: async () => {},
      },
      ledger,
      logger,
      now: () => Date.now(),
    });
    expect(
      await voice.status({ followUpId: "f-call", callSid: "CA1", callStatus: "no-answer" }),
    ).toBe("recorded");
    const called = (await shards.of(1).store.stepRecords("evt-1", [CHECK_IN])).get(CHECK_IN);
    expect(called?.delivery).toEqual({ status: "no-answer" });

    // A full refund of an order with a purchase linked before shards (shard 0) and one in
    // shard 2 stops each in its own shard.
    await seedStep(0, "evt-old", "scheduled");
    await redis.hset(keys.order("ord-r"), "e:evt-old", "1");
    const orders = new OrderStore(redis, prefix);
    await orders.linkPurchase("ord-r", "evt-2", 2, DAY, Date.now(), noAddresses(prefix));
    const refunds = createRefunds({
      rules: () => rules,
      shards,
      orders,
      followUps: new Shards(3, () => ({ remove: async () => 1 })),
      metrics: new FollowUpMetrics(),
      logger,
      sendLeaseMs: 120_000,
    });
    await refunds.refund(
      {
        type: "purchase.refunded",
        id: "ref-1",
        orderId: "ord-r",
        occurredAt: new Date().toISOString(),
      } as never,
      Date.now(),
    );
    const stopped = async (shard: number, eventId: string) =>
      redis.hget(new StoreKeys(shardScope(prefix, shard, 3)).eventRecord(eventId), "stop");
    expect(await stopped(0, "evt-old")).toMatch(/^refunded: order ord-r fully refunded/);
    expect(await stopped(2, "evt-2")).toMatch(/^refunded: order ord-r fully refunded/);
    expect(await stopped(0, "evt-2")).toBeNull();
  });
});
