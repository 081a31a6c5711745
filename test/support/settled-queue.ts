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

/** A follow-up job's data as far as a step goes: its event and step. */
interface StepJobData {
  readonly e?: string;
  readonly s?: string;
}

/**
 * Waits until no job of the given steps is unfinished in any of `queues` (none waiting, active,
 * delayed or prioritized, a paused queue's included; a retry waits in the delayed set, a resend
 * is a job of its own id), so a test can then assert that a step was not sent again: nothing is
 * left that could send it. For queues that also hold far-future jobs of other steps, which never
 * settle (settledQueue).
 */
export async function settledSteps(
  queues: readonly Pick<Queue, "getJobs">[],
  steps: readonly { readonly eventId: string; readonly stepId: string }[],
  what: string,
  timeoutMs?: number,
): Promise<void> {
  const wanted = new Set(steps.map((step) => `${step.eventId}\u0000${step.stepId}`));
  await eventually(
    async () => {
      for (const queue of queues) {
        const jobs = await queue.getJobs([
          "waiting",
          "active",
          "delayed",
          "prioritized",
          "waiting-children",
        ]);
        const unfinished = jobs.some((job) => {
          const data = (job?.data ?? {}) as StepJobData;
          return wanted.has(`${data.e}\u0000${data.s}`);
        });
        if (unfinished) return undefined;
      }
      return true;
    },
    `every job of ${what} to finish`,
    timeoutMs,
  );
}
