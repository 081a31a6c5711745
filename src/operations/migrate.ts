import { type Job, Queue } from "bullmq";
import {
  FOLLOW_UPS_QUEUE,
  OWNER_ALERTS_QUEUE,
  OWNER_REPORTS_QUEUE,
  PURCHASE_EVENTS_QUEUE,
  queuePrefix,
} from "../queue/names.js";
import { AuditTrail } from "../store/audit-trail.js";
import { olderLayoutRemains, tombstoneNames } from "../store/key-layout.js";
import { StoreKeys } from "../store/keys.js";
import { operatorCommandsRefusal } from "../store/operator-commands.js";
import { isCluster, type RedisClient, restoreTtl } from "../store/redis-client.js";
import { scanKeys } from "../store/reshard-store.js";
import {
  type MoveMark,
  moveMarks,
  reshardRefusal,
  reshardUnderWay,
  storedShardCount,
} from "../store/shards.js";
import {
  copyLiveJob,
  JobFailer,
  jobsIn,
  LIVE_STATES,
  MoveRefused,
  quietQueue,
} from "./job-moves.js";
import { holdingMoveLease } from "./move-lease.js";

/**
 * `followups migrate --to-url URL [--to-cluster]`: copies a deployment, with every worker
 * stopped, from the Redis it runs on (REDIS_URL) to another, typically from one Redis to a Redis
 * Cluster when one Redis is no longer enough. Every key of the store is copied as it is (DUMP and
 * RESTORE, value and expiry: store keys are named alike on both), and every waiting, delayed and
 * failed job of the input queue, the owners' alerts queue and each shard's follow-ups queue is
 * added to the same queue on the new Redis (queue key names differ between one Redis and a
 * cluster) with its id, data, options and remaining delay. The old Redis is marked first, so no
 * worker starts on it again; the new one is marked until the copy has finished, so none starts
 * there early. Nothing is removed from the old Redis. A run that stops half-way is finished by
 * running it again: keys are copied again, a job already copied is not added twice.
 */

export interface MigrateOptions {
  readonly source: RedisClient;
  readonly target: RedisClient;
  readonly prefix: string;
  /** The two Redis deployments as marks and messages name them (their nodes, no credentials). */
  readonly sourceName: string;
  readonly targetName: string;
  /** Count what would be copied, change nothing. */
  readonly dryRun?: boolean;
  /** Who runs it, for the audit trail. */
  readonly by: string;
  readonly now?: () => number;
  /** Told as each part starts (for a command's progress lines). */
  readonly onPart?: (part: string) => void;
}

export interface MigrateResult {
  readonly from: string;
  readonly to: string;
  readonly dryRun: boolean;
  /** The deployment's shard count, the same on the new Redis. */
  readonly shards: number;
  /** Store keys copied (in a dry run: found). */
  readonly keysCopied: number;
  /** Waiting, delayed and prioritized jobs copied (in a dry run: found). */
  readonly jobsCopied: number;
  /** Failed jobs made failed again on the new Redis (in a dry run: found). */
  readonly failedJobsCopied: number;
  /**
   * Queues paused on the old Redis (with a queue tool): paused on the new one too, so what an
   * operator held back stays held (in a dry run: found).
   */
  readonly queuesPaused: number;
  /** A dry run only: BullMQ worker connections on the old Redis's queues as it counted. */
  readonly workersConnected?: number;
  /**
   * Run again after the move had finished: only events published to the old Redis since were
   * copied (its input queue), this many of them.
   */
  readonly lateEvents?: number;
}

/** Why a move cannot run now; the message says what to do. */
export class MigrateRefused extends MoveRefused {
  constructor(message: string) {
    super(message);
    this.name = "MigrateRefused";
  }
}

/** Keys copied at once. */
const BATCH = 200;
/** How far behind this machine's clock a publisher's may run: late events are copied from this early. */
const CLOCK_MARGIN_MS = 60_000;

/** A queue on both Redis deployments: the same name, prefixed for each one's topology. */
interface QueuePair {
  readonly source: Queue;
  readonly target: Queue;
}

