import { setTimeout as sleep } from "node:timers/promises";
import { DelayedError, type Job, UnrecoverableError } from "bullmq";
import type { DateTime } from "luxon";
import type {
  DeliveryChannel,
  OutgoingMessage,
  SendFailure,
  SendResult,
} from "../channels/channel.js";
import { consentFor } from "../domain/consent-timeline.js";
import {
  CHANNELS,
  type Channel,
  PHONE_CHANNELS,
  type PurchaseCompleted,
} from "../domain/events.js";
import { afterRefunds } from "../domain/refund.js";
import type { RuleSet, StepSpec } from "../domain/rules.js";
import { consentRefusal, decideSend, type GuardEvent, graceEnd } from "../domain/send-guard.js";
import { countSmsSegments } from "../domain/sms-segments.js";
import { costOf, unitPrice } from "../domain/spend.js";
import { findStep, stepIdOf } from "../domain/step-ref.js";
import { decideFallback } from "../domain/voice-call.js";
import type { Logger } from "../logger.js";
import type { FollowUpMetrics } from "../metrics.js";
import type { CallScripts } from "../store/call-scripts.js";
import type { CustomerHistoryStore } from "../store/customer-history.js";
import { type DiscountCodes, discountCodeHash } from "../store/discount-codes.js";
import type { FollowUpStore, PurchaseTrim } from "../store/follow-up-store.js";
import type { FrequencyCapStore } from "../store/frequency-cap-store.js";
import { legacyFollowUpJobId } from "../store/legacy-layout.js";
import type { OrderStore } from "../store/order-store.js";
import type { ChannelRateLimiter } from "../store/rate-limiter.js";
import { DELIVERY_SETTLED, type SmsReferences } from "../store/sms-references.js";
import {
  abandonedSending,
  type PostponeCode,
  type StepRecord,
  type StepStateFilter,
} from "../store/step-record.js";
import type { SuppressionList } from "../store/suppression-list.js";
import type { ThankYouGroups } from "../store/thank-you-groups.js";
import type { ComposeMessage } from "../templates/compose-message.js";
import { RenderTimeLimitError } from "../templates/template-set.js";
import { type Charge, chargeSpend, type SpendDeps } from "./channel-spend.js";
import { noteCheckIn } from "./check-in-comparison.js";
import {
  COALESCED_AFTER_MS,
  FOLLOW_UPS_QUEUE,
  type FollowUpJobData,
  followUpJobId,
} from "./names.js";
import { type RetryPolicy, retryDelayMs } from "./retry-policy.js";
import { type StepLabels, stepLabels } from "./step-labels.js";
import { type DeliveryNotes, type DeliveryTracing, deliveryAttributes } from "./traces.js";

/** What delivery needs of each store: narrow, so tests can hand in fakes kept in memory. */
export interface DeliveryDeps {
  /** The shard whose follow-ups queue this processor serves: its stores are that shard's. */
  readonly shard: number;
  readonly rules: () => RuleSet;
  readonly compose: ComposeMessage;
  readonly channels: Readonly<Record<Channel, Pick<DeliveryChannel, "send" | "findPlaced">>>;
  readonly store: Pick<
    FollowUpStore,
    | "stepRecords"
    | "readForSend"
    | "sendView"
    | "claim"
    | "transition"
    | "notePostponed"
    | "settleSent"
    | "recordExpiresAt"
    | "generationOf"
  >;
  readonly smsReferences: Pick<
    SmsReferences,
    | "rememberSms"
    | "rememberEmail"
    | "textedBefore"
    | "forgetSent"
    | "dropEarlyStatuses"
    | "keepErasedCharge"
  >;
  /**
   * Applies Twilio's status callback of an SMS as the webhook does (CustomerFeedback.smsStatus):
   * for those that came before the SMS's reference was written, which rememberSms hands over.
   */
  readonly smsStatus?: (update: {
    readonly messageSid: string;
    readonly status: string;
    readonly errorCode?: number;
    readonly receivedAt: number;
  }) => Promise<unknown>;
  readonly suppressions: Pick<
    SuppressionList,
    "optOutQuery" | "optOutsOf" | "suppress" | "noteOptOutAt" | "addressMember" | "customerMember"
  >;
  readonly caps: Pick<FrequencyCapStore, "take" | "release">;
  /** Where a call's script waits for Twilio's answer webhook. */
  readonly calls: Pick<CallScripts, "prepare" | "bind" | "forget" | "earlierAttempt" | "adoptable">;
  /** The latest follow-up sent to each customer, and check-ins' outcomes, for attribution. */
  readonly history: Pick<
    CustomerHistoryStore,
    "rememberCheckIn" | "forgetCheckIns" | "noteCode" | "latestConsent"
  >;
  /** Where the discount codes sent are stored, for tills to check. */
  readonly codes: Pick<DiscountCodes, "issue" | "revokeByHash">;
  /** A coalescing thank-you closes its group and thanks for the orders that joined it. */
  readonly thankYous: Pick<ThankYouGroups, "close" | "decide" | "filingOf" | "leave">;
  /**
   * The order's refunds, read with the customer's opt-outs: a message names what the customer
   * kept (items returned are left out), and a coalesced thank-you leaves a fully returned order out.
   */
  readonly orders: Pick<OrderStore, "get" | "getWithOptOuts">;
  /** What SMS and calls cost per month, against the budgets; owners are alerted at 80 and 100 %. */
  readonly spend: SpendDeps;
  readonly metrics: FollowUpMetrics;
  readonly rateLimiter: Pick<ChannelRateLimiter, "take">;
  readonly retry: RetryPolicy;
  /** How long a send may take before another worker may assume its sender died. */
  readonly sendLeaseMs: number;
  /** Channels this deployment cannot send on, and why; their steps are skipped with that reason. */
  readonly unavailableChannels?: ReadonlyMap<Channel, string>;
  readonly logger: Logger;
  readonly clock: () => DateTime;
  /**
   * The generation of the rules `rules()` returns (see RulesGenerations): a step planned under
   * newer rules than these, whose rule they lack, is left for a worker that has them.
   */
  readonly rulesGeneration?: () => number;
  /**
   * When the jobs' connection to Redis last became ready (epoch ms; at start, or back after an
   * outage): a call's outcome may still wait in the webhook spool shortly after (decideFallback).
   */
  readonly redisReadySince?: () => number | undefined;
  /**
   * Whether this worker's webhook spool (WEBHOOK_SPOOL_DIR) holds webhooks taken while Redis was
   * away and not handled yet: a STOP, a keypad 9 or an unsubscribe among them must be read before
   * anything is sent.
   */
  readonly spoolWaiting?: () => Promise<boolean>;
  readonly random: () => number;
  /** A span per delivery attempt, linked to its purchase's intake; absent when tracing is off. */
  readonly tracing?: DeliveryTracing;
}

/** The parts of a BullMQ job delivery uses. */
export type DeliveryJob = Pick<
  Job<FollowUpJobData>,
  "data" | "id" | "timestamp" | "delay" | "opts" | "moveToDelayed"
>;

/** How a delivery job ended, as returned to BullMQ and counted. */
export type DeliveryOutcome =
  /**
   * The provider's message id, which the job keeps a day: none when the customer was erased while
   * the message was on its way (the erasure takes provider ids out of everything else).
   */
  | { readonly outcome: "sent"; readonly id?: string }
  | { readonly outcome: "skipped"; readonly code: string }
  | { readonly outcome: "already-handled"; readonly state: string };

/**
 * Spread of the retries of jobs denied a send slot together, so they do not all ask again at once;
 * small, because the denial already says when a slot comes within reach.
 */
const RATE_RETRY_JITTER_MS = 250;

/**
 * The shortest wait of a thank-you that joined another's while that one has not gone: without
 * it, a member whose leader's job waits past its due time would run again and again at once.
 */
const JOINED_RECHECK_MS = 60_000;

/**
 * How long past the end of its leader's grace period a joined thank-you still waits on a leader's
 * that is scheduled (its job lost: no worker would send it then, the send guard skips it as past
 * due): the wait behind it, and an hour for a grace period of whole days across a clock change.
 * On a leader's still `sending`, as long past the later of that and its claim plus the send
 * lease: a live send ends within its lease, and a run of its job that takes it over (a stalled
 * job's, within JOB_LOCK_MS) claims it anew or, past the grace end, skips it as past due.
 */
