import { type Job, Queue } from "bullmq";
import { MAX_SHARDS } from "../domain/shard-spec.js";
import {
  FOLLOW_UPS_QUEUE,
  type FollowUpJobData,
  OWNER_ALERTS_QUEUE,
  OWNER_REPORTS_QUEUE,
  PURCHASE_EVENTS_QUEUE,
  queuePrefix,
} from "../queue/names.js";
import { AuditTrail } from "../store/audit-trail.js";
import { StoreKeys } from "../store/keys.js";
import { operatorCommandsRefusal } from "../store/operator-commands.js";
import type { RedisClient } from "../store/redis-client.js";
import {
  type EventPlacement,
  emptyCounts,
  type ReshardCounts,
  ReshardKeys,
} from "../store/reshard-store.js";
import { type ReshardMark, reshardUnderWay, storedShardCount } from "../store/shards.js";
import { scrubEventStream } from "./erase-customer.js";
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
 * `followups reshard --to N`: changes a deployment's shard count (FOLLOW_UP_SHARDS) with every
 * worker stopped. It marks the change in Redis (workers and commands refuse to start until it is
 * done), finds each purchase's customer, moves the follow-up jobs waiting in the old shards'
 * queues to their customers' new shards' queues, moves every customer's and purchase's keys,
 * the compact schedule and the counts, rewrites the references kept outside the shards, then
 * records the new count. A run that stops half-way (a crash, Redis gone) is finished by running
 * the same command again; nothing is sent while it runs, because no worker runs.
 */

export interface ReshardOptions {
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly cluster: boolean;
  /** The shard count to change to. */
  readonly to: number;
  /** Count what would move, change nothing. */
  readonly dryRun?: boolean;
  /** Who runs it, for the audit trail. */
  readonly by: string;
  readonly now?: () => number;
  /** Told as each part starts (for a command's progress lines). */
  readonly onPart?: (part: string) => void;
}

export interface ReshardResult extends ReshardCounts {
  readonly from: number;
  readonly to: number;
  readonly dryRun: boolean;
  /** Purchases found with their customer's new shard. */
  readonly purchasesPlaced: number;
  /** Follow-up jobs moved to another shard's queue (failed ones stay failed). */
  readonly jobsMoved: number;
  /**
   * Follow-ups queues paused (with a queue tool) when it started: then every new shard's queue is
   * paused at the end, so nothing held back is sent (in a dry run: found).
   */
  readonly queuesPaused: number;
  /**
   * No shard count was recorded under the prefix (no worker has run there): the count was
   * recorded for its first worker (in a dry run: would be), and nothing else was done.
   */
  readonly noDeployment?: true;
  /**
   * A dry run only: BullMQ worker connections on the deployment's queues as it counted (it runs
   * beside workers; the change itself needs none).
   */
  readonly workersConnected?: number;
}

/** Why a reshard cannot run now; the message says what to do. */
export class ReshardRefused extends MoveRefused {
  constructor(message: string) {
    super(message);
    this.name = "ReshardRefused";
  }
}

export async function reshard(options: ReshardOptions): Promise<ReshardResult> {
  const { to } = options;
  if (!Number.isInteger(to) || to < 1 || to > MAX_SHARDS)
    throw new ReshardRefused(`--to: expected a whole number from 1 to ${MAX_SHARDS}, got ${to}`);
  // A dry run only reads; a change holds the deployment's move lease (one run at a time), and
  // stops at its next part if it lost it.
  if (options.dryRun) return changeShardCount(options);
  return holdingMoveLease(options.redis, options.prefix, "followups reshard", options, (onPart) =>
    changeShardCount({ ...options, onPart }),
  );
}

