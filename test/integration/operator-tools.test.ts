import { mkdir, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { DateTime } from "luxon";
import { createTransport } from "nodemailer";
import { afterEach, describe, expect, it } from "vitest";
import { runCancel } from "../../src/cli/cancel-command.js";
import { runCustomer } from "../../src/cli/customer-command.js";
import { runErase } from "../../src/cli/erase-command.js";
import { runFailed } from "../../src/cli/failed-command.js";
import type { CommandIo } from "../../src/cli/io.js";
import { runOrder } from "../../src/cli/order-command.js";
import { runRefused } from "../../src/cli/refused-command.js";
import { runResend } from "../../src/cli/resend-command.js";
import { runResolve } from "../../src/cli/resolve-command.js";
import { orderHash } from "../../src/domain/address-hash.js";
import { eventFingerprints } from "../../src/domain/event-fingerprint.js";
import type { ErasureReceipt } from "../../src/operations/erase-customer.js";
import type { RefusedEvent } from "../../src/operations/operator-tools.js";
import type { CustomerTimeline } from "../../src/operations/timeline.js";
import { eventJobId, followUpJobId } from "../../src/queue/names.js";
import { alertEmail } from "../../src/reports/owner-alert-email.js";
import { CustomerIndex } from "../../src/store/customer-index.js";
import { sumHours } from "../../src/store/delivery-ledger.js";
import { DiscountCodes } from "../../src/store/discount-codes.js";
import { FollowUpStore } from "../../src/store/follow-up-store.js";
import { StoreKeys, shardScope } from "../../src/store/keys.js";
import { OrderStore } from "../../src/store/order-store.js";
import { sharedSecret } from "../../src/store/shared-secrets.js";
import { replyId } from "../../src/store/step-replies.js";
import { SuppressionList } from "../../src/store/suppression-list.js";
import { captureIo } from "../support/capture-io.js";
import { item, purchase, purchaseInput } from "../support/fixtures.js";
import { keysHolding } from "../support/personal-data-scan.js";
import {
  capThankYouEmails,
  eventProcessed,
  eventually,
  type PipelineHarness,
  promoteStep,
  startPipeline,
} from "../support/pipeline-harness.js";
import { settledSteps } from "../support/settled-queue.js";
import { httpAddressOf, postTwilio } from "../support/webhooks.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

/** Runs a command against the pipeline's Redis, as an operator's shell would. */
async function command(p: PipelineHarness, run: (io: CommandIo) => Promise<number>) {
  Object.assign(process.env, {
    ...p.commandEnv,
    OUTBOX_DIR: p.outboxDir,
  });
  const io = captureIo();
  const code = await run(io);
  return { code, out: io.output(), err: io.errors() };
}

async function json<T>(p: PipelineHarness, run: (io: CommandIo) => Promise<number>): Promise<T> {
  const { code, out } = await command(p, run);
  expect(code).toBe(0);
  return JSON.parse(out) as T;
}

/** The ledger of an event's shard over the last two hours (a test may cross an hour). */
async function recentLedger(p: PipelineHarness, eventId: string): Promise<Map<string, number>> {
  const { ledger } = p.stores.of(await p.shardOf(eventId));
  return sumHours(await ledger.hours(Date.now() - 7_200_000, Date.now() + 3_600_000));
}

const iso = (time: DateTime) => time.toISO({ suppressMilliseconds: true }) ?? "";
const config = (p: PipelineHarness) => ({ config: p.configDir, json: true });

async function stepState(p: PipelineHarness, eventId: string, stepId: string) {
  return (await p.store.stepRecords(eventId, [stepId])).get(stepId);
}

/**
 * The step's record once it is in `state` and the worker is done writing it: a send is recorded
 * `sent` with `bookkeepingPending`, which the bookkeeping after it takes off a moment later
 * (settle-sent.lua), so a record read in between is not the one that stays.
 */
async function untilState(p: PipelineHarness, eventId: string, stepId: string, state: string) {
  return eventually(async () => {
    const record = await stepState(p, eventId, stepId);
    return record?.state === state && !record.bookkeepingPending ? record : undefined;
  }, `${eventId}/${stepId} to be ${state}`);
}

describe("followups customer, order and cancel", () => {
  it("shows a customer's timeline with local due times, and cancels a pending step with who and why", async () => {
    pipeline = await startPipeline("ops-timeline");
    const p = pipeline;
    // A purchase time with milliseconds, as events carry: local times are shown to the second.
    const now = DateTime.utc().set({ millisecond: 437 });
    await p.publisher.publish(
      purchaseInput({
        id: "evt-ops-1",
        orderId: "ord-ops-1",
        occurredAt: iso(now),
        customer: { id: "cus-ops", email: "ops@example.com", name: "Olga Petrova" },
        items: [item("televisions", "899.00", { name: "OLED TV" })],
      }) as never,
    );
    await promoteStep(p, "evt-ops-1", "big-ticket.thank-you");
    await p.sink.waitForMessages(1);
    await untilState(p, "evt-ops-1", "big-ticket.thank-you", "sent");

    const timeline = await json<CustomerTimeline>(p, (io) => runCustomer("cus-ops", config(p), io));
    expect(timeline.customer).toMatchObject({
      id: "cus-ops",
      firstName: "Olga",
      email: "ops@example.com",
      timezone: "Europe/London",
      consent: { email: true, sms: true, voice: null },
    });
    expect(timeline.suppressions).toEqual({ email: null, sms: null, voice: null });
    const [bought] = timeline.purchases;
    expect(bought).toMatchObject({
      eventId: "evt-ops-1",
      orderId: "ord-ops-1",
      total: { amount: "899.00", currency: "GBP" },
      items: [{ name: "OLED TV", quantity: 1, unitPrice: { amount: "899.00", currency: "GBP" } }],
      data: "whole",
      refunded: null,
    });
    const [thankYou, checkIn] = bought?.steps ?? [];
    expect(thankYou).toMatchObject({
      ref: "evt-ops-1/big-ticket.thank-you",
      state: "sent",
      channel: "email",
      attempts: 1,
    });
    expect(thankYou?.providerMessageId).toBeTruthy();
    expect(checkIn).toMatchObject({ ref: "evt-ops-1/big-ticket.check-in", state: "scheduled" });
    const due = DateTime.fromISO(checkIn?.dueAt ?? "", { zone: "utc" });
    // Three calendar months in the customer's zone (an hour off UTC's across a clock change).
    expect(due.toMillis()).toBe(now.setZone("Europe/London").plus({ months: 3 }).toMillis());
    expect(checkIn?.dueLocal).toBe(iso(due.startOf("second").setZone("Europe/London")));

    // By address: case does not matter, and an address may belong to several customers.
    const byEmail = await json<{ customers: CustomerTimeline[] }>(p, (io) =>
      runCustomer(undefined, { ...config(p), email: "OPS@Example.com" }, io),
    );
    expect(byEmail.customers.map((c) => c.customer.id)).toEqual(["cus-ops"]);
    // A number as people write it finds the E.164 form the event stored.
    const byPhone = await json<{ customers: CustomerTimeline[] }>(p, (io) =>
      runCustomer(undefined, { ...config(p), phone: "+44 20 7946 0958" }, io),
    );
    expect(byPhone.customers.map((c) => c.customer.id)).toEqual(["cus-ops"]);
    // A national or 00-prefixed number is not guessed at: the answer says numbers are looked up
    // in international format, so no one takes "not known" for "nothing to erase".
    for (const phone of ["020 7946 0958", "0044 20 7946 0958"]) {
      for (const run of [runCustomer, runErase]) {
        await expect(
          command(p, (io) => run(undefined, { ...config(p), phone }, io)),
        ).rejects.toMatchObject({
          code: 1,
          message: expect.stringContaining(
            "no customer is known with that address; phone numbers are looked up in international format, + and the country code (+447400900020",
          ),
        });
      }
    }
    // A number in international format that no customer has is simply not known.
    await expect(
      command(p, (io) => runCustomer(undefined, { ...config(p), phone: "+44 20 7946 0959" }, io)),
    ).rejects.toMatchObject({ code: 1, message: "no customer is known with that address" });
    const text = await command(p, (io) => runCustomer("cus-ops", { config: p.configDir }, io));
    expect(text.out).toContain("evt-ops-1/big-ticket.check-in");
    expect(text.out).toContain("scheduled");

    const cancelled = await json<{ cancelled: string[] }>(p, (io) =>
      runCancel(
        {
          ...config(p),
          step: "evt-ops-1/big-ticket.check-in",
          // A line break would show as another, made-up entry in the timeline's text.
          reason: "asked by phone\n  2026-11-30 bob resend evt-ops-1",
          by: "alice",
        },
        io,
      ),
    );
    expect(cancelled.cancelled).toEqual(["evt-ops-1/big-ticket.check-in"]);
    const after = await json<CustomerTimeline>(p, (io) => runCustomer("cus-ops", config(p), io));
    expect(after.purchases[0]?.steps[1]).toMatchObject({
      state: "cancelled",
      reason: {
        code: "operator",
        text: "cancelled by alice: asked by phone 2026-11-30 bob resend evt-ops-1",
      },
    });
    // Nothing pending is left: the purchase is trimmed to what is kept after the last step.
    expect(after.purchases[0]?.data).toBe("kept");
    expect(after.audit).toEqual([
      expect.objectContaining({
        by: "alice",
        action: "cancel",
        target: "evt-ops-1/big-ticket.check-in",
        // The reason is the step's (above), not the audit trail's.
        detail: "1 cancelled",
      }),
    ]);
    // Counted in the ledger like any cancellation, with its own reason (in the purchase's shard).
    const counted = await recentLedger(p, "evt-ops-1");
    expect(counted.get("reason|cancelled|sms|check-in|operator")).toBe(1);
    // Its last step ended now, three months before its planned time: the purchase (kept for the
    // timeline, trimmed) is kept RECORD_RETENTION_DAYS (90) from now, not from that time.
    const shard = await p.shardOf("evt-ops-1");
    const recordKey = new StoreKeys(shardScope(p.prefix, shard, p.shards)).eventRecord("evt-ops-1");
    const keptUntil = await p.redis.pexpiretime(recordKey);
    expect(keptUntil).toBeGreaterThan(Date.now() + 89 * 86_400_000);
    expect(keptUntil).toBeLessThanOrEqual(Date.now() + 90 * 86_400_000);

    await expect(
      command(p, (io) => runCancel({ ...config(p), step: "evt-ops-1/big-ticket.check-in" }, io)),
    ).rejects.toMatchObject({ code: 1, message: expect.stringMatching(/nothing to cancel/) });
    await expect(
      command(p, (io) => runCancel({ ...config(p), step: "no-slash" }, io)),
    ).rejects.toMatchObject({ code: 2 });
    await expect(
      command(p, (io) => runCustomer("cus-nobody", config(p), io)),
    ).rejects.toMatchObject({ code: 1, message: 'no customer "cus-nobody" is known' });
    // Ids as intake keeps them: a pasted id's spaces do not matter; an empty one is a usage error.
    const padded = await json<CustomerTimeline>(p, (io) =>
      runCustomer(" cus-ops\n", config(p), io),
    );
    expect(padded.customer.id).toBe("cus-ops");
    await expect(
      command(p, (io) => runCancel({ ...config(p), customer: "cus-nobody" }, io)),
    ).rejects.toMatchObject({
      code: 1,
      message: 'nothing to cancel: no follow-ups are known for customer "cus-nobody"',
    });
    await expect(
      command(p, (io) => runCancel({ ...config(p), order: " " }, io)),
    ).rejects.toMatchObject({ code: 2, message: "expected an order id, got an empty one" });
    // Half a character (an unpaired surrogate, which no event can carry) names no one.
    await expect(command(p, (io) => runErase("cus-\ud800", config(p), io))).rejects.toMatchObject({
      code: 2,
      message:
        "expected a customer id, got one with half a character (an unpaired UTF-16 surrogate)",
    });

    const order = await json<CustomerTimeline & { orderId: string }>(p, (io) =>
      runOrder("ord-ops-1", config(p), io),
    );
    expect(order.orderId).toBe("ord-ops-1");
    expect(order.customer.id).toBe("cus-ops");
    expect(order.purchases.map((x) => x.eventId)).toEqual(["evt-ops-1"]);
    await expect(command(p, (io) => runOrder("ord-none", config(p), io))).rejects.toMatchObject({
      code: 1,
    });

    // Its purchase's record expired (RECORD_RETENTION_DAYS), its order link (kept for refunds)
    // did not: no blank customer "with no opt-outs", but why there is nothing to show.
    await p.redis.del(recordKey);
    await expect(command(p, (io) => runOrder("ord-ops-1", config(p), io))).rejects.toMatchObject({
      code: 1,
      message:
        'order "ord-ops-1" is known, but the records of its purchases are gone (kept RECORD_RETENTION_DAYS after their last follow-up, or erased): look the customer up by id',
    });
  });
});

/** Makes a purchase's stored purchase bytes no version can decode (damaged, or an unknown format). */
async function damageStoredPurchase(p: PipelineHarness, eventId: string) {
  const keys = new StoreKeys(shardScope(p.prefix, await p.shardOf(eventId), p.shards));
  await p.redis.hset(keys.eventRecord(eventId), "p0", Buffer.from([0x7f, 0xde, 0xad]));
  await expect(p.store.loadEvent(eventId)).rejects.toThrow(/unknown format/);
}

/**
 * Two TV purchases of `customer`: `first` five minutes ago, its thank-you sent; `second` now, its
 * check-in scheduled. Returns that now, and how its purchases were made (for more of them).
 */
async function twoTvPurchases(
  p: PipelineHarness,
  customer: { id: string; email: string; name: string },
  first: string,
  second: string,
) {
  const now = DateTime.utc();
  const bought = (id: string, at: DateTime) =>
    purchaseInput({
      id,
      orderId: `ord-${id}`,
      occurredAt: iso(at),
      customer,
      items: [item("televisions", "899.00", { name: "OLED TV" })],
    });
  await p.publisher.publish(bought(first, now.minus({ minutes: 5 })) as never);
  await promoteStep(p, first, "big-ticket.thank-you");
  await untilState(p, first, "big-ticket.thank-you", "sent");
  await p.publisher.publish(bought(second, now) as never);
  await untilState(p, second, "big-ticket.check-in", "scheduled");
  return { now, bought };
}

// A customer whose purchases planned nothing was "not known" to `customer`, by id or address,
// though the worker keeps their purchase history (for repeat-customer rules) and files their
// addresses: what an operator must show when asked "what do you know about me".
describe("followups customer of a customer with more purchases than it lists", () => {
  it("counts those past the latest 100 still kept, not one whose records have gone", async () => {
    pipeline = await startPipeline("ops-many");
    const p = pipeline;
    const start = DateTime.utc().startOf("second").minus({ hours: 2 });
    const count = 103;
    for (let i = 0; i < count; i++)
      await p.publisher.publish(
        purchaseInput({
          id: `evt-many-${i}`,
          orderId: `ord-many-${i}`,
          occurredAt: iso(start.plus({ seconds: i })),
          customer: { id: "cus-many" },
          items: [item("televisions", "899.00")],
        }) as never,
      );
    for (let i = 0; i < count; i++) await eventProcessed(p, `evt-many-${i}`);
    // The oldest one's records have gone (its retention ended): the history still names it until
    // it is next pruned, but nothing of it can be shown.
    const gone = "evt-many-0";
    await p.redis.del(
      new StoreKeys(shardScope(p.prefix, await p.shardOf(gone), p.shards)).eventRecord(gone),
    );

    const timeline = await json<CustomerTimeline>(p, (io) =>
      runCustomer("cus-many", config(p), io),
    );
    expect(timeline.purchases).toHaveLength(100);
    expect(timeline.purchasesNotListed).toBe(2);
    const text = await command(p, (io) => runCustomer("cus-many", { config: p.configDir }, io));
    expect(text.out).toContain(
      "The latest 100 purchases of 102: 2 older ones are not listed here.",
    );
    // Each of them is shown by its order id, as the line says.
    const older = await json<{ purchases: { eventId: string }[] }>(p, (io) =>
      runOrder("ord-many-1", config(p), io),
    );
    expect(older.purchases.map((purchase) => purchase.eventId)).toEqual(["evt-many-1"]);
  }, 120_000);
});

describe("an operator's note and reason", () => {
  it("stay with the purchase they concern (its steps, its reply), not in the audit trail kept a year", async () => {
    pipeline = await startPipeline("ops-notes");
    const p = pipeline;
    const phone = "+447400900731";
    // A TV bought three months ago (its check-in SMS is due now) and a pan bought now (its
    // thank-you pending an hour).
    for (const [id, occurredAt, category, price] of [
      ["evt-notes-tv", DateTime.utc().minus({ months: 3 }), "televisions", "899.00"],
      ["evt-notes-pan", DateTime.utc(), "kitchenware", "75.00"],
    ] as const)
      await p.publisher.publish(
        purchaseInput({
          id,
          orderId: `ord-${id}`,
          occurredAt: iso(occurredAt.startOf("second")),
          customer: { id: "cus-notes", phone },
          items: [item(category, price)],
        }) as never,
      );
    await eventProcessed(p, "evt-notes-pan");
    // Due within the hour of its purchase's thank-you: now.
    await promoteStep(p, "evt-notes-tv", "big-ticket.check-in");
    await untilState(p, "evt-notes-tv", "big-ticket.check-in", "sent");
    const texted = await postTwilio(p, "/webhooks/twilio/inbound", {
      From: phone,
      Body: "It arrived scratched, 2/10",
      MessageSid: "SMnotes0001",
    });
    expect(texted.status).toBe(200);
    const shard = await p.shardOf("evt-notes-tv");
    const reply = replyId({ eventId: "evt-notes-tv", stepId: "big-ticket.check-in", n: 1, shard });
    await eventually(
      async () =>
        (await p.stores.of(shard).replies.ofEvent("evt-notes-tv")).size ? true : undefined,
      "the reply to be filed",
    );
    const note = "Rang Ana Novak back on 07400 900731, new TV sent";
    const reason = "Ana Novak asked by phone, moving to 3 Elm Row";
    await json(p, (io) => runResolve(reply, { ...config(p), note, by: "alice" }, io));
    await json(p, (io) =>
      runCancel({ ...config(p), step: "evt-notes-pan/thank-you.thank-you", reason, by: "bob" }, io),
    );
    // While the purchases' records live, their timeline shows both.
    const timeline = await json<CustomerTimeline>(p, (io) =>
      runCustomer("cus-notes", config(p), io),
    );
    const steps = timeline.purchases.flatMap((purchase) => purchase.steps);
    expect(JSON.stringify(steps)).toContain(note);
    expect(JSON.stringify(steps)).toContain(reason);
    // The audit trail says who did what when, without the words.
    expect(timeline.audit).toEqual([
      expect.objectContaining({ by: "bob", action: "cancel", detail: "1 cancelled" }),
      expect.objectContaining({ by: "alice", action: "resolve", target: reply }),
    ]);
    expect(JSON.stringify(timeline.audit)).not.toContain("Ana Novak");
    // Once the records have expired (RECORD_RETENTION_DAYS after the last step), nothing of
    // the note or the reason is left.
    for (const eventId of ["evt-notes-tv", "evt-notes-pan"])
      await p.redis.del(
        new StoreKeys(shardScope(p.prefix, await p.shardOf(eventId), p.shards)).eventRecord(
          eventId,
        ),
      );
    expect(await keysHolding(p.redis, p.prefix, ["new TV sent", "asked by phone"])).toEqual([]);
  });
});

describe("a customer whose purchases planned no follow-ups", () => {
  it("is shown with what is kept of them, by id and by address, until erased", async () => {
    pipeline = await startPipeline("ops-no-steps");
    const p = pipeline;
    const boughtAt = DateTime.utc().startOf("second").minus({ minutes: 5 });
    const reader = {
      id: "cus-reader",
      name: "Rita Reader",
      email: "rita.reader@example.com",
      phone: "+447400900321",
      consent: { email: true, sms: false },
    };
    const { jobId } = await p.publisher.publish(
      purchaseInput({
        id: "evt-paper",
        orderId: "ord-paper",
        occurredAt: iso(boughtAt),
        customer: reader,
        items: [item("newspapers", "2.50", { name: "The Daily" })],
      }) as never,
    );
    expect(await eventProcessed(p, jobId)).toBe("completed");
    expect(await p.store.allStepRecords("evt-paper")).toEqual(new Map());

    const timeline = await json<CustomerTimeline>(p, (io) => runCustomer(reader.id, config(p), io));
    // Nothing of the purchase itself is stored: its time, in the history, and the consent it stated.
    expect(timeline).toEqual({
      customer: {
        id: reader.id,
        firstName: null,
        email: null,
        phone: null,
        timezone: "Europe/London",
        locale: null,
        consent: { email: true, sms: false, voice: null },
      },
      suppressions: { email: null, sms: null, voice: null },
      purchases: [
        {
          eventId: "evt-paper",
          orderId: null,
          occurredAt: boughtAt.toJSDate().toISOString(),
          total: null,
          items: [],
          refunded: null,
          data: "none",
          steps: [],
        },
      ],
      audit: [],
    });
    const text = await command(p, (io) => runCustomer(reader.id, { config: p.configDir }, io));
    expect(text.out).toContain(
      `Purchase evt-paper, order ?, ${boughtAt.toJSDate().toISOString()}, total not stored\n  details stored: none (no follow-up is stored for it: it planned none, or its intake has not finished; only its time is kept, in the customer's purchase history)\n  no follow-ups\n`,
    );
    // Its addresses lead to the customer too.
    for (const address of [{ email: reader.email }, { phone: reader.phone }]) {
      const found = await json<{ customers: CustomerTimeline[] }>(p, (io) =>
        runCustomer(undefined, { ...config(p), ...address }, io),
      );
      expect(found.customers.map((c) => c.customer.id)).toEqual([reader.id]);
    }

    // Erasure finds the history and deletes it: then only the erasure itself is shown.
    const receipt = await json<ErasureReceipt>(p, (io) =>
      runErase(reader.id, { ...config(p), by: "dpo" }, io),
    );
    expect(receipt.purchases).toBe(1);
    expect(
      await keysHolding(p.redis, p.prefix, [reader.id, reader.email, reader.phone, "evt-paper"]),
    ).toEqual([]);
    const erased = await json<CustomerTimeline>(p, (io) => runCustomer(reader.id, config(p), io));
    expect({
      consent: erased.customer.consent,
      purchases: erased.purchases,
      audit: erased.audit.map((entry) => [entry.by, entry.action]),
    }).toEqual({
      consent: { email: null, sms: null, voice: null },
      purchases: [],
      audit: [["dpo", "erase"]],
    });
  });
});

describe("a purchase whose stored purchase cannot be read", () => {
  it("is shown in the customer's timeline with its follow-ups, said to be unreadable; its order says why it cannot be shown", async () => {
    pipeline = await startPipeline("ops-unreadable-timeline");
    const p = pipeline;
    await twoTvPurchases(
      p,
      { id: "cus-unread", email: "unread@example.com", name: "Una Read" },
      "evt-unread",
      "evt-fine",
    );
    await damageStoredPurchase(p, "evt-unread");

    const timeline = await json<CustomerTimeline>(p, (io) =>
      runCustomer("cus-unread", config(p), io),
    );
    // What the readable purchase says of the customer; the unreadable one with its follow-ups.
    expect(timeline.customer).toMatchObject({ id: "cus-unread", firstName: "Una" });
    const unread = timeline.purchases.find((purchase) => purchase.eventId === "evt-unread");
    expect(unread).toMatchObject({ data: "unreadable", items: [], total: null });
    expect(unread?.steps.map((step) => [step.stepId, step.state])).toEqual([
      ["big-ticket.thank-you", "sent"],
      ["big-ticket.check-in", "scheduled"],
    ]);
    expect(timeline.purchases.find((purchase) => purchase.eventId === "evt-fine")).toMatchObject({
      data: "whole",
      orderId: "ord-evt-fine",
    });
    const text = await command(p, (io) => runCustomer("cus-unread", { config: p.configDir }, io));
    expect(text.code).toBe(0);
    expect(text.out).toContain("details stored: none readable (the stored purchase cannot be read");
    expect(text.out).toContain("evt-unread/big-ticket.check-in");

    // Nothing to render a resend from: refused, saying why, and nothing is queued.
    await expect(
      command(p, (io) =>
        runResend({ ...config(p), step: "evt-unread/big-ticket.thank-you", by: "carol" }, io),
      ),
    ).rejects.toThrow(/cannot be resent: its purchase could not be read/);
    expect((await stepState(p, "evt-unread", "big-ticket.thank-you"))?.state).toBe("sent");
    // Its order names no customer: said, with where to look, rather than failing on the bytes.
    await expect(command(p, (io) => runOrder("ord-evt-unread", config(p), io))).rejects.toThrow(
      /evt-unread could not be read.*followups customer/,
    );
    // An order of a readable purchase of the same customer shows both purchases' customer.
    const order = await json<{ purchases: { eventId: string }[] }>(p, (io) =>
      runOrder("ord-evt-fine", config(p), io),
    );
    expect(order.purchases.map((purchase) => purchase.eventId)).toEqual(["evt-fine"]);
  });

  it("has its last pending step cancelled, reported as done, though the purchase cannot be trimmed; erasure goes through", async () => {
    pipeline = await startPipeline("ops-unreadable-cancel");
    const p = pipeline;
    // evt-cx's thank-you is sent: its check-in is its last pending step.
    const { now, bought } = await twoTvPurchases(
      p,
      { id: "cus-cx", email: "cx@example.com", name: "Cy Xu" },
      "evt-cx",
      "evt-cy",
    );
    await damageStoredPurchase(p, "evt-cx");
    await damageStoredPurchase(p, "evt-cy");

    // The operator's cancel is made, and said to be made (exit 0), counted once; that the purchase
    // could not be trimmed is said on stderr, by event id and the error's name only.
    const cancelled = await command(p, (io) =>
      runCancel({ ...config(p), step: "evt-cx/big-ticket.check-in", by: "alice" }, io),
    );
    expect(cancelled.code).toBe(0);
    const done = JSON.parse(cancelled.out) as { cancelled: string[]; inFlight: string[] };
    expect(done).toEqual({ cancelled: ["evt-cx/big-ticket.check-in"], inFlight: [] });
    expect(cancelled.err).toBe(
      "warning: evt-cx: the change was made, but its finished purchase could not be trimmed (Error): it stays whole until its record expires\n",
    );
    expect(await stepState(p, "evt-cx", "big-ticket.check-in")).toMatchObject({
      state: "cancelled",
      reason: { code: "operator" },
    });
    expect((await recentLedger(p, "evt-cx")).get("reason|cancelled|sms|check-in|operator")).toBe(1);
    await expect(
      command(p, (io) => runCancel({ ...config(p), step: "evt-cx/big-ticket.check-in" }, io)),
    ).rejects.toMatchObject({ code: 1, message: expect.stringMatching(/nothing to cancel/) });

    // A step change (a refund's, a send's) gets its new record back; the failed trim is told, by
    // event id, only once the purchase's last pending step has ended.
    const told: [string, string][] = [];
    const store = new FollowUpStore(
      p.redis,
      shardScope(p.prefix, await p.shardOf("evt-cy"), p.shards),
      undefined,
      undefined,
      (eventId, error) => told.push([eventId, String(error)]),
    );
    const cancel = (stepId: string) =>
      store.transition(
        "evt-cy",
        stepId,
        ["scheduled"],
        { state: "cancelled", reason: { code: "refunded", text: "order refunded" } },
        Date.now(),
      );
    expect(await cancel("big-ticket.thank-you")).toMatchObject({ state: "cancelled" });
    expect(told).toEqual([]);
    expect(await cancel("big-ticket.check-in")).toMatchObject({ state: "cancelled" });
    expect(told).toEqual([["evt-cy", expect.stringMatching(/unknown format/)]]);

    // The customer's erasure: a pending step of a purchase that cannot be read is cancelled, and
    // the purchase erased, all the same.
    await p.publisher.publish(bought("evt-cz", now.plus({ seconds: 1 })) as never);
    await untilState(p, "evt-cz", "big-ticket.check-in", "scheduled");
    await damageStoredPurchase(p, "evt-cz");
    const receipt = await json<ErasureReceipt>(p, (io) =>
      runErase("cus-cx", { ...config(p), by: "dpo" }, io),
    );
    expect(receipt).toMatchObject({ purchases: 3 });
    expect(await stepState(p, "evt-cz", "big-ticket.check-in")).toMatchObject({
      state: "cancelled",
    });
    await expect(p.store.loadEvent("evt-cz")).resolves.toBeUndefined();
  });
});

describe("a purchase's refunds in its timeline", () => {
  it("are shown only when they take something: not one ignored for its currency, nor one of nothing", async () => {
    pipeline = await startPipeline("ops-refund-label");
    const p = pipeline;
    const refund = (id: string, amount: string, currency: string) =>
      p.publisher.publish({
        type: "purchase.refunded",
        id,
        occurredAt: iso(DateTime.utc().startOf("second")),
        orderId: "ord-rl",
        amount: { amount, currency },
      } as never);
    // In euros, before its purchase in pounds: ignored (README), and then one of 0.00 GBP.
    await refund("evt-rl-eur", "10.00", "EUR");
    expect(await eventProcessed(p, "evt-rl-eur")).toBe("completed");
    await p.publisher.publish(
      purchaseInput({
        id: "evt-rl",
        orderId: "ord-rl",
        occurredAt: iso(DateTime.utc().startOf("second")),
        customer: { id: "cus-rl" },
        items: [item("televisions", "899.00")],
      }) as never,
    );
    expect(await eventProcessed(p, "evt-rl")).toBe("completed");
    await refund("evt-rl-zero", "0.00", "GBP");
    expect(await eventProcessed(p, "evt-rl-zero")).toBe("completed");
    const refunded = async () =>
      (await json<CustomerTimeline>(p, (io) => runOrder("ord-rl", config(p), io))).purchases.map(
        (purchase) => purchase.refunded,
      );
    expect(await refunded()).toEqual([null]);

    await refund("evt-rl-gbp", "100.00", "GBP");
    expect(await eventProcessed(p, "evt-rl-gbp")).toBe("completed");
    expect(await refunded()).toEqual(["partial"]);
  });
});

describe("followups order of an order whose refunds arrived before its purchase", () => {
  it("shows the refunds and what they will do, and then that the purchase came and was dropped", async () => {
    const token = "ops-token-0123456789abc";
    pipeline = await startPipeline("ops-refund-first", { env: { ADMIN_TOKENS: `ops:${token}` } });
    const p = pipeline;
    const refund = (id: string, orderId: string, extra: Record<string, unknown> = {}) =>
      p.publisher.publish({
        type: "purchase.refunded",
        id,
        occurredAt: iso(DateTime.utc().startOf("second")),
        orderId,
        ...extra,
      } as never);
    // A partial refund (an amount and an item) of one order, a full one of another.
    await refund("evt-rf-part", "ord-rf-part", {
      amount: { amount: "100.00", currency: "GBP" },
      items: [{ sku: "TV-1", quantity: 1 }],
    });
    await refund("evt-rf-full", "ord-rf-full");
    expect(await eventProcessed(p, "evt-rf-part")).toBe("completed");
    expect(await eventProcessed(p, "evt-rf-full")).toBe("completed");

    const partial = await json<Record<string, unknown>>(p, (io) =>
      runOrder("ord-rf-part", config(p), io),
    );
    expect(partial).toEqual({
      orderId: "ord-rf-part",
      purchaseArrived: false,
      refunds: [
        {
          eventId: "evt-rf-part",
          full: false,
          amount: { amount: "100.00", currency: "GBP" },
          items: [{ sku: "TV-1", quantity: 1 }],
        },
      ],
      droppedPurchases: [],
      awaitingPurchase: expect.stringMatching(
        /^when its purchase arrives, its follow-ups are planned for what these refunds leave of it/,
      ),
      customer: null,
      suppressions: null,
      purchases: [],
      audit: [],
    });
    const full = await json<Record<string, unknown>>(p, (io) =>
      runOrder("ord-rf-full", config(p), io),
    );
    expect(full).toMatchObject({
      purchaseArrived: false,
      refunds: [{ eventId: "evt-rf-full", full: true, amount: null, items: [] }],
      awaitingPurchase: expect.stringMatching(/nothing is planned for it/),
    });
    const text = await command(p, (io) => runOrder("ord-rf-full", { config: p.configDir }, io));
    expect(text.code).toBe(0);
    expect(text.out).toBe(
      [
        "Order ord-rf-full: its purchase has not arrived yet (refunds can arrive before it)",
        "",
        "Refunds recorded for the order:",
        "  evt-rf-full: the whole order",
        "",
        "Then: the order is refunded in full: when its purchase arrives, nothing is planned for it (no follow-ups are sent) and nothing of it is kept.",
        "",
      ].join("\n"),
    );
    // The admin API answers with the same body.
    const answer = await fetch(`${p.worker?.httpAddress}/admin/v1/orders/ord-rf-part`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual(partial);

    // The purchase comes, is dropped for the full refund, and the order says so.
    await p.publisher.publish(
      purchaseInput({
        id: "evt-rf-bought",
        orderId: "ord-rf-full",
        occurredAt: iso(DateTime.utc().startOf("second")),
        customer: { id: "cus-rf" },
        items: [item("televisions", "899.00")],
      }) as never,
    );
    expect(await eventProcessed(p, "evt-rf-bought")).toBe("completed");
    const dropped = await json<Record<string, unknown>>(p, (io) =>
      runOrder("ord-rf-full", config(p), io),
    );
    expect(dropped).toMatchObject({
      purchaseArrived: true,
      droppedPurchases: [{ eventId: "evt-rf-bought", arrivedAt: expect.any(String) }],
      awaitingPurchase: null,
      customer: null,
    });
    // An order with neither purchase nor refund is still not known.
    await expect(command(p, (io) => runOrder("ord-none", config(p), io))).rejects.toMatchObject({
      code: 1,
      message: 'no order "ord-none" is known',
    });
  });
});

describe("followups cancel of a step being sent", () => {
  it("leaves one whose sender is alive, and cancels one whose sender died (its lease run out)", async () => {
    pipeline = await startPipeline("ops-cancel-sending");
    const p = pipeline;
    for (const id of ["evt-live", "evt-dead"])
      await p.publisher.publish(
        purchaseInput({
          id,
          orderId: `ord-${id}`,
          occurredAt: iso(DateTime.utc().startOf("second")),
          items: [item("televisions", "899.00")],
        }) as never,
      );
    const stepId = "big-ticket.check-in";
    // The harness's DELIVERY_LEASE_MS is 3 s: one claimed now, one 10 s ago by a worker killed -9.
    for (const [id, claimedAt] of [
      ["evt-live", Date.now()],
      ["evt-dead", Date.now() - 10_000],
    ] as const) {
      const planned = await untilState(p, id, stepId, "scheduled");
      expect(
        (await p.store.claim(id, stepId, claimedAt, 3_000, { dueAt: planned.dueAt })).claimed,
      ).toBe(true);
    }
    await expect(
      command(p, (io) => runCancel({ ...config(p), step: `evt-live/${stepId}` }, io)),
    ).rejects.toMatchObject({
      code: 1,
      message: `nothing to cancel: evt-live/${stepId} is being sent right now (if that attempt fails, it is cancelled, not retried)`,
    });
    expect((await stepState(p, "evt-live", stepId))?.state).toBe("sending");
    // Its sender dies: the takeover after its lease cancels instead of sending again.
    const later = await p.store.claim("evt-live", stepId, Date.now() + 10_000, 3_000);
    expect(later.claimed).toBe(false);
    expect(later.record).toMatchObject({ state: "cancelled", reason: { code: "operator" } });
    const done = await json<{ cancelled: string[] }>(p, (io) =>
      runCancel({ ...config(p), step: `evt-dead/${stepId}`, by: "alice" }, io),
    );
    expect(done.cancelled).toEqual([`evt-dead/${stepId}`]);
    expect(await stepState(p, "evt-dead", stepId)).toMatchObject({
      state: "cancelled",
      reason: { code: "operator", text: "cancelled by alice" },
    });
  });
});

describe("followups failed --retry and resend", () => {
  it("exits 1 after --wait when a re-queued follow-up failed again, printing the outcome all the same", async () => {
    pipeline = await startPipeline("ops-retry-again");
    const p = pipeline;
    await p.publisher.publish(
      purchaseInput({
        id: "evt-again",
        orderId: "ord-again",
        occurredAt: iso(DateTime.utc().startOf("second")),
        customer: { id: "cus-again", email: "again@example.com" },
      }) as never,
    );
    p.sink.failNext({ code: 550, message: "mailbox unavailable" });
    await promoteStep(p, "evt-again", "thank-you.thank-you");
    await untilState(p, "evt-again", "thank-you.thank-you", "failed");
    // The mailbox is still unavailable when the operator retries.
    p.sink.failNext({ code: 550, message: "mailbox unavailable" });
    const { code, out } = await command(p, (io) =>
      runFailed({ ...config(p), retry: true, wait: "15", by: "bob" }, io),
    );
    expect(code).toBe(1);
    expect(JSON.parse(out)).toMatchObject({
      requeued: 1,
      outcome: { sent: 0, failed: 1, other: 0, pending: 0 },
    });
    expect(await stepState(p, "evt-again", "thank-you.thank-you")).toMatchObject({
      state: "failed",
    });
  });

  it("re-queues a failed email for real and resends a sent one once, each recorded", async () => {
    pipeline = await startPipeline("ops-retry");
    const p = pipeline;
    await p.publisher.publish(
      purchaseInput({
        id: "evt-retry",
        orderId: "ord-retry",
        occurredAt: iso(DateTime.utc().startOf("second")),
        customer: { id: "cus-retry", email: "retry@example.com" },
      }) as never,
    );
    const ref = "evt-retry/thank-you.thank-you";
    p.sink.failNext({ code: 550, message: "mailbox unavailable" });
    await promoteStep(p, "evt-retry", "thank-you.thank-you");
    await untilState(p, "evt-retry", "thank-you.thank-you", "failed");

    const listed = await json<{
      failed: { ref: string; reason: { code: string; words: string } }[];
    }>(p, (io) => runFailed({ ...config(p), channel: "email" }, io));
    expect(listed.failed).toEqual([
      expect.objectContaining({
        ref,
        channel: "email",
        attempts: 1,
        reason: expect.objectContaining({ code: "permanent 550" }),
      }),
    ]);
    expect(listed.failed[0]?.reason.words).not.toMatch(/without a description/);
    const none = await json<{ failed: unknown[] }>(p, (io) =>
      runFailed({ ...config(p), channel: "sms" }, io),
    );
    expect(none.failed).toEqual([]);

    const retried = await json<{ requeued: number; outcome: Record<string, number> }>(p, (io) =>
      runFailed({ ...config(p), retry: true, wait: "15", by: "bob" }, io),
    );
    expect(retried.requeued).toBe(1);
    expect(retried.outcome).toEqual({ sent: 1, failed: 0, other: 0, pending: 0 });
    expect(p.sink.messages.map((m) => m.envelope.rcptTo)).toEqual([["retry@example.com"]]);
    expect(await stepState(p, "evt-retry", "thank-you.thank-you")).toMatchObject({
      state: "sent",
      attempts: 1,
      retries: 1,
    });
    // The failed job was replaced by the retry's: nothing failed is listed any more.
    expect((await json<{ failed: unknown[] }>(p, (io) => runFailed(config(p), io))).failed).toEqual(
      [],
    );
    await expect(
      command(p, (io) => runFailed({ ...config(p), retry: true }, io)),
    ).rejects.toMatchObject({ code: 1, message: expect.stringMatching(/nothing to retry/) });

    const first = await stepState(p, "evt-retry", "thank-you.thank-you");
    await json(p, (io) => runResend({ ...config(p), step: ref, by: "carol" }, io));
    await p.sink.waitForMessages(2);
    const resent = await untilState(p, "evt-retry", "thank-you.thank-you", "sent");
    expect(resent).toMatchObject({ resends: 1, retries: 1, takeovers: 0 });
    // The first send's id is kept beside the resend's: erasure finds both messages' references.
    expect(first?.providerId).toBeTruthy();
    expect(resent.providerId).not.toBe(first?.providerId);
    expect(resent.earlierProviderIds).toEqual([first?.providerId]);
    // Exactly once: every job of the step (the first, the retry's, the resend's) has finished,
    // retries included, so none is left to send a third message.
    await settledSteps(
      p.followUpQueues,
      [{ eventId: "evt-retry", stepId: "thank-you.thank-you" }],
      "the retried and resent thank-you",
    );
    expect(p.sink.messages).toHaveLength(2);
    const timeline = await json<CustomerTimeline>(p, (io) =>
      runCustomer("cus-retry", config(p), io),
    );
    expect(timeline.audit.map((entry) => [entry.by, entry.action])).toEqual([
      ["carol", "resend"],
      ["bob", "retry"],
    ]);
    const counted = await recentLedger(p, "evt-retry");
    expect(counted.get("resent|email|thank-you|thank-you")).toBe(1);
    expect(counted.get("retried|email|thank-you|thank-you")).toBe(1);

    await expect(
      command(p, (io) => runResend({ ...config(p), step: "evt-retry/thank-you.nope" }, io)),
    ).rejects.toMatchObject({ code: 1, message: expect.stringMatching(/no follow-up/) });
    // A reference not of the form the README and --help give is a malformed command line (exit
    // 2), said in their words: the step id is the whole one plan prints, rule id included.
    await expect(
      command(p, (io) => runResend({ ...config(p), step: "evt-retry/thank-you" }, io)),
    ).rejects.toMatchObject({
      code: 2,
      message:
        'not a step reference: "evt-retry/thank-you" (expected <eventId>/<stepId>, with the step id plan prints, such as evt-123/big-ticket.check-in)',
    });

    // Erasure removes the references of both sends (replies to either were matched through them).
    const keys = new StoreKeys(p.prefix);
    const references = [first?.providerId ?? "", resent.providerId ?? ""].map((id) =>
      keys.emailMessage(id),
    );
    for (const key of references) expect(await p.redis.exists(key)).toBe(1);
    await json(p, (io) => runErase("cus-retry", { ...config(p), by: "dpo" }, io));
    for (const key of references) expect(await p.redis.exists(key)).toBe(0);
    // And the step record keeps neither provider id.
    const scrubbed = await stepState(p, "evt-retry", "thank-you.thank-you");
    expect(scrubbed).toMatchObject({ state: "sent", resends: 1, retries: 1 });
    expect(scrubbed).not.toHaveProperty("providerId");
    expect(scrubbed).not.toHaveProperty("earlierProviderIds");
  });

  it("resends a discount with the code it carried the first time, not a second discount", async () => {
    pipeline = await startPipeline("ops-resend-code");
    const p = pipeline;
    await p.publisher.publish(
      purchaseInput({
        id: "evt-code",
        orderId: "ord-code",
        occurredAt: iso(DateTime.utc().startOf("second")),
        items: [item("laptops", "900.00", { sku: "LAP-1" })],
      }) as never,
    );
    await eventually(
      async () => stepState(p, "evt-code", "accessories.discount"),
      "the discount to be planned",
    );
    await promoteStep(p, "evt-code", "accessories.discount");
    await untilState(p, "evt-code", "accessories.discount", "sent");
    await json(p, (io) => runResend({ ...config(p), step: "evt-code/accessories.discount" }, io));
    const [first, second] = await p.sink.waitForMessages(2);
    const codeOf = (text: string | undefined) => /\b(THANKS-[A-Z0-9-]+)/.exec(text ?? "")?.[1];
    expect(codeOf(first?.parsed.text)).toMatch(/^THANKS-/);
    expect(codeOf(second?.parsed.text)).toBe(codeOf(first?.parsed.text));
  });

  it("refuses to resend a step that is still pending", async () => {
    pipeline = await startPipeline("ops-resend-pending");
    const p = pipeline;
    await p.publisher.publish(
      purchaseInput({ id: "evt-pending", occurredAt: iso(DateTime.utc()) }) as never,
    );
    await eventually(
      async () => stepState(p, "evt-pending", "thank-you.thank-you"),
      "the step to be planned",
    );
    await expect(
      command(p, (io) => runResend({ ...config(p), step: "evt-pending/thank-you.thank-you" }, io)),
    ).rejects.toMatchObject({
      code: 1,
      message:
        "evt-pending/thank-you.thank-you is scheduled: only a sent or failed follow-up can be resent",
    });
  });

  it("refuses to resend to a customer who opted out since, and keeps the record of the send", async () => {
    pipeline = await startPipeline("ops-resend-opted-out");
    const p = pipeline;
    await p.publisher.publish(
      purchaseInput({ id: "evt-out", occurredAt: iso(DateTime.utc().startOf("second")) }) as never,
    );
    await promoteStep(p, "evt-out", "thank-you.thank-you");
    const sent = await untilState(p, "evt-out", "thank-you.thank-you", "sent");
    await p.publisher.publish({
      type: "customer.unsubscribed",
      id: "unsub-out",
      occurredAt: iso(DateTime.utc().startOf("second")),
      customerId: "cus-1",
      channels: ["email"],
    });
    await eventually(
      async () => ((await p.events.getJob("unsub-out"))?.finishedOn ? true : undefined),
      "the opt-out to be recorded",
    );
    await expect(
      command(p, (io) => runResend({ ...config(p), step: "evt-out/thank-you.thank-you" }, io)),
    ).rejects.toMatchObject({
      code: 1,
      message: "evt-out/thank-you.thank-you cannot be resent: the customer opted out of email",
    });
    expect(await stepState(p, "evt-out", "thank-you.thank-you")).toEqual(sent);
    expect(p.sink.messages).toHaveLength(1);
  });
});

describe("followups refused", () => {
  it("lists the events the worker refused, latest first, with every problem", async () => {
    pipeline = await startPipeline("ops-refused");
    const p = pipeline;
    const refused = () =>
      json<{ refused: RefusedEvent[] }>(p, (io) => runRefused({ ...config(p), limit: "100" }, io));
    expect(await refused()).toEqual({ refused: [] });
    // Added by hand, as a publisher in another language might: the worker refuses both.
    await p.events.add("purchase.completed", {
      type: "purchase.completed",
      id: "evt-bad-1",
      customer: { id: "cus-bad", phone: "07400 900123" },
    });
    await p.events.add("purchase.refunded", { type: "purchase.refunded", id: "evt-bad-2" });
    await eventually(
      async () => ((await p.events.getFailedCount()) === 2 ? true : undefined),
      "both bad events to be refused",
    );
    const listed = (await refused()).refused;
    expect(listed.map((event) => [event.eventId, event.type, event.attempts])).toEqual([
      ["evt-bad-2", "purchase.refunded", 1],
      ["evt-bad-1", "purchase.completed", 1],
    ]);
    expect(listed[1]?.reason).toMatch(/^invalid event: .*customer\.phone: /);
    expect(listed[1]?.reason).toMatch(/orderId/);
    expect(Date.parse(listed[0]?.refusedAt ?? "")).toBeGreaterThan(Date.now() - 60_000);

    const limited = await json<{ refused: RefusedEvent[] }>(p, (io) =>
      runRefused({ ...config(p), limit: "1" }, io),
    );
    expect(limited.refused.map((event) => event.eventId)).toEqual(["evt-bad-2"]);
    const text = await command(p, (io) => runRefused({ config: p.configDir, limit: "100" }, io));
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/^EVENT +TYPE +REFUSED AT +TRIES +WHY\n/);
    expect(text.out).toContain("evt-bad-1");
    await expect(
      command(p, (io) => runRefused({ ...config(p), limit: "0" }, io)),
    ).rejects.toMatchObject({
      code: 2,
      message: '--limit: expected a whole number from 1 to 10000, got "0"',
    });
  });

  it("lists a refused job whose data is not JSON by its job id, with the others", async () => {
    pipeline = await startPipeline("ops-refused-not-json");
    const p = pipeline;
    await p.events.add("purchase.refunded", { id: "evt-r-1" }, { jobId: "evt-r-1" });
    await p.events.add("purchase.refunded", { id: "evt-r-2" }, { jobId: "evt-r-2" });
    await eventually(
      async () => ((await p.events.getFailedCount()) === 2 ? true : undefined),
      "both bad events to be refused",
    );
    // Its data damaged, or written by hand by a client that is not BullMQ's: BullMQ's reader of
    // the failed set throws on it, which failed the whole listing with a stack trace (and a 500).
    await p.redis.hset(p.events.toKey("evt-r-1"), "data", '{"id": "evt-r-1", cut sho');
    const { refused } = await json<{ refused: RefusedEvent[] }>(p, (io) =>
      runRefused({ ...config(p), limit: "100" }, io),
    );
    expect(refused.map((event) => [event.eventId, event.type, event.attempts])).toEqual([
      ["evt-r-2", "purchase.refunded", 1],
      ["evt-r-1", "purchase.refunded", 1],
    ]);
    expect(refused[1]?.reason).toMatch(/^invalid event: .*orderId: .*; its data is not JSON$/);
    const text = await command(p, (io) => runRefused({ config: p.configDir, limit: "1" }, io));
    expect(text.out).toContain("evt-r-2");
  });

  it("shows an id or type far past the contract's bounds cut, with its length", async () => {
    pipeline = await startPipeline("ops-refused-long");
    const p = pipeline;
    // One such event used to pad every line of the table to its 100,000 characters.
    const long = "x".repeat(100_000);
    await p.events.add(`purchase.${"y".repeat(5_000)}`, { id: long }, { jobId: "evt-long" });
    await p.events.add("purchase.refunded", { id: "evt-short" }, { jobId: "evt-short" });
    // Cut at 64 UTF-16 units, inside the emoji: the id is cut before it, never in half.
    const emoji = `${"z".repeat(63)}🎉${"z".repeat(300)}`;
    await p.events.add("purchase.refunded", { id: emoji }, { jobId: "evt-emoji" });
    await eventually(
      async () => ((await p.events.getFailedCount()) === 3 ? true : undefined),
      "the three bad events to be refused",
    );
    const { refused } = await json<{ refused: RefusedEvent[] }>(p, (io) =>
      runRefused({ ...config(p), limit: "100" }, io),
    );
    const cut = refused.find((event) => event.eventId.startsWith("x"));
    expect(cut?.eventId).toBe(`${"x".repeat(64)}… (100000 characters)`);
    expect(cut?.type).toBe(`purchase.${"y".repeat(55)}… (5009 characters)`);
    expect(refused.find((event) => event.eventId.startsWith("z"))?.eventId).toBe(
      // Its length as the contract counts it: 364 characters, the emoji one (365 UTF-16 units).
      `${"z".repeat(63)}… (364 characters)`,
    );
    const text = await command(p, (io) => runRefused({ config: p.configDir, limit: "100" }, io));
    expect(Math.max(...text.out.split("\n").map((line) => line.length))).toBeLessThan(1_000);
    expect(text.out).toContain("evt-short");
  });
});

describe("followups erase where it cannot read a folder", () => {
  it("erases and records all the rest, prints the receipt, and says which folder it could not search (exit 1)", async () => {
    pipeline = await startPipeline("ops-erase-folders");
    const p = pipeline;
    await p.publisher.publish(
      purchaseInput({
        id: "evt-fold-1",
        occurredAt: DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "",
        customer: { id: "cus-fold", email: "fold@example.com" },
      }) as never,
    );
    expect(await eventProcessed(p, "evt-fold-1")).toBe("completed");
    // Folders it cannot list (here: files where folders should be; for an operator who is not
    // the worker's user, the spool's mode 0700 does the same).
    const notAFolder = path.join(p.outboxDir, "not-a-folder.txt");
    await mkdir(p.outboxDir, { recursive: true });
    await writeFile(notAFolder, "x");
    const saved = { OUTBOX_DIR: process.env.OUTBOX_DIR, SPOOL: process.env.WEBHOOK_SPOOL_DIR };
    Object.assign(process.env, p.commandEnv, {
      OUTBOX_DIR: notAFolder,
      WEBHOOK_SPOOL_DIR: notAFolder,
    });
    const io = captureIo();
    try {
      expect(await runErase("cus-fold", { ...config(p), by: "dpo" }, io)).toBe(1);
    } finally {
      Object.assign(process.env, { OUTBOX_DIR: saved.OUTBOX_DIR });
      if (saved.SPOOL === undefined) delete process.env.WEBHOOK_SPOOL_DIR;
      else process.env.WEBHOOK_SPOOL_DIR = saved.SPOOL;
    }
    const receipt = JSON.parse(io.output()) as ErasureReceipt;
    expect(receipt).toMatchObject({ by: "dpo", purchases: 1, outboxFilesRemoved: 0 });
    expect(receipt.foldersNotSearched).toEqual([
      `OUTBOX_DIR: ENOTDIR: not a directory, scandir '${notAFolder}'`,
      `WEBHOOK_SPOOL_DIR: ENOTDIR: not a directory, scandir '${notAFolder}/failed'`,
    ]);
    expect(io.errors()).toBe(
      "the customer is erased from Redis, but these folders could not be searched for files about them: " +
        `OUTBOX_DIR: ENOTDIR: not a directory, scandir '${notAFolder}'; ` +
        `WEBHOOK_SPOOL_DIR: ENOTDIR: not a directory, scandir '${notAFolder}/failed'. ` +
        "Run followups erase again where they can be read\n",
    );
    expect(await keysHolding(p.redis, p.prefix, ["cus-fold", "fold@example.com"])).toEqual([]);
    // Recorded, as every erasure is, with what it could not do.
    const timeline = await json<CustomerTimeline>(p, (command) =>
      runCustomer("cus-fold", config(p), command),
    );
    expect(timeline.audit.map((entry) => entry.action)).toEqual(["erase"]);
    expect(timeline.audit[0]?.detail).toContain("foldersNotSearched");
  });
});

describe("followups cancel --order", () => {
  it("names the order in the audit trail by keyed hash, not in clear: the trail outlives the order's records", async () => {
    pipeline = await startPipeline("ops-cancel-order");
    const p = pipeline;
    await p.publisher.publish(
      purchaseInput({
        id: "evt-cord-1",
        orderId: "ord-7731-ana-novak",
        occurredAt: DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "",
        customer: { id: "cus-cord", email: "cord.customer@example.com" },
        items: [item("televisions", "899.00")],
      }) as never,
    );
    expect(await eventProcessed(p, "evt-cord-1")).toBe("completed");
    const cancelled = await command(p, (io) =>
      runCancel({ ...config(p), order: " ord-7731-ana-novak", by: "alice" }, io),
    );
    expect(cancelled.code).toBe(0);

    // Nowhere in the trail as written, however its entries are read.
    const raw = await p.redis.zrange(new StoreKeys(p.prefix).auditTrail(), 0, -1);
    expect(raw).toHaveLength(1);
    expect(raw.join("\n")).not.toContain("7731");
    const secret =
      p.env.ADDRESS_HASH_SECRET ?? (await sharedSecret(p.redis, p.prefix, "address-hash"));
    const entry = {
      by: "alice",
      action: "cancel",
      target: `order k:${orderHash(secret, "ord-7731-ana-novak")}`,
      detail: `${JSON.parse(cancelled.out).cancelled.length} cancelled`,
    };
    expect(entry.target).toMatch(/^order k:[\w-]{22}$/);
    const timeline = await json<CustomerTimeline>(p, (io) =>
      runCustomer("cus-cord", config(p), io),
    );
    expect(timeline.audit).toEqual([expect.objectContaining(entry)]);
    const text = await command(p, (io) => runCustomer("cus-cord", { config: p.configDir }, io));
    expect(text.out).toContain(` alice cancel ${entry.target}: `);
    // The operator's answer names the order as they typed it.
    await expect(
      command(p, (io) => runCancel({ ...config(p), order: "ord-7731-ana-novak" }, io)),
    ).rejects.toMatchObject({
      code: 1,
      message: "nothing to cancel: no follow-up of order ord-7731-ana-novak is pending",
    });
  });
});

describe("an operator's terminal", () => {
  it("gets no control characters from what customers and publishers wrote: they are shown escaped", async () => {
    pipeline = await startPipeline("ops-terminal");
    const p = pipeline;
    // A name that would retitle the terminal, an item that would erase its line and fake one
    // saying there is no opt-out, an order id in red (a C1 CSI) and reversed (bidi).
    await p.publisher.publish(
      purchaseInput({
        id: "evt-esc-1",
        orderId: "ord-\u009b31m-\u202e1",
        occurredAt: DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "",
        customer: { id: "cus-esc", name: "Ana\u001b]0;owned\u0007 Novak" },
        items: [item("televisions", "899.00", { name: "TV\r\u001b[2K\n  opt-outs: email none" })],
      }) as never,
    );
    expect(await eventProcessed(p, "evt-esc-1")).toBe("completed");
    await p.events.add("purchase.completed", { type: "purchase.completed", id: "evt-\u001b[8m" });
    await eventually(
      async () => ((await p.events.getFailedCount()) === 1 ? true : undefined),
      "the bad event to be refused",
    );
    const controls = /[\p{Cc}\u202a-\u202e\u2066-\u2069]/u;
    const timeline = await command(p, (io) => runCustomer("cus-esc", { config: p.configDir }, io));
    const lines = timeline.out.split("\n");
    expect(lines.filter((line) => controls.test(line))).toEqual([]);
    expect(lines[1]).toMatch(/^ {2}Ana\\u001b\]0;owned\\u0007: /);
    expect(lines).toContain("  1 × TV\\u000d\\u001b[2K\\u000a  opt-outs: email none at 899.00 GBP");
    expect(lines.filter((line) => line.startsWith("  opt-outs:"))).toHaveLength(1);
    expect(timeline.out).toContain("Purchase evt-esc-1, order ord-\\u009b31m-\\u202e1,");
    const refused = await command(p, (io) => runRefused({ config: p.configDir, limit: "9" }, io));
    expect(refused.out.split("\n").filter((line) => controls.test(line))).toEqual([]);
    expect(refused.out).toContain("evt-\\u001b[8m");
    // --json is JSON for programs: the text exactly as stored.
    const json = await command(p, (io) => runCustomer("cus-esc", config(p), io));
    expect((JSON.parse(json.out) as CustomerTimeline).customer?.firstName).toBe(
      "Ana\u001b]0;owned\u0007",
    );
  });
});

