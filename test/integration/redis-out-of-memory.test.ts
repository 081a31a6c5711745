import { execFile } from "node:child_process";
import { readdir } from "node:fs/promises";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { DateTime } from "luxon";
import { afterEach, expect, it } from "vitest";
import { followUpJobId } from "../../src/queue/names.js";
import { SuppressionList } from "../../src/store/suppression-list.js";
import { quietRedisErrors } from "../faults/fault-support.js";
import { item, purchaseInput } from "../support/fixtures.js";
import {
  eventually,
  type PipelineHarness,
  startPipeline,
  waitForState,
} from "../support/pipeline-harness.js";
import { type RedisServer, startRedisServer } from "../support/redis-server.js";
import { settledSteps } from "../support/settled-queue.js";
import { httpAddressOf, postTwilio } from "../support/webhooks.js";

/**
 * Redis at maxmemory under noeviction (or unable to save its snapshot, MISCONF) still answers PING
 * and reads, but refuses every write until an operator frees memory. For the worker that is Redis
 * away: webhooks are spooled, not lost; /readyz says so; the workers wait instead of spinning; the
 * commands say so in one line.
 */

let server: RedisServer | undefined;
let admin: Redis | undefined;
let pipeline: PipelineHarness | undefined;
afterEach(async () => {
  await admin?.config("SET", "maxmemory", "0");
  await pipeline?.close();
  pipeline = undefined;
  admin?.disconnect();
  admin = undefined;
  await server?.stop();
  server = undefined;
});

/** Redis refuses every write from now on (reads still work). */
async function outOfMemory(redis: Redis): Promise<void> {
  await redis.config("SET", "maxmemory-policy", "noeviction");
  await redis.config("SET", "maxmemory", "1");
}

/** What STOP_PHONE texted to the shop's number, as Twilio posts it. */
function textedIn(p: PipelineHarness, body: string, messageSid: string) {
  return postTwilio(p, "/webhooks/twilio/inbound", {
    From: STOP_PHONE,
    Body: body,
    MessageSid: messageSid,
  });
}

/** Files the webhook spool holds (not those moved aside). */
async function spooledFiles(p: PipelineHarness): Promise<string[]> {
  const names = await readdir(p.envVars.WEBHOOK_SPOOL_DIR ?? "");
  return names.filter((name) => name.endsWith(".json"));
}

async function commandsProcessed(redis: Redis): Promise<number> {
  const stats = await redis.info("stats");
  return Number(/total_commands_processed:(\d+)/.exec(stats)?.[1]);
}

const CUSTOMER_PHONE = "+44 20 7946 0411";
const STOP_PHONE = "+447400123499";

/** A pipeline on a Redis of the test's own, with a purchase whose check-in is scheduled. */
async function pipelineWithPurchase(
  label: string,
  eventId: string,
): Promise<{ p: PipelineHarness; redis: Redis }> {
  server = await startRedisServer();
  const redis = new Redis(server.url);
  admin = redis;
  pipeline = await startPipeline(label, { redisUrl: server.url });
  quietRedisErrors(pipeline);
  await pipeline.publisher.publish(
    purchaseInput({
      id: eventId,
      orderId: `ord-${eventId}`,
      occurredAt: DateTime.utc().minus({ hours: 2 }).toISO() ?? "",
      items: [item("televisions", "700.00")],
      customer: { id: `cus-${eventId}`, phone: CUSTOMER_PHONE },
    }) as never,
  );
  await waitForState(pipeline, eventId, "big-ticket.check-in", "scheduled");
  return { p: pipeline, redis };
}

