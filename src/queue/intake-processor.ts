import { DelayedError, type Job, type Queue, UnrecoverableError } from "bullmq";
import { DateTime } from "luxon";
import { groupKeptForMs } from "../domain/coalesce.js";
import { redemptionLabel } from "../domain/discount-code.js";
import { type EventFingerprints, eventFingerprints } from "../domain/event-fingerprint.js";
import {
  CHANNELS,
  type Channel,
  customerOfEvent,
  describeProblems,
  type FollowUpEvent,
  type PurchaseCompleted,
  parseEvent,
} from "../domain/events.js";
import { type Plan, type PlannedStep, planFollowUps, type SkipCode } from "../domain/planner.js";
import { afterRefunds } from "../domain/refund.js";
import { cooldownReach, cooldownSteps, type RuleSet, underCooldown } from "../domain/rules.js";
import { findStep } from "../domain/step-ref.js";
import { zoneFor } from "../domain/time-zone.js";
import type { Logger } from "../logger.js";
import type { FollowUpMetrics } from "../metrics.js";
import {
  type CustomerHistoryStore,
  HISTORY_RETENTION_MS,
  type PurchaseAttribution,
  type SentFollowUp,
} from "../store/customer-history.js";
import type { CustomerIndex } from "../store/customer-index.js";
import type { DeliveryLedger, LedgerEntry } from "../store/delivery-ledger.js";
import type { DiscountCodes } from "../store/discount-codes.js";
import type { DeploymentEventIds, EventIdRegistry } from "../store/event-ids.js";
import type { FollowUpStore } from "../store/follow-up-store.js";
import { type JobWatch, LOOK_AFTER_DUE_MS } from "../store/job-watch.js";
import { mayBePromoted } from "../store/keys.js";
import { legacyFollowUpJobId } from "../store/legacy-layout.js";
import type { OrderStore } from "../store/order-store.js";
import type { Shards } from "../store/shards.js";
import type { StepRecord } from "../store/step-record.js";
import type { OptOutScope, SuppressionList } from "../store/suppression-list.js";
import type { ThankYouGroups } from "../store/thank-you-groups.js";
import { countReturnAfterCheckIns, noteSkippedCheckIns } from "./check-in-comparison.js";
import { planHeldToCooldowns } from "./cooldown-plans.js";
import type { CustomerFeedback } from "./customer-feedback.js";
import { DATA_NOT_JSON } from "./intake-worker.js";
import { addressesBoughtWith, knownAddresses, MAX_OWN_ADDRESSES } from "./known-addresses.js";
import {
  COALESCED_AFTER_MS,
  eventInputOfJob,
  type FollowUpJobData,
  followUpJobId,
  INVALID_EVENT_REASON,
  PURCHASE_EVENTS_QUEUE,
  REUSED_ID,
} from "./names.js";
import { REFUND_RETENTION_MS, RefundCurrencyError, type Refunds } from "./refunds.js";
import { cappedBackoff, type RetryPolicy } from "./retry-policy.js";
import { stepLabels } from "./step-labels.js";
import {
  type FollowUpTraces,
  type IntakeSpan,
  inChildSpan,
  planAttributes,
  type TraceAttributes,
} from "./traces.js";

export { HISTORY_RETENTION_MS };

/** Planning outcomes that are skips a report should show (the others are "rule did not apply"). */
const REPORTED_SKIPS: ReadonlySet<SkipCode> = new Set([
  "no-contact",
  "no-consent",
  "opted-out",
  "past-due",
  "no-send-window",
  "cooldown",
]);

/** What intake works on in one shard: the customer's, for a purchase. */
export interface IntakeShard {
  readonly shard: number;
  readonly store: FollowUpStore;
  readonly history: CustomerHistoryStore;
  readonly eventIds: EventIdRegistry;
  readonly ledger: DeliveryLedger;
  /** A customer's purchases within a rule's coalesce window share one thank-you. */
  readonly thankYous: Pick<ThankYouGroups, "file">;
  /** The shard's follow-ups queue. */
  readonly followUps: Queue<FollowUpJobData>;
  /** Where steps that become jobs are filed first (queue/lost-jobs.ts). */
  readonly jobWatch?: Pick<JobWatch, "watch">;
}

