import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { DateTime } from "luxon";
import { afterEach, expect, it } from "vitest";
import { followUpJobId } from "../../src/queue/names.js";
import { DeliveryLedger, sumHours } from "../../src/store/delivery-ledger.js";
import { ChannelRateLimiter } from "../../src/store/rate-limiter.js";
import { SuppressionList } from "../../src/store/suppression-list.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventually,
  type PipelineHarness,
  promoteStep,
  startPipeline,
} from "../support/pipeline-harness.js";
import { spawnWorker, type WorkerProcess } from "../support/worker-process.js";

let pipeline: PipelineHarness | undefined;
let child: WorkerProcess | undefined;
afterEach(async () => {
  await child?.stop();
  child = undefined;
  await pipeline?.close();
  pipeline = undefined;
});

const twoHoursAgo = () =>
  DateTime.utc().minus({ hours: 2 }).startOf("second").toISO({ suppressMilliseconds: true }) ?? "";

function smallPurchase(id: string) {
  return purchaseInput({
    id,
    orderId: `ord-${id}`,
    occurredAt: twoHoursAgo(),
    items: [item("kitchenware", "20.00")],
  });
}

async function editRules(p: PipelineHarness, edit: (text: string) => string): Promise<void> {
  const file = path.join(p.configDir, "rules.yaml");
  await writeFile(file, edit(await readFile(file, "utf8")));
}

it("applies a valid rules edit without a restart, and keeps the old rules on an invalid one", async () => {
  pipeline = await startPipeline("reload");
  const p = pipeline;
  const worker = p.worker;
  if (!worker) throw new Error("worker not started");
  const original = worker.configVersion();

  // 20.00 is below the shipped 50 threshold: nothing is planned.
  await p.publisher.publish(smallPurchase("evt-before") as never);
  await eventually(
    async () =>
      (await (await p.events.getJob("evt-before"))?.getState()) === "completed" ? true : undefined,
    "intake",
  );
  // Not planned at all (a planned thank-you would wait its hour, so no email says nothing).
  expect([...(await p.store.allStepRecords("evt-before")).keys()]).toEqual([]);
  expect(p.sink.messages).toHaveLength(0);

  await editRules(p, (text) =>
    text.replace(`total: { min: { GBP: "50", USD: "60", EUR: "55" } }`, "total: { min: 10 }"),
  );
  await eventually(
    async () => (worker.configVersion() !== original ? true : undefined),
    "the valid edit to be applied",
  );
  const edited = worker.configVersion();
  await p.publisher.publish(smallPurchase("evt-after") as never);
  const [mail] = await p.sink.waitForMessages(1);
  expect(mail?.parsed.headers.get("x-followup-id")).toBe(
    followUpJobId("evt-after", "thank-you.thank-you"),
  );

  await editRules(p, (text) => text.replace("delay: PT1H", "delay: one hour"));
  await eventually(
    async () =>
      p.logs.some((line) => line.msg === "invalid config edit; keeping the previous version")
        ? true
        : undefined,
    "the invalid edit to be rejected",
  );
  expect(worker.configVersion()).toBe(edited);
  const problems = p.logs
    .filter((line) => line.msg === "config edit rejected")
    .map((line) => String(line.problem));
  expect(
    problems.some((text) =>
      /rules\.yaml:\d+:\d+ rules\[\d\]\.steps\[0\]\.delay: expected an ISO-8601 duration/.test(
        text,
      ),
    ),
  ).toBe(true);

  // Still working, on the last valid rules.
  await p.publisher.publish(smallPurchase("evt-still") as never);
  await p.sink.waitForMessages(2);

  // Undoing the bad edit says so: the last line an operator saw said the edit was invalid.
  await editRules(p, (text) => text.replace("delay: one hour", "delay: PT1H"));
  const restored = await eventually(
    async () =>
      p.logs.find(
        (line) => line.msg === "config valid again; the version in force stays as it was",
      ),
    "the undone edit to be reported",
  );
  expect(restored.version).toBe(edited);
  expect(worker.configVersion()).toBe(edited);
  // A later good edit is applied: the rejected one left nothing behind.
  await editRules(p, (text) => text.replace("total: { min: 10 }", "total: { min: 30 }"));
  await eventually(
    async () => (worker.configVersion() !== edited ? true : undefined),
    "the good edit after a rejected one to be applied",
  );
  await p.publisher.publish(smallPurchase("evt-raised") as never);
  await eventually(
    async () =>
      (await (await p.events.getJob("evt-raised"))?.getState()) === "completed" ? true : undefined,
    "intake under the raised threshold",
  );
  const raised = await p.store.stepRecords("evt-raised", ["thank-you.thank-you"]);
  expect(raised.get("thank-you.thank-you")).toBeUndefined();
  expect(p.sink.messages).toHaveLength(2);
});

