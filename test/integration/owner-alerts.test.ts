import { Queue } from "bullmq";
import { DateTime } from "luxon";
import { afterEach, describe, expect, it } from "vitest";
import { OWNER_ALERTS_QUEUE, queuePrefix } from "../../src/queue/names.js";
import { ownerSchedulerId } from "../../src/reports/owner-reports.js";
import { OwnerAlertQueue } from "../../src/store/owner-alerts.js";
import { SmsReferences } from "../../src/store/sms-references.js";
import { replyId } from "../../src/store/step-replies.js";
import { SuppressionList } from "../../src/store/suppression-list.js";
import { item, purchaseInput } from "../support/fixtures.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";
import { withOwners } from "../support/rules-config.js";
import { settledQueue } from "../support/settled-queue.js";
import { postTwilio } from "../support/webhooks.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await pipeline?.close();
  pipeline = undefined;
});

const PHONE = "+447400765432";
const MARIA = {
  name: "Maria",
  email: "maria@shop.example",
  timezone: "Europe/London",
  frequency: "weekly",
  alerts: true,
  alertWindow: "PT3S",
};

/** The worker's owner-alerts queue, as the test reads it; close it after. */
const alertsQueueOf = (p: PipelineHarness) =>
  new Queue(OWNER_ALERTS_QUEUE, {
    connection: p.redis,
    prefix: queuePrefix(p.prefix, OWNER_ALERTS_QUEUE, p.env.REDIS_CLUSTER),
  });

/** A worker whose owners get alerts, and a purchase of three months ago whose check-in was sent. */
async function checkedIn(
  label: string,
  owners: unknown[],
  spec: { orderId: string; customer: Record<string, unknown>; itemName: string },
): Promise<PipelineHarness> {
  pipeline = await startPipeline(label, {
    startWorker: false,
    env: { ADMIN_TOKENS: "ops:ops-token-0123456789" },
  });
  const p = pipeline;
  await withOwners(p.configDir, owners);
  await p.startWorker();
  const now = DateTime.utc().startOf("second");
  await p.publisher.publish(
    purchaseInput({
      id: "evt-alert",
      orderId: spec.orderId,
      occurredAt:
        now.setZone("Europe/London").minus({ months: 3 }).toUTC().toISO({
          suppressMilliseconds: true,
        }) ?? "",
      customer: { phone: PHONE, ...spec.customer },
      items: [item("televisions", "899.00", { name: spec.itemName })],
      store: { id: "corner-shop", name: "Corner Shop" },
    }) as never,
  );
  await p.twilio.waitForMessages(1);
  // Replies are filed against the number's latest check-in, remembered just after the send.
  const references = new SmsReferences(p.redis, p.prefix);
  const member = await new SuppressionList(p.redis, p.prefix).addressMember(PHONE);
  await eventually(async () => references.latestCheckIn(member), "the check-in to be on file");
  return p;
}

