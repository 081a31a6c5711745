import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { followUpJobId } from "../../src/queue/names.js";
import { sumHours } from "../../src/store/delivery-ledger.js";
import { StoreKeys, shardScope } from "../../src/store/keys.js";
import { SmsReferences } from "../../src/store/sms-references.js";
import { SuppressionList } from "../../src/store/suppression-list.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventProcessed,
  eventually,
  type PipelineHarness,
  promoteStep,
  startPipeline,
  stepRecordOf,
  waitForState,
  whereWaiting,
} from "../support/pipeline-harness.js";
import { withTwoOffers } from "../support/rules-config.js";
import { settledQueue } from "../support/settled-queue.js";
import { httpAddressOf, postTwilio } from "../support/webhooks.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const ago = (hours: number) =>
  DateTime.utc().minus({ hours }).startOf("second").toISO({ suppressMilliseconds: true }) ?? "";

const record = stepRecordOf;

const processed = eventProcessed;

const http = httpAddressOf;

const tv = (id: string, extra: Parameters<typeof purchaseInput>[0] = {}) =>
  purchaseInput({
    id,
    orderId: `ord-${id}`,
    occurredAt: ago(2),
    items: [item("televisions", "700.00")],
    ...extra,
  });

describe("cooldowns", () => {
  it("plans one loyalty discount for a customer who buys five times in a week, and counts the rest as skipped", async () => {
    pipeline = await startPipeline("cooldown");
    const p = pipeline;
    // Built once each: the repeat below must be the same event to the second.
    const purchases = Array.from({ length: 5 }, (_, i) =>
      purchaseInput({
        id: `evt-cool-${i}`,
        orderId: `ord-cool-${i}`,
        occurredAt: ago(100 - i * 20),
        customer: { id: "cus-cool" },
        items: [item("kitchenware", "75.00")],
      }),
    );
    for (const [i, purchase] of purchases.entries()) {
      await p.publisher.publish(purchase as never);
      await processed(p, `evt-cool-${i}`);
    }
    // The 4th purchase is the first of a repeat customer: it gets the discount.
    expect((await record(p, "evt-cool-3", "loyal-customer.discount"))?.state).toBe("scheduled");
    expect(await record(p, "evt-cool-4", "loyal-customer.discount")).toBeUndefined();
    // Published again, the 4th purchase keeps its discount (its own step is no cooldown).
    await p.events.add("purchase.completed", purchases[3], { jobId: "evt-cool-3-again" });
    expect(await processed(p, "evt-cool-3-again")).toBe("completed");
    expect((await record(p, "evt-cool-3", "loyal-customer.discount"))?.state).toBe("scheduled");
    const metrics = (await p.worker?.metrics.registry.metrics()) ?? "";
    expect(metrics).toMatch(
      /^followups_skipped_total\{channel="email",kind="discount",reason="cooldown"\} 1$/m,
    );
  });
});

describe("cooldowns across purchases", () => {
  it("a step is held to the cooldown of every other purchase's step, not only the latest due", async () => {
    pipeline = await startPipeline("cooldown-all", { startWorker: false });
    const p = pipeline;
    await withTwoOffers(p.configDir);
    await p.startWorker();
    const bought = (id: string, category: string) =>
      purchaseInput({
        id,
        orderId: `ord-${id}`,
        occurredAt: ago(1),
        customer: { id: "cus-offers" },
        items: [item(category, "40.00")],
      });
    // Garden care (its offer due tomorrow), then a sofa (its offer due in sixty days), then
    // garden care again: its offer would come the day the first one does.
    for (const [id, category] of [
      ["evt-offer-1", "garden-care"],
      ["evt-offer-2", "sofas"],
      ["evt-offer-3", "garden-care"],
    ] as const) {
      await p.publisher.publish(bought(id, category) as never);
      await processed(p, id);
    }
    expect((await record(p, "evt-offer-1", "garden-offer.discount"))?.state).toBe("scheduled");
    expect((await record(p, "evt-offer-2", "sofa-offer.discount"))?.state).toBe("scheduled");
    expect(await record(p, "evt-offer-3", "garden-offer.discount")).toBeUndefined();
  });

  it("two purchases of one customer taken in at once: one offer, the other held by the cooldown", async () => {
    pipeline = await startPipeline("cooldown-race", { startWorker: false });
    const p = pipeline;
    await withTwoOffers(p.configDir);
    const ids = ["evt-race-1", "evt-race-2"];
    // Both waiting before the worker starts: it takes them in together (INTAKE_CONCURRENCY), so
    // each reads the customer's recent steps before the other has remembered its offer (as a rule:
    // cooldown-plans.test.ts forces that order).
    for (const id of ids)
      await p.publisher.publish(
        purchaseInput({
          id,
          orderId: `ord-${id}`,
          occurredAt: ago(1),
          customer: { id: "cus-race" },
          items: [item("garden-care", "40.00")],
        }) as never,
      );
    await p.startWorker();
    for (const id of ids) expect(await processed(p, id)).toBe("completed");
    const offers = await Promise.all(ids.map((id) => record(p, id, "garden-offer.discount")));
    expect(offers.filter((offer) => offer?.state === "scheduled")).toHaveLength(1);
    expect(offers.filter((offer) => offer === undefined)).toHaveLength(1);
    const metrics = (await p.worker?.metrics.registry.metrics()) ?? "";
    expect(metrics).toMatch(
      /^followups_skipped_total\{channel="email",kind="discount",reason="cooldown"\} 1$/m,
    );
  });
});

