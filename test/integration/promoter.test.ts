import { Queue } from "bullmq";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { createLogger } from "../../src/logger.js";
import {
  FOLLOW_UPS_QUEUE,
  type FollowUpJobData,
  followUpJobId,
  queuePrefix,
} from "../../src/queue/names.js";
import { createPromoter } from "../../src/queue/promoter.js";
import { FollowUpSchedule } from "../../src/store/follow-up-schedule.js";
import { FollowUpStore } from "../../src/store/follow-up-store.js";
import { bucketOf, StoreKeys } from "../../src/store/keys.js";
import { createRedisClient, type RedisClient } from "../../src/store/redis-client.js";
import { purchase } from "../support/fixtures.js";
import { deleteKeysWithPrefix, uniquePrefix } from "../support/redis-namespace.js";

const DAY = 86_400_000;
const MINUTE = 60_000;
/** The hour now (a whole number of ten-minute buckets): the schedule's keys expire in real time. */
const NOW = Math.floor(Date.now() / 3_600_000) * 3_600_000;
const HORIZON = 5 * MINUTE;
const logger = createLogger({ level: "silent", pretty: false });

let redis: RedisClient;
let prefix: string;
let store: FollowUpStore;
let schedule: FollowUpSchedule;
let followUps: Queue<FollowUpJobData>;

beforeAll(() => {
  redis = createRedisClient(inject("redisUrl"), inject("redisCluster"), {
    maxRetriesPerRequest: 1,
  });
});
afterAll(async () => {
  await redis.quit();
});
beforeEach(() => {
  prefix = uniquePrefix("promoter");
  store = new FollowUpStore(redis, prefix);
  schedule = new FollowUpSchedule(redis, prefix);
  followUps = new Queue<FollowUpJobData>(FOLLOW_UPS_QUEUE, {
    connection: redis,
    prefix: queuePrefix(prefix, FOLLOW_UPS_QUEUE, inject("redisCluster")),
  });
});
afterEach(async () => {
  await followUps.close();
  await deleteKeysWithPrefix(redis, prefix);
});

/** Schedules one check-in per event, due at the given times, as intake files far-future steps. */
async function scheduleCheckIns(dueTimes: readonly number[], now: number): Promise<string[]> {
  const ids: string[] = [];
  for (const [i, dueAt] of dueTimes.entries()) {
    const event = purchase({ id: `evt-${i}` });
    await store.schedule(
      event,
      dueAt + 90 * DAY,
      [
        {
          stepId: "big-ticket.check-in",
          dueAt,
          channel: "sms",
          kind: "check-in",
          ruleId: "big-ticket",
          inSchedule: true,
        },
      ],
      now,
      1,
    );
    ids.push(event.id);
  }
  return ids;
}

const promoterAt = (now: number, leaseMs?: number) =>
  createPromoter({
    schedule,
    followUps,
    horizonMs: HORIZON,
    now: () => now,
    logger,
    ...(leaseMs !== undefined && { leaseMs }),
  });