export async function migrate(options: MigrateOptions): Promise<MigrateResult> {
  // A dry run only reads; a move holds the old Redis's move lease (one run at a time: a second
  // run still copying after the first finished would write old values over the new Redis's), and
  // the new Redis's too (two deployments moving to one Redis at once would each find it empty and
  // copy over the other), and stops at its next part if it lost either.
  if (options.dryRun) return copyDeployment(options);
  const command = "followups migrate";
  return holdingMoveLease(options.source, options.prefix, command, options, async (onPart) => {
    // The new Redis must take what is copied (a replica, a full or older Redis, an ACL without
    // RESTORE would not), its lease first: a refusal now leaves both as they were.
    await probeTarget(options.source, options.target, new StoreKeys(options.prefix));
    return holdingMoveLease(
      options.target,
      options.prefix,
      command,
      { ...options, onPart, on: `the new Redis (${options.targetName})` },
      (onBothParts) => copyDeployment({ ...options, onPart: onBothParts }),
    );
  });
}

async function copyDeployment(options: MigrateOptions): Promise<MigrateResult> {
  const { source, target, prefix, sourceName, targetName } = options;
  const now = options.now ?? Date.now;
  const keys = new StoreKeys(prefix);
  const { shards, finished, movedSince, arrivingLeft, sourceRunIds, targetRunIds } =
    await preconditions(options);
  const pairs = queuePairs(options, shards);
  // Owners' report schedulers are set again by the workers at start: their jobs are not copied,
  // only a pause of the queue is.
  const reports: QueuePair = {
    source: quietQueue(
      new Queue(OWNER_REPORTS_QUEUE, {
        connection: source,
        prefix: queuePrefix(prefix, OWNER_REPORTS_QUEUE, isCluster(source)),
        skipMetasUpdate: true,
      }),
    ),
    target: quietQueue(
      new Queue(OWNER_REPORTS_QUEUE, {
        connection: target,
        prefix: queuePrefix(prefix, OWNER_REPORTS_QUEUE, isCluster(target)),
        skipMetasUpdate: true,
      }),
    ),
  };
  const allQueues = [...pairs, reports].flatMap(({ source, target }) => [source, target]);
  const countWorkers = async () =>
    (await Promise.all(allQueues.map((queue) => queue.getWorkersCount()))).reduce(
      (sum, count) => sum + count,
      0,
    );
  const refusal = (workers: number) =>
    new MigrateRefused(
      `${workers} worker connection(s) are on this deployment's queues: stop every worker (and the HTTP intake) first; nothing is sent while it moves`,
    );
  try {
    const workers = await countWorkers();
    if (finished && !options.dryRun) {
      // Publishers still writing to the old Redis: their events are copied, nothing else. Only
      // those added since the move began: the rest moved with it (nothing is removed from the
      // old Redis), and copying them again would bring back what the new Redis has finished
      // and let go, or an operator discarded; its failed jobs moved too (no worker has run
      // there since), and failing them again would undo a retry or a discard.
      // A run stopped after marking the move finished and before taking the new Redis's mark.
      if (arrivingLeft) await target.del(keys.arrivingMark());
      options.onPart?.("copying events published to the old Redis since the move");
      const late = await copyJobs(source, target, pairs.slice(0, 1), {
        failed: false,
        addedSince: movedSince,
      });
      return {
        from: sourceName,
        to: targetName,
        dryRun: false,
        shards,
        keysCopied: 0,
        jobsCopied: late.live,
        failedJobsCopied: late.failed,
        queuesPaused: 0,
        lateEvents: late.live + late.failed,
      };
    }
    if (workers > 0 && !options.dryRun) throw refusal(workers);
    if (options.dryRun) {
      let keysFound = (await tombstonesOf(source, prefix)).length;
      for (const pattern of keys.patterns())
        for await (const batch of scanKeys(source, pattern))
          keysFound += batch.filter((key) => !isMark(keys, key)).length;
      const counts = await Promise.all(
        pairs.map(({ source }) => source.getJobCounts(...LIVE_STATES, "failed")),
      );
      const live = counts.reduce(
        (sum, c) => sum + LIVE_STATES.reduce((n, s) => n + (c[s] ?? 0), 0),
        0,
      );
      const failed = counts.reduce((sum, c) => sum + (c.failed ?? 0), 0);
      return {
        from: sourceName,
        to: targetName,
        dryRun: true,
        shards,
        keysCopied: keysFound,
        jobsCopied: live,
        failedJobsCopied: failed,
        queuesPaused: (await pausedQueues([...pairs, reports])).length,
        workersConnected: workers,
      };
    }
    // The new Redis took a probe key before the run took its lease there (migrate()).
    const startedAt = new Date(now()).toISOString();
    const arriving = await target.set(
      keys.arrivingMark(),
      JSON.stringify({ redis: sourceName, runIds: sourceRunIds, startedAt } satisfies MoveMark),
      "NX",
    );
    const moving = await source.set(
      keys.movedMark(),
      JSON.stringify({ redis: targetName, runIds: targetRunIds, startedAt } satisfies MoveMark),
      "NX",
    );
    // Counted again now that both are marked: a worker that passed its start-up check before the
    // marks is connected by now, or reads them again before it takes a job (worker.ts).
    const lateWorkers = await countWorkers();
    // Operator commands are looked for once the old Redis is marked: one that began before would
    // go on changing its customer's keys there after they were copied; one that begins after it
    // refuses.
    const commands = await operatorCommandsRefusal(source, prefix);
    if (lateWorkers > 0 || commands) {
      if (arriving === "OK") await target.del(keys.arrivingMark());
      if (moving === "OK") await source.del(keys.movedMark());
      throw lateWorkers > 0 ? refusal(lateWorkers) : new MigrateRefused(commands ?? "");
    }
    options.onPart?.("copying the store's keys");
    const progress = { copied: 0, sent: 0 };
    try {
      await copyStoreKeys(source, target, keys, progress);
    } catch (error) {
      // A first run that copied nothing takes its marks back: the deployment stays where it was.
      // One that copied some keys keeps them, to be finished by running it again: taken back,
      // they would leave a partial copy on the new Redis that a later run copies over but does
      // not clear (what is erased or removed on the old Redis meanwhile would come back there).
      // Counted as sent, not as answered: a copy whose batch-mate failed first may land after.
      if (arriving === "OK" && moving === "OK" && progress.sent === 0) {
        await target.del(keys.arrivingMark());
        await source.del(keys.movedMark());
      }
      throw error;
    }
    options.onPart?.("copying waiting, delayed and failed jobs");
    const { live, failed } = await copyJobs(source, target, pairs);
    const paused = await pausedQueues([...pairs, reports]);
    for (const pair of paused) await pair.target.pause();
    await new AuditTrail(target, prefix).record({
      at: now(),
      by: options.by,
      action: "migrate",
      target: `from ${sourceName}`,
    });
    // The old Redis's mark says finished before the new one's is taken away: a run stopped in
    // between leaves the new Redis marked, and the next finds the move finished and takes that
    // mark away. The other order left the new Redis unmarked and the old one not finished, which
    // every later run refused (the new Redis holding a deployment) and no run could finish.
    const mark = JSON.parse((await source.get(keys.movedMark())) ?? "{}") as MoveMark;
    await source.set(
      keys.movedMark(),
      JSON.stringify({ ...mark, finishedAt: new Date(now()).toISOString() } satisfies MoveMark),
    );
    await target.del(keys.arrivingMark());
    return {
      from: sourceName,
      to: targetName,
      dryRun: false,
      shards,
      keysCopied: progress.copied,
      jobsCopied: live,
      failedJobsCopied: failed,
      queuesPaused: paused.length,
    };
  } finally {
    await Promise.all(allQueues.map((queue) => queue.close()));
  }
}