describe("refunds", () => {
  it("a full refund cancels every pending follow-up and removes its job", async () => {
    pipeline = await startPipeline("refund-full");
    const p = pipeline;
    // Bought just now: the thank-you is due in an hour, the check-in in three months.
    await p.publisher.publish(tv("evt-full", { occurredAt: ago(0) }) as never);
    await waitForState(p, "evt-full", "big-ticket.check-in", "scheduled");
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ref-full",
      occurredAt: ago(0),
      orderId: "ord-evt-full",
    });
    await processed(p, "ref-full");

    for (const stepId of ["big-ticket.thank-you", "big-ticket.check-in"]) {
      const r = await waitForState(p, "evt-full", stepId, "cancelled");
      expect(r.reason).toEqual({ code: "refunded", text: "order ord-evt-full fully refunded" });
      expect(await p.followUps.getJob(followUpJobId("evt-full", stepId))).toBeUndefined();
    }

    expect(p.sink.messages).toHaveLength(0);
  });

  it("a refund racing a due step: the claim sees the order's stop marker and cancels instead of sending", async () => {
    pipeline = await startPipeline("refund-race");
    const p = pipeline;
    await p.publisher.publish(tv("evt-race", { occurredAt: ago(0) }) as never);
    await waitForState(p, "evt-race", "big-ticket.thank-you", "scheduled");
    // What a refund writes first; its job removal has not happened yet when the step falls due.
    await p.store.stopEvent("evt-race", "refunded: order ord-evt-race fully refunded");
    await promoteStep(p, "evt-race", "big-ticket.thank-you");
    const raced = await waitForState(p, "evt-race", "big-ticket.thank-you", "cancelled");
    expect(raced.reason).toEqual({ code: "refunded", text: "order ord-evt-race fully refunded" });
    expect(p.sink.messages).toHaveLength(0);
  });

  it("a partial refund that takes the order below 500 removes the check-in and keeps the thank-you", async () => {
    pipeline = await startPipeline("refund-part");
    const p = pipeline;
    const order = purchaseInput({
      id: "evt-part",
      orderId: "ord-part",
      occurredAt: ago(0),
      items: [item("kitchenware", "600.00")],
    });
    await p.publisher.publish(order as never);
    await waitForState(p, "evt-part", "big-ticket.check-in", "scheduled");
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ref-part",
      occurredAt: ago(0),
      orderId: "ord-part",
      amount: { amount: "200.00", currency: "GBP" },
    });
    await processed(p, "ref-part");

    const checkIn = await waitForState(p, "evt-part", "big-ticket.check-in", "cancelled");
    expect(checkIn.reason?.text).toContain("partial refund leaves 400.00 GBP");
    // No item was handed back: the reason lists none as what the customer kept.
    expect(checkIn.reason?.text).toMatch(/^partial refund leaves 400\.00 GBP; /);
    expect(checkIn.reason?.text).toContain("below 500.00 GBP");
    expect((await record(p, "evt-part", "big-ticket.thank-you"))?.state).toBe("scheduled");
    expect(await whereWaiting(p, "evt-part", "big-ticket.thank-you")).toBe("schedule");
  });

  it("a step left sending by a worker that died is cancelled by a partial refund, and its takeover sends nothing", async () => {
    pipeline = await startPipeline("refund-abandoned");
    const p = pipeline;
    await p.publisher.publish(
      purchaseInput({
        id: "evt-dead",
        orderId: "ord-dead",
        occurredAt: ago(0),
        items: [item("kitchenware", "600.00")],
      }) as never,
    );
    const stepId = "big-ticket.check-in";
    const planned = await waitForState(p, "evt-dead", stepId, "scheduled");
    // A worker claimed the check-in 10 s ago and was killed -9 before the provider answered: the
    // harness's DELIVERY_LEASE_MS is 3 s, so its lease has run out.
    const claim = await p.store.claim("evt-dead", stepId, Date.now() - 10_000, 3_000, {
      dueAt: planned.dueAt,
    });
    expect(claim.claimed).toBe(true);
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ref-dead",
      occurredAt: ago(0),
      orderId: "ord-dead",
      amount: { amount: "200.00", currency: "GBP" },
    });
    await processed(p, "ref-dead");
    const cancelled = await stepRecordOf(p, "evt-dead", stepId);
    expect(cancelled?.state).toBe("cancelled");
    expect(cancelled?.reason?.text).toContain("partial refund leaves 400.00 GBP");

    // BullMQ's stalled-job recovery hands the dead worker's job to a live worker: nothing goes.
    const queue = p.followUpQueues[await p.shardOf("evt-dead")] ?? p.followUps;
    await queue.add(
      "sms",
      { e: "evt-dead", s: stepId },
      { jobId: followUpJobId("evt-dead", stepId) },
    );
    await eventually(async () => {
      const job = await queue.getJob(followUpJobId("evt-dead", stepId));
      return job && (await job.isCompleted()) ? job : undefined;
    }, "the taken-over job to finish");
    expect((await stepRecordOf(p, "evt-dead", stepId))?.state).toBe("cancelled");
    expect(p.twilio.messages).toHaveLength(0);
  });

  it("a step a live worker is sending when a partial refund drops it goes now, but is not retried or taken over", async () => {
    pipeline = await startPipeline("refund-in-flight");
    const p = pipeline;
    await p.publisher.publish(
      purchaseInput({
        id: "evt-live",
        orderId: "ord-live",
        occurredAt: ago(0),
        items: [item("kitchenware", "600.00")],
      }) as never,
    );
    const stepId = "big-ticket.check-in";
    const planned = await waitForState(p, "evt-live", stepId, "scheduled");
    const claimedAt = Date.now();
    const claim = await p.store.claim("evt-live", stepId, claimedAt, 3_000, {
      dueAt: planned.dueAt,
    });
    expect(claim.claimed).toBe(true);
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ref-live",
      occurredAt: ago(0),
      orderId: "ord-live",
      amount: { amount: "200.00", currency: "GBP" },
    });
    await processed(p, "ref-live");
    // Its sender is alive: the step is left to it.
    expect((await stepRecordOf(p, "evt-live", stepId))?.state).toBe("sending");
    // It dies; the takeover after its lease (3 s here) cancels with the refund's reason.
    const takeover = await p.store.claim("evt-live", stepId, claimedAt + 10_000, 3_000, {
      dueAt: planned.dueAt,
    });
    expect(takeover.claimed).toBe(false);
    expect(takeover.record.state).toBe("cancelled");
    expect(takeover.record.reason?.code).toBe("refunded");
    expect(takeover.record.reason?.text).toContain("partial refund leaves 400.00 GBP");
  });

  it("handing back the TV cancels its check-in; what the camera still earns stays", async () => {
    pipeline = await startPipeline("refund-items");
    const p = pipeline;
    await p.publisher.publish(
      purchaseInput({
        id: "evt-items",
        orderId: "ord-items",
        occurredAt: ago(0),
        items: [
          item("televisions", "700.00", { sku: "TV-55" }),
          item("cameras", "300.00", { sku: "CAM-1" }),
        ],
      }) as never,
    );
    await waitForState(p, "evt-items", "big-ticket.check-in", "scheduled");
    await waitForState(p, "evt-items", "accessories.discount", "scheduled");
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ref-items",
      occurredAt: ago(0),
      orderId: "ord-items",
      items: [{ sku: "TV-55", quantity: 1 }],
    });
    await processed(p, "ref-items");

    const checkIn = await waitForState(p, "evt-items", "big-ticket.check-in", "cancelled");
    expect(checkIn.reason?.text).toContain("partial refund leaves 300.00 GBP (1 × CAM-1)");
    // The camera alone still earns a thank-you and the accessories discount.
    expect((await record(p, "evt-items", "big-ticket.thank-you"))?.state).toBe("scheduled");
    expect((await record(p, "evt-items", "accessories.discount"))?.state).toBe("scheduled");

    // Handing back the camera too leaves nothing: every step is cancelled.
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ref-items-2",
      occurredAt: ago(0),
      orderId: "ord-items",
      items: [{ sku: "CAM-1", quantity: 1 }],
    });
    await processed(p, "ref-items-2");
    await waitForState(p, "evt-items", "big-ticket.thank-you", "cancelled");
    await waitForState(p, "evt-items", "accessories.discount", "cancelled");
  });

  it("what goes out after an item was handed back names only what the customer kept", async () => {
    pipeline = await startPipeline("refund-render");
    const p = pipeline;
    await p.publisher.publish(
      purchaseInput({
        id: "evt-kept",
        orderId: "ord-kept",
        occurredAt: ago(0),
        items: [
          item("televisions", "700.00", { sku: "TV-55", name: "Aurora TV" }),
          item("furniture", "900.00", { sku: "SOFA-1", name: "Comfy Sofa" }),
        ],
      }) as never,
    );
    await waitForState(p, "evt-kept", "big-ticket.check-in", "scheduled");
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ref-kept",
      occurredAt: ago(0),
      orderId: "ord-kept",
      items: [{ sku: "TV-55", quantity: 1 }],
    });
    await processed(p, "ref-kept");
    // The sofa alone still earns both.
    expect((await record(p, "evt-kept", "big-ticket.thank-you"))?.state).toBe("scheduled");
    expect((await record(p, "evt-kept", "big-ticket.check-in"))?.state).toBe("scheduled");
    await promoteStep(p, "evt-kept", "big-ticket.thank-you");
    await promoteStep(p, "evt-kept", "big-ticket.check-in");
    const [mail] = await p.sink.waitForMessages(1);
    const [sms] = await p.twilio.waitForMessages(1);
    expect(mail?.parsed.text).toContain("Comfy Sofa");
    expect(mail?.parsed.text).toContain("900.00");
    expect(mail?.parsed.text).not.toContain("Aurora TV");
    expect(mail?.parsed.text).not.toContain("1,600.00");
    expect(sms?.body).toContain("Comfy Sofa");
    expect(sms?.body).not.toContain("Aurora TV");
  });

  it("a refund that arrives before its purchase stops the purchase's follow-ups", async () => {
    pipeline = await startPipeline("refund-early");
    const p = pipeline;
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ref-early",
      occurredAt: ago(0),
      orderId: "ord-evt-early",
    });
    await processed(p, "ref-early");
    await p.publisher.publish(tv("evt-early") as never);
    await processed(p, "evt-early");
    expect(await p.store.stepRecords("evt-early", ["big-ticket.thank-you"])).toEqual(
      new Map([["big-ticket.thank-you", undefined]]),
    );
    expect(p.sink.messages).toHaveLength(0);
  });
});

