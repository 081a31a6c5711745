import type { Queue } from "bullmq";
import { DateTime } from "luxon";
import { CHANNELS } from "../domain/events.js";
import type { RuleSet, StepKind } from "../domain/rules.js";
import { type GuardEvent, graceEnd } from "../domain/send-guard.js";
import { findStep } from "../domain/step-ref.js";
import type { Logger } from "../logger.js";
import type { FollowUpMetrics } from "../metrics.js";
import type { BucketSlice, ScheduledStepRef } from "../store/follow-up-schedule.js";
import type { FollowUpStore } from "../store/follow-up-store.js";
import type { FrequencyCapStore } from "../store/frequency-cap-store.js";
import { type JobWatch, LOOK_AFTER_DUE_MS, type WatchedStep } from "../store/job-watch.js";
import { legacyFollowUpJobId } from "../store/legacy-layout.js";
import { isRedisUnavailable, type RedisClient } from "../store/redis-client.js";
import { abandonedSending, type StepRecord, UNREADABLE_STEP } from "../store/step-record.js";
import { type FollowUpJobData, followUpJobId, latestSendJobId } from "./names.js";
import { periodic } from "./periodic.js";
import { stepLabels } from "./step-labels.js";

/**
 * Finds steps whose BullMQ job is gone (removed with queue tools, an obliterated queue, writes
 * lost in a failover, a crash between a step's record and its job) while their record still says
 * `scheduled` or `sending`: nothing would ever send, end or count them. Every step that becomes
 * a job is filed in the job watch (store/job-watch.ts) first; every worker looks, with no leader,
 * at the buckets whose time has come (one worker per bucket at a time, under a lease), and for
 * each step still pending and quiet for longer than the margin (no state change, no noted wait),
 * reads its job: one that exists unfinished is left, and looked at again later; without one, the
 * step is queued again under its deterministic job id while within its grace period (its state
 * machine still keeps it from going twice; one left `sending` is taken over by that job, counted
 * as a possible duplicate), or else skipped with the reason `job-lost`. Either way it is counted
 * in `followups_lost_jobs_total{outcome}` and logged at warn level (ids only).
 */

/** Buckets looked at per round, and step references per slice. */
const BUCKETS_PER_ROUND = 32;
const SLICE_SIZE = 200;
/** How long one worker holds a bucket. */
const LEASE_MS = 60_000;
/** A round a minute. */
const EVERY_MS = 60_000;
const FIRST_MS = 30_000;

/** The reason a step whose job was lost past its grace period is skipped with. */
export const JOB_LOST = "job-lost";

/**
 * How long a pending step must have been quiet before its missing job counts as lost: well past a
 * live send's lease, stalled-job recovery and the longest wait between retries, at least 15 min.
 */
export function lostJobMarginMs(env: {
  readonly sendLeaseMs: number;
  readonly jobLockMs: number;
  readonly retryMaxMs: number;
}): number {
  return Math.max(15 * 60_000, 2 * (env.sendLeaseMs + env.jobLockMs) + env.retryMaxMs);
}

/** The job ids a step's job may have: its own, a resend's or retry's, the layout before's. */
export function candidateJobIds(ref: ScheduledStepRef, record: StepRecord): string[] {
  const base = followUpJobId(ref.eventId, ref.stepId);
  return [
    base,
    legacyFollowUpJobId(ref.eventId, ref.stepId),
    ...(record.resends > 0 ? [`${base}-r${record.resends}`] : []),
    ...(record.retries > 0 ? [`${base}-q${record.retries}`] : []),
  ];
}

/**
 * The ids a pending step's own send may hold a cap slot under: its job's (the step's own, or the
 * layout before's, for a first send; its latest resend's or retry's after one), not an earlier
 * send's, which reached the customer; both a resend's and a retry's when the record does not
 * tell which came last.
 */
function pendingSendJobIds(ref: ScheduledStepRef, record: StepRecord): string[] {
  const base = followUpJobId(ref.eventId, ref.stepId);
  const latest = latestSendJobId(base, record);
  if (latest === base) return [base, legacyFollowUpJobId(ref.eventId, ref.stepId)];
  return latest !== undefined
    ? [latest]
    : [`${base}-r${record.resends}`, `${base}-q${record.retries}`];
}

/** Since when a pending step has been left alone: its due time, last change or noted wait. */
function quietSince(record: StepRecord): number {
  return Math.max(record.dueAt, record.changedAt ?? 0, record.postponed?.until ?? 0);
}