/** Intake's dependencies, with the shard of the event at hand. */
export interface IntakeDeps extends IntakeShard {
  readonly rules: () => RuleSet;
  readonly customers: Pick<CustomerIndex, "remember" | "filingOf">;
  /** Every shard's stores: a redeemed code's step may be another customer's. */
  readonly shards: Pick<Shards<{ store: Pick<FollowUpStore, "stepRecords"> }>, "of">;
  readonly orders: OrderStore;
  readonly suppressions: SuppressionList;
  /** Discount codes a purchase names are redeemed by its order. */
  readonly codes: Pick<DiscountCodes, "redeem" | "origin">;
  readonly refunds: Refunds;
  readonly feedback: CustomerFeedback;
  readonly metrics: FollowUpMetrics;
  readonly logger: Logger;
  readonly clock: () => DateTime;
  /** How long an event's record (step states, replies) outlives its last step. */
  readonly recordRetentionMs: number;
  /** Steps due within this many ms become BullMQ jobs at once; later ones wait in the schedule. */
  readonly promoteHorizonMs: number;
  /** The generation of the rules `rules()` returns (see RulesGenerations). */
  readonly rulesGeneration: () => number;
  /** With several shards: event ids claimed for the whole deployment, not per shard. */
  readonly deploymentIds?: Pick<DeploymentEventIds, "claim" | "keep">;
  /** Spans of each event's intake; absent when tracing is off. */
  readonly traces?: FollowUpTraces;
  /** The span of the event at hand (when traced). */
  readonly span?: IntakeSpan;
  /** Erases a customer (operations/erase-customer.ts), for `customer.erased` events. */
  readonly erase: (
    customerId: string,
    options: { by: string },
  ) => Promise<{ readonly purchases: number; readonly stepsCancelled: number }>;
}

/**
 * Files each coalescing thank-you of the plan with the customer's open group. One that joins an
 * earlier purchase's group stays planned, due just after the leader's thank-you
 * (COALESCED_AFTER_MS): by then the leader's has gone and listed this order, and this one is
 * skipped (`coalesced`); if the leader's never goes (its order returned, say), this one thanks for
 * its own order.
 */
async function coalesceThankYous(
  plan: Plan,
  event: PurchaseCompleted,
  rules: RuleSet,
  deps: IntakeDeps,
  nowMs: number,
): Promise<Plan> {
  if (!plan.steps.some((step) => step.coalesceUntil !== undefined)) return plan;
  const purchasedAt = Date.parse(event.occurredAt);
  const steps: PlannedStep[] = [];
  for (const step of plan.steps) {
    if (step.coalesceUntil === undefined) {
      steps.push(step);
      continue;
    }
    const dueAt = Date.parse(step.dueAt);
    const filed = await deps.thankYous.file(
      event.customer.id,
      { eventId: event.id, stepId: step.stepId, purchasedAt, dueAt },
      Date.parse(step.coalesceUntil) - purchasedAt,
      groupKeptForMs(dueAt, nowMs, rules.gracePeriods[step.kind].toMillis()),
      await deps.history.erasureKey(event.customer.id),
      nowMs,
    );
    // Erased after the purchase: the step stays as planned, and scheduling it writes nothing.
    if (filed.role !== "joined") {
      steps.push(step);
      continue;
    }
    const behindMs = Math.max(dueAt, filed.leaderDueAt + COALESCED_AFTER_MS);
    // In the planner's zone, whose offsets are remembered (a plain IANA zone asks Intl each time).
    const behind = DateTime.fromMillis(behindMs, { zone: zoneFor(plan.timezone) });
    // Waiting behind its leader is not lateness: a grace end set for a late step goes with it.
    const { graceEndsAt: _late, ...onTime } = step;
    steps.push({
      ...(behindMs > dueAt ? onTime : step),
      dueAt: behind.toUTC().toISO({ suppressMilliseconds: true }) ?? step.dueAt,
      localDueAt: behind.toISO({ suppressMilliseconds: true }) ?? step.localDueAt,
    });
  }
  return { ...plan, steps };
}

/** What an intake job returns (kept small: BullMQ stores it with the completed job). */
export interface IntakeSummary {
  readonly type: FollowUpEvent["type"];
  readonly planned?: number;
  readonly scheduled?: number;
  readonly skipped?: number;
  readonly cancelled?: number;
  /** The purchase was made before its customer was erased: dropped, nothing stored. */
  readonly erased?: true;
  /** The order was wholly refunded before its purchase arrived: nothing planned or attributed. */
  readonly refunded?: true;
}

/** How intake is wired: every shard's stores and queue, from which each event takes its own. */
export type IntakeWiring = Omit<IntakeDeps, keyof IntakeShard | "shards" | "span"> & {
  readonly shards: Shards<IntakeShard & { store: FollowUpStore }>;
  /** Attempts of an event whose intake fails on an error (default INTAKE_RETRY). */
  readonly retry?: RetryPolicy;
};

/**
 * An event whose intake fails on an error that is not the event's (Redis away or failing over, a
 * bug) is tried again, whoever published it (a job added by hand has no attempts of its own): 8
 * attempts over two to four minutes (waits doubling from 1-2 s, capped at 2 minutes). Intake is idempotent, so a retry finishes what an attempt began.
 */
export const INTAKE_RETRY: RetryPolicy = {
  maxAttempts: 8,
  delayMs: cappedBackoff(2_000, 120_000, Math.random),
  maxDelayMs: 120_000,
};

