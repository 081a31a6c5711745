import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { DateTime } from "luxon";
import { simpleParser } from "mailparser";
import { afterEach, describe, expect, it } from "vitest";
import { runCancel } from "../../src/cli/cancel-command.js";
import { runErase } from "../../src/cli/erase-command.js";
import type { CommandIo } from "../../src/cli/io.js";
import type { ErasureReceipt } from "../../src/operations/erase-customer.js";
import { StoreKeys } from "../../src/store/keys.js";
import { SmsReferences } from "../../src/store/sms-references.js";
import { SuppressionList } from "../../src/store/suppression-list.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchaseInput } from "../support/fixtures.js";
import { keysHolding } from "../support/personal-data-scan.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  sendOwnerReport,
  startPipeline,
} from "../support/pipeline-harness.js";
import { withOwners } from "../support/rules-config.js";
import { postTwilio } from "../support/webhooks.js";

/**
 * What an erasure must not leave behind, found by an adversarial review of personal data: each
 * test puts a customer's data where the worker keeps it, erases the customer, and looks for it.
 */

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

async function command(p: PipelineHarness, run: (io: CommandIo) => Promise<number>) {
  Object.assign(process.env, p.commandEnv);
  const io = captureIo();
  const code = await run(io);
  return { code, out: io.output() };
}

async function erase(p: PipelineHarness, customerId: string): Promise<ErasureReceipt> {
  const { code, out } = await command(p, (io) =>
    runErase(customerId, { config: p.configDir, json: true, by: "dpo" }, io),
  );
  expect(code).toBe(0);
  return JSON.parse(out) as ErasureReceipt;
}

const iso = (time: DateTime) => time.toISO({ suppressMilliseconds: true }) ?? "";

async function untilScheduled(p: PipelineHarness, eventId: string, stepId: string) {
  return eventually(async () => {
    const record = (await p.store.stepRecords(eventId, [stepId])).get(stepId);
    return record?.state === "scheduled" ? record : undefined;
  }, `${eventId}/${stepId} to be scheduled`);
}

describe("erasure leaves nothing an operator wrote about the customer", () => {
  it("drops the note of a cancel asked while the step was being sent", async () => {
    pipeline = await startPipeline("erase-review-cx");
    const p = pipeline;
    await p.publisher.publish(
      purchaseInput({
        id: "evt-rv-cx",
        orderId: "ord-rv-cx",
        occurredAt: iso(DateTime.utc().startOf("second")),
        customer: { id: "cus-rv-cx", name: "Nadia Ferreira" },
        items: [item("televisions", "899.00")],
      }) as never,
    );
    const stepId = "big-ticket.check-in";
    const planned = await untilScheduled(p, "evt-rv-cx", stepId);
    // A live sender holds the step; the operator's cancel is noted for its next claim.
    expect(
      (await p.store.claim("evt-rv-cx", stepId, Date.now(), 60_000, { dueAt: planned.dueAt }))
        .claimed,
    ).toBe(true);
    const note = "Nadia rang from the Leith Walk flat, furious";
    await expect(
      command(p, (io) =>
        runCancel(
          { config: p.configDir, json: true, step: `evt-rv-cx/${stepId}`, reason: note },
          io,
        ),
      ),
    ).rejects.toMatchObject({ code: 1 });
    expect(await keysHolding(p.redis, p.prefix, ["Leith Walk"])).not.toEqual([]);

    const receipt = await erase(p, "cus-rv-cx");
    expect(receipt).toMatchObject({ purchases: 1, stepsInFlight: 1 });
    expect(await keysHolding(p.redis, p.prefix, ["Leith Walk", "Nadia", "cus-rv-cx"])).toEqual([]);
  });
});