const JOINED_GIVE_UP_MARGIN_MS = COALESCED_AFTER_MS + 3600 * 1000;

/** The latest follow-up sent to a customer is remembered for the attribution window and this. */
const SENT_MEMORY_SLACK_MS = 24 * 3600 * 1000;

/** How long the customer's latest sent follow-up is remembered: the attribution window and a day. */
function sentMemoryMs(rules: RuleSet): number {
  return rules.attribution.window.toMillis() + SENT_MEMORY_SLACK_MS;
}

/** How long an SMS sid is kept to file Twilio's status callbacks and replies against its step. */
const SMS_REFERENCE_MS = 60 * 24 * 3600 * 1000;

/**
 * Processes one due follow-up. This is the single place that decides what a failure means:
 * transient → retry later (moved back to delayed, counted in the step record), permanent or
 * misconfigured → fail now with the reason. Deferrals (send window, rate limit) never use up an
 * attempt. The step record's atomic claim keeps a redelivered job from sending twice. With
 * tracing on, each attempt is a trace of its own (see traceDelivery).
 */
/**
 * How long a worker on older rules leaves a step of newer rules before it looks again, at least:
 * then half as long as the step is late, so that rules reverted to an older generation's content
 * (no worker has the step's rule any more) cost a few looks, not one every half minute.
 */
const NEWER_RULES_WAIT_MS = 30_000;
/**
 * How long a step waits while the webhook spool holds webhooks not handled yet: about the
 * spool's round (SPOOL_REPLAY_INTERVAL_MS), which replays them within seconds of Redis coming back.
 */
const SPOOL_WAIT_MS = 5_000;

/**
 * Until when to leave a step whose rule this worker's rules lack, when its purchase was planned
 * under newer rules (a rolling deploy, or a reload that has not reached this worker yet): a worker
 * with them sends it. Not beyond the step's grace period, so that rules reverted to an older
 * generation's content end it; undefined when the step is to be skipped now.
 */
async function newerRulesWait(
  deps: Pick<DeliveryDeps, "store" | "rulesGeneration">,
  eventId: string,
  record: StepRecord | undefined,
  event: GuardEvent,
  dueAt: number,
  rules: RuleSet,
  nowMs: number,
): Promise<number | undefined> {
  if (!deps.rulesGeneration) return undefined;
  const planned = await deps.store.generationOf(eventId);
  if (planned === undefined || planned <= deps.rulesGeneration()) return undefined;
  // In calendar days of the customer's zone, as the send guard counts it.
  const graceEnds = record?.kind
    ? graceEnd({ dueAt, graceEndsAt: record.graceEndsAt, event }, record.kind, rules).toMillis()
    : (record?.graceEndsAt ?? dueAt);
  const wait = Math.max(NEWER_RULES_WAIT_MS, (nowMs - dueAt) / 2);
  return nowMs < graceEnds ? Math.min(graceEnds, nowMs + wait) : undefined;
}

export function createDeliveryProcessor(deps: DeliveryDeps) {
  const deliver = createDelivery(deps);
  const run = async (
    job: DeliveryJob,
    token: string | undefined,
    notes: DeliveryNotes,
  ): Promise<DeliveryOutcome> => {
    const progress: RunProgress = {};
    try {
      return await deliver(job, token, notes, progress);
    } catch (error) {
      if (error instanceof DelayedError || error instanceof UnrecoverableError) throw error;
      notes.outcome = "error";
      notes.code = error instanceof Error ? error.name : "unknown";
      // Redis hiccups and bugs: try again later like a transient send failure. If even that
      // fails, the job's lock lapses and BullMQ's stalled check hands it to a worker again.
      const now = deps.clock().toMillis();
      const retryAt = now + deps.retry.delayMs(1);
      deps.logger.error({ err: error, jobId: job.id }, "delivery error; will retry");
      // Claimed but not handed to the provider: nothing went out, so the step waits as scheduled
      // (left `sending`, the retry would wait out the lease and count a takeover, a duplicate).
      if (progress.claimedDueAt !== undefined && !progress.handedOver)
        await deps.store
          .transition(
            job.data.e,
            job.data.s,
            ["sending"],
            { state: "scheduled", postponed: { until: retryAt, code: "retry" } },
            now,
            undefined,
            progress.claimedDueAt,
          )
          .catch(() => undefined);
      await job.moveToDelayed(retryAt, token);
      throw new DelayedError("unexpected error");
    }
  };
  const { tracing } = deps;
  return tracing
    ? (job: DeliveryJob, token?: string) =>
        traceDelivery(tracing, deps.shard, job, (notes) => run(job, token, notes))
    : (job: DeliveryJob, token?: string) => run(job, token, {});
}

/**
 * Runs one delivery attempt in a span of its own: the root of a new trace (the purchase's intake
 * may be months old and on another worker), linked to the intake span named in the purchase's
 * record. What the attempt noted on its way (step, attempt, outcome, code) becomes attributes.
 */
async function traceDelivery(
  tracing: DeliveryTracing,
  shard: number,
  job: DeliveryJob,
  attempt: (notes: DeliveryNotes) => Promise<DeliveryOutcome>,
): Promise<DeliveryOutcome> {
  const startedAt = Date.now();
  // Without the record's trace (planned while tracing was off, or Redis away) the span has no link.
  const intake = await tracing.intakeTraceOf(job.data.e).catch(() => undefined);
  const span = tracing.traces.startDelivery(
    {
      "messaging.system": "bullmq",
      "messaging.destination.name": FOLLOW_UPS_QUEUE,
      "followups.event.id_hash": tracing.traces.hashId(job.data.e),
      "followups.step.id": job.data.s,
      "followups.shard": shard,
    },
    intake,
    startedAt,
  );
  const notes: DeliveryNotes = {};
  try {
    return await attempt(notes);
  } catch (error) {
    if (notes.outcome === "failed" || notes.outcome === "error") span.fail(notes.code ?? "error");
    else if (!(error instanceof DelayedError)) span.fail("error");
    throw error;
  } finally {
    span.setAttributes(deliveryAttributes(notes));
    span.end();
  }
}

/** What a send leaves to write once its step is `sent` (bookkeepSent). */
interface SentBookkeeping {
  readonly eventId: string;
  readonly stepId: string;
  readonly followUpId: string;
  readonly customerId: string;
  readonly channel: Channel;
  readonly kind: string;
  readonly ruleId: string;
  readonly providerId: string;
  /** When it was sent (epoch ms). */
  readonly at: number;
  /** The address it went to; for an SMS, its keyed hash (recipientMember) when known. */
  readonly recipient: string;
  readonly recipientMember?: string;
  /** The discount code it carried (StepRecord.codeHash). */
  readonly codeHash?: string;
}

/**
 * The bookkeeping after a send, every write of it idempotent: the message's reference (replies
 * and delivery reports find their step by it; an SMS also marks its number as texted), a call's
 * binding to its words, the check-in's note, and last the customer's latest sent together with
 * the end of the step's mark (FollowUpStore.settleSent). A run that fails midway (a Redis error)
 * leaves the step marked, and the job's next run does it again (redoBookkeeping).
 */
