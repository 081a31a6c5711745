import type { ChainableCommander } from "ioredis";
import type { CheckInOutcome } from "../domain/check-in-comparison.js";
import { CHANNELS, type Channel } from "../domain/events.js";
import { type Money, minorUnitChanged } from "../domain/money.js";
import { dayOf, hourOf, type Scope, StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";
import { RECEIPT_SECONDS } from "./webhook-receipts.js";

/**
 * The ledger: what happened to follow-ups, counted per hour (`sent|email|thank-you|big-ticket`,
 * plus reason fields), and how many steps are pending per due day. Step state changes are counted
 * by the step scripts in the same atomic call (see FollowUpStore); everything else goes through
 * `count`. Reports read it back here. Hours make report periods exact in any zone whose offset is
 * whole hours; elsewhere (St John's, Kolkata, Kathmandu) a period counts the hours that start
 * within it, so adjacent periods share none and every hour counts in one of them.
 */

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const QUARTER_HOUR_MS = HOUR_MS / 4;

/** Hourly aggregates are kept this long: reports compare periods up to a year back. */
export const AGGREGATE_RETENTION_MS = 401 * 24 * HOUR_MS;

/** Pending follow-ups counted together: one channel and rule, due in one quarter hour. */
export interface PendingCount {
  readonly channel: string;
  /** null for steps planned before rules were counted (2026-12-02). */
  readonly ruleId: string | null;
  /** Start of the quarter hour they fall due in (epoch ms). */
  readonly at: number;
  readonly count: number;
}

/**
 * Pending counts due in [from, to) (epoch ms), added up by channel; a channel's total is never
 * below 0 (counts may come with corrections: a postponed follow-up's move,
 * operations/postponed-moves.ts).
 */
export function pendingByChannel(
  counts: readonly PendingCount[],
  from: number,
  to: number,
): Record<Channel, number> {
  const totals = Object.fromEntries(CHANNELS.map((c) => [c, 0])) as Record<Channel, number>;
  for (const count of counts) {
    if (count.at < from || count.at >= to || !(count.channel in totals)) continue;
    totals[count.channel as Channel] += count.count;
  }
  for (const channel of CHANNELS) totals[channel] = Math.max(0, totals[channel]);
  return totals;
}

/** Start of the quarter hour an instant falls in: the time pending counts are kept under. */
export function quarterHourOf(epochMs: number): number {
  return Math.floor(epochMs / QUARTER_HOUR_MS) * QUARTER_HOUR_MS;
}

/** One counted outcome: which step kind on which channel, by which rule, and why if it did not go out. */
export interface LedgerEntry {
  readonly outcome: string;
  readonly channel: string;
  readonly kind: string;
  readonly ruleId: string;
  /** Reason code (`capped`, `permanent 550`, `refunded`); never free text. */
  readonly reason?: string;
  /**
   * A send of a discount code this step sent before (a resend after a send the provider
   * accepted): also counted as `codeagain|…`, so that codes sent count each code once.
   */
  readonly codeAgain?: true;
}

/** One hour of ledger counts, by aggregate field. */
export interface LedgerHour {
  /** Start of the hour, epoch ms. */
  readonly start: number;
  readonly counts: ReadonlyMap<string, number>;
}

/** `sent|email|thank-you|big-ticket`: field of the hourly aggregate hash. */
export function ledgerField(
  outcome: string,
  channel: string,
  kind: string,
  ruleId: string,
): string {
  return `${outcome}|${channel}|${kind}|${ruleId}`;
}

/** `reason|failed|email|thank-you|permanent 550`. */
export function reasonField(
  outcome: string,
  channel: string,
  kind: string,
  reason: string,
): string {
  return `reason|${outcome}|${channel}|${kind}|${reason}`;
}

/**
 * `checkin|sent`, `checkin|skipped|no-consent`: a customer whose check-in ended so, counted in the
 * hour it went out (or would have); `checkin-back|…` the same customer when they bought again
 * within the attribution window after it, counted into that same hour.
 */
export function checkInField(outcome: CheckInOutcome, cameBack: boolean): string {
  const tag = cameBack ? "checkin-back" : "checkin";
  return outcome.code === undefined
    ? `${tag}|${outcome.group}`
    : `${tag}|${outcome.group}|${outcome.code}`;
}

/**
 * How long a ledger hour written at `now` is kept: the retention from the hour's start, so an hour
 * counted into ahead of time (a check-in that would have gone out later) lasts as long as any.
 */
export function hourRetentionMs(hour: number, now: number): number {
  return Math.max(0, hour * HOUR_MS - now) + AGGREGATE_RETENTION_MS;
}

/** The aggregate fields an entry is counted in. */
export function entryFields(entry: LedgerEntry): string[] {
  const fields = [ledgerField(entry.outcome, entry.channel, entry.kind, entry.ruleId)];
  if (entry.reason)
    fields.push(reasonField(entry.outcome, entry.channel, entry.kind, entry.reason));
  if (entry.codeAgain)
    fields.push(ledgerField("codeagain", entry.channel, entry.kind, entry.ruleId));
  return fields;
}

/** The ledger spec the step scripts count a state change with (lib/ledger-count.lua). */
export function changeSpec(entry: LedgerEntry): string {
  return JSON.stringify({
    f: entryFields(entry),
    ttl: AGGREGATE_RETENTION_MS,
    ch: entry.channel,
    r: entry.ruleId,
  });
}

/** The ledger keys a step script touches for a change at `now` to a step due at `dueAt`. */
export function changeKeys(
  keys: StoreKeys,
  now: number,
  dueAt: number,
): { hourKey: string; dayKey: string; day: number } {
  const day = dayOf(dueAt);
  return { hourKey: keys.ledgerHour(hourOf(now)), dayKey: keys.pendingDay(day), day };
}

export class DeliveryLedger {
  private readonly redis: RedisClient & StoreCommands;
  private readonly keys: StoreKeys;

  constructor(redis: RedisClient, scope: Scope) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(scope);
  }

  /** Counts outcomes that are not step state changes (opt-outs, replies, skips at planning). */
  async count(entries: LedgerEntry | readonly LedgerEntry[], now: number): Promise<void> {
    const fields = [entries].flat().flatMap(entryFields);
    if (fields.length === 0) return;
    await this.redis.fuCountOutcomes(
      this.keys.globalLedgerHour(hourOf(now)),
      AGGREGATE_RETENTION_MS,
      ...fields,
    );
  }

  /**
   * Counts an outcome a webhook reported, once per receipt (provider message id): the receipt is
   * remembered in the same step, so a retried webhook counts it once. False for a replay.
   */
  async countOnce(receipt: string, entry: LedgerEntry, now: number): Promise<boolean> {
    const counted = await this.redis.fuCountOnce(
      this.keys.webhookReceipt(receipt),
      this.keys.globalLedgerHour(hourOf(now)),
      RECEIPT_SECONDS,
      AGGREGATE_RETENTION_MS,
      ...entryFields(entry),
    );
    return counted === 1;
  }

  /**
   * Counts a message's final outcome a webhook reported, once per receipt, unless the
   * contradicting outcome's receipt was counted first (count-first-outcome.lua): a message is
   * counted delivered or undelivered, never both. `counted`, `seen` (a replay of this outcome) or
   * `contradicted` (the other outcome was counted; nothing counted).
   */
  async countFirstOutcome(
    receipt: string,
    contradicting: string,
    entry: LedgerEntry,
    now: number,
  ): Promise<"counted" | "seen" | "contradicted"> {
    const counted = await this.redis.fuCountFirstOutcome(
      this.keys.webhookReceipt(receipt),
      this.keys.webhookReceipt(contradicting),
      this.keys.globalLedgerHour(hourOf(now)),
      RECEIPT_SECONDS,
      AGGREGATE_RETENTION_MS,
      ...entryFields(entry),
    );
    return counted === 1 ? "counted" : counted === 0 ? "seen" : "contradicted";
  }

  /**
   * Moves one count from `from` to `to` in the hour of `at`, once per receipt: an outcome a
   * webhook reported and counted, corrected by a later one (a call's end counted as a person
   * reached, which a pick-up replayed from the webhook spool shows was hung up on). False for a
   * replay.
   */
  async recountOnce(
    receipt: string,
    from: LedgerEntry,
    to: LedgerEntry,
    at: number,
  ): Promise<boolean> {
    const counted = await this.redis.fuCountOnce(
      this.keys.webhookReceipt(receipt),
      this.keys.globalLedgerHour(hourOf(at)),
      RECEIPT_SECONDS,
      AGGREGATE_RETENTION_MS,
      ...entryFields(from).map((field) => `${field}\n-1`),
      ...entryFields(to),
    );
    return counted === 1;
  }

  /**
   * Counts a purchase event's skips at planning once, into its shard's ledger, marked in its
   * record (count-in-record.lua): a retried or re-published event counts nothing again, for as
   * long as it is recognised. False when counted before (or the record is gone).
   */
  async countSkipsAtPlanning(
    eventId: string,
    entries: readonly LedgerEntry[],
    now: number,
  ): Promise<boolean> {
    return this.countInRecord(eventId, "cs", now, entries.flatMap(entryFields));
  }

  /**
   * Counts a purchase a follow-up brought back, once per purchase (marked in its record, like
   * its skips): `back|…` the order, `backrev|…|<currency>` its total in minor units, under the
   * follow-up's channel, kind and rule and how it was attributed. A total in a currency whose
   * minor unit changed (money.ts FORMER_MINOR_DIGITS) goes to `backrev4217|…|<currency>`, in ISO
   * 4217 minor units: its `backrev` field, which ledger hours of earlier versions hold, counts
   * the former units (reports convert it), and versions up to 6 December 2026 skip the new one
   * rather than misread it.
   */
  async countBroughtBack(
    purchaseEventId: string,
    to: { readonly channel: string; readonly kind: string; readonly ruleId: string },
    by: "code" | "recent",
    total: Money,
    now: number,
  ): Promise<boolean> {
    const base = `${to.channel}|${to.kind}|${to.ruleId}|${by}`;
    return this.countInRecord(purchaseEventId, "cb", now, [
      `back|${base}`,
      `${minorUnitChanged(total.currency) ? "backrev4217" : "backrev"}|${base}|${total.currency}\n${total.minor}`,
    ]);
  }

  private async countInRecord(
    eventId: string,
    mark: "cs" | "cb",
    now: number,
    fields: readonly string[],
  ): Promise<boolean> {
    if (fields.length === 0) return false;
    const counted = await this.redis.fuCountInRecord(
      this.keys.eventRecord(eventId),
      this.keys.ledgerHour(hourOf(now)),
      mark,
      AGGREGATE_RETENTION_MS,
      ...fields,
    );
    return counted === 1;
  }

  /**
   * Counts that a customer bought again within the attribution window after their check-in (sent
   * or skipped, at `at`), into the check-in's own hour, once per check-in: a replayed purchase or
   * a second one adds nothing. `purchaseHash` names the check-in's purchase. False when known.
   */
  async countCheckInReturn(
    purchaseHash: string,
    outcome: CheckInOutcome,
    at: number,
    now: number,
    keepReceiptMs: number,
  ): Promise<boolean> {
    const hour = hourOf(at);
    const counted = await this.redis.fuCountOnce(
      this.keys.webhookReceipt(`checkin-back:${purchaseHash}`),
      this.keys.globalLedgerHour(hour),
      Math.ceil(keepReceiptMs / 1000),
      hourRetentionMs(hour, now),
      checkInField(outcome, true),
    );
    return counted === 1;
  }

  /**
   * Every hour that starts in [since, until) and has counts: the global ledger's and every
   * shard's, added up. An hour belongs to the period it starts in, so periods whose bounds are
   * not whole hours (a zone offset by half an hour) partition the hours: none is counted in two
   * adjacent periods, and a period that starts after an hour has begun leaves that hour out. Each
   * ledger is read in pipelines of READ_CHUNK hours, a few ledgers at a time (READ_LANES; on a
   * Redis Cluster a pipeline keeps to one slot).
   */
  async hours(since: number, until: number): Promise<LedgerHour[]> {
    const first = Math.ceil(since / HOUR_MS);
    const last = Math.ceil(until / HOUR_MS) - 1;
    const ledgers = await inLanes(this.keys.ledgers(), (hourKey) =>
      readInChunks(this.redis, first, last, (pipeline, hour) => pipeline.hgetall(hourKey(hour))),
    );
    const counts = new Map<number, Map<string, number>>();
    for (const replies of ledgers) {
      replies.forEach(([error, value], index) => {
        if (error) throw error;
        for (const [field, raw] of Object.entries((value ?? {}) as Record<string, string>)) {
          const hour = counts.get(index) ?? new Map<string, number>();
          hour.set(field, (hour.get(field) ?? 0) + Number(raw));
          counts.set(index, hour);
        }
      });
    }
    return [...counts.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, fields]) => ({ start: (first + index) * HOUR_MS, counts: fields }));
  }

  /** Follow-ups still pending whose due day (UTC) lies in [from's day, + days), by channel. */
  async pending(from: number, days: number): Promise<Record<Channel, number>> {
    const first = dayOf(from) * DAY_MS;
    return pendingByChannel(await this.pendingCounts(from, days), first, first + days * DAY_MS);
  }

  /**
   * Pending follow-ups whose due day (UTC) lies in [from, from + days), as counted: by channel,
   * rule and the quarter hour they fall due in. Steps planned before 2026-12-02 were counted by
   * channel alone (no rule, and the UTC day's start as their time).
   */
  async pendingCounts(from: number, days: number): Promise<PendingCount[]> {
    const firstDay = dayOf(from);
    // Every shard's counts, a few shards at a time (a pipeline keeps to one slot on a cluster).
    const shards = Array.from({ length: this.keys.shards }, (_, n) => this.keys.ofShard(n));
    const replies = await inLanes(shards, (keys) =>
      readInChunks(this.redis, firstDay, firstDay + days - 1, (pipeline, day) =>
        pipeline.hgetall(keys.pendingDay(day)),
      ),
    );
    const totals = new Map<string, PendingCount>();
    for (const shard of replies) {
      shard.forEach(([error, value], index) => {
        if (error) throw error;
        const dayStart = (firstDay + index) * DAY_MS;
        for (const [field, raw] of Object.entries((value ?? {}) as Record<string, string>)) {
          // A shard's count can be below 0 after `followups reshard` (a step counted in its old
          // shard, taken off in its new one): shards are added up before anything is left out.
          const count = Number(raw);
          if (!Number.isFinite(count) || count === 0) continue;
          const [channel = "", ruleId, quarter] = field.split("|");
          const at = dayStart + (quarter === undefined ? 0 : Number(quarter) * QUARTER_HOUR_MS);
          const key = `${at}|${field}`;
          const seen = totals.get(key);
          totals.set(key, {
            channel,
            ruleId: ruleId ?? null,
            at,
            count: (seen?.count ?? 0) + count,
          });
        }
      });
    }
    return [...totals.values()].filter((total) => total.count > 0);
  }
}

