import type { Redis } from "ioredis";
import type { PurchaseCompleted } from "../domain/events.js";
import { eventKey } from "../queue/names.js";

/**
 * Everything kept about one purchase in one Redis hash: the validated event (for rendering) and
 * one field per step holding its send state. A hash per event, not a key per step, keeps the
 * memory per pending follow-up small; every state change is one atomic script.
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
}

export type ClaimResult =
  | { readonly claimed: true; readonly record: StepRecord; readonly takenOver: boolean }
  | { readonly claimed: false; readonly record: StepRecord };

const EVENT_FIELD = "event";
const stepField = (stepId: string) => `s:${stepId}`;

/**
 * Moves a step to `sending` if it is scheduled, or if its previous sender's lease ran out (a
 * crashed worker). Returns the state found and whether the claim succeeded.
 */
const CLAIM_SCRIPT = `
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local now = tonumber(ARGV[2])
local rec
if raw then rec = cjson.decode(raw) else rec = { s = 'scheduled', t = now, d = now, a = 0 } end
local takenOver = rec.s == 'sending' and rec.t + tonumber(ARGV[3]) <= now
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
const UPDATE_SCRIPT = `
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local now = tonumber(ARGV[2])
local rec
if raw then rec = cjson.decode(raw) else rec = { s = 'scheduled', t = now, d = now, a = 0 } end
local allowed = false
for state in string.gmatch(ARGV[3], '[^,]+') do
  if rec.s == state then allowed = true end
end
if not allowed then return { 0, raw or '' } end
local patch = cjson.decode(ARGV[4])
for k, v in pairs(patch) do rec[k] = v end
rec.t = now
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
return { 1, cjson.encode(rec) }
`;

type ScriptReply = [number, string, number?];

/** The scripts above, registered once per connection so calls go by SHA (EVALSHA). */
interface StoreScripts {
  followUpClaim(key: string, field: string, now: number, leaseMs: number): Promise<ScriptReply>;
  followUpUpdate(
    key: string,
    field: string,
    now: number,
    from: string,
    patch: string,
  ): Promise<ScriptReply>;
}

function withScripts(redis: Redis): Redis & StoreScripts {
  const scripted = redis as Redis & Partial<StoreScripts>;
  if (!scripted.followUpClaim)
    redis.defineCommand("followUpClaim", { numberOfKeys: 1, lua: CLAIM_SCRIPT });
  if (!scripted.followUpUpdate)
    redis.defineCommand("followUpUpdate", { numberOfKeys: 1, lua: UPDATE_SCRIPT });
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

  /** Keeps the event for rendering until `keepUntil` (epoch ms); an existing record is kept longer, never shorter. */
  async saveEvent(event: PurchaseCompleted, keepUntil: number): Promise<void> {
    const key = this.key(event.id);
    const created = await this.redis.hsetnx(key, EVENT_FIELD, JSON.stringify(event));
    if (created) await this.redis.pexpireat(key, keepUntil);
    else await this.redis.call("PEXPIREAT", key, keepUntil, "GT");
  }

  async loadEvent(eventId: string): Promise<PurchaseCompleted | undefined> {
    const raw = await this.redis.hget(this.key(eventId), EVENT_FIELD);
    return raw ? (JSON.parse(raw) as PurchaseCompleted) : undefined;
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

  /** Records steps as scheduled, leaving any step that already has a state untouched. */
  async markScheduled(
    eventId: string,
    steps: readonly { stepId: string; dueAt: number }[],
    now: number,
  ): Promise<void> {
    const key = this.key(eventId);
    const pipeline = this.redis.pipeline();
    for (const step of steps) {
      const record: StepRecord = { s: "scheduled", t: now, d: step.dueAt, a: 0 };
      pipeline.hsetnx(key, stepField(step.stepId), JSON.stringify(record));
    }
    await pipeline.exec();
  }

  /** Takes the right to send a step; `leaseMs` bounds how long a vanished sender blocks it. */
  async claim(eventId: string, stepId: string, now: number, leaseMs: number): Promise<ClaimResult> {
    const [claimed, raw, takenOver] = await this.redis.followUpClaim(
      this.key(eventId),
      stepField(stepId),
      now,
      leaseMs,
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
  ): Promise<StepRecord | undefined> {
    const [changed, raw] = await this.redis.followUpUpdate(
      this.key(eventId),
      stepField(stepId),
      now,
      from.join(","),
      JSON.stringify(patch),
    );
    return changed === 1 ? parseRecord(raw) : undefined;
  }
}

function parseRecord(raw: string | null | undefined): StepRecord | undefined {
  return raw ? (JSON.parse(raw) as StepRecord) : undefined;
}
