import type { Redis } from "ioredis";
import type { PurchaseCompleted } from "../domain/events.js";
import type { CustomerHistory } from "../domain/rules.js";
import { eventKey } from "../queue/names.js";
import { decodePurchase, encodePurchase } from "./purchase-codec.js";
import { addressMember } from "./suppression-list.js";

/**
 * What is kept about one purchase: a hash with one field per step holding its send state (plus
 * the history count, a summary for reports and a stop marker), and beside it the purchase itself,
 * compressed, for rendering. A hash per event, not a key per step, and short state values keep the
 * hash a compact listpack while steps wait; every state change is one atomic script.
 */

export const STEP_STATES = [
  "scheduled",
  "sending",
  "sent",
  "failed",
  "skipped",
  "cancelled",
] as const;
export type StepState = (typeof STEP_STATES)[number];
/** States after which nothing more happens to a step. */
export const TERMINAL_STATES: ReadonlySet<StepState> = new Set([
  "sent",
  "failed",
  "skipped",
  "cancelled",
]);

/** A step's send state as stored (short keys: there is one per pending follow-up). */
export interface StepRecord {
  /** State. */
  readonly s: StepState;
  /** When the state was entered (epoch ms). */
  readonly t: number;
  /** Due instant (epoch ms) as planned. */
  readonly d: number;
  /** Send attempts made so far. */
  readonly a: number;
  /** Provider message id once sent. */
  readonly id?: string;
  /** Reason code and words for failed, skipped or cancelled; last error while retrying. */
  readonly x?: string;
  /** How often a send was taken over after its sender vanished (a possible duplicate each time). */
  readonly r?: number;
  /** Twilio's last delivery status and error code. */
  readonly dl?: string;
  readonly de?: number;
  /** A reply to a check-in: its text and when it came (epoch ms). */
  readonly rp?: string;
  readonly rt?: number;
}

export type ClaimResult =
  | { readonly claimed: true; readonly record: StepRecord; readonly takenOver: boolean }
  | { readonly claimed: false; readonly record: StepRecord };

/** Where versions before the purchase key kept the purchase, as JSON. */
const LEGACY_EVENT_FIELD = "event";
/** The customer's earlier purchases as counted when this event was first seen. */
const HISTORY_FIELD = "h";
/** Order id and customer name, kept after the event is scrubbed, for owners' reports. */
const SUMMARY_FIELD = "m";
const stepField = (stepId: string) => `s:${stepId}`;

/**
 * Lua shared by the state scripts: counts a change into the hourly ledger aggregates and keeps the
 * per-day count of pending steps (for "coming up" figures) in step with the states, in the same
 * atomic script as the state change itself, so concurrent workers and retries count exactly once.
 */
const LEDGER_LUA = `
local PENDING = { scheduled = true, sending = true }
local function countChange(spec, now, oldState, newState, due)
  if not spec then return end
  local hour = spec.p .. 'agg:' .. math.floor(now / 3600000)
  for _, field in ipairs(spec.f) do redis.call('HINCRBY', hour, field, 1) end
  redis.call('PEXPIRE', hour, spec.ttl)
  local dueKey = spec.p .. 'due:' .. math.floor(due / 86400000)
  -- A bucket whose day has passed has expired: nothing to take away, and no key without a TTL.
  if PENDING[oldState] and not PENDING[newState] and redis.call('EXISTS', dueKey) == 1 then
    redis.call('HINCRBY', dueKey, spec.ch, -1)
  end
end
local function scrubIfDone(key, purchaseKey)
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 2) == 's:' and PENDING[cjson.decode(fields[i + 1]).s] then return end
  end
  redis.call('DEL', purchaseKey)
  -- Records written before the purchase had a key of its own kept it in the hash.
  redis.call('HDEL', key, 'event')
end
`;

/**
 * Moves a step to `sending` if it is scheduled, or if its previous sender's lease ran out (a
 * crashed worker). Returns the state found and whether the claim succeeded.
 */
