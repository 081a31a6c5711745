import { Redis } from "ioredis";
import { DateTime } from "luxon";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runErase } from "../../src/cli/erase-command.js";
import { addressHash, customerHash } from "../../src/domain/address-hash.js";
import { CustomerHistoryStore } from "../../src/store/customer-history.js";
import { sumHours } from "../../src/store/delivery-ledger.js";
import { StoreKeys } from "../../src/store/keys.js";
import { OrderStore } from "../../src/store/order-store.js";
import { sharedSecret } from "../../src/store/shared-secrets.js";
import { SuppressionList } from "../../src/store/suppression-list.js";
import { unsubscribeUrl } from "../../src/templates/unsubscribe-link.js";
import { captureIo } from "../support/capture-io.js";
import { type ItemInput, item, purchaseInput } from "../support/fixtures.js";
import { legacyUnsubscribeToken } from "../support/legacy-unsubscribe-token.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  promoteStep,
  startPipeline,
} from "../support/pipeline-harness.js";
import { type RedisServer, startRedisServer } from "../support/redis-server.js";
import { textsHandled, whileStartApplies } from "../support/replay-at-opt-out.js";
import { httpAddressOf, postTwilio } from "../support/webhooks.js";

/** Opt-outs that stick: whatever fails around them, a customer who said stop hears nothing more. */

let pipeline: PipelineHarness | undefined;
/** Redis servers of a test's own (stopped after its pipeline). */
const servers: RedisServer[] = [];
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
  for (const server of servers.splice(0)) await server.stop();
});

/**
 * A worker's replica waits that ended short: its log lines saying so, and the count its metrics
 * give (read from /metrics).
 */
function shortWaits(p: PipelineHarness) {
  const short = () =>
    p.logs.filter((line) =>
      String(line.msg).startsWith("fewer replicas than REDIS_WAIT_REPLICAS confirmed a write"),
    );
  const counted = async () =>
    Number(
      /^followups_replica_waits_short_total (\d+)$/m.exec(
        await (await fetch(`${httpAddressOf(p)}/metrics`)).text(),
      )?.[1] ?? "0",
    );
  return { short, counted };
}

/**
 * A Redis of the test's own without a replica, where every wait for one ends short: the suite's
 * Redis Cluster has a replica for each master.
 */
async function withoutReplica(): Promise<string> {
  const server = await startRedisServer();
  servers.push(server);
  return server.url;
}

const PHONE = "+442079460958";
const EMAIL = "ana@example.com";
const ago = (hours: number) =>
  DateTime.utc().minus({ hours }).startOf("second").toISO({ suppressMilliseconds: true }) ?? "";

async function stepRecord(p: PipelineHarness, eventId: string, stepId: string) {
  return (await p.store.stepRecords(eventId, [stepId])).get(stepId);
}

/** Opt-outs counted: the global ledger's and every shard's, as reports add them up. */
async function optOutCounts(p: PipelineHarness): Promise<Map<string, number>> {
  const now = Date.now();
  const hours = await p.stores.of(0).ledger.hours(now - 7_200_000, now + 3_600_000);
  return new Map([...sumHours(hours)].filter(([field]) => field.startsWith("optout|")));
}

/** Publishes a `customer.unsubscribed` event and waits until the worker has taken it in. */
async function unsubscribeEvent(
  p: PipelineHarness,
  id: string,
  fields: { customerId: string; channels: "all" | string[]; purposes?: string[]; at?: string },
) {
  const { at, ...rest } = fields;
  await p.publisher.publish({
    type: "customer.unsubscribed",
    id,
    occurredAt: at ?? ago(0),
    ...rest,
  } as never);
  await eventProcessed(p, id);
}

/** What intake answered for an event (its job's return value), once its job finished. */
async function intakeSummary(p: PipelineHarness, id: string): Promise<unknown> {
  return eventually(async () => {
    const job = await p.events.getJob(id);
    return job?.finishedOn ? job.returnvalue : undefined;
  }, `${id} to be taken in`);
}

/**
 * The same person buying again as a guest (`evt-guest`: another customer id, the default address
 * and number): what intake answered.
 */
async function guestCheckout(p: PipelineHarness, occurredAt: string, items?: ItemInput[]) {
  await p.publisher.publish(
    purchaseInput({
      id: "evt-guest",
      orderId: "ord-guest",
      occurredAt,
      customer: { id: "guest-7781" },
      ...(items && { items }),
    }) as never,
  );
  return intakeSummary(p, "evt-guest");
}

/** An opt-out of every channel counted once per channel (addresses covered add nothing). */
const ONCE_PER_CHANNEL = new Map([
  ["optout|email|-|-", 1],
  ["optout|sms|-|-", 1],
  ["optout|voice|-|-", 1],
]);

/** A text from PHONE, as Twilio posts it to the inbound webhook (extra fields as given). */
function textFromPhone(p: PipelineHarness, Body: string, MessageSid: string, extra = {}) {
  return postTwilio(p, "/webhooks/twilio/inbound", { From: PHONE, Body, MessageSid, ...extra });
}

/** Whether PHONE is opted out of [texts, calls]. */
async function phoneOptedOut(p: PipelineHarness): Promise<boolean[]> {
  const list = new SuppressionList(p.redis, p.prefix);
  return [
    await list.isSuppressed("sms", { address: PHONE }),
    await list.isSuppressed("voice", { address: PHONE }),
  ];
}

/**
 * A START from PHONE whose first delivery fails half-way (Redis refuses taking the number off
 * the list: the set is briefly a string), answered 5xx so that Twilio delivers it again.
 */
async function startFailingHalfWay(p: PipelineHarness, sid: string) {
  const suppressedSms = new StoreKeys(p.prefix).suppressions("sms");
  const kept = await p.redis.smembers(suppressedSms);
  await p.redis.del(suppressedSms);
  await p.redis.set(suppressedSms, "not a set");
  expect((await textFromPhone(p, "START", sid)).status).toBeGreaterThanOrEqual(500);
  await p.redis.del(suppressedSms);
  await p.redis.sadd(suppressedSms, ...kept);
}

