import { setTimeout as sleep } from "node:timers/promises";
import { DelayedError, type Job, UnrecoverableError } from "bullmq";
import type { DateTime } from "luxon";
import type { DeliveryChannel, OutgoingMessage, SendFailure } from "../channels/channel.js";
import type { Channel, PurchaseCompleted } from "../domain/events.js";
import { findStep, ruleIdOf } from "../domain/step-ref.js";
import type { Rule, RuleSet, StepSpec } from "../domain/rules.js";
import { decideSend } from "../domain/send-guard.js";
import type { Logger } from "../logger.js";
import type { FollowUpMetrics } from "../metrics.js";
import type { FollowUpStore, StepRecord } from "../store/follow-up-store.js";
import type { FrequencyCapStore } from "../store/frequency-cap-store.js";
import type { ChannelRateLimiter } from "../store/rate-limiter.js";
import type { SuppressionList } from "../store/suppression-list.js";
import type { FollowUpJobData } from "./names.js";
import type { RetryPolicy } from "./retry-policy.js";

/** Everything a message needs to be written: the purchase, the step, and when it was due. */
export interface ComposeInput {
  readonly event: PurchaseCompleted;
  readonly rule: Rule;
  readonly step: StepSpec;
  readonly stepId: string;
  readonly followUpId: string;
  readonly dueAt: number;
  readonly zone: string;
  readonly rules: RuleSet;
}

/** Renders a step into a message for its channel (templates, discount codes). */
export type ComposeMessage = (input: ComposeInput) => Promise<OutgoingMessage>;

export interface DeliveryDeps {
  readonly rules: () => RuleSet;
  readonly compose: ComposeMessage;
  readonly channels: Readonly<Record<Channel, DeliveryChannel>>;
  readonly store: FollowUpStore;
  readonly suppressions: SuppressionList;
  readonly caps: FrequencyCapStore;
  readonly metrics: FollowUpMetrics;
  readonly rateLimiter: ChannelRateLimiter;
  readonly retry: RetryPolicy;
  /** How long a send may take before another worker may assume its sender died. */
  readonly sendLeaseMs: number;
  readonly logger: Logger;
  readonly clock: () => DateTime;
  readonly random: () => number;
}

/** How a delivery job ended, as returned to BullMQ and counted. */
export type DeliveryOutcome =
  | { readonly outcome: "sent"; readonly id: string }
  | { readonly outcome: "skipped"; readonly code: string }
  | { readonly outcome: "already-handled"; readonly state: string };

/**
 * Processes one due follow-up. This is the single place that decides what a failure means:
 * transient → retry later (moved back to delayed, counted in the step record), permanent or
 * misconfigured → fail now with the reason. Deferrals (send window, rate limit) never use up an
 * attempt. The step record's atomic claim keeps a redelivered job from sending twice.
 */
export function createDeliveryProcessor(deps: DeliveryDeps) {
  const deliver = createDelivery(deps);
  return async (job: Job<FollowUpJobData>, token?: string): Promise<DeliveryOutcome> => {
    try {
      return await deliver(job, token);
    } catch (error) {
      if (error instanceof DelayedError || error instanceof UnrecoverableError) throw error;
      // Redis hiccups and bugs: try again later like a transient send failure. If even that
      // fails, the job's lock lapses and BullMQ's stalled check hands it to a worker again.
      const retryAt = deps.clock().toMillis() + deps.retry.delayMs(1);
      deps.logger.error({ err: error, jobId: job.id }, "delivery error; will retry");
      await job.moveToDelayed(retryAt, token);
      throw new DelayedError("unexpected error");
    }
  };
}

