import { type Job, Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";
import type { DeliveryChannel } from "../../src/channels/channel.js";
import { createSmtpEmailChannel } from "../../src/channels/email-smtp.js";
import { createLogger } from "../../src/logger.js";
import { FollowUpMetrics } from "../../src/metrics.js";
import { OWNER_ALERT_JOB, OWNER_ALERTS_QUEUE } from "../../src/queue/names.js";
import { createOwnerAlertProcessor } from "../../src/reports/owner-alerts.js";
import { ownerSchedulerId } from "../../src/reports/owner-reports.js";
import { StoreKeys } from "../../src/store/keys.js";
import { OwnerAlertQueue } from "../../src/store/owner-alerts.js";
import { shardStores } from "../../src/store/shards.js";
import { replyId } from "../../src/store/step-replies.js";
import { oneStepYaml, purchase, rulesFrom } from "../support/fixtures.js";
import { eventually } from "../support/pipeline-harness.js";
import { deleteKeysWithPrefix, uniquePrefix } from "../support/redis-namespace.js";
import { settledQueue } from "../support/settled-queue.js";
import { type SmtpSink, startSmtpSink } from "../support/smtp-sink.js";

/**
 * Two alert jobs of one owner running at once on two workers (a retried job and the job at the
 * window's end have different ids): each pending reply must reach the owner in exactly one email.
 */

const DAY = 86_400_000;
const WINDOW_MS = 60_000;
const STEP = "only.step";
const OWNER_EMAIL = "maria@shop.example";
const rules = rulesFrom(
  oneStepYaml({ delay: "P1D" }).replace(
    "rules:\n",
    `owners:\n  - { name: Maria, email: ${OWNER_EMAIL}, timezone: Europe/London, frequency: weekly, alerts: true, alertWindow: PT1M }\nrules:\n`,
  ),
);
const OWNER = ownerSchedulerId({ email: OWNER_EMAIL });

let redis: Redis;
let prefix: string;
let sink: SmtpSink;
let email: DeliveryChannel & { close?: () => Promise<void> };
let queue: Queue;
const workers: Worker[] = [];

beforeEach(async () => {
  redis = new Redis(inject("redisUrl"), { maxRetriesPerRequest: null });
  prefix = uniquePrefix("alert-races");
  sink = await startSmtpSink();
  email = createSmtpEmailChannel({ smtpUrl: sink.url, from: "Corner Shop <hello@shop.example>" });
  queue = new Queue(OWNER_ALERTS_QUEUE, { connection: redis, prefix });
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.close()));
  await queue.close();
  await email.close?.();
  await sink.close();
  await deleteKeysWithPrefix(redis, prefix);
  await redis.quit();
});

/** A purchase with a pending step, so replies to it can be filed; each reply's id. */
async function purchaseWithReplies(texts: readonly string[]): Promise<string[]> {
  const shards = shardStores(redis, prefix, 1);
  const { store, replies } = shards.of(0);
  const now = Date.now();
  const event = purchase({ id: "evt-race" });
  await store.schedule(
    event,
    now + 90 * DAY,
    [
      {
        stepId: STEP,
        dueAt: now + DAY,
        channel: "email",
        kind: "thank-you",
        ruleId: "only",
        inSchedule: false,
      },
    ],
    now,
    1,
  );
  const ids: string[] = [];
  for (const text of texts) {
    const filed = await replies.add(event.id, STEP, { text, receivedAt: now, channel: "sms" });
    if (!filed) throw new Error("reply not filed");
    ids.push(replyId({ eventId: event.id, stepId: STEP, n: filed.n, shard: 0 }));
  }
  return ids;
}

/** A worker of the alert queue, as the worker process runs it (concurrency 1). */
function startAlertWorker(leaseMs?: number): Worker {
  const process = createOwnerAlertProcessor({
    rules: () => rules,
    alerts: new OwnerAlertQueue(redis, prefix),
    shards: shardStores(redis, prefix, 1),
    email,
    metrics: new FollowUpMetrics(),
    logger: createLogger({ level: "silent", pretty: false }),
    ...(leaseMs !== undefined && { leaseMs }),
  });
  const worker = new Worker(OWNER_ALERTS_QUEUE, (job: Job, token?: string) => process(job, token), {
    connection: redis.duplicate(),
    prefix,
    concurrency: 1,
  });
  workers.push(worker);
  return worker;
}