/**
 * Processes one job of the `purchase-events` queue: validate, then plan and schedule a purchase,
 * apply a refund, or record an opt-out. An invalid event fails at once, without retries, with
 * every problem and its path as the failed reason; it stays in the failed set for inspection.
 * A purchase works in its customer's shard; an event without a customer (a refund) claims its id
 * in shard 0 (its refund finds the purchases' shards through the order). With tracing on, each
 * event's intake is a trace of its own (see traceIntake).
 */
export function createIntakeProcessor(wiring: IntakeWiring) {
  // Each shard's dependencies, made once: spreading the wiring's 30-odd fields for every event
  // took 1.5% of intake's CPU (2026-12-04).
  const shardDeps = wiring.shards.map((shard): IntakeDeps => ({ ...wiring, ...shard }));
  const takeIn = async (job: Job, span?: IntakeSpan): Promise<IntakeSummary> => {
    if (job.data === DATA_NOT_JSON) {
      span?.fail("invalid");
      const deps = shardDeps.of(0);
      deps.metrics.eventsInvalid.inc();
      deps.logger.warn({ jobId: job.id }, "invalid event rejected: its data is not JSON");
      throw new UnrecoverableError(
        `${INVALID_EVENT_REASON}(event): the job's data is not JSON; publish the event again`,
      );
    }
    const input = eventInputOfJob(job.name, job.data);
    const parsed = parseEvent(input, { now: wiring.clock() });
    const customerId = parsed.ok ? customerOfEvent(parsed.event) : undefined;
    const ofShard =
      customerId === undefined ? shardDeps.of(0) : shardDeps.of(wiring.shards.shardOf(customerId));
    const deps: IntakeDeps = span ? { ...ofShard, span } : ofShard;
    if (!parsed.ok) {
      span?.fail("invalid");
      deps.metrics.eventsInvalid.inc();
      deps.logger.warn(
        { jobId: job.id, problems: parsed.problems.map((p) => p.path || "(event)") },
        "invalid event rejected",
      );
      throw new UnrecoverableError(
        `${INVALID_EVENT_REASON}${describeProblems(parsed.problems).replaceAll("\n", "; ")}`,
      );
    }
    const event = parsed.event;
    // The event id only as a keyed hash: publishers choose it, and may choose order numbers.
    span?.setAttributes({
      "followups.event.type": event.type,
      "followups.event.id_hash": deps.traces?.hashId(event.id),
      "followups.shard": deps.shard,
    });
    deps.metrics.eventsReceived.inc({ type: event.type });
    const fingerprints = eventFingerprints(event);
    if (deps.deploymentIds) {
      const keepMs =
        event.type === "purchase.completed" ? deps.recordRetentionMs : REFUND_RETENTION_MS;
      const claim = await deps.deploymentIds.claim(event.id, fingerprints, keepMs);
      if (claim === "conflict") throw reusedId(deps, event.id, job.id);
    }
    if (event.type !== "purchase.completed") {
      // Purchases claim their id together with the customer's history (schedulePurchase).
      const claim = await deps.eventIds.claim(event.id, fingerprints, REFUND_RETENTION_MS);
      if (claim === "conflict") throw reusedId(deps, event.id, job.id);
    }
    switch (event.type) {
      case "purchase.completed": {
        const { summary, attribution } = await schedulePurchase(event, fingerprints, deps, job.id);
        // A purchase of an erased customer is dropped whole: its order redeems nothing either.
        const redeemed = summary.erased ? [] : await redeemCodes(event, deps);
        // A purchase returned before it arrived (or erased) brought no one back.
        if (attribution) {
          await attributePurchase(event, redeemed, attribution.lastSent, deps);
          await countReturnAfterCheckIns(event, attribution.checkIns, deps);
        }
        // The finished job would keep the whole event for an hour: keep none of it.
        if (summary.erased) await job.updateData({ type: event.type, id: event.id });
        return summary;
      }
      case "customer.erased": {
        // Counted by the eraser (followups_erasures_total).
        const receipt = await deps.erase(event.customerId, { by: `event ${event.id}` });
        deps.logger.info(
          { eventId: event.id, purchases: receipt.purchases, cancelled: receipt.stepsCancelled },
          "customer erased",
        );
        // Not the customer id: the finished job keeps only the event id.
        await job.updateData({ type: event.type, id: event.id });
        return { type: event.type, cancelled: receipt.stepsCancelled };
      }
      case "purchase.refunded":
        try {
          const result = await deps.refunds.refund(event, deps.clock().toMillis());
          return { type: event.type, cancelled: result.cancelled };
        } catch (error) {
          if (error instanceof RefundCurrencyError) {
            span?.fail("refund-currency");
            deps.metrics.refundsRefused.inc();
            deps.logger.warn(
              {
                eventId: event.id,
                jobId: job.id,
                currency: error.currencies.refund,
                orderCurrency: error.currencies.order,
              },
              "refund refused: its currency is not its order's (kept in the failed set)",
            );
            throw new UnrecoverableError(error.message);
          }
          throw error;
        }
      case "customer.unsubscribed": {
        const channels = event.channels === "all" ? CHANNELS : [...new Set(event.channels)];
        const scope = event.purposes?.includes("marketing") ? "marketing" : "all";
        const optOut = (addresses: ReadonlyMap<Channel, readonly string[]>) =>
          deps.feedback.unsubscribe(
            event.customerId,
            channels,
            "event",
            undefined,
            scope,
            addresses,
          );
        const known = await knownAddresses(deps, event.customerId);
        await optOut(known);
        // Read again once the opt-out is written: a purchase of the customer stored meanwhile
        // read their opt-outs before it was written (its intake looks again once it is stored).
        const added = new Map(
          [...(await knownAddresses(deps, event.customerId))].map(([channel, addresses]) => [
            channel,
            addresses.filter((address) => !known.get(channel)?.includes(address)),
          ]),
        );
        if ([...added.values()].some((addresses) => addresses.length > 0)) await optOut(added);
        return { type: event.type };
      }
    }
  };
  const retry = wiring.retry ?? INTAKE_RETRY;
  /** Runs an attempt; on an error that is not the event's, moves the job on for another. */
  const attempt = async (
    job: Job,
    token: string | undefined,
    run: () => Promise<IntakeSummary>,
  ) => {
    try {
      return await run();
    } catch (error) {
      if (error instanceof UnrecoverableError || error instanceof DelayedError) throw error;
      // The error's name and message only: an event's content never reaches the log.
      const reason = { error: (error as Error).name, message: (error as Error).message };
      const attempts = job.attemptsStarted;
      if (!token || attempts >= retry.maxAttempts) {
        wiring.metrics.eventsFailed.inc();
        wiring.logger.error(
          { jobId: job.id, attempts, ...reason },
          "event intake failed on every attempt; publish it again to retry",
        );
        throw error;
      }
      wiring.metrics.eventsRetried.inc();
      const retryAt = wiring.clock().toMillis() + retry.delayMs(attempts);
      wiring.logger.warn({ jobId: job.id, attempts, ...reason }, "event intake error; will retry");
      await job.moveToDelayed(retryAt, token);
      throw new DelayedError("intake error; will retry");
    }
  };
  const { traces } = wiring;
  return traces
    ? (job: Job, token?: string) =>
        attempt(job, token, () => traceIntake(traces, job, (span) => takeIn(job, span)))
    : (job: Job, token?: string) => attempt(job, token, () => takeIn(job));
}

