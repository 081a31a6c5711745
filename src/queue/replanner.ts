import type { DateTime } from "luxon";
import type { PurchaseCompleted } from "../domain/events.js";
import { unreachable } from "../domain/planner.js";
import { afterRefunds } from "../domain/refund.js";
import { nextLaterTry, type ReplanDecision, replanStep } from "../domain/replan.js";
import {
  type CustomerHistory,
  cooldownReach,
  cooldownSteps,
  hasCooldowns,
  type RuleSet,
  type StepKind,
} from "../domain/rules.js";
import { findStep, ruleIdOf, stepIdOf } from "../domain/step-ref.js";
import { errorName, type Logger } from "../logger.js";
import type { FollowUpMetrics } from "../metrics.js";
import { type CustomerHistoryStore, HISTORY_RETENTION_MS } from "../store/customer-history.js";
import type { CustomerIndex } from "../store/customer-index.js";
import type { FollowUpSchedule } from "../store/follow-up-schedule.js";
import type { FollowUpStore, StepReplan } from "../store/follow-up-store.js";
import { mayBePromoted } from "../store/keys.js";
import type { OrderStore } from "../store/order-store.js";
import { isRedisUnavailable } from "../store/redis-client.js";
import type { StepRecord } from "../store/step-record.js";
import type { ThankYouGroups } from "../store/thank-you-groups.js";
import { planHeldToCooldowns } from "./cooldown-plans.js";
import { COALESCED_AFTER_MS } from "./names.js";

/**
 * Re-planning: when a worker loads a newer rules generation, every purchase with steps still in the
 * compact schedule is planned again from its stored purchase, in bounded batches, by every worker
 * that has those rules. The store applies each purchase's re-plan once per generation and never
 * backwards, so workers sharing the walk, or one still on older rules, change nothing twice.
 * Steps due within the promotion horizon are BullMQ's already and stay as they are (the send-time
 * guard still skips a step whose rule was removed).
 */

/** Step references of a bucket read at a time. */
const SLICE_SIZE = 1_000;
/** Buckets listed per page of the walk. */
const BUCKET_PAGE = 100;
/** Purchases re-planned at once. */
const CONCURRENCY = 16;
/**
 * How far beyond the horizon a re-plan that holds no bucket still leaves steps as they are: a
 * promoter on a worker whose clock runs ahead, or that took the bucket between this re-plan's
 * reading and its script, may have made them jobs already.
 */
export const REPLAN_MARGIN_MS = 60_000;
/** No step held by a promoter (a re-plan of the walk, or a preview). */
export const NONE: ReadonlySet<string> = new Set();
const NO_FLOORS: ReadonlyMap<string, number> = new Map();

/**
 * The earliest each scheduled step of a purchase may fall due, where intake set one: a thank-you
 * that joined an earlier purchase's waits until COALESCED_AFTER_MS after the leader's (see
 * coalesceThankYous), so a re-plan must not call it "moved earlier" to its own due time. A thank-you
 * as `rules` call it (the send guard decides by their kind whether it waits behind the leader's):
 * a step whose kind the rules changed away from thank-you is no longer held, and is planned as a
 * new purchase's step of its kind would be; one they made a thank-you is held, whatever its record
 * says.
 */
export async function dueFloors(
  thankYous: Pick<ThankYouGroups, "filingOf">,
  customerId: string,
  eventId: string,
  records: ReadonlyMap<string, StepRecord>,
  rules: RuleSet,
): Promise<ReadonlyMap<string, number>> {
  const thankYou = [...records].find(
    ([stepId, r]) =>
      r.state === "scheduled" && (findStep(rules, stepId)?.step.kind ?? r.kind) === "thank-you",
  )?.[0];
  if (thankYou === undefined) return NO_FLOORS;
  const filing = await thankYous.filingOf(customerId, eventId);
  if (filing?.role !== "joined") return NO_FLOORS;
  return new Map([[thankYou, filing.leaderDueAt + COALESCED_AFTER_MS]]);
}