const CLAIM_SCRIPT = `${LEDGER_LUA}
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local now = tonumber(ARGV[2])
local rec
if raw then rec = cjson.decode(raw) else rec = { s = 'scheduled', t = now, d = now, a = 0 } end
local takenOver = rec.s == 'sending' and rec.t + tonumber(ARGV[3]) <= now
local stop = redis.call('HGET', KEYS[1], 'stop')
if stop and (rec.s == 'scheduled' or takenOver) then
  rec.s = 'cancelled'
  rec.x = stop
  rec.t = now
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
  if ARGV[4] ~= '' then countChange(cjson.decode(ARGV[4]), now, 'scheduled', 'cancelled', rec.d) end
  scrubIfDone(KEYS[1], KEYS[2])
  return { 0, cjson.encode(rec), 0 }
end
if rec.s == 'scheduled' or takenOver then
  if takenOver then rec.r = (rec.r or 0) + 1 end
  rec.s = 'sending'
  rec.t = now
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
  return { 1, cjson.encode(rec), takenOver and 1 or 0 }
end
return { 0, raw, 0 }
`;

/** Applies a patch to a step record if its state is one of the expected ones. */
const UPDATE_SCRIPT = `${LEDGER_LUA}
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw and redis.call('EXISTS', KEYS[1]) == 0 then return { 0, '' } end
local now = tonumber(ARGV[2])
local rec
if raw then rec = cjson.decode(raw) else rec = { s = 'scheduled', t = now, d = now, a = 0 } end
local allowed = false
for state in string.gmatch(ARGV[3], '[^,]+') do
  if rec.s == state then allowed = true end
end
if not allowed then return { 0, raw or '' } end
local oldState = rec.s
local patch = cjson.decode(ARGV[4])
for k, v in pairs(patch) do rec[k] = v end
rec.t = now
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
if ARGV[5] ~= '' then countChange(cjson.decode(ARGV[5]), now, oldState, rec.s, rec.d) end
if PENDING[oldState] and not PENDING[rec.s] then scrubIfDone(KEYS[1], KEYS[2]) end
return { 1, cjson.encode(rec) }
`;

/**
 * Records new steps as scheduled (existing ones untouched), counting only the new ones, then saves
 * the purchase (for rendering, in its own key: KEYS[2]; a saved one is kept, never overwritten)
 * with its summary and expiry. One script, so the purchase and its steps appear together.
 */
const SCHEDULE_SCRIPT = `${LEDGER_LUA}
local now = tonumber(ARGV[1])
local spec = cjson.decode(ARGV[2])
local steps = cjson.decode(ARGV[3])
local added = 0
local pending = false
for _, step in ipairs(steps) do
  local field = 's:' .. step.id
  local rec = { s = 'scheduled', t = now, d = step.d, a = 0 }
  if redis.call('HSETNX', KEYS[1], field, cjson.encode(rec)) == 1 then
    added = added + 1
    pending = true
    local hour = spec.p .. 'agg:' .. math.floor(now / 3600000)
    redis.call('HINCRBY', hour, step.f, 1)
    redis.call('PEXPIRE', hour, spec.ttl)
    local day = spec.p .. 'due:' .. math.floor(step.d / 86400000)
    redis.call('HINCRBY', day, step.ch, 1)
    redis.call('PEXPIREAT', day, (math.floor(step.d / 86400000) + 2) * 86400000)
  elseif PENDING[cjson.decode(redis.call('HGET', KEYS[1], field)).s] then
    pending = true
  end
end
-- Kept only while a step is pending: a stale plan (the same event processed twice at once) must
-- not bring back the contact details that a finished purchase had deleted.
if pending then
  if not redis.call('SET', KEYS[2], ARGV[4], 'NX', 'PXAT', ARGV[6]) then
    redis.call('PEXPIREAT', KEYS[2], ARGV[6], 'GT')
  end
  redis.call('HSETNX', KEYS[1], 'm', ARGV[5])
end
-- Kept longer, never shorter; the history script gave the record its first expiry.
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIREAT', KEYS[1], ARGV[6])
else
  redis.call('PEXPIREAT', KEYS[1], ARGV[6], 'GT')
end
return added
`;

