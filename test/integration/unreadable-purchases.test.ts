import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { OperatorError } from "../../src/operations/operator-tools.js";
import { previewStep } from "../../src/operations/preview-step.js";
import { followUpJobId } from "../../src/queue/names.js";
import { StoreKeys, shardScope } from "../../src/store/keys.js";
import { OrderStore } from "../../src/store/order-store.js";
import { SmsReferences } from "../../src/store/sms-references.js";
import { SuppressionList } from "../../src/store/suppression-list.js";
import type { ComposeMessage } from "../../src/templates/compose-message.js";
import { item, purchaseInput, shippedRules } from "../support/fixtures.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  promoteStep,
  recentLedgerCounts,
  startPipeline,
  stepRecordOf,
  waitForState,
} from "../support/pipeline-harness.js";
import { postTwilio } from "../support/webhooks.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const iso = (time: DateTime) => time.toISO({ suppressMilliseconds: true }) ?? "";

/** A big-ticket purchase of a customer of its own: a thank-you in an hour, a check-in later. */
const bought = (id: string, name: string, orderId = `ord-${id}`) =>
  purchaseInput({
    id,
    orderId,
    occurredAt: iso(DateTime.utc().minus({ minutes: 5 })),
    customer: { id: `cus-${id}`, email: `${id}@example.com`, name },
    items: [item("televisions", "899.00", { name: "OLED TV" })],
  });

/** The record's stored purchase field, and a way to put other bytes there. */
async function storedPurchaseField(p: PipelineHarness, eventId: string) {
  const keys = new StoreKeys(shardScope(p.prefix, await p.shardOf(eventId), p.shards));
  const key = keys.eventRecord(eventId);
  const original = await p.redis.hgetBuffer(key, "p0");
  if (!original) throw new Error(`${eventId} has no stored purchase in its record`);
  return {
    original,
    write: async (bytes: Buffer) => {
      await p.redis.hset(key, "p0", bytes);
    },
  };
}

describe("a step of a purchase whose stored purchase cannot be read", () => {
  it("is tried again with backoff, a bounded number of times, then failed as unreadable; never sent, the decoder's message never logged", async () => {
    pipeline = await startPipeline("unreadable-delivery", {
      env: {
        DELIVERY_ATTEMPTS: "3",
        DELIVERY_RETRY_BASE_MS: "1000",
        DELIVERY_RETRY_MAX_MS: "2000",
      },
    });
    const p = pipeline;
    const thankYou = "big-ticket.thank-you";
    await p.publisher.publish(bought("evt-damaged", "Una Read") as never);
    await p.publisher.publish(bought("evt-newer", "Nia Wer") as never);
    await waitForState(p, "evt-damaged", "big-ticket.check-in", "scheduled");
    await waitForState(p, "evt-newer", "big-ticket.check-in", "scheduled");
    // Damaged bytes whose JSON error quotes the customer's name; and a format this version does
    // not know, as a newer version's during a rolling deploy.
    const damaged = await storedPurchaseField(p, "evt-damaged");
    await damaged.write(Buffer.from('{"customer":{"name":Una Read}}'));
    const newer = await storedPurchaseField(p, "evt-newer");
    await newer.write(Buffer.from([0x7f, 0xde, 0xad]));

    // A worker that can read it (here: the bytes readable again) sends it on a later attempt.
    await promoteStep(p, "evt-newer", thankYou);
    await eventually(async () => {
      const record = await stepRecordOf(p, "evt-newer", thankYou);
      return record?.state === "scheduled" && (record.attempts ?? 0) >= 1 ? record : undefined;
    }, "the first attempt at evt-newer's thank-you");
    expect(p.sink.messages).toHaveLength(0);
    await newer.write(newer.original);
    await waitForState(p, "evt-newer", thankYou, "sent");
    expect(p.sink.messages.map((m) => m.envelope.rcptTo)).toEqual([["evt-newer@example.com"]]);

    // One that stays unreadable: tried DELIVERY_ATTEMPTS times, then failed with the reason.
    await promoteStep(p, "evt-damaged", thankYou);
    const failed = await eventually(
      async () => {
        const record = await stepRecordOf(p, "evt-damaged", thankYou);
        return record?.state === "failed" ? record : undefined;
      },
      "evt-damaged's thank-you to fail",
      15_000,
    );
    expect(failed).toMatchObject({ attempts: 3, reason: { code: "unreadable-purchase" } });
    expect(failed.reason?.text).toMatch(/gave up after 3 attempts.*cannot be read/);
    const job = await p.followUps.getJob(followUpJobId("evt-damaged", thankYou));
    expect(await job?.getState()).toBe("failed");
    // Counted as a failure, once; nothing reached the customer.
    expect(await recentLedgerCounts(p, "unreadable-purchase")).toEqual([
      ["reason|failed|email|thank-you|unreadable-purchase", 1],
    ]);
    expect(p.sink.messages).toHaveLength(1);
    // Each attempt logged by event id and the error's name; the decoder's message, which quotes
    // the stored bytes, nowhere.
    const lines = p.logs.map((line) => JSON.stringify(line));
    expect(lines.filter((line) => line.includes("Una Read"))).toEqual([]);
    const tries = p.logs.filter(
      (line) => line.eventId === "evt-damaged" && line.error === "SyntaxError",
    );
    expect(tries).toHaveLength(3);
    // Its other step is left as planned.
    expect((await stepRecordOf(p, "evt-damaged", "big-ticket.check-in"))?.state).toBe("scheduled");
  });
});