it("cancels a step whose rule was removed at once, counted under the channel and kind it was planned with", async () => {
  pipeline = await startPipeline("rule-removed");
  const p = pipeline;
  const worker = p.worker;
  if (!worker) throw new Error("worker not started");
  const tv = purchaseInput({
    id: "evt-removed",
    orderId: "ord-evt-removed",
    occurredAt: twoHoursAgo(),
    items: [item("televisions", "700.00")],
  });
  await p.publisher.publish(tv as never);
  await p.sink.waitForMessages(1);

  const before = worker.configVersion();
  await editRules(p, (text) => text.replace("- id: big-ticket", "- id: big-ticket-2027"));
  await eventually(
    async () => (worker.configVersion() !== before ? true : undefined),
    "the rules edit to be applied",
  );
  // Re-planned when the worker loads the edit, not months later when it would have been due.
  const cancelled = await eventually(async () => {
    const r = (await p.store.stepRecords("evt-removed", ["big-ticket.check-in"])).get(
      "big-ticket.check-in",
    );
    return r?.state === "cancelled" ? r : undefined;
  }, "the check-in of the removed rule to be cancelled");
  expect(cancelled.reason?.code).toBe("rule-removed");
  expect(cancelled).toMatchObject({ channel: "sms", kind: "check-in" });

  const counts = sumHours(
    await new DeliveryLedger(p.redis, p.prefix).hours(
      Date.now() - 7_200_000,
      Date.now() + 3_600_000,
    ),
  );
  expect(counts.get("cancelled|sms|check-in|big-ticket")).toBe(1);
  expect(counts.get("reason|cancelled|sms|check-in|rule-removed")).toBe(1);
  expect([...counts.keys()].filter((field) => field.includes("unknown"))).toEqual([]);
  expect(p.twilio.requests).toBe(0);
});

it("suppresses a number Twilio reports as opted out (21610) and sends it nothing more", async () => {
  pipeline = await startPipeline("optout");
  const p = pipeline;
  // Two customers with one number: one customer's purchases would share one thank-you.
  const tv = (id: string) =>
    purchaseInput({
      id,
      orderId: `ord-${id}`,
      occurredAt: twoHoursAgo(),
      customer: { id: `cus-${id}` },
      items: [item("televisions", "700.00")],
    });
  await p.publisher.publish(tv("evt-stop-1") as never);
  await p.publisher.publish(tv("evt-stop-2") as never);
  await p.sink.waitForMessages(2);

  p.twilio.failNext({
    status: 400,
    code: 21610,
    message: "Attempt to send to unsubscribed recipient",
  });
  await promoteStep(p, "evt-stop-1", "big-ticket.check-in");
  await eventually(async () => {
    const r = (await p.store.stepRecords("evt-stop-1", ["big-ticket.check-in"])).get(
      "big-ticket.check-in",
    );
    return r?.state === "failed" ? r : undefined;
  }, "the first check-in to fail");
  expect(
    await new SuppressionList(p.redis, p.prefix).isSuppressed("sms", { address: "+442079460958" }),
  ).toBe(true);

  await promoteStep(p, "evt-stop-2", "big-ticket.check-in");
  const skipped = await eventually(async () => {
    const r = (await p.store.stepRecords("evt-stop-2", ["big-ticket.check-in"])).get(
      "big-ticket.check-in",
    );
    return r?.state === "skipped" ? r : undefined;
  }, "the second check-in to be skipped");
  expect(skipped.reason?.code).toBe("opted-out");
  expect(p.twilio.requests).toBe(1);
});