async function bookkeepSent(
  deps: DeliveryDeps,
  rules: RuleSet,
  sent: SentBookkeeping,
): Promise<"erased" | undefined> {
  const { eventId, stepId, channel, providerId } = sent;
  // A message's reference names its step: kept no longer than the purchase's record, where
  // erasure finds its id (with a short RECORD_RETENTION_DAYS the record ends first).
  const recordEnds = await deps.store.recordExpiresAt(eventId);
  if (channel === "email") {
    await deps.smsReferences.rememberEmail(
      providerId,
      { eventId, stepId, shard: deps.shard },
      SMS_REFERENCE_MS,
      recordEnds,
    );
  } else if (channel === "voice") {
    // A call is not a text: the number's first SMS (a fallback) still carries the opt-out line.
    await deps.calls.bind(sent.followUpId, providerId);
  }
  const member =
    channel === "sms"
      ? (sent.recipientMember ?? (await deps.suppressions.addressMember(sent.recipient)))
      : undefined;
  const early =
    member === undefined
      ? []
      : await deps.smsReferences.rememberSms(
          providerId,
          member,
          { eventId, stepId, shard: deps.shard, kind: sent.kind },
          SMS_REFERENCE_MS,
          sent.at,
          recordEnds,
        );
  await noteCheckIn(deps.history, rules, {
    customerId: sent.customerId,
    eventId,
    kind: sent.kind,
    outcome: "sent",
    at: sent.at,
  });
  // Twilio's statuses that came before the reference, applied as they came, before the mark goes:
  // a run that fails midway leaves them kept, and the job's next run applies them again (once).
  // Each is dated no earlier than the send as recorded (they came while Twilio's answer was on its
  // way): the step's timeline and the ledger's hours never have it delivered before it was sent.
  for (const status of early)
    await deps.smsStatus?.({
      messageSid: providerId,
      ...status,
      receivedAt: Math.max(status.receivedAt, sent.at),
    });
  const settled = await deps.store.settleSent(
    eventId,
    stepId,
    sent.customerId,
    { eventId, stepId, channel, kind: sent.kind, ruleId: sent.ruleId, at: sent.at },
    sentMemoryMs(rules),
  );
  if (early.length > 0) await deps.smsReferences.dropEarlyStatuses(providerId);
  if (settled !== "erased") return undefined;
  // A text Twilio reported delivered (or undelivered) before any `canceled` or `failed` went
  // out: its charge stays (the first final status stays, note-sms-status.lua).
  const firstFinal = early.find(
    ({ status }) => DELIVERY_SETTLED.has(status) || status === "canceled" || status === "failed",
  );
  await forgetSent(deps, sent, member, !DELIVERY_SETTLED.has(firstFinal?.status ?? ""));
  return settled;
}

/**
 * The customer was erased while their message was on its way: the erasure found the step being
 * sent, and could not yet see what the send would write. settleSent scrubbed the step's provider
 * ids and code; this removes the rest the bookkeeping wrote (the message's reference, a check-in
 * SMS's latest-check-in entry, the call's words, how their check-ins ended), keeps an SMS's
 * charge id for its give-back (keepErasedCharge) and revokes the code the message carried, so an
 * erasure at the moment of a send leaves what one a moment later would.
 */
async function forgetSent(
  deps: DeliveryDeps,
  sent: SentBookkeeping,
  member: string | undefined,
  chargeOpen: boolean,
): Promise<void> {
  if (sent.channel === "voice") await deps.calls.forget(sent.followUpId);
  else
    await deps.smsReferences.forgetSent(
      sent.channel,
      sent.providerId,
      member,
      sent.kind === "check-in",
    );
  // Its charge, by the job it was charged under: a `canceled` or `failed` Twilio reports after
  // the reference is gone still gives it back (customer-feedback.ts smsStatus); not once another
  // final status came first (`chargeOpen` false), as erasure keeps none then either.
  if (sent.channel === "sms" && chargeOpen)
    await deps.smsReferences.keepErasedCharge(sent.providerId, sent.followUpId);
  if (sent.codeHash) await deps.codes.revokeByHash(sent.codeHash, sent.at);
  await deps.history.forgetCheckIns(sent.customerId);
}

/**
 * A run of this job sent the step and then failed before its bookkeeping was done (its record
 * is still marked): does it now, from what the record and the purchase say, and counts the send
 * the failed run did not count.
 */
async function redoBookkeeping(
  deps: DeliveryDeps,
  log: Logger,
  notes: DeliveryNotes,
  found: {
    readonly eventId: string;
    readonly stepId: string;
    readonly followUpId: string;
    readonly record: StepRecord;
    readonly event: PurchaseCompleted;
    readonly now: number;
  },
): Promise<DeliveryOutcome> {
  const { record, event } = found;
  const rules = deps.rules();
  const labels = stepLabels(rules, found.stepId, record);
  Object.assign(notes, labels, {
    outcome: "already-handled",
    code: "sent",
  } satisfies DeliveryNotes);
  const channel = CHANNELS.find((known) => known === labels.channel);
  const recipient = channel === "email" ? event.customer.email : event.customer.phone;
  const at = record.changedAt ?? found.now;
  if (!channel || record.providerId === undefined || recipient === undefined) {
    // Nothing to file the message under: only the customer's latest sent and the mark remain.
    log.warn({ channel: labels.channel }, "bookkeeping after the send cannot be redone in full");
    await deps.store.settleSent(
      found.eventId,
      found.stepId,
      event.customer.id,
      { eventId: found.eventId, stepId: found.stepId, ...labels, at },
      sentMemoryMs(rules),
    );
    return { outcome: "already-handled", state: "sent" };
  }
  await bookkeepSent(deps, rules, {
    eventId: found.eventId,
    stepId: found.stepId,
    followUpId: found.followUpId,
    customerId: event.customer.id,
    channel,
    kind: labels.kind,
    ruleId: labels.ruleId,
    providerId: record.providerId,
    at,
    recipient,
    ...(record.codeHash !== undefined && { codeHash: record.codeHash }),
  });
  deps.metrics.sent.inc({ channel, kind: labels.kind });
  log.info({ channel }, "bookkeeping after the send redone");
  return { outcome: "already-handled", state: "sent" };
}

/** How far one run got, for its error handling: whether it claimed the step and handed it over. */
interface RunProgress {
  /** Set once the run claimed the step (`sending`): the step's due time. */
  claimedDueAt?: number;
  /** Set as the message goes to the channel: from then on it may have reached the customer. */
  handedOver?: boolean;
}

