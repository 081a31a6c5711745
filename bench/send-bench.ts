import { randomBytes } from "node:crypto";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { DateTime } from "luxon";
import { FOLLOW_UPS_QUEUE, followUpJobId, PURCHASE_EVENTS_QUEUE } from "../src/queue/names.js";
import { deleteKeysWithPrefix, uniquePrefix } from "../test/support/redis-namespace.js";
import type { Providers } from "./arrival-sink.js";
import { writeBenchConfig } from "./bench-config.js";
import { type Scratch, workerEnv } from "./bench-env.js";
import { type BenchProcess, sleep, startNoopWorker, startWorkerProcess } from "./processes.js";
import { CHUNK, DUE_STEP, dueAtPurchase, eventJobs } from "./purchases.js";
import { drained, lastFinishedAt } from "./queue-drain.js";
import { commandStats, redisCpuSeconds, round } from "./redis-stats.js";

/** Calls in all commands between two commandstats snapshots. */
async function callsSince(redis: Redis, before: Awaited<ReturnType<typeof commandStats>>) {
  let calls = 0;
  for (const [name, now] of await commandStats(redis))
    calls += now.calls - (before.get(name)?.calls ?? 0);
  return calls;
}

function cpuSecondsSince(before: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1e6;
}

const POLL_MS = 20;
const DONE_TIMEOUT_MS = 10 * 60_000;

export interface SendRun {
  readonly workers: number;
  readonly messages: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly workerCpuSeconds: number[];
  readonly redisCpuSeconds: number;
  /** CPU of the bench process itself, which runs the loopback SMTP server and Twilio fake. */
  readonly benchCpuSeconds: number;
  /** Redis commands per message, scripts' inner commands included. */
  readonly redisCallsPerMessage: number;
  readonly completed: number;
  readonly failed: number;
}

/**
 * Send throughput of real worker processes: `messages` follow-ups, all due, wait in the paused
 * follow-ups queue (scheduled through intake by the first worker); then `workers` processes send
 * them to the loopback SMTP server and Twilio fake. Timed from resume to the last message the
 * providers accepted. Returns the arrival instants too (for the rate-limit check).
 */