describe("erasure leaves no reversible hash of the customer's addresses", () => {
  it("replaces an opt-out stored by an unkeyed hash of their number (before December 2026) by its keyed hash", async () => {
    pipeline = await startPipeline("erase-review-legacy-optout");
    const p = pipeline;
    const phone = "+447400900456";
    const email = "tomasz.r@example.com";
    // Versions before December 2026 filed an opt-out under the number's plain SHA-256.
    const legacy = (address: string) =>
      `a:${createHash("sha256").update(address).digest("base64url").slice(0, 22)}`;
    const keys = new StoreKeys(p.prefix);
    await p.redis.sadd(keys.suppressions("sms"), legacy(phone));
    await p.redis.sadd(keys.marketingSuppressions("email"), legacy(email));
    const suppressions = new SuppressionList(p.redis, p.prefix);
    expect(await suppressions.isSuppressed("sms", { address: phone })).toBe(true);
    await p.publisher.publish(
      purchaseInput({
        id: "evt-rv-legacy",
        orderId: "ord-rv-legacy",
        occurredAt: iso(DateTime.utc().startOf("second")),
        customer: { id: "cus-rv-legacy", phone, email, name: "Tomasz Rybak" },
        items: [item("televisions", "899.00")],
      }) as never,
    );
    expect(await eventProcessed(p, "evt-rv-legacy")).toBe("completed");

    await erase(p, "cus-rv-legacy");
    const lists = await Promise.all(
      [keys.suppressions("sms"), keys.marketingSuppressions("email")].map((key) =>
        p.redis.smembers(key),
      ),
    );
    // Anyone can hash every number of a country: a plain hash of one is the number.
    expect(lists.flat()).not.toContain(legacy(phone));
    expect(lists.flat()).not.toContain(legacy(email));
    // Still opted out, by keyed hash.
    expect(await suppressions.isSuppressed("sms", { address: phone })).toBe(true);
    expect(await suppressions.isSuppressed("email", { address: email }, "marketing")).toBe(true);
    expect(await suppressions.isSuppressed("email", { address: email })).toBe(false);
  });
});

describe("erasure removes every job of the customer's events", () => {
  it("removes the refunds of their orders, refused or done, which name the order", async () => {
    pipeline = await startPipeline("erase-review-refunds");
    const p = pipeline;
    const order = "ord-rv-9184";
    await p.publisher.publish(
      purchaseInput({
        id: "evt-rv-refunds",
        orderId: order,
        occurredAt: iso(DateTime.utc().startOf("second")),
        customer: { id: "cus-rv-refunds", name: "Greta Lindqvist" },
        items: [item("televisions", "899.00")],
      }) as never,
    );
    expect(await eventProcessed(p, "evt-rv-refunds")).toBe("completed");
    const refund = (id: string, amount: string, currency: string) =>
      p.publisher.publish({
        type: "purchase.refunded",
        id,
        occurredAt: iso(DateTime.utc().startOf("second")),
        orderId: order,
        amount: { amount, currency },
      } as never);
    // One done (kept an hour), one refused for its currency (kept 30 days, its reason naming the
    // order, listed by `followups refused` and the console).
    await refund("evt-rv-refund-gbp", "100.00", "GBP");
    expect(await eventProcessed(p, "evt-rv-refund-gbp")).toBe("completed");
    await refund("evt-rv-refund-eur", "10.00", "EUR");
    expect(await eventProcessed(p, "evt-rv-refund-eur")).toBe("failed");
    expect(await keysHolding(p.redis, p.prefix, [order])).not.toEqual([]);

    const receipt = await erase(p, "cus-rv-refunds");
    expect(receipt.purchases).toBe(1);
    expect(await p.events.getJob("evt-rv-refund-eur")).toBeUndefined();
    expect(await p.events.getJob("evt-rv-refund-gbp")).toBeUndefined();
    expect(await keysHolding(p.redis, p.prefix, [order, "Greta"])).toEqual([]);
  });
});

