import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { followUpJobId } from "../../src/queue/names.js";
import { bucketOf, StoreKeys, shardScope } from "../../src/store/keys.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventually,
  type PipelineHarness,
  promoteStep,
  startPipeline,
  TWILIO_FROM,
} from "../support/pipeline-harness.js";
import { settledQueue } from "../support/settled-queue.js";
import { todaysReport } from "../support/todays-report.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

/** A purchase made two hours ago: its one-hour thank-you is due now, within its grace period. */
function recentPurchase(id: string, spec: Parameters<typeof purchaseInput>[0] = {}) {
  const occurredAt = DateTime.utc()
    .minus({ hours: 2 })
    .startOf("second")
    .toISO({ suppressMilliseconds: true });
  return purchaseInput({ id, orderId: `ord-${id}`, occurredAt: occurredAt ?? "", ...spec });
}

const tv = (id: string, spec: Parameters<typeof purchaseInput>[0] = {}) =>
  recentPurchase(id, {
    items: [
      item("televisions", "899.00", { name: "OLED TV 55 inch", sku: "TV-55" }),
      item("cables", "25.00", { name: "HDMI cable" }),
    ],
    ...spec,
  });

async function stepRecord(p: PipelineHarness, eventId: string, stepId: string) {
  return (await p.store.stepRecords(eventId, [stepId])).get(stepId);
}