describe("an SMS STOP", () => {
  it("whose suppression failed is honoured when Twilio retries it, and counted once", async () => {
    pipeline = await startPipeline("stop-retried");
    const p = pipeline;
    const suppressedSms = new StoreKeys(p.prefix).suppressions("sms");
    // Stands in for any Redis error between receiving the STOP and storing the suppression: the
    // set is briefly a string, so the write fails.
    await p.redis.set(suppressedSms, "not a set");
    const stop = { From: PHONE, Body: "STOP", MessageSid: "SMstop1" };
    const failed = await postTwilio(p, "/webhooks/twilio/inbound", stop);
    expect(failed.status).toBeGreaterThanOrEqual(500);
    await p.redis.del(suppressedSms);

    // Twilio retries the same message: it is not a replay, because it was never processed.
    const retried = await postTwilio(p, "/webhooks/twilio/inbound", stop);
    expect(retried.status).toBe(200);
    const list = new SuppressionList(p.redis, p.prefix);
    expect(await list.isSuppressed("sms", { address: PHONE })).toBe(true);
    // A revocation by text covers calls to the number too.
    expect(await list.isSuppressed("voice", { address: PHONE })).toBe(true);

    // A replay of the processed message changes and counts nothing.
    expect((await postTwilio(p, "/webhooks/twilio/inbound", stop)).status).toBe(200);
    expect(await optOutCounts(p)).toEqual(
      new Map([
        ["optout|sms|-|-", 1],
        ["optout|voice|-|-", 1],
      ]),
    );

    // And the number gets no SMS.
    await p.publisher.publish(
      purchaseInput({
        id: "evt-after-stop",
        orderId: "ord-after-stop",
        occurredAt: ago(2),
        items: [item("televisions", "700.00")],
      }) as never,
    );
    await eventually(
      async () => ((await p.events.getJob("evt-after-stop"))?.finishedOn ? true : undefined),
      "the purchase to be planned",
    );
    expect(await stepRecord(p, "evt-after-stop", "big-ticket.check-in")).toBeUndefined();
    expect(p.twilio.requests).toBe(0);
  });

  it("stores no readable number: the suppression holds a keyed hash", async () => {
    pipeline = await startPipeline("stop-hashed");
    const p = pipeline;
    const answer = await textFromPhone(p, "Stop", "SMstop2");
    expect(answer.status).toBe(200);
    const members = await p.redis.smembers(new StoreKeys(p.prefix).suppressions("sms"));
    expect(members).toHaveLength(1);
    expect(members[0]).toMatch(/^h:[A-Za-z0-9_-]{22}$/);
    expect(members.join()).not.toContain("2079460958");
  });
});

describe("a texted START that Twilio delivers again after a later STOP was handled", () => {
  it("leaves the number opted out, whether the START's first delivery was handled or failed half-way", async () => {
    pipeline = await startPipeline("start-delivered-again");
    const p = pipeline;
    const optedOut = () => phoneOptedOut(p);

    // START handled, STOP handled, then Twilio delivers the START again (its answer was lost).
    expect((await textFromPhone(p, "STOP", "SMagain-stop1")).status).toBe(200);
    expect((await textFromPhone(p, "START", "SMagain-start1")).status).toBe(200);
    expect(await optedOut()).toEqual([false, false]);
    expect((await textFromPhone(p, "STOP", "SMagain-stop2")).status).toBe(200);
    expect((await textFromPhone(p, "START", "SMagain-start1")).status).toBe(200);
    expect(await optedOut()).toEqual([true, true]);

    // A START whose first delivery failed half-way (Redis refused taking the number off the
    // list: the set is briefly a string), then a STOP, then Twilio's retry of the START.
    await startFailingHalfWay(p, "SMagain-start2");
    expect((await textFromPhone(p, "STOP", "SMagain-stop3")).status).toBe(200);
    expect((await textFromPhone(p, "START", "SMagain-start2")).status).toBe(200);
    // The START was sent before the STOP: the STOP, the customer's last word, stands.
    expect(await optedOut()).toEqual([true, true]);

    // A START sent after the STOP still opts the number back in.
    expect((await textFromPhone(p, "START", "SMagain-start3")).status).toBe(200);
    expect(await optedOut()).toEqual([false, false]);
  });
});

describe("a texted START right after a STOP handled by a replica whose clock runs ahead", () => {
  it("opts the number back in: a START on its first delivery, handled live, is the customer's latest word", async () => {
    pipeline = await startPipeline("start-after-stop-clock-ahead");
    const p = pipeline;
    const list = new SuppressionList(p.redis, p.prefix);
    expect((await textFromPhone(p, "STOP", "SMskew-stop")).status).toBe(200);
    // The STOP as another replica, whose clock runs two seconds ahead, noted its time.
    await list.noteOptOutAt({ address: PHONE }, Date.now() + 2_000);
    expect((await textFromPhone(p, "START", "SMskew-start")).status).toBe(200);
    expect([
      await list.isSuppressed("sms", { address: PHONE }),
      await list.isSuppressed("voice", { address: PHONE }),
    ]).toEqual([false, false]);
    // Twilio's copy of that START delivered again is dated by the first: it still changes nothing
    // after a later STOP.
    expect((await textFromPhone(p, "STOP", "SMskew-stop2")).status).toBe(200);
    expect((await textFromPhone(p, "START", "SMskew-start")).status).toBe(200);
    expect(await list.isSuppressed("sms", { address: PHONE })).toBe(true);
  });
});

describe("a STOP the customer texted right after a START, posted while the START is applied", () => {
  it("stands: no texts and no calls, as the customer said last", async () => {
    pipeline = await startPipeline("stop-while-start-applies");
    const p = pipeline;
    const list = new SuppressionList(p.redis, p.prefix);
    expect((await textFromPhone(p, "STOP", "SMrace-stop1")).status).toBe(200);
    // START, then STOP a moment later: Twilio posts both at once, and the STOP is handled (by
    // another replica, or this one) while the START, on its first delivery, takes the number off.
    let stopStatus: number | undefined;
    await whileStartApplies(
      async () => expect((await textFromPhone(p, "START", "SMrace-start1")).status).toBe(200),
      async () => {
        stopStatus = (await textFromPhone(p, "STOP", "SMrace-stop2")).status;
      },
    );
    expect(stopStatus).toBe(200);
    expect([
      await list.isSuppressed("sms", { address: PHONE }),
      await list.isSuppressed("voice", { address: PHONE }),
    ]).toEqual([true, true]);
    // A START texted after that STOP opts the number back in.
    expect((await textFromPhone(p, "START", "SMrace-start2")).status).toBe(200);
    expect([
      await list.isSuppressed("sms", { address: PHONE }),
      await list.isSuppressed("voice", { address: PHONE }),
    ]).toEqual([false, false]);
  });
});

