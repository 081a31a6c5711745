import { randomUUID } from "node:crypto";
import { bucketOf, SCHEDULE_BUCKET_MS } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import type { StoreCommands } from "./script-registry.js";

/** A step reference as the schedule keeps it. */
export interface ScheduledStepRef {
  readonly eventId: string;
  readonly stepId: string;
}

/** One slice of a bucket, leased to one promoter. */
export interface BucketSlice {
  readonly bucket: number;
  readonly token: string;
  readonly refs: readonly ScheduledStepRef[];
  /** How many list elements the slice covers (unreadable ones included). */
  readonly count: number;
}

/**
 * The list element of a step: its step id (`<rule>.<step>`, slugs: no space), a space and the
 * event id (any text). A step id that is not one (none is) makes it JSON, as key layout 4 and
 * before wrote every element (`["<eventId>","<stepId>"]`).
 */
export function scheduleEntry(eventId: string, stepId: string): string {
  return /^[^\s[][^\s]*$/.test(stepId) ? `${stepId} ${eventId}` : JSON.stringify([eventId, stepId]);
}

/** The step references among list elements (an element that is not one is passed over). */
export function readEntries(elements: readonly string[]): ScheduledStepRef[] {
  const refs: ScheduledStepRef[] = [];
  for (const element of elements) {
    const space = element.indexOf(" ");
    if (!element.startsWith("[") && space > 0) {
      refs.push({ stepId: element.slice(0, space), eventId: element.slice(space + 1) });
      continue;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(element);
    } catch {
      continue;
    }
    if (Array.isArray(parsed) && typeof parsed[0] === "string" && typeof parsed[1] === "string")
      refs.push({ eventId: parsed[0], stepId: parsed[1] });
  }
  return refs;
}

/** The keys of a bucket of step references: its list, the index of buckets, its lease. */
export interface BucketKeys {
  readonly list: string;
  readonly index: string;
  readonly lease: string;
}

/** A step reference to file at `at` (its bucket's time), its bucket kept until `keepUntil`. */
export interface StepToFile extends ScheduledStepRef {
  readonly at: number;
  readonly keepUntil: number;
}

/**
 * Step references in lists of ten minutes, indexed by a sorted set and handled a slice at a time
 * under a lease (claim-bucket.lua, release-bucket.lua): the compact schedule's, and the job
 * watch's (job-watch.ts), each with its own keys.
 */
export class StepBuckets {
  constructor(
    private readonly redis: RedisClient & StoreCommands,
    private readonly keysOf: (bucket: number) => BucketKeys,
  ) {}

  /** Files steps, each in the bucket of its `at`. */
  async file(steps: readonly StepToFile[]): Promise<void> {
    if (steps.length === 0) return;
    const multi = this.redis.multi();
    for (const step of steps) {
      const bucket = bucketOf(step.at);
      const { list, index } = this.keysOf(bucket);
      multi.rpush(list, scheduleEntry(step.eventId, step.stepId));
      // GT extends an expiry, NX gives a new bucket its first: together, the later of the two.
      multi.pexpireat(list, step.keepUntil, "GT");
      multi.pexpireat(list, step.keepUntil, "NX");
      multi.zadd(index, bucket * SCHEDULE_BUCKET_MS, String(bucket));
    }
    const replies = await multi.exec();
    const failed = replies?.find(([error]) => error);
    if (!replies || failed) throw failed?.[0] ?? new Error("filing step references was aborted");
  }

  /** Leases the next slice of a bucket (at most `maxCount`): undefined when held or gone. */
  async claim(bucket: number, leaseMs: number, maxCount: number): Promise<BucketSlice | undefined> {
    const token = randomUUID();
    const { list, index, lease } = this.keysOf(bucket);
    const [status, elements] = await this.redis.fuClaimBucket(
      list,
      index,
      lease,
      bucket,
      token,
      leaseMs,
      maxCount,
    );
    if (status !== 1 || !elements) return undefined;
    return { bucket, token, refs: readEntries(elements), count: elements.length };
  }

  /** Drops a slice handled; false when the lease had passed to another. */
  async release(slice: BucketSlice): Promise<boolean> {
    const { list, index, lease } = this.keysOf(slice.bucket);
    const released = await this.redis.fuReleaseBucket(
      list,
      index,
      lease,
      slice.bucket,
      slice.token,
      slice.count,
    );
    return released === 1;
  }
}