export interface ReplannerDeps {
  readonly store: FollowUpStore;
  readonly schedule: FollowUpSchedule;
  readonly history: Pick<
    CustomerHistoryStore,
    "historyAt" | "recentSteps" | "rememberSteps" | "keepUntil"
  >;
  readonly thankYous: Pick<ThankYouGroups, "filingOf">;
  readonly orders: Pick<OrderStore, "get" | "keepLink">;
  /** The address index, kept as long as a record a re-plan keeps beyond its two years. */
  readonly customers: Pick<CustomerIndex, "remember">;
  readonly metrics?: Pick<
    FollowUpMetrics,
    "cancelled" | "skipped" | "replanFailures" | "replanGivenUp"
  >;
  readonly logger: Logger;
  readonly clock: () => DateTime;
  readonly horizonMs: number;
  readonly recordRetentionMs: number;
}

/** How one purchase's scheduled steps fare under the newer rules. */
export interface EventReplan {
  readonly eventId: string;
  readonly steps: readonly (StepReplan & { readonly fromDueAt: number })[];
}

/** What a re-planning run did. */
export interface ReplanSummary {
  readonly purchases: number;
  /** Steps whose due time changed (one rewritten where it stays is not counted). */
  readonly moved: number;
  readonly cancelled: number;
  readonly skipped: number;
}

/**
 * The re-plan of one purchase's scheduled steps, without applying it: what `followups replan
 * --dry-run` shows and what `replanEvent` applies. `notBefore`: the earliest a step may fall due
 * (dueFloors); a step the rules would move earlier than that moves only that far.
 */
export function replanOf(
  eventId: string,
  event: PurchaseCompleted,
  records: ReadonlyMap<string, StepRecord>,
  rules: RuleSet,
  history: CustomerHistory,
  now: DateTime,
  horizonMs: number,
  promoting: ReadonlySet<string> = NONE,
  notBefore: ReadonlyMap<string, number> = NO_FLOORS,
): EventReplan {
  const scheduled = [...records]
    .filter(([, record]) => record.state === "scheduled")
    .map(([stepId, record]) => {
      const found = findStep(rules, stepId);
      const call = found?.step.fallbackOf;
      return {
        stepId,
        record,
        channel: record.channel ?? found?.step.channel ?? "email",
        kind: record.kind ?? found?.step.kind ?? "custom",
        callId: found && call !== undefined ? stepIdOf(found.rule, { id: call }) : undefined,
      };
    });
  const decisions = new Map<string, ReplanDecision>();
  // A step whose bucket a promoter may have taken (a minute's margin beyond the horizon) is, or
  // is about to be, a BullMQ job: it stays as planned; unless the promoter asking holds it and
  // has not made it a job yet.
  const promotable = (stepId: string, record: StepRecord) =>
    !promoting.has(stepId) &&
    mayBePromoted(record.dueAt, now.toMillis() + REPLAN_MARGIN_MS, horizonMs);
  // Calls before fallbacks: a fallback is timed from its call as this re-plan leaves it.
  const fallbacksLast = [...scheduled].sort(
    (a, b) => Number(a.callId !== undefined) - Number(b.callId !== undefined),
  );
  let claimedKinds = false;
  for (const { stepId, record, channel, kind, callId } of fallbacksLast) {
    // One step of a kind per purchase, decided once every step but the fallbacks is (a fallback
    // never claims its kind: it goes with its call).
    if (callId !== undefined && !claimedKinds) {
      claimedKinds = true;
      oneOfEachKind(event, scheduled, records, rules, decisions, promotable);
    }
    // A call this re-plan skips for a cooldown, or as superseded, takes its fallback (of the
    // call's kind) with it, as planning would plan neither: at send time a skipped call lets its
    // fallback go, which would send that kind within the very cooldown, or a second step of it.
    // A call skipped for another reason (past its grace, no send window) leaves its fallback to
    // go in its place.
    const call = callId === undefined ? undefined : decisions.get(callId);
    const asPlanned: ReplanDecision = promotable(stepId, record)
      ? { action: "keep" }
      : call?.action === "skip" && (call.code === "cooldown" || call.code === "superseded")
        ? {
            action: "skip",
            code: call.code,
            reason: `its call ${callId} is skipped: ${call.reason}`,
          }
        : replanStep(
            {
              stepId,
              dueAt: record.dueAt,
              ...(record.graceEndsAt !== undefined && { graceEndsAt: record.graceEndsAt }),
              channel,
              kind,
            },
            event,
            history,
            rules,
            now,
            callId === undefined ? undefined : callDueAt(records, decisions, callId),
          );
    decisions.set(
      stepId,
      withFloor(asPlanned, notBefore.get(stepId), { dueAt: record.dueAt, channel, kind }),
    );
  }
  if (!claimedKinds) oneOfEachKind(event, scheduled, records, rules, decisions, promotable);

  const steps: (StepReplan & { fromDueAt: number })[] = [];
  for (const { stepId, record, channel, kind } of scheduled) {
    const ruleId = ruleIdOf(stepId);
    const base = {
      stepId,
      plannedDueAt: record.dueAt,
      fromDueAt: record.dueAt,
      countedChannel: channel,
      ruleId,
    };
    const decision = decisions.get(stepId) ?? { action: "keep" };
    switch (decision.action) {
      case "keep":
        steps.push({ ...base, action: "keep", dueAt: record.dueAt, channel, kind });
        break;
      case "move":
        steps.push({
          ...base,
          action: "move",
          dueAt: decision.dueAt,
          ...(decision.graceEndsAt !== undefined && { graceEndsAt: decision.graceEndsAt }),
          channel: decision.channel,
          kind: decision.kind,
        });
        break;
      case "cancel":
      case "skip":
        steps.push({
          ...base,
          action: decision.action,
          dueAt: record.dueAt,
          channel,
          kind,
          reason: {
            code: decision.code,
            text: decision.reason,
            ledger: {
              outcome: decision.action === "cancel" ? "cancelled" : "skipped",
              channel,
              kind,
              ruleId,
              reason: decision.code,
            },
          },
        });
        break;
    }
  }
  return { eventId, steps };
}