describe("refunds racing purchases", () => {
  it("a full refund taken from the queue together with its purchase always wins", async () => {
    pipeline = await startPipeline("refund-burst", { env: { INTAKE_CONCURRENCY: "8" } });
    const p = pipeline;
    const ids = Array.from({ length: 40 }, (_, i) => `evt-rb-${i}`);
    await p.events.addBulk(
      ids.flatMap((id) => [
        {
          name: "purchase.completed",
          data: tv(id, { occurredAt: ago(0), customer: { id: `c-${id}` } }),
          opts: { jobId: id },
        },
        {
          name: "purchase.refunded",
          data: {
            type: "purchase.refunded",
            id: `ref-${id}`,
            occurredAt: ago(0),
            orderId: `ord-${id}`,
          },
          opts: { jobId: `ref-${id}` },
        },
      ]),
    );
    for (const id of ids) {
      await processed(p, id);
      await processed(p, `ref-${id}`);
    }
    for (const id of ids) {
      const records = await p.store.allStepRecords(id);
      for (const [stepId, r] of records) {
        expect(r.state, `${id} ${stepId}`).toBe("cancelled");
        expect(
          await p.followUps.getJob(followUpJobId(id, stepId)),
          `${id} ${stepId} job`,
        ).toBeUndefined();
      }
    }
    expect(p.sink.messages).toHaveLength(0);
  });

  it("a refund in the wrong currency is refused and does not count towards later refunds", async () => {
    pipeline = await startPipeline("refund-currency");
    const p = pipeline;
    await p.publisher.publish(
      purchaseInput({
        id: "evt-cur",
        orderId: "ord-cur",
        occurredAt: ago(0),
        items: [item("kitchenware", "600.00")],
      }) as never,
    );
    await waitForState(p, "evt-cur", "big-ticket.check-in", "scheduled");
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ref-eur",
      occurredAt: ago(0),
      orderId: "ord-cur",
      amount: { amount: "550.00", currency: "EUR" },
    });
    expect(await processed(p, "ref-eur")).toBe("failed");
    expect((await p.events.getJob("ref-eur"))?.failedReason).toBe(
      "refund ref-eur is in EUR but order ord-cur was paid in GBP",
    );
    // Counted and said, not only left in the failed set.
    expect(await p.worker?.metrics.registry.metrics()).toContain(
      "followups_refunds_refused_total 1",
    );
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ref-gbp",
      occurredAt: ago(0),
      orderId: "ord-cur",
      amount: { amount: "50.00", currency: "GBP" },
    });
    expect(await processed(p, "ref-gbp")).toBe("completed");
    // 550 left: still a check-in. Had the EUR refund counted, 0 would be left and everything cancelled.
    expect((await record(p, "evt-cur", "big-ticket.check-in"))?.state).toBe("scheduled");
  });

  it("a refund in another currency that arrives before its purchase is ignored, and the intake says so", async () => {
    pipeline = await startPipeline("refund-currency-first");
    const p = pipeline;
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ref-first",
      occurredAt: ago(0),
      orderId: "ord-first",
      amount: { amount: "600.00", currency: "EUR" },
    });
    expect(await processed(p, "ref-first")).toBe("completed");
    await p.publisher.publish(
      purchaseInput({
        id: "evt-first",
        orderId: "ord-first",
        occurredAt: ago(0),
        items: [item("kitchenware", "600.00")],
      }) as never,
    );
    // Not taken off the GBP purchase: still a check-in.
    await waitForState(p, "evt-first", "big-ticket.check-in", "scheduled");
    expect(
      p.logs.find(
        (line) =>
          line.msg ===
          "a refund recorded for this purchase's order is in another currency: ignored",
      ),
    ).toMatchObject({ eventId: "evt-first", currency: "GBP", refundCurrencies: ["EUR"] });
  });
});