describe("an operator's terminal, right to left", () => {
  it("gets no bidi marks or line separators from what customers, publishers and operators wrote", async () => {
    pipeline = await startPipeline("ops-terminal-bidi");
    const p = pipeline;
    // A right-to-left mark before a name shows the rest of the line reversed; an Arabic letter
    // mark, an isolate or a line separator in an id reorders or breaks the line around it.
    await p.publisher.publish(
      purchaseInput({
        id: "evt-\u200fbidi",
        orderId: "ord-\u061c7\u2028-1",
        occurredAt: DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "",
        customer: { id: "cus-bidi\u2066", name: "\u200fAna\u200e Novak" },
        items: [item("televisions", "899.00", { name: "TV\u2029\u202e55" })],
      }) as never,
    );
    expect(await eventProcessed(p, eventJobId("evt-\u200fbidi"))).toBe("completed");
    await p.events.add("purchase.completed", {
      type: "purchase.completed",
      id: "evt-\u200e\u2067",
    });
    await eventually(
      async () => ((await p.events.getFailedCount()) === 1 ? true : undefined),
      "the bad event to be refused",
    );
    const unsafe = /[\p{Cc}\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;
    const unsafeLines = (text: string) => text.split("\n").filter((line) => unsafe.test(line));

    const timeline = await command(p, (io) =>
      runCustomer("cus-bidi\u2066", { config: p.configDir }, io),
    );
    expect(unsafeLines(timeline.out)).toEqual([]);
    expect(timeline.out).toContain("Customer cus-bidi\\u2066\n  \\u200fAna\\u200e: ");
    expect(timeline.out).toContain("  1 × TV\\u2029\\u202e55 at 899.00 GBP");
    expect(timeline.out).toContain("Purchase evt-\\u200fbidi, order ord-\\u061c7\\u2028-1,");

    const cancelled = await command(p, (io) =>
      runCancel(
        { config: p.configDir, customer: "cus-bidi\u2066", reason: "rang \u200fback", by: "dana" },
        io,
      ),
    );
    expect(cancelled.code).toBe(0);
    expect(unsafeLines(cancelled.out)).toEqual([]);
    expect(cancelled.out).toContain("  evt-\\u200fbidi/big-ticket.thank-you\n");
    const after = await command(p, (io) =>
      runCustomer("cus-bidi\u2066", { config: p.configDir }, io),
    );
    expect(unsafeLines(after.out)).toEqual([]);

    const refused = await command(p, (io) => runRefused({ config: p.configDir, limit: "9" }, io));
    expect(unsafeLines(refused.out)).toEqual([]);
    expect(refused.out).toContain("evt-\\u200e\\u2067");

    // --json has them as JSON escapes, which read back as written.
    const json = await command(p, (io) =>
      runCustomer("cus-bidi\u2066", { config: p.configDir, json: true }, io),
    );
    expect(unsafeLines(json.out)).toEqual([]);
    const read = JSON.parse(json.out) as CustomerTimeline;
    expect(read.customer.firstName).toBe("\u200fAna\u200e");
    expect(read.purchases[0]?.items[0]?.name).toBe("TV\u2029\u202e55");
    const refusedJson = await command(p, (io) =>
      runRefused({ config: p.configDir, limit: "9", json: true }, io),
    );
    expect(unsafeLines(refusedJson.out)).toEqual([]);
    expect(refusedJson.out).toContain("evt-\\u200e\\u2067");
  });
});

describe("followups erase", () => {
  it("leaves no personal data in Redis, keeps the opt-out, and drops the customer's older events", async () => {
    pipeline = await startPipeline("ops-erase");
    const p = pipeline;
    const now = DateTime.utc().startOf("second");
    const customer = {
      id: "cus-erin-77",
      name: "Erin Quayle",
      email: "erin.quayle@example.com",
      phone: "+447400900123",
    };
    // A check-in due now (bought three months ago), sent by SMS; a purchase today, pending.
    await p.publisher.publish(
      purchaseInput({
        id: "evt-x-old",
        orderId: "ord-x-old",
        occurredAt: iso(now.setZone("Europe/London").minus({ months: 3 }).toUTC()),
        customer,
        items: [item("televisions", "899.00")],
      }) as never,
    );
    await untilState(p, "evt-x-old", "big-ticket.check-in", "sent");
    await p.publisher.publish(
      purchaseInput({
        id: "evt-x-new",
        orderId: "ord-x-new",
        occurredAt: iso(now),
        customer,
        items: [item("televisions", "899.00")],
      }) as never,
    );
    await eventually(
      async () => stepState(p, "evt-x-new", "big-ticket.check-in"),
      "the new purchase to be planned",
    );
    // An opt-out written before opt-outs were hashed, a failed event carrying the number, and
    // an outbox file addressed to it.
    const keys = new StoreKeys(p.prefix);
    await p.redis.sadd(keys.suppressions("email"), `c:${customer.id}`);
    await p.events.add("purchase.completed", {
      type: "purchase.completed",
      id: "evt-x-bad",
      customer: { id: customer.id, phone: `${customer.phone}0000` },
    });
    await eventually(
      async () => ((await p.events.getFailedCount()) === 1 ? true : undefined),
      "the bad event to fail",
    );
    await mkdir(p.outboxDir, { recursive: true });
    await writeFile(
      path.join(p.outboxDir, "call-erin.json"),
      JSON.stringify({ channel: "voice", followUpId: "x", to: customer.phone, text: "Hi Erin" }),
    );
    await writeFile(
      path.join(p.outboxDir, "call-other.json"),
      JSON.stringify({ channel: "voice", followUpId: "y", to: "+447400900999", text: "Hi" }),
    );
    // An owner's alert naming the customer and their order, a reply forwarded to support from
    // their address, and an alert about someone else whose ids only begin like theirs.
    const mail = (to: string, more: string, body: string) =>
      `To: ${to}\r\n${more}Subject: x\r\n\r\n${body}\r\n`;
    await writeFile(
      path.join(p.outboxDir, "alert-owner-1.eml"),
      mail("maria@shop.example", "", "Unhappy reply on order ord-x-old (customer cus-erin-77)."),
    );
    await writeFile(
      path.join(p.outboxDir, "reply-2.eml"),
      mail("support@shop.example", "Reply-To: Erin <Erin.Quayle@example.com>\r\n", "It broke."),
    );
    await writeFile(
      path.join(p.outboxDir, "alert-owner-other.eml"),
      mail("maria@shop.example", "", "Unhappy reply on order ord-x-older (customer cus-erin-770)."),
    );
    const needles = [customer.id, customer.email, customer.phone, "Erin", "Quayle"];
    expect((await keysHolding(p.redis, p.prefix, needles)).length).toBeGreaterThan(0);
    // By keyed hash only: the sent check-in SMS marked the number as texted.
    const texted = keys.textedNumber(
      await new SuppressionList(p.redis, p.prefix).addressMember(customer.phone),
    );
    expect(await p.redis.exists(texted)).toBe(1);

    const receipt = await json<ErasureReceipt>(p, (io) =>
      runErase(customer.id, { ...config(p), by: "dpo" }, io),
    );
    expect(receipt).toMatchObject({
      by: "dpo",
      purchases: 2,
      stepsCancelled: 2,
      stepsInFlight: 0,
      outboxFilesRemoved: 3,
      optOutsKept: 1,
    });
    expect(receipt.jobsRemoved).toBeGreaterThanOrEqual(3);
    expect(receipt.customer).toMatch(/^k:/);
    expect(await keysHolding(p.redis, p.prefix, needles)).toEqual([]);
    expect(await p.redis.exists(texted)).toBe(0);
    expect((await readdir(p.outboxDir)).sort()).toEqual([
      "alert-owner-other.eml",
      "call-other.json",
    ]);
    // Still opted out of email, by keyed hash.
    const suppressions = new SuppressionList(p.redis, p.prefix);
    expect(await suppressions.isSuppressed("email", { customerId: customer.id })).toBe(true);
    expect(await suppressions.isSuppressed("sms", { customerId: customer.id })).toBe(false);

    // An event from before the erasure, processed after it, is dropped and stores nothing.
    await p.publisher.publish(
      purchaseInput({
        id: "evt-x-late",
        orderId: "ord-x-late",
        occurredAt: iso(now.minus({ minutes: 1 })),
        customer,
        items: [item("televisions", "899.00")],
      }) as never,
    );
    const late = await eventually(async () => {
      const [job] = await p.events.getCompleted(0, 0);
      return job?.data?.id === "evt-x-late" ? job : undefined;
    }, "the late event to be processed");
    expect(late.returnvalue).toMatchObject({ erased: true });
    expect(await keysHolding(p.redis, p.prefix, needles)).toEqual([]);

    // Idempotent; the audit trail keeps the receipts, without personal data.
    const again = await json<ErasureReceipt>(p, (io) => runErase(customer.id, config(p), io));
    expect(again).toMatchObject({ purchases: 0, stepsCancelled: 0 });
    const timeline = await json<CustomerTimeline>(p, (io) =>
      runCustomer(customer.id, config(p), io),
    );
    expect(timeline.purchases).toEqual([]);
    expect(timeline.audit.map((entry) => entry.action)).toEqual(["erase", "erase"]);
    await expect(
      command(p, (io) => runErase(undefined, { ...config(p), email: customer.email }, io)),
    ).rejects.toMatchObject({ code: 1 });
  });

  it("finds what no stored purchase names: addresses of a purchase without steps, purchases past the latest 100", async () => {
    pipeline = await startPipeline("ops-erase-unnamed", { shards: 2 });
    const p = pipeline;
    const start = DateTime.utc().startOf("second").minus({ hours: 3 });
    // Planned nothing (no consent): no purchase is stored, but its addresses are filed.
    const stepless = {
      id: "cus-nostep-4711",
      name: "Nora Stepless",
      email: "nora.stepless@example.com",
      phone: "+447400900555",
      consent: { email: false, sms: false, voice: false },
    };
    await p.publisher.publish(
      purchaseInput({ id: "evt-ns", occurredAt: iso(start), customer: stepless }) as never,
    );
    // 102 purchases, each with a check-in pending: more than the history lists when they end.
    const many = {
      id: "cus-many",
      name: "Manny Buyer",
      email: "manny@example.com",
      phone: "+447400900777",
    };
    for (let n = 0; n < 102; n++)
      await p.publisher.publish(
        purchaseInput({
          id: `evt-m-${n}`,
          orderId: `ord-m-${n}`,
          occurredAt: iso(start.plus({ minutes: n })),
          customer: many,
          items: [item("televisions", "899.00")],
        }) as never,
      );
    const { store } = p.stores.of(p.shardOfCustomer(many.id));
    const checkIn = async (eventId: string) =>
      (await store.stepRecords(eventId, ["big-ticket.check-in"])).get("big-ticket.check-in");
    await eventually(async () => checkIn("evt-m-101"), "the last purchase to be planned");
    expect(await checkIn("evt-m-0")).toMatchObject({ state: "scheduled" });
    const needles = [stepless.id, stepless.email, stepless.phone, "Nora"];
    expect((await keysHolding(p.redis, p.prefix, needles)).length).toBeGreaterThan(0);
    const nora = await json<ErasureReceipt>(p, (io) => runErase(stepless.id, config(p), io));
    expect(nora.purchases).toBe(1);
    expect(await keysHolding(p.redis, p.prefix, needles)).toEqual([]);
    // Nothing leads from the address to them any more.
    await expect(
      command(p, (io) => runErase(undefined, { ...config(p), email: stepless.email }, io)),
    ).rejects.toMatchObject({ code: 1 });

    const manny = await json<ErasureReceipt>(p, (io) => runErase(many.id, config(p), io));
    expect(manny.purchases).toBe(102);
    expect(manny.stepsCancelled).toBeGreaterThanOrEqual(102);
    // Every check-in cancelled, the oldest purchases' too; no step of theirs left to send.
    for (let n = 0; n < 102; n++) {
      expect(await checkIn(`evt-m-${n}`)).toMatchObject({ state: "cancelled" });
      for (const [stepId, record] of await store.allStepRecords(`evt-m-${n}`))
        expect(record.state, `evt-m-${n} ${stepId}`).not.toBe("scheduled");
    }
    expect(
      await keysHolding(p.redis, p.prefix, [many.id, many.email, many.phone, "Manny"]),
    ).toEqual([]);
  }, 60_000);

  it("files no reply to an erased customer's email, and their late purchase redeems no code", async () => {
    pipeline = await startPipeline("ops-erase-after", {
      env: { INBOUND_EMAIL_TOKEN: "inbound-token-0123456789" },
    });
    const p = pipeline;
    const now = DateTime.utc().startOf("second");
    await p.publisher.publish(
      purchaseInput({
        id: "evt-rb",
        orderId: "ord-rb",
        occurredAt: iso(now),
        customer: { id: "cus-rb" },
      }) as never,
    );
    await promoteStep(p, "evt-rb", "thank-you.thank-you");
    const [thanks] = await p.sink.waitForMessages(1);
    await untilState(p, "evt-rb", "thank-you.thank-you", "sent");
    await json<ErasureReceipt>(p, (io) => runErase("cus-rb", config(p), io));
    const reply = [
      "From: Someone <someone@example.com>",
      "To: hello@shop.example",
      "Subject: Re: Thank you",
      "Message-ID: <late-reply@mail.example>",
      `In-Reply-To: ${thanks?.parsed.messageId}`,
      "Content-Type: text/plain; charset=utf-8",
      "",
      "Please write to me at 12 Secret Lane instead.",
    ].join("\r\n");
    const answer = await fetch(`${httpAddressOf(p)}/webhooks/email/inbound`, {
      method: "POST",
      headers: {
        "content-type": "message/rfc822",
        authorization: "Bearer inbound-token-0123456789",
      },
      body: reply,
    });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ status: "ignored", reason: "no matching follow-up" });
    expect(await keysHolding(p.redis, p.prefix, ["Secret Lane"])).toEqual([]);

    // A purchase from before the erasure, arriving after it, naming another customer's code.
    const codes = new DiscountCodes(p.redis, p.prefix);
    const tomorrow = now.plus({ days: 1 });
    await codes.issue(
      { code: "KIT-ABCD-0000-0001", percent: 10, validUntil: tomorrow.toISODate() ?? "" },
      tomorrow.endOf("day").toMillis(),
      { eventId: "evt-other", stepId: "accessories.discount", shard: 0, customer: "k:other" },
      Date.now(),
      30 * 86_400_000,
    );
    await p.publisher.publish(
      purchaseInput({
        id: "evt-rb-late",
        orderId: "ord-rb-late",
        occurredAt: iso(now.minus({ minutes: 1 })),
        customer: { id: "cus-rb" },
        extra: { discountCodes: ["KIT-ABCD-0000-0001"] },
      }) as never,
    );
    const late = await eventually(async () => {
      const [job] = await p.events.getCompleted(0, 0);
      return job?.data?.id === "evt-rb-late" ? job : undefined;
    }, "the late purchase to be processed");
    expect(late.returnvalue).toMatchObject({ erased: true });
    expect(await codes.lookup("KIT-ABCD-0000-0001", Date.now())).toMatchObject({
      status: "valid",
    });
    expect(await keysHolding(p.redis, p.prefix, ["ord-rb-late"])).toEqual([]);
  });

  it("stops a purchase that was being taken in when its customer was erased", async () => {
    pipeline = await startPipeline("ops-erase-race");
    const p = pipeline;
    const bought = DateTime.utc().startOf("second").minus({ minutes: 1 });
    const event = purchase({
      id: "evt-race",
      occurredAt: iso(bought),
      customer: { id: "cus-race", email: "race@example.com" },
    });
    // Intake's first step, its history (which starts the purchase's record), as a worker did it…
    const { history, store } = p.stores.of(p.shardOfCustomer("cus-race"));
    expect(
      await history.recordPurchase(event, eventFingerprints(event), 86_400_000, 86_400_000),
    ).toMatchObject({ firstSeen: true });
    // …when the customer is erased.
    const receipt = await json<ErasureReceipt>(p, (io) => runErase("cus-race", config(p), io));
    expect(receipt.purchases).toBe(1);
    // Intake's next steps write nothing: no step, no address.
    const step = {
      stepId: "thank-you.thank-you",
      dueAt: Date.now() + 3_600_000,
      channel: "email",
      kind: "thank-you",
      ruleId: "thank-you",
      inSchedule: true,
    };
    const erasureKey = await history.erasureKey("cus-race");
    const now = Date.now();
    expect(
      await store.schedule(event, now + 90 * 86_400_000, [step], now, 1, undefined, erasureKey),
    ).toBe(-1);
    const index = new CustomerIndex(p.redis, p.prefix);
    const orders = new OrderStore(p.redis, p.prefix);
    expect(await index.remember(event, 86_400_000, now)).toBe(false);
    // Nor does its order link, filed with the address index in one script.
    const link = async (bought: typeof event) =>
      orders.linkPurchase(
        bought.orderId,
        bought.id,
        p.shardOfCustomer("cus-race"),
        86_400_000,
        now,
        await index.filingOf(bought, 86_400_000),
      );
    expect(await link(event)).toBeUndefined();
    expect((await orders.get(event.orderId)).eventIds).toEqual([]);
    expect(await keysHolding(p.redis, p.prefix, ["cus-race", "race@example.com"])).toEqual([]);
    // A purchase after the erasure starts afresh.
    const later = purchase({
      id: "evt-after",
      occurredAt: iso(DateTime.utc().plus({ seconds: 2 })),
      customer: { id: "cus-race", email: "race@example.com" },
    });
    expect(
      await store.schedule(later, now + 90 * 86_400_000, [step], now, 1, undefined, erasureKey),
    ).toBe(1);
    expect(await link(later)).toMatchObject({ eventIds: ["evt-after"] });
    expect(await index.customersOf("race@example.com")).toEqual(["cus-race"]);
  });

  it("removes the customer's waiting events, also one whose publisher padded the id", async () => {
    pipeline = await startPipeline("ops-erase-queued", { startWorker: false });
    const p = pipeline;
    const padded = purchaseInput({
      id: "evt-padded",
      occurredAt: iso(DateTime.utc().startOf("second")),
      customer: { id: "  cus-padded " },
    });
    await p.events.add("purchase.completed", padded, { jobId: "evt-padded" });
    await p.events.add("purchase.completed", purchaseInput({ id: "evt-other" }), {
      jobId: "evt-other",
    });
    const receipt = await json<ErasureReceipt>(p, (io) => runErase("cus-padded", config(p), io));
    expect(receipt.jobsRemoved).toBe(1);
    expect(await p.events.getJob("evt-padded")).toBeUndefined();
    expect(await p.events.getJob("evt-other")).toBeDefined();
  });

  it("erases by address the customers of purchases still on the input queue or refused there", async () => {
    pipeline = await startPipeline("ops-erase-queued-address", { startWorker: false });
    const p = pipeline;
    const at = iso(DateTime.utc().startOf("second"));
    // A guest checkout added by hand with the number as typed, refused (a zone that is none).
    const guest = { id: "guest-991", name: "Quentin Guest", phone: "+44 7400 900321" };
    await p.events.add(
      "purchase.completed",
      purchaseInput({
        id: "evt-guest",
        occurredAt: at,
        customer: { ...guest, timezone: "Mars/Base" },
      }),
      { jobId: "evt-guest", attempts: 1 },
    );
    await p.events.add("purchase.completed", purchaseInput({ id: "evt-other" }), {
      jobId: "evt-other",
    });
    const worker = await p.startWorker();
    expect(await eventProcessed(p, "evt-guest")).toBe("failed");
    expect(await eventProcessed(p, "evt-other")).toBe("completed");
    await worker.close();
    p.worker = undefined;
    // The same person's purchase as a customer, not taken in yet: no index knows them.
    const quentin = { id: "cus-queued", name: "Quentin Queue", phone: "+447400900321" };
    await p.publisher.publish(
      purchaseInput({ id: "evt-queued", occurredAt: at, customer: quentin }) as never,
    );

    const { receipts } = await json<{ receipts: ErasureReceipt[] }>(p, (io) =>
      runErase(undefined, { ...config(p), phone: "+44 7400 900321" }, io),
    );
    expect(receipts).toHaveLength(2);
    expect(await p.events.getJob("evt-queued")).toBeUndefined();
    expect(await p.events.getJob("evt-guest")).toBeUndefined();
    expect(await p.events.getJob("evt-other")).toBeDefined();
    expect(await keysHolding(p.redis, p.prefix, ["Quentin", "guest-991", "cus-queued"])).toEqual(
      [],
    );
    // Taken in later after all, the purchase is dropped: the erasure was recorded.
    await p.events.add(
      "purchase.completed",
      purchaseInput({ id: "evt-queued", occurredAt: at, customer: quentin }),
      { jobId: "evt-queued-late" },
    );
    await p.startWorker();
    expect(await eventProcessed(p, "evt-queued-late")).toBe("completed");
    expect((await p.events.getJob("evt-queued-late"))?.returnvalue).toMatchObject({ erased: true });
  });

  it("erases past input-queue jobs whose data is not JSON, removing those that quote the customer", async () => {
    pipeline = await startPipeline("ops-erase-not-json", { startWorker: false });
    const p = pipeline;
    const at = iso(DateTime.utc().startOf("second"));
    const ana = { id: "cus-dmg", name: "Ana Damaged", email: "dmg@example.com" };
    await p.publisher.publish(
      purchaseInput({ id: "evt-dmg", occurredAt: at, customer: ana }) as never,
    );
    // Two jobs waiting whose data is not JSON (damaged, or written by a client that is not
    // BullMQ's): BullMQ's reader throws on them, which stopped every erasure with a stack trace.
    for (const [id, data] of [
      ["evt-cut-theirs", '{"type": "purchase.completed", "customer": {"email": "DMG@example.com"'],
      ["evt-cut-other", '{"type": "purchase.completed", "customer": {"id": "cus-else"'],
    ] as const) {
      await p.events.add("purchase.completed", { id }, { jobId: id });
      await p.redis.hset(p.events.toKey(id), "data", data);
    }
    const { receipts } = await json<{ receipts: ErasureReceipt[] }>(p, (io) =>
      runErase(undefined, { ...config(p), email: "dmg@example.com" }, io),
    );
    expect(receipts.map((receipt) => receipt.jobsRemoved)).toEqual([2]);
    expect(await p.events.getJobCounts("waiting")).toEqual({ waiting: 1 });
    expect(await p.redis.hget(p.events.toKey("evt-cut-other"), "data")).toContain("cus-else");
    expect(await p.redis.exists(p.events.toKey("evt-cut-theirs"))).toBe(0);
  });

  it("removes only the outbox files about the customer, however their ids are written, and takes the id as events do", async () => {
    pipeline = await startPipeline("ops-erase-outbox");
    const p = pipeline;
    await mkdir(p.outboxDir, { recursive: true });
    // An owner's alert as the worker writes it: quoted-printable breaks a long id across lines,
    // and the subject folds.
    const longId = `cus-${"from-the-old-till-".repeat(4)}0001`;
    const alert = alertEmail(
      { email: "maria@shop.example", name: "Maria", timezone: "Europe/London" },
      "The Corner Shop on the High Street",
      [
        {
          customerId: longId,
          firstName: "Erin",
          orderId: `ord-${"2026-11-old-till-".repeat(3)}77`,
          items: [{ quantity: 1, name: "Television" }],
          purchasedAt: "2026-11-20T10:00:00Z",
          channel: "sms",
          receivedAt: Date.now(),
          why: "says it broke",
          text: "It broke — très mauvais",
          replyId: "reply-1",
          timelineUrl: `https://shop.example/console/customers/${longId}`,
        },
      ],
      "alert-1",
    );
    const mailer = createTransport({ streamTransport: true, buffer: true });
    const eml = async (message: { to: string; subject: string; text: string }) =>
      String((await mailer.sendMail({ from: "shop@shop.example", ...message })).message);
    const rendered = await eml(alert);
    expect(rendered).toContain("=\r\n"); // the id is cut across lines in the file
    expect(rendered).not.toContain(`(customer ${longId})`);
    await writeFile(path.join(p.outboxDir, "alert-long.eml"), rendered);
    // Another customer's thank-you, in which "shop" and the year are words.
    await writeFile(
      path.join(p.outboxDir, "thanks-sam.eml"),
      await eml({
        to: "sam@example.com",
        subject: "Thank you from the shop",
        text: "Hi Sam, thank you for shopping at our shop in 2026. Order 2026 is on its way.",
      }),
    );
    await writeFile(
      path.join(p.outboxDir, "sms-sam.json"),
      JSON.stringify({ channel: "sms", followUpId: "s", to: "+447400900777", text: "shop 2026" }),
    );

    for (const id of [" shop ", "2026"]) {
      const receipt = await json<ErasureReceipt>(p, (io) =>
        runErase(id, { ...config(p), by: "dpo" }, io),
      );
      expect(receipt.outboxFilesRemoved).toBe(0);
    }
    expect((await readdir(p.outboxDir)).sort()).toEqual([
      "alert-long.eml",
      "sms-sam.json",
      "thanks-sam.eml",
    ]);
    const receipt = await json<ErasureReceipt>(p, (io) =>
      runErase(`  ${longId}\t`, { ...config(p), by: "dpo" }, io),
    );
    expect(receipt.outboxFilesRemoved).toBe(1);
    expect((await readdir(p.outboxDir)).sort()).toEqual(["sms-sam.json", "thanks-sam.eml"]);
    // The padded id is the customer's own: the receipt names the same customer as the plain id's.
    const again = await json<ErasureReceipt>(p, (io) =>
      runErase(longId, { ...config(p), by: "dpo" }, io),
    );
    expect(receipt.customer).toBe(again.customer);

    // An empty id or one longer than any event's is a usage error, not a receipt.
    for (const id of ["  ", "y".repeat(100_000)])
      await expect(
        command(p, (io) => runErase(id, { ...config(p), by: "dpo" }, io)),
      ).rejects.toMatchObject({ code: 2 });
  });

  it("erases on a customer.erased event", async () => {
    pipeline = await startPipeline("ops-erase-event");
    const p = pipeline;
    const now = DateTime.utc().startOf("second");
    await p.publisher.publish(
      purchaseInput({
        id: "evt-gone",
        occurredAt: iso(now),
        customer: { id: "cus-gone", email: "gone@example.com" },
      }) as never,
    );
    await eventually(async () => stepState(p, "evt-gone", "thank-you.thank-you"), "the plan");
    // The customer's history is in their shard (FOLLOW_UP_SHARDS on the cluster): there before.
    const { history } = p.stores.of(p.shardOfCustomer("cus-gone"));
    expect((await history.purchasesOf("cus-gone")).map((x) => x.eventId)).toEqual(["evt-gone"]);
    await p.publisher.publish({
      type: "customer.erased",
      id: "erase-1",
      occurredAt: iso(now),
      customerId: "cus-gone",
    });
    await eventually(
      async () =>
        (await stepState(p, "evt-gone", "thank-you.thank-you"))?.state === "cancelled"
          ? true
          : undefined,
      "the pending step to be cancelled by the erasure",
    );
    await eventually(
      async () =>
        (await keysHolding(p.redis, p.prefix, ["cus-gone", "gone@example.com"])).length === 0
          ? true
          : undefined,
      "no trace of the customer",
    );
    expect(await history.purchasesOf("cus-gone")).toEqual([]);
    expect(await p.worker?.metrics.registry.metrics()).toContain("followups_erasures_total 1");
  });
});

