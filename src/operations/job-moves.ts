import { randomUUID } from "node:crypto";
import { type Job, type Queue, UnrecoverableError, Worker } from "bullmq";
import { isCluster, type RedisClient } from "../store/redis-client.js";

/**
 * Copying BullMQ jobs from one queue to another, as `followups reshard` (between shards' queues)
 * and `followups migrate` (between Redis deployments) do: the same id, name, data and options,
 * the remaining delay, and failed jobs failed again with their reasons.
 */

/** Why a move cannot go on now; the message says what to do. */
export class MoveRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MoveRefused";
  }
}

/**
 * A queue of a one-shot command that moves jobs, whose errors BullMQ does not print: a lost
 * connection fails the command's own next call, which says so once (cli.ts); without a listener
 * BullMQ prints each queue's error, stack and all, to the console (eight of them for a reshard
 * from 2 to 3 shards).
 */
export function quietQueue<T>(queue: Queue<T>): Queue<T> {
  queue.on("error", () => undefined);
  return queue;
}

/** Job states whose jobs still have work to do, and move; finished ones stay behind. */
export const LIVE_STATES = ["waiting", "prioritized", "delayed", "active"] as const;

type MovableState = (typeof LIVE_STATES)[number] | "failed";

/** Every job of some states, read before any moves (moving shifts the lists). */
export async function jobsIn<T>(
  queue: Queue<T>,
  states: readonly MovableState[],
): Promise<Job<T>[]> {
  const jobs: Job<T>[] = [];
  for (let start = 0; ; start += 1000) {
    const page = await queue.getJobs([...states], start, start + 999, true);
    jobs.push(...(page.filter(Boolean) as Job<T>[]));
    if (page.length < 1000) return jobs;
  }
}

/** A job's options as a copy of it takes them: its own id, its delay and time set anew. */
export function carriedOptions<T>(job: Job<T>) {
  const { delay: _delay, jobId: _jobId, timestamp: _timestamp, ...opts } = job.opts;
  return opts;
}

/**
 * How long a job still waits: its time in its queue's delayed set (BullMQ scores it as due time
 * × 4096 + a counter; `timestamp + delay` is wrong for a job postponed since, by a retry's backoff
 * or a send window), else nothing. `redis` is the queue's connection.
 */
export async function remainingDelay<T>(
  redis: RedisClient,
  source: Queue<T>,
  jobId: string,
): Promise<number> {
  const score = await redis.zscore(source.keys.delayed as string, jobId);
  if (score === null) return 0;
  return Math.max(0, Math.floor(Number(score) / 4096) - Date.now());
}

/**
 * Adds a copy of a live job to `target`: a no-op when a job of that id is there already. A job
 * whose retries had begun keeps the attempts it has left (its count starts again at 0), and the
 * attempts BullMQ started for it, by which intake counts an event's own retries (an event has no
 * BullMQ attempts of its own): a copy started afresh would be tried the whole count again. So
 * does the count of its stalls, and the failure BullMQ's stalled check noted on a job that
 * stalled more than maxStalledCount times (it took its worker down each time it ran), by which
 * the next worker to take it fails it before running it: a copy without would be run again.
 */
export async function copyLiveJob<T>(
  redis: RedisClient,
  source: Queue<T>,
  job: Job<T> & { id: string },
  target: Queue<T>,
  /** `target`'s connection, when not `redis` (`source`'s). */
  targetRedis: RedisClient = redis,
): Promise<void> {
  const options = carriedOptions(job);
  await target.add(job.name as never, job.data as never, {
    ...options,
    ...(options.attempts !== undefined && {
      attempts: Math.max(1, options.attempts - job.attemptsMade),
    }),
    jobId: job.id,
    delay: await remainingDelay(redis, source, job.id),
  });
  const counts: [string, string | number | undefined][] = [
    ["ats", job.attemptsStarted],
    ["stc", job.stalledCounter],
    ["defa", job.deferredFailure],
  ];
  const carried = counts.filter(([, value]) => value !== undefined && value !== 0 && value !== "");
  if (carried.length === 0) return;
  // Not on a copy started on the target already (a run again after workers ran there: BullMQ
  // notes `ats` as a worker first takes it), nor on one gone meanwhile.
  const key = target.toKey(job.id);
  if ((await targetRedis.exists(key)) === 0 || (await targetRedis.hexists(key, "ats")) === 1)
    return;
  await targetRedis.hset(key, Object.fromEntries(carried));
}