/**
 * Sets the stop marker (field `stop`, holding the reason) when every remaining step of the event
 * must be cancelled (full refund). Only on a record that exists: an expired one has nothing left to
 * stop, and a new key here would have no expiry.
 */
const STOP_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'stop', ARGV[1]) end
`;

/** Counts outcomes into an hourly aggregate hash: ARGV[2..] are the fields, each counted once. */
const COUNT_SCRIPT = `
for i = 2, #ARGV do redis.call('HINCRBY', KEYS[1], ARGV[i], 1) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
`;

/**
 * Counts a purchase into the customer's history once per event: the first call for an event
 * records the count it saw, a repeated call returns that same count, so redelivered or re-published
 * events neither count twice nor see themselves as an earlier purchase.
 */
const HISTORY_SCRIPT = `
local seen = redis.call('HGET', KEYS[1], 'h')
if seen then return { tonumber(seen), redis.call('HGET', KEYS[2], 'last') or '', 0 } end
local count = tonumber(redis.call('HGET', KEYS[2], 'n') or '0')
local last = redis.call('HGET', KEYS[2], 'last') or ''
redis.call('HSET', KEYS[1], 'h', count)
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
redis.call('HINCRBY', KEYS[2], 'n', 1)
if ARGV[1] > last then redis.call('HSET', KEYS[2], 'last', ARGV[1]) end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return { count, last, 1 }
`;

type ScriptReply = [number, string, number?];

/** Hourly aggregates are kept this long: reports compare periods up to a year back. */
export const AGGREGATE_RETENTION_MS = 401 * 24 * 3_600_000;

/** One counted outcome: which step kind on which channel, by which rule, and why if it did not go out. */
export interface LedgerEntry {
  readonly outcome: string;
  readonly channel: string;
  readonly kind: string;
  readonly ruleId: string;
  /** Reason code (`capped`, `permanent 550`, `refunded`); never free text. */
  readonly reason?: string;
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

/** The scripts above, registered once per connection so calls go by SHA (EVALSHA). */
interface StoreScripts {
  followUpClaim(
    key: string,
    purchaseKey: string,
    field: string,
    now: number,
    leaseMs: number,
    ledger: string,
  ): Promise<ScriptReply>;
  followUpSchedule(
    key: string,
    purchaseKey: string,
    now: number,
    spec: string,
    steps: string,
    event: Buffer,
    summary: string,
    keepUntil: number,
  ): Promise<number>;
  followUpCount(hourKey: string, ttlMs: number, ...fields: string[]): Promise<null>;
  followUpStop(key: string, reason: string): Promise<null>;
  followUpUpdate(
    key: string,
    purchaseKey: string,
    field: string,
    now: number,
    from: string,
    patch: string,
    ledger: string,
  ): Promise<ScriptReply>;
  followUpHistory(
    eventKey: string,
    customerKey: string,
    occurredAt: string,
    keepCustomerMs: number,
    keepEventMs: number,
  ): Promise<[number, string, number]>;
}

function withScripts(redis: Redis): Redis & StoreScripts {
  const scripted = redis as Redis & Partial<StoreScripts>;
  if (!scripted.followUpClaim)
    redis.defineCommand("followUpClaim", { numberOfKeys: 2, lua: CLAIM_SCRIPT });
  if (!scripted.followUpSchedule)
    redis.defineCommand("followUpSchedule", { numberOfKeys: 2, lua: SCHEDULE_SCRIPT });
  if (!scripted.followUpHistory)
    redis.defineCommand("followUpHistory", { numberOfKeys: 2, lua: HISTORY_SCRIPT });
  if (!scripted.followUpUpdate)
    redis.defineCommand("followUpUpdate", { numberOfKeys: 2, lua: UPDATE_SCRIPT });
  if (!scripted.followUpStop)
    redis.defineCommand("followUpStop", { numberOfKeys: 1, lua: STOP_SCRIPT });
  if (!scripted.followUpCount)
    redis.defineCommand("followUpCount", { numberOfKeys: 1, lua: COUNT_SCRIPT });
  return redis as Redis & StoreScripts;
}

/** Redis-backed send states and event snapshots of follow-ups. */
export class FollowUpStore {
  private readonly redis: Redis & StoreScripts;

  constructor(
    redis: Redis,
    private readonly prefix: string,
  ) {
    this.redis = withScripts(redis);
  }

  private key(eventId: string): string {
    return `${this.prefix}:fu:e:${eventKey(eventId)}`;
  }

  /** The purchase itself, encoded (see purchase-codec), kept until its last step is done. */
  private purchaseKey(eventId: string): string {
    return `${this.prefix}:fu:p:${eventKey(eventId)}`;
  }

  private get ledgerPrefix(): string {
    return `${this.prefix}:fu:`;
  }

  private ledgerSpec(entry: LedgerEntry): string {
    const fields = [ledgerField(entry.outcome, entry.channel, entry.kind, entry.ruleId)];
    if (entry.reason)
      fields.push(reasonField(entry.outcome, entry.channel, entry.kind, entry.reason));
    return JSON.stringify({
      p: this.ledgerPrefix,
      ttl: AGGREGATE_RETENTION_MS,
      ch: entry.channel,
      f: fields,
    });
  }

  /** Counts outcomes that are not step state changes (opt-outs, replies, skips at planning). */
  async count(entries: LedgerEntry | readonly LedgerEntry[], now: number): Promise<void> {
    const fields = [entries]
      .flat()
      .flatMap((entry) => [
        ledgerField(entry.outcome, entry.channel, entry.kind, entry.ruleId),
        ...(entry.reason
          ? [reasonField(entry.outcome, entry.channel, entry.kind, entry.reason)]
          : []),
      ]);
    if (fields.length === 0) return;
    const hour = `${this.ledgerPrefix}agg:${Math.floor(now / 3_600_000)}`;
    await this.redis.followUpCount(hour, AGGREGATE_RETENTION_MS, ...fields);
  }

  /**
   * The customer's purchase history before this event, counting this event in for later ones.
   * Idempotent per event id. History is forgotten after `keepCustomerMs` without purchases.
   */
  async recordPurchase(
    event: PurchaseCompleted,
    keepCustomerMs: number,
    keepEventMs: number,
  ): Promise<{ history: CustomerHistory; firstSeen: boolean }> {
    const [count, last, firstSeen] = await this.redis.followUpHistory(
      this.key(event.id),
      `${this.prefix}:fu:c:${eventKey(event.customer.id)}`,
      new Date(event.occurredAt).toISOString(),
      keepCustomerMs,
      keepEventMs,
    );
    const history = last
      ? { previousPurchases: count, lastPurchaseAt: last }
      : { previousPurchases: count };
    return { history, firstSeen: firstSeen === 1 };
  }

  /** Order id and customer name of an event, as kept for reports. */
  async summary(eventId: string): Promise<{ orderId: string | null; customerName: string | null }> {
    const raw = await this.redis.hget(this.key(eventId), SUMMARY_FIELD);
    const parsed = raw ? (JSON.parse(raw) as { o?: string; n?: string | null }) : {};
    return { orderId: parsed.o ?? null, customerName: parsed.n ?? null };
  }

  /** The history recorded when the event was first planned (none if it never was). */
  async historyAt(eventId: string): Promise<CustomerHistory> {
    const count = await this.redis.hget(this.key(eventId), HISTORY_FIELD);
    return { previousPurchases: count ? Number(count) : 0 };
  }

  /** Marks the event so no further step of it is sent; the claim script honours it atomically. */
  async stopEvent(eventId: string, reason: string): Promise<void> {
    await this.redis.followUpStop(this.key(eventId), reason);
  }

  /** Every step record of the event, by step id. */
  async allStepRecords(eventId: string): Promise<Map<string, StepRecord>> {
    const all = await this.redis.hgetall(this.key(eventId));
    const records = new Map<string, StepRecord>();
    for (const [field, raw] of Object.entries(all)) {
      if (field.startsWith("s:")) records.set(field.slice(2), JSON.parse(raw) as StepRecord);
    }
    return records;
  }

  /** Remembers which step an SMS belongs to, for Twilio's status callbacks and replies. */
  async rememberSms(
    sid: string,
    phone: string,
    at: { eventId: string; stepId: string; kind: string },
    keepMs: number,
  ): Promise<void> {
    const ref = `${at.eventId}\n${at.stepId}`;
    const pipeline = this.redis.multi();
    // The hashed number goes with the sid, so a later 21610 report can suppress it after the
    // purchase's contact data is scrubbed.
    pipeline.set(`${this.prefix}:fu:sid:${sid}`, `${ref}\n${addressMember(phone)}`, "PX", keepMs);
    if (at.kind === "check-in")
      pipeline.set(`${this.prefix}:fu:ci:${eventKey(phone)}`, ref, "PX", keepMs);
    await pipeline.exec();
  }

  /** The step an SMS sid was sent for. */
  async stepOfSms(
    sid: string,
  ): Promise<{ eventId: string; stepId: string; recipient?: string } | undefined> {
    const raw = await this.redis.get(`${this.prefix}:fu:sid:${sid}`);
    const at = parseRef(raw);
    const recipient = raw?.split("\n")[2];
    return at && (recipient ? { ...at, recipient } : at);
  }

  /** The latest check-in sent to a number, where replies are filed. */
  async latestCheckIn(phone: string): Promise<{ eventId: string; stepId: string } | undefined> {
    return parseRef(await this.redis.get(`${this.prefix}:fu:ci:${eventKey(phone)}`));
  }

  /** Indexes a check-in reply by time, for the owners' reports. */
  async recordReply(
    at: { eventId: string; stepId: string },
    receivedAt: number,
    keepMs: number,
  ): Promise<void> {
    const key = `${this.ledgerPrefix}replies`;
    await this.redis.zadd(key, receivedAt, `${at.eventId}\n${at.stepId}`);
    await this.redis.zremrangebyscore(key, "-inf", receivedAt - keepMs);
  }

  /** Replies received in [since, until), with the step record holding each text. */
  async repliesBetween(
    since: number,
    until: number,
  ): Promise<{ eventId: string; stepId: string; record: StepRecord }[]> {
    const refs = await this.redis.zrangebyscore(`${this.ledgerPrefix}replies`, since, `(${until}`);
    const found = [];
    for (const ref of refs) {
      const at = parseRef(ref);
      if (!at) continue;
      const record = (await this.stepRecords(at.eventId, [at.stepId])).get(at.stepId);
      if (record) found.push({ ...at, record });
    }
    return found;
  }

  /** Adds fields to a step record whatever its state (delivery reports, replies). */
  async annotate(
    eventId: string,
    stepId: string,
    patch: Record<string, unknown>,
  ): Promise<StepRecord | undefined> {
    const [changed, raw] = await this.redis.followUpUpdate(
      this.key(eventId),
      this.purchaseKey(eventId),
      stepField(stepId),
      Date.now(),
      STEP_STATES.join(","),
      JSON.stringify(patch),
      "",
    );
    return changed === 1 ? parseRecord(raw) : undefined;
  }

  /** The purchase as saved at scheduling; undefined once its last step is done or it expired. */
  async loadEvent(eventId: string): Promise<PurchaseCompleted | undefined> {
    const stored = await this.redis.getBuffer(this.purchaseKey(eventId));
    if (stored) return decodePurchase(stored);
    // Written by a version that kept the purchase in the event's hash.
    const legacy = await this.redis.hget(this.key(eventId), LEGACY_EVENT_FIELD);
    return legacy ? (JSON.parse(legacy) as PurchaseCompleted) : undefined;
  }

  /** Current records of the given steps (undefined where none exists yet). */
  async stepRecords(
    eventId: string,
    stepIds: readonly string[],
  ): Promise<Map<string, StepRecord | undefined>> {
    if (stepIds.length === 0) return new Map();
    const raws = await this.redis.hmget(this.key(eventId), ...stepIds.map(stepField));
    return new Map(stepIds.map((id, i) => [id, parseRecord(raws[i])]));
  }

  /**
   * Records the steps as scheduled, leaving any step that already has a state untouched, and saves
   * the purchase for rendering while one of them is pending. Both are kept until `keepUntil` (epoch
   * ms; an existing record is kept longer, never shorter, and a saved purchase is not replaced).
   * Returns how many steps were new.
   */
  async schedule(
    event: PurchaseCompleted,
    keepUntil: number,
    steps: readonly {
      stepId: string;
      dueAt: number;
      channel: string;
      kind: string;
      ruleId: string;
    }[],
    now: number,
  ): Promise<number> {
    const spec = { p: this.ledgerPrefix, ttl: AGGREGATE_RETENTION_MS };
    const entries = steps.map((step) => ({
      id: step.stepId,
      d: step.dueAt,
      ch: step.channel,
      f: ledgerField("scheduled", step.channel, step.kind, step.ruleId),
    }));
    return this.redis.followUpSchedule(
      this.key(event.id),
      this.purchaseKey(event.id),
      now,
      JSON.stringify(spec),
      JSON.stringify(entries),
      encodePurchase(event),
      // What reports may show once the event itself is scrubbed: the order and the customer's name.
      JSON.stringify({ o: event.orderId, n: event.customer.name ?? null }),
      keepUntil,
    );
  }

  /** Takes the right to send a step; `leaseMs` bounds how long a vanished sender blocks it. */
  async claim(
    eventId: string,
    stepId: string,
    now: number,
    leaseMs: number,
    ifCancelled?: LedgerEntry,
  ): Promise<ClaimResult> {
    const [claimed, raw, takenOver] = await this.redis.followUpClaim(
      this.key(eventId),
      this.purchaseKey(eventId),
      stepField(stepId),
      now,
      leaseMs,
      ifCancelled ? this.ledgerSpec(ifCancelled) : "",
    );
    const record = parseRecord(raw) as StepRecord;
    return claimed === 1
      ? { claimed: true, record, takenOver: takenOver === 1 }
      : { claimed: false, record };
  }

  /**
   * Changes a step's record if it is in one of the `from` states; returns the new record, or
   * undefined when the step was elsewhere (e.g. cancelled meanwhile).
   */
  async transition(
    eventId: string,
    stepId: string,
    from: readonly StepState[],
    patch: Partial<StepRecord>,
    now: number,
    ledger?: LedgerEntry,
  ): Promise<StepRecord | undefined> {
    const [changed, raw] = await this.redis.followUpUpdate(
      this.key(eventId),
      this.purchaseKey(eventId),
      stepField(stepId),
      now,
      from.join(","),
      JSON.stringify(patch),
      ledger ? this.ledgerSpec(ledger) : "",
    );
    return changed === 1 ? parseRecord(raw) : undefined;
  }
}

function parseRef(raw: string | null): { eventId: string; stepId: string } | undefined {
  if (!raw) return undefined;
  const [eventId = "", stepId = ""] = raw.split("\n");
  return { eventId, stepId };
}

function parseRecord(raw: string | null | undefined): StepRecord | undefined {
  return raw ? (JSON.parse(raw) as StepRecord) : undefined;
}
