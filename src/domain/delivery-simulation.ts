import { DateTime } from "luxon";
import type { ConsentTimeline } from "./consent-timeline.js";
import { DueQueue } from "./due-queue.js";
import type { Channel } from "./events.js";
import type { FrequencyCap, Purpose, RuleSet, StepKind } from "./rules.js";
import { decideSend, type GuardEvent, type GuardSkipCode } from "./send-guard.js";
import { budgetAllows, costOf, isPricedChannel } from "./spend.js";

/**
 * What the worker would send of a set of planned steps, replayed in due order without Redis:
 * the send-time guard (contact, consent, grace period, send windows), the per-customer frequency
 * caps with `whenCapped` (skip, defer, exempt), and the monthly budgets of priced channels. Pure:
 * time is the steps' own, so a year of purchases replays in seconds.
 *
 * Left out, because no replay can know them: rate limits (seconds), provider failures and
 * retries, opt-outs and refunds that arrive later, and fallbacks (sent only when a call is not
 * answered; the caller counts them apart).
 */

/** A planned step as the replay needs it. */
export interface ReplayStep {
  readonly eventId: string;
  readonly stepId: string;
  readonly kind: StepKind;
  readonly channel: Channel;
  readonly purpose: Purpose;
  /** When the planner made it due (epoch ms). */
  readonly dueAt: number;
  /** When its grace period ends, for a step planned late (PlannedStep.graceEndsAt). */
  readonly graceEndsAt?: number;
  /** The purchase's customer and store as the guard reads them; the purchase's steps share it. */
  readonly event: GuardEvent;
  /**
   * SMS only: segments of the body as the worker renders it, without and with the opt-out line
   * (the first SMS to a number carries it); null when it cannot be rendered within the cap (the
   * worker fails such a step at send time).
   */
  readonly smsSegments?: { readonly later: number; readonly first: number } | null;
  /**
   * A thank-you that joined an earlier purchase's (rules' `coalesce`): that one's replayKey. It is
   * skipped as coalesced once that one went out, and goes on its own if that one never does.
   */
  readonly joinedTo?: string;
}

/** Why a replayed step was not sent: the guard's codes, and the replay's own. */
export type ReplaySkipCode =
  | GuardSkipCode
  | "capped"
  | "budget-reached"
  | "render-failed"
  /** A joined thank-you whose leader's went out thanking for it too: counted apart (`coalesced`). */
  | "coalesced";

/** How one step ended in the replay. */
export type ReplayOutcome =
  | {
      readonly outcome: "sent";
      readonly step: ReplayStep;
      /** When it went out (epoch ms). */
      readonly at: number;
      /** It waited for a frequency cap first (`whenCapped: defer`). */
      readonly waited: boolean;
      /** SMS segments, null for other channels. */
      readonly segments: number | null;
      /** Its cost in micros of the default currency; null when unpriced (and for email). */
      readonly costMicros: number | null;
    }
  | {
      readonly outcome: "skipped";
      readonly step: ReplayStep;
      readonly at: number;
      readonly waited: boolean;
      readonly code: ReplaySkipCode;
    };

/** Messages sent in one calendar month (rules' default zone) on one channel, and their cost. */
export interface MonthlySpend {
  /** `YYYY-MM`. */
  readonly month: string;
  readonly channel: Channel;
  readonly messages: number;
  /** SMS segments; 0 for other channels. */
  readonly segments: number;
  /** Summed cost in micros; null for a channel without prices (email). */
  readonly costMicros: number | null;
  /** Messages on a priced channel to numbers no price covers (not in costMicros). */
  readonly unpriced: number;
}

/** How the steps of one channel and kind ended. */
export interface KindOutcomes {
  readonly channel: Channel;
  readonly kind: StepKind;
  /** Sent, on time or after waiting. */
  readonly sent: number;
  /** Of those sent, how many waited for a frequency cap first. */
  readonly waited: number;
  /** Skipped, by code. */
  readonly skipped: Readonly<Record<string, number>>;
}

export interface DeliveryReplay {
  /** By month, then channel. */
  readonly months: readonly MonthlySpend[];
  /** By channel, then kind. */
  readonly outcomes: readonly KindOutcomes[];
  /** Thank-yous that joined an earlier purchase's and were thanked for in it (not in outcomes). */
  readonly coalesced: number;
}