describe("opt-outs", () => {
  it("after STOP by SMS, a scheduled SMS to that number is not sent; START opts back in", async () => {
    pipeline = await startPipeline("stop");
    const p = pipeline;
    await p.publisher.publish(tv("evt-stop") as never);
    await waitForState(p, "evt-stop", "big-ticket.check-in", "scheduled");

    const forged = await postTwilio(
      p,
      "/webhooks/twilio/inbound",
      { From: "+442079460958", Body: "STOP", MessageSid: "SM1" },
      "forged",
    );
    expect(forged.status).toBe(403);
    const answer = await postTwilio(p, "/webhooks/twilio/inbound", {
      From: "+442079460958",
      Body: "Stop",
      MessageSid: "SM2",
    });
    expect(answer.status).toBe(200);

    await promoteStep(p, "evt-stop", "big-ticket.check-in");
    const skipped = await waitForState(p, "evt-stop", "big-ticket.check-in", "skipped");
    expect(skipped.reason?.code).toBe("opted-out");
    expect(p.twilio.requests).toBe(0);

    await postTwilio(p, "/webhooks/twilio/inbound", {
      From: "+442079460958",
      Body: "START",
      MessageSid: "SM3",
    });
    await p.publisher.publish(tv("evt-start") as never);
    await waitForState(p, "evt-start", "big-ticket.check-in", "scheduled");
    await promoteStep(p, "evt-start", "big-ticket.check-in");
    await p.twilio.waitForMessages(1);
  });

  it("a delivery report records the outcome; a 21610 report suppresses the number after the purchase is scrubbed", async () => {
    pipeline = await startPipeline("status");
    const p = pipeline;
    await p.publisher.publish(tv("evt-status") as never);
    await waitForState(p, "evt-status", "big-ticket.check-in", "scheduled");
    await promoteStep(p, "evt-status", "big-ticket.check-in");
    const [sms] = await p.twilio.waitForMessages(1);
    await waitForState(p, "evt-status", "big-ticket.check-in", "sent");
    await waitForState(p, "evt-status", "big-ticket.thank-you", "sent");
    // Every step is done: the contact data goes from the record. The worker trims it in a call of
    // its own right after the last step's sent state (FollowUpStore.trimIfFinished).
    await eventually(
      async () => ((await p.store.loadEvent("evt-status")) === undefined ? true : undefined),
      "the purchase to be scrubbed once its last step was sent",
    );

    // Twilio reports after the send is done: the SMS's reference is written after its sent state.
    const references = new SmsReferences(p.redis, p.prefix);
    await eventually(
      async () => references.stepOfSms(sms?.sid ?? ""),
      "the SMS's reference to be written",
    );
    const params = { MessageSid: sms?.sid ?? "", MessageStatus: "undelivered", ErrorCode: "21610" };
    expect((await postTwilio(p, "/webhooks/twilio/status", params)).status).toBeLessThan(300);
    const r = await record(p, "evt-status", "big-ticket.check-in");
    expect(r).toMatchObject({
      state: "sent",
      delivery: { status: "undelivered", errorCode: 21610 },
    });
    expect(
      await new SuppressionList(p.redis, p.prefix).isSuppressed("sms", {
        address: "+442079460958",
      }),
    ).toBe(true);
    // Counted among the opt-outs, for SMS and calls, as the same 21610 answered to a send is.
    const now = Date.now();
    const counts = sumHours(await p.stores.of(0).ledger.hours(now - 7_200_000, now + 3_600_000));
    expect([...counts].filter(([field]) => field.includes("optout|"))).toEqual([
      ["optout|sms|-|-", 1],
      ["reason|optout|sms|-|provider", 1],
      ["optout|voice|-|-", 1],
      ["reason|optout|voice|-|provider", 1],
    ]);
    // Twilio posts each status on its own, so an earlier one may arrive after the final report:
    // a late `sent` or `queued` leaves the final outcome (and its code) as it was.
    for (const MessageStatus of ["sent", "queued"]) {
      const late = { MessageSid: sms?.sid ?? "", MessageStatus };
      expect((await postTwilio(p, "/webhooks/twilio/status", late)).status).toBeLessThan(300);
    }
    expect((await record(p, "evt-status", "big-ticket.check-in"))?.delivery).toEqual({
      status: "undelivered",
      errorCode: 21610,
    });
  });

  it("a customer.unsubscribed event stops a pending discount mailing", async () => {
    pipeline = await startPipeline("unsub-event");
    const p = pipeline;
    const laptop = purchaseInput({
      id: "evt-laptop",
      orderId: "ord-laptop",
      occurredAt: ago(2),
      items: [item("laptops", "900.00")],
    });
    await p.publisher.publish(laptop as never);
    await waitForState(p, "evt-laptop", "accessories.discount", "scheduled");
    // The thank-you (due already) goes out before the opt-out is published.
    await waitForState(p, "evt-laptop", "big-ticket.thank-you", "sent");
    await p.publisher.publish({
      type: "customer.unsubscribed",
      id: "unsub-1",
      occurredAt: ago(0),
      customerId: "cus-1",
      channels: ["email"],
    });
    await processed(p, "unsub-1");

    await promoteStep(p, "evt-laptop", "accessories.discount");
    const skipped = await waitForState(p, "evt-laptop", "accessories.discount", "skipped");
    expect(skipped.reason?.code).toBe("opted-out");
    // The thank-you went out before the opt-out; the discount never did.
    expect(p.sink.messages.map((m) => m.parsed.headers.get("x-followup-id"))).toEqual([
      followUpJobId("evt-laptop", "big-ticket.thank-you"),
    ]);
  });

  it("a marketing email carries one-click unsubscribe headers whose link works, once and again", async () => {
    pipeline = await startPipeline("one-click");
    const p = pipeline;
    const laptop = purchaseInput({
      id: "evt-oc",
      orderId: "ord-oc",
      occurredAt: ago(2),
      items: [item("laptops", "900.00")],
    });
    await p.publisher.publish(laptop as never);
    await waitForState(p, "evt-oc", "accessories.discount", "scheduled");
    await promoteStep(p, "evt-oc", "accessories.discount");
    const mails = await p.sink.waitForMessages(2);
    const discount = mails.find(
      (m) =>
        m.parsed.headers.get("x-followup-id") === followUpJobId("evt-oc", "accessories.discount"),
    );
    const thanks = mails.find((m) => m !== discount);
    expect(thanks?.raw).not.toMatch(/List-Unsubscribe/i);
    expect(discount?.raw).toMatch(/^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r?$/m);
    const headers = (discount?.raw ?? "").replace(/\r?\n[ \t]+/g, " ");
    const link = /List-Unsubscribe: <(https:\/\/followups\.test\/unsubscribe\/[^>]+)>/.exec(
      headers,
    )?.[1];
    expect(link).toBeDefined();
    expect(discount?.parsed.text).toContain(link);

    const local = `${http(p)}${new URL(link ?? "").pathname}`;
    for (let i = 0; i < 2; i++) {
      const response = await fetch(local, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: "List-Unsubscribe=One-Click",
      });
      expect(response.status).toBe(200);
    }
    // Now a new purchase's discount is skipped.
    await p.publisher.publish(
      purchaseInput({
        id: "evt-oc2",
        orderId: "ord-oc2",
        occurredAt: ago(2),
        items: [item("laptops", "900.00")],
      }) as never,
    );
    await processed(p, "evt-oc2");
    expect(await record(p, "evt-oc2", "accessories.discount")).toBeUndefined();
  });

  it("without email consent a marketing email is never scheduled; the thank-you still is", async () => {
    pipeline = await startPipeline("consent");
    const p = pipeline;
    const laptop = purchaseInput({
      id: "evt-noconsent",
      orderId: "ord-nc",
      occurredAt: ago(2),
      items: [item("laptops", "900.00")],
      customer: { consent: { sms: true } },
    });
    await p.publisher.publish(laptop as never);
    const [mail] = await p.sink.waitForMessages(1);
    expect(mail?.parsed.headers.get("x-followup-id")).toBe(
      followUpJobId("evt-noconsent", "big-ticket.thank-you"),
    );
    await processed(p, "evt-noconsent");
    expect(await record(p, "evt-noconsent", "accessories.discount")).toBeUndefined();
    expect(
      await p.followUps.getJob(followUpJobId("evt-noconsent", "accessories.discount")),
    ).toBeUndefined();
  });
});

