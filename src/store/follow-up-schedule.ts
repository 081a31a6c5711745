import { SCHEDULE_BUCKET_MS, type Scope, StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";
import {
  type BucketSlice,
  readEntries,
  type ScheduledStepRef,
  StepBuckets,
  scheduleEntry,
} from "./step-buckets.js";

export {
  type BucketSlice,
  readEntries,
  type ScheduledStepRef,
  scheduleEntry,
} from "./step-buckets.js";

import { readableStepRecord, type StepRecord, type UNREADABLE_STEP } from "./step-record.js";

/**
 * The compact schedule: steps due beyond the promotion horizon wait here instead of as BullMQ
 * delayed jobs. A step is one list element (`<stepId> <eventId>`) pushed onto the list of the ten
 * minutes it falls due in (a list packs its elements into listpacks, a couple of bytes of
 * overhead each), and a sorted set indexes the buckets that have steps. About 40 bytes per step
 * against 430 for a delayed job. The step record stays the truth: an entry whose record is no
 * longer scheduled, or now falls due in another bucket (re-planned), is passed over.
 */

/**
 * The most purchases a shard notes for re-planning under newer rules (replanLater): rules rolled
 * back to an older generation's exact content would note every purchase, with no worker on newer
 * rules to take them; beyond this, the promoter's re-plan before a step becomes a job remains.
 */
export const REPLAN_LATER_MAX = 100_000;
/** How long the noted purchases are kept after the last one noted, when no worker takes them. */
const REPLAN_LATER_KEEP_MS = 7 * 86_400_000;

/** A noted purchase's failed re-plans: how many, and when the next may be tried (epoch ms). */
export interface LaterTries {
  readonly failures: number;
  readonly nextAt: number;
}

export class FollowUpSchedule {
  private readonly redis: RedisClient & StoreCommands;
  private readonly keys: StoreKeys;
  private readonly buckets: StepBuckets;

  constructor(redis: RedisClient, scope: Scope) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(scope);
    this.buckets = new StepBuckets(this.redis, (bucket) => ({
      list: this.keys.scheduleBucket(bucket),
      index: this.keys.scheduleIndex(),
      lease: this.keys.scheduleLease(bucket),
    }));
  }

  /**
   * Buckets that start no later than `until` (epoch ms), earliest first; with `after` (a bucket
   * number), only those after it.
   */
  async bucketsDueBy(until: number, limit: number, after?: number): Promise<number[]> {
    const members = await this.redis.zrangebyscore(
      this.keys.scheduleIndex(),
      after === undefined ? "-inf" : `(${after * SCHEDULE_BUCKET_MS}`,
      until,
      "LIMIT",
      0,
      limit,
    );
    return members.map(Number);
  }

  /**
   * Leases the next slice of a bucket (at most `maxCount` references): undefined when another
   * promoter holds it or it is gone.
   */
  claim(bucket: number, leaseMs: number, maxCount: number): Promise<BucketSlice | undefined> {
    return this.buckets.claim(bucket, leaseMs, maxCount);
  }

  /** Drops a promoted slice; false when the lease had passed to another promoter. */
  release(slice: BucketSlice): Promise<boolean> {
    return this.buckets.release(slice);
  }

  /**
   * Files references again at the end of the bucket of a slice still leased (before it is
   * released), so that they stay in it: steps whose record this version cannot read, for a worker
   * that can. Nothing is filed when the bucket is gone (expired with its steps' records).
   */
  async keep(slice: Pick<BucketSlice, "bucket">, refs: readonly ScheduledStepRef[]): Promise<void> {
    if (refs.length === 0) return;
    await this.redis.rpushx(
      this.keys.scheduleBucket(slice.bucket),
      ...refs.map((ref) => scheduleEntry(ref.eventId, ref.stepId)),
    );
  }

  /**
   * Files steps in the schedule outside the scheduling script (the upgrade of delayed jobs),
   * each in the bucket of its due time, kept until `keepUntil`. A re-planning walk that began
   * before may have passed those buckets (at start-up it runs beside the upgrade, over a schedule
   * still empty): purchases planned under older rules than its are noted for re-planning, as the
   * scheduling script notes them.
   */
  async add(
    steps: readonly (ScheduledStepRef & { dueAt: number })[],
    keepUntil: number,
  ): Promise<void> {
    if (steps.length === 0) return;
    await this.buckets.file(steps.map((step) => ({ ...step, at: step.dueAt, keepUntil })));
    // Read once they are filed: a walk that begins after this reads their buckets itself.
    const eventIds = [...new Set(steps.map((step) => step.eventId))];
    const [walk, planned] = await Promise.all([
      this.redis.get(this.keys.replanWalk()),
      this.generations(eventIds),
    ]);
    await this.noteLater(eventIds.filter((_, i) => (planned[i] ?? 0) < Number(walk ?? 0)));
  }

  /**
   * Notes purchases for re-planning under the newest rules (`later`), as the scheduling script
   * notes them: at most REPLAN_LATER_MAX, kept a week after the last noted.
   */
  async noteLater(eventIds: readonly string[]): Promise<void> {
    if (eventIds.length === 0) return;
    if ((await this.redis.scard(this.keys.replanLater())) >= REPLAN_LATER_MAX) return;
    await this.redis
      .multi()
      .sadd(this.keys.replanLater(), ...eventIds)
      .pexpire(this.keys.replanLater(), REPLAN_LATER_KEEP_MS)
      .exec();
  }

  /** Every bucket after `after` (a bucket number; -1 for all), earliest first, `limit` at a time. */
  async bucketsAfter(after: number, limit: number): Promise<number[]> {
    const members = await this.redis.zrangebyscore(
      this.keys.scheduleIndex(),
      `(${after * SCHEDULE_BUCKET_MS}`,
      "+inf",
      "LIMIT",
      0,
      limit,
    );
    return members.map(Number);
  }

  /** Reads references of a bucket from `offset` without taking them (re-planning walks). */
  async read(
    bucket: number,
    offset: number,
    maxCount: number,
  ): Promise<{ refs: ScheduledStepRef[]; count: number }> {
    const elements = await this.redis.lrange(
      this.keys.scheduleBucket(bucket),
      offset,
      offset + maxCount - 1,
    );
    return { refs: readEntries(elements), count: elements.length };
  }

  /** Whether a bucket was fully re-planned for `generation` or a newer one. */
  async replannedFor(bucket: number, generation: number): Promise<boolean> {
    const done = await this.redis.get(this.keys.scheduleReplanned(bucket));
    return done !== null && Number(done) >= generation;
  }

  /**
   * Notes that a re-planning walk under `generation` begins (before it reads any bucket); the
   * newest generation a walk began for.
   */
  async beginWalk(generation: number): Promise<number> {
    return this.redis.fuBeginWalk(this.keys.replanWalk(), generation);
  }

  /**
   * Purchases filed in the schedule under older rules than the newest walk that began, with that
   * walk's generation: up to `count` event ids, to re-plan and then `doneLater`.
   */
  async later(count: number): Promise<{ walk: number; eventIds: string[] }> {
    // Read together: an id noted after a newer walk began comes with that walk's generation, so
    // a worker on older rules leaves it (one slot: the shard's).
    const replies = await this.redis
      .multi()
      .get(this.keys.replanWalk())
      .srandmember(this.keys.replanLater(), count)
      .exec();
    if (!replies) throw new Error("reading the purchases to re-plan was aborted");
    const [[walkError, walk], [idsError, eventIds]] = replies as [
      [Error | null, string | null],
      [Error | null, string[]],
    ];
    if (walkError || idsError) throw walkError ?? idsError;
    return { walk: Number(walk ?? 0), eventIds };
  }

  /**
   * Takes re-planned purchases off the list `later` reads (and their failed tries). Whether any
   * was still on it (another worker may have taken it off first).
   */
  async doneLater(eventIds: readonly string[]): Promise<boolean> {
    if (eventIds.length === 0) return false;
    const replies = await this.redis
      .multi()
      .srem(this.keys.replanLater(), ...eventIds)
      .hdel(this.keys.replanLaterTries(), ...eventIds)
      .exec();
    const [removed] = replies ?? [];
    if (!removed || removed[0])
      throw removed?.[0] ?? new Error("taking noted purchases off was aborted");
    return Number(removed[1]) > 0;
  }

  /** The failed tries of noted purchases (tryLaterAgain), by event id; none for one never failed. */
  async laterTries(eventIds: readonly string[]): Promise<Map<string, LaterTries>> {
    if (eventIds.length === 0) return new Map();
    const values = await this.redis.hmget(this.keys.replanLaterTries(), ...eventIds);
    const tries = new Map<string, LaterTries>();
    eventIds.forEach((eventId, i) => {
      const [failures, nextAt] = (values[i] ?? "").split(" ").map(Number);
      if (failures && Number.isFinite(failures) && nextAt !== undefined && Number.isFinite(nextAt))
        tries.set(eventId, { failures, nextAt });
    });
    return tries;
  }

  /** Records a noted purchase's failed re-plan: `failures` so far, the next not before `nextAt`. */
  async tryLaterAgain(eventId: string, { failures, nextAt }: LaterTries): Promise<void> {
    await this.redis
      .multi()
      .hset(this.keys.replanLaterTries(), eventId, `${failures} ${nextAt}`)
      .pexpire(this.keys.replanLaterTries(), REPLAN_LATER_KEEP_MS)
      .exec();
  }

  /** Remembers (for two days, long enough for any re-planning run) that a bucket is done. */
  async markReplanned(bucket: number, generation: number): Promise<void> {
    await this.redis.set(this.keys.scheduleReplanned(bucket), generation, "PX", 2 * 86_400_000);
  }

  /**
   * The step records of the references: undefined where the record is gone, UNREADABLE_STEP where
   * this version cannot read it (damaged, or in a newer version's form; the decoder's error, which
   * quotes the record, is dropped). Redis being away still throws.
   */
  async records(
    refs: readonly ScheduledStepRef[],
  ): Promise<(StepRecord | undefined | typeof UNREADABLE_STEP)[]> {
    if (refs.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const ref of refs) pipeline.hget(this.keys.eventRecord(ref.eventId), `s:${ref.stepId}`);
    const replies = (await pipeline.exec()) ?? [];
    return replies.map(([error, raw]) => {
      if (error) throw error;
      return typeof raw === "string" ? readableStepRecord(raw) : undefined;
    });
  }

  /** The rules generation each event was planned with (undefined: none recorded, or no record). */
  async generations(eventIds: readonly string[]): Promise<(number | undefined)[]> {
    if (eventIds.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of eventIds) pipeline.hget(this.keys.eventRecord(id), "g");
    const replies = (await pipeline.exec()) ?? [];
    return replies.map(([error, raw]) => {
      if (error) throw error;
      return typeof raw === "string" ? Number(raw) : undefined;
    });
  }

  /** How many buckets wait, and the start of the earliest (for health and metrics). */
  async backlog(): Promise<{ buckets: number; earliest?: number }> {
    const [count, first] = await Promise.all([
      this.redis.zcard(this.keys.scheduleIndex()),
      this.redis.zrange(this.keys.scheduleIndex(), "0", "0", "WITHSCORES"),
    ]);
    return first[1] === undefined
      ? { buckets: count }
      : { buckets: count, earliest: Number(first[1]) };
  }
}
