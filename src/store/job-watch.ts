import { SCHEDULE_BUCKET_MS, type Scope, StoreKeys } from "./keys.js";
import { decodeStored } from "./purchase-codec.js";
import { purchaseOfRecordFields, type RecordFields } from "./purchase-fields.js";
import type { RedisClient } from "./redis-client.js";
import { scanKeys } from "./reshard-store.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";
import { type BucketSlice, type ScheduledStepRef, StepBuckets } from "./step-buckets.js";
import { readableStepRecord, type StepRecord, UNREADABLE_STEP } from "./step-record.js";

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

/** How long the worker reading a shard's records for the upgrade holds it between batches. */
const UPGRADE_LEASE_MS = 10 * 60_000;

/** A step found pending in a purchase record. */
export interface PendingStep extends ScheduledStepRef {
  readonly record: StepRecord;
}

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
   * Marks a step queued again (or skipped) after its job was lost, for `forMs`: false when another
   * look marked it meanwhile (the step is then neither queued, skipped nor counted again).
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

  /**
   * Takes the shard's upgrade (the records read once for steps of versions before the watch):
   * "done" when it was done already, "held" while another worker does it, "taken" for this one.
   */
  async takeUpgrade(token: string): Promise<"done" | "held" | "taken"> {
    const key = this.keys.jobWatchUpgrade();
    const taken = await this.redis.set(key, `running ${token}`, "PX", UPGRADE_LEASE_MS, "NX");
    if (taken === "OK") return "taken";
    return (await this.redis.get(key)) === "done" ? "done" : "held";
  }

  /** Keeps the upgrade held by `token` for another lease; false when it is no longer ours. */
  async keepUpgrade(token: string): Promise<boolean> {
    const key = this.keys.jobWatchUpgrade();
    if ((await this.redis.get(key)) !== `running ${token}`) return false;
    await this.redis.pexpire(key, UPGRADE_LEASE_MS);
    return true;
  }

  /**
   * Gives back the upgrade held by `token` (its worker stopped half-way), so that the next worker
   * to start reads the shard at once rather than after the lease. A lease that passed to another
   * worker meanwhile may be dropped too: two readers at once file steps twice, acted on once.
   */
  async dropUpgrade(token: string): Promise<void> {
    const key = this.keys.jobWatchUpgrade();
    if ((await this.redis.get(key)) === `running ${token}`) await this.redis.del(key);
  }

  /** Marks the upgrade done for good: no later start reads the records again. */
  async finishUpgrade(): Promise<void> {
    await this.redis.set(this.keys.jobWatchUpgrade(), "done");
  }

  /**
   * The pending steps (`scheduled`, `sending`) due by `dueBy()` (epoch ms, asked per batch) of
   * every purchase record of the shard, a SCAN batch at a time, each record read once; its
   * purchase's id from the purchase in it, else from the stored purchase beside it (versions
   * before 2026-12-03) or its JSON (before 2026-11-30), read only for a record with such a step
   * (decompressing every record's purchase took most of the pass's time). A record whose purchase
   * cannot be read is passed over, and so is a step record that cannot be (damaged, or in a newer
   * version's form): it would otherwise fail every pass of the shard at the same place.
   */
  async *pendingSteps(
    dueBy: () => number = () => Number.POSITIVE_INFINITY,
  ): AsyncGenerator<PendingStep[]> {
    for await (const batch of scanKeys(this.redis, this.keys.eventRecords())) {
      const found: PendingStep[] = [];
      // One round trip per batch: the shard's keys share its slot.
      const pipeline = this.redis.pipeline();
      for (const key of batch) pipeline.hgetallBuffer(key);
      const replies = (await pipeline.exec()) ?? [];
      const by = dueBy();
      for (const [i, key] of batch.entries()) {
        const [error, reply] = replies[i] ?? [];
        if (error) throw error;
        const fields = (reply ?? {}) as RecordFields;
        const steps = Object.entries(fields).flatMap(([field, raw]) => {
          if (!field.startsWith("s:")) return [];
          const record = readableStepRecord(raw.toString("utf8"));
          if (record === UNREADABLE_STEP) return [];
          return (record.state === "scheduled" || record.state === "sending") && record.dueAt <= by
            ? [{ stepId: field.slice(2), record }]
            : [];
        });
        if (steps.length === 0) continue;
        const eventId = await this.eventIdOf(key, fields).catch(() => undefined);
        if (eventId !== undefined) found.push(...steps.map((step) => ({ ...step, eventId })));
      }
      // Every batch, also an empty one: the reader keeps its lease and stops between batches.
      yield found;
    }
  }

  /** The id of the purchase a record is of, as pendingSteps reads it. */
  private async eventIdOf(key: string, fields: RecordFields): Promise<string | undefined> {
    const inRecord = purchaseOfRecordFields(fields);
    if (inRecord) return inRecord.id;
    const beside = await this.redis.getBuffer(key.replace(/:fu:e:([^:]*)$/, ":fu:p:$1"));
    if (!beside) return undefined;
    const decoded = decodeStored(beside);
    return decoded.kind === "whole" ? decoded.event.id : decoded.kept.id;
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