/**
 * One step of each kind per purchase, as planning plans them (the first of a kind in the rules'
 * order wins, later ones are superseded): a re-plan that gives a step another kind must not leave
 * the purchase two steps of it. A step sent or being sent holds its kind first (the purchase had
 * its one), then a step that is or is about to be a job (it stays as planned, and is sent under
 * the kind the rules give it; one whose step they no longer have holds none), then the steps
 * this re-plan keeps or moves in the rules' order; one that cannot reach the customer as the rules
 * send it (no contact, consent declined) holds none. A step that a kind taken so supersedes is
 * skipped, `superseded`, unless the rules cancel it (its rule no longer applies).
 * Fallbacks are left out: they go with their call. Decides in `decisions`, which holds every
 * scheduled step but the fallbacks.
 */
function oneOfEachKind(
  event: PurchaseCompleted,
  scheduled: readonly {
    readonly stepId: string;
    readonly record: StepRecord;
    readonly kind: StepKind;
    readonly callId: string | undefined;
  }[],
  records: ReadonlyMap<string, StepRecord>,
  rules: RuleSet,
  decisions: Map<string, ReplanDecision>,
  promotable: (stepId: string, record: StepRecord) => boolean,
): void {
  const claimed = new Map<StepKind, string>();
  const claim = (kind: StepKind | undefined, stepId: string) => {
    if (kind !== undefined && !claimed.has(kind)) claimed.set(kind, stepId);
  };
  // A step that cannot reach the customer as the rules now send it (no contact for its channel,
  // consent declined) is skipped when due, and claims no kind, as planning would not plan it.
  const sendable = (stepId: string) => {
    const found = findStep(rules, stepId);
    return found !== undefined && unreachable(event, found.step, rules) === undefined;
  };
  for (const [stepId, record] of records)
    if (record.state === "sending" || record.state === "sent") claim(record.kind, stepId);
  const steps = scheduled.filter((step) => step.callId === undefined);
  // A job is sent as the rules say when it is due (the send guard reads its step from them), not
  // as its record says: it holds the kind they give it, and none when they no longer have it (the
  // guard skips it, `rule-removed`).
  for (const step of steps)
    if (promotable(step.stepId, step.record) && sendable(step.stepId))
      claim(findStep(rules, step.stepId)?.step.kind, step.stepId);
  const order = (stepId: string) => {
    const found = findStep(rules, stepId);
    return found
      ? [rules.rules.indexOf(found.rule), found.rule.steps.indexOf(found.step)]
      : [Infinity, 0];
  };
  const inRulesOrder = steps
    .filter((step) => !promotable(step.stepId, step.record))
    .map((step) => ({ ...step, at: order(step.stepId) }))
    .sort((a, b) => (a.at[0] ?? 0) - (b.at[0] ?? 0) || (a.at[1] ?? 0) - (b.at[1] ?? 0));
  for (const { stepId } of inRulesOrder) {
    const decision = decisions.get(stepId);
    const kind = findStep(rules, stepId)?.step.kind;
    if (!decision || decision.action === "cancel" || kind === undefined) continue;
    const holder = claimed.get(kind);
    if (holder !== undefined) {
      decisions.set(stepId, {
        action: "skip",
        code: "superseded",
        reason: `superseded by ${holder}: one ${kind} per purchase`,
      });
    } else if ((decision.action === "keep" || decision.action === "move") && sendable(stepId))
      claim(kind, stepId);
  }
}