describe("unhappy replies reach the owner at once", () => {
  it("alerts the store's owner within seconds, bundles the rest of the window, and leaves happy replies alone", async () => {
    const p = await checkedIn(
      "owner-alerts",
      [
        MARIA,
        {
          name: "Olaf",
          email: "olaf@shop.example",
          timezone: "Europe/Berlin",
          frequency: "weekly",
          alerts: true,
          stores: ["another-store"],
        },
      ],
      {
        orderId: "ord-alert-7",
        customer: { id: "cus-alert", name: "Nina Berg" },
        itemName: "OLED TV 55 inch",
      },
    );
    const reply = (body: string, sid: string) =>
      postTwilio(p, "/webhooks/twilio/inbound", { From: PHONE, Body: body, MessageSid: sid });

    expect((await reply("All good, love it 10/10", "SMa1")).status).toBe(200);
    const sentAt = Date.now();
    expect((await reply("The screen cracked, 2/10", "SMa2")).status).toBe(200);
    const [alert] = await p.sink.waitForMessages(1, 30_000);
    expect(Date.now() - sentAt).toBeLessThan(60_000);
    expect(alert?.envelope.rcptTo).toEqual(["maria@shop.example"]);
    expect(alert?.parsed.subject).toBe("Your shop: an unhappy reply from Nina (order ord-alert-7)");
    const text = alert?.parsed.text ?? "";
    expect(text).toContain("“The screen cracked, 2/10”");
    expect(text).toContain("1 × OLED TV 55 inch");
    expect(text).toContain("score 2 of 10");
    expect(text).toContain("/console/customers/cus-alert");
    // The reply's id as `followups resolve` takes it: with `@<shard>` outside shard 0.
    const shard = await p.shardOf("evt-alert");
    const id = replyId({ eventId: "evt-alert", stepId: "big-ticket.check-in", n: 2, shard });
    expect(text.split(/\r?\n/)).toContain(`Once dealt with: followups resolve ${id}`);
    expect(text).not.toContain("love it");

    // Two more within the window: nothing at once, one email with both at its end.
    await reply("Still broken. Not happy.", "SMa3");
    await reply("And the stand is broken too", "SMa4");
    // Both are filed for Maria, bundled: they wait in her list, and the one alert job that can
    // send them waits for the window's end; every other alert job has finished.
    const maria = ownerSchedulerId(MARIA);
    const filedFor = (owner: string) =>
      p.logs.filter(
        (line) => line.msg === "unhappy reply filed for an owner's alert" && line.owner === owner,
      );
    await eventually(
      async () => (filedFor(maria).length === 3 ? true : undefined),
      "both later replies to be filed for Maria",
    );
    expect(filedFor(maria).map((line) => line.bundled)).toEqual([false, true, true]);
    expect(await new OwnerAlertQueue(p.redis, p.prefix).pending(maria)).toHaveLength(2);
    const alerts = alertsQueueOf(p);
    try {
      const unfinished = await alerts.getJobs(["waiting", "active", "delayed", "prioritized"]);
      expect(unfinished.map((job) => job.id)).toEqual([expect.stringMatching(`^alert-${maria}-`)]);
      const [windowEnd] = unfinished;
      expect(await windowEnd?.getState()).toBe("delayed");
      // Due at the window's end (BullMQ scores a delayed job as due time × 4096 + a counter).
      const score = await p.redis.zscore(alerts.keys.delayed as string, windowEnd?.id ?? "");
      expect(Math.floor(Number(score) / 4096)).toBeGreaterThanOrEqual(sentAt + 2_000);
      expect(p.sink.messages).toHaveLength(1);
    } finally {
      await alerts.close();
    }
    const [, bundle] = await p.sink.waitForMessages(2, 30_000);
    expect(bundle?.parsed.subject).toBe("Your shop: 2 unhappy replies");
    expect(bundle?.parsed.text).toContain("Still broken. Not happy.");
    expect(bundle?.parsed.text).toContain("And the stand is broken too");
    // The owner of another store heard nothing (nothing was filed for him), and nothing more
    // comes: every alert job has finished, retries included.
    expect(filedFor(ownerSchedulerId({ email: "olaf@shop.example" }))).toEqual([]);
    const settled = alertsQueueOf(p);
    try {
      expect(await settledQueue(settled, "the alerts")).toEqual({ completed: 2, failed: 0 });
    } finally {
      await settled.close();
    }
    expect(p.sink.messages.map((m) => m.envelope.rcptTo)).toEqual([
      ["maria@shop.example"],
      ["maria@shop.example"],
    ]);
    const metrics = await (await fetch(`${p.worker?.httpAddress}/metrics`)).text();
    expect(metrics).toMatch(/^followups_alerts_sent_total 2$/m);
    expect(metrics).toMatch(/^followups_alerts_bundled_total 1$/m);
  });

  it("links the customer's timeline and nothing else: no address a customer or publisher wrote", async () => {
    const p = await checkedIn("alert-links", [MARIA], {
      orderId: "https://order.evil.example/o",
      customer: { id: "cus-links", name: "https://name.evil.example/n" },
      itemName: "TV https://item.evil.example/i",
    });
    const body = "Broken, 1/10. Your bank details changed: https://reply.evil.example/login";
    await postTwilio(p, "/webhooks/twilio/inbound", {
      From: PHONE,
      Body: body,
      MessageSid: "SMl1",
    });
    const [alert] = await p.sink.waitForMessages(1, 30_000);
    const html = String(alert?.parsed.html ?? "");
    // The words are all there, as text.
    expect(html).toContain("https://reply.evil.example/login");
    expect(html).toContain("https://item.evil.example/i");
    // The one link is the timeline's, at PUBLIC_URL.
    const links = [...html.matchAll(/<a\b[^>]*href="([^"]*)"/g)].map((m) => m[1]);
    expect(links).toEqual(["https://followups.test/console/customers/cus-links"]);
  });
});
