import { randomUUID } from "node:crypto";
import type { Logger } from "../logger.js";
import { type JobWatch, LOOK_AFTER_DUE_MS } from "../store/job-watch.js";

/**
 * The upgrade to the job watch (versions before 6 December 2026 filed no step in it): a step that
 * became a job under such a version, or whose job was lost already, would stay `scheduled` or
 * `sending` for ever if its job is gone, as nothing looks at it. Every purchase record of a shard
 * is read once, in the background, a SCAN batch at a time, by the one worker holding the shard's
 * upgrade lease (`fu:jw`); each pending step due within the promotion horizon (a job, or about to
 * become one; later steps wait in the schedule, whose promotion files them) is filed in the watch,
 * looked at 15 minutes after it falls due (or now). The shard is then marked done, and no later
 * start reads its records again. A worker shut down half-way gives its lease back, and the next
 * worker to start reads them all again; one killed leaves its lease to run out (ten minutes), and
 * the next worker to start after that reads them: a step filed twice is acted on once
 * (JobWatch.markRequeued).
 */

export interface JobWatchUpgradeDeps {
  readonly shard: number;
  readonly watch: Pick<
    JobWatch,
    "watch" | "takeUpgrade" | "keepUpgrade" | "dropUpgrade" | "finishUpgrade" | "pendingSteps"
  >;
  readonly horizonMs: number;
  readonly now: () => number;
  readonly logger: Logger;
  /** Stops between batches when it returns true (shutdown). */
  readonly stopped?: () => boolean;
}

/** Files the pending steps of a shard's records in its job watch, once; how many it filed. */
export async function watchStepsOfEarlierVersions(deps: JobWatchUpgradeDeps): Promise<number> {
  const token = randomUUID();
  if ((await deps.watch.takeUpgrade(token)) !== "taken") return 0;
  let filed = 0;
  for await (const due of deps.watch.pendingSteps(() => deps.now() + deps.horizonMs)) {
    if (deps.stopped?.()) {
      // Shut down half-way: the next worker to start reads the shard again at once.
      await deps.watch.dropUpgrade(token);
      return filed;
    }
    if (!(await deps.watch.keepUpgrade(token))) return filed;
    const now = deps.now();
    await deps.watch.watch(
      due.map(({ eventId, stepId, record }) => ({
        eventId,
        stepId,
        lookAt: Math.max(now, record.dueAt) + LOOK_AFTER_DUE_MS,
      })),
    );
    filed += due.length;
  }
  await deps.watch.finishUpgrade();
  if (filed > 0)
    deps.logger.info(
      { shard: deps.shard, filed },
      "steps of versions before the job watch filed in it",
    );
  return filed;
}