export async function sendThroughput(options: {
  redisUrl: string;
  providers: Providers;
  scratch: Scratch;
  workers: number;
  messages: number;
  channels: "email and sms" | "email";
  rates: { emailRate: number; smsRate: number };
}): Promise<SendRun & { arrivals: number[] }> {
  const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
  const prefix = uniquePrefix("bench-send");
  const label = `send-${prefix}`;
  const input = new Queue(PURCHASE_EVENTS_QUEUE, { connection: redis, prefix });
  const followUps = new Queue(FOLLOW_UPS_QUEUE, { connection: redis, prefix });
  const configDir = await writeBenchConfig(options.scratch.file(`${label}-config`), options.rates);
  const env = workerEnv({
    redisUrl: options.redisUrl,
    prefix,
    configDir,
    outboxDir: options.scratch.file(`${label}-outbox`),
    providers: options.providers,
  });
  const workers: BenchProcess[] = [];
  try {
    await followUps.pause();
    // All processes start (and take part in the untimed intake) before the timed sending.
    workers.push(
      ...(await Promise.all(
        Array.from({ length: options.workers }, (_, n) =>
          startWorkerProcess(env, options.scratch.file(`${label}-worker-${n}.log`)),
        ),
      )),
    );
    const tag = `snd${randomBytes(3).toString("hex")}`;
    const now = DateTime.utc();
    const events = Array.from({ length: options.messages }, (_, i) =>
      dueAtPurchase(tag, i, options.channels === "email" || i % 2 === 0 ? "email" : "sms", now),
    );
    for (let i = 0; i < events.length; i += CHUNK)
      await input.addBulk(eventJobs(events.slice(i, i + CHUNK)));
    for (;;) {
      const counts = await input.getJobCounts("wait", "active", "delayed");
      const queued = await followUps.getJobCounts("wait", "delayed", "prioritized");
      const total = Object.values(queued).reduce((a, b) => a + b, 0);
      if (Object.values(counts).every((n) => n === 0) && total >= options.messages) break;
      if ((await input.getFailedCount()) > 0) throw new Error("send bench: an event failed intake");
      await sleep(50);
    }
    const cpuBefore = await Promise.all(workers.map((w) => w.cpuSeconds()));
    const redisBefore = await redisCpuSeconds(redis);
    const statsBefore = await commandStats(redis);
    const benchBefore = process.cpuUsage();
    const countBefore = options.providers.count();
    const started = Date.now();
    await followUps.resume();
    while (options.providers.count() - countBefore < options.messages) {
      if (Date.now() - started > DONE_TIMEOUT_MS)
        throw new Error(
          `send bench: ${options.providers.count() - countBefore} of ${options.messages} sent`,
        );
      await sleep(POLL_MS);
    }
    const arrivals = options.providers
      .arrivals()
      .map((a) => a.at)
      .filter((at) => at >= started)
      .sort((a, b) => a - b);
    const seconds = ((arrivals.at(-1) ?? Date.now()) - started) / 1000;
    const benchCpu = cpuSecondsSince(benchBefore);
    const cpuAfter = await Promise.all(workers.map((w) => w.cpuSeconds()));
    const redisAfter = await redisCpuSeconds(redis);
    const calls = await callsSince(redis, statsBefore);
    await sleep(300);
    const finished = await followUps.getJobCounts("completed", "failed");
    return {
      workers: options.workers,
      messages: options.messages,
      seconds: round(seconds, 3),
      perSecond: Math.round(options.messages / seconds),
      workerCpuSeconds: cpuAfter.map((cpu, i) => round(cpu - (cpuBefore[i] ?? 0), 2)),
      redisCpuSeconds: round(redisAfter - redisBefore, 2),
      benchCpuSeconds: round(benchCpu, 2),
      redisCallsPerMessage: round(calls / options.messages, 1),
      completed: finished.completed ?? 0,
      failed: finished.failed ?? 0,
      arrivals,
    };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await input.close();
    await followUps.close();
    await deleteKeysWithPrefix(redis, prefix);
    await redis.quit();
  }
}

/**
 * Baseline of the send benches: the same number of jobs (with our lean job data and ids) in a
 * paused queue, processed by `workers` no-op BullMQ worker processes with our concurrency.
 * Timed from resume to the last job's finishedOn.
 */
export async function noopThroughput(options: {
  redisUrl: string;
  scratch: Scratch;
  workers: number;
  jobs: number;
  concurrency: number;
}): Promise<SendRun> {
  const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
  const prefix = uniquePrefix("bench-noop");
  const queue = new Queue(FOLLOW_UPS_QUEUE, { connection: redis, prefix });
  const workers: BenchProcess[] = [];
  try {
    await queue.pause();
    const jobs = [];
    for (let i = 0; i < options.jobs; i++) {
      const data = { e: `noop-evt-${i}`, s: i % 2 === 0 ? DUE_STEP.email : DUE_STEP.sms };
      jobs.push({ name: "email", data, opts: { jobId: followUpJobId(data.e, data.s) } });
    }
    for (let i = 0; i < jobs.length; i += CHUNK) await queue.addBulk(jobs.slice(i, i + CHUNK));
    workers.push(
      ...(await Promise.all(
        Array.from({ length: options.workers }, (_, n) =>
          startNoopWorker(
            {
              REDIS_URL: options.redisUrl,
              QUEUE_PREFIX: prefix,
              NOOP_QUEUE: FOLLOW_UPS_QUEUE,
              NOOP_CONCURRENCY: String(options.concurrency),
            },
            options.scratch.file(`${prefix}-noop-${n}.log`),
          ),
        ),
      )),
    );
    const cpuBefore = await Promise.all(workers.map((w) => w.cpuSeconds()));
    const redisBefore = await redisCpuSeconds(redis);
    const statsBefore = await commandStats(redis);
    const benchBefore = process.cpuUsage();
    const started = Date.now();
    await queue.resume();
    await drained(queue, DONE_TIMEOUT_MS);
    const seconds = ((await lastFinishedAt(redis, queue)) - started) / 1000;
    const benchCpu = cpuSecondsSince(benchBefore);
    const cpuAfter = await Promise.all(workers.map((w) => w.cpuSeconds()));
    const calls = await callsSince(redis, statsBefore);
    const finished = await queue.getJobCounts("completed", "failed");
    return {
      workers: options.workers,
      messages: options.jobs,
      seconds: round(seconds, 3),
      perSecond: Math.round(options.jobs / seconds),
      workerCpuSeconds: cpuAfter.map((cpu, i) => round(cpu - (cpuBefore[i] ?? 0), 2)),
      redisCpuSeconds: round((await redisCpuSeconds(redis)) - redisBefore, 2),
      benchCpuSeconds: round(benchCpu, 2),
      redisCallsPerMessage: round(calls / options.jobs, 1),
      completed: finished.completed ?? 0,
      failed: finished.failed ?? 0,
    };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await queue.close();
    await deleteKeysWithPrefix(redis, prefix);
    await redis.quit();
  }
}