/**
 * When a fallback's call is due as this re-plan leaves it (epoch ms): where it moves to, or its
 * record's due time (kept, cancelled or skipped by this re-plan, or no longer scheduled: sent,
 * say); undefined when it has no record. A call this re-plan ends keeps that due time in its
 * record, so a later generation of the same rules times the fallback alike and leaves it.
 */
function callDueAt(
  records: ReadonlyMap<string, StepRecord>,
  decisions: ReadonlyMap<string, ReplanDecision>,
  callId: string,
): number | undefined {
  const decision = decisions.get(callId);
  if (decision?.action === "move") return decision.dueAt;
  return records.get(callId)?.dueAt;
}

/**
 * A move no earlier than `floor` (not late then: no grace end); a keep when that is where it is,
 * as it is (a new channel or kind is still a move, to the same time).
 */
function withFloor(
  decision: ReplanDecision,
  floor: number | undefined,
  was: { readonly dueAt: number; readonly channel: string; readonly kind: string },
): ReplanDecision {
  if (decision.action !== "move" || floor === undefined || decision.dueAt >= floor) return decision;
  if (floor === was.dueAt && decision.channel === was.channel && decision.kind === was.kind)
    return { action: "keep" };
  return { action: "move", dueAt: floor, channel: decision.channel, kind: decision.kind };
}

export interface Replanner {
  /**
   * Re-plans one purchase under `rules` (generation `generation`); the summary of what changed.
   * `promoting`: its steps (ids) in the schedule slice the calling promoter holds, re-planned
   * although due within the horizon (no job exists for them yet).
   */
  replanEvent(
    eventId: string,
    rules: RuleSet,
    generation: number,
    promoting?: ReadonlySet<string>,
  ): Promise<ReplanSummary>;
  /** Walks the whole schedule; stops between purchases once `stopped()` says so. */
  replanAll(rules: RuleSet, generation: number, stopped?: () => boolean): Promise<ReplanSummary>;
  /**
   * Re-plans the purchases filed in the schedule under older rules after a walk under newer
   * ones began (FollowUpSchedule.later), when `generation` is at least that walk's: a worker
   * still on older rules leaves them to the newer ones. Stops between batches once `stopped()`.
   */
  replanLater(rules: RuleSet, generation: number, stopped?: () => boolean): Promise<ReplanSummary>;
}

const NOTHING: ReplanSummary = { purchases: 0, moved: 0, cancelled: 0, skipped: 0 };

function add(a: ReplanSummary, b: ReplanSummary): ReplanSummary {
  return {
    purchases: a.purchases + b.purchases,
    moved: a.moved + b.moved,
    cancelled: a.cancelled + b.cancelled,
    skipped: a.skipped + b.skipped,
  };
}

/**
 * A purchase's place among the purchases re-planned at once: `after` waits until those before it
 * of the same customer are re-planned (given its customer id, once its purchase is read), and
 * `done` says it is re-planned, or will not be (also when it failed).
 */
interface CustomerTurn {
  after(customerId: string): Promise<void>;
  done(): void;
}

const ANY_TURN: CustomerTurn = { after: async () => undefined, done: () => undefined };

/**
 * Turns for `size` purchases re-planned at once, in the walk's order (the n-th's, `turns(n)`):
 * purchases of different customers run side by side, and a customer's purchases one after the
 * other, each planned against the cooldowns the one before it left, as `replan --dry-run`
 * previews them. Without this, two purchases of one customer read each other's steps as they
 * were before either was re-planned (a step skipped for a cooldown that the other's re-plan
 * moves away writes nothing, so nothing made it plan again). A purchase waits only on those
 * before it, which never wait on it: no cycle.
 */