/** How many of the sink's emails quote the text. */
const emailsWith = (text: string) =>
  sink.messages.filter((message) => (message.parsed.text ?? "").includes(text)).length;

describe("owner alerts on several workers at once", () => {
  it("sends each pending reply in exactly one email, also one filed while both jobs run", async () => {
    const texts = ["first: screen cracked", "second: arrived late", "third: still no answer"];
    const [r1, r2, r3] = await purchaseWithReplies(texts);
    const alerts = new OwnerAlertQueue(redis, prefix);
    const start = Date.now();
    await alerts.file(OWNER, r1 ?? "", start, WINDOW_MS);
    await alerts.file(OWNER, r2 ?? "", start + 1, WINDOW_MS);
    // The first alert's job, retried, and the job at the window's end: due at the same moment.
    const options = { attempts: 6, backoff: { type: "exponential", delay: 1_000 } };
    await queue.add(OWNER_ALERT_JOB, { owner: OWNER }, { ...options, jobId: `alert-${OWNER}-1` });
    await queue.add(OWNER_ALERT_JOB, { owner: OWNER }, { ...options, jobId: `alert-${OWNER}-2` });
    // A slow mail server: both jobs are under way while the first email is being accepted.
    sink.setReplyDelay(1_500);
    startAlertWorker();
    startAlertWorker();
    await eventually(async () => (sink.attempts >= 1 ? true : undefined), "an email under way");
    // The other job found the owner's alerts taken and moved itself to look again shortly.
    await eventually(
      async () => ((await queue.getDelayedCount()) === 1 ? true : undefined),
      "the other alert job to wait for the one sending",
    );
    // A third unhappy reply arrives meanwhile (bundled for the window's end).
    await alerts.file(OWNER, r3 ?? "", Date.now(), WINDOW_MS);

    await eventually(
      async () => ((await queue.getJobCounts("completed")).completed === 2 ? true : undefined),
      "both alert jobs to finish",
      15_000,
    );
    sink.setReplyDelay(0);
    // Every alert job has finished, retries included: none is left to send a reply again.
    expect(await settledQueue(queue, "the alert jobs")).toMatchObject({ failed: 0 });
    expect(texts.map(emailsWith)).toEqual([1, 1, 1]);
    expect(sink.messages.every((m) => m.envelope.rcptTo.join() === OWNER_EMAIL)).toBe(true);
    expect(await alerts.pending(OWNER)).toEqual([]);
  });

  it("waits out the lease of a worker that died while sending, without failing, then sends once", async () => {
    const [r1] = await purchaseWithReplies(["broken on arrival"]);
    const alerts = new OwnerAlertQueue(redis, prefix);
    await alerts.file(OWNER, r1 ?? "", Date.now(), WINDOW_MS);
    // A worker took the owner's alerts and died before it sent them: its lease runs out alone.
    const dead = await alerts.claim(OWNER, "dead-worker", 1_500);
    expect(dead).toEqual({ claimed: true, replyIds: [r1] });
    await queue.add(OWNER_ALERT_JOB, { owner: OWNER }, { jobId: `alert-${OWNER}-1`, attempts: 1 });
    startAlertWorker(1_500);
    await eventually(
      async () => ((await queue.getJobCounts("completed")).completed === 1 ? true : undefined),
      "the alert job to finish",
      10_000,
    );
    expect(await queue.getJobCounts("failed")).toEqual({ failed: 0 });
    expect(emailsWith("broken on arrival")).toBe(1);
    expect(await alerts.pending(OWNER)).toEqual([]);
    // The dead worker's late finish removes nothing more and takes no one's lease.
    expect(await alerts.finish(OWNER, "dead-worker", [])).toBe(false);
  });

  it("keeps a long window's bundled replies until the window's email, beyond the usual 7 days", async () => {
    const alerts = new OwnerAlertQueue(redis, prefix);
    const now = Date.now();
    const window = 10 * DAY;
    // The first reply goes at once and opens the window; the second waits for its end.
    await alerts.file(OWNER, "r-first", now, window);
    const bundled = await alerts.file(OWNER, "r-second", now + DAY, window);
    expect(bundled).toEqual({ sendAt: now + window, bundled: true });
    const keys = new StoreKeys(prefix);
    const expiresAt = await redis.pexpiretime(keys.ownerAlerts(OWNER));
    expect(expiresAt).toBeGreaterThan(bundled.sendAt);
  });
});
