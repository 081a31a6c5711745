import type { Queue } from "bullmq";
import { ruleIdOf } from "../domain/step-ref.js";
import type { FollowUpJobData } from "../queue/names.js";
import type { CountedPending } from "../reports/pending-schedule.js";
import type { FollowUpStore } from "../store/follow-up-store.js";

/** Delayed jobs read per page. */
const PAGE = 1000;
/** Step records read at once. */
const BATCH = 100;
const QUARTER_HOUR_MS = 15 * 60 * 1000;

/** What a shard offers the schedule's correction: its follow-ups queue and its step records. */
export interface PostponedSource {
  readonly queue: Pick<Queue<FollowUpJobData>, "getDelayed" | "getDelayedCount">;
  readonly store: Pick<FollowUpStore, "stepRecords" | "generationOf">;
}

/**
 * Where the pending counts of postponed follow-ups belong. The ledger counts every pending
 * follow-up under its planned due time (each state script keeps that count exact); a follow-up
 * whose job was put back to wait past it (its record's `postponed` note: a send window, a
 * frequency cap, a retry, …) goes out later, maybe on another day. For each such job among the
 * shards' delayed jobs: one off its planned quarter hour, one on the quarter hour it waits for, so
 * that the schedule, read with these added, shows it on the day it will go. Read-only: nothing
 * the state scripts count changes. Steps planned before rules were counted (no generation) were
 * counted by channel alone and are left where they are.
 */
export async function postponedMoves(
  shards: readonly PostponedSource[],
): Promise<CountedPending[]> {
  const moves: CountedPending[] = [];
  for (const { queue, store } of shards) {
    const total = await queue.getDelayedCount();
    for (let start = 0; start < total; start += PAGE) {
      const jobs = (await queue.getDelayed(start, start + PAGE - 1)).filter(
        (job) => job?.data?.e !== undefined && job.data.s !== undefined,
      );
      for (let i = 0; i < jobs.length; i += BATCH) {
        const found = await Promise.all(
          jobs.slice(i, i + BATCH).map(async ({ data }) => {
            const record = (await store.stepRecords(data.e, [data.s])).get(data.s);
            if (!record?.postponed || !record.channel) return [];
            // Counted by channel alone, on its UTC day: no rule to move it under.
            if ((await store.generationOf(data.e)) === undefined) return [];
            const labels = { channel: record.channel, ruleId: ruleIdOf(data.s) };
            return [
              { ...labels, at: quarterOf(record.dueAt), count: -1 },
              { ...labels, at: quarterOf(record.postponed.until), count: 1 },
            ];
          }),
        );
        moves.push(...found.flat());
      }
    }
  }
  return moves;
}

function quarterOf(epochMs: number): number {
  return Math.floor(epochMs / QUARTER_HOUR_MS) * QUARTER_HOUR_MS;
}