describe("a texted START while other opt-outs are handled", () => {
  const ADMIN = "alice-token-0123456789";
  /** The shop opts a number out by the admin API (as `followups opt-out --phone`). */
  const adminOptOut = (p: PipelineHarness, body: Record<string, unknown>) =>
    fetch(`${httpAddressOf(p)}/admin/v1/opt-outs`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  /** A START from PHONE (answered 200), with `meanwhile` handled as it is applied. */
  const startWhile = async (p: PipelineHarness, sid: string, meanwhile: () => Promise<void>) => {
    const ran = await whileStartApplies(
      async () => expect((await textFromPhone(p, "START", sid)).status).toBe(200),
      meanwhile,
    );
    expect(ran).toBe(true);
  };

  it("opts the number back in when another number or customer opts out meanwhile", async () => {
    pipeline = await startPipeline("start-while-others-opt-out");
    const p = pipeline;
    const list = new SuppressionList(p.redis, p.prefix);
    const OTHER = "+442079460111";
    await p.publisher.publish(
      purchaseInput({
        id: "evt-other",
        orderId: "ord-other",
        occurredAt: ago(1),
        customer: { id: "cus-other", email: "other@example.com", phone: OTHER },
      }) as never,
    );
    await eventProcessed(p, "evt-other");
    expect((await textFromPhone(p, "STOP", "SMothers-stop")).status).toBe(200);
    await startWhile(p, "SMothers-start", async () => {
      const stop = await postTwilio(p, "/webhooks/twilio/inbound", {
        From: OTHER,
        Body: "STOP",
        MessageSid: "SMothers-other-stop",
      });
      expect(stop.status).toBe(200);
      await unsubscribeEvent(p, "unsub-other", { customerId: "cus-other", channels: "all" });
    });
    expect(await list.isSuppressed("sms", { address: OTHER })).toBe(true);
    expect([
      await list.isSuppressed("sms", { address: PHONE }),
      await list.isSuppressed("voice", { address: PHONE }),
    ]).toEqual([false, false]);
  });

  it("brings texts back when the number is opted out of calls only meanwhile, or after it was sent; the calls stay off", async () => {
    pipeline = await startPipeline("start-while-calls-opted-out", {
      env: { ADMIN_TOKENS: `alice:${ADMIN}` },
    });
    const p = pipeline;
    const optedOut = () => phoneOptedOut(p);
    expect((await textFromPhone(p, "STOP", "SMcalls-stop1")).status).toBe(200);
    // The customer texts START and, on the phone to the shop at that moment, asks for no calls.
    await startWhile(p, "SMcalls-start1", async () => {
      expect((await adminOptOut(p, { phone: PHONE, channels: ["voice"] })).status).toBe(200);
    });
    expect(await optedOut()).toEqual([false, true]);

    // A START whose first delivery failed half-way (Redis refused taking the number off the
    // list: the set is briefly a string), an opt-out of calls only, then Twilio's retry of it.
    expect((await textFromPhone(p, "STOP", "SMcalls-stop2")).status).toBe(200);
    await startFailingHalfWay(p, "SMcalls-start2");
    expect((await adminOptOut(p, { phone: PHONE, channels: ["voice"] })).status).toBe(200);
    expect((await textFromPhone(p, "START", "SMcalls-start2")).status).toBe(200);
    // Its word about texts was the customer's last: texts back, calls off.
    expect(await optedOut()).toEqual([false, true]);

    // A STOP handled while a START is applied still stands, for texts and calls.
    await startWhile(p, "SMcalls-start3", async () => {
      expect((await textFromPhone(p, "STOP", "SMcalls-stop3")).status).toBe(200);
    });
    expect(await optedOut()).toEqual([true, true]);
  });
});

describe("an SMS that Twilio's Advanced Opt-Out took for an opt-out (OptOutType=STOP)", () => {
  it("stops texts and calls to the number also in words of the shop's own keywords, and gets no text from us", async () => {
    pipeline = await startPipeline("stop-opt-out-type");
    const p = pipeline;
    // A keyword the shop added to its Messaging Service (here the French "arrête"): Twilio blocks
    // texts to the number and says so, but calls are ours to stop.
    const answer = await textFromPhone(p, "Arrête", "SMoptouttype1", { OptOutType: "STOP" });
    expect(answer.status).toBe(200);
    const list = new SuppressionList(p.redis, p.prefix);
    expect(await list.isSuppressed("sms", { address: PHONE })).toBe(true);
    expect(await list.isSuppressed("voice", { address: PHONE })).toBe(true);
    // Twilio answered it with its own confirmation: none from us.
    expect(p.twilio.requests).toBe(0);
  });
});

describe("an opt-out in other words", () => {
  it("is confirmed by one text within five minutes; a bare STOP is left to Twilio's own reply", async () => {
    pipeline = await startPipeline("stop-confirmed");
    const p = pipeline;
    const inbound = (Body: string, MessageSid: string) =>
      postTwilio(p, "/webhooks/twilio/inbound", { From: PHONE, Body, MessageSid });
    expect((await inbound("Please stop texting me", "SMwords1")).status).toBe(200);
    const [confirmation] = await p.twilio.waitForMessages(1);
    expect(confirmation?.to).toBe(PHONE);
    expect(confirmation?.body).toBe("You will get no more messages from Your shop.");
    expect(
      await new SuppressionList(p.redis, p.prefix).isSuppressed("sms", { address: PHONE }),
    ).toBe(true);

    // A second opt-out within five minutes, in words or as a keyword, gets no second text.
    expect((await inbound("cancel my messages", "SMwords2")).status).toBe(200);
    expect((await inbound("STOP", "SMwords3")).status).toBe(200);
    // A confirmation goes out before the webhook is answered: none came for these.
    expect(p.twilio.messages).toHaveLength(1);
  });

  it("as a bare keyword gets no text from us: Twilio answers its standard keywords itself", async () => {
    pipeline = await startPipeline("stop-keyword");
    const p = pipeline;
    const answer = await postTwilio(p, "/webhooks/twilio/inbound", {
      From: PHONE,
      Body: "STOP",
      MessageSid: "SMkeyword1",
    });
    expect(answer.status).toBe(200);
    // A confirmation would have gone out before the webhook was answered.
    expect(p.twilio.requests).toBe(0);
    expect(
      await new SuppressionList(p.redis, p.prefix).isSuppressed("sms", { address: PHONE }),
    ).toBe(true);
  });
});

describe("a one-click unsubscribe", () => {
  it("covers the address it was sent to, also under another (guest) customer id", async () => {
    pipeline = await startPipeline("unsubscribe-address");
    const p = pipeline;
    const laptop = (id: string, customer: Record<string, unknown> = {}) =>
      purchaseInput({
        id,
        orderId: `ord-${id}`,
        occurredAt: ago(2),
        items: [item("laptops", "900.00")],
        customer,
      });
    await p.publisher.publish(laptop("evt-member") as never);
    await promoteStep(p, "evt-member", "accessories.discount");
    const mails = await p.sink.waitForMessages(2);
    const discount = mails.find((m) => /List-Unsubscribe:/i.test(m.raw));
    const headers = (discount?.raw ?? "").replace(/\r?\n[ \t]+/g, " ");
    const link = /List-Unsubscribe: <(https:\/\/followups\.test\/unsubscribe\/[^>]+)>/.exec(
      headers,
    )?.[1];
    expect(link).toBeDefined();
    const response = await fetch(`${httpAddressOf(p)}${new URL(link ?? "").pathname}`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "List-Unsubscribe=One-Click",
    });
    expect(response.status).toBe(200);

    // The same person checks out as a guest: a new customer id, the same address.
    await p.publisher.publish(
      laptop("evt-guest", { id: "guest-7781", email: EMAIL.toUpperCase() }) as never,
    );
    const planned = await intakeSummary(p, "evt-guest");
    // No offers by email for that address (a one-click unsubscribe stops the list the message
    // came from: offers); the thank-you and the check-in still go.
    expect(planned).toMatchObject({ type: "purchase.completed", planned: 2 });
    expect(await stepRecord(p, "evt-guest", "accessories.discount")).toBeUndefined();
    const thanks = await eventually(async () => {
      const found = await stepRecord(p, "evt-guest", "big-ticket.thank-you");
      return found?.state === "sent" ? found : undefined;
    }, "the guest's thank-you to be sent");
    expect(thanks.channel).toBe("email");
    expect(await optOutCounts(p)).toEqual(new Map([["optout|email|-|-", 1]]));
    const counts = sumHours(
      await p.stores.of(0).ledger.hours(Date.now() - 7_200_000, Date.now() + 3_600_000),
    );
    expect(counts.get("reason|optout|email|-|one-click-offers")).toBe(1);
  });
});

