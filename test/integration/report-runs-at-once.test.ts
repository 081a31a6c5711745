import { type Job, Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { DateTime } from "luxon";
import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";
import type { DeliveryChannel } from "../../src/channels/channel.js";
import { createSmtpEmailChannel } from "../../src/channels/email-smtp.js";
import { createLogger } from "../../src/logger.js";
import { FollowUpMetrics } from "../../src/metrics.js";
import { OWNER_REPORT_JOB, OWNER_REPORTS_QUEUE } from "../../src/queue/names.js";
import { createOwnerReportProcessor } from "../../src/reports/owner-report-processor.js";
import { ownerSchedulerId, reportSourcesOn } from "../../src/reports/owner-reports.js";
import { ReportMarks } from "../../src/store/report-marks.js";
import { oneStepYaml, rulesFrom } from "../support/fixtures.js";
import { eventually } from "../support/pipeline-harness.js";
import { deleteKeysWithPrefix, uniquePrefix } from "../support/redis-namespace.js";
import { settledQueue } from "../support/settled-queue.js";
import { type SmtpSink, startSmtpSink } from "../support/smtp-sink.js";

/**
 * Two scheduled runs of one owner's report sending at the same moment on two workers (a stalled
 * run taken again while its first attempt is still sending, or the run sent for one no worker took
 * beside its scheduler's): each day must reach the owner in one report, not two.
 */

const OWNER_EMAIL = "maria@shop.example";
const rules = rulesFrom(
  oneStepYaml({ delay: "P1D" }).replace(
    "rules:\n",
    `owners:\n  - { name: Maria, email: ${OWNER_EMAIL}, timezone: Europe/London, frequency: daily }\nrules:\n`,
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
  prefix = uniquePrefix("report-at-once");
  sink = await startSmtpSink();
  email = createSmtpEmailChannel({ smtpUrl: sink.url, from: "Corner Shop <hello@shop.example>" });
  queue = new Queue(OWNER_REPORTS_QUEUE, { connection: redis, prefix });
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.close()));
  await queue.close();
  await email.close?.();
  await sink.close();
  await deleteKeysWithPrefix(redis, prefix);
  await redis.quit();
});

/** A worker of the report queue, as the worker process runs it (concurrency 1). */
function startReportWorker(): Worker {
  const process = createOwnerReportProcessor({
    rules: () => rules,
    sources: reportSourcesOn(redis, prefix, 1),
    email,
    metrics: new FollowUpMetrics(),
    logger: createLogger({ level: "silent", pretty: false }),
    marks: new ReportMarks(redis, prefix),
  });
  const worker = new Worker(
    OWNER_REPORTS_QUEUE,
    (job: Job, token?: string) => process(job, token),
    { connection: redis.duplicate(), prefix, concurrency: 1 },
  );
  workers.push(worker);
  return worker;
}

describe("two runs of one owner's report at once", () => {
  it("sends the days once: the other run waits for the one sending, then finds them reported", async () => {
    const today = DateTime.now().setZone("Europe/London").startOf("day");
    const days = {
      owner: OWNER,
      since: today.minus({ days: 1 }).toISODate(),
      until: today.toISODate(),
    };
    const options = { attempts: 6, backoff: { type: "exponential", delay: 1_000 } };
    await queue.add(OWNER_REPORT_JOB, days, { ...options, jobId: `report-due-${OWNER}-1` });
    await queue.add(OWNER_REPORT_JOB, days, { ...options, jobId: `report-due-${OWNER}-2` });
    // A slow mail server: both runs are under way while the first report is being accepted.
    sink.setReplyDelay(1_500);
    startReportWorker();
    startReportWorker();
    await eventually(async () => (sink.attempts >= 1 ? true : undefined), "a report under way");
    expect(await settledQueue(queue, "the report runs", 20_000)).toEqual({
      completed: 2,
      failed: 0,
    });
    sink.setReplyDelay(0);
    expect(sink.attempts).toBe(1);
    expect(sink.messages).toHaveLength(1);
    const results = await Promise.all(
      [1, 2].map(async (n) => (await queue.getJob(`report-due-${OWNER}-${n}`))?.returnvalue),
    );
    expect(results).toContainEqual({ skipped: "its days were reported already" });
  });
});

describe("a run that died holding an owner's report", () => {
  it("is waited out without failing the next run, which then sends once", async () => {
    const today = DateTime.now().setZone("Europe/London").startOf("day");
    const since = today.minus({ days: 1 }).toISODate() ?? "";
    // A worker took the owner's report and died before it sent: its lease runs out alone.
    const marks = new ReportMarks(redis, prefix);
    expect(await marks.claim(OWNER, "dead-worker", 1_500, since)).toEqual({
      claimed: true,
      mark: since,
    });
    await queue.add(
      OWNER_REPORT_JOB,
      { owner: OWNER, since, until: today.toISODate() },
      { attempts: 1, jobId: `report-due-${OWNER}-1` },
    );
    startReportWorker();
    expect(await settledQueue(queue, "the report run", 20_000)).toEqual({
      completed: 1,
      failed: 0,
    });
    expect(sink.messages).toHaveLength(1);
    // The dead worker's lease is not given back by it; the mark moved with the report sent.
    expect(await marks.finish(OWNER, "dead-worker")).toBe(false);
    expect(await marks.claim(OWNER, "next", 1_000, since)).toEqual({
      claimed: true,
      mark: today.toISODate(),
    });
  });
});