/**
 * The deployment's shard count, once nothing stands in the way of the move, whether the move had
 * finished before (then only late events are copied), and both sides' run ids.
 */
async function preconditions(options: MigrateOptions): Promise<{
  shards: number;
  finished: boolean;
  /** When the finished move began (epoch ms); 0 while it has not finished. */
  movedSince: number;
  /** The move finished, and its mark on the new Redis is still there. */
  arrivingLeft: boolean;
  sourceRunIds: string[];
  targetRunIds: string[];
}> {
  const { source, target, prefix, sourceName, targetName } = options;
  const [sourceRunIds, targetRunIds] = await Promise.all([runIdsOf(source), runIdsOf(target)]);
  if (sourceRunIds.some((id) => targetRunIds.includes(id)))
    throw new MigrateRefused(`--to-url names the Redis the deployment is on (${targetName})`);
  // A mark names the other Redis by its URL and its servers: a run with other spellings finds it.
  const names = (mark: MoveMark, name: string, runIds: readonly string[]) =>
    mark.redis === name || (mark.runIds ?? []).some((id) => runIds.includes(id));
  const shards = await storedShardCount(source, prefix);
  if (shards === undefined)
    throw new MigrateRefused(
      `no followups deployment under QUEUE_PREFIX "${prefix}" at ${sourceName}: nothing to move`,
    );
  const resharding = await reshardUnderWay(source, prefix);
  if (resharding) throw new MigrateRefused(reshardRefusal(resharding));
  const here = await moveMarks(source, prefix);
  if (here.arriving)
    throw new MigrateRefused(
      `this deployment is still being copied to ${sourceName} from ${here.arriving.redis}: finish that move first`,
    );
  if (here.moved && !names(here.moved, targetName, targetRunIds))
    throw new MigrateRefused(
      `this deployment moves to ${here.moved.redis} (followups migrate, started ${here.moved.startedAt}), not to ${targetName}`,
    );
  const finished = here.moved?.finishedAt !== undefined;
  if (finished) {
    const { arriving } = await moveMarks(target, prefix);
    return {
      shards,
      finished,
      movedSince: Date.parse(here.moved?.startedAt ?? "") - CLOCK_MARGIN_MS || 0,
      arrivingLeft: arriving !== undefined && names(arriving, sourceName, sourceRunIds),
      sourceRunIds,
      targetRunIds,
    };
  }
  // A deployment of an older version there has no shard count under the name read below: found
  // as the commands find one (its keys of an older layout), else copied over and mixed with.
  if (await olderLayoutRemains(target, prefix))
    throw new MigrateRefused(
      `${targetName} holds followups data of an older key layout (versions before 4 December 2026) under QUEUE_PREFIX "${prefix}": another deployment, which this move would copy over and mix with. Move to an empty Redis, or delete that deployment's keys there first`,
    );
  const there = await moveMarks(target, prefix);
  const arrivingFromHere =
    there.arriving !== undefined && names(there.arriving, sourceName, sourceRunIds);
  if (
    !arrivingFromHere &&
    (there.arriving || (await storedShardCount(target, prefix)) !== undefined)
  )
    throw new MigrateRefused(
      `${targetName} holds a followups deployment under QUEUE_PREFIX "${prefix}" already: move to an empty Redis, or under another QUEUE_PREFIX`,
    );
  return { shards, finished, movedSince: 0, arrivingLeft: false, sourceRunIds, targetRunIds };
}