export interface LostJobsDeps {
  readonly shard: number;
  readonly store: Pick<FollowUpStore, "stepRecords" | "sendView" | "transition">;
  readonly watch: Pick<JobWatch, "watch" | "bucketsEndedBy" | "claim" | "release" | "markRequeued">;
  readonly followUps: Queue<FollowUpJobData>;
  /** The connection the shard's follow-ups queue is on: its jobs are read there. */
  readonly redis: RedisClient;
  readonly caps: Pick<FrequencyCapStore, "release">;
  readonly rules: () => RuleSet;
  readonly metrics: Pick<FollowUpMetrics, "lostJobs" | "skipped">;
  readonly logger: Logger;
  readonly now: () => number;
  /** lostJobMarginMs of the workers' settings. */
  readonly marginMs: number;
}

export interface LostJobs {
  /** Looks at every bucket whose time has come; how many steps were requeued and skipped. */
  lookRound(): Promise<{ requeued: number; skipped: number }>;
  start(): void;
  stop(): Promise<void>;
}

export function createLostJobs(deps: LostJobsDeps): LostJobs {
  const task = periodic({
    firstMs: FIRST_MS,
    everyMs: EVERY_MS,
    run: async () => {
      await lookRound();
    },
    failed: (error) =>
      deps.logger.warn({ err: error, shard: deps.shard }, "looking for lost follow-up jobs failed"),
  });

  /** Which of the jobs exist unfinished (a finished one has `finishedOn`), by id. */
  async function liveJobs(ids: readonly string[]): Promise<Set<string>> {
    const live = new Set<string>();
    if (ids.length === 0) return live;
    const pipeline = deps.redis.pipeline();
    for (const id of ids) pipeline.hmget(deps.followUps.toKey(id), "timestamp", "finishedOn");
    const replies = (await pipeline.exec()) ?? [];
    replies.forEach(([error, value], i) => {
      if (error) throw error;
      const [timestamp, finishedOn] = value as (string | null)[];
      const id = ids[i];
      if (id !== undefined && timestamp !== null && finishedOn === null) live.add(id);
    });
    return live;
  }

  /**
   * The end of a step's grace period as the send guard counts it (in the customer's zone), or
   * undefined when its kind is not known (the guard decides). Without its purchase (the guard
   * would skip it as event-missing), from its due time in UTC.
   */
  function graceEndsAt(
    stepId: string,
    record: StepRecord,
    event: GuardEvent | undefined,
  ): number | undefined {
    if (record.graceEndsAt !== undefined) return record.graceEndsAt;
    const rules = deps.rules();
    const kind = findStep(rules, stepId)?.step.kind ?? stepLabels(rules, stepId, record).kind;
    const grace = rules.gracePeriods[kind as keyof RuleSet["gracePeriods"]];
    if (!grace) return undefined;
    if (event) return graceEnd({ event, dueAt: record.dueAt }, kind as StepKind, rules).toMillis();
    return DateTime.fromMillis(record.dueAt, { zone: "utc" }).plus(grace).toMillis();
  }

  async function lost(
    ref: ScheduledStepRef,
    seen: StepRecord,
    now: number,
  ): Promise<"requeued" | "skipped" | undefined> {
    const { eventId, stepId } = ref;
    const view = await deps.store.sendView(eventId, stepId);
    const record = view.record;
    // Changed since it was read (a job ran it after all): looked at again later, if still pending.
    if (
      record?.state !== seen.state ||
      record.changedAt !== seen.changedAt ||
      record.dueAt !== seen.dueAt
    )
      return undefined;
    const rules = deps.rules();
    const labels = stepLabels(rules, stepId, record);
    const graceEnds = graceEndsAt(stepId, record, view.event);
    // Under the id of the job that was lost: a resend's or retry's own (`-r<n>`, `-q<n>`), whose
    // send takes its own cap slot and charge, not the step's first send's; the step's own id for
    // a step both resent and retried by a version that did not note which came last.
    const jobId =
      latestSendJobId(followUpJobId(eventId, stepId), record) ?? followUpJobId(eventId, stepId);
    const log = deps.logger.child({ eventId, stepId, jobId, shard: deps.shard });
    // The guard sends it up to its grace end, that instant included.
    if (graceEnds === undefined || now <= graceEnds) {
      // Once per margin, whoever looks: a step filed twice may be looked at by two workers at once
      // (in two buckets), and both would queue and count it.
      if (!(await deps.watch.markRequeued(eventId, stepId, now, deps.marginMs))) return undefined;
      await deps.watch.watch([{ eventId, stepId, lookAt: now + LOOK_AFTER_DUE_MS }]);
      // A finished job under its id (a run that ended without ending the step) would keep the
      // new one from being added.
      await deps.followUps.remove(jobId);
      await deps.followUps.add(labels.channel, { e: eventId, s: stepId }, { jobId });
      deps.metrics.lostJobs.inc({ outcome: "requeued" });
      log.warn(
        { state: record.state },
        record.state === "sending"
          ? "follow-up left sending with its job lost; queued again (possible duplicate)"
          : "follow-up left scheduled with its job lost; queued again",
      );
      return "requeued";
    }
    // The same mark: a look at the step's other entry on the other side of its grace end (another
    // worker, its clock a moment behind) may be queueing it again at this moment.
    if (!(await deps.watch.markRequeued(eventId, stepId, now, deps.marginMs))) return undefined;
    const text =
      record.state === "sending"
        ? "its send was interrupted and its job lost; it may or may not have reached the customer, and its grace period is over"
        : "its job was lost before it was sent, and its grace period is over";
    const changed = await deps.store.transition(
      eventId,
      stepId,
      record.state === "sending" ? [abandonedSending(now, deps.marginMs)] : ["scheduled"],
      { state: "skipped", reason: { code: JOB_LOST, text } },
      now,
      { outcome: "skipped", ...labels, reason: JOB_LOST },
      record.dueAt,
      view.lastStep?.(),
    );
    if (!changed) return undefined;
    const channel = CHANNELS.find((known) => known === labels.channel);
    if (channel && view.event) {
      for (const id of pendingSendJobIds(ref, record))
        await deps.caps.release(channel, view.event.customer.id, id);
    }
    deps.metrics.skipped.inc({ channel: labels.channel, kind: labels.kind, reason: JOB_LOST });
    deps.metrics.lostJobs.inc({ outcome: "skipped" });
    log.warn({ state: record.state }, "follow-up's job lost past its grace period; skipped");
    return "skipped";
  }

  /**
   * A watched step's record; UNREADABLE_STEP when this version cannot read it (damaged, or a newer
   * version's form): thrown, it would fail every round at its bucket, and no later bucket of the
   * shard would be looked at. Redis being away still fails the round.
   */
  async function recordOf(
    ref: ScheduledStepRef,
  ): Promise<StepRecord | undefined | typeof UNREADABLE_STEP> {
    try {
      return (await deps.store.stepRecords(ref.eventId, [ref.stepId])).get(ref.stepId);
    } catch (error) {
      if (isRedisUnavailable(error)) throw error;
      return UNREADABLE_STEP;
    }
  }

  async function lookAt(slice: BucketSlice, now: number, tally: Record<string, number>) {
    const records = await Promise.all(slice.refs.map(recordOf));
    const later: WatchedStep[] = [];
    const quiet: { ref: ScheduledStepRef; record: StepRecord; ids: string[] }[] = [];
    const seen = new Set<string>();
    slice.refs.forEach((ref, i) => {
      const record = records[i];
      const key = `${ref.stepId} ${ref.eventId}`;
      if (record === UNREADABLE_STEP) {
        // Left to a worker that can read it, looked at again a margin later (ids only: the
        // error may quote the record).
        if (seen.has(key)) return;
        seen.add(key);
        deps.logger.warn(
          { eventId: ref.eventId, stepId: ref.stepId, shard: deps.shard },
          "a watched follow-up's step record cannot be read; looked at again later",
        );
        later.push({ ...ref, lookAt: now + deps.marginMs });
        return;
      }
      if (!record || (record.state !== "scheduled" && record.state !== "sending") || seen.has(key))
        return;
      seen.add(key);
      const since = quietSince(record);
      if (now < since + deps.marginMs) later.push({ ...ref, lookAt: since + deps.marginMs });
      else quiet.push({ ref, record, ids: candidateJobIds(ref, record) });
    });
    const live = await liveJobs(quiet.flatMap(({ ids }) => ids));
    for (const { ref, record, ids } of quiet) {
      // Its job waits (a send window, a cap, a retry, a worker on newer rules): looked at later.
      if (ids.some((id) => live.has(id))) {
        later.push({ ...ref, lookAt: now + deps.marginMs });
        continue;
      }
      const outcome = await lost(ref, record, now);
      if (outcome) tally[outcome] = (tally[outcome] ?? 0) + 1;
      else later.push({ ...ref, lookAt: now + deps.marginMs });
    }
    await deps.watch.watch(later);
  }

  async function lookRound(): Promise<{ requeued: number; skipped: number }> {
    const tally: Record<string, number> = {};
    const now = deps.now();
    for (;;) {
      const buckets = await deps.watch.bucketsEndedBy(now, BUCKETS_PER_ROUND);
      let progressed = false;
      for (const bucket of buckets) {
        for (;;) {
          if (task.stopped()) return summary(tally);
          const slice = await deps.watch.claim(bucket, LEASE_MS, SLICE_SIZE);
          if (!slice) break;
          await lookAt(slice, now, tally);
          progressed = true;
          if (!(await deps.watch.release(slice)) || slice.count === 0) break;
        }
      }
      if (buckets.length < BUCKETS_PER_ROUND || !progressed) break;
    }
    return summary(tally);
  }

  return { lookRound, start: task.start, stop: task.stop };
}

function summary(tally: Record<string, number>): { requeued: number; skipped: number } {
  return { requeued: tally.requeued ?? 0, skipped: tally.skipped ?? 0 };
}
