import type { Job, Queue } from "bullmq";
import type { Logger } from "../logger.js";
import type { FollowUpSchedule } from "../store/follow-up-schedule.js";
import type { FollowUpStore } from "../store/follow-up-store.js";
import { mayBePromoted } from "../store/keys.js";
import type { FollowUpJobData } from "./names.js";

/**
 * The upgrade from one delayed job per step (versions before 2026-12-02) to the compact schedule:
 * every delayed follow-up job due beyond the promotion horizon whose step is still scheduled, and
 * planned for beyond it, is filed in the schedule, then its job is removed. This version's own
 * delayed jobs stay: a retry waiting out its backoff, or a send held back by a window, a cap or a
 * rate limit, belongs to a step whose planned time has come (moving it would send it again at once). Run at start-up in bounded batches by every
 * worker; running it twice, or two workers at once, only files a step twice, which the promoter
 * handles (the same job id). A crash between filing and removing leaves both, and the step's
 * state machine still sends it once.
 */

/** Jobs read per batch. */
const BATCH = 500;

export interface ScheduleUpgradeDeps {
  readonly followUps: Queue<FollowUpJobData>;
  readonly schedule: FollowUpSchedule;
  readonly store: Pick<FollowUpStore, "stepRecords">;
  readonly horizonMs: number;
  readonly recordRetentionMs: number;
  readonly now: () => number;
  readonly logger: Logger;
  /** Stops between batches when it returns true (shutdown). */
  readonly stopped?: () => boolean;
}

/** Moves far-future delayed jobs into the schedule; returns how many it moved. */
export async function moveDelayedJobsToSchedule(deps: ScheduleUpgradeDeps): Promise<number> {
  let moved = 0;
  // Delayed jobs come earliest first; the ones kept (near, or not ours to move) are skipped over.
  let offset = 0;
  for (;;) {
    if (deps.stopped?.()) break;
    const jobs = (await deps.followUps.getDelayed(
      offset,
      offset + BATCH - 1,
    )) as Job<FollowUpJobData>[];
    if (jobs.length === 0) break;
    const now = deps.now();
    const far = jobs.filter(
      (job) =>
        !mayBePromoted(job.timestamp + job.delay, now, deps.horizonMs) && job.data?.e && job.data.s,
    );
    const movable = await stillScheduled(deps.store, far, now, deps.horizonMs);
    // Filed under the record's due time: the promoter goes by the record, not by the job.
    await deps.schedule.add(
      movable.map(({ job, dueAt }) => ({ eventId: job.data.e, stepId: job.data.s, dueAt })),
      Math.max(...movable.map(({ dueAt }) => dueAt), 0) + deps.recordRetentionMs,
    );
    let removed = 0;
    for (const { job } of movable) {
      // A job that left the delayed set meanwhile (promoted by hand, say) is left to run.
      if ((await job.getState()) !== "delayed") continue;
      await job.remove();
      removed++;
    }
    moved += removed;
    offset += jobs.length - removed;
    if (jobs.length < BATCH) break;
  }
  if (moved > 0)
    deps.logger.info({ moved }, "delayed follow-up jobs moved into the compact schedule");
  return moved;
}

/**
 * The jobs whose step record is still `scheduled` for a time beyond the horizon, with the record's
 * due time. The others stay as they are: their steps have nothing left to do, or their planned time
 * has come and the job waits for a reason of its own (a retry's backoff, a send window).
 */
async function stillScheduled(
  store: Pick<FollowUpStore, "stepRecords">,
  jobs: readonly Job<FollowUpJobData>[],
  now: number,
  horizonMs: number,
): Promise<{ job: Job<FollowUpJobData>; dueAt: number }[]> {
  const records = await Promise.all(
    jobs.map(async (job) => (await store.stepRecords(job.data.e, [job.data.s])).get(job.data.s)),
  );
  return jobs.flatMap((job, i) => {
    const record = records[i];
    return record?.state === "scheduled" && !mayBePromoted(record.dueAt, now, horizonMs)
      ? [{ job, dueAt: record.dueAt }]
      : [];
  });
}
