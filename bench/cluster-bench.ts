import { randomBytes } from "node:crypto";
import { Queue } from "bullmq";
import calculateSlot from "cluster-key-slot";
import type { Redis } from "ioredis";
import { DateTime } from "luxon";
import { reshard } from "../src/operations/reshard.js";
import { FOLLOW_UPS_QUEUE, PURCHASE_EVENTS_QUEUE, queuePrefix } from "../src/queue/names.js";
import { connectRedis } from "../src/redis-connections.js";
import { DeliveryLedger } from "../src/store/delivery-ledger.js";
import { globalTag, queueTag, shardScope, shardTag } from "../src/store/keys.js";
import { isCluster, type RedisClient } from "../src/store/redis-client.js";
import { deleteKeysWithPrefix, uniquePrefix } from "../test/support/redis-namespace.js";
import type { Providers } from "./arrival-sink.js";
import { writeBenchConfig } from "./bench-config.js";
import { type Scratch, workerEnv } from "./bench-env.js";
import { type BenchProcess, sleep, startWorkerProcess } from "./processes.js";
import { CHUNK, dueAtPurchase, eventJobs, purchaseChunks } from "./purchases.js";
import { drained, lastFinishedAt } from "./queue-drain.js";
import {
  addCommandDelta,
  type CommandCount,
  commandStats,
  perUnit,
  redisCpuSeconds,
  round,
} from "./redis-stats.js";

/** The shard count the cluster bench runs with, on one Redis and on the cluster alike. */
export const BENCH_SHARDS = 16;
/** The shard count the one-Redis and cluster runs change to at their end (`followups reshard`). */
export const RESHARD_TO = 32;
const SEND_TIMEOUT_MS = 10 * 60_000;

/** What one worker process did against one Redis or one cluster. */
export interface ClusterScenario {
  readonly label: string;
  readonly masters: number;
  readonly events: number;
  readonly pending: number;
  /** Data memory growth (dataMemory) summed over the masters, per pending follow-up. */
  readonly bytesPerPending: number;
  readonly intake: {
    readonly seconds: number;
    readonly eventsPerSecond: number;
    readonly workerCpuMsPerEvent: number;
    /** Redis CPU per event on every master, busiest first. */
    readonly redisCpuMsPerEventByMaster: readonly number[];
    /** What each of those masters holds (masterHoldings), in the same order. */
    readonly holdingsByMaster: readonly string[];
    /** What the busiest master spent its time on, per event (INFO commandstats). */
    readonly busiestMasterCommands: ReturnType<typeof perUnit>;
  };
  readonly send: {
    readonly messages: number;
    readonly seconds: number;
    readonly perSecond: number;
    readonly workerCpuMsPerSend: number;
    readonly redisCpuMsPerSendByMaster: readonly number[];
    readonly holdingsByMaster: readonly string[];
    readonly busiestMasterCommands: ReturnType<typeof perUnit>;
  };
  /** `followups reshard` from 16 shards to `to`, workers stopped, after the sends (if asked). */
  readonly reshard?: {
    readonly to: number;
    readonly seconds: number;
    readonly purchasesPlaced: number;
    readonly purchasesPerSecond: number;
    readonly keysMoved: number;
    readonly jobsMoved: number;
    readonly scheduledMoved: number;
    readonly referencesRewritten: number;
    /** Pending follow-ups as the ledger counts them, before and after: equal, or the bench fails. */
    readonly pending: number;
  };
}

/** Where a scenario runs: a Redis URL (or a cluster's seed URLs) and how to connect. */
export interface BenchTarget {
  readonly url: string;
  readonly cluster: boolean;
}

/**
 * One `followups worker` process with FOLLOW_UP_SHARDS=16 against `target`: `events` purchases of
 * the bench's mix scheduled (memory, worker and Redis CPU per event), then `sends` due-now
 * purchases (half email, half SMS) sent once every shard's queue is resumed (CPU per send).
 */