interface Pending {
  readonly step: ReplayStep;
  waited: boolean;
}

/** A thank-you's key among the replayed steps: its event and step ids. */
export function replayKey(eventId: string, stepId: string): string {
  return `${eventId}\u0000${stepId}`;
}

/**
 * Replays `steps` (in any order) as the worker would deliver them, in the order they fall due;
 * `observe` sees every step's outcome as it happens.
 */
export function replayDeliveries(
  steps: Iterable<ReplayStep>,
  rules: RuleSet,
  observe?: (outcome: ReplayOutcome) => void,
  /** The consent every purchase stated (also those without steps): the latest one stands. */
  consents?: ConsentTimeline,
): DeliveryReplay {
  const replayer = new DeliveryReplayer(rules, observe, consents);
  for (const step of steps) replayer.add(step);
  return replayer.finish();
}

/**
 * The replay run as the purchases are read (DeliveryReplayer.runUntil before each one arrives),
 * so that what has gone out by a purchase's arrival is known when it is filed with a thank-you
 * group: as in the worker, a group closes when its leader's thank-you goes out, not when it was
 * planned to (a cap or a send window may defer it). A thank-you that joined an earlier purchase's
 * (`joinedTo`) is decided as the worker decides it: after the send-time guard, skipped as
 * coalesced once that one went out, waiting while it may still go, and on its own (caps and all)
 * once it was skipped.
 */
export class DeliveryReplayer {
  private readonly queue = new DueQueue<Pending>();
  private readonly caps = new CapWindows();
  private readonly spend: BudgetMonths;
  private readonly texted = new Set<string>();
  private readonly tally = new Tally();
  private readonly none: ReadonlySet<Channel> = new Set();
  /** When each step went out (replayKey). */
  private readonly sentAt = new Map<string, number>();
  /** Steps that ended without going (replayKey). */
  private readonly ended = new Set<string>();
  /** Where each waiting step is queued (replayKey), for the thank-yous that wait behind it. */
  private readonly queuedAt = new Map<string, number>();
  /** The latest instant replayed: steps added later are due no earlier. */
  private clock = Number.NEGATIVE_INFINITY;
  private coalescedCount = 0;

  constructor(
    private readonly rules: RuleSet,
    private readonly observe?: (outcome: ReplayOutcome) => void,
    private readonly consents?: ConsentTimeline,
    /** How long after its leader's a joined thank-you is looked at (COALESCED_AFTER_MS). */
    private readonly joinedAfterMs = 15 * 60_000,
  ) {
    this.spend = new BudgetMonths(rules.defaults.timezone);
  }

  /** Adds a planned step; one due before what was replayed already is looked at from there. */
  add(step: ReplayStep): void {
    this.enqueue(Math.max(step.dueAt, this.clock), { step, waited: false });
  }

  /** When the step (replayKey) went out, if it has by the replay's time. */
  wentAt(key: string): number | undefined {
    return this.sentAt.get(key);
  }

  /** Replays every step due up to and including `at` (epoch ms). */
  runUntil(at: number): void {
    for (let next = this.queue.peekAt(); next !== undefined && next <= at; ) {
      const popped = this.queue.pop();
      if (!popped) break;
      this.clock = Math.max(this.clock, popped.at);
      this.decide(popped.at, popped.item);
      next = this.queue.peekAt();
    }
    this.clock = Math.max(this.clock, at);
  }

  /** Replays what is left; the counts. */
  finish(): DeliveryReplay {
    this.runUntil(Number.POSITIVE_INFINITY);
    return { ...this.tally.result(), coalesced: this.coalescedCount };
  }

  private enqueue(at: number, pending: Pending): void {
    this.queuedAt.set(replayKey(pending.step.eventId, pending.step.stepId), at);
    this.queue.push(at, pending);
  }