/**
 * The servers a connection reaches (every node of a cluster), each as its run id and the database
 * number: another database of the same server is another Redis here.
 */
async function runIdsOf(redis: RedisClient): Promise<string[]> {
  const nodes = isCluster(redis) ? redis.nodes("all") : [redis];
  const db = isCluster(redis) ? 0 : (redis.options.db ?? 0);
  const infos = await Promise.all(nodes.map((node) => node.info("server")));
  return infos.flatMap((info) => {
    const runId = /run_id:(\w+)/.exec(info)?.[1];
    return runId ? [`${runId}/${db}`] : [];
  });
}

/**
 * Copies a probe key from the old Redis to the new one and deletes both: the new Redis is
 * writable (not a replica, not full) and takes the old one's dumps (RESTORE allowed, a Redis
 * version that reads them). Refuses, saying so, otherwise.
 */
async function probeTarget(source: RedisClient, target: RedisClient, keys: StoreKeys) {
  const probe = `${keys.arrivingMark()}:probe`;
  await source.set(probe, "followups migrate probe", "PX", 60_000);
  const dump = await source.dumpBuffer(probe);
  await source.del(probe);
  if (!dump) throw new MigrateRefused("the old Redis lost a probe key at once: is it full?");
  try {
    await target.restore(probe, 60_000, dump, "REPLACE");
    await target.del(probe);
  } catch (error) {
    throw new MigrateRefused(
      `the new Redis does not take a copy of a key (${(error as Error).message}): it must be a writable master (not a replica, not full) that allows RESTORE and runs a Redis version at least as new as the old one's`,
    );
  }
}

/** The queues whose jobs move: the input queue, owners' alerts, each shard's follow-ups. */
function queuePairs(options: MigrateOptions, shards: number): QueuePair[] {
  const { source, target, prefix } = options;
  const on = (redis: RedisClient, name: string, shard = 0) =>
    quietQueue(
      new Queue(name, {
        connection: redis,
        prefix: queuePrefix(prefix, name, isCluster(redis), shard, shards),
        // A queue object writes its settings into Redis when it starts unless told not to: a dry
        // run or a refused run would leave them on the new Redis. Workers write them at start.
        skipMetasUpdate: true,
      }),
    );
  const pair = (name: string, shard = 0): QueuePair => ({
    source: on(source, name, shard),
    target: on(target, name, shard),
  });
  return [
    pair(PURCHASE_EVENTS_QUEUE),
    pair(OWNER_ALERTS_QUEUE),
    ...Array.from({ length: shards }, (_, shard) => pair(FOLLOW_UPS_QUEUE, shard)),
  ];
}

