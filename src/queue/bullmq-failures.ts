import { type Job, UnrecoverableError } from "bullmq";
import type { Logger } from "../logger.js";
import type { FollowUpJobData } from "./names.js";

/**
 * What a follow-up's job failed by BullMQ leaves of its step: nothing changes. Our own failures
 * (UnrecoverableError) record their step when they happen. Any other error reaches BullMQ only
 * when the delivery processor could not even put its job back for a retry (Redis refused the
 * move: a failover, a lost connection), so it is transient, never a reason to fail the follow-up
 * for good: the step stays `scheduled` (or `sending`, when its message may have gone out), and the
 * job watch (lost-jobs.ts), finding its job finished and the step still pending, queues it again
 * within its grace period (a `sending` one counted as a possible duplicate) or skips it `job-lost`
 * after it. Logged by ids only.
 */
export function leaveFailedJobToJobWatch(logger: Logger) {
  return (job: Pick<Job<FollowUpJobData>, "data" | "id"> | undefined, error: Error): void => {
    if (!job || error instanceof UnrecoverableError) return;
    logger.warn(
      { eventId: job.data.e, stepId: job.data.s, jobId: job.id, error: error.name },
      "follow-up's job failed with an unexpected error; its step is left pending for the job watch to queue again",
    );
  };
}