  private decide(at: number, pending: Pending): void {
    const { rules } = this;
    const { step } = pending;
    const key = replayKey(step.eventId, step.stepId);
    this.queuedAt.delete(key);
    const end = (outcome: ReplayOutcome) => {
      if (outcome.outcome === "sent") this.sentAt.set(key, outcome.at);
      else this.ended.add(key);
      // Thanked for in its leader's message: counted apart, not among the kind's skips.
      if (outcome.outcome === "skipped" && outcome.code === "coalesced") this.coalescedCount++;
      else this.tally.add(outcome);
      this.observe?.(outcome);
    };
    const skip = (code: ReplaySkipCode) =>
      end({ outcome: "skipped", step, at, waited: pending.waited, code });

    const decision = decideSend({
      event: step.event,
      stepId: step.stepId,
      dueAt: step.dueAt,
      ...(step.graceEndsAt !== undefined && { graceEndsAt: step.graceEndsAt }),
      rules,
      now: DateTime.fromMillis(at, { zone: "utc" }),
      suppressedChannels: this.none,
      ...(this.consents && { latestConsent: this.consents.at(step.event.customer.id, at) }),
    });
    if (decision.action === "defer") {
      this.enqueue(decision.until.toMillis(), pending);
      return;
    }
    if (decision.action === "skip") {
      skip(decision.code);
      return;
    }

    // A thank-you that joined an earlier purchase's, as the worker decides it after the guard.
    if (step.joinedTo !== undefined) {
      if (this.sentAt.has(step.joinedTo)) {
        skip("coalesced");
        return;
      }
      const leaderAt = this.queuedAt.get(step.joinedTo);
      if (leaderAt !== undefined && !this.ended.has(step.joinedTo)) {
        this.enqueue(Math.max(at + JOINED_RECHECK_MS, leaderAt + this.joinedAfterMs), pending);
        return;
      }
    }

    // The frequency caps, as take-cap-slot.lua applies them at send time.
    const capped = rules.whenCapped[step.kind];
    const customerId = step.event.customer.id;
    if (capped !== "exempt") {
      const freeAt = this.caps.freeAt(
        step.channel,
        customerId,
        rules.frequencyCaps[step.channel],
        at,
      );
      if (freeAt !== undefined) {
        if (capped === "defer") {
          pending.waited = true;
          this.enqueue(freeAt, pending);
        } else {
          skip("capped");
        }
        return;
      }
    }

    const phone = step.event.customer.phone;
    let segments: number | null = null;
    if (step.channel === "sms") {
      if (!step.smsSegments) {
        skip("render-failed");
        return;
      }
      segments = phone && !this.texted.has(phone) ? step.smsSegments.first : step.smsSegments.later;
    }

    // The month's budget of a priced channel, counted in what was sent this calendar month.
    let costMicros: number | null = null;
    if (isPricedChannel(step.channel) && phone) {
      const units = segments ?? rules.spend.estimatedCallMinutes;
      costMicros = costOf(rules.spend, step.channel, phone, units)?.micros ?? null;
      const spent = this.spend.spent(step.channel, at);
      if (!budgetAllows(rules.spend.budgets[step.channel], step.purpose, spent)) {
        skip("budget-reached");
        return;
      }
      this.spend.add(step.channel, at, costMicros ?? 0);
    }

    if (capped !== "exempt") this.caps.take(step.channel, customerId, at);
    if (step.channel === "sms" && phone) this.texted.add(phone);
    this.tally.sent(this.spend.monthOf(at), step.channel, segments, costMicros, rules);
    end({ outcome: "sent", step, at, waited: pending.waited, segments, costMicros });
  }
}

/** How soon a joined thank-you whose leader's has not gone looks again at the least (the worker's). */
const JOINED_RECHECK_MS = 60_000;

/**
 * Each customer's sends per channel, oldest first, for the sliding-window caps. The replay's
 * clock only moves forward, so sends are appended in order and the old ones drop off the front.
 */
class CapWindows {
  private readonly sends = new Map<string, number[]>();

  /** When the tightest cap frees up, or undefined when every cap has room at `now`. */
  freeAt(
    channel: Channel,
    customerId: string,
    caps: readonly FrequencyCap[],
    now: number,
  ): number | undefined {
    if (caps.length === 0) return undefined;
    return capFreeAt(this.sends.get(`${channel}\u0000${customerId}`) ?? [], caps, now);
  }

  take(channel: Channel, customerId: string, now: number): void {
    const key = `${channel}\u0000${customerId}`;
    const sends = this.sends.get(key) ?? [];
    sends.push(now);
    this.sends.set(key, sends);
  }
}