/**
 * Runs one event's intake in a span of its own (the root of the event's trace), linked to the
 * publisher's span when the job carries bullmq-otel's context; what the summary counts becomes
 * its attributes, and a failure its code.
 */
async function traceIntake(
  traces: FollowUpTraces,
  job: Job,
  run: (span: IntakeSpan) => Promise<IntakeSummary>,
): Promise<IntakeSummary> {
  const span = traces.startIntake(
    { "messaging.system": "bullmq", "messaging.destination.name": PURCHASE_EVENTS_QUEUE },
    job.opts.telemetry?.metadata,
  );
  try {
    const summary = await run(span);
    span.setAttributes(summaryAttributes(summary));
    return summary;
  } catch (error) {
    // The code only: a failed reason may quote the event.
    span.fail(error instanceof UnrecoverableError ? "rejected" : "error");
    throw error;
  } finally {
    span.end();
  }
}

/** An intake summary as span attributes. */
function summaryAttributes(summary: IntakeSummary): TraceAttributes {
  return {
    "followups.steps.planned": summary.planned,
    "followups.steps.scheduled": summary.scheduled,
    "followups.steps.skipped": summary.skipped,
    "followups.steps.cancelled": summary.cancelled,
    "followups.intake.erased": summary.erased,
    "followups.intake.refunded": summary.refunded,
  };
}

/**
 * Redeems the discount codes a purchase names, for its order: exactly as a till would, so the
 * same order again changes nothing and a code another order redeemed stays theirs, except that a
 * code valid when the purchase was made is redeemed although its event came in after it expired.
 * Logged by result, never by code.
 */
async function redeemCodes(event: PurchaseCompleted, deps: IntakeDeps): Promise<string[]> {
  const codes = [...new Set(event.discountCodes ?? [])];
  if (codes.length === 0) return [];
  const results: Record<string, number> = {};
  const redeemed: string[] = [];
  const now = deps.clock().toMillis();
  // Valid if it was when the purchase was made (never later than now: a purchase dated ahead).
  const usedAt = Math.min(Date.parse(event.occurredAt), now);
  for (const code of codes) {
    const result = await deps.codes.redeem(code, event.orderId, now, usedAt);
    const label = redemptionLabel(result);
    if (label) deps.metrics.codeRedemptions.inc({ result: label });
    results[label ?? "again"] = (results[label ?? "again"] ?? 0) + 1;
    if (result.status === "redeemed") redeemed.push(code);
  }
  deps.logger.info({ eventId: event.id, ...results }, "discount codes of a purchase");
  return redeemed;
}