export async function clusterScenario(options: {
  label: string;
  target: BenchTarget;
  events: number;
  sends: number;
  providers: Providers;
  scratch: Scratch;
  extraEnv?: Record<string, string>;
  /** Then stop the worker and change the shard count to this (`followups reshard`). */
  reshardTo?: number;
  log: (line: string) => void;
}): Promise<ClusterScenario> {
  const { target } = options;
  const redis = await connectRedis(target.url, target.cluster);
  const masters: Redis[] = isCluster(redis) ? redis.nodes("master") : [redis];
  const prefix = uniquePrefix("bench-cluster");
  const input = new Queue(PURCHASE_EVENTS_QUEUE, {
    connection: redis,
    prefix: queuePrefix(prefix, PURCHASE_EVENTS_QUEUE, target.cluster),
  });
  const followUps = Array.from(
    { length: BENCH_SHARDS },
    (_, shard) =>
      new Queue(FOLLOW_UPS_QUEUE, {
        connection: redis,
        prefix: queuePrefix(prefix, FOLLOW_UPS_QUEUE, target.cluster, shard, BENCH_SHARDS),
      }),
  );
  let worker: BenchProcess | undefined;
  const rates = { emailRate: 10_000, smsRate: 10_000 };
  try {
    await input.waitUntilReady();
    await input.pause();
    const memoryBefore = await sumOver(masters, dataMemory);
    worker = await startWorkerProcess(
      workerEnv({
        redisUrl: target.url,
        prefix,
        configDir: await writeBenchConfig(options.scratch.file(`${prefix}-config`), rates),
        outboxDir: options.scratch.file(`${prefix}-outbox`),
        providers: options.providers,
        extra: {
          REDIS_CLUSTER: String(target.cluster),
          FOLLOW_UP_SHARDS: String(BENCH_SHARDS),
          ...options.extraEnv,
        },
      }),
      options.scratch.file(`${prefix}-worker.log`),
    );

    // Intake: the mix of purchases, loaded into the paused input queue, then taken in.
    const tag = `cl${randomBytes(3).toString("hex")}`;
    const now = DateTime.utc();
    for (const chunk of purchaseChunks(tag, 0, options.events, options.events / 2, now))
      await input.addBulk(eventJobs(chunk));
    const intake = await measured(worker, masters, async () => {
      const started = Date.now();
      await input.resume();
      await drained(input);
      return (await lastFinishedAt(redis as Redis, input)) - started;
    });
    await sleep(300);
    const pending = await pendingOf(redis, prefix);
    const bytes = (await sumOver(masters, dataMemory)) - memoryBefore;
    options.log(`  ${options.label}: ${options.events} events → ${pending} pending`);

    // Sends: due-now purchases wait as jobs in the paused shards' queues, then all go.
    await Promise.all(followUps.map((queue) => queue.pause()));
    const sendTag = `cs${randomBytes(3).toString("hex")}`;
    const due = Array.from({ length: options.sends }, (_, i) =>
      dueAtPurchase(sendTag, i, i % 2 === 0 ? "email" : "sms", DateTime.utc()),
    );
    for (let i = 0; i < due.length; i += CHUNK)
      await input.addBulk(eventJobs(due.slice(i, i + CHUNK)));
    await drained(input);
    for (;;) {
      const counts = await Promise.all(
        followUps.map((queue) => queue.getJobCounts("wait", "prioritized")),
      );
      const waiting = counts.flatMap((c) => Object.values(c)).reduce((a, b) => a + b, 0);
      if (waiting >= options.sends) break;
      await sleep(50);
    }
    const sentBefore = options.providers.count();
    const send = await measured(worker, masters, async () => {
      const started = Date.now();
      await Promise.all(followUps.map((queue) => queue.resume()));
      while (options.providers.count() - sentBefore < options.sends) {
        if (Date.now() - started > SEND_TIMEOUT_MS)
          throw new Error(`${options.label}: ${options.providers.count() - sentBefore} sent`);
        await sleep(20);
      }
      const last = Math.max(...options.providers.arrivals().map((arrival) => arrival.at));
      return last - started;
    });
    const perEvent = (seconds: number, count: number) => round((seconds * 1000) / count, 3);
    // Busiest first, with what each master holds.
    const holdings = await masterHoldings(redis, masters, prefix);
    const byMaster = (cpu: readonly number[], count: number) =>
      cpu
        .map((seconds, i) => ({ ms: perEvent(seconds, count), holds: holdings[i] ?? "" }))
        .sort((a, b) => b.ms - a.ms);
    const intakeByMaster = byMaster(intake.redisCpu, options.events);
    const sendByMaster = byMaster(send.redisCpu, options.sends);
    let resharded: ClusterScenario["reshard"];
    if (options.reshardTo !== undefined) {
      await worker.stop();
      worker = undefined;
      const pendingBefore = await pendingOf(redis, prefix);
      const started = performance.now();
      const done = await reshard({
        redis,
        prefix,
        cluster: target.cluster,
        to: options.reshardTo,
        by: "bench",
      });
      const seconds = (performance.now() - started) / 1000;
      const pendingAfter = await pendingOf(redis, prefix, options.reshardTo);
      if (pendingAfter !== pendingBefore)
        throw new Error(
          `${options.label}: ${pendingBefore} pending before reshard, ${pendingAfter} after`,
        );
      resharded = {
        to: options.reshardTo,
        seconds: round(seconds, 2),
        purchasesPlaced: done.purchasesPlaced,
        purchasesPerSecond: Math.round(done.purchasesPlaced / seconds),
        keysMoved: done.keysMoved,
        jobsMoved: done.jobsMoved,
        scheduledMoved: done.scheduledMoved,
        referencesRewritten: done.referencesRewritten,
        pending: pendingAfter,
      };
      options.log(
        `  ${options.label}: reshard ${BENCH_SHARDS} → ${options.reshardTo}, ${done.purchasesPlaced} purchases in ${round(seconds, 1)} s`,
      );
    }
    return {
      label: options.label,
      masters: masters.length,
      events: options.events,
      pending,
      bytesPerPending: Math.round(bytes / pending),
      intake: {
        seconds: round(intake.ms / 1000, 2),
        eventsPerSecond: Math.round(options.events / (intake.ms / 1000)),
        workerCpuMsPerEvent: perEvent(intake.workerCpu, options.events),
        redisCpuMsPerEventByMaster: intakeByMaster.map((master) => master.ms),
        holdingsByMaster: intakeByMaster.map((master) => master.holds),
        busiestMasterCommands: perUnit(intake.busiestCommands, options.events, 8),
      },
      send: {
        messages: options.sends,
        seconds: round(send.ms / 1000, 2),
        perSecond: Math.round(options.sends / (send.ms / 1000)),
        workerCpuMsPerSend: perEvent(send.workerCpu, options.sends),
        redisCpuMsPerSendByMaster: sendByMaster.map((master) => master.ms),
        holdingsByMaster: sendByMaster.map((master) => master.holds),
        busiestMasterCommands: perUnit(send.busiestCommands, options.sends, 8),
      },
      ...(resharded && { reshard: resharded }),
    };
  } finally {
    await worker?.stop();
    await input.close();
    await Promise.all(followUps.map((queue) => queue.close()));
    await deleteKeysWithPrefix(redis, prefix);
    redis.disconnect();
  }
}