function createDelivery(deps: DeliveryDeps) {
  return async (
    job: DeliveryJob,
    token: string | undefined,
    notes: DeliveryNotes,
    progress: RunProgress,
  ): Promise<DeliveryOutcome> => {
    const { e: eventId, s: stepId } = job.data;
    const followUpId = job.id ?? "";
    const log = deps.logger.child({ eventId, stepId, jobId: followUpId });
    const now = deps.clock();
    const nowMs = now.toMillis();
    // The step's state first: a redelivered job of a finished step is done, whatever else is gone.
    // Read with the purchase in one go; `lastStep` scrubs the purchase with the step's last
    // state change when no other step of it is pending.
    const view = await deps.store.sendView(eventId, stepId);
    const record = view.record;
    /**
     * Puts the job back to wait until `until`; with a `code`, the step's record notes it too, so
     * the customer's timeline shows when it is tried next and why (not for short waits: a send
     * slot, another worker's lease; a retry notes it with its state change).
     */
    const postpone = async (until: number, why: string, code?: PostponeCode): Promise<never> => {
      // A retry noted its failure's code already; other deferrals say why (fixed phrases).
      notes.outcome ??= "deferred";
      notes.code ??= why;
      log.debug({ until: new Date(until).toISOString(), why }, "follow-up postponed");
      const noted = record?.postponed;
      if (code && until > nowMs && (noted?.until !== until || noted.code !== code)) {
        // Only operators read the note: failing to write it does not change the deferral.
        await deps.store
          .notePostponed(eventId, stepId, until, code)
          .catch((error: Error) =>
            log.warn({ error: error.name, message: error.message }, "postponement not noted"),
          );
      }
      await job.moveToDelayed(until, token);
      throw new DelayedError(why);
    };
    if (view.unreadableStep) {
      // A newer version's record during a rolling deploy (or a rollback), or damaged bytes: its
      // state is unknown (it may be sent already), so nothing is sent or written; the job waits
      // for a worker that can read it. Said by ids and the record's length only.
      log.warn(
        { recordLength: view.unreadableStep.recordLength, lookAgainInMs: UNREADABLE_STEP_WAIT_MS },
        "step record this version cannot read (a newer version's, or damaged): not sent; looked at again later",
      );
      return postpone(nowMs + UNREADABLE_STEP_WAIT_MS, "unreadable step record");
    }
    if (record?.state === "sent" && record.bookkeepingPending && view.event)
      return redoBookkeeping(deps, log, notes, {
        eventId,
        stepId,
        followUpId,
        record,
        event: view.event,
        now: nowMs,
      });
    if (record && record.state !== "scheduled" && record.state !== "sending") {
      // The run that ended the step may have failed before it gave back the customer's cap slot
      // (a Redis error just after the state change): a message that reached no one holds none.
      const capped = CHANNELS.find((known) => known === record.channel);
      if (record.state !== "sent" && capped && view.event)
        await deps.caps.release(capped, view.event.customer.id, followUpId);
      Object.assign(notes, {
        outcome: "already-handled",
        code: record.state,
      } satisfies DeliveryNotes);
      log.info({ state: record.state }, "follow-up already handled");
      return { outcome: "already-handled", state: record.state };
    }
    // A job BullMQ handed out again while its first worker still sends (a stalled lock): that
    // worker decides; nothing here may skip or cancel the step under it.
    const senderLeaseEnds = (record?.changedAt ?? 0) + deps.sendLeaseMs;
    if (record?.state === "sending" && senderLeaseEnds > nowMs)
      return postpone(senderLeaseEnds, "another worker is sending");
    /**
     * The states this run may skip the step from: before it claims the step, scheduled, or being
     * sent by a worker whose lease ran out (not a live sender's, which another run of this job
     * BullMQ handed out twice may meet meanwhile); once it has claimed it, its own `sending`.
     */
    let claimedHere = false;
    const unclaimed = (): StepStateFilter[] =>
      claimedHere ? ["sending"] : ["scheduled", abandonedSending(nowMs, deps.sendLeaseMs)];
    // Without a record, the job's planned time: the delay it was made with (BullMQ sets
    // `job.delay` to 0 once the job is due, and to the backoff on a retry).
    const dueAt = record?.dueAt ?? job.timestamp + (job.opts.delay ?? job.delay);
    const rules = deps.rules();
    const labels = stepLabels(rules, stepId, record);
    Object.assign(notes, labels);
    if (view.unreadable) {
      return unreadablePurchase(deps, log, {
        job,
        token,
        notes,
        record,
        labels,
        dueAt,
        from: unclaimed(),
        errorName: view.unreadable.errorName,
        now: nowMs,
      });
    }
    const event = view.event;
    if (!event) {
      Object.assign(notes, { outcome: "skipped", code: "event-missing" } satisfies DeliveryNotes);
      log.warn("event record expired or missing; follow-up dropped");
      await deps.store.transition(
        eventId,
        stepId,
        unclaimed(),
        {
          state: "skipped",
          reason: { code: "event-missing", text: "the purchase record is gone" },
        },
        nowMs,
        // Counted like any skip, so the step leaves its due day's pending count.
        { outcome: "skipped", ...labels, reason: "event-missing" },
        dueAt,
      );
      deps.metrics.skipped.inc({
        channel: labels.channel,
        kind: labels.kind,
        reason: "event-missing",
      });
      return { outcome: "skipped", code: "event-missing" };
    }
    // A STOP, keypad 9 or unsubscribe taken while Redis was away waits in the spool until its
    // next round: a step due meanwhile (Redis just back) waits for it, rather than reach someone
    // who has opted out.
    if (await deps.spoolWaiting?.())
      return postpone(
        nowMs + SPOOL_WAIT_MS,
        "webhooks taken while Redis was away are not handled yet",
      );
    const [{ suppressed, order }, latestConsent] = await Promise.all([
      optOutsAndOrder(deps, event, rules, stepId),
      deps.history.latestConsent(event.customer.id),
    ]);
    const decision = decideSend({
      latestConsent,
      suppressedChannels: suppressed.all,
      marketingSuppressedChannels: suppressed.marketing,
      event,
      stepId,
      dueAt,
      ...(record?.graceEndsAt !== undefined && { graceEndsAt: record.graceEndsAt }),
      rules,
      now,
      ...(deps.unavailableChannels && { unavailableChannels: deps.unavailableChannels }),
    });
    if (decision.action === "defer")
      return postpone(decision.until.toMillis(), decision.reason, "send-window");
    const skip = async (
      code: string,
      text: string,
      stepLabelsNow: StepLabels,
    ): Promise<DeliveryOutcome> => {
      const { channel, kind } = stepLabelsNow;
      const changed = await deps.store.transition(
        eventId,
        stepId,
        unclaimed(),
        { state: "skipped", reason: { code, text } },
        nowMs,
        { outcome: "skipped", ...stepLabelsNow, reason: code },
        dueAt,
        view.lastStep?.(),
      );
      if (!changed) {
        // Another run got there first (BullMQ handed the job out twice): a live sender decides,
        // and a step it finished keeps its state, its cap slot and its count.
        const found = (await deps.store.stepRecords(eventId, [stepId])).get(stepId);
        if (found?.state === "sending")
          return postpone(
            (found.changedAt ?? nowMs) + deps.sendLeaseMs,
            "another worker is sending",
          );
        const state = found?.state ?? "missing";
        Object.assign(notes, { outcome: "already-handled", code: state } satisfies DeliveryNotes);
        return { outcome: "already-handled", state };
      }
      // A retried step may hold a cap slot from its earlier attempt; a skipped one never reached anyone.
      if (channel !== "unknown")
        await deps.caps.release(channel as Channel, event.customer.id, followUpId);
      deps.metrics.skipped.inc({ channel, kind, reason: code });
      Object.assign(notes, stepLabelsNow, { outcome: "skipped", code } satisfies DeliveryNotes);
      await noteCheckIn(deps.history, rules, {
        customerId: event.customer.id,
        eventId,
        kind,
        outcome: "skipped",
        code,
        at: nowMs,
      });
      log.info({ code }, "follow-up skipped");
      return { outcome: "skipped", code };
    };
    if (decision.action === "skip" && decision.code === "rule-removed") {
      const until = await newerRulesWait(deps, eventId, record, event, dueAt, rules, nowMs);
      if (until !== undefined)
        return postpone(until, "planned under newer rules than this worker's");
    }
    if (decision.action === "skip") return skip(decision.code, decision.reason, labels);
    const { rule, step, zone } = decision;
    const sendLabels = { ...labels, channel: step.channel, kind: step.kind };
    Object.assign(notes, sendLabels);
    const metricLabels = { channel: step.channel, kind: step.kind };
    if (step.fallbackOf !== undefined) {
      // A fallback goes out only when its call did not reach the customer.
      const callStepId = stepIdOf(rule, { id: step.fallbackOf });
      const call = (await deps.store.stepRecords(eventId, [callStepId])).get(callStepId);
      const fallback = decideFallback(
        call,
        nowMs,
        step.fallbackAfter?.toMillis() ?? 0,
        deps.redisReadySince?.(),
      );
      if (fallback.action === "wait")
        return postpone(fallback.until, "the call is not over", "call-not-over");
      if (fallback.action === "skip") return skip(fallback.code, fallback.reason, sendLabels);
    }

    // How the purchase was filed (its record says, read with it) decides, not whether the rules
    // coalesce now: a group formed under earlier rules is seen through. A thank-you not filed so
    // (no `ty`) is looked at only while a rule coalesces: filed by key layout 4 and before (in
    // the customer's older group key), or a leader filed before leaders were (`lead`). So a
    // purchase that was never filed costs no round trip here.
    const thankYou = step.kind === "thank-you";
    const coalescing = coalescesAny(rules);
    const unfiledButCoalescing = thankYou && view.filed === undefined && coalescing;
    if (thankYou && (view.filed?.startsWith("joined\n") || unfiledButCoalescing)) {
      // A thank-you that joined an earlier purchase's goes only if that one never went.
      const joined = await joinedThankYou(deps, event.customer.id, eventId, {
        ...(view.filed !== undefined && { filed: view.filed }),
        graceMs: rules.gracePeriods["thank-you"].toMillis(),
        leaseMs: deps.sendLeaseMs,
        stepId,
        now: nowMs,
      });
      if (joined?.action === "skip") return skip("coalesced", joined.reason, sendLabels);
      if (joined?.action === "wait")
        return postpone(
          // Not at once again while the leader's job waits (a retry's backoff, say): a minute on.
          Math.max(nowMs + JOINED_RECHECK_MS, joined.until),
          "the thank-you it joined has not gone yet",
          "thank-you-joined",
        );
      if (joined?.action === "lost")
        log.warn(
          { leaderEventId: joined.leaderEventId },
          "the thank-you this one joined is still scheduled past its grace period (its job lost?); sent on its own",
        );
      if (joined?.action === "stuck") {
        // Its message may have reached the customer, listing this order: counted as decided (the
        // step's record counts it too), once, since this one is filed alone now.
        if (joined.possibleDuplicate)
          deps.metrics.possibleDuplicates.inc({ cause: "stuck-leader" });
        log.warn(
          { leaderEventId: joined.leaderEventId, possibleDuplicate: joined.possibleDuplicate },
          "the thank-you this one joined is still being sent long past its grace period (its worker lost mid-send, its job gone?); sent on its own",
        );
      }
    }
    // A leader closes its group and records what it lists (nothing when no rule coalesces now:
    // the purchases that joined then get their own), whatever the rules say.
    const leads = thankYou && (view.filed === "lead" || unfiledButCoalescing);

    // The customer's cap before a send slot: a step capped (skipped, or put off) takes no slot
    // of the channel's rate from the sends behind it. A kind exempt from the caps (a thank-you,
    // by default) neither waits for room nor uses any.
    const cap =
      rules.whenCapped[step.kind] === "exempt"
        ? { allowed: true as const }
        : await deps.caps.take(
            step.channel,
            event.customer.id,
            followUpId,
            rules.frequencyCaps[step.channel],
            nowMs,
          );
    if (!cap.allowed) {
      if (rules.whenCapped[step.kind] === "defer")
        return postpone(cap.freeAt, "frequency cap", "frequency-cap");
      return skip("capped", `the customer's ${step.channel} frequency cap is reached`, sendLabels);
    }
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

    const claim = await deps.store.claim(eventId, stepId, nowMs, deps.sendLeaseMs, {
      ifCancelled: { outcome: "cancelled", ...sendLabels, reason: "refunded" },
      dueAt,
    });
    if (!claim.claimed) {
      const found = claim.record;
      if (found.state === "sending")
        return postpone((found.changedAt ?? nowMs) + deps.sendLeaseMs, "another worker is sending");
      // A sent step keeps its place under the cap; anything else never reached the customer.
      if (found.state !== "sent")
        await deps.caps.release(step.channel, event.customer.id, followUpId);
      if (found.state === "cancelled")
        deps.metrics.cancelled.inc({ ...metricLabels, reason: found.reason?.code ?? "" });
      Object.assign(notes, {
        outcome: "already-handled",
        code: found.state,
      } satisfies DeliveryNotes);
      return { outcome: "already-handled", state: found.state };
    }
    claimedHere = true;
    progress.claimedDueAt = claim.record.dueAt;
    /** Back to scheduled after a transient failure with attempts left, retried after the backoff. */
    const retryLater = async (
      error: SendFailure,
      doneMs: number,
      attempts: number,
      /** The discount code the failed send carried (StepPatch.codeHash). */
      sentCode?: { readonly codeHash: string },
    ): Promise<never> => {
      // Twilio's Retry-After, when it sent one, is waited at least (up to the longest backoff).
      const retryAt = doneMs + retryDelayMs(deps.retry, attempts, error.retryAfterMs);
      await deps.store.transition(
        eventId,
        stepId,
        ["sending"],
        {
          state: "scheduled",
          attempts,
          reason: failureReason(error),
          postponed: { until: retryAt, code: "retry" },
          ...sentCode,
          // The provider may have accepted it: the retry is a possible duplicate, counted like a takeover.
          ...(error.uncertain && { takeovers: claim.record.takeovers + 1 }),
        },
        doneMs,
        undefined,
        claim.record.dueAt,
      );
      deps.metrics.retried.inc({ channel: step.channel });
      Object.assign(notes, {
        outcome: "retry",
        code: failureReason(error).code,
      } satisfies DeliveryNotes);
      if (error.uncertain) deps.metrics.possibleDuplicates.inc({ cause: "uncertain-handover" });
      log.warn(
        { code: error.code, attempts, retryAt: new Date(retryAt).toISOString() },
        "transient failure; will retry",
      );
      return postpone(retryAt, "transient failure");
    };
    notes.attempt = claim.record.attempts + 1;
    if (claim.takenOver) {
      notes.takenOver = true;
      deps.metrics.possibleDuplicates.inc({ cause: "takeover" });
      log.warn(
        { takeovers: claim.record.takeovers },
        "previous sender vanished mid-send; sending again (possible duplicate)",
      );
    }
    // A rules edit after the step was planned may send it on another channel: its record says so.
    const channelChange =
      claim.record.channel !== undefined && claim.record.channel !== step.channel
        ? { channel: step.channel }
        : {};
    const attempt: Attempt = {
      eventId,
      stepId,
      record: claim.record,
      labels: sendLabels,
      channel: step.channel,
      customerId: event.customer.id,
      followUpId,
      notes,
      ...(view.lastStep && { lastStep: view.lastStep }),
      channelChange,
    };

    // A phone number is known by its keyed hash: whether it was texted before, and for the
    // provider's later reports.
    const recipientMember =
      step.channel !== "email" && event.customer.phone
        ? await deps.suppressions.addressMember(event.customer.phone)
        : undefined;
    const firstSmsToNumber =
      step.channel === "sms" &&
      recipientMember !== undefined &&
      !(await deps.smsReferences.textedBefore(recipientMember));
    // A coalescing thank-you thanks for the customer's purchases that joined it, and closes its group.
    const alsoThanked = leads
      ? await joinedOrders(deps, log, event, eventId, stepId, !coalescing, rules)
      : [];
    let message: OutgoingMessage;
    try {
      message = await deps.compose({
        firstSmsToNumber,
        // As the customer has it now: items returned since are left out, the total is what stays.
        event: afterRefunds(event, order).event,
        ...(alsoThanked.length > 0 && { alsoThanked }),
        rule,
        step,
        stepId,
        followUpId,
        // Not the job's id: a resend (`…-r1`) or retry (`…-q1`) carries the step's same code
        // (a job of the layout before keeps its own, which its earlier attempts carried).
        discountId: discountIdOf(followUpId, eventId, stepId),
        dueAt: claim.record.dueAt,
        zone,
        rules,
      });
    } catch (error) {
      const reason = `template ${step.template} failed to render: ${(error as Error).message}`;
      // \`check\` and every worker's start render each template against the largest order the
      // event contract allows within the limit, so a render that runs out of time here met a busy
      // machine (a stall, a garbage collection), not a bad template: tried again later.
      if (error instanceof RenderTimeLimitError) {
        const failure: SendFailure = { kind: "transient", code: "render-time", reason };
        const attempts = claim.record.attempts + 1;
        if (attempts < deps.retry.maxAttempts)
          return retryLater(failure, deps.clock().toMillis(), attempts);
        return fail(deps, log, attempt, nowMs, failure, attempts);
      }
      return fail(deps, log, attempt, nowMs, { kind: "permanent", code: "render", reason });
    }
    // An SMS costs its segments now; a call is charged for its minutes when it ends.
    let charge: Charge | undefined;
    if (message.channel === "sms" || message.channel === "voice") {
      const cost =
        message.channel === "sms"
          ? (costOf(rules.spend, "sms", message.to, countSmsSegments(message.text))?.micros ?? 0)
          : 0;
      charge = await chargeSpend(
        deps.spend,
        rules,
        { channel: message.channel, id: followUpId, micros: cost },
        step.purpose,
        nowMs,
      );
      if (!charge.charged) return skip("budget-reached", charge.reason, sendLabels);
    }
    const giveBack = async () => {
      if (charge?.charged && charge.micros > 0 && message.channel !== "email")
        await deps.spend.spend.giveBack(message.channel, charge.month, followUpId);
    };
    // The code it carries, noted in the step's record by the state change the send leads to
    // (sent, a retry, failed): erasure finds it there and revokes it.
    const sentCode = message.offer && { codeHash: discountCodeHash(message.offer.code) };
    if (message.offer) {
      // Stored before it goes out: a customer may be at the till minutes later.
      await deps.codes.issue(
        message.offer,
        message.offer.expiresAt,
        {
          eventId,
          stepId,
          shard: deps.shard,
          customer: await deps.suppressions.customerMember(event.customer.id),
        },
        nowMs,
        rules.attribution.window.toMillis(),
      );
      // Also in the customer's history, which outlives the record: erasure finds it there too.
      await deps.history.noteCode(
        event.customer.id,
        discountCodeHash(message.offer.code),
        message.offer.expiresAt + rules.attribution.window.toMillis(),
        nowMs,
      );
    }
    // A call an earlier attempt placed after all (its request failed midway, or its worker died),
    // known by its webhooks or found in Twilio's Calls list: that call is this step's; a second
    // one would ring a customer who may have answered the first.
    const earlier =
      message.channel === "voice" ? await deps.calls.earlierAttempt(followUpId) : undefined;
    const found =
      earlier?.callSid !== undefined
        ? { id: earlier.callSid }
        : await findPlaced(deps, log, message, followUpId, earlier);
    if ("failed" in found) {
      // Not knowing whether the earlier attempt's call rings, this attempt places none: it fails
      // as a transient failure (tried again after the backoff, counted in the step's attempts),
      // so that a Twilio outage never rings a customer twice.
      log.warn(
        { code: found.failed.code },
        "could not ask Twilio whether an earlier attempt's call was placed: no call placed now, the attempt counts as a transient failure",
      );
      const doneMs = deps.clock().toMillis();
      const attempts = claim.record.attempts + 1;
      await giveBack();
      if (found.failed.kind === "transient" && attempts < deps.retry.maxAttempts)
        return retryLater(found.failed, doneMs, attempts, sentCode);
      return fail(deps, log, attempt, doneMs, found.failed, attempts, sentCode);
    }
    const placedBefore = found.id;
    if (message.channel === "voice" && message.call && recipientMember && !placedBefore) {
      // Stored before the call is placed: Twilio asks for the words as soon as it is answered.
      const price = unitPrice(rules.spend, "voice", message.to);
      await deps.calls.prepare(
        followUpId,
        {
          eventId,
          stepId,
          shard: deps.shard,
          recipient: recipientMember,
          // Its keyed hash (HMAC, no round trip), as the suppression lists hold it.
          customer: await deps.suppressions.customerMember(event.customer.id),
          // A marketing call is not played to one who opted out of voice offers as it rang.
          purpose: step.purpose,
          text: message.text,
          ...message.call,
          ...(price.ok && { minutePriceMicros: price.micros }),
        },
        earlier?.placingSince ?? nowMs,
      );
    }
    const untilSlot = slotAt - deps.clock().toMillis();
    if (untilSlot > 0) await sleep(untilSlot);
    // A STOP (or any opt-out), or a checkout withdrawing consent, handled since the guard read
    // them, while the message was rendered or waited for its slot, stops it here: nothing goes
    // out, its code is revoked.
    const refused = placedBefore ? undefined : await refusedSince(deps, event, step, rules);
    if (refused) {
      await giveBack();
      if (message.channel === "voice") await deps.calls.forget(followUpId);
      if (sentCode) await deps.codes.revokeByHash(sentCode.codeHash, deps.clock().toMillis());
      return skip(refused.code, refused.reason, sendLabels);
    }
    progress.handedOver = true;
    if (placedBefore)
      log.warn(
        "an earlier attempt's call was placed after all: recorded as the step's, not placed again",
      );
    const result: SendResult = placedBefore
      ? { ok: true, id: placedBefore }
      : await deps.channels[step.channel].send(message);
    const doneMs = deps.clock().toMillis();
    // A call that may have been placed keeps its words: the customer may pick up.
    if (!result.ok && message.channel === "voice" && !result.error.uncertain)
      await deps.calls.forget(followUpId);
    if (result.ok) {
      await recordSent(deps, log, nowMs, () =>
        deps.store.transition(
          eventId,
          stepId,
          ["sending"],
          {
            state: "sent",
            providerId: result.id,
            attempts: claim.record.attempts + 1,
            bookkeepingPending: true,
            ...sentCode,
            ...channelChange,
          },
          doneMs,
          {
            outcome: "sent",
            ...sendLabels,
            // The same code again (a resend after an accepted send): one code, two messages.
            ...(sentCode &&
              claim.record.earlierProviderIds?.length && { codeAgain: true as const }),
          },
          claim.record.dueAt,
          view.lastStep?.(),
        ),
      );
      const erased = await bookkeepSent(deps, rules, {
        eventId,
        stepId,
        followUpId,
        customerId: event.customer.id,
        channel: step.channel,
        kind: step.kind,
        ruleId: rule.id,
        providerId: result.id,
        at: doneMs,
        recipient: message.to,
        ...(recipientMember !== undefined && { recipientMember }),
        ...sentCode,
      });
      deps.metrics.sent.inc(metricLabels);
      notes.outcome = "sent";
      deps.metrics.sendLatency.observe(
        { channel: step.channel },
        Math.max(0, doneMs - claim.record.dueAt) / 1000,
      );
      log.info({ channel: step.channel, kind: step.kind, providerId: result.id }, "follow-up sent");
      return erased ? { outcome: "sent" } : { outcome: "sent", id: result.id };
    }
    const attempts = claim.record.attempts + 1;
    // A failed send cost nothing, unless the provider may have taken it.
    if (!result.error.uncertain) await giveBack();
    if (result.error.optedOut) {
      // A number that opted out of texts has revoked calls too (and the reverse).
      const channels: readonly Channel[] = step.channel === "email" ? ["email"] : PHONE_CHANNELS;
      // Its time first: Twilio says the number's last word to it was STOP, so a START sent before
      // now and replayed from the spool is older.
      if (step.channel !== "email")
        await deps.suppressions.noteOptOutAt({ address: message.to }, doneMs);
      for (const channel of channels) {
        await deps.suppressions.suppress(
          channel,
          { address: message.to },
          {
            entry: { outcome: "optout", channel, kind: "-", ruleId: "-", reason: "provider" },
            now: doneMs,
          },
          "all",
          // Twilio's 21610: the number texted STOP to it, which a texted START undoes.
          "text",
        );
      }
      log.info({ channels }, "recipient opted out at the provider; suppressed");
    }
    if (result.error.kind === "transient" && attempts < deps.retry.maxAttempts)
      return retryLater(result.error, doneMs, attempts, sentCode);
    return fail(deps, log, attempt, doneMs, result.error, attempts, sentCode);
  };
}

