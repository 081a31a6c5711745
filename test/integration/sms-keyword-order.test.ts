import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, expect, inject, it, vi } from "vitest";
import { addressHash } from "../../src/domain/address-hash.js";
import { createLogger } from "../../src/logger.js";
import { createCustomerFeedback } from "../../src/queue/customer-feedback.js";
import type { RedisClient } from "../../src/store/redis-client.js";
import { shardStores } from "../../src/store/shards.js";
import { SmsReferences } from "../../src/store/sms-references.js";
import { SuppressionList } from "../../src/store/suppression-list.js";
import { WebhookReceipts } from "../../src/store/webhook-receipts.js";
import { shippedRules, shippedTemplates } from "../support/fixtures.js";
import { deleteKeysWithPrefix, uniquePrefix } from "../support/redis-namespace.js";
import { replayWhileOptingOut, whileStartApplies } from "../support/replay-at-opt-out.js";

/**
 * Keywords that change a number's subscription are applied in the order the customer sent them,
 * also when one of them waited in the webhook spool (Redis was away when it came in) and is
 * replayed after a later one was handled: a START sent before a STOP never undoes that STOP.
 */

const PHONE = "+447400123456";
const MINUTE = 60_000;

let redis: RedisClient;
let prefix: string;

beforeAll(() => {
  redis = new Redis(inject("redisUrl"), { maxRetriesPerRequest: 1 });
});
afterAll(async () => {
  await redis.quit();
});
beforeEach(() => {
  prefix = uniquePrefix("sms-keyword-order");
});
afterEach(async () => {
  await deleteKeysWithPrefix(redis, prefix);
});

/**
 * The customer feedback at `now`; with `texts`, opt-outs in other words are confirmed by a text
 * (the shipped template), noted there.
 */
async function feedbackAt(now: () => number, texts?: { to: string; text: string }[]) {
  const rules = await shippedRules();
  const templates = texts && (await shippedTemplates(rules));
  const suppressions = new SuppressionList(redis, prefix, { addressHashSecret: "secret" });
  const feedback = createCustomerFeedback({
    rules: () => ({ ...rules, optOutConfirmation: texts !== undefined }),
    templates: () => {
      if (!templates) throw new Error("no confirmation texts in this test");
      return templates;
    },
    sms: {
      send: async (message) => {
        texts?.push({ to: message.to, text: message.text });
        return { ok: true, id: `SM${texts?.length ?? "x"}` };
      },
    },
    shards: shardStores(redis, prefix, 1),
    ledger: { countOnce: async () => true, countFirstOutcome: async () => "counted" as const },
    smsReferences: new SmsReferences(redis, prefix),
    suppressions,
    receipts: new WebhookReceipts(redis, prefix),
    logger: createLogger({ level: "silent", pretty: false }),
    now,
  });
  return { feedback, suppressions };
}

/** The customer feedback now, for a number that texted STOP an hour ago (handled from the spool). */
async function optedOutAnHourAgo() {
  const now = Date.now();
  const { feedback, suppressions } = await feedbackAt(() => now);
  await feedback.inboundSms({
    from: PHONE,
    body: "STOP",
    messageSid: "SM1",
    receivedAt: now - 60 * MINUTE,
  });
  return { now, feedback, suppressions };
}

it("a START replayed from the spool does not undo a STOP the customer sent after it", async () => {
  // Opted out long ago.
  const { now, feedback, suppressions } = await optedOutAnHourAgo();
  // START came in while Redis was away (spooled, 10 minutes ago); once Redis was back, the
  // customer changed their mind again, in words Twilio does not act on itself (live, now).
  expect(
    await feedback.inboundSms({ from: PHONE, body: "Please stop texting me", messageSid: "SM3" }),
  ).toBe("opted-out");
  // The spool is replayed after it.
  await feedback.inboundSms({
    from: PHONE,
    body: "START",
    messageSid: "SM2",
    receivedAt: now - 10 * MINUTE,
  });
  expect(await suppressions.isSuppressed("sms", { address: PHONE })).toBe(true);
  expect(await suppressions.isSuppressed("voice", { address: PHONE })).toBe(true);
});

it("a START replayed from the spool while a later STOP is being written does not undo it", async () => {
  const now = Date.now();
  const { feedback, suppressions } = await feedbackAt(() => now);
  // The spool replays a START sent 10 minutes ago at the moment the live STOP notes its time
  // (after its suppressions, or before: whichever the code does).
  const replayed = await replayWhileOptingOut(
    () =>
      feedback.inboundSms({
        from: PHONE,
        body: "START",
        messageSid: "SM-spooled",
        receivedAt: now - 10 * MINUTE,
      }),
    async () =>
      expect(await feedback.inboundSms({ from: PHONE, body: "STOP", messageSid: "SM-live" })).toBe(
        "opted-out",
      ),
  );
  expect(replayed).toBe(true);
  expect(await suppressions.isSuppressed("sms", { address: PHONE })).toBe(true);
  expect(await suppressions.isSuppressed("voice", { address: PHONE })).toBe(true);
});