describe("a refund of an order with a purchase whose stored purchase cannot be read", () => {
  const steps = ["big-ticket.thank-you", "big-ticket.check-in"];
  const states = async (p: PipelineHarness, eventId: string) =>
    Promise.all(steps.map(async (stepId) => (await stepRecordOf(p, eventId, stepId))?.state));

  it("cancels that purchase's pending steps when full; when partial, is recorded and applied to the order's other purchases, that one's steps left", async () => {
    pipeline = await startPipeline("unreadable-refund");
    const p = pipeline;
    for (const [id, order] of [
      ["evt-full-ok", "ord-full"],
      ["evt-full-bad", "ord-full"],
      ["evt-part-ok", "ord-part"],
      ["evt-part-bad", "ord-part"],
    ] as const) {
      await p.publisher.publish(bought(id, "Una Read", order) as never);
      await waitForState(p, id, "big-ticket.check-in", "scheduled");
    }
    for (const id of ["evt-full-bad", "evt-part-bad"])
      await (await storedPurchaseField(p, id)).write(Buffer.from('{"customer":{"name":Una Read}}'));
    const refund = (id: string, orderId: string, amount?: string) =>
      p.publisher.publish({
        type: "purchase.refunded",
        id,
        occurredAt: iso(DateTime.utc().startOf("second")),
        orderId,
        ...(amount && { amount: { amount, currency: "GBP" } }),
      } as never);

    // A full refund needs nothing of the purchase: every pending step of both is cancelled.
    await refund("ref-full", "ord-full");
    expect(await eventProcessed(p, "ref-full")).toBe("completed");
    expect(await states(p, "evt-full-ok")).toEqual(["cancelled", "cancelled"]);
    expect(await states(p, "evt-full-bad")).toEqual(["cancelled", "cancelled"]);
    expect(await stepRecordOf(p, "evt-full-bad", "big-ticket.check-in")).toMatchObject({
      reason: { code: "refunded", text: "order ord-full fully refunded" },
    });
    expect(await recentLedgerCounts(p, "reason|cancelled|")).toEqual([
      ["reason|cancelled|email|thank-you|refunded", 2],
      ["reason|cancelled|sms|check-in|refunded", 2],
    ]);

    // A partial one (here all of evt-part-ok's value) is recorded and applied to the purchase it
    // can read; the unreadable one's steps stay as planned, said by event id and error name.
    await refund("ref-part", "ord-part", "899.00");
    expect(await eventProcessed(p, "ref-part")).toBe("completed");
    const order = await new OrderStore(p.redis, p.prefix).get("ord-part");
    expect(order.recorded.map((recorded) => recorded.refundId)).toEqual(["ref-part"]);
    expect(await states(p, "evt-part-ok")).toEqual(["cancelled", "cancelled"]);
    expect(await states(p, "evt-part-bad")).toEqual(["scheduled", "scheduled"]);
    expect(
      p.logs.filter((line) => line.eventId === "evt-part-bad" && line.error === "SyntaxError"),
    ).toHaveLength(1);
    expect(
      p.logs.map((line) => JSON.stringify(line)).filter((line) => line.includes("Una Read")),
    ).toEqual([]);
  });
});