describe("an unsubscribe link for a customer id as long as the contract allows", () => {
  /** The lines of a message's header, as the SMTP server received them (folded). */
  const headerLines = (raw: string) => raw.slice(0, raw.indexOf("\r\n\r\n")).split("\r\n");
  const oneClick = (p: PipelineHarness, link: string) =>
    fetch(`${httpAddressOf(p)}${new URL(link).pathname}`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "List-Unsubscribe=One-Click",
    });

  it.each([
    ["200 emoji (800 UTF-8 bytes)", "😀".repeat(200)],
    ["200 ASCII characters", `cus-${"x".repeat(196)}`],
  ])(
    "%s: every line of the marketing email is within 998 characters, the page opens, and one-click opts the customer out",
    async (_name, customerId) => {
      pipeline = await startPipeline("unsubscribe-long-id", {
        env: { UNSUBSCRIBE_MAILTO: "unsubscribe@shop.example" },
      });
      const p = pipeline;
      await p.publisher.publish(
        purchaseInput({
          id: "evt-long-id",
          orderId: "ord-long-id",
          occurredAt: ago(2),
          items: [item("laptops", "900.00")],
          customer: { id: customerId },
        }) as never,
      );
      await promoteStep(p, "evt-long-id", "accessories.discount");
      const mails = await p.sink.waitForMessages(2);
      const discount = mails.find((m) => /^List-Unsubscribe:/im.test(m.raw));
      expect(discount).toBeDefined();
      const raw = discount?.raw ?? "";
      // RFC 5322 2.1.1: a relay may break a longer line, which breaks the DKIM signature.
      const long = headerLines(raw).filter((line) => line.length > 998);
      expect(long.map((line) => `${line.slice(0, 40)}… (${line.length})`)).toEqual([]);
      expect(raw.split("\r\n").filter((line) => line.length > 998)).toEqual([]);
      const unfolded = raw.replace(/\r\n[ \t]+/g, " ");
      const header = /^List-Unsubscribe: ([^\r\n]+)/im.exec(unfolded)?.[1] ?? "";
      const link = /<(https:\/\/followups\.test\/unsubscribe\/[^>]+)>/.exec(header)?.[1];
      expect(link).toBeDefined();
      expect(header).toMatch(/<mailto:unsubscribe@shop\.example\?subject=unsubscribe%20[^>]+>$/);

      const page = await fetch(`${httpAddressOf(p)}${new URL(link ?? "").pathname}`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain("Stop offers");
      const list = new SuppressionList(p.redis, p.prefix);
      expect(await list.isSuppressed("email", { customerId }, "marketing")).toBe(false);
      expect((await oneClick(p, link ?? "")).status).toBe(200);
      // By the customer id alone (no address): the opt-out is the customer's.
      expect(await list.isSuppressed("email", { customerId }, "marketing")).toBe(true);
      expect(
        await list.isSuppressed("email", { customerId: `${customerId.slice(2)}` }, "marketing"),
      ).toBe(false);
      expect(await list.isSuppressed("email", { address: EMAIL }, "marketing")).toBe(true);
      expect(await list.isSuppressed("email", { customerId })).toBe(false);
    },
  );

  it("a link in the format sent before 7 December 2026 (the customer id in the token) still opens its page and opts its customer and address out", async () => {
    pipeline = await startPipeline("unsubscribe-old-token");
    const p = pipeline;
    const secret = await sharedSecret(p.redis, p.prefix, "unsubscribe");
    const hashed = addressHash(await sharedSecret(p.redis, p.prefix, "address-hash"), EMAIL);
    const list = new SuppressionList(p.redis, p.prefix);
    const withAddress = "😀".repeat(200);
    const idOnly = "cus-old-link";
    const links = [
      legacyUnsubscribeToken(secret, {
        customerId: withAddress,
        channel: "email",
        addressHash: hashed,
      }),
      legacyUnsubscribeToken(secret, { customerId: idOnly, channel: "email" }),
    ].map((token) => `https://followups.test/unsubscribe/${token}?lang=en`);
    for (const link of links) {
      const page = await fetch(`${httpAddressOf(p)}${new URL(link).pathname}`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain("Stop offers");
      expect((await oneClick(p, link)).status).toBe(200);
    }
    expect(await list.isSuppressed("email", { customerId: withAddress }, "marketing")).toBe(true);
    expect(await list.isSuppressed("email", { address: EMAIL }, "marketing")).toBe(true);
    expect(await list.isSuppressed("email", { customerId: idOnly }, "marketing")).toBe(true);
    expect(await list.isSuppressed("email", { customerId: "cus-other" }, "marketing")).toBe(false);
  });
});

describe("a customer.unsubscribed event", () => {
  it("also covers the addresses of the customer's kept purchases: a guest checkout with the same email gets nothing", async () => {
    pipeline = await startPipeline("unsubscribe-event-guest");
    const p = pipeline;
    // The shop knows cus-1 by this address and number: a purchase with a thank-you pending.
    await p.publisher.publish(
      purchaseInput({ id: "evt-known", orderId: "ord-known", occurredAt: ago(0) }) as never,
    );
    await eventually(
      async () => ((await stepRecord(p, "evt-known", "thank-you.thank-you")) ? true : undefined),
      "the first purchase to be planned",
    );
    await unsubscribeEvent(p, "unsub-cus-1", { customerId: "cus-1", channels: "all" });
    const list = new SuppressionList(p.redis, p.prefix);
    expect(await list.isSuppressed("email", { address: EMAIL })).toBe(true);
    expect(await list.isSuppressed("sms", { address: PHONE })).toBe(true);
    // Counted once per channel, for the customer: the addresses add nothing to the count.
    expect(await optOutCounts(p)).toEqual(ONCE_PER_CHANNEL);

    // The same person buys again as a guest: another customer id, the same address and number.
    expect(await guestCheckout(p, ago(2))).toMatchObject({
      type: "purchase.completed",
      planned: 0,
    });
    expect(p.sink.messages.filter((m) => m.envelope.rcptTo.includes(EMAIL))).toHaveLength(0);
  });
});

describe("a customer.unsubscribed event taken in while a purchase of the customer is", () => {
  it("covers that purchase's address and number too: a guest checkout with them gets nothing", async () => {
    pipeline = await startPipeline("unsubscribe-while-purchase");
    const p = pipeline;
    // The purchase has read the customer's opt-outs (none yet) when the opt-out event is taken
    // in, all of it, before the purchase is stored where the opt-out looks for addresses.
    const getWithOptOuts = OrderStore.prototype.getWithOptOuts;
    let optedOut = false;
    const spy = vi.spyOn(OrderStore.prototype, "getWithOptOuts").mockImplementation(async function (
      this: OrderStore,
      ...args
    ) {
      const read = await getWithOptOuts.apply(this, args);
      if (!optedOut) {
        optedOut = true;
        await unsubscribeEvent(p, "unsub-race", { customerId: "cus-1", channels: "all" });
      }
      return read;
    });
    try {
      await p.publisher.publish(
        purchaseInput({ id: "evt-racing", orderId: "ord-racing", occurredAt: ago(1) }) as never,
      );
      await intakeSummary(p, "evt-racing");
    } finally {
      spy.mockRestore();
    }
    expect(optedOut).toBe(true);
    const list = new SuppressionList(p.redis, p.prefix);
    expect(await list.isSuppressed("email", { address: EMAIL })).toBe(true);
    expect(await list.isSuppressed("sms", { address: PHONE })).toBe(true);
    // The same person buys again as a guest: another customer id, the same address and number.
    expect(await guestCheckout(p, ago(0))).toMatchObject({
      type: "purchase.completed",
      planned: 0,
    });
  });

  it("covers it when the purchase is stored after the opt-out looked for addresses, and before it is written", async () => {
    pipeline = await startPipeline("unsubscribe-before-purchase-stored");
    const p = pipeline;
    // The opt-out has looked for the customer's addresses (none yet) when the purchase is taken
    // in, all of it (its opt-outs read before the opt-out is written), before the opt-out goes on.
    const purchasesOf = CustomerHistoryStore.prototype.purchasesOf;
    let bought = false;
    const spy = vi
      .spyOn(CustomerHistoryStore.prototype, "purchasesOf")
      .mockImplementation(async function (this: CustomerHistoryStore, ...args) {
        const read = await purchasesOf.apply(this, args);
        if (!bought) {
          bought = true;
          await p.publisher.publish(
            purchaseInput({ id: "evt-racing", orderId: "ord-racing", occurredAt: ago(1) }) as never,
          );
          expect(await intakeSummary(p, "evt-racing")).toMatchObject({ planned: 1 });
        }
        return read;
      });
    try {
      await unsubscribeEvent(p, "unsub-race", { customerId: "cus-1", channels: "all" });
    } finally {
      spy.mockRestore();
    }
    expect(bought).toBe(true);
    const list = new SuppressionList(p.redis, p.prefix);
    expect(await list.isSuppressed("email", { address: EMAIL })).toBe(true);
    expect(await list.isSuppressed("sms", { address: PHONE })).toBe(true);
    expect(await optOutCounts(p)).toEqual(ONCE_PER_CHANNEL);
  });
});

describe("a texted START after a customer.unsubscribed event for calls", () => {
  it("leaves the calls off: START resubscribes the number to texts, not to calls stopped another way", async () => {
    pipeline = await startPipeline("unsubscribe-event-then-start");
    const p = pipeline;
    // The shop knows cus-1 by this number: a purchase with a thank-you pending.
    await p.publisher.publish(
      purchaseInput({ id: "evt-known", orderId: "ord-known", occurredAt: ago(0) }) as never,
    );
    await eventually(
      async () => ((await stepRecord(p, "evt-known", "thank-you.thank-you")) ? true : undefined),
      "the purchase to be planned",
    );
    await unsubscribeEvent(p, "unsub-voice", { customerId: "cus-1", channels: ["voice"] });
    const list = new SuppressionList(p.redis, p.prefix);
    expect(await list.isSuppressed("voice", { address: PHONE })).toBe(true);
    expect((await textFromPhone(p, "START", "SMstart-after-event")).status).toBe(200);
    expect(await list.isSuppressed("voice", { address: PHONE })).toBe(true);
    expect(await list.isSuppressed("sms", { address: PHONE })).toBe(false);
  });
});

describe("a customer.unsubscribed event that arrives before the customer's purchase", () => {
  it("covers that purchase's address and number once it arrives: a guest checkout with them gets nothing", async () => {
    pipeline = await startPipeline("unsubscribe-event-early");
    const p = pipeline;
    // The shop's preference centre publishes the opt-out; the till's purchase event, made earlier,
    // reaches the queue later (publishers keep no order between them).
    await unsubscribeEvent(p, "unsub-early", { customerId: "cus-1", channels: "all" });
    await p.publisher.publish(
      purchaseInput({ id: "evt-late", orderId: "ord-late", occurredAt: ago(1) }) as never,
    );
    expect(await intakeSummary(p, "evt-late")).toMatchObject({
      type: "purchase.completed",
      planned: 0,
    });

    // The same person buys again as a guest: another customer id, the same address and number.
    expect(await guestCheckout(p, ago(0), [item("televisions", "899.00")])).toMatchObject({
      type: "purchase.completed",
      planned: 0,
    });
    const list = new SuppressionList(p.redis, p.prefix);
    for (const channel of ["sms", "voice"] as const)
      expect(await list.isSuppressed(channel, { address: PHONE })).toBe(true);
    expect(await list.isSuppressed("email", { address: EMAIL })).toBe(true);
    // Counted once per channel, for the customer: the addresses add nothing to the count.
    expect(await optOutCounts(p)).toEqual(ONCE_PER_CHANNEL);
  });
});

/**
 * PHONE is opted out; a START it sent at `sentAt`, replayed from the webhook spool now, leaves its
 * texts and calls off.
 */
async function expectOffAfterStartSentAt(p: PipelineHarness, sentAt: number) {
  const list = new SuppressionList(p.redis, p.prefix);
  expect(await list.isSuppressed("sms", { address: PHONE })).toBe(true);
  const texts = await textsHandled(p, list);
  await texts.inboundSms({ from: PHONE, body: "START", messageSid: "SM-old", receivedAt: sentAt });
  for (const channel of ["sms", "voice"] as const)
    expect(await list.isSuppressed(channel, { address: PHONE })).toBe(true);
}

describe("a customer.unsubscribed event that arrives before the customer's purchase, and a START", () => {
  it("sent before the opt-out and replayed from the spool after the purchase leaves its number covered", async () => {
    pipeline = await startPipeline("unsubscribe-event-early-start");
    const p = pipeline;
    // A START the number sent before the opt-out, waiting in the webhook spool (Redis away).
    const sentAt = Date.now() - 60_000;
    await unsubscribeEvent(p, "unsub-early-start", { customerId: "cus-1", channels: "all" });
    await p.publisher.publish(
      purchaseInput({ id: "evt-late", orderId: "ord-late", occurredAt: ago(1) }) as never,
    );
    await intakeSummary(p, "evt-late");
    // As had the purchase come first: the START is older than the opt-out that covers the number.
    await expectOffAfterStartSentAt(p, sentAt);
  });
});

describe("Twilio's 21610 answered to a text (the number texted STOP to it)", () => {
  it("is not undone by a START the number sent before it, replayed from the spool", async () => {
    pipeline = await startPipeline("provider-optout-spooled-start");
    const p = pipeline;
    // A START sent before the send, waiting in the webhook spool (Redis away).
    const sentAt = Date.now() - 60_000;
    await p.publisher.publish(
      purchaseInput({
        id: "evt-21610",
        orderId: "ord-21610",
        occurredAt: ago(1),
        items: [item("televisions", "899.00")],
      }) as never,
    );
    await intakeSummary(p, "evt-21610");
    p.twilio.failNext({ status: 400, code: 21610, message: "unsubscribed recipient" });
    await promoteStep(p, "evt-21610", "big-ticket.check-in");
    await eventually(
      async () =>
        (await stepRecord(p, "evt-21610", "big-ticket.check-in"))?.state === "failed" || undefined,
      "the check-in to fail with 21610",
    );
    // Twilio said at the send that the number's last word to it was STOP: the START is older.
    await expectOffAfterStartSentAt(p, sentAt);
  });
});

describe("a customer.unsubscribed event for a shared customer id", () => {
  it("covers the id, not the addresses of the many people who bought under it", async () => {
    pipeline = await startPipeline("unsubscribe-event-shared");
    const p = pipeline;
    // A till's "walk-in" customer: six people's purchases under one id.
    for (let n = 1; n <= 6; n++) {
      await p.publisher.publish(
        purchaseInput({
          id: `evt-walk-in-${n}`,
          orderId: `ord-walk-in-${n}`,
          occurredAt: ago(0),
          customer: { id: "walk-in", email: `person${n}@example.com`, phone: undefined },
        }) as never,
      );
    }
    for (let n = 1; n <= 6; n++) await eventProcessed(p, `evt-walk-in-${n}`);
    await unsubscribeEvent(p, "unsub-walk-in", { customerId: "walk-in", channels: ["email"] });
    const list = new SuppressionList(p.redis, p.prefix);
    expect(await list.isSuppressed("email", { customerId: "walk-in" })).toBe(true);
    expect(await list.isSuppressed("email", { address: "person1@example.com" })).toBe(false);
    expect(await list.isSuppressed("email", { address: "person6@example.com" })).toBe(false);
  });
});

describe('a customer.unsubscribed event with purposes: ["marketing"]', () => {
  it("stops offers on the channel and lets the thank-you and check-in go", async () => {
    pipeline = await startPipeline("unsubscribe-offers");
    const p = pipeline;
    await p.publisher.publish({
      type: "customer.unsubscribed",
      id: "unsub-offers",
      occurredAt: ago(3),
      customerId: "cus-1",
      channels: ["email"],
      purposes: ["marketing"],
    });
    await eventually(
      async () => ((await p.events.getJob("unsub-offers"))?.finishedOn ? true : undefined),
      "the opt-out to be recorded",
    );
    await p.publisher.publish(
      purchaseInput({
        id: "evt-offers",
        orderId: "ord-offers",
        occurredAt: ago(2),
        items: [item("laptops", "900.00")],
      }) as never,
    );
    const thanks = await eventually(async () => {
      const found = await stepRecord(p, "evt-offers", "big-ticket.thank-you");
      return found?.state === "sent" ? found : undefined;
    }, "the thank-you to be sent");
    expect(thanks.channel).toBe("email");
    expect(await stepRecord(p, "evt-offers", "accessories.discount")).toBeUndefined();
    expect(await stepRecord(p, "evt-offers", "big-ticket.check-in")).toMatchObject({
      state: "scheduled",
    });
    const counts = sumHours(
      await p.stores.of(0).ledger.hours(Date.now() - 7_200_000, Date.now() + 3_600_000),
    );
    expect(counts.get("reason|optout|email|-|event-offers")).toBe(1);
    expect(counts.get("reason|skipped|email|discount|opted-out")).toBe(1);
  });
});

describe("suppressions written before keyed hashes", () => {
  it("still match, and START removes them", async () => {
    pipeline = await startPipeline("legacy-suppression", { startWorker: false });
    const p = pipeline;
    // An unkeyed SHA-256 of the number (`printf +442079460958 | openssl dgst -sha256 -binary |
    // basenc --base64url | cut -c1-22`), as versions before December 2026 stored it.
    const legacy = "a:8L8CKBRNn-K98dotjKaY8X";
    const key = new StoreKeys(p.prefix).suppressions("sms");
    await p.redis.sadd(key, legacy);
    const list = new SuppressionList(p.redis, p.prefix);
    expect(await list.isSuppressed("sms", { address: PHONE })).toBe(true);
    await list.allow("sms", { address: PHONE });
    expect(await p.redis.smembers(key)).toEqual([]);
  });
});

describe("marketing email without a working unsubscribe link", () => {
  it("keeps the worker from starting while real email goes out, naming PUBLIC_URL", async () => {
    pipeline = await startPipeline("plain-http-url", {
      startWorker: false,
      env: { PUBLIC_URL: "http://followups.test" },
    });
    await expect(pipeline.startWorker()).rejects.toThrow(
      "PUBLIC_URL must be an https URL that reaches this service (got http://followups.test): the marketing email steps accessories.discount, loyal-customer.discount carry unsubscribe links that must work for every recipient",
    );
  });
});

describe("the List-Unsubscribe mailto (UNSUBSCRIBE_MAILTO)", () => {
  const token = "inbound-token-0123456789";
  /** A pipeline with UNSUBSCRIBE_MAILTO `mailto`, and the marketing email a laptop's purchase brings. */
  const discountMailWith = async (name: string, mailto: string) => {
    pipeline = await startPipeline(name, {
      env: { UNSUBSCRIBE_MAILTO: mailto, INBOUND_EMAIL_TOKEN: token },
    });
    const p = pipeline;
    await p.publisher.publish(
      purchaseInput({
        id: "evt-laptop",
        orderId: "ord-laptop",
        occurredAt: ago(2),
        items: [item("laptops", "900.00")],
      }) as never,
    );
    await promoteStep(p, "evt-laptop", "accessories.discount");
    const mails = await p.sink.waitForMessages(2);
    const discount = mails.find((m) => /^List-Unsubscribe:/im.test(m.raw));
    expect(discount).toBeDefined();
    return { p, raw: discount?.raw ?? "" };
  };
  /** A raw mail through the inbound email webhook; its JSON answer. */
  const sendMail = (p: PipelineHarness, body: string) =>
    fetch(`${httpAddressOf(p)}/webhooks/email/inbound`, {
      method: "POST",
      headers: { "content-type": "message/rfc822", authorization: `Bearer ${token}` },
      body,
    }).then((answer) => answer.json());

  it("an unsubscribe mail a mail client sends to it, through the inbound email webhook, stops offers to the address", async () => {
    const { p, raw } = await discountMailWith("unsubscribe-mailto", "unsubscribe@shop.example");
    const headers = raw.replace(/\r?\n[ \t]+/g, " ");
    const mailto = /<mailto:([^>]+)>/.exec(
      /List-Unsubscribe: ([^\r\n]+)/i.exec(headers)?.[1] ?? "",
    )?.[1];
    expect(mailto).toBeDefined();
    const url = new URL(`mailto:${mailto}`);
    const subject = url.searchParams.get("subject") ?? "";
    expect(subject).toMatch(/^unsubscribe /);

    // What Gmail or Apple Mail send for a mailto unsubscribe, delivered (as every other mail the
    // worker takes in) through the inbound-parse webhook.
    const mime = [
      `From: Ana Novak <${EMAIL}>`,
      `To: ${url.pathname}`,
      `Subject: ${subject}`,
      `Date: ${new Date().toUTCString()}`,
      "Message-ID: <unsub-1@mail.example>",
      "Content-Type: text/plain; charset=utf-8",
      "",
      "This message was automatically generated by Gmail.",
      "",
    ].join("\r\n");
    const response = await fetch(`${httpAddressOf(p)}/webhooks/email/inbound`, {
      method: "POST",
      headers: { "content-type": "message/rfc822", authorization: `Bearer ${token}` },
      body: mime,
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "unsubscribed" });
    const suppressions = new SuppressionList(p.redis, p.prefix);
    // Offers only, as the one-click link: under the customer id and the address (any customer id).
    expect(
      await suppressions.isSuppressed(
        "email",
        { customerId: "guest-1", address: EMAIL },
        "marketing",
      ),
    ).toBe(true);
    expect(await suppressions.isSuppressed("email", { customerId: "cus-1" }, "marketing")).toBe(
      true,
    );
    expect(await suppressions.isSuppressed("email", { customerId: "cus-1", address: EMAIL })).toBe(
      false,
    );
    // A forged token opts nobody out but its sender: the address is for nothing else, so a mail
    // to it without a valid token (typed by hand, its subject lost) stops offers to the sender.
    const send = (body: string) => sendMail(p, body);
    const forged = await send(
      mime
        .replace(subject, "unsubscribe AAAAforged")
        .replace("unsub-1@mail.example", "unsub-2@mail.example")
        .replace(`From: Ana Novak <${EMAIL}>`, "From: someone@elsewhere.example"),
    );
    expect(forged).toEqual({ status: "unsubscribed" });
    expect(
      await suppressions.isSuppressed(
        "email",
        { address: "someone@elsewhere.example" },
        "marketing",
      ),
    ).toBe(true);
    expect(await suppressions.isSuppressed("email", { customerId: "cus-1", address: EMAIL })).toBe(
      false,
    );
    const typed = await send(
      [
        "From: Bo Berg <BO@Example.com>",
        "To: Shop <unsubscribe@shop.example>",
        "Subject: Unsubscribe",
        "Message-ID: <unsub-3@mail.example>",
        "",
        "Please remove me from your mailing list.",
        "",
      ].join("\r\n"),
    );
    expect(typed).toEqual({ status: "unsubscribed" });
    expect(
      await suppressions.isSuppressed("email", { address: "bo@example.com" }, "marketing"),
    ).toBe(true);
    // A reply to the shop's own address is a reply, not an opt-out.
    const reply = await send(
      [
        `From: Ana Novak <${EMAIL}>`,
        "To: hello@shop.example",
        "Subject: Re: your laptop",
        "Message-ID: <reply-1@mail.example>",
        "",
        "Thanks, all good.",
        "",
      ].join("\r\n"),
    );
    expect(reply).not.toEqual({ status: "unsubscribed" });
    // A mailbox provider's unsubscribe, generated for the customer (Auto-Submitted, as RFC 3834
    // has machine-made mail say), its subject's token lost: still an unsubscribe, as the address
    // takes nothing else. An out-of-office reply is never addressed there.
    const generated = await send(
      [
        "From: Cy Dale <cy@example.org>",
        "To: unsubscribe@shop.example",
        "Subject: unsubscribe",
        "Auto-Submitted: auto-generated",
        "Precedence: bulk",
        "Message-ID: <unsub-4@mail.example>",
        "",
        "This message was automatically generated.",
        "",
      ].join("\r\n"),
    );
    expect(generated).toEqual({ status: "unsubscribed" });
    expect(
      await suppressions.isSuppressed("email", { address: "cy@example.org" }, "marketing"),
    ).toBe(true);
  });

  it("of other letters in its domain: written in ASCII in List-Unsubscribe (punycode), so the header is not MIME-encoded, and a mail to either form unsubscribes", async () => {
    const { p, raw } = await discountMailWith("unsubscribe-mailto-idn", "abmelden@bücher.example");
    const lines = raw.slice(0, raw.indexOf("\r\n\r\n")).split("\r\n");
    const start = lines.findIndex((line) => /^List-Unsubscribe:/i.test(line));
    const end = lines.findIndex((line, index) => index > start && !/^[ \t]/.test(line));
    const header = lines
      .slice(start, end)
      .join("\r\n")
      .replace(/\r\n[ \t]+/g, " ")
      .replace(/^List-Unsubscribe: /i, "");
    // Plain ASCII, not an encoded word (=?UTF-8?Q?…?=) a mail provider finds no link in.
    expect(header).not.toContain("=?");
    expect(/^[\x20-\x7e]*$/.test(header)).toBe(true);
    expect(header).toMatch(/^<https:\/\/followups\.test\/unsubscribe\/[^>]+>, <mailto:[^>]+>$/);
    const mailto = /<mailto:([^>]+)>/.exec(header)?.[1] ?? "";
    const url = new URL(`mailto:${mailto}`);
    expect(url.pathname).toBe("abmelden@xn--bcher-kva.example");
    const subject = url.searchParams.get("subject") ?? "";
    expect(subject).toMatch(/^unsubscribe /);

    const send = (body: string) => sendMail(p, body);
    const suppressions = new SuppressionList(p.redis, p.prefix);
    // A mail client's unsubscribe by the mailto (its token lost) and one typed by hand with the
    // domain in its letters (SMTPUTF8): both addressed to UNSUBSCRIBE_MAILTO.
    for (const [n, to, from] of [
      [1, url.pathname, "ana.idn@example.com"],
      [2, "Shop <abmelden@bücher.example>", "bo.idn@example.com"],
    ] as const) {
      const answer = await send(
        [
          `From: ${from}`,
          `To: ${to}`,
          "Subject: unsubscribe",
          `Message-ID: <unsub-idn-${n}@mail.example>`,
          "Content-Type: text/plain; charset=utf-8",
          "",
          "Please remove me.",
          "",
        ].join("\r\n"),
      );
      expect(answer).toEqual({ status: "unsubscribed" });
      expect(await suppressions.isSuppressed("email", { address: from }, "marketing")).toBe(true);
    }
  });
});

describe("an erasure that stops half-way through rewriting an opt-out", () => {
  it("keeps the customer opted out, and running it again finishes the rewrite", async () => {
    pipeline = await startPipeline("erase-rewrite", { startWorker: false });
    const p = pipeline;
    const customerId = "cus-opted-out-2025";
    const list = new SuppressionList(p.redis, p.prefix);
    const key = new StoreKeys(p.prefix).suppressions("email");
    // As versions before December 2026 stored an opt-out: the plain customer id.
    await p.redis.sadd(key, `c:${customerId}`);
    // The connection drops (a failover, a timeout) just as the keyed entry is written.
    const sadd = p.redis.sadd.bind(p.redis);
    let failed = false;
    Object.assign(p.redis, {
      sadd: (...args: Parameters<typeof sadd>) => {
        if (failed) return sadd(...args);
        failed = true;
        return Promise.reject(new Error("Connection is closed."));
      },
    });
    await expect(list.hashCustomerEntries(customerId)).rejects.toThrow(/Connection is closed/);
    expect(await list.isSuppressed("email", { customerId })).toBe(true);
    expect(await list.hashCustomerEntries(customerId)).toBe(1);
    expect(await list.isSuppressed("email", { customerId })).toBe(true);
    expect(await p.redis.smembers(key)).toEqual([await list.customerMember(customerId)]);
  });
});

describe("an erasure's opt-out rewrite that no replica confirmed (REDIS_WAIT_REPLICAS)", () => {
  it("is logged and counted by the worker whose admin API erased, as every short wait is", async () => {
    const token = "erase-wait-token-0123456789";
    // A Redis without a replica: every wait for one ends short. The admin API's connection
    // gives up on a command after 2 s: a longer REDIS_WAIT_TIMEOUT_MS must not make it give up.
    pipeline = await startPipeline("erase-wait", {
      redisUrl: await withoutReplica(),
      env: {
        REDIS_WAIT_REPLICAS: "1",
        REDIS_WAIT_TIMEOUT_MS: "3000",
        ADMIN_TOKENS: `alice:${token}`,
      },
    });
    const p = pipeline;
    const customerId = "cus-opted-out-wait";
    // As versions before December 2026 stored an opt-out: the plain id, which erasure rewrites
    // under the keyed hash (and waits for replicas before the plain one goes).
    await p.redis.sadd(new StoreKeys(p.prefix).suppressions("email"), `c:${customerId}`);
    const { short, counted } = shortWaits(p);
    const [logsBefore, countBefore] = [short().length, await counted()];
    const erased = await fetch(`${httpAddressOf(p)}/admin/v1/customers/${customerId}/erase`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
    });
    expect(erased.status).toBe(200);
    expect(await new SuppressionList(p.redis, p.prefix).isSuppressed("email", { customerId })).toBe(
      true,
    );
    const logged = await eventually(
      async () => (short().length > logsBefore ? short().slice(logsBefore) : undefined),
      "the short wait to be logged",
    );
    expect(logged[0]).toEqual(expect.objectContaining({ confirmed: 0, wanted: 1 }));
    expect(await counted()).toBeGreaterThan(countBefore);
  });
});