/**
 * A purchase whose thank-you, counted against an email cap, was sent and then resent, as
 * `followups resend` leaves it before the resend's job (`-r1`, delayed here) runs.
 */
async function sentThenResent(name: string) {
  pipeline = await startPipeline(name, { startWorker: false });
  const p = pipeline;
  await capThankYouEmails(p);
  await p.startWorker();
  const id = `evt-${name}`;
  const stepId = "big-ticket.thank-you";
  await p.publisher.publish(
    purchaseInput({
      id,
      orderId: `ord-${name}`,
      occurredAt: iso(DateTime.utc().startOf("second")),
      customer: { id: `cus-${name}`, email: `${name}@example.com` },
      items: [item("televisions", "899.00")],
    }) as never,
  );
  await promoteStep(p, id, stepId);
  await untilState(p, id, stepId, "sent");
  const shard = await p.shardOf(id);
  const cap = new StoreKeys(shardScope(p.prefix, shard, p.shards)).capWindow(
    "email",
    `cus-${name}`,
  );
  const base = followUpJobId(id, stepId);
  // The first send holds its slot under the step's own job id.
  const firstSlot = () => p.redis.zscore(cap, base);
  expect(await firstSlot()).not.toBeNull();
  const requeued = await p.stores.of(shard).store.requeue(id, stepId, "resend", Date.now(), {
    outcome: "resent",
    channel: "email",
    kind: "thank-you",
    ruleId: "big-ticket",
  });
  expect(requeued.requeued).toBe(true);
  const queue = p.followUpQueues[shard];
  const resendJob = async () => queue?.getJob(`${base}-r1`);
  await queue?.add("email", { e: id, s: stepId }, { jobId: `${base}-r1`, delay: 3_600_000 });
  return { p, id, stepId, firstSlot, resendJob };
}

