import { randomBytes } from "node:crypto";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { DateTime } from "luxon";
import { FOLLOW_UPS_QUEUE, PURCHASE_EVENTS_QUEUE } from "../src/queue/names.js";
import { DeliveryLedger } from "../src/store/delivery-ledger.js";
import { FollowUpStore } from "../src/store/follow-up-store.js";
import { bucketOf, StoreKeys } from "../src/store/keys.js";
import { purchaseOfFields } from "../src/store/purchase-fields.js";
import { deleteKeysWithPrefix } from "../test/support/redis-namespace.js";
import { startRedisServer } from "../test/support/redis-server.js";
import type { Providers } from "./arrival-sink.js";
import { writeBenchConfig } from "./bench-config.js";
import { BENCH_PREFIX, type Scratch, workerEnv } from "./bench-env.js";
import { type BenchProcess, sleep, startWorkerProcess } from "./processes.js";
import { eventJobs, followUpsOf, purchaseChunks } from "./purchases.js";
import { drained, lastFinishedAt } from "./queue-drain.js";
import {
  addCommandDelta,
  type CommandCount,
  classifyKey,
  commandStats,
  dissectHash,
  type HashDissection,
  type KeyClass,
  memoryByClass,
  perUnit,
  redisCpuSeconds,
  round,
  usedMemory,
} from "./redis-stats.js";

export interface IntakeRun {
  readonly events: number;
  readonly expectedFollowUps: number;
  readonly followUps: number;
  readonly failedEvents: number;
  /** Why the first failed event failed (there should be none). */
  readonly firstFailure?: string;
  /** Time from resuming the loaded input queue until its last event was completed. */
  readonly seconds: number;
  readonly eventsPerSecond: number;
  readonly followUpsPerSecond: number;
  readonly workerCpuSeconds: number;
  readonly redisCpuSeconds: number;
  readonly redisCallsPerEvent: number;
  readonly commandsPerEvent: ReturnType<typeof perUnit>;
  readonly usedMemoryDelta: number;
  readonly bytesPerPending: number;
}

/** A worker that has scheduled many follow-ups and keeps running for the latency bench. */
export interface IntakeSession {
  readonly run: IntakeRun;
  readonly redis: Redis;
  readonly prefix: string;
  readonly store: FollowUpStore;
  readonly input: Queue;
  readonly followUps: Queue;
  readonly worker: BenchProcess;
  /** Memory by key class and the dissection of one event record and one follow-up job. */
  memoryBreakdown(): Promise<{
    classes: Record<string, KeyClass>;
    eventRecord: HashDissection;
    /** The compressed purchase in the event record: what its fields add, and its length. */
    storedPurchase: { key: string; bytes: number; valueBytes: number };
    /** The compact schedule's bucket holding the sample check-in: its key and its lines. */
    scheduleBucket: { key: string; bytes: number; valueBytes: number; lines: number };
    /** The schedule's index (one entry per bucket). */
    scheduleIndex: { key: string; bytes: number; buckets: number };
  }>;
  close(): Promise<void>;
}

/**
 * Schedules follow-ups through the real pipeline: purchase events are loaded into the paused
 * input queue, then one `followups worker` process plans and schedules them. Timed from resume
 * to the last event completed; loading is not timed. `batchEvents` bounds how many events wait
 * in Redis at once (the 1,000,000 run loads and drains in batches).
 */