describe("erasure while a message is on its way", () => {
  it("leaves no provider message id in the finished job of the send", async () => {
    pipeline = await startPipeline("erase-review-in-flight");
    const p = pipeline;
    // Twilio takes its time to answer: the erasure comes while the SMS is with it.
    p.twilio.setResponseDelay(1_500);
    const occurredAt = DateTime.utc()
      .startOf("second")
      .setZone("Europe/London")
      .minus({ months: 3 });
    await p.publisher.publish(
      purchaseInput({
        id: "evt-rv-flight",
        orderId: "ord-rv-flight",
        occurredAt: iso(occurredAt.toUTC()),
        customer: { id: "cus-rv-flight", phone: "+447400900789", name: "Ines Okafor" },
        items: [item("televisions", "899.00")],
      }) as never,
    );
    const stepId = "big-ticket.check-in";
    await eventually(async () => {
      const record = (await p.store.stepRecords("evt-rv-flight", [stepId])).get(stepId);
      return record?.state === "sending" ? true : undefined;
    }, "the check-in to be on its way");
    const receipt = await erase(p, "cus-rv-flight");
    expect(receipt.stepsInFlight).toBe(1);
    const [message] = await eventually(
      async () => (p.twilio.messages.length > 0 ? p.twilio.messages : undefined),
      "the SMS to reach Twilio",
    );
    const sid = message?.sid ?? "";
    expect(sid).not.toBe("");
    // The sender finishes its bookkeeping and its job completes.
    const job = await eventually(async () => {
      const [done] = await p.followUps.getCompleted(0, 0);
      return done?.data.e === "evt-rv-flight" ? done : undefined;
    }, "the send's job to complete");
    expect(job.returnvalue).toMatchObject({ outcome: "sent" });
    // The Twilio sid leads to the number and the text at Twilio: no more than the step keeps.
    expect(await keysHolding(p.redis, p.prefix, [sid, "Ines", "+447400900789"])).toEqual([]);
    // Nor that the number was texted, as an erasure a moment later leaves it: its next first SMS
    // (another customer's with this number) says how to opt out.
    const member = await new SuppressionList(p.redis, p.prefix).addressMember("+447400900789");
    expect(await new SmsReferences(p.redis, p.prefix).textedBefore(member)).toBe(false);
  });
});

describe("erasure finds the customer in refused events however their publisher wrote them", () => {
  it("removes refused events naming the customer's id as a number or their number in national format, and no one else's", async () => {
    pipeline = await startPipeline("erase-review-refused");
    const p = pipeline;
    const phone = "+447911123456";
    await p.publisher.publish(
      purchaseInput({
        id: "evt-rv-123",
        orderId: "ord-rv-123",
        occurredAt: iso(DateTime.utc().startOf("second")),
        customer: { id: "123", phone, email: "priya.shah@example.com", name: "Priya Shah" },
        items: [item("televisions", "899.00")],
      }) as never,
    );
    expect(await eventProcessed(p, "evt-rv-123")).toBe("completed");
    /** A purchase its publisher got wrong: refused, kept in the failed set with its content. */
    const refused = async (id: string, customer: Record<string, unknown>) => {
      const event = {
        ...purchaseInput({ id, orderId: `ord-${id}`, items: [item("televisions", "899.00")] }),
        customer,
      };
      await p.events.add("purchase.completed", event, { jobId: id });
      expect(await eventProcessed(p, id)).toBe("failed");
    };
    // Theirs: the id as a JSON number, and their number as they typed it.
    await refused("evt-rv-number-id", { id: 123, name: "Priya Shah", email: "priya@work.example" });
    await refused("evt-rv-national", { name: "Priya Shah", phone: "07911 123456" });
    await refused("evt-rv-national-id", { id: "cus-typo", name: "Priya S", phone: "07911123456" });
    // Not theirs: other ids, another national number, a number that is theirs only in another country.
    await refused("evt-rv-other-number", { id: 1234, name: "Olu Adeyemi" });
    await refused("evt-rv-other-float", { id: 123.5, name: "Olu Adeyemi" });
    await refused("evt-rv-other-national", { id: "cus-o", name: "Olu A", phone: "07911 123457" });
    await refused("evt-rv-other-country", { id: 77, name: "Jean Petit", phone: "+337911123456" });
    // An id beyond 2^53 is rounded by JSON: it may spell another customer's id, so it names no one.
    await refused("evt-rv-rounded", { id: Number("12345678901234567890"), name: "Olu Adeyemi" });

    await erase(p, "123");
    await erase(p, String(Number("12345678901234567890")));
    for (const id of ["evt-rv-number-id", "evt-rv-national", "evt-rv-national-id"])
      expect(await p.events.getJob(id), id).toBeUndefined();
    for (const id of [
      "evt-rv-other-number",
      "evt-rv-other-float",
      "evt-rv-other-national",
      "evt-rv-other-country",
      "evt-rv-rounded",
    ])
      expect(await p.events.getJob(id), id).toBeDefined();
    expect(await keysHolding(p.redis, p.prefix, ["Priya", "07911 123456", "07911123456"])).toEqual(
      [],
    );
  });
});