async function changeShardCount(options: ReshardOptions): Promise<ReshardResult> {
  const { redis, prefix, to } = options;
  const now = options.now ?? Date.now;
  const keys = new StoreKeys(prefix);
  const mark = await reshardUnderWay(redis, prefix);
  if (mark && mark.to !== to)
    throw new ReshardRefused(
      `a change of the shard count from ${mark.from} to ${mark.to} is under way: finish it first with "followups reshard --to ${mark.to}"`,
    );
  const from = mark?.from ?? (await storedShardCount(redis, prefix));
  if (from === undefined) {
    if (!options.dryRun) await redis.set(keys.shardCount(), String(to));
    return { ...result(to, to, options, emptyCounts(), 0, 0), noDeployment: true };
  }
  if (from === to && !mark) return result(from, to, options, emptyCounts(), 0, 0);

  // Queue objects that write no settings into Redis when they start: a dry run writes nothing
  // (the workers write them at start).
  const queueOf = (shard: number, shards: number) =>
    quietQueue(
      new Queue<FollowUpJobData>(FOLLOW_UPS_QUEUE, {
        connection: redis,
        prefix: queuePrefix(prefix, FOLLOW_UPS_QUEUE, options.cluster, shard, shards),
        skipMetasUpdate: true,
      }),
    );
  const oldQueues = Array.from({ length: from }, (_, n) => queueOf(n, from));
  const newQueues = Array.from({ length: to }, (_, n) => queueOf(n, to));
  const others = [PURCHASE_EVENTS_QUEUE, OWNER_REPORTS_QUEUE, OWNER_ALERTS_QUEUE].map((name) =>
    quietQueue(
      new Queue(name, {
        connection: redis,
        prefix: queuePrefix(prefix, name, options.cluster),
        skipMetasUpdate: true,
      }),
    ),
  );
  // Jobs move from queue to queue, so a pause is carried as a whole: one paused queue pauses all
  // the new ones. Read before anything moves, and kept in the mark for a run that is finished later.
  const pausedQueues = (await Promise.all(oldQueues.map((queue) => queue.isPaused()))).filter(
    Boolean,
  ).length;
  const holdBack = pausedQueues > 0 || mark?.paused === true;
  // A pause seen by a later run (an old queue may be gone before the end) is kept in the mark too.
  if (!options.dryRun && mark && holdBack && !mark.paused)
    await redis.set(
      keys.reshardMark(),
      JSON.stringify({ ...mark, paused: true } satisfies ReshardMark),
    );
  // Marked before workers are counted, so none can start in between (they refuse while marked);
  // a dry run changes nothing, not even that.
  const marked =
    !options.dryRun &&
    !mark &&
    (await redis.set(
      keys.reshardMark(),
      JSON.stringify({
        from,
        to,
        startedAt: new Date(now()).toISOString(),
        ...(holdBack && { paused: true }),
      } satisfies ReshardMark),
      "NX",
    )) === "OK";
  try {
    const workers = (
      await Promise.all([...oldQueues, ...newQueues, ...others].map((q) => q.getWorkersCount()))
    ).reduce((sum, count) => sum + count, 0);
    if (workers > 0 && !options.dryRun) {
      if (marked) await redis.del(keys.reshardMark());
      throw new ReshardRefused(
        `${workers} worker connection(s) are on this deployment's queues: stop every worker (and the HTTP intake) first; nothing is sent while the shards change`,
      );
    }
    // Looked for after marking: a command that began before the mark would change its customer's
    // keys under the old count as they move; one that begins after it refuses.
    const commands = options.dryRun ? undefined : await operatorCommandsRefusal(redis, prefix);
    if (commands) {
      if (marked) await redis.del(keys.reshardMark());
      throw new ReshardRefused(commands);
    }
    const store = new ReshardKeys(redis, prefix, from, to);
    options.onPart?.("finding each purchase's customer");
    const placement = await store.placeEvents();
    const counts = emptyCounts();
    if (options.dryRun) {
      const jobs = await countJobsToMove(oldQueues, newQueues, placement);
      return {
        ...result(
          from,
          to,
          options,
          counts,
          placement.size,
          jobs,
          holdBack ? Math.max(pausedQueues, 1) : 0,
        ),
        workersConnected: workers,
      };
    }
    options.onPart?.("moving follow-up jobs");
    const movedIds = new Set<string>();
    const jobsMoved = await moveJobs(redis, oldQueues, newQueues, placement, movedIds);
    await dropFinishedLeftBehind(oldQueues, newQueues, placement, movedIds, redis);
    options.onPart?.("moving customers' and purchases' keys");
    counts.countsFolded += await store.foldStaged();
    await store.keepJobWatchUpgradeTrue();
    await store.moveShardKeys(placement, counts);
    options.onPart?.("moving the schedule");
    await store.moveSchedule(placement, counts);
    await store.moveJobWatch(placement);
    options.onPart?.("rewriting references");
    await store.rewriteReferences(placement, counts);
    await store.claimEventIds(counts);
    await store.forgetWalks();
    // The old shards' queues that no longer exist: what is left is finished jobs' bookkeeping.
    const kept = new Set(newQueues.map((queue) => queue.opts.prefix));
    for (const queue of oldQueues)
      if (!kept.has(queue.opts.prefix)) await queue.obliterate({ force: true });
    if (holdBack) for (const queue of newQueues) await queue.pause();
    await redis.multi().set(keys.shardCount(), String(to)).del(keys.reshardMark()).exec();
    await new AuditTrail(redis, prefix).record({
      at: now(),
      by: options.by,
      action: "reshard",
      target: `${from} → ${to} shards`,
    });
    return result(
      from,
      to,
      options,
      counts,
      placement.size,
      jobsMoved,
      holdBack ? newQueues.length : 0,
    );
  } finally {
    await Promise.all([...oldQueues, ...newQueues, ...others].map((queue) => queue.close()));
  }
}

function result(
  from: number,
  to: number,
  options: ReshardOptions,
  counts: ReshardCounts,
  purchasesPlaced: number,
  jobsMoved: number,
  queuesPaused = 0,
): ReshardResult {
  return {
    from,
    to,
    dryRun: options.dryRun ?? false,
    purchasesPlaced,
    jobsMoved,
    queuesPaused,
    ...counts,
  };
}