export async function scheduleThroughIntake(options: {
  events: number;
  batchEvents: number;
  perPosition: readonly number[];
  providers: Providers;
  scratch: Scratch;
  rates: { emailRate: number; smsRate: number };
  extraEnv?: Record<string, string>;
  /** CONFIG SET before anything is stored, e.g. to try hash-max-listpack-value. */
  redisConfig?: Record<string, string>;
  log?: (line: string) => void;
}): Promise<IntakeSession> {
  const server = await startRedisServer();
  const redis = new Redis(server.url, { maxRetriesPerRequest: null });
  const prefix = BENCH_PREFIX;
  const input = new Queue(PURCHASE_EVENTS_QUEUE, { connection: redis, prefix });
  const followUps = new Queue(FOLLOW_UPS_QUEUE, { connection: redis, prefix });
  const tag = `in${randomBytes(3).toString("hex")}`;
  const configDir = await writeBenchConfig(options.scratch.file("config"), options.rates);
  let worker: BenchProcess | undefined;
  const closeAll = async () => {
    await worker?.stop();
    await input.close();
    await followUps.close();
    await redis.quit();
    await server.stop();
  };
  try {
    await input.waitUntilReady();
    for (const [name, value] of Object.entries(options.redisConfig ?? {}))
      await redis.config("SET", name, value);
    const memoryBefore = await usedMemory(redis);
    await input.pause();
    worker = await startWorkerProcess(
      workerEnv({
        redisUrl: server.url,
        prefix,
        configDir,
        outboxDir: options.scratch.file("outbox"),
        providers: options.providers,
        ...(options.extraEnv && { extra: options.extraEnv }),
      }),
      options.scratch.file("intake-worker.log"),
    );
    const now = DateTime.utc();
    const customers = Math.ceil(options.events / 2);
    const commands = new Map<string, CommandCount>();
    let busyMs = 0;
    let workerCpu = 0;
    let redisCpu = 0;
    for (let from = 0; from < options.events; from += options.batchEvents) {
      const to = Math.min(options.events, from + options.batchEvents);
      for (const chunk of purchaseChunks(tag, from, to, customers, now)) {
        await input.addBulk(eventJobs(chunk));
      }
      const statsBefore = await commandStats(redis);
      const cpuBefore = [await worker.cpuSeconds(), await redisCpuSeconds(redis)] as const;
      const started = Date.now();
      await input.resume();
      await drained(input);
      busyMs += Math.max(1, (await lastFinishedAt(redis, input)) - started);
      workerCpu += (await worker.cpuSeconds()) - cpuBefore[0];
      redisCpu += (await redisCpuSeconds(redis)) - cpuBefore[1];
      addCommandDelta(commands, statsBefore, await commandStats(redis));
      await input.pause();
      options.log?.(`  intake: ${to}/${options.events} events scheduled`);
    }
    await input.resume();
    await sleep(200);
    const pending = await pendingFollowUps(redis, prefix);
    const memoryDelta = (await usedMemory(redis)) - memoryBefore;
    const seconds = busyMs / 1000;
    const totalCalls = [...commands.values()].reduce((sum, c) => sum + c.calls, 0);
    const [failed] = await input.getFailed(0, 0);
    const run: IntakeRun = {
      events: options.events,
      expectedFollowUps: followUpsOf(options.perPosition, options.events),
      followUps: pending,
      failedEvents: await input.getFailedCount(),
      ...(failed && { firstFailure: `${failed.failedReason} ${failed.stacktrace?.[0] ?? ""}` }),
      seconds: round(seconds, 3),
      eventsPerSecond: Math.round(options.events / seconds),
      followUpsPerSecond: Math.round(pending / seconds),
      workerCpuSeconds: round(workerCpu, 2),
      redisCpuSeconds: round(redisCpu, 2),
      redisCallsPerEvent: round(totalCalls / options.events, 1),
      commandsPerEvent: perUnit(commands, options.events),
      usedMemoryDelta: memoryDelta,
      bytesPerPending: Math.round(memoryDelta / pending),
    };
    const store = new FollowUpStore(redis, prefix);
    const started = worker;
    let closing: Promise<void> | undefined;
    return {
      run,
      redis,
      prefix,
      store,
      input,
      followUps,
      worker: started,
      async memoryBreakdown() {
        // Mix position 0 is a television: a thank-you email and a check-in SMS.
        const eventId = `${tag}-evt-0`;
        const scratch = `${prefix}:scratch`;
        const keys = new StoreKeys(prefix);
        const recordKey = keys.eventRecord(eventId);
        const eventRecord = await dissectHash(redis, recordKey, scratch, {
          steps: (field) => field.startsWith("s:"),
          summary: (field) => field === "m",
          purchase: (field) => /^p\d+$/.test(field),
        });
        return {
          classes: await memoryByClass(redis, prefix, (key) => classifyKey(prefix, key)),
          eventRecord,
          // In the record's 64-byte fields: what they add to it.
          storedPurchase: {
            key: `${recordKey} p0…`,
            bytes: eventRecord.bytes - (eventRecord.without.purchase ?? 0),
            valueBytes: purchaseOfFields(await redis.hgetallBuffer(recordKey))?.length ?? 0,
          },
          scheduleBucket: await bucketOfStep(redis, keys, store, eventId, "big-ticket.check-in"),
          scheduleIndex: {
            key: keys.scheduleIndex(),
            bytes: Number(await redis.memory("USAGE", keys.scheduleIndex(), "SAMPLES", 0)),
            buckets: await redis.zcard(keys.scheduleIndex()),
          },
        };
      },
      close() {
        closing ??= deleteKeysWithPrefix(redis, prefix)
          .catch(() => 0)
          .then(closeAll);
        return closing;
      },
    };
  } catch (error) {
    await closeAll().catch(() => undefined);
    throw error;
  }
}

/** Pending follow-ups as the ledger counts them (scheduled or sending, any due day ahead). */
export async function pendingFollowUps(redis: Redis, prefix: string): Promise<number> {
  const counts = await new DeliveryLedger(redis, prefix).pending(Date.now() - 86_400_000, 800);
  return counts.email + counts.sms + counts.voice;
}

/** The schedule bucket a step waits in: MEMORY USAGE of its key, its value and its line count. */
async function bucketOfStep(
  redis: Redis,
  keys: StoreKeys,
  store: FollowUpStore,
  eventId: string,
  stepId: string,
): Promise<{ key: string; bytes: number; valueBytes: number; lines: number }> {
  const record = (await store.stepRecords(eventId, [stepId])).get(stepId);
  const key = keys.scheduleBucket(bucketOf(record?.dueAt ?? 0));
  const entries = await redis.lrange(key, 0, -1);
  return {
    key,
    bytes: Number(await redis.memory("USAGE", key, "SAMPLES", 0)),
    valueBytes: entries.reduce((sum, entry) => sum + Buffer.byteLength(entry), 0),
    lines: entries.length,
  };
}