/** The queues paused on the old Redis. */
async function pausedQueues(pairs: readonly QueuePair[]): Promise<QueuePair[]> {
  const paused = await Promise.all(pairs.map(({ source }) => source.isPaused()));
  return pairs.filter((_, i) => paused[i]);
}

/**
 * The keys of a move itself, not copied: its marks and the lease of the run; and the marks of
 * operator commands, each of a process on the old Redis (one that began meanwhile refuses).
 */
function isMark(keys: StoreKeys, key: string): boolean {
  return (
    key === keys.movedMark() ||
    key === keys.arrivingMark() ||
    key === keys.moveLease() ||
    key.startsWith(keys.operatorCommand(""))
  );
}

/**
 * The tombstones the key layout upgrades left on the old Redis (strings where workers of older
 * versions look for opt-outs): copied too, first, so that such a worker started on the new Redis
 * by mistake fails its opt-out check there as it does on the old one, instead of finding none.
 */
async function tombstonesOf(source: RedisClient, prefix: string): Promise<string[]> {
  const names = tombstoneNames(prefix);
  const types = await Promise.all(names.map((name) => source.type(name)));
  return names.filter((_, i) => types[i] === "string");
}

/**
 * Copies every key of the store, value and expiry, replacing what an earlier run copied; counts
 * in `progress` each key copied as it goes (also when a later one fails), and each copy sent
 * (`sent`: it may land on the new Redis though its answer never comes, or comes after another
 * copy of its batch failed).
 */
async function copyStoreKeys(
  source: RedisClient,
  target: RedisClient,
  keys: StoreKeys,
  progress: { copied: number; sent: number },
): Promise<void> {
  const copy = async (key: string) => {
    const copied = await copyKey(source, target, key, () => {
      progress.sent += 1;
    });
    progress.copied += copied;
  };
  for (const key of await tombstonesOf(source, keys.prefix)) await copy(key);
  for (const pattern of keys.patterns()) {
    for await (const batch of scanKeys(source, pattern)) {
      const names = batch.filter((key) => !isMark(keys, key));
      for (let start = 0; start < names.length; start += BATCH)
        await Promise.all(names.slice(start, start + BATCH).map(copy));
    }
  }
}

/**
 * Copies one key, value and what is left of its expiry, over what the new Redis has under its
 * name; 0 if it is gone.
 */
async function copyKey(
  source: RedisClient,
  target: RedisClient,
  key: string,
  sending: () => void,
): Promise<0 | 1> {
  const [dump, ttl] = await Promise.all([source.dumpBuffer(key), source.pttl(key)]);
  // Gone meanwhile (expired): nothing to copy.
  if (dump === null || ttl === -2) return 0;
  sending();
  // Relative (the two Redis' clocks may differ): a key in its last millisecond keeps 1 ms.
  await target.restore(key, restoreTtl(ttl), dump, "REPLACE");
  return 1;
}

/**
 * Adds every live job of each queue to its twin on the new Redis (same id: a job copied by an
 * earlier run is not added again), and (unless `failed` is false) makes each failed job failed
 * there again.
 */
async function copyJobs(
  source: RedisClient,
  target: RedisClient,
  pairs: readonly QueuePair[],
  options: {
    readonly failed: boolean;
    /** Only live jobs added at or after this instant (epoch ms). */
    readonly addedSince?: number;
  } = { failed: true },
): Promise<{ live: number; failed: number }> {
  let live = 0;
  let failed = 0;
  const failer = new JobFailer(target);
  try {
    for (const pair of pairs) {
      for (const job of options.failed ? await jobsIn(pair.source, ["failed"]) : []) {
        if (!job.id) continue;
        await failer.failAgainIn(pair.target, job as Job & { id: string });
        failed++;
      }
      for (const job of await jobsIn(pair.source, LIVE_STATES)) {
        if (!job.id || job.timestamp < (options.addedSince ?? 0)) continue;
        await copyLiveJob(source, pair.source, job as Job & { id: string }, pair.target, target);
        live++;
      }
    }
  } finally {
    await failer.close();
  }
  return { live, failed };
}