describe("erasure removes the owners' reports in the outbox that quote the customer", () => {
  it("removes a report listing their unhappy reply with their name and order, not one that does not", async () => {
    // No SMTP: the owners' reports are files in OUTBOX_DIR.
    pipeline = await startPipeline("erase-review-report", { startWorker: false, smtp: false });
    const p = pipeline;
    const owner = { name: "Maria", email: "maria@shop.example", timezone: "Europe/London" };
    await withOwners(p.configDir, [{ ...owner, frequency: "daily" }]);
    await p.startWorker();
    // A TV bought three months ago: its check-in SMS is due now, and they answer it unhappily.
    const phone = "+447400900314";
    await p.publisher.publish(
      purchaseInput({
        id: "evt-rv-report",
        orderId: "ord-rv-report",
        occurredAt: iso(
          DateTime.utc().startOf("second").setZone("Europe/London").minus({ months: 3 }),
        ),
        customer: { id: "cus-rv-report", phone, name: "Ottilie Brennan" },
        items: [item("televisions", "899.00")],
      }) as never,
    );
    await p.twilio.waitForMessages(1, 15_000);
    await eventually(async () => {
      const record = await p.store.stepRecords("evt-rv-report", ["big-ticket.check-in"]);
      return record.get("big-ticket.check-in")?.state === "sent" ? true : undefined;
    }, "the check-in to be sent");
    const reply = await postTwilio(p, "/webhooks/twilio/inbound", {
      From: phone,
      Body: "The picture flickers, 2/10",
      MessageSid: "SMreport1",
    });
    expect(reply.status).toBe(200);
    // Today's report lists the reply; yesterday's has nothing of them.
    const today = DateTime.now().setZone(owner.timezone).startOf("day");
    for (const day of [today, today.minus({ days: 1 })]) await sendOwnerReport(p, owner, day);
    const files = async () =>
      (await readdir(p.outboxDir)).filter((name) => name.startsWith("report-"));
    const written = await files();
    expect(written).toHaveLength(2);
    const quoting: string[] = [];
    for (const name of written) {
      const { text } = await simpleParser(await readFile(path.join(p.outboxDir, name)));
      if (text?.includes("Ottilie Brennan") && text.includes("flickers")) quoting.push(name);
    }
    expect(quoting).toHaveLength(1);

    Object.assign(process.env, { OUTBOX_DIR: p.outboxDir });
    const receipt = await erase(p, "cus-rv-report").finally(() => {
      delete process.env.OUTBOX_DIR;
    });
    expect(receipt.outboxFilesRemoved).toBe(1);
    expect(await files()).toEqual(written.filter((name) => !quoting.includes(name)));
  });
});
