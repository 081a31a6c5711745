import { type Job, UnrecoverableError } from "bullmq";
import type { DeliveryDeps } from "./delivery-processor.js";
import type { FollowUpJobData } from "./names.js";
import { stepLabels } from "./step-labels.js";

/**
 * Records a follow-up that BullMQ failed on its own (stalled too often): our own failures are
 * recorded when they happen, so those are left alone.
 */
export function recordFailureByBullmq(
  deps: Pick<DeliveryDeps, "rules" | "store" | "logger" | "clock">,
) {
  return (job: Pick<Job<FollowUpJobData>, "data" | "id"> | undefined, error: Error): void => {
    if (!job || error instanceof UnrecoverableError) return;
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
      deps.logger.error({ err, jobId: job.id }, "could not record a failed follow-up"),
    );
  };
}