describe("an opt-out by event of a customer with a purchase whose stored purchase cannot be read", () => {
  it("is applied to the customer instead of failing; that purchase gives no address to it", async () => {
    pipeline = await startPipeline("unreadable-unsubscribe");
    const p = pipeline;
    await p.publisher.publish(bought("evt-off-bad", "Una Read", "ord-off-1") as never);
    await waitForState(p, "evt-off-bad", "big-ticket.check-in", "scheduled");
    await (await storedPurchaseField(p, "evt-off-bad")).write(
      Buffer.from('{"customer":{"name":Una Read}}'),
    );
    await p.publisher.publish({
      type: "customer.unsubscribed",
      id: "unsub-off",
      occurredAt: iso(DateTime.utc().startOf("second")),
      customerId: "cus-evt-off-bad",
      channels: "all",
    } as never);
    expect(await eventProcessed(p, "unsub-off")).toBe("completed");
    const suppressions = new SuppressionList(p.redis, p.prefix);
    expect(await suppressions.isSuppressed("email", { customerId: "cus-evt-off-bad" })).toBe(true);
    expect(await suppressions.isSuppressed("sms", { customerId: "cus-evt-off-bad" })).toBe(true);
  });
});

describe("a coalesced thank-you one of whose joined purchases cannot be read", () => {
  const shirt = (id: string, minutesAgo: number) =>
    purchaseInput({
      id,
      orderId: `ord-${id}`,
      occurredAt: iso(DateTime.utc().minus({ minutes: minutesAgo }).startOf("second")),
      customer: { id: "cus-shirts", name: "Una Read" },
      items: [item("clothing", "60.00", { name: `Shirt ${id}` })],
    });
  const thankYou = "thank-you.thank-you";

  it("goes out at once for the purchases it can read, that one left out and logged by error name; that one's own thank-you is not skipped as thanked for", async () => {
    pipeline = await startPipeline("unreadable-coalesced");
    const p = pipeline;
    for (const [id, ago] of [
      ["co-lead", 30],
      ["co-ok", 20],
      ["co-bad", 10],
    ] as const) {
      await p.publisher.publish(shirt(id, ago) as never);
      expect(await eventProcessed(p, id)).toBe("completed");
    }
    const bad = await storedPurchaseField(p, "co-bad");
    await bad.write(Buffer.from('{"customer":{"name":Una Read}}'));

    await promoteStep(p, "co-lead", thankYou);
    const [mail] = await p.sink.waitForMessages(1);
    const text = mail?.parsed.text ?? "";
    expect(text).toContain("Order ord-co-lead");
    expect(text).toContain("Order ord-co-ok");
    expect(text).not.toContain("ord-co-bad");
    await waitForState(p, "co-lead", thankYou, "sent");
    expect((await stepRecordOf(p, "co-lead", thankYou))?.attempts).toBe(1);
    const leftOut = p.logs.filter(
      (line) => line.eventId === "co-lead" && JSON.stringify(line).includes("SyntaxError"),
    );
    expect(leftOut).toHaveLength(1);
    expect(leftOut[0]).toMatchObject({ leftOut: ["co-bad"], errors: ["SyntaxError"] });
    expect(
      p.logs.map((line) => JSON.stringify(line)).filter((line) => line.includes("Una Read")),
    ).toEqual([]);

    // The readable joined purchase was thanked for: its own thank-you is skipped as before.
    await promoteStep(p, "co-ok", thankYou);
    await waitForState(p, "co-ok", thankYou, "skipped");
    // The one left out was not: once a worker can read it, its own thank-you goes.
    await bad.write(bad.original);
    await promoteStep(p, "co-bad", thankYou);
    await waitForState(p, "co-bad", thankYou, "sent");
    const mails = await p.sink.waitForMessages(2);
    expect(mails[1]?.parsed.text ?? "").toContain("Shirt co-bad");
  });
});