/**
 * The call an earlier attempt of the step placed although its request failed, before any of that
 * call's webhooks came: asked of Twilio's Calls list (the voice channel's findPlaced) when the
 * call's record shows an attempt (placingSince) but no call, passing over calls bound to other
 * follow-ups (another purchase's call to the same number: CallScripts.adoptable). A lookup that
 * fails (Twilio down, the request timed out) is this attempt's failure, never a reason to place
 * the call blind: transient (the lookup's own code, never uncertain: a read places nothing),
 * unless Twilio says the settings are wrong (misconfigured, as the call's request would fail).
 */
async function findPlaced(
  deps: DeliveryDeps,
  log: Logger,
  message: OutgoingMessage,
  followUpId: string,
  earlier: { readonly placingSince?: number } | undefined,
): Promise<{ readonly id?: string } | { readonly failed: SendFailure }> {
  const voice = deps.channels.voice;
  if (message.channel !== "voice" || earlier?.placingSince === undefined || !voice.findPlaced)
    return {};
  const found = await voice.findPlaced(message, earlier.placingSince);
  if (!found.ok) {
    const { code, reason, retryAfterMs } = found.error;
    const kind = found.error.kind === "misconfigured" ? "misconfigured" : "transient";
    return {
      failed: {
        kind,
        code,
        reason: `could not read Twilio's Calls list to see whether an earlier attempt's call was placed: ${reason}`,
        ...(retryAfterMs !== undefined && { retryAfterMs }),
      },
    };
  }
  const id = await deps.calls.adoptable(followUpId, found.ids);
  if (id)
    log.warn(
      { providerId: id },
      "Twilio's Calls list has the call an earlier attempt placed although its request failed: recorded as the step's, not placed again",
    );
  else if (found.ids.length > 0)
    log.info(
      { calls: found.ids.length },
      "Twilio's Calls list has only other follow-ups' calls to the number since the earlier attempt began: placing the step's",
    );
  return id ? { id } : {};
}