it("a STOP handled after a replayed START checked the number's opt-out times, before it took the number off, stands", async () => {
  const { now, feedback, suppressions } = await optedOutAnHourAgo();
  // The spool replays a START sent 10 minutes ago; right after it read the number's opt-out
  // times (none later than it), the customer's live STOP is handled, before the START applies.
  const optedOutAfter = SuppressionList.prototype.optedOutAfter;
  let stopped = false;
  const spy = vi
    .spyOn(SuppressionList.prototype, "optedOutAfter")
    .mockImplementation(async function (this: SuppressionList, who, at) {
      const found = await optedOutAfter.call(this, who, at);
      if (!stopped) {
        stopped = true;
        expect(
          await feedback.inboundSms({ from: PHONE, body: "STOP", messageSid: "SM-live" }),
        ).toBe("opted-out");
      }
      return found;
    });
  try {
    await feedback.inboundSms({
      from: PHONE,
      body: "START",
      messageSid: "SM-spooled",
      receivedAt: now - 10 * MINUTE,
    });
  } finally {
    spy.mockRestore();
  }
  expect(stopped).toBe(true);
  // The customer's last word was the STOP.
  expect(await suppressions.isSuppressed("sms", { address: PHONE })).toBe(true);
  expect(await suppressions.isSuppressed("voice", { address: PHONE })).toBe(true);
});

it("a START replayed from the spool still opts in when no later opt-out came", async () => {
  const now = Date.now();
  const { feedback, suppressions } = await feedbackAt(() => now);
  await feedback.inboundSms({
    from: PHONE,
    body: "STOP",
    messageSid: "SM1",
    receivedAt: now - 60 * MINUTE,
  });
  expect(
    await feedback.inboundSms({
      from: PHONE,
      body: "START",
      messageSid: "SM2",
      receivedAt: now - 10 * MINUTE,
    }),
  ).toBe("opted-in");
  expect(await suppressions.isSuppressed("sms", { address: PHONE })).toBe(false);
  // A live START always applies: nothing handled before it can be later than it.
  await feedback.inboundSms({ from: PHONE, body: "stop", messageSid: "SM3" });
  expect(await feedback.inboundSms({ from: PHONE, body: "start", messageSid: "SM4" })).toBe(
    "opted-in",
  );
  expect(await suppressions.isSuppressed("sms", { address: PHONE })).toBe(false);
});

it("an opt-out replayed from the spool over five minutes after it came in gets no confirmation text; one handled within five minutes does", async () => {
  const now = Date.now();
  const texts: { to: string; text: string }[] = [];
  const { feedback } = await feedbackAt(() => now, texts);
  const stopSpooled = (from: string, minutesAgo: number) =>
    feedback.inboundSms({
      from,
      body: "Please stop texting me",
      messageSid: `SM${from}`,
      receivedAt: now - minutesAgo * MINUTE,
    });
  // Taken while Redis was away an hour ago, replayed now: the FCC lets a confirmation follow an
  // opt-out within five minutes only; later it is one more text after the customer said stop.
  expect(await stopSpooled(PHONE, 60)).toBe("opted-out");
  expect(texts).toEqual([]);
  // Replayed within the five minutes: confirmed, as a live one is.
  const other = "+447400654321";
  expect(await stopSpooled(other, 2)).toBe("opted-out");
  expect(texts.map((sent) => sent.to)).toEqual([other]);
});

/** A text of the number's (START, sent 10 minutes ago), replayed from the spool now. */
const spooled = (
  feedback: Awaited<ReturnType<typeof feedbackAt>>["feedback"],
  now: number,
  { sid = "SM-spooled", body = "START", minutesAgo = 10 } = {},
) =>
  feedback.inboundSms({
    from: PHONE,
    body,
    messageSid: sid,
    receivedAt: now - minutesAgo * MINUTE,
  });

it("a START replayed from the spool takes back a STOP it answered, but not an opt-out of offers made after it", async () => {
  const now = Date.now();
  const { feedback, suppressions } = await feedbackAt(() => now);
  // STOP an hour ago; START 10 minutes ago (spooled: Redis was away); then, live, the customer
  // opted out of offers (a customer.unsubscribed event with purposes ["marketing"]).
  await spooled(feedback, now, { sid: "SM1", body: "STOP", minutesAgo: 60 });
  await feedback.unsubscribe(
    "cus-1",
    ["sms", "voice"],
    "event",
    undefined,
    "marketing",
    new Map([
      ["sms", [PHONE]],
      ["voice", [PHONE]],
    ]),
  );
  expect(await spooled(feedback, now)).toBe("opted-in");
  // What the customer said last about texts in general was START; about offers, stop.
  expect(await suppressions.isSuppressed("sms", { address: PHONE })).toBe(false);
  expect(await suppressions.isSuppressed("sms", { address: PHONE }, "marketing")).toBe(true);
  expect(await suppressions.isSuppressed("voice", { address: PHONE }, "marketing")).toBe(true);
});

