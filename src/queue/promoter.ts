import type { JobsOptions, Queue } from "bullmq";
import { errorName, type Logger } from "../logger.js";
import type {
  BucketSlice,
  FollowUpSchedule,
  ScheduledStepRef,
} from "../store/follow-up-schedule.js";
import { type JobWatch, LOOK_AFTER_DUE_MS } from "../store/job-watch.js";
import { bucketOf } from "../store/keys.js";
import { isRedisUnavailable } from "../store/redis-client.js";
import { type StepRecord, UNREADABLE_STEP } from "../store/step-record.js";
import { type FollowUpJobData, followUpJobId } from "./names.js";
import { abandoned } from "./periodic.js";

/**
 * The promoter moves steps from the compact schedule into the `follow-ups` queue shortly before
 * they fall due, as delayed jobs with deterministic ids, so BullMQ runs the last minutes as it
 * always did (delays, retries, rate limits, stalled-job recovery). It runs in every worker
 * process with no leader: a bucket is leased to one promoter at a time, and a promoter that dies
 * holding one only delays it by the lease; the next one adds the same job ids again, which BullMQ
 * ignores for jobs that exist, and passes over steps that have left `scheduled`. A step whose
 * record this version cannot read (damaged, or in a newer version's form) stays in its bucket for
 * a worker that can, logged by its ids; the rest of the bucket is promoted as usual.
 */

/** How long a promoter may hold a bucket before another may take it over. */
export const PROMOTION_LEASE_MS = 30_000;
/** Step references read per slice. */
const SLICE_SIZE = 500;
/** Buckets looked at per round. */
const BUCKETS_PER_ROUND = 32;
/** How long a promoter leaves a bucket holding only steps it cannot read before it looks again. */
export const UNREADABLE_LOOK_AGAIN_MS = 10 * 60_000;

export interface PromoterDeps {
  readonly schedule: FollowUpSchedule;
  readonly followUps: Queue<FollowUpJobData>;
  /** Steps due within this many ms become jobs. */
  readonly horizonMs: number;
  readonly now: () => number;
  readonly logger: Logger;
  readonly onPromoted?: (count: number) => void;
  /** A purchase whose re-plan failed (not for Redis being away): its steps go as planned. */
  readonly onReplanFailed?: () => void;
  /**
   * Where the steps it makes jobs are filed first, so that one whose job is lost later is found
   * (queue/lost-jobs.ts).
   */
  readonly jobWatch?: Pick<JobWatch, "watch">;
  /** How long a bucket stays leased to a promoter (default PROMOTION_LEASE_MS). */
  readonly leaseMs?: number;
  /**
   * Re-plans a purchase planned under older rules than this worker's before its step becomes a
   * job, so a purchase an older worker scheduled during a rolling deploy converges on the newest
   * rules too. `promoting` names its steps in the slice being promoted: though due within the
   * horizon, they are re-planned (they are not jobs yet).
   */
  readonly replan?: {
    readonly generation: () => number;
    readonly run: (eventId: string, promoting: ReadonlySet<string>) => Promise<unknown>;
  };
}

/** A job the promoter adds for a scheduled step. */
export interface PromotedJob {
  readonly name: string;
  readonly data: FollowUpJobData;
  readonly opts: JobsOptions & { jobId: string };
}

/**
 * The jobs for a slice: one per step that is still scheduled in this bucket's span (a step
 * re-planned to another span waits for that bucket; one already handled needs nothing), each
 * delayed until its due time.
 */
export function jobsForSlice(
  slice: Pick<BucketSlice, "bucket" | "refs">,
  records: readonly (StepRecord | undefined)[],
  now: number,
): PromotedJob[] {
  const jobs = new Map<string, PromotedJob>();
  slice.refs.forEach((ref, i) => {
    const record = records[i];
    if (record?.state !== "scheduled" || bucketOf(record.dueAt) !== slice.bucket) return;
    const jobId = followUpJobId(ref.eventId, ref.stepId);
    jobs.set(jobId, {
      name: record.channel ?? "follow-up",
      data: { e: ref.eventId, s: ref.stepId },
      opts: { jobId, delay: Math.max(0, record.dueAt - now) },
    });
  });
  return [...jobs.values()];
}

export interface Promoter {
  /** Promotes every step due within the horizon now; returns how many jobs it added. */
  promoteDue(): Promise<number>;
  /** Runs `promoteDue` every `intervalMs` until stopped. */
  start(intervalMs: number): void;
  /** Stops the loop and waits for a round in progress. */
  stop(): Promise<void>;
}