/** A job's new shard: its purchase's customer's; shard 0 (where the record is copied) if unknown. */
function newShardOf(job: Job<FollowUpJobData>, placement: EventPlacement): number {
  return placement.ofEvent(job.data?.e ?? "") ?? 0;
}

/** A job of an old shard's queue whose purchase now lives in another queue's shard. */
interface JobMove {
  readonly job: Job<FollowUpJobData> & { id: string };
  readonly source: Queue<FollowUpJobData>;
  readonly target: Queue<FollowUpJobData>;
}

/** The jobs in some states that must move, read queue by queue before any moves. */
async function* jobMoves(
  oldQueues: readonly Queue<FollowUpJobData>[],
  newQueues: readonly Queue<FollowUpJobData>[],
  placement: EventPlacement,
  states: Parameters<typeof jobsIn<FollowUpJobData>>[1],
): AsyncGenerator<JobMove> {
  for (const source of oldQueues) {
    for (const job of await jobsIn(source, states)) {
      const target = newQueues[newShardOf(job, placement)] as Queue<FollowUpJobData>;
      if (target.opts.prefix === source.opts.prefix || !job.id) continue;
      yield { job: job as JobMove["job"], source, target };
    }
  }
}

async function countJobsToMove(
  oldQueues: readonly Queue<FollowUpJobData>[],
  newQueues: readonly Queue<FollowUpJobData>[],
  placement: EventPlacement,
): Promise<number> {
  let moving = 0;
  for await (const _ of jobMoves(oldQueues, newQueues, placement, [...LIVE_STATES, "failed"]))
    moving++;
  return moving;
}

/**
 * Moves each job of an old shard's queue whose purchase now lives in another shard to that
 * shard's queue, under the same id, name, data and options and its remaining delay, then removes
 * the old one. A failed job is made failed again in its new queue (taken by a private worker
 * and failed at once, its reason kept), so `followups failed` still lists it. A job added before
 * a crash is not added twice (same id).
 */
async function moveJobs(
  redis: RedisClient,
  oldQueues: readonly Queue<FollowUpJobData>[],
  newQueues: readonly Queue<FollowUpJobData>[],
  placement: EventPlacement,
  /** Filled with the ids of the jobs moved. */
  movedIds: Set<string>,
): Promise<number> {
  let moved = 0;
  const failer = new JobFailer(redis);
  try {
    for await (const { job, target } of jobMoves(oldQueues, newQueues, placement, ["failed"])) {
      await failer.failAgainIn(target, job);
      await job.remove();
      movedIds.add(job.id);
      moved++;
    }
  } finally {
    await failer.close();
  }
  for await (const { job, source, target } of jobMoves(
    oldQueues,
    newQueues,
    placement,
    LIVE_STATES,
  )) {
    await copyLiveJob(redis, source, job, target);
    try {
      await job.remove();
      movedIds.add(job.id);
    } catch (error) {
      throw new ReshardRefused(
        `follow-up job ${job.id} is still held by a worker that stopped less than JOB_LOCK_MS ago (${(error as Error).message}): wait for its lock to run out, then run the command again`,
      );
    }
    moved++;
  }
  return moved;
}

/**
 * Removes the completed jobs of purchases that moved to another shard from an old shard's queue
 * that the new count keeps (shard 0's, on one Redis), and the entries of its event stream about
 * them and about the jobs moved: an erasure looks for a customer's jobs in their own shard's queue
 * only, and would leave these behind (a send's job returns the provider's id of the message).
 * The old queues the new count does not keep are obliterated whole afterwards.
 */
async function dropFinishedLeftBehind(
  oldQueues: readonly Queue<FollowUpJobData>[],
  newQueues: readonly Queue<FollowUpJobData>[],
  placement: EventPlacement,
  movedIds: ReadonlySet<string>,
  redis: RedisClient,
): Promise<void> {
  const kept = new Set(newQueues.map((queue) => queue.opts.prefix));
  for (const source of oldQueues) {
    if (!kept.has(source.opts.prefix)) continue;
    const gone = new Set(movedIds);
    // Read a page at a time, keeping the ids only (a day of completed jobs, with what each
    // returned, can be large), and removed once all are read, so that no page shifts.
    const leaving: string[] = [];
    for (let start = 0; ; start += 1000) {
      const page = await source.getJobs(["completed"], start, start + 999, true);
      for (const job of page as (Job<FollowUpJobData> | undefined)[]) {
        if (!job?.id) continue;
        if (newQueues[newShardOf(job, placement)]?.opts.prefix !== source.opts.prefix)
          leaving.push(job.id);
      }
      if (page.length < 1000) break;
    }
    for (const id of leaving) {
      await source.remove(id);
      gone.add(id);
    }
    if (gone.size > 0) await scrubEventStream(redis, source.keys.events ?? "", gone, []);
  }
}