/**
 * Attributes a purchase to the follow-up that brought the customer back: the step that issued a
 * code this order redeemed, else the latest follow-up sent to the customer within the rules'
 * attribution window before the purchase. Counted once per purchase in the ledger (orders and
 * revenue), for the owners' reports.
 */
async function attributePurchase(
  event: PurchaseCompleted,
  redeemedCodes: readonly string[],
  sent: SentFollowUp | undefined,
  deps: IntakeDeps,
): Promise<void> {
  const rules = deps.rules();
  const windowMs = rules.attribution.window.toMillis();
  const purchasedAt = Date.parse(event.occurredAt);
  let to: { channel: string; kind: string; ruleId: string } | undefined;
  let by: "code" | "recent" = "code";
  for (const code of redeemedCodes) {
    const origin = await deps.codes.origin(code);
    if (!origin || origin.eventId === event.id) continue;
    const { store } = deps.shards.of(origin.shard);
    const record = (await store.stepRecords(origin.eventId, [origin.stepId])).get(origin.stepId);
    to = stepLabels(rules, origin.stepId, record);
    break;
  }
  if (!to) {
    if (
      sent &&
      sent.eventId !== event.id &&
      sent.at <= purchasedAt &&
      purchasedAt <= sent.at + windowMs
    ) {
      to = sent;
      by = "recent";
    }
  }
  if (!to) return;
  await deps.ledger.countBroughtBack(event.id, to, by, event.total, deps.clock().toMillis());
}

/** The channels a customer opted out of, of everything or of offers only. */
type OptedOutChannels = {
  readonly all: ReadonlySet<Channel>;
  readonly marketing: ReadonlySet<Channel>;
};
/** What covering a purchase's addresses reads and writes. */
type CoverDeps = Pick<IntakeDeps, "history" | "store" | "suppressions" | "logger">;

/**
 * A purchase under a customer id that opted out (by event or unsubscribe link) of a channel, of
 * everything or of offers: its address for the channel is opted out the same way (not counted
 * again), unless the id is shared (more than MAX_OWN_ADDRESSES addresses of the kind with this
 * one). So an opt-out taken in before the purchase covers a later guest checkout with that
 * address, as one taken in after it does (knownAddresses); a number's time is noted `now` (that
 * opt-out came before it), so a START the number sent before it and replayed from the webhook
 * spool after it does not take the number off. Asked only when the purchase's opt-out query
 * found one.
 */
async function coverAddressesOfOptedOutId(
  deps: CoverDeps,
  event: PurchaseCompleted,
  suppressed: OptedOutChannels,
  now: number,
): Promise<void> {
  const customerId = event.customer.id;
  const covered: { channel: Channel; address: string; scope: OptOutScope }[] = [];
  for (const scope of ["all", "marketing"] as const) {
    for (const channel of suppressed[scope]) {
      const address = channel === "email" ? event.customer.email : event.customer.phone;
      if (address && (await deps.suppressions.isSuppressed(channel, { customerId }, scope)))
        covered.push({ channel, address, scope });
    }
  }
  if (covered.length === 0) return;
  const { emails, phones } = await addressesBoughtWith(deps, customerId);
  if (event.customer.email) emails.add(event.customer.email);
  if (event.customer.phone) phones.add(event.customer.phone);
  for (const { channel, address, scope } of covered) {
    if ((channel === "email" ? emails : phones).size > MAX_OWN_ADDRESSES) continue;
    // Timed first, as the opt-out times the numbers it knows: now, which is after it (a START
    // sent between the two is taken for older and leaves the number off: texted again, it works).
    await deps.suppressions.noteNumbersOptingOut([channel], [{ address }], scope, now);
    await deps.suppressions.suppress(channel, { address }, undefined, scope);
  }
}

/**
 * Whom an opt-out by customer id taken in while a purchase was is asked about: the customer, on
 * each channel the purchase has an address for (none: nothing to cover).
 */
function idTargetsOf(event: PurchaseCompleted) {
  return CHANNELS.filter((channel) =>
    channel === "email" ? event.customer.email : event.customer.phone,
  ).map((channel) => ({ channel, who: { customerId: event.customer.id } }));
}

/**
 * An opt-out by customer id taken in while this purchase was (after its opt-outs were read, before
 * it was stored where the opt-out's knownAddresses finds a purchase's addresses) covers its
 * address too, as coverAddressesOfOptedOutId does for one taken in before it. `since` is read once
 * the purchase is stored (with its order link, link-purchase.lua, idTargetsOf): an opt-out
 * written later reads its addresses after writing itself.
 */