/** A step's failure reason, ledger reason and metrics label when its purchase cannot be read. */
const UNREADABLE_PURCHASE = "unreadable-purchase";
/**
 * How long a job whose step record this version cannot read waits before it is looked at again:
 * a worker of the version that wrote it takes it meanwhile, if one runs.
 */
const UNREADABLE_STEP_WAIT_MS = 10 * 60_000;

/**
 * A step whose stored purchase cannot be decoded (damaged, or a newer version's format during a
 * rolling deploy, which a newer worker can read): nothing to render from. Tried again with the
 * retries' backoff, counted in the step's attempts, so that a worker that can read it sends it;
 * once the attempts are used up, the step fails as `unreadable-purchase`, counted like any
 * failure, and nothing is sent. Logged by the error's name only: a JSON parser's message quotes
 * the bytes it read, personal data included.
 */
async function unreadablePurchase(
  deps: DeliveryDeps,
  log: Logger,
  at: {
    readonly job: DeliveryJob;
    readonly token: string | undefined;
    readonly notes: DeliveryNotes;
    readonly record: StepRecord | undefined;
    readonly labels: StepLabels;
    readonly dueAt: number;
    /** The states this run may change the step from (not a live sender's `sending`). */
    readonly from: StepStateFilter[];
    readonly errorName: string;
    readonly now: number;
  },
): Promise<DeliveryOutcome> {
  const { job, notes, labels, now } = at;
  const eventId = job.data.e;
  const stepId = job.data.s;
  const attempts = (at.record?.attempts ?? 0) + 1;
  const text = `the stored purchase cannot be read (${at.errorName}); nothing was sent`;
  const last = attempts >= deps.retry.maxAttempts;
  const retryAt = now + deps.retry.delayMs(attempts);
  const changed = await deps.store.transition(
    eventId,
    stepId,
    at.from,
    last
      ? {
          state: "failed",
          attempts,
          reason: {
            code: UNREADABLE_PURCHASE,
            text: `gave up after ${attempts} attempts: ${text}`,
          },
        }
      : {
          state: "scheduled",
          attempts,
          reason: { code: UNREADABLE_PURCHASE, text },
          postponed: { until: retryAt, code: "retry" },
        },
    now,
    last ? { outcome: "failed", ...labels, reason: UNREADABLE_PURCHASE } : undefined,
    at.dueAt,
  );
  if (!changed) {
    // Another run of the job changed it meanwhile: a live sender decides; an ended step is done.
    const found = (await deps.store.stepRecords(eventId, [stepId])).get(stepId);
    if (found?.state === "sending" || found?.state === "scheduled") {
      notes.outcome = "deferred";
      notes.code = "another run changed the step";
      await job.moveToDelayed(
        Math.max(retryAt, (found.changedAt ?? now) + deps.sendLeaseMs),
        at.token,
      );
      throw new DelayedError("another run changed the step");
    }
    const state = found?.state ?? "missing";
    Object.assign(notes, { outcome: "already-handled", code: state } satisfies DeliveryNotes);
    return { outcome: "already-handled", state };
  }
  if (last) {
    deps.metrics.failed.inc({
      channel: labels.channel,
      kind: labels.kind,
      reason: UNREADABLE_PURCHASE,
    });
    Object.assign(notes, { outcome: "failed", code: UNREADABLE_PURCHASE } satisfies DeliveryNotes);
    log.warn(
      { error: at.errorName, attempts },
      "stored purchase cannot be read; follow-up failed, nothing sent",
    );
    throw new UnrecoverableError(`${UNREADABLE_PURCHASE}: gave up after ${attempts} attempts`);
  }
  deps.metrics.retried.inc({ channel: labels.channel });
  Object.assign(notes, { outcome: "retry", code: UNREADABLE_PURCHASE } satisfies DeliveryNotes);
  log.warn(
    { error: at.errorName, attempts, retryAt: new Date(retryAt).toISOString() },
    "stored purchase cannot be read; will retry (a newer worker may read it)",
  );
  await job.moveToDelayed(retryAt, at.token);
  throw new DelayedError(UNREADABLE_PURCHASE);
}