describe("caps, history and metrics", () => {
  it("with whenCapped skip and no coalescing, a second and third thank-you on one day are skipped, recorded and counted", async () => {
    pipeline = await startPipeline("caps", { startWorker: false });
    const p = pipeline;
    const rulesFile = path.join(p.configDir, "rules.yaml");
    const doc = parseDocument(await readFile(rulesFile, "utf8"));
    doc.setIn(["frequencyCaps", "email"], doc.createNode([{ max: 1, per: "PT24H" }]));
    doc.setIn(["whenCapped", "thank-you"], "skip");
    const rules = doc.get("rules") as {
      items: { get(key: string): unknown; delete(key: string): void }[];
    };
    for (const rule of rules.items) rule.delete("coalesce");
    await writeFile(rulesFile, doc.toString());
    await p.startWorker();
    for (const id of ["evt-cap-1", "evt-cap-2", "evt-cap-3"]) {
      await p.publisher.publish(
        purchaseInput({ id, orderId: `o-${id}`, occurredAt: ago(2) }) as never,
      );
      await processed(p, id);
    }
    const states = await eventually(async () => {
      const found = await Promise.all(
        ["evt-cap-1", "evt-cap-2", "evt-cap-3"].map((id) => record(p, id, "thank-you.thank-you")),
      );
      const terminal = found.filter((r) => r && r.state !== "scheduled" && r.state !== "sending");
      return terminal.length === 3 ? found : undefined;
    }, "all three thank-yous to be decided");
    expect(states.map((r) => r?.state).sort()).toEqual(["sent", "skipped", "skipped"]);
    expect(
      states.filter((r) => r?.state === "skipped").every((r) => r?.reason?.code === "capped"),
    ).toBe(true);
    expect(p.sink.messages).toHaveLength(1);

    // The send is counted once its job has done what follows the sent state (references, history).
    const sentCounted = 'followups_sent_total{channel="email",kind="thank-you"} 1';
    const metrics = await eventually(async () => {
      const text = await (await fetch(`${http(p)}/metrics`)).text();
      return text.includes(sentCounted) ? text : undefined;
    }, "the send to be counted");
    expect(metrics).toContain(
      'followups_skipped_total{channel="email",kind="thank-you",reason="capped"} 2',
    );
    expect(metrics).toContain('followups_events_received_total{type="purchase.completed"} 3');
    expect(metrics).toMatch(/followups_queue_jobs\{queue="follow-ups",state="completed"\} \d+/);
  });

  it("counts a customer's purchases once each, so the fourth gets the loyalty discount", async () => {
    pipeline = await startPipeline("history");
    const p = pipeline;
    for (let i = 1; i <= 4; i++) {
      const id = `evt-loyal-${i}`;
      const event = purchaseInput({ id, orderId: `o-${id}`, occurredAt: ago(2) });
      await p.publisher.publish(event as never);
      await processed(p, id);
      if (i === 2) {
        // The same event again (a publisher retry) is taken in and must not count twice.
        await p.events.add("purchase.completed", event, { jobId: `${id}-again` });
        expect(await processed(p, `${id}-again`)).toBe("completed");
      }
    }
    expect(await record(p, "evt-loyal-3", "loyal-customer.discount")).toBeUndefined();
    expect((await record(p, "evt-loyal-4", "loyal-customer.discount"))?.state).toBe("scheduled");
  });

  it("accepts events over HTTP with the API token, and refuses them without", async () => {
    pipeline = await startPipeline("http-ingest");
    const p = pipeline;
    const body = JSON.stringify(
      purchaseInput({ id: "evt-http", orderId: "ord-http", occurredAt: ago(2) }),
    );
    const refused = await fetch(`${http(p)}/v1/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    expect(refused.status).toBe(401);
    const wrong = await fetch(`${http(p)}/v1/events`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer nope-nope-nope-nope" },
      body,
    });
    expect(wrong.status).toBe(401);
    for (let i = 0; i < 2; i++) {
      const accepted = await fetch(`${http(p)}/v1/events`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${p.envVars.API_TOKEN}`,
        },
        body,
      });
      expect(accepted.status).toBe(202);
      expect(await accepted.json()).toEqual({ eventId: "evt-http" });
    }
    const [mail] = await p.sink.waitForMessages(1);
    expect(mail?.parsed.headers.get("x-followup-id")).toBe(
      followUpJobId("evt-http", "thank-you.thank-you"),
    );
    // Both posts are taken and every follow-up they scheduled has run: a second send would be in.
    expect(await settledQueue(p.events, "purchase-events")).toEqual({ completed: 1, failed: 0 });
    expect(await settledQueue(p.followUps, "follow-ups")).toEqual({ completed: 1, failed: 0 });
    expect(p.sink.messages).toHaveLength(1);
  });
});