function createDelivery(deps: DeliveryDeps) {
  return async (job: Job<FollowUpJobData>, token?: string): Promise<DeliveryOutcome> => {
    const { e: eventId, s: stepId } = job.data;
    const followUpId = job.id ?? "";
    const log = deps.logger.child({ eventId, stepId, jobId: followUpId });
    const postpone = async (until: number, why: string): Promise<never> => {
      log.debug({ until: new Date(until).toISOString(), why }, "follow-up postponed");
      await job.moveToDelayed(until, token);
      throw new DelayedError(why);
    };

    const now = deps.clock();
    const nowMs = now.toMillis();
    // The step's state first: a redelivered job of a finished step is done, whatever else is gone.
    const record = (await deps.store.stepRecords(eventId, [stepId])).get(stepId);
    if (record && record.s !== "scheduled" && record.s !== "sending") {
      log.info({ state: record.s }, "follow-up already handled");
      return { outcome: "already-handled", state: record.s };
    }
    const event = await deps.store.loadEvent(eventId);
    if (!event) {
      log.warn("event record expired or missing; follow-up dropped");
      await deps.store.transition(
        eventId,
        stepId,
        ["scheduled", "sending"],
        { s: "skipped", x: "event-missing: the purchase record is gone" },
        nowMs,
      );
      return { outcome: "skipped", code: "event-missing" };
    }
    const rules = deps.rules();
    const dueAt = record?.d ?? job.timestamp + job.delay;
    const suppressedChannels = await suppressedFor(deps.suppressions, event, rules, stepId);
    const decision = decideSend({ suppressedChannels, event, stepId, dueAt, rules, now });
    if (decision.action === "defer") return postpone(decision.until.toMillis(), decision.reason);
    const labels = (channel: string, kind: string) => ({ channel, kind });
    const ruleId = ruleIdOf(stepId);
    const skip = async (
      code: string,
      reason: string,
      channel: string,
      kind: string,
    ): Promise<DeliveryOutcome> => {
      await deps.store.transition(
        eventId,
        stepId,
        ["scheduled", "sending"],
        { s: "skipped", x: `${code}: ${reason}` },
        nowMs,
        { outcome: "skipped", channel, kind, ruleId, reason: code },
      );
      // A retried step may hold a cap slot from its earlier attempt; a skipped one never reached anyone.
      await deps.caps.release(channel as Channel, event.customer.id, followUpId);
      deps.metrics.skipped.inc({ ...labels(channel, kind), reason: code });
      log.info({ code }, "follow-up skipped");
      return { outcome: "skipped", code };
    };
    if (decision.action === "skip") {
      const found = findStep(rules, stepId)?.step;
      return skip(
        decision.code,
        decision.reason,
        found?.channel ?? "unknown",
        found?.kind ?? "unknown",
      );
    }
    const { rule, step, zone } = decision;
    const stepLabels = labels(step.channel, step.kind);

    const slot = await deps.rateLimiter.take(
      step.channel,
      rules.channels[step.channel].ratePerSecond,
    );
    // Slots are in the Redis server's time; the wait is relative, so it starts from the answer.
    const grantedAt = deps.clock().toMillis();
    if (!slot.granted) {
      const jitter = Math.floor(deps.random() * RATE_RETRY_JITTER_MS);
      return postpone(grantedAt + slot.retryInMs + jitter, "rate limit");
    }
    // The send waits for its slot after the message is rendered, so rendering time does not
    // delay it past the slot and bunch it with the sends behind it.
    const slotAt = grantedAt + slot.waitMs;
    const cap = await deps.caps.take(
      step.channel,
      event.customer.id,
      followUpId,
      rules.frequencyCaps[step.channel],
      nowMs,
    );
    if (!cap.allowed) {
      if (rules.whenCapped[step.kind] === "defer") return postpone(cap.freeAt, "frequency cap");
      return skip(
        "capped",
        `the customer's ${step.channel} frequency cap is reached`,
        step.channel,
        step.kind,
      );
    }

    const claim = await deps.store.claim(eventId, stepId, nowMs, deps.sendLeaseMs, {
      outcome: "cancelled",
      ...stepLabels,
      ruleId,
      reason: "refunded",
    });
    if (!claim.claimed) {
      if (claim.record.s === "sending")
        return postpone(claim.record.t + deps.sendLeaseMs, "another worker is sending");
      // A sent step keeps its place under the cap; anything else never reached the customer.
      if (claim.record.s !== "sent")
        await deps.caps.release(step.channel, event.customer.id, followUpId);
      if (claim.record.s === "cancelled") {
        deps.metrics.cancelled.inc({
          ...stepLabels,
          reason: (claim.record.x ?? "").split(":")[0] ?? "",
        });
      }
      return { outcome: "already-handled", state: claim.record.s };
    }
    if (claim.takenOver) {
      deps.metrics.possibleDuplicates.inc({ cause: "takeover" });
      log.warn(
        { takeovers: claim.record.r },
        "previous sender vanished mid-send; sending again (possible duplicate)",
      );
    }
    const attempt = {
      eventId,
      stepId,
      record: claim.record,
      channel: step.channel,
      kind: step.kind,
      customerId: event.customer.id,
      followUpId,
    };

    let message: OutgoingMessage;
    try {
      message = await deps.compose({
        event,
        rule,
        step,
        stepId,
        followUpId,
        dueAt: claim.record.d,
        zone,
        rules,
      });
    } catch (error) {
      const reason = `template ${step.template} failed to render: ${(error as Error).message}`;
      return fail(deps, log, attempt, nowMs, { kind: "permanent", code: "render", reason });
    }
    const untilSlot = slotAt - deps.clock().toMillis();
    if (untilSlot > 0) await sleep(untilSlot);
    const result = await deps.channels[step.channel].send(message);
    const doneMs = deps.clock().toMillis();
    if (result.ok) {
      await deps.store.transition(
        eventId,
        stepId,
        ["sending"],
        { s: "sent", id: result.id, a: claim.record.a + 1 },
        doneMs,
        { outcome: "sent", channel: step.channel, kind: step.kind, ruleId },
      );
      if (step.channel !== "email") {
        await deps.store.rememberSms(
          result.id,
          message.to,
          { eventId, stepId, kind: step.kind },
          SMS_REFERENCE_MS,
        );
      }
      deps.metrics.sent.inc(stepLabels);
      deps.metrics.sendLatency.observe(
        { channel: step.channel },
        Math.max(0, doneMs - claim.record.d) / 1000,
      );
      log.info({ channel: step.channel, kind: step.kind, providerId: result.id }, "follow-up sent");
      return { outcome: "sent", id: result.id };
    }
    const attempts = claim.record.a + 1;
    if (result.error.optedOut) {
      const isNew = await deps.suppressions.suppress(step.channel, { address: message.to });
      if (isNew)
        await deps.store.count(
          { outcome: "optout", channel: step.channel, kind: "-", ruleId: "-", reason: "provider" },
          doneMs,
        );
      log.info({ channel: step.channel }, "recipient opted out at the provider; suppressed");
    }
    if (result.error.kind === "transient" && attempts < deps.retry.maxAttempts) {
      const retryAt = doneMs + deps.retry.delayMs(attempts);
      await deps.store.transition(
        eventId,
        stepId,
        ["sending"],
        {
          s: "scheduled",
          a: attempts,
          x: describeFailure(result.error),
          // The provider may have accepted it: the retry is a possible duplicate, counted like a takeover.
          ...(result.error.uncertain && { r: (claim.record.r ?? 0) + 1 }),
        },
        doneMs,
      );
      deps.metrics.retried.inc({ channel: step.channel });
      if (result.error.uncertain)
        deps.metrics.possibleDuplicates.inc({ cause: "uncertain-handover" });
      log.warn(
        { code: result.error.code, attempts, retryAt: new Date(retryAt).toISOString() },
        "transient failure; will retry",
      );
      return postpone(retryAt, "transient failure");
    }
    return fail(deps, log, attempt, doneMs, result.error, attempts);
  };
}

