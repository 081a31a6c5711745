import type { Queue } from "bullmq";
import { eventually } from "./pipeline-harness.js";

/** Counts of a queue whose every job has finished, read in the same snapshot. */
export interface SettledCounts {
  readonly completed: number;
  readonly failed: number;
}

/**
 * Waits until every job of `queue` has finished (completed or failed; none waiting, active,
 * delayed or prioritized), so a test can then assert that something did not happen: whatever
 * those jobs could have done is done, retries included (a retry waits in the delayed set). The
 * counts come from one atomic read. For queues without far-future jobs, which never settle.
 */
export async function settledQueue(
  queue: Pick<Queue, "getJobCounts">,
  what: string,
  timeoutMs?: number,
): Promise<SettledCounts> {
  return eventually(
    async () => {
      const counts = await queue.getJobCounts(
        "waiting",
        "active",
        "delayed",
        "prioritized",
        "waiting-children",
        "completed",
        "failed",
      );
      const unfinished =
        (counts.waiting ?? 0) +
        (counts.active ?? 0) +
        (counts.delayed ?? 0) +
        (counts.prioritized ?? 0) +
        (counts["waiting-children"] ?? 0);
      if (unfinished > 0) return undefined;
      return { completed: counts.completed ?? 0, failed: counts.failed ?? 0 };
    },
    `every job of ${what} to finish`,
    timeoutMs,
  );
}