/**
 * Time taken (ms, as `work` reports it), worker CPU, each master's Redis CPU over `work`, and the
 * commands the busiest master ran.
 */
async function measured(
  worker: BenchProcess,
  masters: readonly Redis[],
  work: () => Promise<number>,
): Promise<{
  ms: number;
  workerCpu: number;
  redisCpu: number[];
  busiestCommands: Map<string, CommandCount>;
}> {
  const workerBefore = await worker.cpuSeconds();
  const redisBefore = await Promise.all(masters.map(redisCpuSeconds));
  const statsBefore = await Promise.all(masters.map(commandStats));
  const ms = Math.max(1, await work());
  const workerCpu = (await worker.cpuSeconds()) - workerBefore;
  const redisAfter = await Promise.all(masters.map(redisCpuSeconds));
  const statsAfter = await Promise.all(masters.map(commandStats));
  const redisCpu = redisAfter.map((cpu, i) => cpu - (redisBefore[i] ?? 0));
  const busiest = redisCpu.indexOf(Math.max(...redisCpu));
  const busiestCommands = new Map<string, CommandCount>();
  addCommandDelta(
    busiestCommands,
    statsBefore[busiest] ?? new Map(),
    statsAfter[busiest] ?? new Map(),
  );
  return { ms, workerCpu, redisCpu, busiestCommands };
}