it("out of memory, a STOP texted is spooled and answered 200, /readyz answers 503, the workers wait instead of spinning; once memory is freed the STOP is honoured and the due follow-up goes out once", {
  timeout: 90_000,
}, async () => {
  const { p, redis } = await pipelineWithPurchase("out-of-memory", "evt-oom");
  // The check-in's job comes due while Redis is out of memory.
  const queue = p.followUpQueues[await p.shardOf("evt-oom")] ?? p.followUps;
  await queue.add(
    "sms",
    { e: "evt-oom", s: "big-ticket.check-in" },
    { jobId: followUpJobId("evt-oom", "big-ticket.check-in"), delay: 1_000 },
  );
  // Counted from before Redis fills: a worker refused at once (the thank-you's send may be under
  // way) falls inside the window. Counted after, the delivery worker's first refusal (and the one
  // line its pauses log in a minute) came before the count in 5 runs of 20.
  const linesBefore = p.logs.length;
  const commandsBefore = await commandsProcessed(redis);
  await outOfMemory(redis);

  const stop = await textedIn(p, "STOP", "SMoomstop1");
  expect(stop.status).toBe(200);
  const spoolDir = p.envVars.WEBHOOK_SPOOL_DIR ?? "";
  expect((await readdir(spoolDir)).filter((name) => name.endsWith(".json"))).toHaveLength(1);

  const ready = await fetch(`${httpAddressOf(p)}/readyz`);
  expect(ready.status).toBe(503);
  expect(await ready.json()).toMatchObject({
    ready: false,
    checks: { redis: true, redisWrites: false },
  });

  // A round of the spool's replay (every 5 s) has looked at the STOP since it came ...
  await eventually(async () => {
    const files = (await p.worker?.metrics.webhookSpoolFiles.get())?.values ?? [];
    return files.some((file) => file.labels.state === "waiting" && file.value === 1)
      ? true
      : undefined;
  }, "a round of the spool's replay to find the STOP waiting");
  // ... and the delivery worker was refused, waited, took jobs again (the check-in's job due by
  // then) and was refused again: its second pause. The window holds a refused fetch of the due
  // job and a resume, where a worker that fetched again at once would spin.
  const delivery = `delivery ${await p.shardOf("evt-oom")}`;
  await eventually(
    async () => {
      const pauses = (await p.worker?.metrics.writeRefusalPauses.get())?.values ?? [];
      return pauses.some((pause) => pause.labels.worker === delivery && pause.value >= 2)
        ? true
        : undefined;
    },
    "the delivery worker to be refused again after its first pause",
    20_000,
  );
  const commands = (await commandsProcessed(redis)) - commandsBefore;
  const refusedLines = p.logs
    .slice(linesBefore)
    .filter((line) => JSON.stringify(line.err ?? "").includes("OOM command not allowed"));
  // Before, the delivery worker fetched its due job again at once after each refusal: about
  // 8,000 refused commands and 3,000 error lines a second.
  expect(commands).toBeLessThan(2_000);
  expect(refusedLines.length).toBeLessThan(30);
  // The replay found Redis refusing writes: the STOP waits on disk, it is not set aside as failed.
  expect((await readdir(spoolDir)).filter((name) => name.endsWith(".json"))).toHaveLength(1);
  expect(await readdir(spoolDir)).not.toContain("failed");

  await redis.config("SET", "maxmemory", "0");
  const list = new SuppressionList(p.redis, p.prefix);
  await eventually(
    async () => ((await list.isSuppressed("sms", { address: STOP_PHONE })) ? true : undefined),
    "the spooled STOP to be honoured",
    15_000,
  );
  await waitForState(p, "evt-oom", "big-ticket.check-in", "sent");
  await eventually(
    async () => ((await fetch(`${httpAddressOf(p)}/readyz`)).status === 200 ? true : undefined),
    "/readyz to answer 200 again",
    15_000,
  );
  // Every job of the check-in has finished, retries included: none is left to send it again.
  await settledSteps(
    p.followUpQueues,
    [{ eventId: "evt-oom", stepId: "big-ticket.check-in" }],
    "the check-in",
  );
  expect(p.twilio.messages.filter((message) => message.to === "+442079460411")).toHaveLength(1);
});

it("a command that meets a Redis out of memory says so in one line and exits 1, without a stack trace", {
  timeout: 60_000,
}, async () => {
  const { p, redis } = await pipelineWithPurchase("out-of-memory-cli", "evt-oom-cli");
  await outOfMemory(redis);

  for (const args of [
    ["cancel", "--step", "evt-oom-cli/big-ticket.check-in", "--reason", "test"],
    ["customer", "cus-oom-cli"],
  ]) {
    const result = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", "src/cli.ts", ...args, "--config", p.configDir],
      { encoding: "utf8", env: { ...process.env, ...p.commandEnv } },
    ).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(result.code, args[0]).toBe(1);
    expect(result.stderr.trim().split("\n"), args[0]).toHaveLength(1);
    expect(result.stderr, args[0]).toMatch(/^followups: Redis refused a write .*\(OOM /);
    expect(result.stderr, args[0]).not.toMatch(/\n\s+at /);
  }
});

it("out of memory, a START texted is spooled and answered 200, not 500 (its first-delivery date is written in a MULTI, which Redis discards as a whole with EXECABORT); once memory is freed the number is opted in again", {
  timeout: 60_000,
}, async () => {
  const { p, redis } = await pipelineWithPurchase("out-of-memory-start", "evt-oom-start");
  const list = new SuppressionList(p.redis, p.prefix);
  const stop = await textedIn(p, "STOP", "SMoomstop2");
  expect(stop.status).toBe(200);
  await eventually(
    async () => ((await list.isSuppressed("sms", { address: STOP_PHONE })) ? true : undefined),
    "the STOP to be honoured",
  );
  await outOfMemory(redis);

  const start = await textedIn(p, "START", "SMoomstart1");
  expect(start.status).toBe(200);
  expect(await spooledFiles(p)).toHaveLength(1);

  await redis.config("SET", "maxmemory", "0");
  await eventually(
    async () =>
      (await list.isSuppressed("sms", { address: STOP_PHONE })) === false ? true : undefined,
    "the spooled START to be honoured",
    15_000,
  );
  expect(await readdir(p.envVars.WEBHOOK_SPOOL_DIR ?? "")).not.toContain("failed");
});
