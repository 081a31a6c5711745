import { type Job, type Queue, UnrecoverableError } from "bullmq";
import type { DateTime } from "luxon";
import {
  describeProblems,
  type FollowUpEvent,
  type PurchaseCompleted,
  parseEvent,
} from "../domain/events.js";
import { planFollowUps } from "../domain/planner.js";
import { NO_HISTORY, type RuleSet } from "../domain/rules.js";
import type { Logger } from "../logger.js";
import type { FollowUpStore } from "../store/follow-up-store.js";
import { type FollowUpJobData, followUpJobId } from "./names.js";

/** How long an event's record outlives its last step: time for retries, reports and inspection. */
export const EVENT_RETENTION_MS = 30 * 24 * 3600 * 1000;

export interface IntakeDeps {
  readonly rules: () => RuleSet;
  readonly store: FollowUpStore;
  readonly followUps: Queue<FollowUpJobData>;
  readonly logger: Logger;
  readonly clock: () => DateTime;
}

/** What an intake job returns (kept small: BullMQ stores it with the completed job). */
export interface IntakeSummary {
  readonly type: FollowUpEvent["type"];
  readonly planned?: number;
  readonly scheduled?: number;
  readonly skipped?: number;
}

/**
 * Processes one job of the `purchase-events` queue: validate, plan, schedule. An invalid event
 * fails at once, without retries, with every problem and its path as the failed reason; the job
 * stays in the failed set for inspection.
 */
export function createIntakeProcessor(deps: IntakeDeps) {
  return async (job: Job): Promise<IntakeSummary> => {
    const data: unknown = job.data;
    const input =
      data && typeof data === "object" && !Array.isArray(data) && !("type" in data)
        ? { type: job.name, ...data }
        : data;
    const parsed = parseEvent(input);
    if (!parsed.ok) {
      deps.logger.warn(
        { jobId: job.id, problems: parsed.problems.map((p) => p.path || "(event)") },
        "invalid event rejected",
      );
      throw new UnrecoverableError(
        `invalid event: ${describeProblems(parsed.problems).replaceAll("\n", "; ")}`,
      );
    }
    const event = parsed.event;
    if (event.type === "purchase.completed") return schedulePurchase(event, deps, job.id);
    deps.logger.info({ jobId: job.id, eventId: event.id, type: event.type }, "event accepted");
    return { type: event.type };
  };
}

async function schedulePurchase(
  event: PurchaseCompleted,
  deps: IntakeDeps,
  jobId?: string,
): Promise<IntakeSummary> {
  const now = deps.clock();
  const rules = deps.rules();
  const plan = planFollowUps(event, rules, NO_HISTORY, now);
  const log = deps.logger.child({ eventId: event.id, jobId });
  if (plan.steps.length === 0) {
    log.info({ skipped: plan.skipped.map((s) => s.code) }, "no follow-ups planned");
    return { type: event.type, planned: 0, scheduled: 0, skipped: plan.skipped.length };
  }
  const records = await deps.store.stepRecords(
    event.id,
    plan.steps.map((s) => s.stepId),
  );
  // A step with a state beyond "scheduled" was handled by an earlier delivery of this event.
  const open = plan.steps.filter((step) => {
    const record = records.get(step.stepId);
    return record === undefined || record.s === "scheduled";
  });
  const nowMs = now.toMillis();
  const lastDue = Math.max(...plan.steps.map((s) => Date.parse(s.dueAt)));
  await deps.store.saveEvent(event, lastDue + EVENT_RETENTION_MS);
  await deps.followUps.addBulk(
    open.map((step) => ({
      name: step.channel,
      data: { e: event.id, s: step.stepId },
      opts: {
        jobId: followUpJobId(event.id, step.stepId),
        delay: Math.max(0, Date.parse(step.dueAt) - nowMs),
      },
    })),
  );
  await deps.store.markScheduled(
    event.id,
    open.map((step) => ({ stepId: step.stepId, dueAt: Date.parse(step.dueAt) })),
    nowMs,
  );
  log.info(
    {
      steps: open.map((s) => ({ stepId: s.stepId, dueAt: s.dueAt })),
      alreadyHandled: plan.steps.length - open.length,
    },
    "follow-ups scheduled",
  );
  return {
    type: event.type,
    planned: plan.steps.length,
    scheduled: open.length,
    skipped: plan.skipped.length,
  };
}