/**
 * What each master holds of the deployment, in the order of `masters`: the input queue, the
 * global keys, and how many of the shards (their records, schedules and follow-ups queues). One
 * Redis holds everything.
 */
async function masterHoldings(
  redis: RedisClient,
  masters: readonly Redis[],
  prefix: string,
): Promise<string[]> {
  if (!isCluster(redis)) return ["one Redis: everything"];
  // [start, end, [host, port, id], …replicas] per slot range.
  const ranges = await redis.cluster("SLOTS");
  const ownerOf = (tag: string) => {
    const slot = calculateSlot(tag);
    const master = ranges.find(([start, end]) => slot >= start && slot <= end)?.[2];
    return master ? `${master[0]}:${master[1]}` : "";
  };
  const input = ownerOf(queueTag(prefix));
  const global = ownerOf(globalTag(prefix));
  const shards = Array.from({ length: BENCH_SHARDS }, (_, n) =>
    ownerOf(shardTag(prefix, n, BENCH_SHARDS)),
  );
  return masters.map((master) => {
    const address = `${master.options.host}:${master.options.port}`;
    const count = shards.filter((owner) => owner === address).length;
    return [
      `port ${master.options.port}`,
      ...(address === input ? ["input queue"] : []),
      ...(address === global ? ["global keys"] : []),
      `${count} shard${count === 1 ? "" : "s"}`,
    ].join(", ");
  });
}

/**
 * What a Redis holds for its data: used_memory without client and replica buffers and the
 * replication backlog, which a cluster's masters have (their replicas) and one Redis does not,
 * and which grow and shrink with traffic rather than with what is stored.
 */
async function dataMemory(redis: Redis): Promise<number> {
  const info = await redis.info("memory");
  const field = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, "m").exec(info)?.[1] ?? 0);
  return (
    field("used_memory") -
    field("mem_clients_slaves") -
    field("mem_clients_normal") -
    field("mem_replication_backlog")
  );
}

async function sumOver(masters: readonly Redis[], read: (redis: Redis) => Promise<number>) {
  return (await Promise.all(masters.map(read))).reduce((a, b) => a + b, 0);
}

/** Pending follow-ups as the ledger counts them, over every shard. */
async function pendingOf(
  redis: RedisClient,
  prefix: string,
  shards = BENCH_SHARDS,
): Promise<number> {
  const ledger = new DeliveryLedger(redis, shardScope(prefix, 0, shards));
  const counts = await ledger.pending(Date.now() - 86_400_000, 800);
  return counts.email + counts.sms + counts.voice;
}

/** The cluster bench's comparisons, each against the one-Redis run of the same bench. */
export function clusterComparison(
  single: ClusterScenario,
  cluster: ClusterScenario,
  waiting: ClusterScenario,
) {
  const ratio = (a: number, b: number) => round(a / b, 3);
  /** A figure of the one-Redis run and of the cluster run, and their ratio. */
  const compare = (figure: (run: ClusterScenario) => number, target: string) => ({
    single: figure(single),
    cluster: figure(cluster),
    ratio: ratio(figure(cluster), figure(single)),
    target,
  });
  return {
    bytesPerPending: compare((run) => run.bytesPerPending, "within ±10%"),
    intakeWorkerCpu: compare((run) => run.intake.workerCpuMsPerEvent, "≤ 1.3"),
    sendWorkerCpu: compare((run) => run.send.workerCpuMsPerSend, "≤ 1.3"),
    // The lists are busiest master first.
    busiestMasterIntake: compare((run) => run.intake.redisCpuMsPerEventByMaster[0] ?? 0, "≤ 0.5"),
    busiestMasterSend: compare((run) => run.send.redisCpuMsPerSendByMaster[0] ?? 0, "≤ 0.5"),
    waitReplicas: {
      intakeEventsPerSecond: ratio(waiting.intake.eventsPerSecond, cluster.intake.eventsPerSecond),
      intakeWorkerCpu: ratio(
        waiting.intake.workerCpuMsPerEvent,
        cluster.intake.workerCpuMsPerEvent,
      ),
      sendsPerSecond: ratio(waiting.send.perSecond, cluster.send.perSecond),
      sendWorkerCpu: ratio(waiting.send.workerCpuMsPerSend, cluster.send.workerCpuMsPerSend),
      target: "reported",
    },
  };
}
