import { type Job, UnrecoverableError } from "bullmq";
import type { Logger } from "../logger.js";
import type { DeliveryDeps } from "./delivery-processor.js";
import type { FollowUpJobData } from "./names.js";
import { stepLabels } from "./step-labels.js";

/**
 * What a follow-up's job failed by BullMQ leaves of its step: nothing changes. Our own failures
 * (UnrecoverableError) record their step when they happen. Any other error reaches BullMQ only
 * when the delivery processor could not even put its job back for a retry (Redis refused the
 * move: a failover, a lost connection), so it is transient, never a reason to fail the follow-up
 * for good: the step stays `scheduled` (or `sending`, when its message may have gone out), and the
 * job watch (lost-jobs.ts), finding its job finished and the step still pending, queues it again
 * within its grace period (a `sending` one counted as a possible duplicate) or skips it `job-lost`
 * after it. Logged by ids only. (A job that stalled too often is failed by BullMQ itself with an
 * UnrecoverableError: recordStalledTooOften.)
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

/**
 * Records as failed (code `stalled`) the step of a job BullMQ failed for stalling more than
 * `maxStalledCount` times: its stalled check notes that on the job (`deferredFailure`), and the
 * next worker to take it fails it with an UnrecoverableError before the processor runs. Such a
 * job kills or blocks every worker that runs it; left pending, the job watch would queue it again
 * every margin until its grace period ends, each run taking a worker down with the sends it had
 * in flight. Our own UnrecoverableErrors never carry a deferred failure, and are left alone.
 */
export function recordStalledTooOften(
  deps: Pick<DeliveryDeps, "rules" | "store" | "logger" | "clock">,
) {
  return (
    job: Pick<Job<FollowUpJobData>, "data" | "id" | "deferredFailure"> | undefined,
    error: Error,
  ): void => {
    if (!job?.deferredFailure || !(error instanceof UnrecoverableError)) return;
    const { e: eventId, s: stepId } = job.data;
    const record = async () => {
      const found = (await deps.store.stepRecords(eventId, [stepId])).get(stepId);
      await deps.store.transition(
        eventId,
        stepId,
        ["scheduled", "sending"],
        { state: "failed", reason: { code: "stalled", text: error.message } },
        deps.clock().toMillis(),
        {
          outcome: "failed",
          ...stepLabels(deps.rules(), stepId, found),
          reason: "transient stalled",
        },
        found?.dueAt,
      );
    };
    record().catch((err: unknown) =>
      deps.logger.error(
        { err, jobId: job.id },
        "could not record a follow-up that stalled too often",
      ),
    );
  };
}
