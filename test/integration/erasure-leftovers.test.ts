import { mkdtemp, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { runErase } from "../../src/cli/erase-command.js";
import { SPOOL_FAILED_DIR, spoolEntry, WebhookSpool } from "../../src/http/webhook-spool.js";
import type { ErasureReceipt } from "../../src/operations/erase-customer.js";
import { DiscountCodes } from "../../src/store/discount-codes.js";
import { StoreKeys, shardScope } from "../../src/store/keys.js";
import { OrderStore } from "../../src/store/order-store.js";
import { SmsReferences } from "../../src/store/sms-references.js";
import { SuppressionList } from "../../src/store/suppression-list.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventually,
  type PipelineHarness,
  sendOwnerReport,
  startPipeline,
} from "../support/pipeline-harness.js";
import { withAccessoryCodes, withOwners } from "../support/rules-config.js";
import { postTwilio } from "../support/webhooks.js";

/**
 * What outlives a purchase's event record (RECORD_RETENTION_DAYS after its last step) must still
 * be found by an erasure of its customer, or must not outlive the record. A record's expiry is
 * simulated by deleting its key: the customer's history still lists the purchase (the latest 100
 * are listed after their records end), which is what an erasure has to go on then.
 */

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

async function erase(p: PipelineHarness, customerId: string): Promise<ErasureReceipt> {
  Object.assign(process.env, p.commandEnv);
  const io = captureIo();
  expect(await runErase(customerId, { config: p.configDir, json: true }, io)).toBe(0);
  return JSON.parse(io.output()) as ErasureReceipt;
}

/** The shard keys of an event's record, as the worker wrote them. */
async function shardKeysOf(p: PipelineHarness, eventId: string): Promise<StoreKeys> {
  return new StoreKeys(shardScope(p.prefix, await p.shardOf(eventId), p.shards));
}

async function untilSent(p: PipelineHarness, eventId: string, stepId: string): Promise<void> {
  await eventually(async () => {
    const record = (await p.store.stepRecords(eventId, [stepId])).get(stepId);
    return record?.state === "sent" ? true : undefined;
  }, `${eventId}/${stepId} to be sent`);
}

/** A TV bought three months ago by `cus-lo-<name>` (`evt-lo-<name>`): its check-in SMS is due now. */
async function publishTv(p: PipelineHarness, name: string, phone: string): Promise<void> {
  const occurredAt = DateTime.utc().startOf("second").setZone("Europe/London").minus({ months: 3 });
  await p.publisher.publish(
    purchaseInput({
      id: `evt-lo-${name}`,
      orderId: `ord-lo-${name}`,
      occurredAt: occurredAt.toUTC().toISO({ suppressMilliseconds: true }) ?? "",
      customer: { id: `cus-lo-${name}`, phone, name: "Rhea Lane" },
      items: [item("televisions", "899.00")],
    }) as never,
  );
}

/**
 * A pipeline in which `cus-lo-<name>`'s TV check-in SMS (publishTv) has gone to `phone` and is on
 * file as the number's latest; with the number's member (its keyed hash).
 */
async function checkedIn(
  label: string,
  name: string,
  phone: string,
): Promise<{ p: PipelineHarness; member: string }> {
  pipeline = await startPipeline(label);
  const p = pipeline;
  await publishTv(p, name, phone);
  await untilSent(p, `evt-lo-${name}`, "big-ticket.check-in");
  const references = new SmsReferences(p.redis, p.prefix);
  const member = await new SuppressionList(p.redis, p.prefix).addressMember(phone);
  await eventually(async () => references.latestCheckIn(member), "the check-in to be on file");
  return { p, member };
}