async function coverAddressesOfIdOptedOutMeanwhile(
  deps: CoverDeps,
  event: PurchaseCompleted,
  before: OptedOutChannels,
  since: OptedOutChannels,
  now: number,
): Promise<void> {
  const newly = {
    all: new Set([...since.all].filter((channel) => !before.all.has(channel))),
    marketing: new Set([...since.marketing].filter((channel) => !before.marketing.has(channel))),
  };
  if (newly.all.size > 0 || newly.marketing.size > 0)
    await coverAddressesOfOptedOutId(deps, event, newly, now);
}

/** The failure of an event whose id was used before for other content; counted. */
function reusedId(deps: IntakeDeps, eventId: string, jobId?: string): UnrecoverableError {
  deps.span?.fail("id-reused");
  deps.metrics.eventsIdReused.inc();
  deps.logger.warn({ eventId, jobId }, "event id reused with different content; refused");
  return new UnrecoverableError(`${REUSED_ID}: ${eventId}`);
}

/**
 * Plans and schedules a purchase; with what attributing it reads of its customer (read with its
 * history), unless it was dropped (erased, or refunded before it arrived).
 */
async function schedulePurchase(
  event: PurchaseCompleted,
  fingerprints: EventFingerprints,
  deps: IntakeDeps,
  jobId?: string,
): Promise<{ summary: IntakeSummary; attribution?: PurchaseAttribution }> {
  const now = deps.clock();
  const nowMs = now.toMillis();
  // Each line names the event and its job (inline: a child logger per event costs more than its lines).
  const ids = { eventId: event.id, jobId };
  const log = {
    info: (fieldsOrMessage: Record<string, unknown> | string, message?: string) =>
      typeof fieldsOrMessage === "string"
        ? deps.logger.info(ids, fieldsOrMessage)
        : deps.logger.info({ ...ids, ...fieldsOrMessage }, message),
  };
  const { order, optedOut: suppressed } = await deps.orders.getWithOptOuts(
    event.orderId,
    await deps.suppressions.optOutQuery(optOutTargetsOf(event)),
  );
  const refunded = afterRefunds(event, order);
  // A refund recorded before its purchase arrived, in another currency than the purchase: it
  // cannot be taken off (a refund after its purchase is refused for that); said when it arrives.
  const foreign = order.refunds.filter((refund) => refund.currency !== event.total.currency);
  if (foreign.length > 0)
    deps.logger.warn(
      {
        ...ids,
        currency: event.total.currency,
        refundCurrencies: [...new Set(foreign.map((refund) => refund.currency))],
      },
      "a refund recorded for this purchase's order is in another currency: ignored",
    );
  if (refunded.full) {
    // Claimed although nothing is planned: another event under this id later is refused.
    const claim = await deps.eventIds.claim(event.id, fingerprints, deps.recordRetentionMs);
    if (claim === "conflict") throw reusedId(deps, event.id, jobId);
    await deps.orders.noteDropped(event.orderId, event.id, nowMs);
    log.info("order was refunded before its purchase arrived; nothing planned");
    return { summary: { type: event.type, planned: 0, scheduled: 0, skipped: 0, refunded: true } };
  }
  const recorded = await deps.history.recordPurchase(
    event,
    fingerprints,
    HISTORY_RETENTION_MS,
    deps.recordRetentionMs,
  );
  if ("conflict" in recorded) throw reusedId(deps, event.id, jobId);
  if ("erased" in recorded) {
    deps.metrics.eventsOfErased.inc();
    log.info("purchase made before its customer was erased; dropped");
    return { summary: { type: event.type, planned: 0, erased: true } };
  }
  const { firstSeen, attribution } = recorded;
  // An opt-out by customer id taken in before this purchase (publishers keep no order between
  // events) covers its address too, as it would have had the purchase come first.
  if (suppressed.all.size > 0 || suppressed.marketing.size > 0)
    await coverAddressesOfOptedOutId(deps, event, suppressed, deps.clock().toMillis());
  const effective = refunded.event;
  // Read together (a reload swaps both at once), so a step never claims rules it was not planned with.
  const rules = deps.rules();
  const generation = deps.rulesGeneration();
  const planOptions = {
    suppressedChannels: suppressed.all,
    marketingSuppressedChannels: suppressed.marketing,
  };
  const plan = await inChildSpan(
    deps.span,
    "followups.plan",
    async () => {
      const unheld = planFollowUps(effective, rules, recorded.history, now, planOptions);
      // Only a plan with a step under a cooldown needs the customer's recent steps (one more read).
      const cooldowns = unheld.steps.some((step) => {
        const held = underCooldown(rules, step);
        return held.byRule || held.byKind;
      });
      if (!cooldowns) return coalesceThankYous(unheld, effective, rules, deps, nowMs);
      // Where its steps under a cooldown fall due is remembered for the customer's other purchases
      // before anything counts the plan's skips: a purchase taken in at the same time as one of
      // theirs is planned again once the other remembered first (planHeldToCooldowns).
      const held = await planHeldToCooldowns(
        () => deps.history.recentSteps(event.customer.id, event.id),
        (recent) =>
          coalesceThankYous(
            planFollowUps(effective, rules, { ...recorded.history, recent }, now, planOptions),
            effective,
            rules,
            deps,
            nowMs,
          ),
        (planned, readAs) =>
          deps.history.rememberSteps(
            event.customer.id,
            { eventId: event.id, purchasedAt: Date.parse(event.occurredAt) },
            cooldownSteps(rules, planned.steps, (step) => ({
              kind: step.kind,
              dueAt: Date.parse(step.dueAt),
            })),
            HISTORY_RETENTION_MS,
            cooldownReach(rules, now),
            readAs,
            generation,
          ),
      );
      // Superseded (a newer generation re-planned this purchase, re-published here): its steps
      // exist, and scheduling leaves them as they are.
      return held.planned;
    },
    (planned) => ({ ...planAttributes(planned), "followups.event.first_seen": firstSeen }),
  );
  // Skips at planning are counted once per event (marked in its record), not again when it is
  // re-published, and also when an earlier attempt recorded the purchase but failed before.
  const reportedSkips: LedgerEntry[] = [];
  for (const skip of plan.skipped) {
    if (!REPORTED_SKIPS.has(skip.code) || !skip.stepId || !skip.ruleId) continue;
    const channel = findStep(rules, skip.stepId)?.step.channel ?? "unknown";
    reportedSkips.push({
      outcome: "skipped",
      channel,
      kind: skip.kind ?? "unknown",
      ruleId: skip.ruleId,
      reason: skip.code,
    });
  }
  const [skipsCounted] = await Promise.all([
    deps.ledger.countSkipsAtPlanning(event.id, reportedSkips, nowMs),
    // Counted once per purchase by itself (remember-check-in.lua).
    noteSkippedCheckIns(effective, plan.skipped, rules, now, deps.history),
  ]);
  if (skipsCounted) {
    for (const { channel, kind, reason } of reportedSkips)
      deps.metrics.skipped.inc({ channel, kind, reason: reason ?? "unknown" });
  }
  // The address → customer index, kept as long as the purchase's record (RECORD_RETENTION_DAYS
  // after its last step; a purchase without steps as long after it is taken in): what it finds
  // by address is the customer's records, which hold their name and addresses. After the steps
  // are written (an erasure that began meanwhile stops both: its markers come before it reads).
  const erasedMeanwhile = () => {
    deps.metrics.eventsOfErased.inc();
    log.info("customer erased while their purchase was taken in; dropped");
    return { summary: { type: event.type, planned: 0, erased: true as const } };
  };
  // Also when the event was seen before: an attempt that failed may have stopped short of it
  // (filing the same entries again changes nothing). A purchase with steps files them with its
  // order link instead (OrderStore.linkPurchase, below).
  const rememberCustomer = () => deps.customers.remember(event, deps.recordRetentionMs, nowMs);
  if (plan.steps.length === 0) {
    if (!(await rememberCustomer())) return erasedMeanwhile();
    log.info({ skipped: plan.skipped.map((s) => s.code) }, "no follow-ups planned");
    return {
      summary: { type: event.type, planned: 0, scheduled: 0, skipped: plan.skipped.length },
      attribution,
    };
  }
  // The first sighting of an event has no step records yet: the history script marks it first.
  const records = firstSeen
    ? new Map<string, StepRecord | undefined>()
    : await deps.store.stepRecords(
        event.id,
        plan.steps.map((s) => s.stepId),
      );
  // A step with a state beyond "scheduled" was handled by an earlier delivery of this event.
  const open = plan.steps.filter((step) => {
    const record = records.get(step.stepId);
    return record === undefined || record.state === "scheduled";
  });
  if (open.length === 0) {
    // Everything was handled before; saving the event again would bring back scrubbed contact data.
    log.info("re-published event: every step already handled");
    return {
      summary: {
        type: event.type,
        planned: plan.steps.length,
        scheduled: 0,
        skipped: plan.skipped.length,
      },
      attribution,
    };
  }
  const keepUntil =
    Math.max(...plan.steps.map((s) => Date.parse(s.dueAt))) + deps.recordRetentionMs;
  // A step whose schedule bucket the promoter may already have taken becomes a job at once.
  const inSchedule = (step: { dueAt: string }) =>
    !mayBePromoted(Date.parse(step.dueAt), nowMs, deps.promoteHorizonMs);
  // Order matters: the event and the step records exist before any job can run, and the order
  // link comes after them, so a refund racing this purchase either sees the steps or is seen here.
  const scheduled = await inChildSpan(
    deps.span,
    "followups.schedule",
    async () => {
      const added = await deps.store.schedule(
        event,
        keepUntil,
        open.map((step) => ({
          stepId: step.stepId,
          dueAt: Date.parse(step.dueAt),
          channel: step.channel,
          kind: step.kind,
          ruleId: step.ruleId,
          ...(step.graceEndsAt && { graceEndsAt: Date.parse(step.graceEndsAt) }),
          inSchedule: inSchedule(step),
        })),
        nowMs,
        generation,
        deps.span?.traceparent,
        await deps.history.erasureKey(event.customer.id),
      );
      if (added < 0) return { erased: true as const, added: 0, jobs: 0 };
      // A step planned beyond the history's two years: erasure finds the record through it (a
      // round trip only then: the history was just given its two years).
      if (keepUntil > nowMs + HISTORY_RETENTION_MS)
        await deps.history.keepUntil(event.customer.id, keepUntil);
      // The order link and the address index in one script (both global), which also reads the
      // customer id's opt-outs again: the purchase is stored now (coverAddressesOfIdOptedOutMeanwhile).
      const linkedWithOptOuts = await deps.orders.linkPurchaseWithOptOuts(
        event.orderId,
        event.id,
        deps.shard,
        Math.max(keepUntil - nowMs, REFUND_RETENTION_MS),
        nowMs,
        await deps.customers.filingOf(event, keepUntil - nowMs),
        await deps.suppressions.optOutQuery(idTargetsOf(event)),
      );
      if (!linkedWithOptOuts) return { erased: true as const, added: 0, jobs: 0 };
      const { order: linked, optedOut } = linkedWithOptOuts;
      // The deployment-wide claim of the id lives as long as the record.
      await deps.deploymentIds?.keep(event.id, keepUntil - nowMs);
      // Steps beyond the horizon wait in the compact schedule (filed by the script above).
      let toSchedule = open.filter((step) => !inSchedule(step));
      if (
        linked.fullyRefunded !== order.fullyRefunded ||
        linked.refunds.length !== order.refunds.length ||
        linked.returns.length !== order.returns.length
      ) {
        await deps.refunds.applyRefunds(event.id, event.orderId, linked, nowMs);
        const after = await deps.store.stepRecords(
          event.id,
          toSchedule.map((s) => s.stepId),
        );
        toSchedule = toSchedule.filter((step) => after.get(step.stepId)?.state === "scheduled");
      }
      if (!firstSeen) {
        // A step an earlier version queued under its longer job id has its job already.
        const legacy = await Promise.all(
          toSchedule.map((step) =>
            deps.followUps.getJob(legacyFollowUpJobId(event.id, step.stepId)),
          ),
        );
        toSchedule = toSchedule.filter((_, i) => legacy[i] === undefined);
      }
      // Watched before they are jobs, so that one whose job is lost later is found (lost-jobs.ts).
      await deps.jobWatch?.watch(
        toSchedule.map((step) => ({
          eventId: event.id,
          stepId: step.stepId,
          lookAt: Math.max(nowMs, Date.parse(step.dueAt)) + LOOK_AFTER_DUE_MS,
        })),
      );
      if (toSchedule.length > 0)
        await deps.followUps.addBulk(
          toSchedule.map((step) => ({
            name: step.channel,
            data: { e: event.id, s: step.stepId },
            opts: {
              jobId: followUpJobId(event.id, step.stepId),
              delay: Math.max(0, Date.parse(step.dueAt) - nowMs),
            },
          })),
        );
      // The steps and their jobs survive a failover before the event's job completes (elsewhere).
      await deps.store.awaitReplicas(event.id);
      return { erased: false as const, added, jobs: toSchedule.length, optedOut };
    },
    ({ added, jobs }) => ({
      "followups.steps.open": open.length,
      "followups.steps.new": added,
      "followups.steps.in_schedule": open.filter(inSchedule).length,
      "followups.steps.as_jobs": jobs,
    }),
  );
  if (scheduled.erased) return erasedMeanwhile();
  await coverAddressesOfIdOptedOutMeanwhile(
    deps,
    event,
    suppressed,
    scheduled.optedOut,
    deps.clock().toMillis(),
  );
  for (const step of open) {
    if (records.get(step.stepId) === undefined)
      deps.metrics.scheduled.inc({ channel: step.channel, kind: step.kind });
  }
  log.info(
    {
      steps: open.map((s) => ({ stepId: s.stepId, dueAt: s.dueAt })),
      alreadyHandled: plan.steps.length - open.length,
    },
    "follow-ups scheduled",
  );
  return {
    summary: {
      type: event.type,
      planned: plan.steps.length,
      scheduled: open.length,
      skipped: plan.skipped.length,
    },
    attribution,
  };
}

/**
 * Whom a purchase's opt-outs are about on each channel: the customer, and their address for that
 * channel. The answer says on which channels they opted out of everything (`all`) or of offers
 * only (`marketing`).
 */
function optOutTargetsOf(event: PurchaseCompleted) {
  return CHANNELS.map((channel) => {
    const address = channel === "email" ? event.customer.email : event.customer.phone;
    return { channel, who: { customerId: event.customer.id, ...(address && { address }) } };
  });
}