it("honours a channel's rate limit across two worker processes", async () => {
  const rate = 5;
  const count = 20;
  pipeline = await startPipeline("rate", {
    startWorker: false,
    env: { DELIVERY_CONCURRENCY: "8" },
  });
  const p = pipeline;
  const worker = await p.startWorker();
  const second = spawnWorker({ ...p.envVars, LOG_LEVEL: "info" });
  child = second;
  const childLogs = () =>
    second
      .output()
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  const sentBy = (logs: Record<string, unknown>[], idPrefix: string) =>
    logs.filter((l) => l.msg === "follow-up sent" && String(l.eventId).startsWith(idPrefix)).length;
  const publish = async (id: string) =>
    p.publisher.publish(
      purchaseInput({
        id,
        orderId: `o-${id}`,
        occurredAt: twoHoursAgo(),
        customer: { id: `c-${id}` },
      }) as never,
    );

  // Warm up, unlimited: each process's first send opens its SMTP connection, which took 130 to
  // 330 ms here; that latency is the process's, not the limiter's, so it stays out of the timing.
  await eventually(
    async () => (childLogs().some((l) => l.msg === "followups worker started") ? true : undefined),
    "the second worker process to start",
    15_000,
  );
  let warmUps = 0;
  while (sentBy(p.logs, "evt-warm") === 0 || sentBy(childLogs(), "evt-warm") === 0) {
    if (warmUps >= 40) throw new Error("one worker process never took a warm-up follow-up");
    for (let i = 0; i < 8; i++) await publish(`evt-warm-${warmUps++}`);
    await p.sink.waitForMessages(warmUps, 10_000);
  }

  const before = worker.configVersion();
  await editRules(p, (text) =>
    text
      .replace(/email:\s*\{\s*ratePerSecond: \d+\s*\}/, `email: { ratePerSecond: ${rate} }`)
      .replace("ratePerSecond: 1000", `ratePerSecond: ${rate}`),
  );
  await eventually(
    async () => (worker.configVersion() !== before ? true : undefined),
    "the rate edit to be applied",
  );
  await eventually(
    async () =>
      childLogs().some((l) => l.msg === "config reloaded" && l.version === worker.configVersion())
        ? true
        : undefined,
    "the second process to apply the rate edit",
  );

  for (let i = 0; i < count; i++) await publish(`evt-rate-${i}`);
  const mails = (await p.sink.waitForMessages(warmUps + count, 20_000)).slice(warmUps);
  // Both processes took slots.
  expect(sentBy(p.logs, "evt-rate")).toBeGreaterThan(0);
  expect(sentBy(childLogs(), "evt-rate")).toBeGreaterThan(0);
  // Slots are 200 ms apart whichever process sends; arrival adds a little send latency, so a
  // one-second span may catch one send more than the rate. Unlimited, all 20 land at once.
  const arrivals = mails.map((mail) => mail.receivedAt.getTime()).sort((x, y) => x - y);
  const busiest = Math.max(
    ...arrivals.map((t) => arrivals.filter((u) => u >= t && u < t + 1000).length),
  );
  expect(busiest).toBeLessThanOrEqual(rate + 1);
  // The achieved rate from the least-squares slope of arrival times, so one late first or last
  // arrival (a busy machine) moves it little, unlike a rate from the first and last alone.
  const meanIndex = (count - 1) / 2;
  const meanTime = arrivals.reduce((sum, t) => sum + t, 0) / count;
  let covariance = 0;
  let variance = 0;
  arrivals.forEach((t, i) => {
    covariance += (i - meanIndex) * (t - meanTime);
    variance += (i - meanIndex) ** 2;
  });
  const achieved = 1000 / (covariance / variance);
  expect(Math.abs(achieved - rate) / rate).toBeLessThanOrEqual(0.05);
}, 60_000);

it("spaces a channel's slots evenly and says how long to wait for the next", async () => {
  pipeline = await startPipeline("limiter", { startWorker: false });
  const limiter = new ChannelRateLimiter(pipeline.redis, pipeline.prefix);
  const now = 1_800_000_000_000;
  const takes = [];
  for (let i = 0; i < 5; i++) takes.push(await limiter.take("sms", 3, now + 100));
  // 3/s: one slot every 333⅓ ms; four lie within the 1,000 ms a send may wait for its slot.
  expect(takes.map((t) => (t.granted ? Math.round(t.waitMs) : -1))).toEqual([
    0, 333, 667, 1000, -1,
  ]);
  expect(takes[4]).toEqual({ granted: false, retryInMs: 334 });
  expect(await limiter.take("email", 3, now + 100)).toEqual({ granted: true, waitMs: 0 });
  // Half a message per second: one slot every two seconds.
  expect(await limiter.take("voice", 0.5, now)).toEqual({ granted: true, waitMs: 0 });
  expect(await limiter.take("voice", 0.5, now + 1500)).toEqual({ granted: true, waitMs: 500 });
});