describe("a coalesced thank-you one of whose joined purchases is not stored yet", () => {
  it("goes out without it, and that one keeps a thank-you of its own (its intake stored it later)", async () => {
    pipeline = await startPipeline("absent-coalesced");
    const p = pipeline;
    const thankYou = "thank-you.thank-you";
    const shirt = (id: string, minutesAgo: number) =>
      purchaseInput({
        id,
        orderId: `ord-${id}`,
        occurredAt: iso(DateTime.utc().minus({ minutes: minutesAgo }).startOf("second")),
        customer: { id: "cus-later" },
        items: [item("clothing", "60.00", { name: `Shirt ${id}` })],
      });
    for (const [id, ago] of [
      ["ab-lead", 20],
      ["ab-late", 10],
    ] as const) {
      await p.publisher.publish(shirt(id, ago) as never);
      expect(await eventProcessed(p, id)).toBe("completed");
    }
    // As between intake filing the purchase in the group and storing it (a retry under way): its
    // record holds the filing and no purchase.
    const keys = new StoreKeys(shardScope(p.prefix, await p.shardOf("ab-late"), p.shards));
    const record = keys.eventRecord("ab-late");
    const fields = await p.redis.hgetallBuffer(record);
    const chunks = Object.keys(fields).filter((field) => /^p\d+$/.test(field));
    await p.redis.hdel(record, ...chunks);

    await promoteStep(p, "ab-lead", thankYou);
    const [mail] = await p.sink.waitForMessages(1);
    expect(mail?.parsed.text ?? "").not.toContain("ord-ab-late");
    await waitForState(p, "ab-lead", thankYou, "sent");

    // Stored after all: its own thank-you goes, not skipped as thanked for in the leader's.
    for (const field of chunks) await p.redis.hset(record, field, fields[field] ?? "");
    await promoteStep(p, "ab-late", thankYou);
    await waitForState(p, "ab-late", thankYou, "sent");
    const mails = await p.sink.waitForMessages(2);
    expect(mails[1]?.parsed.text ?? "").toContain("Shirt ab-late");
  });
});

describe("an opt-out in words after a check-in whose purchase cannot be read", () => {
  it("is confirmed by text all the same, in the shop's language; the decoder's message never logged", async () => {
    pipeline = await startPipeline("unreadable-optout-confirmation");
    const p = pipeline;
    const phone = "+447400765999";
    await p.publisher.publish(
      purchaseInput({
        id: "evt-stop-bad",
        orderId: "ord-stop-bad",
        occurredAt: iso(DateTime.utc().minus({ minutes: 5 }).startOf("second")),
        customer: { id: "cus-stop-bad", phone, name: "Una Read" },
        items: [item("televisions", "899.00", { name: "OLED TV" })],
      }) as never,
    );
    await waitForState(p, "evt-stop-bad", "big-ticket.check-in", "scheduled");
    // The number's latest check-in, as its send remembers it (opt-outs read its purchase's language).
    const member = await new SuppressionList(p.redis, p.prefix).addressMember(phone);
    await new SmsReferences(p.redis, p.prefix).rememberSms(
      "SMcheckin",
      member,
      {
        eventId: "evt-stop-bad",
        stepId: "big-ticket.check-in",
        shard: await p.shardOf("evt-stop-bad"),
        kind: "check-in",
      },
      86_400_000,
    );
    await (await storedPurchaseField(p, "evt-stop-bad")).write(
      Buffer.from('{"customer":{"name":Una Read}}'),
    );
    const answer = await postTwilio(p, "/webhooks/twilio/inbound", {
      From: phone,
      Body: "Please stop texting me",
      MessageSid: "SMstopbad",
    });
    expect(answer.status).toBe(200);
    const [confirmation] = await p.twilio.waitForMessages(1);
    expect(confirmation).toMatchObject({
      to: phone,
      body: "You will get no more messages from Your shop.",
    });
    expect(
      await new SuppressionList(p.redis, p.prefix).isSuppressed("sms", { address: phone }),
    ).toBe(true);
    expect(
      p.logs.filter((line) => line.eventId === "evt-stop-bad" && line.error === "SyntaxError"),
    ).toHaveLength(1);
    expect(
      p.logs.map((line) => JSON.stringify(line)).filter((line) => line.includes("Una Read")),
    ).toEqual([]);
  });
});

describe("a preview of a step whose purchase cannot be read", () => {
  it("says that it cannot be read, by the decoder's error name (a conflict, 409 in the console), instead of failing with its message", async () => {
    pipeline = await startPipeline("unreadable-preview");
    const p = pipeline;
    await p.publisher.publish(bought("evt-preview-bad", "Una Read") as never);
    await waitForState(p, "evt-preview-bad", "big-ticket.check-in", "scheduled");
    await (await storedPurchaseField(p, "evt-preview-bad")).write(
      Buffer.from('{"customer":{"name":Una Read}}'),
    );
    const rules = await shippedRules();
    const compose = (async () => {
      throw new Error("nothing to render");
    }) as ComposeMessage;
    const failed = await previewStep(
      { shards: p.stores, rules: () => rules, compose, orders: new OrderStore(p.redis, p.prefix) },
      "evt-preview-bad/big-ticket.thank-you",
    ).catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(OperatorError);
    expect(failed).toMatchObject({
      kind: "conflict",
      message:
        "evt-preview-bad/big-ticket.thank-you: its purchase's stored details cannot be read (SyntaxError)",
    });
  });
});
