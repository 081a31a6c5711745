import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { DateTime } from "luxon";
import { FOLLOW_UPS_QUEUE, followUpJobId, PURCHASE_EVENTS_QUEUE } from "../src/queue/names.js";
import { startRedisServer } from "../test/support/redis-server.js";
import { BENCH_PREFIX, type Scratch } from "./bench-env.js";
import { type BenchProcess, sleep, startNoopWorker } from "./processes.js";
import { CHUNK, eventJobs, MIX_PERIOD, purchaseChunks } from "./purchases.js";
import { drained, lastFinishedAt } from "./queue-drain.js";
import {
  dissectHash,
  type HashDissection,
  type KeyClass,
  memoryByClass,
  round,
  usedMemory,
} from "./redis-stats.js";

/**
 * The baselines of intake and memory: plain BullMQ without our pipeline, and a queue-fed worker
 * that does nothing but turn events into delayed jobs.
 */

export interface PlainResult {
  readonly jobs: number;
  readonly seconds: number;
  readonly jobsPerSecond: number;
  readonly usedMemoryDelta: number;
  readonly bytesPerJob: number;
  readonly sampleJobHash?: HashDissection;
  readonly breakdown?: Record<string, KeyClass>;
}

/**
 * The baseline of intake and memory: plain BullMQ, one delayed job per follow-up carrying the
 * whole purchase (the event plus its step id), added with addBulk in chunks, with a deterministic
 * job id as an idempotent design needs. On its own fresh redis-server, so its memory is its own.
 */
export async function plainDelayedJobs(options: {
  events: number;
  perPosition: readonly number[];
  breakdown: boolean;
}): Promise<PlainResult> {
  const server = await startRedisServer();
  const redis = new Redis(server.url, { maxRetriesPerRequest: null });
  const prefix = BENCH_PREFIX;
  const queue = new Queue(FOLLOW_UPS_QUEUE, { connection: redis, prefix });
  try {
    await queue.waitUntilReady();
    const before = await usedMemory(redis);
    const now = DateTime.utc();
    const customers = Math.ceil(options.events / 2);
    let jobs = 0;
    let busyMs = 0;
    let index = 0;
    let sampleId = "";
    for (const chunk of purchaseChunks("plain", 0, options.events, customers, now)) {
      const bulk = [];
      for (const event of chunk) {
        const steps = options.perPosition[index % MIX_PERIOD] ?? 0;
        for (let step = 0; step < steps; step++) {
          const jobId = followUpJobId(String(event.id), `step-${step}`);
          sampleId ||= jobId;
          bulk.push({
            name: "follow-up",
            data: { step: `step-${step}`, event },
            // Spread like real follow-ups: an hour to three months ahead.
            opts: { jobId, delay: 3_600_000 * (1 + ((index * 7 + step * 997) % 2_184)) },
          });
        }
        index++;
      }
      const started = performance.now();
      for (let i = 0; i < bulk.length; i += CHUNK) await queue.addBulk(bulk.slice(i, i + CHUNK));
      busyMs += performance.now() - started;
      jobs += bulk.length;
    }
    await sleep(200);
    const delta = (await usedMemory(redis)) - before;
    const sampleKey = `${prefix}:${FOLLOW_UPS_QUEUE}:${sampleId}`;
    return {
      jobs,
      seconds: round(busyMs / 1000, 3),
      jobsPerSecond: Math.round(jobs / (busyMs / 1000)),
      usedMemoryDelta: delta,
      bytesPerJob: Math.round(delta / jobs),
      ...(options.breakdown && {
        sampleJobHash: await dissectHash(redis, sampleKey, `${prefix}:scratch`, {
          data: (field) => field === "data",
        }),
        breakdown: await memoryByClass(redis, prefix),
      }),
    };
  } finally {
    await queue.close();
    await redis.quit();
    await server.stop();
  }
}

export interface PassThroughResult {
  readonly events: number;
  readonly jobs: number;
  readonly seconds: number;
  readonly eventsPerSecond: number;
  readonly workerCpuSeconds: number;
}

/**
 * Reference for intake: the same events through the same kind of queue and worker process, but
 * a processor that only turns each event into its delayed jobs (bench/noop-worker.ts
 * `passthrough`): the ceiling of any intake that reads an input queue, with our concurrency.
 */
export async function passThroughIntake(options: {
  events: number;
  perPosition: readonly number[];
  scratch: Scratch;
  concurrency: number;
}): Promise<PassThroughResult> {
  const server = await startRedisServer();
  const redis = new Redis(server.url, { maxRetriesPerRequest: null });
  const prefix = BENCH_PREFIX;
  const input = new Queue(PURCHASE_EVENTS_QUEUE, { connection: redis, prefix });
  const followUps = new Queue(FOLLOW_UPS_QUEUE, { connection: redis, prefix });
  let worker: BenchProcess | undefined;
  try {
    await input.pause();
    const now = DateTime.utc();
    const customers = Math.ceil(options.events / 2);
    for (const chunk of purchaseChunks("pass", 0, options.events, customers, now)) {
      await input.addBulk(eventJobs(chunk));
    }
    worker = await startNoopWorker(
      {
        REDIS_URL: server.url,
        QUEUE_PREFIX: prefix,
        NOOP_QUEUE: PURCHASE_EVENTS_QUEUE,
        NOOP_TARGET_QUEUE: FOLLOW_UPS_QUEUE,
        NOOP_MODE: "passthrough",
        NOOP_STEPS: JSON.stringify(options.perPosition),
        NOOP_CONCURRENCY: String(options.concurrency),
      },
      options.scratch.file(`${prefix}-passthrough.log`),
    );
    const cpuBefore = await worker.cpuSeconds();
    const started = Date.now();
    await input.resume();
    await drained(input);
    const seconds = Math.max(1, (await lastFinishedAt(redis, input)) - started) / 1000;
    return {
      events: options.events,
      jobs: await followUps.getDelayedCount(),
      seconds: round(seconds, 3),
      eventsPerSecond: Math.round(options.events / seconds),
      workerCpuSeconds: round((await worker.cpuSeconds()) - cpuBefore, 2),
    };
  } finally {
    await worker?.stop();
    await input.close();
    await followUps.close();
    await redis.quit();
    await server.stop();
  }
}