describe("the pipeline on real parts", () => {
  it("sends the thank-you email with the customer's name and items", async () => {
    pipeline = await startPipeline("thanks");
    await pipeline.publisher.publish(tv("evt-thanks") as never);

    const [mail] = await pipeline.sink.waitForMessages(1);
    expect(mail?.envelope.rcptTo).toEqual(["ana@example.com"]);
    expect(mail?.parsed.subject).toContain("Ana");
    expect(mail?.parsed.text).toContain("OLED TV 55 inch");
    expect(mail?.parsed.text).toContain("HDMI cable");
    expect(mail?.parsed.html).toContain("OLED TV 55 inch");
    const followUpId = followUpJobId("evt-thanks", "big-ticket.thank-you");
    expect(mail?.parsed.headers.get("x-followup-id")).toBe(followUpId);
    const record = await eventually(async () => {
      const r = await stepRecord(pipeline as PipelineHarness, "evt-thanks", "big-ticket.thank-you");
      return r?.state === "sent" ? r : undefined;
    }, "the thank-you to be recorded as sent");
    expect(record.providerId).toBeTruthy();
    // Logs carry ids, never the customer's name, address or number.
    const logs = JSON.stringify(pipeline.logs);
    expect(logs).toContain("evt-thanks");
    for (const personal of ["ana@example.com", "Ana Novak", "+442079460958", "OLED TV"]) {
      expect(logs).not.toContain(personal);
    }
  });

  it("schedules the check-in three calendar months out, and sends the SMS when promoted", async () => {
    pipeline = await startPipeline("checkin");
    // Bought at noon yesterday on the customer's (London) clock; noon is in no DST gap.
    const bought = DateTime.now()
      .setZone("Europe/London")
      .minus({ days: 1 })
      .set({ hour: 12, minute: 0, second: 0, millisecond: 0 });
    const event = tv("evt-checkin", {
      occurredAt: bought.toISO({ suppressMilliseconds: true }) ?? "",
    });
    await pipeline.publisher.publish(event as never);
    const jobId = followUpJobId("evt-checkin", "big-ticket.check-in");
    const record = await eventually(
      () => stepRecord(pipeline as PipelineHarness, "evt-checkin", "big-ticket.check-in"),
      "the check-in to be planned",
    );

    // Three calendar months by plain arithmetic, not the planner's own luxon call: noon on the
    // same day of the month, or on the month's last day when it is shorter.
    const months = bought.year * 12 + bought.month - 1 + 3;
    const [year, month] = [Math.floor(months / 12), (months % 12) + 1];
    const day = Math.min(bought.day, new Date(Date.UTC(year, month, 0)).getUTCDate());
    const expectedDue = DateTime.fromObject(
      { year, month, day, hour: 12 },
      { zone: "Europe/London" },
    );
    expect(record).toMatchObject({ state: "scheduled", dueAt: expectedDue.toMillis() });
    // Months out, it waits in the compact schedule, not as a BullMQ job.
    expect(await pipeline.followUps.getJob(jobId)).toBeUndefined();
    const keys = new StoreKeys(
      shardScope(pipeline.prefix, await pipeline.shardOf("evt-checkin"), pipeline.shards),
    );
    const bucket = keys.scheduleBucket(bucketOf(expectedDue.toMillis()));
    expect(await pipeline.redis.lrange(bucket, 0, -1)).toEqual(["big-ticket.check-in evt-checkin"]);

    await promoteStep(pipeline, "evt-checkin", "big-ticket.check-in");
    const [sms] = await pipeline.twilio.waitForMessages(1);
    expect(sms?.to).toBe("+442079460958");
    expect(sms?.from).toBe(TWILIO_FROM);
    expect(sms?.body).toMatch(/Ana/);
    const sent = await eventually(async () => {
      const r = await stepRecord(pipeline as PipelineHarness, "evt-checkin", "big-ticket.check-in");
      return r?.state === "sent" ? r : undefined;
    }, "the check-in to be recorded as sent");
    expect(sent.providerId).toBe(sms?.sid);
  });

  it("sends one message when the same event is published twice", async () => {
    pipeline = await startPipeline("twice");
    const event = recentPurchase("evt-twice");
    await pipeline.publisher.publish(event as never);
    await pipeline.sink.waitForMessages(1);
    // Published again after the first delivery completed (and its jobs were cleaned up).
    await pipeline.events.add("purchase.completed", event, { jobId: "evt-twice-again" });
    await eventually(async () => {
      const job = await pipeline?.events.getJob("evt-twice-again");
      return (await job?.getState()) === "completed" ? true : undefined;
    }, "the second publish to be processed");
    // Anything the second intake scheduled has run once no follow-up is left unfinished.
    expect(await settledQueue(pipeline.followUps, "follow-ups")).toEqual({
      completed: 1,
      failed: 0,
    });
    expect(pipeline.sink.messages).toHaveLength(1);
  });

  it("retries an SMTP 451 and delivers once", async () => {
    pipeline = await startPipeline("smtp451");
    pipeline.sink.failNext({ code: 451, message: "4.3.0 try again later" });
    await pipeline.publisher.publish(recentPurchase("evt-451") as never);

    const [mail] = await pipeline.sink.waitForMessages(1);
    expect(mail?.envelope.rcptTo).toEqual(["ana@example.com"]);
    expect(pipeline.sink.attempts).toBe(2);
    const record = await eventually(async () => {
      const r = await stepRecord(pipeline as PipelineHarness, "evt-451", "thank-you.thank-you");
      return r?.state === "sent" ? r : undefined;
    }, "the retried thank-you to be sent");
    expect(record.attempts).toBe(2);
  });

  it("skips a late-planned thank-you once the grace period of the due time it missed ends", async () => {
    pipeline = await startPipeline("late-grace", { env: { DELIVERY_ATTEMPTS: "100" } });
    // Due an hour after the purchase, with P2D of grace: that grace ends 6 s from now. Planned now,
    // it is due now; SMTP refuses it (451) until then, and every retry asks the guard again, which
    // must count the grace from the due time it missed, not give it two more days from now.
    const graceEnds = DateTime.utc().plus({ seconds: 6 }).startOf("second");
    // The two days are the customer's (London's) calendar days, 47 or 49 hours at a clock change.
    const occurredAt = graceEnds
      .setZone("Europe/London")
      .minus({ days: 2, hours: 1 })
      .toUTC()
      .toISO({ suppressMilliseconds: true });
    pipeline.sink.failNext(
      ...Array.from({ length: 200 }, () => ({ code: 451, message: "4.3.0 try again later" })),
    );
    await pipeline.publisher.publish(
      recentPurchase("evt-late", { occurredAt: occurredAt ?? "" }) as never,
    );
    const planned = await eventually(
      () => stepRecord(pipeline as PipelineHarness, "evt-late", "thank-you.thank-you"),
      "the late thank-you to be planned",
    );
    expect(planned.graceEndsAt).toBe(graceEnds.toMillis());
    const record = await eventually(
      async () => {
        const r = await stepRecord(pipeline as PipelineHarness, "evt-late", "thank-you.thank-you");
        return r?.state === "scheduled" || r?.state === "sending" ? undefined : r;
      },
      "the late thank-you to end",
      20_000,
    );
    expect(record.state).toBe("skipped");
    expect(record.reason?.code).toBe("past-due");
    expect(record.reason?.text).toContain("planned late");
    expect(record.attempts).toBeGreaterThan(1);
    expect(pipeline.sink.messages).toHaveLength(0);
  });

  it("fails an SMTP 550 at once, with the reason, and does not retry", async () => {
    pipeline = await startPipeline("smtp550");
    pipeline.sink.failNext({ code: 550, message: "5.1.1 no such user" });
    await pipeline.publisher.publish(recentPurchase("evt-550") as never);

    const record = await eventually(async () => {
      const r = await stepRecord(pipeline as PipelineHarness, "evt-550", "thank-you.thank-you");
      return r?.state === "failed" ? r : undefined;
    }, "the thank-you to fail");
    expect(record.reason?.code).toBe("permanent 550");
    expect(record.attempts).toBe(1);
    // The job's end, not the record's: a retry would keep it delayed, so none is on its way.
    expect(await settledQueue(pipeline.followUps, "follow-ups")).toEqual({
      completed: 0,
      failed: 1,
    });
    const job = await pipeline.followUps.getJob(followUpJobId("evt-550", "thank-you.thank-you"));
    expect(await job?.getState()).toBe("failed");
    expect(job?.failedReason).toMatch(/550/);
    expect(pipeline.sink.attempts).toBe(1);
    expect(pipeline.sink.messages).toHaveLength(0);
  });

  it("fails an SMTP 552 5.3.4 to RCPT TO (too big for the system) at once, reported in words; retries a 552 5.2.2 (mailbox full)", async () => {
    pipeline = await startPipeline("smtp552rcpt");
    const p = pipeline;
    p.sink.failNext({
      code: 552,
      message: "5.3.4 <ana@customer.example>: message too big for system",
    });
    await p.publisher.publish(recentPurchase("evt-552-big") as never);
    const failed = await eventually(async () => {
      const r = await stepRecord(p, "evt-552-big", "thank-you.thank-you");
      // Failed, or scheduled again to be retried (with the failure as its reason).
      return r?.state === "failed" || r?.reason ? r : undefined;
    }, "the thank-you to fail, or wait for its retry");
    expect(failed).toMatchObject({
      state: "failed",
      attempts: 1,
      reason: {
        code: "permanent 552",
        text: "the SMTP server rejected the message at RCPT (SMTP 552 5.3.4)",
      },
    });

    p.sink.failNext({ code: 552, message: "5.2.2 <ana@customer.example>: mailbox full" });
    await p.publisher.publish(recentPurchase("evt-552-full") as never);
    await p.sink.waitForMessages(1);
    const sent = await eventually(async () => {
      const r = await stepRecord(p, "evt-552-full", "thank-you.thank-you");
      return r?.state === "sent" ? r : undefined;
    }, "the thank-you to go on its second attempt");
    expect(sent.attempts).toBe(2);
    expect((await stepRecord(p, "evt-552-big", "thank-you.thank-you"))?.attempts).toBe(1);
    expect(p.sink.messages).toHaveLength(1);

    // The owners' report says why the first one failed, in words.
    expect((await todaysReport(p)).topFailureReasons).toEqual([
      {
        code: "permanent 552",
        words:
          "the mail server refused the message for good (552: most often its size, a mailbox over its limit, or the server's policy)",
        count: 1,
      },
    ]);
  });

  it("retries a Twilio 429 and fails a Twilio 21211 for good", async () => {
    pipeline = await startPipeline("twilio");
    // Two customers: one customer's purchases within the hour would share one thank-you.
    await pipeline.publisher.publish(tv("evt-429") as never);
    await pipeline.publisher.publish(
      tv("evt-21211", { customer: { id: "cus-2", phone: "+44 20 7946 0959" } }) as never,
    );
    await pipeline.sink.waitForMessages(2);

    pipeline.twilio.failNext({ status: 429, code: 20429 });
    await promoteStep(pipeline, "evt-429", "big-ticket.check-in");
    const [sms] = await pipeline.twilio.waitForMessages(1);
    expect(sms?.to).toBe("+442079460958");
    expect(pipeline.twilio.requests).toBe(2);

    pipeline.twilio.failNext({
      status: 400,
      code: 21211,
      message: "The 'To' number is not a valid phone number.",
    });
    await promoteStep(pipeline, "evt-21211", "big-ticket.check-in");
    const record = await eventually(async () => {
      const r = await stepRecord(pipeline as PipelineHarness, "evt-21211", "big-ticket.check-in");
      return r?.state === "failed" ? r : undefined;
    }, "the check-in to fail");
    expect(record.reason?.code).toBe("permanent 21211");
    expect(record.attempts).toBe(1);
    // Two thank-yous and the retried check-in completed, the doomed one failed: no retry is left.
    expect(await settledQueue(pipeline.followUps, "follow-ups")).toEqual({
      completed: 3,
      failed: 1,
    });
    expect(pipeline.twilio.requests).toBe(3);
    expect(pipeline.twilio.messages).toHaveLength(1);
  });

  it("fails an invalid event with its reason, keeps it, and keeps working", async () => {
    pipeline = await startPipeline("invalid");
    await pipeline.events.add(
      "purchase.completed",
      { id: "evt-bad", occurredAt: "yesterday", items: [] },
      { jobId: "evt-bad" },
    );
    const failed = await eventually(async () => {
      const job = await pipeline?.events.getJob("evt-bad");
      // Read again once failed: a job read just before it failed has no failed reason yet.
      return (await job?.getState()) === "failed" ? pipeline?.events.getJob("evt-bad") : undefined;
    }, "the invalid event to fail");
    expect(failed.failedReason).toContain("occurredAt: expected an ISO-8601 date-time");
    expect(failed.failedReason).toContain("items: expected at least one item");
    expect(failed.attemptsMade).toBe(1);

    await pipeline.publisher.publish(recentPurchase("evt-good") as never);
    await pipeline.sink.waitForMessages(1);
  });

  it("fails a job whose data is not JSON with its reason, once, and keeps working", async () => {
    pipeline = await startPipeline("not-json");
    const p = pipeline;
    // Damaged, or written by a client that is not BullMQ's. BullMQ's worker threw on it before
    // our processor ran: the job stayed active, was taken again after each stall and logged with
    // a stack every minute, for ever, and was never refused.
    await p.events.add(
      "purchase.completed",
      { id: "evt-not-json" },
      { jobId: "evt-not-json", delay: 1_500 },
    );
    await p.redis.hset(p.events.toKey("evt-not-json"), "data", '{"id": "evt-not-json", cut');
    const failed = await eventually(async () => {
      const job = await p.redis.hmget(p.events.toKey("evt-not-json"), "finishedOn", "failedReason");
      return job[0] ? job[1] : undefined;
    }, "the job to fail");
    expect(failed).toBe(
      "invalid event: (event): the job's data is not JSON; publish the event again",
    );
    expect(await p.events.getFailedCount()).toBe(1);
    await p.publisher.publish(recentPurchase("evt-good-2") as never);
    await p.sink.waitForMessages(1);
  });
});