describe("a step resent and cancelled before the resend's job runs", () => {
  it("keeps the first send's frequency-cap slot, and loses the resend's job, by followups cancel", async () => {
    const { p, id, stepId, firstSlot, resendJob } = await sentThenResent("cancel-resent");
    const done = await json<{ cancelled: string[] }>(p, (io) =>
      runCancel({ ...config(p), step: `${id}/${stepId}`, by: "alice" }, io),
    );
    expect(done.cancelled).toEqual([`${id}/${stepId}`]);
    // The customer got the first send: its slot still counts against their cap.
    expect(await firstSlot()).not.toBeNull();
    // The resend's job, with nothing left to do, is gone.
    expect(await resendJob()).toBeUndefined();
  });

  it("keeps the first send's frequency-cap slot, and loses the resend's job, by a full refund", async () => {
    const { p, id, stepId, firstSlot, resendJob } = await sentThenResent("refund-resent");
    await p.publisher.publish({
      type: "purchase.refunded",
      id: `${id}-refund`,
      occurredAt: iso(DateTime.utc().startOf("second")),
      orderId: "ord-refund-resent",
      amount: { amount: "899.00", currency: "GBP" },
    } as never);
    expect(await eventProcessed(p, `${id}-refund`)).toBe("completed");
    await untilState(p, id, stepId, "cancelled");
    expect(await firstSlot()).not.toBeNull();
    expect(await resendJob()).toBeUndefined();
  });
});