/**
 * The sliding window of take-cap-slot.lua: a cap `{ max, per }` is reached when `max` sends lie
 * within the `per` before `now` (exclusive of its start); it frees when the oldest of the last
 * `max` leaves it. Returns the latest such instant over all reached caps, or undefined.
 * `sends` are the customer's send times on the channel, oldest first.
 */
export function capFreeAt(
  sends: readonly number[],
  caps: readonly FrequencyCap[],
  now: number,
): number | undefined {
  let freeAt: number | undefined;
  for (const cap of caps) {
    // Sends within (now - per, now]: from the first later than now - per to the end.
    let first = sends.length;
    while (first > 0 && (sends[first - 1] ?? 0) > now - cap.perMs) first--;
    const inWindow = sends.length - first;
    if (inWindow < cap.max) continue;
    const frees = (sends[sends.length - cap.max] ?? 0) + cap.perMs;
    if (freeAt === undefined || frees > freeAt) freeAt = frees;
  }
  return freeAt;
}

/** Spend per priced channel in the current calendar month of the rules' default zone. */
class BudgetMonths {
  private month = "";
  private start = Number.POSITIVE_INFINITY;
  private end = Number.NEGATIVE_INFINITY;
  private readonly spentByChannel = new Map<Channel, number>();

  constructor(private readonly zone: string) {}

  /** `YYYY-MM` of `at` in the zone; the replay's clock only moves forward, so one month is kept. */
  monthOf(at: number): string {
    if (at >= this.start && at < this.end) return this.month;
    const local = DateTime.fromMillis(at, { zone: this.zone }).startOf("month");
    this.start = local.toMillis();
    this.end = local.plus({ months: 1 }).toMillis();
    this.month = local.toFormat("yyyy-MM");
    this.spentByChannel.clear();
    return this.month;
  }

  spent(channel: Channel, at: number): number {
    this.monthOf(at);
    return this.spentByChannel.get(channel) ?? 0;
  }

  add(channel: Channel, at: number, micros: number): void {
    this.monthOf(at);
    this.spentByChannel.set(channel, (this.spentByChannel.get(channel) ?? 0) + micros);
  }
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The replay's counts, kept small: one entry per month and channel, one per channel and kind. */
class Tally {
  private readonly months = new Map<string, Mutable<MonthlySpend>>();
  private readonly kinds = new Map<
    string,
    { channel: Channel; kind: StepKind; sent: number; waited: number; skipped: Map<string, number> }
  >();

  add(outcome: ReplayOutcome): void {
    const { channel, kind } = outcome.step;
    const key = `${channel}\u0000${kind}`;
    const entry = this.kinds.get(key) ?? { channel, kind, sent: 0, waited: 0, skipped: new Map() };
    this.kinds.set(key, entry);
    if (outcome.outcome === "sent") {
      entry.sent++;
      if (outcome.waited) entry.waited++;
    } else {
      entry.skipped.set(outcome.code, (entry.skipped.get(outcome.code) ?? 0) + 1);
    }
  }

  sent(
    month: string,
    channel: Channel,
    segments: number | null,
    costMicros: number | null,
    rules: RuleSet,
  ): void {
    const key = `${month}\u0000${channel}`;
    const priced = isPricedChannel(channel) && rules.spend.prices[channel] !== undefined;
    let entry = this.months.get(key);
    if (!entry) {
      entry = {
        month,
        channel,
        messages: 0,
        segments: 0,
        costMicros: priced ? 0 : null,
        unpriced: 0,
      };
      this.months.set(key, entry);
    }
    entry.messages++;
    entry.segments += segments ?? 0;
    if (entry.costMicros !== null) entry.costMicros += costMicros ?? 0;
    if (priced && costMicros === null) entry.unpriced++;
  }

  result(): Omit<DeliveryReplay, "coalesced"> {
    return {
      months: [...this.months.values()].sort(
        (a, b) => a.month.localeCompare(b.month) || a.channel.localeCompare(b.channel),
      ),
      outcomes: [...this.kinds.values()]
        .map(({ skipped, ...rest }) => ({
          ...rest,
          skipped: Object.fromEntries(
            [...skipped.entries()].sort(([a], [b]) => a.localeCompare(b)),
          ),
        }))
        .sort((a, b) => a.channel.localeCompare(b.channel) || a.kind.localeCompare(b.kind)),
    };
  }
}