describe("erasure after a purchase's record has expired", () => {
  it("takes the purchase's replies out of the owners' reply index (kept 400 days)", async () => {
    const phone = "+447400123987";
    const { p } = await checkedIn("erase-leftover-replies", "reply", phone);
    const reply = await postTwilio(p, "/webhooks/twilio/inbound", {
      From: phone,
      Body: "The remote is broken, 3/10",
      MessageSid: "SMleftover1",
    });
    expect(reply.status).toBe(200);
    const index = new StoreKeys(p.prefix).replies();
    const indexed = async () =>
      (await p.redis.zrange(index, "0", "-1")).filter((ref) => ref.startsWith("evt-lo-reply\n"));
    await eventually(
      async () => ((await indexed()).length === 1 ? true : undefined),
      "the reply to be indexed",
    );

    const keys = await shardKeysOf(p, "evt-lo-reply");
    expect(await p.redis.del(keys.eventRecord("evt-lo-reply"))).toBe(1);
    const receipt = await erase(p, "cus-lo-reply");
    expect(receipt.purchases).toBe(1);
    expect(await indexed()).toEqual([]);
  });

  it("revokes a discount code whose purchase's record has gone", async () => {
    pipeline = await startPipeline("erase-leftover-codes", { startWorker: false });
    const p = pipeline;
    // The accessories rule issues KIT codes, valid for 7 days.
    await withAccessoryCodes(p.configDir);
    await p.startWorker();
    // A laptop bought 14 days ago to the minute: its accessories discount is due now.
    const occurredAt = DateTime.now().setZone("Europe/London").minus({ days: 14 }).toUTC();
    await p.publisher.publish(
      purchaseInput({
        id: "evt-lo-code",
        orderId: "ord-lo-code",
        occurredAt: occurredAt.toISO({ suppressMilliseconds: true }) ?? "",
        customer: { id: "cus-lo-code", email: "cus-lo-code@example.com" },
        items: [item("laptops", "450.00", { name: "Aero 14 laptop" })],
      }) as never,
    );
    const [email] = await p.sink.waitForMessages(1, 15_000);
    const code = /\bKIT(?:-[0-9A-Z]{4}){3}\b/.exec(email?.parsed.text ?? "")?.[0] ?? "";
    expect(code).not.toBe("");
    await untilSent(p, "evt-lo-code", "accessories.discount");
    const codes = new DiscountCodes(p.redis, p.prefix);
    expect(await codes.lookup(code, Date.now())).toMatchObject({ status: "valid" });

    const keys = await shardKeysOf(p, "evt-lo-code");
    expect(await p.redis.del(keys.eventRecord("evt-lo-code"))).toBe(1);
    const receipt = await erase(p, "cus-lo-code");
    expect(receipt.codesRevoked).toBe(1);
    expect(await codes.lookup(code, Date.now())).toMatchObject({ status: "revoked" });
    expect(await codes.origin(code)).toBeUndefined();
  });

  it("removes the order's link and refunds (kept 400 days) through the customer's history", async () => {
    pipeline = await startPipeline("erase-leftover-order");
    const p = pipeline;
    // A purchase made just now: its steps are planned, so its order is linked.
    await p.publisher.publish(
      purchaseInput({
        id: "evt-lo-order",
        orderId: "ord-lo-order",
        occurredAt: DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "",
        customer: { id: "cus-lo-order", email: "cus-lo-order@example.com" },
        items: [item("televisions", "899.00")],
      }) as never,
    );
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ref-lo-order",
      occurredAt: DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "",
      orderId: "ord-lo-order",
      amount: { amount: "100.00", currency: "GBP" },
    } as never);
    const orders = new OrderStore(p.redis, p.prefix);
    await eventually(async () => {
      const order = await orders.get("ord-lo-order");
      return order.eventIds.length === 1 && order.recorded.length === 1 ? true : undefined;
    }, "the order to be linked and refunded");

    const keys = await shardKeysOf(p, "evt-lo-order");
    expect(await p.redis.del(keys.eventRecord("evt-lo-order"))).toBe(1);
    const receipt = await erase(p, "cus-lo-order");
    expect(receipt.purchases).toBe(1);
    const order = await orders.get("ord-lo-order");
    expect(order.eventIds).toEqual([]);
    expect(order.recorded).toEqual([]);
    expect(await p.redis.exists(new StoreKeys(p.prefix).order("ord-lo-order"))).toBe(0);
  });

  it("removes the number's latest check-in and its texted mark without being told the number", async () => {
    const { p, member } = await checkedIn("erase-leftover-number", "number", "+447400123989");
    const global = new StoreKeys(p.prefix);
    expect(await p.redis.exists(global.textedNumber(member))).toBe(1);

    const keys = await shardKeysOf(p, "evt-lo-number");
    expect(await p.redis.del(keys.eventRecord("evt-lo-number"))).toBe(1);
    const receipt = await erase(p, "cus-lo-number");
    expect(receipt.purchases).toBe(1);
    expect(await p.redis.exists(global.latestCheckIn(member))).toBe(0);
    expect(await p.redis.exists(global.textedNumber(member))).toBe(0);
  });

  it("removes the spool's failed webhooks from the customer's number, not opt-outs nor waiting ones", async () => {
    const phone = "+447400123990";
    const { p } = await checkedIn("erase-leftover-spool", "spool", phone);
    // The spool of the machine the command runs on (not the test worker's, which would replay
    // the waiting file).
    const dir = await mkdtemp(path.join(tmpdir(), "erase-spool-"));
    const spool = new WebhookSpool(dir);
    const sms = (from: string, body: string, messageSid: string) =>
      spool.add(spoolEntry("message", { from, body, messageSid }, Date.now()));
    const reply = await sms(phone, "The remote is broken, 3/10", "SMspool1");
    const other = await sms("+447400123991", "Lovely, 9/10", "SMspool2");
    // Kept: moved back into the spool, it still opts the number out.
    const stop = await sms(phone, "STOP", "SMspool4");
    for (const name of [reply, other, stop]) if (name) await spool.moveAside(name);
    // Not yet handled: it may be a STOP, which must still opt the number out.
    const waiting = await sms(phone, "STOP", "SMspool3");

    const keys = await shardKeysOf(p, "evt-lo-spool");
    expect(await p.redis.del(keys.eventRecord("evt-lo-spool"))).toBe(1);
    process.env.WEBHOOK_SPOOL_DIR = dir;
    try {
      const receipt = await erase(p, "cus-lo-spool");
      expect(receipt.spoolFilesRemoved).toBe(1);
    } finally {
      delete process.env.WEBHOOK_SPOOL_DIR;
    }
    expect((await readdir(path.join(dir, SPOOL_FAILED_DIR))).sort()).toEqual([other, stop].sort());
    expect(await spool.list()).toEqual([waiting]);
  });

  it("removes an owner's report in the outbox that lists one of the purchase's replies", async () => {
    // No SMTP: the owners' reports are files in OUTBOX_DIR.
    pipeline = await startPipeline("erase-leftover-report", { startWorker: false, smtp: false });
    const p = pipeline;
    const owner = { name: "Maria", email: "maria@shop.example", timezone: "Europe/London" };
    await withOwners(p.configDir, [{ ...owner, frequency: "daily" }]);
    await p.startWorker();
    const phone = "+447400123992";
    await publishTv(p, "report", phone);
    await untilSent(p, "evt-lo-report", "big-ticket.check-in");
    const reply = await postTwilio(p, "/webhooks/twilio/inbound", {
      From: phone,
      Body: "The sound crackles, 2/10",
      MessageSid: "SMleftover-report",
    });
    expect(reply.status).toBe(200);
    await sendOwnerReport(p, owner, DateTime.now().setZone(owner.timezone).startOf("day"));
    const reports = async () =>
      (await readdir(p.outboxDir)).filter((name) => name.startsWith("report-"));
    expect(await reports()).toHaveLength(1);

    const keys = await shardKeysOf(p, "evt-lo-report");
    expect(await p.redis.del(keys.eventRecord("evt-lo-report"))).toBe(1);
    process.env.OUTBOX_DIR = p.outboxDir;
    try {
      const receipt = await erase(p, "cus-lo-report");
      expect(receipt.outboxFilesRemoved).toBe(1);
    } finally {
      delete process.env.OUTBOX_DIR;
    }
    expect(await reports()).toEqual([]);
  });

  it("keeps an SMS's reference no longer than its purchase's record (RECORD_RETENTION_DAYS of 1)", async () => {
    pipeline = await startPipeline("erase-leftover-sid", { env: { RECORD_RETENTION_DAYS: "1" } });
    const p = pipeline;
    await publishTv(p, "sid", "+447400123988");
    await untilSent(p, "evt-lo-sid", "big-ticket.check-in");
    const keys = await shardKeysOf(p, "evt-lo-sid");
    const sid = (await p.store.stepRecords("evt-lo-sid", ["big-ticket.check-in"])).get(
      "big-ticket.check-in",
    )?.providerId;
    expect(sid).toBeDefined();
    const reference = new StoreKeys(p.prefix).smsMessage(sid ?? "");
    const referenceEnds = await eventually(async () => {
      const at = await p.redis.pexpiretime(reference);
      return at > 0 ? at : undefined;
    }, "the SMS's reference to be kept");
    const recordEnds = await p.redis.pexpiretime(keys.eventRecord("evt-lo-sid"));
    expect(recordEnds).toBeGreaterThan(Date.now());
    expect(referenceEnds).toBeLessThanOrEqual(recordEnds);
  });
});