export interface RateCheck {
  readonly configuredPerSecond: number;
  readonly windowSeconds: number;
  readonly sentInWindow: number;
  readonly achievedPerSecond: number;
  readonly ratio: number;
  readonly withinFivePercent: boolean;
  /** Most arrivals in one epoch-aligned second of the window. */
  readonly busiestSecond: number;
  /** Most arrivals in any 1,000 ms span of the window, wherever it starts: what a provider's limit sees. */
  readonly busiestSlidingSecond: number;
  /**
   * The same from the second second on: the first holds the sends that waited while the worker
   * opened its provider connections, and those leave together.
   */
  readonly busiestSlidingSecondAfterStart: number;
  /** The average within 5% of the configured rate, and so is every 1,000 ms after the first second. */
  readonly honoured: boolean;
  readonly perSecond: number[];
}

/**
 * The achieved rate over `windowSeconds` whole seconds, starting at the first whole second after
 * the first message, and the busiest second in it: epoch-aligned, and sliding (any 1,000 ms).
 */
export function rateOver(
  arrivals: readonly number[],
  configured: number,
  windowSeconds: number,
): RateCheck {
  const first = arrivals[0] ?? 0;
  const start = Math.ceil(first / 1000) * 1000;
  const perSecond = Array.from({ length: windowSeconds }, () => 0);
  for (const at of arrivals) {
    const second = Math.floor((at - start) / 1000);
    if (second >= 0 && second < windowSeconds) perSecond[second] = (perSecond[second] ?? 0) + 1;
  }
  const sent = perSecond.reduce((a, b) => a + b, 0);
  const achieved = sent / windowSeconds;
  const ratio = achieved / configured;
  const inWindow = arrivals
    .filter((at) => at >= start && at < start + windowSeconds * 1000)
    .sort((a, b) => a - b);
  const busiestSliding = busiestSpan(inWindow);
  const afterStart = busiestSpan(inWindow.filter((at) => at >= first + 1000));
  const withinFivePercent = Math.abs(ratio - 1) <= 0.05;
  return {
    configuredPerSecond: configured,
    windowSeconds,
    sentInWindow: sent,
    achievedPerSecond: round(achieved, 2),
    ratio: round(ratio, 3),
    withinFivePercent,
    busiestSecond: Math.max(...perSecond),
    busiestSlidingSecond: busiestSliding,
    busiestSlidingSecondAfterStart: afterStart,
    honoured: withinFivePercent && afterStart <= Math.floor(configured * 1.05),
    perSecond,
  };
}

/** Most of the sorted instants (ms) inside any 1,000 ms span. */
function busiestSpan(sorted: readonly number[]): number {
  let busiest = 0;
  for (let from = 0, to = 0; to < sorted.length; to++) {
    while ((sorted[to] ?? 0) - (sorted[from] ?? 0) >= 1000) from++;
    busiest = Math.max(busiest, to - from + 1);
  }
  return busiest;
}