/**
 * Spread of the retries of jobs denied a send slot together, so they do not all ask again at once;
 * small, because the denial already says when a slot comes within reach.
 */
const RATE_RETRY_JITTER_MS = 250;

/** How long an SMS sid is kept to file Twilio's status callbacks and replies against its step. */
const SMS_REFERENCE_MS = 60 * 24 * 3600 * 1000;

/** The channel of the step, if this customer or their contact for it is suppressed there. */
async function suppressedFor(
  suppressions: SuppressionList,
  event: PurchaseCompleted,
  rules: RuleSet,
  stepId: string,
): Promise<ReadonlySet<Channel>> {
  const found = findStep(rules, stepId);
  if (!found) return new Set();
  const { channel } = found.step;
  const address = channel === "email" ? event.customer.email : event.customer.phone;
  const suppressed = await suppressions.isSuppressed(channel, {
    customerId: event.customer.id,
    ...(address && { address }),
  });
  return suppressed ? new Set([channel]) : new Set();
}

interface Attempt {
  readonly eventId: string;
  readonly stepId: string;
  readonly record: StepRecord;
  readonly channel: Channel;
  readonly kind: string;
  readonly customerId: string;
  readonly followUpId: string;
}

async function fail(
  deps: DeliveryDeps,
  log: Logger,
  at: Attempt,
  nowMs: number,
  error: SendFailure,
  attempts = at.record.a + 1,
): Promise<never> {
  const gaveUp = error.kind === "transient" ? `gave up after ${attempts} attempts: ` : "";
  const reason = `${gaveUp}${describeFailure(error)}`;
  await deps.store.transition(
    at.eventId,
    at.stepId,
    ["sending"],
    { s: "failed", a: attempts, x: reason },
    nowMs,
    {
      outcome: "failed",
      channel: at.channel,
      kind: at.kind,
      ruleId: ruleIdOf(at.stepId),
      reason: `${error.kind} ${error.code}`,
    },
  );
  // Nothing reached the customer, so the attempt does not count against their frequency cap.
  await deps.caps.release(at.channel, at.customerId, at.followUpId);
  deps.metrics.failed.inc({
    channel: at.channel,
    kind: at.kind,
    reason: `${error.kind} ${error.code}`,
  });
  if (error.kind === "misconfigured") {
    log.error(
      { code: error.code },
      `DELIVERY MISCONFIGURED: ${error.reason}; fix the channel settings`,
    );
  } else {
    log.warn({ code: error.code, kind: error.kind }, "follow-up failed");
  }
  throw new UnrecoverableError(reason);
}

function describeFailure(error: SendFailure): string {
  return `${error.kind} ${error.code}: ${error.reason}`;
}