it("a START replayed from the spool while an opt-out of offers is being written does not undo it", async () => {
  const now = Date.now();
  const { feedback, suppressions } = await feedbackAt(() => now);
  const replayed = await replayWhileOptingOut(
    () => spooled(feedback, now),
    () =>
      feedback.unsubscribe(
        "cus-1",
        ["sms"],
        "event",
        undefined,
        "marketing",
        new Map([["sms", [PHONE]]]),
      ),
  );
  expect(replayed).toBe(true);
  expect(await suppressions.isSuppressed("sms", { address: PHONE }, "marketing")).toBe(true);
  // Noted as an opt-out of offers, not of everything: another START sent before it is applied,
  // the offers left off.
  expect(await spooled(feedback, now, { sid: "SM-again", minutesAgo: 5 })).toBe("opted-in");
  expect(await suppressions.isSuppressed("sms", { address: PHONE }, "marketing")).toBe(true);
});

it("an unsubscribe link of a text (its token names the number by keyed hash), offers or all, is not undone by a START sent before it", async () => {
  const now = Date.now();
  const { feedback, suppressions } = await feedbackAt(() => now);
  const link = { addressHash: addressHash("secret", PHONE) };
  // "Stop offers", and a mail provider's one-click likewise.
  await feedback.unsubscribe("cus-1", ["sms"], "link", link, "marketing");
  await spooled(feedback, now, { sid: "SM-a" });
  expect(await suppressions.isSuppressed("sms", { address: PHONE }, "marketing")).toBe(true);
  // "Stop all follow-ups".
  await feedback.unsubscribe("cus-1", ["sms"], "link", link, "all");
  await spooled(feedback, now, { sid: "SM-b" });
  expect(await suppressions.isSuppressed("sms", { address: PHONE })).toBe(true);
});

it("an unsubscribe link clicked while Redis was away and replayed later is dated when it was clicked: a START sent after the click still counts", async () => {
  const now = Date.now();
  const { feedback, suppressions } = await feedbackAt(() => now);
  const link = { addressHash: addressHash("secret", PHONE) };
  // "Stop all follow-ups" clicked 20 minutes ago, START texted 10 minutes ago: both waited in the
  // spool and are replayed now, oldest first.
  await feedback.unsubscribe("cus-1", ["sms"], "link", link, "all", new Map(), now - 20 * MINUTE);
  expect(await spooled(feedback, now, { sid: "SM-after-link" })).toBe("opted-in");
  // The customer's last word about texts to this number was START.
  expect(await suppressions.isSuppressed("sms", { address: PHONE })).toBe(false);
  // "Stop offers" clicked 20 minutes ago, START 10 minutes ago: the offers come back too.
  await feedback.unsubscribe(
    "cus-1",
    ["sms"],
    "link",
    link,
    "marketing",
    new Map(),
    now - 20 * MINUTE,
  );
  expect(await spooled(feedback, now, { sid: "SM-after-offers-link" })).toBe("opted-in");
  expect(await suppressions.isSuppressed("sms", { address: PHONE }, "marketing")).toBe(false);
});

it("a STOP handled while a live START is being applied stands: the customer sent it after the START", async () => {
  const now = Date.now();
  const { feedback, suppressions } = await feedbackAt(() => now);
  await feedback.inboundSms({ from: PHONE, body: "STOP", messageSid: "SM-first-stop" });
  // The customer texts START and, a moment later, STOP again; Twilio posts both at once (two
  // replicas, or one handling both requests together). The STOP is handled while the START,
  // handled live on its first delivery, takes the number off the list.
  const stopped = await whileStartApplies(
    () => feedback.inboundSms({ from: PHONE, body: "START", messageSid: "SM-live-start" }),
    async () =>
      expect(
        await feedback.inboundSms({ from: PHONE, body: "STOP", messageSid: "SM-later-stop" }),
      ).toBe("opted-out"),
  );
  expect(stopped).toBe(true);
  // The customer's last word was the STOP: no texts, no calls.
  expect(await suppressions.isSuppressed("sms", { address: PHONE })).toBe(true);
  expect(await suppressions.isSuppressed("voice", { address: PHONE })).toBe(true);
  // A START sent after it opts the number back in.
  expect(await feedback.inboundSms({ from: PHONE, body: "START", messageSid: "SM-start-2" })).toBe(
    "opted-in",
  );
  expect(await suppressions.isSuppressed("sms", { address: PHONE })).toBe(false);
  expect(await suppressions.isSuppressed("voice", { address: PHONE })).toBe(false);
});