function customerTurns(size: number): (n: number) => CustomerTurn {
  const customers = Array.from({ length: size }, () => settled<string | undefined>());
  const finished = Array.from({ length: size }, () => settled<void>());
  return (n) => ({
    async after(customerId) {
      customers[n]?.resolve(customerId);
      for (let earlier = 0; earlier < n; earlier++)
        if ((await customers[earlier]?.promise) === customerId) await finished[earlier]?.promise;
    },
    done() {
      customers[n]?.resolve(undefined);
      finished[n]?.resolve();
    },
  });
}

/** A promise and what settles it (the first value given wins). */
function settled<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>((settle) => {
    resolve = settle;
  });
  return { promise, resolve };
}

export function createReplanner(deps: ReplannerDeps): Replanner {
  async function replanEvent(
    eventId: string,
    rules: RuleSet,
    generation: number,
    promoting: ReadonlySet<string> = NONE,
    turn: CustomerTurn = ANY_TURN,
  ): Promise<ReplanSummary> {
    try {
      return await replanInTurn(eventId, rules, generation, promoting, turn);
    } finally {
      turn.done();
    }
  }

  async function replanInTurn(
    eventId: string,
    rules: RuleSet,
    generation: number,
    promoting: ReadonlySet<string>,
    turn: CustomerTurn,
  ): Promise<ReplanSummary> {
    const planned = await deps.store.generationOf(eventId);
    if (planned !== undefined && planned >= generation) return NOTHING;
    const [records, loaded, expiresAt] = await Promise.all([
      deps.store.allStepRecords(eventId),
      deps.store.loadEvent(eventId).then(
        (event) => ({ event }),
        (error: unknown) => ({ error }),
      ),
      // Sent with the two reads above: no round trip of its own.
      deps.store.recordExpiresAt(eventId),
    ]);
    // Nothing left to re-plan: whether its purchase can be read no longer matters (one that
    // cannot be is not tried again and again once its steps have ended).
    if (![...records.values()].some((r) => r.state === "scheduled")) return NOTHING;
    if ("error" in loaded) throw loaded.error;
    const { event } = loaded;
    if (!event) return NOTHING;
    // After the customer's purchases before it in the batch: planned against where they are left.
    await turn.after(event.customer.id);
    const [recorded, order, floors] = await Promise.all([
      deps.history.historyAt(eventId),
      deps.orders.get(event.orderId),
      dueFloors(deps.thankYous, event.customer.id, eventId, records, rules),
    ]);
    const effective = afterRefunds(event, order).event;
    const now = deps.clock();
    const planWith = (history: CustomerHistory) =>
      replanOf(eventId, effective, records, rules, history, now, deps.horizonMs, promoting, floors);
    // With cooldowns, where its steps under one fall due is remembered before the plan is applied:
    // a purchase of the customer taken in (or re-planned) meanwhile either sees them, or wrote
    // first and this plan is made again against its step (planHeldToCooldowns). A plan the store
    // then refuses (another worker applied this generation first) was made from the same rules;
    // one of newer rules remembered first supersedes this plan, which is not applied (a worker on
    // older rules must not leave its due times in place of the newer ones).
    const held = !hasCooldowns(rules)
      ? { planned: planWith(recorded), remembered: "remembered" as const }
      : await planHeldToCooldowns(
          () => deps.history.recentSteps(event.customer.id, eventId),
          (recent) => planWith({ ...recorded, recent }),
          (planned, readAs) =>
            deps.history.rememberSteps(
              event.customer.id,
              { eventId, purchasedAt: Date.parse(event.occurredAt) },
              cooldownSteps(
                rules,
                planned.steps.filter((s) => s.action === "keep" || s.action === "move"),
                (s) => ({ kind: s.kind as StepKind, dueAt: s.dueAt }),
              ),
              HISTORY_RETENTION_MS,
              cooldownReach(rules, now),
              readAs,
              generation,
              planned.steps.map((s) => s.stepId),
            ),
        );
    if (held.remembered === "superseded") return NOTHING;
    const plan = held.planned;
    // Kept RECORD_RETENTION_DAYS after the latest step under this plan: a pending one's due time,
    // an ended one's end (a step this plan ends, ends now).
    const latest = Math.max(
      now.toMillis(),
      ...plan.steps.filter((s) => s.action === "keep" || s.action === "move").map((s) => s.dueAt),
      ...[...records.values()]
        .filter((r) => r.state !== "scheduled")
        .map((r) => Math.max(r.dueAt, r.changedAt ?? 0)),
    );
    const keepUntil = latest + deps.recordRetentionMs;
    // A step moved later than its order's link lasts (intake gave it the record's time, at least
    // REFUND_RETENTION_MS): a refund after the link went would not find the step to cancel, and
    // the follow-up would go out for a refunded order. Kept as long as the record, before the plan
    // is applied (a re-plan stopped in between is not made again); a global key, its own write.
    if (plan.steps.some((s) => s.action === "move" && s.dueAt > s.plannedDueAt))
      await deps.orders.keepLink(event.orderId, eventId, keepUntil);
    // Likewise the address index, which is filed for as long as the record lasts (every later
    // expiry of the record filed it again): `erase --email` finds the customer through it while
    // the record, with their name and addresses, lives (a round trip only when the record is kept
    // longer; an erasure since the purchase files nothing again; a shorter record leaves the
    // entry as it is, at most as long as the record was).
    if (expiresAt === undefined || keepUntil > expiresAt)
      await deps.customers.remember(event, keepUntil - now.toMillis(), now.toMillis());
    // And the customer's history, through which erasure finds the record (it never shortens).
    if (keepUntil > Date.parse(event.occurredAt) + HISTORY_RETENTION_MS)
      await deps.history.keepUntil(event.customer.id, keepUntil);
    const changed = await deps.store.replan(
      eventId,
      generation,
      plan.steps,
      now.toMillis(),
      keepUntil,
    );
    if (changed === undefined) return NOTHING;
    const count = (action: StepReplan["action"]) =>
      plan.steps.filter((s) => s.action === action).length;
    // A step rewritten where it stays (a new channel, kind or grace end) did not move: counted
    // unchanged, as `replan --dry-run` counts it.
    const moved = plan.steps.filter((s) => s.action === "move" && s.dueAt !== s.plannedDueAt);
    for (const step of plan.steps) {
      if (!step.reason) continue;
      const labels = { channel: step.channel, kind: step.kind, reason: step.reason.code };
      if (step.action === "cancel") deps.metrics?.cancelled.inc(labels);
      else deps.metrics?.skipped.inc(labels);
    }
    if (changed > 0) {
      deps.logger.info(
        {
          eventId,
          generation,
          steps: plan.steps
            .filter((s) => s.action !== "keep")
            .map((s) => ({ stepId: s.stepId, action: s.action, dueAt: s.dueAt })),
        },
        "follow-ups re-planned under newer rules",
      );
    }
    return {
      purchases: 1,
      moved: moved.length,
      cancelled: count("cancel"),
      skipped: count("skip"),
    };
  }

  /**
   * The purchases whose re-plan failed, each logged (by event id, the error's contact details
   * masked by the logger) and counted unless Redis was away. `away`: the first error that says
   * Redis is away or cannot serve now (the walk fails on it, to be tried again later). Any other
   * failure (a stored purchase this version cannot decode, a planning bug) is the purchase's own
   * and may fail every time: it must not hold up the others.
   */
  function failuresOf(
    eventIds: readonly string[],
    results: readonly PromiseSettledResult<ReplanSummary>[],
    during: "walk" | "noted",
    generation: number,
  ): { failed: string[]; away?: unknown } {
    const failed: string[] = [];
    let away: unknown;
    results.forEach((result, i) => {
      const eventId = eventIds[i];
      if (result.status !== "rejected" || eventId === undefined) return;
      failed.push(eventId);
      const error: unknown = result.reason;
      if (isRedisUnavailable(error)) {
        away ??= error;
        if (during === "walk") return;
      } else {
        deps.metrics?.replanFailures.inc({ during });
      }
      deps.logger.warn(
        // The error's name only: a decoder's message may quote the stored purchase.
        { error: errorName(error), eventId, generation },
        during === "walk"
          ? "re-planning a purchase under newer rules failed; it is noted to be tried again, and the walk goes on"
          : "re-planning a purchase planned under older rules failed; it is tried again later, or given up after its last try",
      );
    });
    return away === undefined ? { failed } : { failed, away };
  }

  async function replanBucket(
    bucket: number,
    rules: RuleSet,
    generation: number,
    stopped: () => boolean,
  ): Promise<ReplanSummary | undefined> {
    let summary = NOTHING;
    const seen = new Set<string>();
    for (let offset = 0; ; ) {
      const { refs, count } = await deps.schedule.read(bucket, offset, SLICE_SIZE);
      const eventIds = [...new Set(refs.map((r) => r.eventId))].filter((id) => !seen.has(id));
      for (let i = 0; i < eventIds.length; i += CONCURRENCY) {
        if (stopped()) return undefined;
        const batch = eventIds.slice(i, i + CONCURRENCY);
        for (const id of batch) seen.add(id);
        const turns = customerTurns(batch.length);
        const results = await Promise.allSettled(
          batch.map((id, n) => replanEvent(id, rules, generation, NONE, turns(n))),
        );
        for (const result of results)
          if (result.status === "fulfilled") summary = add(summary, result.value);
        // Redis away: the walk fails, and is tried again. A purchase that fails otherwise is left
        // as planned and noted for replanLater (and the promoter re-plans it before its steps
        // become jobs): the walk goes on, and completes.
        const { failed, away } = failuresOf(batch, results, "walk", generation);
        if (away !== undefined) throw away;
        await deps.schedule.noteLater(failed);
      }
      if (count < SLICE_SIZE) return summary;
      offset += count;
    }
  }

  async function replanAll(
    rules: RuleSet,
    generation: number,
    stopped: () => boolean = () => false,
  ): Promise<ReplanSummary> {
    let summary = NOTHING;
    for (let after = -1; ; ) {
      const buckets = await deps.schedule.bucketsAfter(after, BUCKET_PAGE);
      for (const bucket of buckets) {
        if (stopped()) return summary;
        if (await deps.schedule.replannedFor(bucket, generation)) continue;
        const done = await replanBucket(bucket, rules, generation, stopped);
        if (!done) return summary;
        summary = add(summary, done);
        await deps.schedule.markReplanned(bucket, generation);
      }
      if (buckets.length < BUCKET_PAGE) return summary;
      after = buckets[buckets.length - 1] ?? after;
    }
  }

  async function replanLater(
    rules: RuleSet,
    generation: number,
    stopped: () => boolean = () => false,
  ): Promise<ReplanSummary> {
    let summary = NOTHING;
    while (!stopped()) {
      const { walk, eventIds: drawn } = await deps.schedule.later(CONCURRENCY);
      if (walk > generation || drawn.length === 0) return summary;
      // One whose re-plan failed waits before it is tried again (nextLaterTry).
      const nowMs = deps.clock().toMillis();
      const tries = await deps.schedule.laterTries(drawn);
      const eventIds = drawn.filter((id) => (tries.get(id)?.nextAt ?? 0) <= nowMs);
      if (eventIds.length === 0) return summary;
      const turns = customerTurns(eventIds.length);
      const results = await Promise.allSettled(
        eventIds.map((id, n) => replanEvent(id, rules, generation, NONE, turns(n))),
      );
      const done = eventIds.filter((_, i) => results[i]?.status === "fulfilled");
      for (const result of results)
        if (result.status === "fulfilled") summary = add(summary, result.value);
      await deps.schedule.doneLater(done);
      // A purchase that fails stays noted, for a later run; the others go on.
      const { failed, away } = failuresOf(eventIds, results, "noted", generation);
      // Redis away: no try counted; the next run tries again.
      if (away !== undefined) return summary;
      for (const eventId of failed) {
        const failures = (tries.get(eventId)?.failures ?? 0) + 1;
        const next = nextLaterTry(failures, nowMs);
        if (!next.giveUp) {
          await deps.schedule.tryLaterAgain(eventId, { failures, nextAt: next.nextAt });
          continue;
        }
        // Given up (counted once, by the worker that took it off): its steps stay as planned,
        // and the promoter tries its re-plan once more before they become jobs.
        if (!(await deps.schedule.doneLater([eventId]))) continue;
        deps.metrics?.replanGivenUp.inc();
        deps.logger.warn(
          { eventId, generation, failures },
          "re-planning a purchase planned under older rules failed at every try: given up, its steps stay as planned",
        );
      }
      // Nothing but failures drawn: the next run tries again (no busy loop on them).
      if (failed.length > 0 && done.length === 0) return summary;
    }
    return summary;
  }

  return { replanEvent, replanAll, replanLater };
}
