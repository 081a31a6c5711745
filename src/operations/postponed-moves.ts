import type { Queue } from "bullmq";
import { ruleIdOf } from "../domain/step-ref.js";
import type { FollowUpJobData } from "../queue/names.js";
import type { CountedPending } from "../reports/pending-schedule.js";
import { quarterHourOf } from "../store/delivery-ledger.js";
import type { FollowUpStore } from "../store/follow-up-store.js";
import { type RedisClient, unlessRedisAway } from "../store/redis-client.js";

/** Job references and step records read at once. */
const BATCH = 500;

/** What a shard offers the schedule's correction: its follow-ups queue and its step records. */
export interface PostponedSource {
  readonly queue: Pick<Queue<FollowUpJobData>, "getRanges" | "toKey">;
  /** The connection the queue's job hashes are read with. */
  readonly redis: Pick<RedisClient, "hget">;
  readonly store: Pick<FollowUpStore, "stepRecords" | "generationOf">;
}

/**
 * Where the pending counts of postponed follow-ups belong. The ledger counts every pending
 * follow-up under its planned due time (each state script keeps that count exact); a follow-up
 * whose job was put back to wait past it (its record's `postponed` note: a send window, a
 * frequency cap, a retry, …) goes out later, maybe on another day. For each such step among the
 * shards' delayed and waiting jobs (due within the promotion horizon, or postponed): one off its
 * planned quarter hour, one on the quarter hour its note names, so that the schedule, read with
 * these added, shows it on the day it will go (a job that fell due and waits for a worker, on the
 * day it was postponed to). Read-only: nothing the state scripts count changes.
 * Each step counts once however many of its jobs wait (a resend's, an older version's id); a job,
 * a record or a shard's job lists that cannot be read are passed over (the schedule and the
 * owners' reports are views: they never fail for one; its follow-ups stay on their planned day),
 * but not Redis away or leaving a read unanswered (unlessRedisAway): that fails the whole read at
 * once, where passing over each read in turn waited out a command timeout per shard and per job.
 * Steps planned before rules were counted (no generation) were counted by channel alone and stay
 * where they are.
 */
export async function postponedMoves(
  shards: readonly PostponedSource[],
): Promise<CountedPending[]> {
  const moves: CountedPending[] = [];
  for (const { queue, redis, store } of shards) {
    // Every id at once: paging by index over a set that changes meanwhile skips and repeats.
    // Waiting jobs too: a postponed job that fell due waits there for a worker (for as long as
    // its queue is paused, by an operator or a reshard).
    const ids = await queue
      .getRanges(["delayed", "waiting", "prioritized"], 0, -1, true)
      .catch(unlessRedisAway(() => [] as string[]));
    const steps = new Map<string, FollowUpJobData>();
    for (let i = 0; i < ids.length; i += BATCH) {
      const data = await Promise.all(
        ids
          .slice(i, i + BATCH)
          .map((id) => redis.hget(queue.toKey(id), "data").catch(unlessRedisAway(() => null))),
      );
      for (const raw of data) {
        const step = stepOfJob(raw);
        if (step) steps.set(`${step.e}\u0000${step.s}`, step);
      }
    }
    const unique = [...steps.values()];
    for (let i = 0; i < unique.length; i += BATCH) {
      const found = await Promise.all(
        unique
          .slice(i, i + BATCH)
          .map((step) => movesOf(store, step).catch(unlessRedisAway(() => []))),
      );
      moves.push(...found.flat());
    }
  }
  return moves;
}

/** The two moves of one step, when its record notes that its job waits. */
async function movesOf(
  store: PostponedSource["store"],
  { e: eventId, s: stepId }: FollowUpJobData,
): Promise<CountedPending[]> {
  const record = (await store.stepRecords(eventId, [stepId])).get(stepId);
  if (!record?.postponed || !record.channel) return [];
  // Counted by channel alone, on its UTC day: no rule to move it under.
  if ((await store.generationOf(eventId)) === undefined) return [];
  const labels = { channel: record.channel, ruleId: ruleIdOf(stepId) };
  return [
    { ...labels, at: quarterHourOf(record.dueAt), count: -1 },
    { ...labels, at: quarterHourOf(record.postponed.until), count: 1 },
  ];
}

/** A follow-up job's step, from its stored data; undefined for anything else. */
function stepOfJob(raw: string | null): FollowUpJobData | undefined {
  if (raw === null) return undefined;
  try {
    const data = JSON.parse(raw) as Partial<FollowUpJobData>;
    return typeof data.e === "string" && typeof data.s === "string"
      ? { e: data.e, s: data.s }
      : undefined;
  } catch {
    return undefined;
  }
}