describe("an unsubscribe link while the replica does not acknowledge (REDIS_WAIT_REPLICAS)", () => {
  it("answers in time with the opt-out stored, the short wait logged and counted, also with REDIS_WAIT_TIMEOUT_MS=5000", {
    timeout: 60_000,
  }, async () => {
    // A master with one replica, synced; then the replica is stopped (SIGSTOP): connected, as
    // a lagging or frozen replica is, but acknowledging nothing.
    const master = await startRedisServer({ args: ["--repl-diskless-sync-delay", "0"] });
    const replica = await startRedisServer({
      args: ["--replicaof", "127.0.0.1", String(master.port)],
    });
    const replicaClient = new Redis(replica.url, { maxRetriesPerRequest: 1 });
    let stoppedPid: number | undefined;
    try {
      await eventually(
        async () =>
          /master_link_status:up/.test(await replicaClient.info("replication")) ? true : undefined,
        "the replica to sync",
        10_000,
      );
      const secret = "unsubscribe-secret-replica-wait";
      pipeline = await startPipeline("unsubscribe-wait", {
        redisUrl: master.url,
        cluster: false,
        env: {
          REDIS_WAIT_REPLICAS: "1",
          REDIS_WAIT_TIMEOUT_MS: "5000",
          UNSUBSCRIBE_SECRET: secret,
        },
      });
      const p = pipeline;
      stoppedPid = Number(/process_id:(\d+)/.exec(await replicaClient.info("server"))?.[1]);
      process.kill(stoppedPid, "SIGSTOP");
      const { short, counted } = shortWaits(p);
      const [logsBefore, countBefore] = [short().length, await counted()];

      const customerId = "cus-unsubscribe-wait";
      const hashed = customerHash(
        await sharedSecret(p.redis, p.prefix, "address-hash"),
        customerId,
      );
      const link = unsubscribeUrl("https://followups.test", secret, hashed, "email");
      const response = await fetch(`${httpAddressOf(p)}${new URL(link).pathname}`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: "List-Unsubscribe=One-Click",
      });
      // Not the "try again later" page (503) after the opt-out was written.
      expect(response.status).toBe(200);
      expect(
        await new SuppressionList(p.redis, p.prefix).isSuppressed(
          "email",
          { customerId },
          "marketing",
        ),
      ).toBe(true);
      const logged = await eventually(
        async () => (short().length > logsBefore ? short().slice(logsBefore) : undefined),
        "the short wait to be logged",
      );
      expect(logged[0]).toEqual(expect.objectContaining({ confirmed: 0, wanted: 1 }));
      expect(await counted()).toBeGreaterThan(countBefore);
    } finally {
      if (stoppedPid) process.kill(stoppedPid, "SIGCONT");
      await pipeline?.close();
      pipeline = undefined;
      replicaClient.disconnect();
      await replica.stop();
      await master.stop();
    }
  });
});

