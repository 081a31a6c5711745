import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { eventJobId, followUpJobId } from "../../src/queue/names.js";
import { scheduleEntry } from "../../src/store/follow-up-schedule.js";
import { bucketOf, StoreKeys } from "../../src/store/keys.js";
import { legacyFollowUpJobId } from "../../src/store/legacy-layout.js";
import { purchaseOfFields } from "../../src/store/purchase-fields.js";
import { item, purchase, purchaseInput } from "../support/fixtures.js";
import {
  eventually,
  type PipelineHarness,
  startPipeline,
  whereWaiting,
} from "../support/pipeline-harness.js";

/**
 * What a pending follow-up costs depends on Redis keeping its hashes as compact listpacks (every
 * value at most 64 bytes by default). These tests pin the layout that keeps them so.
 */
let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const encoding = (p: PipelineHarness, key: string) => p.redis.object("ENCODING", key);

describe("the stored shape of a pending purchase", () => {
  it("keeps the step states, the purchase and each scheduled step compact", async () => {
    pipeline = await startPipeline("layout");
    const p = pipeline;
    const event = purchaseInput({
      id: "evt-layout-2026-11-30-000001",
      orderId: "ord-layout-1",
      occurredAt: DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "",
      items: [item("televisions", "899.00", { name: "OLED TV 55 inch", sku: "TV-55" })],
    });
    await p.publisher.publish(event as never);
    const id = "evt-layout-2026-11-30-000001";
    await eventually(
      async () => (await whereWaiting(p, id, "big-ticket.check-in")) ?? undefined,
      "the check-in to be scheduled",
    );

    const keys = new StoreKeys(p.prefix);
    const recordKey = keys.eventRecord(id);
    const purchaseKey = keys.purchase(id);
    expect(await encoding(p, recordKey)).toBe("listpack");
    // The check-in waits three calendar months as one line in its minute's bucket, not as a job.
    expect(await whereWaiting(p, id, "big-ticket.check-in")).toBe("schedule");
    const checkIn = (await p.store.stepRecords(id, ["big-ticket.check-in"])).get(
      "big-ticket.check-in",
    );
    const bucketKey = keys.scheduleBucket(bucketOf(checkIn?.dueAt ?? 0));
    expect(await p.redis.lrange(bucketKey, 0, -1)).toEqual([
      scheduleEntry(id, "big-ticket.check-in"),
    ]);
    expect(await encoding(p, bucketKey)).toBe("quicklist");
    expect(await p.redis.pttl(bucketKey)).toBeGreaterThan(90 * 86_400_000);
    // The purchase, compressed, in the record's fields of at most 64 bytes: no key of its own.
    const fields = await p.redis.hgetallBuffer(recordKey);
    const stored = purchaseOfFields(fields);
    expect(stored?.length).toBeGreaterThan(64);
    expect(stored?.length).toBeLessThan(JSON.stringify(event).length / 2);
    expect(Math.max(...Object.values(fields).map((value) => value.length))).toBeLessThanOrEqual(64);
    expect(await p.redis.exists(purchaseKey)).toBe(0);
    expect(await p.store.loadEvent(id)).toMatchObject({ id, orderId: "ord-layout-1" });
    expect(await p.redis.pttl(recordKey)).toBeGreaterThan(90 * 86_400_000);
  });

  it("keeps a follow-up job a listpack with a delay of three years", async () => {
    pipeline = await startPipeline("layout-job", { startWorker: false });
    const jobId = followUpJobId("evt-far-future", "loyalty.anniversary");
    await pipeline.followUps.add(
      "email",
      { e: "evt-far-future", s: "loyalty.anniversary" },
      { jobId, delay: 3 * 365 * 86_400_000 },
    );
    expect(await encoding(pipeline, `${pipeline.prefix}:follow-ups:${jobId}`)).toBe("listpack");
  });

  it("sends a follow-up whose purchase an earlier version stored inside the event record, then scrubs it", async () => {
    pipeline = await startPipeline("layout-legacy");
    const p = pipeline;
    const now = Date.now();
    const event = purchase({
      id: "evt-legacy",
      items: [item("kitchenware", "75.00", { name: "Cast iron pan" })],
    });
    const key = new StoreKeys(p.prefix).eventRecord("evt-legacy");
    await p.redis.hset(key, {
      event: JSON.stringify(event),
      m: JSON.stringify({ o: event.orderId, n: event.customer.name }),
      h: "0",
      "s:thank-you.thank-you": JSON.stringify({ s: "scheduled", t: now, d: now, a: 0 }),
    });
    await p.followUps.add(
      "email",
      { e: "evt-legacy", s: "thank-you.thank-you" },
      { jobId: followUpJobId("evt-legacy", "thank-you.thank-you") },
    );

    const [mail] = await p.sink.waitForMessages(1);
    expect(mail?.parsed.text).toContain("Cast iron pan");
    await eventually(
      async () => ((await p.redis.hexists(key, "event")) === 0 ? true : undefined),
      "the legacy purchase to be scrubbed once its only step was sent",
    );
    expect(await p.store.loadEvent("evt-legacy")).toBeUndefined();
    expect(await p.store.summary("evt-legacy")).toEqual({
      orderId: event.orderId,
      customerName: "Ana Novak",
    });
  });

  it("keeps a follow-up an earlier version queued under its longer job id: no second job, and a refund removes it", async () => {
    pipeline = await startPipeline("layout-legacy-job");
    const p = pipeline;
    const id = "evt-old-job";
    const occurredAt = DateTime.utc().startOf("second").toISO({ suppressMilliseconds: true }) ?? "";
    const event = purchaseInput({
      id,
      orderId: "ord-old-job",
      occurredAt,
      items: [item("televisions", "899.00", { name: "OLED TV 55 inch" })],
    });
    const intakeDone = async () =>
      (await p.events.getJobState(eventJobId(id))) === "completed" ? true : undefined;
    await p.publisher.publish(event as never);
    await eventually(intakeDone, "the purchase to be planned");

    // As an earlier version left it: the check-in's job under the 23-character id, and no
    // place in the compact schedule.
    const checkIn = (await p.store.stepRecords(id, ["big-ticket.check-in"])).get(
      "big-ticket.check-in",
    );
    if (!checkIn) throw new Error("the check-in was not scheduled");
    const keys = new StoreKeys(p.prefix);
    await p.redis.del(keys.scheduleBucket(bucketOf(checkIn.dueAt)));
    await p.followUps.add(
      "sms",
      { e: id, s: "big-ticket.check-in" },
      {
        jobId: legacyFollowUpJobId(id, "big-ticket.check-in"),
        delay: checkIn.dueAt - Date.now(),
      },
    );

    // Published again once its intake job is gone: planned again, but no second job.
    await p.events.remove(eventJobId(id));
    await p.publisher.publish(event as never);
    await eventually(intakeDone, "the purchase to be planned again");
    expect(await p.followUps.getJob(followUpJobId(id, "big-ticket.check-in"))).toBeUndefined();
    expect(await whereWaiting(p, id, "big-ticket.check-in")).toBeUndefined();
    expect(await p.followUps.getJob(legacyFollowUpJobId(id, "big-ticket.check-in"))).toBeDefined();

    await p.publisher.publish({
      type: "purchase.refunded",
      id: "ref-old-job",
      occurredAt,
      orderId: "ord-old-job",
    });
    await eventually(
      async () =>
        (await p.followUps.getJob(legacyFollowUpJobId(id, "big-ticket.check-in"))) === undefined
          ? true
          : undefined,
      "the refund to remove the earlier version's job",
    );
  });
});