/** The share of the send lease, from the claim, in which a refused `sent` record is tried again. */
const SENT_RECORD_LEASE_SHARE = 0.75;
/** The first wait before trying the `sent` record again; it doubles up to the second. */
const SENT_RECORD_RETRY_MS = 100;
const SENT_RECORD_RETRY_MAX_MS = 2_000;

/**
 * Writes the `sent` state of a message the provider took, trying again while Redis refuses it (a
 * failover's READONLY, a lost connection) for three quarters of the send lease from the claim:
 * until the lease ends no other run takes the step over, and after it one would find the step
 * still `sending` and send the message again. An error after that is thrown as before.
 */
async function recordSent<T>(
  deps: DeliveryDeps,
  log: Logger,
  claimedAt: number,
  write: () => Promise<T>,
): Promise<T> {
  const window = deps.sendLeaseMs * SENT_RECORD_LEASE_SHARE;
  // The waits count too: the clock may stand still (a test's), the waits never do.
  let waited = 0;
  for (let wait = SENT_RECORD_RETRY_MS; ; wait = Math.min(wait * 2, SENT_RECORD_RETRY_MAX_MS)) {
    try {
      return await write();
    } catch (error) {
      const left = Math.min(claimedAt + window - deps.clock().toMillis(), window - waited);
      if (left <= 0) throw error;
      log.warn(
        { error: (error as Error).name, message: (error as Error).message },
        "the provider took the message and Redis refused its sent state; trying again",
      );
      const pause = Math.min(wait, left);
      await sleep(pause);
      waited += pause;
    }
  }
}

/** Whether any rule coalesces thank-yous (only then are there groups to look at). */
function coalescesAny(rules: RuleSet): boolean {
  return rules.rules.some((rule) => rule.coalesce !== undefined);
}

/**
 * Whether a thank-you that joined an earlier purchase's (rules' `coalesce`) is done with: skipped
 * once the leader's went out listing this order, waiting while that one may still go, `lost` (send
 * it, filed alone) when the leader's is still scheduled well past its grace period (with
 * `graceMs`), `stuck` (send it, filed alone; a possible duplicate when the leader's message listed
 * this order) when the leader's is still `sending` well past that and its claim plus `leaseMs`
 * (DELIVERY_LEASE_MS), and undefined (send it) when this purchase leads or stands alone, or the
 * leader's never went. `filed`: its filing as its record holds it, when read already; `stepId`:
 * its thank-you step, whose record counts a possible duplicate.
 */
export async function joinedThankYou(
  deps: Pick<DeliveryDeps, "thankYous">,
  customerId: string,
  eventId: string,
  options: {
    filed?: string;
    graceMs?: number;
    leaseMs?: number;
    stepId?: string;
    now?: number;
  } = {},
): Promise<
  | { action: "skip"; reason: string }
  | { action: "wait"; until: number }
  | { action: "lost"; leaderEventId: string }
  | { action: "stuck"; leaderEventId: string; possibleDuplicate: boolean }
  | undefined
> {
  const joined = await deps.thankYous.decide(customerId, eventId, {
    ...options,
    marginMs: JOINED_GIVE_UP_MARGIN_MS,
  });
  if (joined?.verdict === "coalesced") {
    return {
      action: "skip",
      reason: `thanked in one email with the customer's purchase ${joined.leaderEventId}, shortly before`,
    };
  }
  // Behind the leader's, also when its job waits past its due time (its record says until when).
  if (joined?.verdict === "wait") {
    const { leader } = joined;
    return {
      action: "wait",
      until: Math.max(leader.dueAt, leader.postponed?.until ?? 0) + COALESCED_AFTER_MS,
    };
  }
  if (joined?.verdict === "lost") return { action: "lost", leaderEventId: joined.leaderEventId };
  if (joined?.verdict === "stuck")
    return {
      action: "stuck",
      leaderEventId: joined.leaderEventId,
      possibleDuplicate: joined.listed,
    };
  return undefined;
}

/**
 * The purchases that joined this one's thank-you (store/thank-you-groups.ts), oldest first, as
 * they stand after refunds, without those whose thank-you an operator cancelled (their own is
 * cancelled too: not thanked for at all); closing the group keeps later purchases from joining a
 * sent thank-you.
 * A member not stored (yet) is left out and filed alone, so that its own thank-you goes.
 * A member whose stored purchase cannot be read (damaged, a newer version's format) is left out,
 * logged by event id and error name, and filed as alone: its own thank-you is then not skipped as
 * thanked for, and goes out if a worker can read it (else it fails as `unreadable-purchase`, as
 * any step of such a purchase). Leaving it out rather than holding back the thank-you thanks the
 * customer for what can be read, and promises nothing about the rest. A member filed alone so by
 * an earlier run of this step is left out again, though it may be readable now: its own goes.
 */