/** Adds up hours into one map of field → count. */
export function sumHours(hours: readonly LedgerHour[]): Map<string, number> {
  const total = new Map<string, number>();
  for (const hour of hours) {
    for (const [field, count] of hour.counts) total.set(field, (total.get(field) ?? 0) + count);
  }
  return total;
}

/**
 * Hours (or days) read per pipeline, and pipelines in flight at once (READ_LANES): a year is
 * 8,760 hours per ledger, one per shard and a global one, and each command of a pipeline has the
 * connection's command timeout (2 s for the HTTP server's) from when the whole pipeline was
 * written; a busy Redis answering a year of five ledgers at once took 1.8 s.
 */
const READ_CHUNK = 1_000;
const READ_LANES = 4;

/** `read` of every item, at most READ_LANES at a time; the results in the items' order. */
async function inLanes<T, R>(items: readonly T[], read: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < items.length; i = next++) results[i] = await read(items[i] as T);
  };
  await Promise.all(Array.from({ length: Math.min(READ_LANES, items.length) }, lane));
  return results;
}

/** The replies to `read(pipeline, n)` for n in [first, last], READ_CHUNK per pipeline in turn. */
async function readInChunks(
  redis: RedisClient,
  first: number,
  last: number,
  read: (pipeline: ChainableCommander, n: number) => void,
): Promise<[Error | null, unknown][]> {
  const replies: [Error | null, unknown][] = [];
  for (let start = first; start <= last; start += READ_CHUNK) {
    const pipeline = redis.pipeline();
    for (let n = start; n <= Math.min(last, start + READ_CHUNK - 1); n++) read(pipeline, n);
    const chunk = await pipeline.exec();
    // Every read must answer, or the rest would be counted under the wrong hours.
    if (chunk === null) throw new Error("a ledger read got no replies");
    replies.push(...chunk);
  }
  return replies;
}