describe("the promoter", () => {
  it("turns steps into delayed jobs only once they fall due within the horizon", async () => {
    const now = NOW;
    const due = 90 * DAY;
    await scheduleCheckIns([now + due, now + due + 3 * MINUTE, now + due + 20 * MINUTE], now);
    expect(await followUps.getJobCounts("delayed", "wait")).toEqual({ delayed: 0, wait: 0 });

    // A day before: nothing is due within five minutes.
    expect(await promoterAt(now + due - DAY).promoteDue()).toBe(0);
    // Two minutes before the first: the first two are within the horizon, the third is not.
    const at = now + due - 2 * MINUTE;
    expect(await promoterAt(at).promoteDue()).toBe(2);
    const first = await followUps.getJob(followUpJobId("evt-0", "big-ticket.check-in"));
    expect(first?.name).toBe("sms");
    expect(first?.data).toEqual({ e: "evt-0", s: "big-ticket.check-in" });
    expect(first?.delay).toBe(2 * MINUTE);
    expect(await first?.getState()).toBe("delayed");
    const second = await followUps.getJob(followUpJobId("evt-1", "big-ticket.check-in"));
    expect(second?.delay).toBe(5 * MINUTE);
    expect(await followUps.getJob(followUpJobId("evt-2", "big-ticket.check-in"))).toBeUndefined();
    // The promoted buckets are gone; the later one waits.
    const keys = new StoreKeys(prefix);
    expect(await redis.exists(keys.scheduleBucket(bucketOf(now + due)))).toBe(0);
    expect(await schedule.bucketsDueBy(Number.MAX_SAFE_INTEGER, 10)).toEqual([
      bucketOf(now + due + 20 * MINUTE),
    ]);
    // A step that is late (workers were down) becomes a job due at once.
    expect(await promoterAt(now + due + DAY).promoteDue()).toBe(1);
    expect((await followUps.getJob(followUpJobId("evt-2", "big-ticket.check-in")))?.delay).toBe(0);
  });

  it("never adds a step twice when four promoters run at once", async () => {
    const now = NOW;
    // 600 steps spread over five minutes: several buckets, several slices each.
    const dueTimes = Array.from({ length: 600 }, (_, i) => now + DAY + (i % 5) * MINUTE + i);
    await scheduleCheckIns(dueTimes, now);
    const at = now + DAY;
    const promoted = await Promise.all(
      Array.from({ length: 4 }, () => promoterAt(at).promoteDue()),
    );
    // Each job was added by exactly one promoter (addBulk would not fail on a second add).
    expect(promoted.reduce((sum, n) => sum + n, 0)).toBe(600);
    // The first is due at once (waiting), the rest within five minutes (delayed).
    expect(await followUps.getJobCounts("delayed", "wait")).toEqual({ delayed: 599, wait: 1 });
    expect(await schedule.bucketsDueBy(Number.MAX_SAFE_INTEGER, 10)).toEqual([]);
  });

  it("passes over steps that were handled or re-planned to another minute", async () => {
    const now = NOW;
    const due = now + 30 * DAY;
    await scheduleCheckIns([due, due, due], now);
    await store.claim("evt-0", "big-ticket.check-in", now, 60_000, { dueAt: due });
    await store.transition("evt-0", "big-ticket.check-in", ["sending"], { state: "sent" }, now);
    // A re-planned step keeps its old schedule line; its record says when it is due now.
    await redis.hset(
      new StoreKeys(prefix).eventRecord("evt-1"),
      "s:big-ticket.check-in",
      JSON.stringify({ s: "scheduled", d: due + DAY, c: "sms", k: "check-in", g: 2 }),
    );
    expect(await promoterAt(due).promoteDue()).toBe(1);
    expect(await followUps.getJob(followUpJobId("evt-2", "big-ticket.check-in"))).toBeDefined();
    expect(await followUps.getJob(followUpJobId("evt-0", "big-ticket.check-in"))).toBeUndefined();
    expect(await followUps.getJob(followUpJobId("evt-1", "big-ticket.check-in"))).toBeUndefined();
  });

  it("re-plans as held only the steps still scheduled in the bucket it holds, not one already a job", async () => {
    const now = NOW;
    const due = now + 20 * DAY;
    await scheduleCheckIns([due], now);
    // A re-plan moved the check-in ten minutes later, into the next bucket: its old line stays.
    const moved = due + 10 * MINUTE;
    const keys = new StoreKeys(prefix);
    await redis.hset(
      keys.eventRecord("evt-0"),
      "s:big-ticket.check-in",
      JSON.stringify({ s: "scheduled", d: moved, c: "sms", k: "check-in" }),
    );
    await redis.rpush(keys.scheduleBucket(bucketOf(moved)), "big-ticket.check-in evt-0");
    await redis.zadd(keys.scheduleIndex(), bucketOf(moved) * 600_000, String(bucketOf(moved)));
    // Another promoter holds the earlier bucket a while, so the later one is promoted first: the
    // check-in is a job now.
    const holding = await schedule.claim(bucketOf(due), 300, 500);
    expect(holding).toBeDefined();
    const at = moved - 2 * MINUTE;
    expect(await promoterAt(at).promoteDue()).toBe(1);
    expect(await followUps.getJob(followUpJobId("evt-0", "big-ticket.check-in"))).toBeDefined();
    // Newer rules are loaded before the earlier bucket, with the stale line, is taken over.
    await new Promise((resolve) => setTimeout(resolve, 350));
    const held: [string, string[]][] = [];
    const promoter = createPromoter({
      schedule,
      followUps,
      horizonMs: HORIZON,
      now: () => at,
      logger,
      replan: {
        generation: () => 2,
        run: async (eventId, promoting) => held.push([eventId, [...promoting]]),
      },
    });
    expect(await promoter.promoteDue()).toBe(0);
    // Its re-plan may not move the check-in as if no job existed: the job would send it at the
    // old time, whatever its record then says.
    expect(held).toEqual([["evt-0", []]]);
  });

  it("loses nothing when a promoter dies holding a bucket, and adds no second job", async () => {
    const now = NOW;
    const due = now + 7 * DAY;
    await scheduleCheckIns([due, due + 1, due + 2], now);
    // A promoter takes the bucket and adds the first job, then dies before it releases it.
    const dying = await schedule.claim(bucketOf(due), 300, 65_536);
    expect(dying?.refs).toHaveLength(3);
    await followUps.add(
      "sms",
      { e: "evt-0", s: "big-ticket.check-in" },
      { jobId: followUpJobId("evt-0", "big-ticket.check-in"), delay: 0 },
    );
    // While its lease holds, nobody else promotes the bucket.
    expect(await promoterAt(due).promoteDue()).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect(await promoterAt(due).promoteDue()).toBe(3);
    const counts = await followUps.getJobCounts("delayed", "wait");
    expect((counts.delayed ?? 0) + (counts.wait ?? 0)).toBe(3);
    // The dead promoter's late release changes nothing.
    expect(dying && (await schedule.release(dying))).toBe(false);
    expect(await schedule.bucketsDueBy(Number.MAX_SAFE_INTEGER, 10)).toEqual([]);
  });

  /** A step record this version cannot read (damaged, or in a newer version's form). */
  const UNREADABLE_RECORD = "?not a step record";

  /** A promoter whose warnings are kept, at a time the test moves. */
  function watchedPromoter(
    at: { now: number },
    replan?: Parameters<typeof createPromoter>[0]["replan"],
  ) {
    const warnings: Record<string, unknown>[] = [];
    const promoter = createPromoter({
      schedule,
      followUps,
      horizonMs: HORIZON,
      now: () => at.now,
      logger: createLogger({
        level: "warn",
        pretty: false,
        destination: { write: (line: string) => void warnings.push(JSON.parse(line)) },
      }),
      ...(replan && { replan }),
    });
    return { promoter, warnings };
  }

  it("promotes the rest of a bucket that holds a step record it cannot read, and keeps that step's line for a worker that can", async () => {
    const now = NOW;
    const due = now + 30 * DAY;
    await scheduleCheckIns([due, due, due + 10 * MINUTE], now);
    const keys = new StoreKeys(prefix);
    const field = "s:big-ticket.check-in";
    const readable = await redis.hget(keys.eventRecord("evt-1"), field);
    await redis.hset(keys.eventRecord("evt-1"), field, UNREADABLE_RECORD);
    const at = { now: due + 8 * MINUTE };
    const { promoter, warnings } = watchedPromoter(at);
    // The readable step beside it, and the next bucket's, become jobs.
    expect(await promoter.promoteDue()).toBe(2);
    expect(await followUps.getJob(followUpJobId("evt-0", "big-ticket.check-in"))).toBeDefined();
    expect(await followUps.getJob(followUpJobId("evt-2", "big-ticket.check-in"))).toBeDefined();
    expect(await followUps.getJob(followUpJobId("evt-1", "big-ticket.check-in"))).toBeUndefined();
    // The unreadable one stays in its bucket, logged by its ids only.
    expect(await redis.lrange(keys.scheduleBucket(bucketOf(due)), 0, -1)).toEqual([
      "big-ticket.check-in evt-1",
    ]);
    expect(await schedule.bucketsDueBy(Number.MAX_SAFE_INTEGER, 10)).toEqual([bucketOf(due)]);
    expect(warnings).toEqual([
      expect.objectContaining({
        eventId: "evt-1",
        stepId: "big-ticket.check-in",
        bucket: bucketOf(due),
        msg: "a scheduled follow-up's step record cannot be read; left in the schedule for a worker that can",
      }),
    ]);
    expect(JSON.stringify(warnings)).not.toContain("not a step record");
    // The next rounds leave it alone a while, then look at it again.
    expect(await promoter.promoteDue()).toBe(0);
    expect(warnings).toHaveLength(1);
    at.now += 10 * MINUTE;
    expect(await promoter.promoteDue()).toBe(0);
    expect(warnings).toHaveLength(2);
    expect(await redis.lrange(keys.scheduleBucket(bucketOf(due)), 0, -1)).toEqual([
      "big-ticket.check-in evt-1",
    ]);
    // A worker that can read it (a newer version's) promotes it as any other.
    await redis.hset(keys.eventRecord("evt-1"), field, readable ?? "");
    expect(await promoterAt(at.now).promoteDue()).toBe(1);
    expect(await followUps.getJob(followUpJobId("evt-1", "big-ticket.check-in"))).toBeDefined();
    expect(await schedule.bucketsDueBy(Number.MAX_SAFE_INTEGER, 10)).toEqual([]);
  });

  it("is not held up by more buckets of unreadable step records than it reads at once", async () => {
    const now = NOW;
    const due = now + 30 * DAY;
    // 33 buckets in a row, each with a step this version cannot read, then one it can.
    const ids = await scheduleCheckIns(
      Array.from({ length: 34 }, (_, i) => due + i * 10 * MINUTE),
      now,
    );
    const keys = new StoreKeys(prefix);
    for (const id of ids.slice(0, 33))
      await redis.hset(keys.eventRecord(id), "s:big-ticket.check-in", UNREADABLE_RECORD);
    const at = { now: due + 33 * 10 * MINUTE };
    const { promoter } = watchedPromoter(at);
    expect(await promoter.promoteDue()).toBe(1);
    expect(await followUps.getJob(followUpJobId("evt-33", "big-ticket.check-in"))).toBeDefined();
    expect(await schedule.bucketsDueBy(Number.MAX_SAFE_INTEGER, 100)).toHaveLength(33);
  });

  it("re-plans and promotes the rest of a bucket that holds a step record it cannot read", async () => {
    const now = NOW;
    const due = now + 30 * DAY;
    await scheduleCheckIns([due, due], now);
    const keys = new StoreKeys(prefix);
    await redis.hset(keys.eventRecord("evt-1"), "s:big-ticket.check-in", UNREADABLE_RECORD);
    const held: [string, string[]][] = [];
    const { promoter } = watchedPromoter(
      { now: due },
      {
        generation: () => 2,
        run: async (eventId, promoting) => held.push([eventId, [...promoting]]),
      },
    );
    expect(await promoter.promoteDue()).toBe(1);
    // A purchase whose only step here cannot be read is not re-planned for it (nothing of it
    // becomes a job): its step stays in the bucket.
    expect(held).toEqual([["evt-0", ["big-ticket.check-in"]]]);
    expect(await followUps.getJob(followUpJobId("evt-0", "big-ticket.check-in"))).toBeDefined();
    expect(await redis.lrange(keys.scheduleBucket(bucketOf(due)), 0, -1)).toEqual([
      "big-ticket.check-in evt-1",
    ]);
  });
});