describe("a refund that names items", () => {
  const ago = (hours: number) =>
    DateTime.utc().minus({ hours }).startOf("second").toISO({ suppressMilliseconds: true }) ?? "";

  it("handing back the camera cancels the camera's accessories discount, also for a loyal customer", async () => {
    pipeline = await startPipeline("refund-by-step");
    const p = pipeline;
    const customer = { id: "cus-rv-loyal" };
    // Three earlier purchases: the fourth also matches loyal-customer (a discount, priority 60).
    for (let i = 0; i < 3; i++) {
      await p.publisher.publish(
        purchaseInput({
          id: `evt-rv-early-${i}`,
          orderId: `ord-rv-early-${i}`,
          occurredAt: ago(200 - i * 24),
          customer,
          items: [item("kitchenware", "75.00")],
        }) as never,
      );
      expect(await eventProcessed(p, `evt-rv-early-${i}`)).toBe("completed");
    }
    await p.publisher.publish(
      purchaseInput({
        id: "evt-rv-cam",
        orderId: "ord-rv-cam",
        occurredAt: ago(0),
        customer,
        items: [
          item("cameras", "300.00", { sku: "CAM-1", name: "Camera" }),
          item("kitchenware", "75.00", { sku: "PAN-1", name: "Pan" }),
        ],
      }) as never,
    );
    expect(await eventProcessed(p, "evt-rv-cam")).toBe("completed");
    // The camera earns the accessories discount (priority 70 beats loyal-customer's 60).
    await waitForState(p, "evt-rv-cam", "accessories.discount", "scheduled");

    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ref-rv-cam",
      occurredAt: ago(0),
      orderId: "ord-rv-cam",
      items: [{ sku: "CAM-1", quantity: 1 }],
    });
    expect(await eventProcessed(p, "ref-rv-cam")).toBe("completed");
    // As if the camera had never been bought: no accessories discount for it.
    const after = (await p.store.stepRecords("evt-rv-cam", ["accessories.discount"])).get(
      "accessories.discount",
    );
    expect(after?.state).toBe("cancelled");
  });
});