describe("followups erase, with REDIS_WAIT_REPLICAS and no replica confirming", () => {
  it("warns that the rewritten opt-out stands on the master alone", async () => {
    pipeline = await startPipeline("erase-wait-cli", {
      redisUrl: await withoutReplica(),
      startWorker: false,
    });
    const p = pipeline;
    const customerId = "cus-opted-out-cli";
    await p.redis.sadd(new StoreKeys(p.prefix).suppressions("email"), `c:${customerId}`);
    const vars = { ...p.commandEnv, REDIS_WAIT_REPLICAS: "1", REDIS_WAIT_TIMEOUT_MS: "100" };
    const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]));
    Object.assign(process.env, vars);
    try {
      const io = captureIo();
      expect(await runErase(customerId, { config: p.configDir, json: true }, io)).toBe(0);
      expect(io.errors()).toBe(
        "warning: 0 of 1 replicas (REDIS_WAIT_REPLICAS) confirmed an opt-out rewritten under its keyed hash within REDIS_WAIT_TIMEOUT_MS: it stands on the master alone until a replica has it\n",
      );
    } finally {
      for (const [name, value] of Object.entries(saved))
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
    }
    expect(await new SuppressionList(p.redis, p.prefix).isSuppressed("email", { customerId })).toBe(
      true,
    );
  });
});