export function createPromoter(deps: PromoterDeps): Promoter {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  let stopped = false;
  /**
   * Buckets this promoter found holding only steps whose record it cannot read, with when it looks
   * at them again: left to a worker that can read them, they hold up no other bucket meanwhile.
   */
  const passedOver = new Map<number, number>();

  async function replanStale(slice: BucketSlice): Promise<void> {
    if (!deps.replan) return;
    const generation = deps.replan.generation();
    const ids = [...new Set(slice.refs.map((ref) => ref.eventId))];
    const planned = await deps.schedule.generations(ids);
    const stale = new Set(ids.filter((_, i) => (planned[i] ?? -1) < generation));
    if (stale.size === 0) return;
    // Held: the steps whose record is still scheduled in this bucket. A line left behind by an
    // earlier re-plan names a step due elsewhere, maybe a job already (its bucket promoted first
    // while this one was leased): re-planned as held, it would move under its job.
    const refs = slice.refs.filter((ref) => stale.has(ref.eventId));
    const records = await deps.schedule.records(refs);
    const stepsOf = new Map<string, Set<string>>();
    refs.forEach((ref, i) => {
      const record = records[i];
      // A step it cannot read is not promoted here: it neither holds one nor asks for a re-plan.
      if (record === UNREADABLE_STEP) return;
      const steps = stepsOf.get(ref.eventId) ?? new Set<string>();
      if (record?.state === "scheduled" && bucketOf(record.dueAt) === slice.bucket)
        steps.add(ref.stepId);
      stepsOf.set(ref.eventId, steps);
    });
    for (const [id, steps] of stepsOf) {
      try {
        await deps.replan.run(id, steps);
      } catch (error) {
        // Redis away: the round fails, and the next one tries again. Any other failure is this
        // purchase's own and may recur every round (a stored purchase this version cannot decode,
        // a planning bug): its steps become jobs as they were planned, under the older rules,
        // rather than hold up every later step of the shard.
        if (isRedisUnavailable(error)) throw error;
        deps.onReplanFailed?.();
        deps.logger.warn(
          // The error's name only: a decoder's message may quote the stored purchase.
          { error: errorName(error), eventId: id, generation },
          "re-planning a purchase under newer rules before its steps become jobs failed; they are promoted as planned",
        );
      }
    }
  }

  /**
   * Steps of a slice whose record this version cannot read: logged by ids (the decoder's error
   * may quote the record) the first time this look at the bucket meets them, and filed again at
   * the end of the bucket, to stay there for a worker that can read them (a newer version's)
   * after the slice is dropped.
   */
  async function keepUnreadable(
    slice: BucketSlice,
    unreadable: readonly ScheduledStepRef[],
    kept: Set<string>,
  ): Promise<void> {
    const once = new Map(unreadable.map((ref) => [`${ref.stepId} ${ref.eventId}`, ref]));
    for (const [key, ref] of once) {
      if (kept.has(key)) continue;
      kept.add(key);
      deps.logger.warn(
        { eventId: ref.eventId, stepId: ref.stepId, bucket: slice.bucket },
        "a scheduled follow-up's step record cannot be read; left in the schedule for a worker that can",
      );
    }
    await deps.schedule.keep(slice, [...once.values()]);
  }

  /** Promotes a bucket slice by slice; returns the jobs added. */
  async function promoteBucket(bucket: number): Promise<number> {
    let promoted = 0;
    /** The steps it cannot read that this look filed again, by `<stepId> <eventId>`. */
    const kept = new Set<string>();
    for (;;) {
      const slice = await deps.schedule.claim(
        bucket,
        deps.leaseMs ?? PROMOTION_LEASE_MS,
        SLICE_SIZE,
      );
      if (!slice) return promoted;
      if (
        slice.refs.length > 0 &&
        slice.refs.every((ref) => kept.has(`${ref.stepId} ${ref.eventId}`))
      ) {
        // Only steps it cannot read are left, filed again by this look: they stay, and the
        // bucket is looked at again later.
        await deps.schedule.release({ ...slice, count: 0 });
        passedOver.set(bucket, deps.now() + UNREADABLE_LOOK_AGAIN_MS);
        return promoted;
      }
      await replanStale(slice);
      const found = await deps.schedule.records(slice.refs);
      const unreadable = slice.refs.filter((_, i) => found[i] === UNREADABLE_STEP);
      const records = found.map((record) => (record === UNREADABLE_STEP ? undefined : record));
      const jobs = jobsForSlice(slice, records, deps.now());
      if (jobs.length > 0) {
        // Watched before they are jobs: a crash in between leaves them watched, not lost.
        await deps.jobWatch?.watch(
          jobs.map(({ data, opts }) => ({
            eventId: data.e,
            stepId: data.s,
            lookAt: deps.now() + (opts.delay ?? 0) + LOOK_AFTER_DUE_MS,
          })),
        );
        await deps.followUps.addBulk(jobs);
      }
      if (unreadable.length > 0) await keepUnreadable(slice, unreadable, kept);
      promoted += jobs.length;
      if (!(await deps.schedule.release(slice)) || slice.count === 0) return promoted;
    }
  }

  async function promoteDue(): Promise<number> {
    let promoted = 0;
    const now = deps.now();
    for (const [bucket, lookAgainAt] of passedOver)
      if (lookAgainAt <= now) passedOver.delete(bucket);
    // Each bucket due is taken once a round, in order: one leased elsewhere is that promoter's
    // until the next round, and one passed over holds up none after it.
    for (let after: number | undefined; ; ) {
      const buckets = await deps.schedule.bucketsDueBy(
        deps.now() + deps.horizonMs,
        BUCKETS_PER_ROUND,
        after,
      );
      for (const bucket of buckets) {
        if (stopped) return promoted;
        if (!passedOver.has(bucket)) promoted += await promoteBucket(bucket);
      }
      if (buckets.length < BUCKETS_PER_ROUND) break;
      after = buckets[buckets.length - 1];
    }
    if (promoted > 0) {
      deps.onPromoted?.(promoted);
      deps.logger.debug({ promoted }, "scheduled follow-ups promoted to the queue");
    }
    return promoted;
  }

  function tick(intervalMs: number): void {
    running = promoteDue()
      .catch((error: unknown) => {
        // A round cut off by a shutdown with Redis away was abandoned, not failed.
        if (!abandoned(stopped, error)) deps.logger.warn({ err: error }, "promotion round failed");
      })
      .finally(() => {
        if (!stopped) timer = setTimeout(() => tick(intervalMs), intervalMs);
      });
  }

  return {
    promoteDue,
    start(intervalMs) {
      stopped = false;
      tick(intervalMs);
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
