import { SCHEDULE_BUCKET_MS, type Scope, StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";
import { type BucketSlice, type ScheduledStepRef, StepBuckets } from "./step-buckets.js";

/**
 * The steps that are BullMQ jobs, or are about to be, filed by when to look whether their job
 * still exists (queue/lost-jobs.ts): once a step leaves the compact schedule, its job is the only
 * thing that will ever send or end it, and a job removed with queue tools or lost in a failover
 * would leave it pending for ever. Lists of step references per ten minutes (as the schedule's,
 * `{…}:fu:j:<bucket>`) and a sorted set of the buckets (`{…}:fu:j`), in the shard's slot; an
 * entry is filed before its job is added, so a crash in between leaves it watched.
 */

/** When a step that becomes a job is first looked at: this long after it falls due. */
export const LOOK_AFTER_DUE_MS = 15 * 60_000;
/** An entry is kept this long past the time it is to be looked at (workers down meanwhile). */
const KEEP_MS = 7 * 86_400_000;

/** A step to watch, and when to look at it first (epoch ms). */
export interface WatchedStep extends ScheduledStepRef {
  readonly lookAt: number;
}

export class JobWatch {
  private readonly redis: RedisClient & StoreCommands;
  private readonly keys: StoreKeys;
  private readonly buckets: StepBuckets;

  constructor(redis: RedisClient, scope: Scope) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(scope);
    this.buckets = new StepBuckets(this.redis, (bucket) => ({
      list: this.keys.jobWatchBucket(bucket),
      index: this.keys.jobWatchIndex(),
      lease: this.keys.jobWatchLease(bucket),
    }));
  }

  /** Files steps to be looked at from `lookAt` on. */
  watch(steps: readonly WatchedStep[]): Promise<void> {
    return this.buckets.file(
      steps.map((step) => ({ ...step, at: step.lookAt, keepUntil: step.lookAt + KEEP_MS })),
    );
  }

  /**
   * Marks a step queued again after its job was lost, for `forMs`: false when another look marked
   * it meanwhile (the step is then neither queued nor counted again).
   */
  async markRequeued(
    eventId: string,
    stepId: string,
    now: number,
    forMs: number,
  ): Promise<boolean> {
    const set = await this.redis.set(
      this.keys.lostJobRequeue(eventId, stepId),
      String(now),
      "PX",
      Math.max(1, Math.round(forMs)),
      "NX",
    );
    return set === "OK";
  }

  /** Buckets whose whole span ended by `until` (epoch ms), earliest first. */
  async bucketsEndedBy(until: number, limit: number): Promise<number[]> {
    const members = await this.redis.zrangebyscore(
      this.keys.jobWatchIndex(),
      "-inf",
      until - SCHEDULE_BUCKET_MS,
      "LIMIT",
      0,
      limit,
    );
    return members.map(Number);
  }

  /** Leases the next slice of a bucket: undefined when another worker holds it or it is gone. */
  claim(bucket: number, leaseMs: number, maxCount: number): Promise<BucketSlice | undefined> {
    return this.buckets.claim(bucket, leaseMs, maxCount);
  }

  /** Drops a slice looked at; false when the lease had passed to another worker. */
  release(slice: BucketSlice): Promise<boolean> {
    return this.buckets.release(slice);
  }
}
