import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { DateTime } from "luxon";
import { afterEach, expect, it } from "vitest";
import { followUpJobId } from "../../src/queue/names.js";
import { ChannelRateLimiter } from "../../src/store/rate-limiter.js";
import { SuppressionList } from "../../src/store/suppression-list.js";
import { item, purchaseInput } from "../support/fixtures.js";
import { eventually, type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";
import { spawnWorker } from "../support/worker-process.js";

let pipeline: PipelineHarness | undefined;
afterEach(async () => {
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
  expect(p.sink.messages).toHaveLength(0);

  await editRules(p, (text) => text.replace("total: { min: 50 }", "total: { min: 10 }"));
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
});

it("suppresses a number Twilio reports as opted out (21610) and sends it nothing more", async () => {
  pipeline = await startPipeline("optout");
  const p = pipeline;
  const tv = (id: string) =>
    purchaseInput({
      id,
      orderId: `ord-${id}`,
      occurredAt: twoHoursAgo(),
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
  await (await p.followUps.getJob(followUpJobId("evt-stop-1", "big-ticket.check-in")))?.promote();
  await eventually(async () => {
    const r = (await p.store.stepRecords("evt-stop-1", ["big-ticket.check-in"])).get(
      "big-ticket.check-in",
    );
    return r?.s === "failed" ? r : undefined;
  }, "the first check-in to fail");
  expect(
    await new SuppressionList(p.redis, p.prefix).isSuppressed("sms", { address: "+442079460958" }),
  ).toBe(true);

  await (await p.followUps.getJob(followUpJobId("evt-stop-2", "big-ticket.check-in")))?.promote();
  const skipped = await eventually(async () => {
    const r = (await p.store.stepRecords("evt-stop-2", ["big-ticket.check-in"])).get(
      "big-ticket.check-in",
    );
    return r?.s === "skipped" ? r : undefined;
  }, "the second check-in to be skipped");
  expect(skipped.x).toMatch(/^opted-out/);
  expect(p.twilio.requests).toBe(1);
});

it("honours a channel's rate limit across two worker processes", async () => {
  pipeline = await startPipeline("rate", {
    startWorker: false,
    env: { DELIVERY_CONCURRENCY: "8" },
  });
  const p = pipeline;
  await editRules(p, (text) =>
    text
      .replace(/email:\s*\{\s*ratePerSecond: \d+\s*\}/, "email: { ratePerSecond: 3 }")
      .replace("ratePerSecond: 1000", "ratePerSecond: 3"),
  );
  await p.startWorker();
  const second = spawnWorker(p.envVars);
  const ids = Array.from({ length: 9 }, (_, i) => `evt-rate-${i}`);
  for (const id of ids) {
    await p.publisher.publish(
      purchaseInput({
        id,
        orderId: `o-${id}`,
        occurredAt: twoHoursAgo(),
        customer: { id: `c-${id}` },
      }) as never,
    );
  }
  const mails = await p.sink.waitForMessages(9, 20_000);
  await second.stop();
  // Slots are granted per aligned second (at most 3 each); arrival adds a little send latency,
  // so any one-second span sees at most two windows' worth. Unlimited, all 9 land at once.
  const arrivals = mails.map((mail) => mail.receivedAt.getTime()).sort((x, y) => x - y);
  const busiest = Math.max(
    ...arrivals.map((t) => arrivals.filter((u) => u >= t && u < t + 1000).length),
  );
  expect(busiest).toBeLessThanOrEqual(6);
  expect((arrivals.at(-1) ?? 0) - (arrivals[0] ?? 0)).toBeGreaterThan(500);
});

it("grants a channel's slots per window and says how long to wait for the next", async () => {
  pipeline = await startPipeline("limiter", { startWorker: false });
  const limiter = new ChannelRateLimiter(pipeline.redis, pipeline.prefix);
  const windowStart = 1_800_000_000_000;
  const waits = [];
  for (let i = 0; i < 4; i++) waits.push(await limiter.take("sms", 3, windowStart + 100));
  expect(waits).toEqual([0, 0, 0, 900]);
  expect(await limiter.take("email", 3, windowStart + 100)).toBe(0);
  expect(await limiter.take("sms", 3, windowStart + 1000)).toBe(0);
  // Half a message per second: one slot every two seconds.
  expect(await limiter.take("voice", 0.5, windowStart)).toBe(0);
  expect(await limiter.take("voice", 0.5, windowStart + 1500)).toBe(500);
});