/** A connection like `redis` that BullMQ can block on (no retry limit per command). */
function blockingConnection(redis: RedisClient): RedisClient {
  if (isCluster(redis))
    return redis.duplicate(undefined, {
      redisOptions: { ...redis.options.redisOptions, maxRetriesPerRequest: null },
    });
  return redis.duplicate({ maxRetriesPerRequest: null });
}

/**
 * Makes failed jobs failed again in another queue: each is added at the head of the queue, taken
 * by a private worker of that queue (one per queue, processing nothing) and failed at once with
 * its reason. `redis` is the target queues' connection.
 */
export class JobFailer {
  private readonly workers = new Map<string, Worker>();
  private readonly connections: RedisClient[] = [];

  constructor(private readonly redis: RedisClient) {}

  private workerOf<T>(queue: Queue<T>): Worker {
    const prefix = queue.opts.prefix as string;
    const id = `${prefix}\u0000${queue.name}`;
    let worker = this.workers.get(id);
    if (!worker) {
      const connection = blockingConnection(this.redis);
      this.connections.push(connection);
      worker = new Worker(queue.name, null, { connection, prefix, autorun: false });
      // As quietQueue: its errors fail the command's own calls.
      worker.on("error", () => undefined);
      this.workers.set(id, worker);
    }
    return worker;
  }

  async failAgainIn<T>(target: Queue<T>, job: Job<T> & { id: string }): Promise<void> {
    const existing = await target.getJob(job.id);
    const state = existing ? await existing.getState() : undefined;
    if (state === "failed") return;
    if (state === "active") {
      // Taken by an earlier run that stopped before failing it. Its lock is renewed by nothing
      // (these workers do not run), and the job stays active once the lock has run out (only a
      // running worker's stalled check moves it back): then no one holds it, and it is added
      // again like any other.
      const lockLeft = await this.redis.pttl(`${target.toKey(job.id)}:lock`);
      if (lockLeft > 0)
        throw new MoveRefused(
          `job ${job.id} of ${target.name} is held by an earlier run of this command that stopped: its hold runs out within ${Math.ceil(lockLeft / 1000)} s, then run the command again`,
        );
    }
    // Added before a crash and not failed yet: added again, at the head.
    if (existing) await existing.remove();
    await target.add(job.name as never, job.data as never, {
      ...carriedOptions(job),
      jobId: job.id,
      lifo: true,
    });
    // A paused queue gives no job to take: resumed for the moment, and paused again whatever
    // happens; never while a worker is on it (it would take what the pause holds back).
    const paused = await target.isPaused();
    if (paused && (await target.getWorkersCount()) > 0)
      throw new MoveRefused(
        `job ${job.id} is to be failed again in ${target.name}, which is paused and has workers connected: stop the workers (or resume the queue), then run the command again`,
      );
    if (paused) await target.resume();
    try {
      await this.takeAndFail(target, job);
    } finally {
      if (paused) await target.pause();
    }
  }

  private async takeAndFail<T>(target: Queue<T>, job: Job<T> & { id: string }): Promise<void> {
    const worker = this.workerOf(target);
    const waiting = await target.getWaitingCount();
    for (let tries = 0; tries <= waiting; tries++) {
      const token = randomUUID();
      const taken = (await worker.getNextJob(token, { block: false })) as Job | undefined;
      if (!taken) break;
      if (taken.id === job.id) {
        await taken.moveToFailed(new UnrecoverableError(job.failedReason || "failed"), token);
        return;
      }
      // Not ours (added at the head meanwhile): back to waiting, and take the next.
      await taken.moveToWait(token);
    }
    throw new Error(`job ${job.id} could not be taken in ${target.name} to fail it again`);
  }

  async close(): Promise<void> {
    await Promise.all([...this.workers.values()].map((worker) => worker.close()));
    for (const connection of this.connections) connection.disconnect();
  }
}