async function joinedOrders(
  deps: DeliveryDeps,
  log: Logger,
  event: PurchaseCompleted,
  eventId: string,
  stepId: string,
  listNone: boolean,
  rules: RuleSet,
): Promise<PurchaseCompleted[]> {
  const customerId = event.customer.id;
  const members = await deps.thankYous.close(
    customerId,
    eventId,
    deps.clock().toMillis(),
    stepId,
    listNone,
  );
  const read = await Promise.all(
    members.map(async (memberId) => {
      const [stored, filing] = await Promise.all([
        deps.store.readForSend(memberId),
        deps.thankYous.filingOf(customerId, memberId),
      ]);
      return { memberId, stored, alone: filing?.role === "alone" };
    }),
  );
  const orders: PurchaseCompleted[] = [];
  const leftOut: { memberId: string; errorName: string }[] = [];
  for (const { memberId, stored, alone } of read) {
    if (alone) continue;
    // An operator cancelled its thank-you (`followups cancel` of the step, its order or the
    // customer): not thanked for here, as a returned order is not.
    if (thankYouCancelledByOperator(rules, stored.steps)) continue;
    if (stored.unreadable) {
      leftOut.push({ memberId, errorName: stored.unreadable.errorName });
      continue;
    }
    const member = stored.event;
    if (!member) {
      // Not stored (yet): filed in the group by its intake, which is still to store it (a retry
      // under way), or gone (erased). Filed alone, so that its own thank-you, if it comes, is
      // not skipped as thanked for here; nothing is written for a record that is gone.
      await deps.thankYous.leave(customerId, memberId, eventId);
      continue;
    }
    const refunded = afterRefunds(member, await deps.orders.get(member.orderId));
    if (!refunded.full) orders.push(refunded.event);
  }
  if (leftOut.length > 0) {
    for (const { memberId } of leftOut) await deps.thankYous.leave(customerId, memberId, eventId);
    log.warn(
      {
        leftOut: leftOut.map(({ memberId }) => memberId),
        errors: leftOut.map(({ errorName }) => errorName),
      },
      "thank-you sent without joined purchases whose stored purchase cannot be read; each keeps a thank-you of its own",
    );
  }
  return orders.sort((a, b) => Date.parse(a.occurredAt) - Date.parse(b.occurredAt));
}

/**
 * Whether a purchase's thank-you was cancelled by an operator (reason `operator`) and none of its
 * thank-you steps is still to go or went: a coalesced thank-you then leaves that purchase out.
 * Its other steps do not count: an operator who cancels a check-in only leaves it thanked for.
 */
export function thankYouCancelledByOperator(
  rules: RuleSet,
  steps: ReadonlyMap<string, StepRecord> | undefined,
): boolean {
  let cancelled = false;
  for (const [stepId, record] of steps ?? []) {
    if (stepLabels(rules, stepId, record).kind !== "thank-you") continue;
    if (record.state === "cancelled" && record.reason?.code === "operator") cancelled = true;
    else if (record.state === "scheduled" || record.state === "sending" || record.state === "sent")
      return false;
  }
  return cancelled;
}

/**
 * Whether the customer (or their contact for the step's channel) opted out there, of everything
 * or of offers only, and their order's refunds: one round trip (the same script intake reads
 * them with).
 */
async function optOutsAndOrder(
  deps: Pick<DeliveryDeps, "suppressions" | "orders">,
  event: PurchaseCompleted,
  rules: RuleSet,
  stepId: string,
) {
  const channel = findStep(rules, stepId)?.step.channel;
  const { order, optedOut } = await deps.orders.getWithOptOuts(
    event.orderId,
    await deps.suppressions.optOutQuery(channel ? optOutTargets(event, channel) : []),
  );
  return { suppressed: optedOut, order };
}

/** Whom a step on `channel` must not reach: the customer, by id and by their contact there. */
function optOutTargets(event: PurchaseCompleted, channel: Channel) {
  const address = channel === "email" ? event.customer.email : event.customer.phone;
  return [{ channel, who: { customerId: event.customer.id, ...(address && { address }) } }];
}

/**
 * Why the step may no longer go, read again right before the provider call (in parallel, one
 * round trip each): the customer opted out of it (of its channel, or of offers for an offer), or
 * withdrew the consent it needs (a later purchase's checkout), since the guard read them.
 */
async function refusedSince(
  deps: Pick<DeliveryDeps, "suppressions" | "history">,
  event: PurchaseCompleted,
  step: Pick<StepSpec, "channel" | "purpose">,
  rules: RuleSet,
): Promise<{ readonly code: "opted-out" | "no-consent"; readonly reason: string } | undefined> {
  const [optedOut, latestConsent] = await Promise.all([
    deps.suppressions.optOutsOf(optOutTargets(event, step.channel)),
    deps.history.latestConsent(event.customer.id),
  ]);
  const offer = step.purpose === "marketing";
  if (optedOut.all.has(step.channel) || (offer && optedOut.marketing.has(step.channel)))
    return {
      code: "opted-out",
      reason: `customer opted out of ${step.channel} ${offer ? "offers" : "messages"} before it went out`,
    };
  const refused = consentRefusal(
    step,
    consentFor(event, step.channel, latestConsent),
    rules.defaults.transactionalNeedsConsent,
  );
  return refused && { code: "no-consent", reason: refused.reason };
}

/**
 * What a step's discount code derives from: its follow-up id, without the suffix of a resend
 * (`-r1`) or retry (`-q1`) job; a step queued by the layout before keeps that layout's id.
 */
function discountIdOf(jobId: string, eventId: string, stepId: string): string {
  const legacy = legacyFollowUpJobId(eventId, stepId);
  return jobId === legacy || jobId.startsWith(`${legacy}-`)
    ? legacy
    : followUpJobId(eventId, stepId);
}

interface Attempt {
  readonly eventId: string;
  readonly stepId: string;
  readonly record: StepRecord;
  readonly labels: StepLabels;
  readonly channel: Channel;
  readonly customerId: string;
  readonly followUpId: string;
  readonly notes: DeliveryNotes;
  /** The purchase's scrub, when this step is its last pending one (SendView.lastStep). */
  readonly lastStep?: () => PurchaseTrim;
  /** The channel it goes out on, when not the one its record was planned with. */
  readonly channelChange: { readonly channel?: Channel };
}

async function fail(
  deps: DeliveryDeps,
  log: Logger,
  at: Attempt,
  nowMs: number,
  error: SendFailure,
  attempts = at.record.attempts + 1,
  /** The discount code the failed send carried (StepPatch.codeHash). */
  sentCode?: { readonly codeHash: string },
): Promise<never> {
  const described = failureReason(error);
  const reason =
    error.kind === "transient"
      ? { ...described, text: `gave up after ${attempts} attempts: ${described.text}` }
      : described;
  await deps.store.transition(
    at.eventId,
    at.stepId,
    ["sending"],
    { state: "failed", attempts, reason, ...sentCode, ...at.channelChange },
    nowMs,
    { outcome: "failed", ...at.labels, reason: described.code },
    at.record.dueAt,
    at.lastStep?.(),
  );
  Object.assign(at.notes, { outcome: "failed", code: described.code } satisfies DeliveryNotes);
  // Nothing reached the customer, so the attempt does not count against their frequency cap.
  await deps.caps.release(at.channel, at.customerId, at.followUpId);
  deps.metrics.failed.inc({ channel: at.channel, kind: at.labels.kind, reason: described.code });
  if (error.kind === "misconfigured") {
    log.error(
      { code: error.code },
      `DELIVERY MISCONFIGURED: ${error.reason}; fix the channel settings`,
    );
  } else {
    log.warn({ code: error.code, kind: error.kind }, "follow-up failed");
  }
  throw new UnrecoverableError(`${reason.code}: ${reason.text}`);
}

/** A provider failure as a step's reason: `permanent 550`, and the provider's words. */
function failureReason(error: SendFailure): { code: string; text: string } {
  return { code: `${error.kind} ${error.code}`, text: error.reason };
}