/** A rules file with one SMS check-in rule (due at once) and the given SMS caps. */
async function smsCheckInRules(
  p: PipelineHarness,
  caps: { max: number; per: string }[],
): Promise<void> {
  const rulesFile = path.join(p.configDir, "rules.yaml");
  const doc = parseDocument(await readFile(rulesFile, "utf8"));
  doc.setIn(["frequencyCaps", "sms"], doc.createNode(caps));
  const rules = doc.get("rules") as { items: unknown[] };
  rules.items.unshift(
    doc.createNode({
      id: "garden-care",
      priority: 190,
      final: true,
      when: { anyItem: { categories: ["garden-care"] } },
      steps: [{ kind: "check-in", channel: "sms", template: "check-in", delay: "PT0S" }],
    }),
  );
  await writeFile(rulesFile, doc.toString());
}

const gardenBuyer = (id: string, customerId: string) =>
  purchaseInput({
    id,
    orderId: `ord-${id}`,
    occurredAt: ago(1 / 60),
    customer: { id: customerId, phone: "+44 20 7946 0958" },
    items: [item("garden-care", "20.00")],
  });

describe("frequency-cap slots", () => {
  it("a retried SMS that a refund then cancels gives its cap slot back", async () => {
    pipeline = await startPipeline("cap-slot-back", { startWorker: false });
    const p = pipeline;
    await smsCheckInRules(p, [{ max: 1, per: "PT24H" }]);
    // A retry a minute later: long enough for the refund to arrive before it.
    await p.startWorker({ DELIVERY_RETRY_BASE_MS: 60_000, DELIVERY_RETRY_MAX_MS: 60_000 });

    // Twilio answers the first check-in with a 503: transient, retried later.
    p.twilio.failNext({ status: 503 });
    await p.publisher.publish(gardenBuyer("leak-a", "cus-leak") as never);
    await eventProcessed(p, "leak-a");
    await eventually(async () => {
      const r = await stepRecordOf(p, "leak-a", "garden-care.check-in");
      return r?.state === "scheduled" && (r.attempts ?? 0) >= 1 ? r : undefined;
    }, "the first check-in to wait for its retry");
    expect(p.twilio.messages).toHaveLength(0);

    // The order is returned before the retry: the check-in is cancelled, nothing was ever sent.
    await p.publisher.publish({
      type: "purchase.refunded",
      id: "leak-a-refund",
      occurredAt: ago(0),
      orderId: "ord-leak-a",
    });
    await eventProcessed(p, "leak-a-refund");
    await waitForState(p, "leak-a", "garden-care.check-in", "cancelled");

    const keys = new StoreKeys(shardScope(p.prefix, p.shardOfCustomer("cus-leak"), p.shards));
    const held = await p.redis.zrange(keys.capWindow("sms", "cus-leak"), "0", "-1");

    // The customer's next purchase: the SMS cap (1 a day) has room, nothing was sent today.
    await p.publisher.publish(gardenBuyer("leak-b", "cus-leak") as never);
    await eventProcessed(p, "leak-b");
    const outcome = await eventually(
      async () => {
        const r = await stepRecordOf(p, "leak-b", "garden-care.check-in");
        return r?.state === "sent" ? "sent" : undefined;
      },
      "the second check-in to be sent",
      8_000,
    ).catch(async () => {
      const r = await stepRecordOf(p, "leak-b", "garden-care.check-in");
      const job = await p.followUps.getJob(followUpJobId("leak-b", "garden-care.check-in"));
      const waitsH = job ? ((job.timestamp + job.delay - Date.now()) / 3_600_000).toFixed(1) : "?";
      return `not sent: ${r?.state}, its job waits ${waitsH} h more; the cancelled step's id is ${followUpJobId("leak-a", "garden-care.check-in")}; cap window after the refund held ${JSON.stringify(held)}, Twilio got ${p.twilio.messages.length} texts`;
    });
    expect(outcome).toBe("sent");
  });
});
