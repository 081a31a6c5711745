import type { Channel, PurchaseCompleted } from "../domain/events.js";
import type { SentFollowUp } from "./customer-history.js";
import {
  AGGREGATE_RETENTION_MS,
  changeKeys,
  changeSpec,
  entryFields,
  type LedgerEntry,
  ledgerField,
} from "./delivery-ledger.js";
import { REPLAN_LATER_MAX, scheduleEntry } from "./follow-up-schedule.js";
import { bucketOf, bucketStart, dayOf, hourOf, type Scope, StoreKeys } from "./keys.js";
import { LEGACY_PURCHASE_FIELD } from "./legacy-layout.js";
import {
  decodePurchase,
  decodeStored,
  encodeKept,
  encodePurchase,
  type KeptPurchase,
  keptPart,
  purchaseFromKept,
  type StoredPurchase,
} from "./purchase-codec.js";
import { purchaseOfFields, type RecordFields } from "./purchase-fields.js";
import type { RedisClient } from "./redis-client.js";
import type { ReplicaWait } from "./replica-wait.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";
import {
  type PostponeCode,
  postponeLetter,
  readableStepRecord,
  readStepRecord,
  STEP_STATES,
  type StepPatch,
  type StepReason,
  type StepRecord,
  type StepState,
  type StepStateFilter,
  storedPatch,
  UNREADABLE_STEP,
} from "./step-record.js";

/**
 * The step state machine: what is kept about one purchase is a hash with one field per step
 * holding its send state (plus the history count, a summary for reports and a stop marker), and
 * the purchase itself, compressed and cut into 64-byte fields (purchase-fields.ts), for rendering.
 * A hash per event, not a key per step, and values of at most 64 bytes keep the hash a compact
 * listpack while steps wait; every state change is one atomic script that also counts it in the
 * ledger.
 */

/** How a requeue ended (FollowUpStore.requeue). */
export type RequeueResult =
  | { readonly requeued: true; readonly record: StepRecord }
  | { readonly requeued: false; readonly record?: StepRecord; readonly stoppedFor?: string };

export type ClaimResult =
  | { readonly claimed: true; readonly record: StepRecord; readonly takenOver: boolean }
  | { readonly claimed: false; readonly record: StepRecord };

/**
 * What a step's last state change passes to scrub the purchase in the same script
 * (update-step.lua): the purchase as read, the part kept after the last step, and the summary.
 */
export interface PurchaseTrim {
  readonly asRead: Buffer;
  readonly kept: Buffer;
  readonly summary: string;
}

/** A step about to be sent, and its purchase, read together (FollowUpStore.sendView). */
export interface SendView {
  /** The step's record; undefined when it has none. */
  readonly record?: StepRecord;
  /** The purchase to render from, as loadForSend gives it. */
  readonly event?: PurchaseCompleted;
  /**
   * When no other step of the purchase is pending and the whole purchase is in the record: the
   * scrub for the step's last state change (encoded when called: a deflate).
   */
  readonly lastStep?: () => PurchaseTrim;
  /**
   * Set, without `event`, when the purchase is stored but cannot be decoded (damaged, or a newer
   * version's format): the decoder's error by name only (its message may quote the bytes).
   */
  readonly unreadable?: { readonly errorName: string };
  /**
   * Set, alone, when the step's own record cannot be decoded (a newer version's form, or
   * damaged): its length, never its content (a customer's reply may be in it).
   */
  readonly unreadableStep?: { readonly recordLength: number };
  /**
   * How the purchase was filed with a customer's thank-you group (`coalesce`), as its record
   * holds it (`ty`: ThankYouGroups, join-thank-you.lua); undefined when it was not (or by key
   * layout 4 and before, in the customer's older group key).
   */
  readonly filed?: string;
}

/** A step to schedule, as planned. */
export interface StepToSchedule {
  readonly stepId: string;
  readonly dueAt: number;
  readonly channel: string;
  readonly kind: string;
  readonly ruleId: string;
  /** A step planned late: when its grace period ends (epoch ms; PlannedStep.graceEndsAt). */
  readonly graceEndsAt?: number;
  /** Whether the step waits in the compact schedule (due beyond the promotion horizon). */
  readonly inSchedule: boolean;
}

/** One scheduled step in a re-plan (FollowUpStore.replan). */
export interface StepReplan {
  readonly stepId: string;
  /** The due time the re-plan was made from (the step changes only if it still has it). */
  readonly plannedDueAt: number;
  readonly action: "keep" | "move" | "cancel" | "skip";
  /** The new due time (the planned one unless moved). */
  readonly dueAt: number;
  /** A step moved into the past: when its grace period ends (epoch ms); none clears it. */
  readonly graceEndsAt?: number;
  /** The channel its pending count was kept under. */
  readonly countedChannel: string;
  readonly channel: string;
  readonly kind: string;
  readonly ruleId: string;
  /** Why it was cancelled or skipped, and how that is counted. */
  readonly reason?: { code: string; text: string; ledger: LedgerEntry };
}

/** States in which a step still waits to be sent (as lib/pending-states.lua). */
const PENDING_STATES: ReadonlySet<StepState> = new Set(["scheduled", "sending"]);
/** The rules generation an event was planned with. */
const GENERATION_FIELD = "g";
/** Order id and customer name, kept after the purchase is scrubbed, for owners' reports. */
const SUMMARY_FIELD = "m";
/** The W3C traceparent of the purchase's intake span (only while tracing is on). */
const TRACE_FIELD = "tp";
/** How the purchase was filed with a thank-you group (join-thank-you.lua). */
const FILING_FIELD = "ty";
const stepField = (stepId: string) => `s:${stepId}`;

/** What reports show of a purchase once it is trimmed (the record's `m`): order id and name. */
function summaryOf(event: PurchaseCompleted): { o: string | null; n: string | null } {
  return { o: event.orderId, n: event.customer.name ?? null };
}

/**
 * The summary of a record without one, from its purchase: the whole one (or an earlier version's
 * JSON); else the kept part, when this version scheduled it and the version before trimmed it,
 * writing no summary (during a rolling deploy): its first name is what is left. A purchase this
 * version cannot read (damaged, a newer format) gives none: the decoder's error by name.
 */
function summaryOfStored(
  encoded: Buffer | undefined,
  legacy: PurchaseCompleted | undefined,
): Partial<ReturnType<typeof summaryOf>> & { unreadable?: string } {
  let decoded: StoredPurchase | undefined;
  try {
    decoded = encoded ? decodeStored(encoded) : undefined;
  } catch (error) {
    return { unreadable: errorName(error) };
  }
  const event = decoded?.kind === "whole" ? decoded.event : legacy;
  if (event) return summaryOf(event);
  if (decoded?.kind === "kept")
    return { o: decoded.kept.orderId, n: decoded.kept.customer.firstName ?? null };
  return {};
}

/** A decoder's error by name only: its message may quote the stored bytes, personal data included. */
export function errorName(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}

/**
 * How an erased purchase's record is stopped (erase-event.lua): a step taken over from a dead
 * sender is cancelled with this reason, and replies are no longer filed (add-reply.lua).
 */
export const ERASED_STOP = "erased: the customer's data was erased";

/**
 * How long a step a final SMS status failed stays listed among them (smsStatusFailures): as long
 * as BullMQ keeps a failed job is not known here; 30 days covers an operator's look after a
 * provider outage or an account suspension.
 */
export const SMS_STATUS_FAILURES_MS = 30 * 24 * 3600 * 1000;

export class FollowUpStore {
  private readonly redis: RedisClient & StoreCommands;
  private readonly keys: StoreKeys;

  constructor(
    redis: RedisClient,
    scope: Scope,
    /** Waits for replicas after a send and in awaitReplicas (REDIS_WAIT_REPLICAS). */
    private readonly replicaWait?: ReplicaWait,
    /**
     * RECORD_RETENTION_DAYS in ms: a purchase whose last step ended before its planned time (a
     * cancellation, a refund) is then kept that long from the end, not from the planned time.
     */
    private readonly recordRetentionMs?: number,
    /**
     * Told when trimming a finished purchase failed after a step's change was applied (a stored
     * purchase that cannot be decoded, Redis away): the change stands, and the whole purchase is
     * kept until its record expires. Reported by event id only.
     */
    private readonly onTrimFailed?: (eventId: string, error: unknown) => void,
  ) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(scope);
  }

  /**
   * Records the steps as scheduled, leaving any step that already has a state untouched, and saves
   * the purchase for rendering while one of them is pending. Both are kept until `keepUntil` (epoch
   * ms; an existing record is kept longer, never shorter, and a saved purchase is not replaced).
   * Steps due beyond the promotion horizon (`inSchedule`) are filed in the compact schedule, and a
   * new record remembers the rules `generation` it was planned with, and the `traceparent` of the
   * intake's span when tracing is on (none is written when off). Returns how many steps were new,
   * or -1 when `erasureKey` (the customer's marker, CustomerHistoryStore.erasureKey) says the
   * customer was erased after the purchase: nothing is written then.
   */
  async schedule(
    event: PurchaseCompleted,
    keepUntil: number,
    steps: readonly StepToSchedule[],
    now: number,
    generation: number,
    traceparent?: string,
    erasureKey?: string,
  ): Promise<number> {
    const entries = steps.map((step) => ({
      id: step.stepId,
      d: step.dueAt,
      c: step.channel,
      k: step.kind,
      r: step.ruleId,
      ...(step.graceEndsAt !== undefined && { e: step.graceEndsAt }),
      f: ledgerField("scheduled", step.channel, step.kind, step.ruleId),
      b: step.inSchedule ? bucketOf(step.dueAt) : 0,
      bs: bucketStart(step.dueAt),
      t: step.inSchedule ? scheduleEntry(event.id, step.stepId) : "",
    }));
    const keys = [
      this.keys.eventRecord(event.id),
      this.keys.purchase(event.id),
      this.keys.ledgerHour(hourOf(now)),
      this.keys.scheduleIndex(),
      ...steps.flatMap((step) => [
        this.keys.pendingDay(dayOf(step.dueAt)),
        this.keys.scheduleBucket(bucketOf(step.dueAt)),
      ]),
      ...(erasureKey ? [erasureKey] : []),
      this.keys.replanWalk(),
      this.keys.replanLater(),
    ];
    const added = await this.redis.fuScheduleSteps(
      keys.length,
      ...keys,
      now,
      AGGREGATE_RETENTION_MS,
      JSON.stringify(entries),
      encodePurchase(event),
      keepUntil,
      generation,
      traceparent ?? "",
      erasureKey ? Date.parse(event.occurredAt) : "",
      event.id,
      REPLAN_LATER_MAX,
    );
    return added;
  }

  /** The traceparent of the intake span that scheduled the purchase, if it was traced. */
  async intakeTraceOf(eventId: string): Promise<string | undefined> {
    return (await this.redis.hget(this.keys.eventRecord(eventId), TRACE_FIELD)) ?? undefined;
  }

  /**
   * Waits until replicas have every write made so far to the purchase's shard (REDIS_WAIT_REPLICAS;
   * nothing to do when off): its steps, and the jobs queued for them on the same connection, must
   * survive a failover before its event counts as taken in.
   */
  async awaitReplicas(eventId: string): Promise<void> {
    await this.replicaWait?.after(this.keys.eventRecord(eventId));
  }

  /**
   * Takes the right to send a step; `leaseMs` bounds how long a vanished sender blocks it. A step
   * of a stopped event is cancelled instead, counted as `ifCancelled`. `dueAt`, when the caller
   * knows it, saves a round trip.
   */
  async claim(
    eventId: string,
    stepId: string,
    now: number,
    leaseMs: number,
    options: { ifCancelled?: LedgerEntry; dueAt?: number } = {},
  ): Promise<ClaimResult> {
    const spec = options.ifCancelled ? changeSpec(options.ifCancelled) : "";
    const [claimed, raw, takenOver] = await this.withDueDay(options.dueAt ?? now, (due) => {
      const ledger = changeKeys(this.keys, now, due);
      return this.redis.fuClaimStep(
        this.keys.eventRecord(eventId),
        this.keys.purchase(eventId),
        ledger.hourKey,
        ledger.dayKey,
        stepField(stepId),
        now,
        leaseMs,
        spec,
        ledger.day,
      );
    });
    const record = readStepRecord(raw);
    if (claimed === 1) return { claimed: true, record, takenOver: takenOver === 1 };
    if (record.state === "cancelled" && record.changedAt === now)
      await this.trimAfterChange(eventId, now);
    return { claimed: false, record };
  }

  /**
   * Changes a step's record if it is in one of the `from` states, counting the change as `ledger`;
   * returns the new record, or undefined when the step was elsewhere (e.g. cancelled meanwhile).
   */
  async transition(
    eventId: string,
    stepId: string,
    from: readonly StepStateFilter[],
    patch: StepPatch,
    now: number,
    ledger?: LedgerEntry,
    dueAt?: number,
    trim?: PurchaseTrim,
  ): Promise<StepRecord | undefined> {
    const spec = ledger ? changeSpec(ledger) : "";
    const trimArgs: [Buffer, Buffer, string] | [] = trim
      ? [trim.asRead, trim.kept, trim.summary]
      : [];
    const [changed, raw, trimmed] = await this.withDueDay(dueAt ?? now, (due) => {
      const keys = changeKeys(this.keys, now, due);
      return this.redis.fuUpdateStep(
        this.keys.eventRecord(eventId),
        this.keys.purchase(eventId),
        keys.hourKey,
        keys.dayKey,
        stepField(stepId),
        now,
        from.join(","),
        JSON.stringify(storedPatch(patch)),
        spec,
        keys.day,
        ...trimArgs,
      );
    });
    if (changed !== 1) return undefined;
    // A sent state lost in a failover would send the message again.
    if (patch.state === "sent") await this.replicaWait?.after(this.keys.eventRecord(eventId));
    const record = readStepRecord(raw);
    // A step that left a pending state may have been the purchase's last (annotations change none).
    const annotation = from.length === STEP_STATES.length && patch.state === undefined;
    if (!annotation && !PENDING_STATES.has(record.state) && trimmed !== 1)
      await this.trimAfterChange(eventId, now);
    return record;
  }

  /**
   * Trims the purchase after a step's change was applied, if it was its last pending step. A
   * failure must not turn the change into an error (its caller would retry or misreport a change
   * that was made): it is reported (onTrimFailed), and the whole purchase stays until the record
   * expires, as after a crash between the two.
   */
  private async trimAfterChange(eventId: string, now: number): Promise<void> {
    try {
      await this.trimIfFinished(eventId, now);
    } catch (error) {
      this.onTrimFailed?.(eventId, error);
    }
  }

  /** Adds to a step record whatever its state (delivery reports, replies); counts nothing. */
  async annotate(
    eventId: string,
    stepId: string,
    patch: Pick<StepPatch, "delivery" | "reply">,
    now: number,
  ): Promise<StepRecord | undefined> {
    return this.transition(eventId, stepId, STEP_STATES, patch, now);
  }

  /**
   * Notes Twilio's status of a step's SMS, only forward (note-sms-status.lua): `kept` when the
   * record holds a status as far along, or an earlier final one; `gone` when the step has no
   * record. Decided in the script, so reports handled at the same moment never move a delivered
   * SMS back to `sent`, and the first final report stays. `another-message` when the record is of
   * another message than `messageSid` (the step was resent since): a late report of the earlier
   * message is not shown as the resent one's. A `canceled` or `failed` of the message a sent
   * step stands for (nothing went out) fails the step with `failedReason`, lists it among the
   * steps a status failed (smsStatusFailures), and gives back the cap slot `cap` names (its
   * customer's, when known), in the same script: once, however often the report comes. The
   * customer's latest sent follow-up (for attribution) stops naming the step then too: the one
   * it replaced comes back, when kept. The record as it is after the script (but when gone);
   * with `failedSend`, the job whose send the step failed now, or failed on an earlier handling
   * of the same report (its charge goes back, by its id: once), when known (`cap` given).
   */
  async noteSmsStatus(
    eventId: string,
    stepId: string,
    delivery: { readonly messageSid: string; readonly status: string; readonly errorCode?: number },
    now: number,
    failedReason?: StepReason,
    cap?: { readonly channel: Channel; readonly customerId?: string; readonly followUpId: string },
  ): Promise<{
    noted: "noted" | "kept" | "another-message" | "gone";
    record?: StepRecord;
    failedSend?: string;
  }> {
    const [noted, raw, sendJob] = await this.redis.fuNoteSmsStatus(
      this.keys.eventRecord(eventId),
      // A key of the shard's when the customer is unknown (erased): nothing is removed from it.
      this.keys.capWindow(cap?.channel ?? "sms", cap?.customerId ?? ""),
      this.keys.smsStatusFailures(),
      // The customer's latest sent: it stops naming a step this report fails (cap: customer known).
      this.keys.lastSent(cap?.customerId ?? ""),
      stepField(stepId),
      now,
      delivery.status,
      delivery.errorCode ?? "",
      delivery.messageSid,
      failedReason ? `${failedReason.code}: ${failedReason.text}` : `${delivery.status}: `,
      cap?.followUpId ?? "",
      `${eventId}/${stepId}`,
      SMS_STATUS_FAILURES_MS,
    );
    if (raw === "") return { noted: "gone" };
    const record = readStepRecord(raw);
    return {
      noted: noted === 1 ? "noted" : noted === 2 ? "another-message" : "kept",
      record,
      ...(sendJob && { failedSend: sendJob }),
    };
  }

  /**
   * The steps a final SMS status failed (noteSmsStatus) since `since` (epoch ms; all that are
   * kept without it), latest first, as `<eventId>/<stepId>` with when (epoch ms). A step resent
   * since is still named: its record says whether it is failed now. The list is trimmed only as
   * a step is added to it, so one older than SMS_STATUS_FAILURES_MS may still be there.
   */
  async smsStatusFailures(
    since?: number,
  ): Promise<{ readonly ref: string; readonly at: number }[]> {
    const found = await this.redis.zrevrangebyscore(
      this.keys.smsStatusFailures(),
      "+inf",
      since ?? "-inf",
      "WITHSCORES",
    );
    const listed: { ref: string; at: number }[] = [];
    for (let i = 0; i + 1 < found.length; i += 2)
      listed.push({ ref: found[i] ?? "", at: Number(found[i + 1]) });
    return listed;
  }

  /**
   * Notes on a scheduled step that its job waits until `until`, and why (note-postponed.lua):
   * the customer's timeline shows it. Whether it was noted (not when the step is in another state).
   */
  async notePostponed(
    eventId: string,
    stepId: string,
    until: number,
    code: PostponeCode,
  ): Promise<boolean> {
    const noted = await this.redis.fuNotePostponed(
      this.keys.eventRecord(eventId),
      stepField(stepId),
      until,
      postponeLetter(code),
    );
    return noted === 1;
  }

  /**
   * Ends the bookkeeping after a send (settle-sent.lua): the follow-up becomes the customer's
   * latest sent, kept `keepMs` (unless a later one is remembered), and the step's record loses
   * its mark `bookkeepingPending`. Nothing happens once the event record is gone (`gone`). When
   * the customer was erased while the message was on its way (`erased`), the step's record loses
   * its provider ids and code instead, and nothing else is written: the caller removes what its
   * bookkeeping wrote.
   */
  async settleSent(
    eventId: string,
    stepId: string,
    customerId: string,
    sent: SentFollowUp,
    keepMs: number,
  ): Promise<"settled" | "gone" | "erased"> {
    const settled = await this.redis.fuSettleSent(
      this.keys.eventRecord(eventId),
      this.keys.lastSent(customerId),
      stepField(stepId),
      JSON.stringify(sent),
      Math.round(sent.at),
      Math.round(keepMs),
    );
    return settled === 1 ? "settled" : settled === 2 ? "erased" : "gone";
  }

  /** Marks the event so no further step of it is sent; the claim script honours it atomically. */
  async stopEvent(eventId: string, reason: string): Promise<void> {
    await this.redis.fuStopEvent(this.keys.eventRecord(eventId), reason);
  }

  /**
   * Marks one step cancelled for whenever it is claimed next (`reason` as `<code>: <text>`): one
   * being sent by a live worker now is not stopped, but a retry or a takeover after this attempt
   * cancels it instead of sending.
   */
  async cancelAtNextClaim(eventId: string, stepId: string, reason: string): Promise<void> {
    await this.redis.fuStopEvent(this.keys.eventRecord(eventId), reason, `cx:${stepId}`);
  }

  /** Current records of the given steps (undefined where none exists yet). */
  async stepRecords(
    eventId: string,
    stepIds: readonly string[],
  ): Promise<Map<string, StepRecord | undefined>> {
    if (stepIds.length === 0) return new Map();
    const raws = await this.redis.hmget(this.keys.eventRecord(eventId), ...stepIds.map(stepField));
    return new Map(stepIds.map((id, i) => [id, raws[i] ? readStepRecord(raws[i]) : undefined]));
  }

  /** Every step record of the event, by step id. */
  async allStepRecords(eventId: string): Promise<Map<string, StepRecord>> {
    return (await this.recordSteps(eventId)).steps;
  }

  /**
   * Every step record of the event, and whether its record is there at all: also one that
   * planned no step, which holds only what intake counted (its history, its fingerprint) until
   * it expires. One read of the record.
   */
  async recordSteps(eventId: string): Promise<{ exists: boolean; steps: Map<string, StepRecord> }> {
    const all = await this.redis.hgetall(this.keys.eventRecord(eventId));
    const steps = new Map<string, StepRecord>();
    for (const [field, raw] of Object.entries(all)) {
      if (field.startsWith("s:")) steps.set(field.slice(2), readStepRecord(raw));
    }
    return { exists: Object.keys(all).length > 0, steps };
  }

  /** The purchase as saved at scheduling; undefined once its last step is done or it expired. */
  async loadEvent(eventId: string): Promise<PurchaseCompleted | undefined> {
    const { encoded, legacy } = await this.readStored(eventId);
    if (!encoded) return legacy;
    const decoded = decodeStored(encoded);
    return decoded.kind === "whole" ? decoded.event : undefined;
  }

  /**
   * As loadEvent, but a purchase stored in a form that cannot be decoded (damaged, or a newer
   * version's format) answers `unreadable`, the decoder's error by name (its message may quote
   * the bytes), instead of throwing: a refund still cancels such a purchase's steps.
   */
  async readEvent(
    eventId: string,
  ): Promise<{ event?: PurchaseCompleted; unreadable?: { errorName: string } }> {
    const { decoded, legacy, unreadable } = await this.readDecoded(eventId);
    if (unreadable) return { unreadable };
    if (!decoded) return legacy ? { event: legacy } : {};
    return decoded.kind === "whole" ? { event: decoded.event } : {};
  }

  /**
   * What is stored of the purchase, decoded; `unreadable` (the decoder's error by name) instead
   * of throwing when it cannot be decoded.
   */
  private async readDecoded(eventId: string): Promise<{
    decoded?: StoredPurchase;
    legacy?: PurchaseCompleted;
    unreadable?: { errorName: string };
  }> {
    const { encoded, legacy } = await this.readStored(eventId);
    if (!encoded) return legacy ? { legacy } : {};
    try {
      return { decoded: decodeStored(encoded) };
    } catch (error) {
      return { unreadable: { errorName: errorName(error) } };
    }
  }

  /**
   * The record's fields and what is stored of the purchase: encoded in the record, else in the
   * key of versions before 2026-12-03, else as JSON in the record (versions before 2026-11-30).
   */
  private async readStored(eventId: string): Promise<{
    fields: RecordFields;
    encoded?: Buffer;
    inRecord?: boolean;
    legacy?: PurchaseCompleted;
  }> {
    const fields = await this.redis.hgetallBuffer(this.keys.eventRecord(eventId));
    const inRecord = purchaseOfFields(fields);
    if (inRecord) return { fields, encoded: inRecord, inRecord: true };
    const ownKey = await this.redis.getBuffer(this.keys.purchase(eventId));
    if (ownKey) return { fields, encoded: ownKey };
    const legacy = fields[LEGACY_PURCHASE_FIELD];
    if (!legacy) return { fields };
    try {
      // Plain JSON, read as decodePurchase reads it (in today's minor units).
      return { fields, legacy: decodePurchase(legacy) };
    } catch {
      // Damaged: passed on as stored bytes, which the decoder refuses as it does any it cannot
      // read (it reads JSON too), so that every reader copes with it as with those.
      return { fields, encoded: legacy };
    }
  }

  /**
   * The purchase to render a step from: the whole one while it is stored, else (a deliberate
   * resend, or a step planned again after the purchase had finished) rebuilt from the part kept
   * after its last step; undefined once that is gone too.
   */
  async loadForSend(eventId: string): Promise<PurchaseCompleted | undefined> {
    const { encoded, legacy } = await this.readStored(eventId);
    if (!encoded) return legacy;
    const decoded = decodeStored(encoded);
    return decoded.kind === "whole" ? decoded.event : purchaseFromKept(decoded.kept);
  }

  /**
   * As loadForSend, but a purchase stored in a form that cannot be decoded answers `unreadable`,
   * the decoder's error by name (its message may quote the bytes), instead of throwing: a
   * thank-you that lists the customer's other purchases goes out without it.
   */
  async readForSend(eventId: string): Promise<{
    event?: PurchaseCompleted;
    unreadable?: { errorName: string };
    /**
     * Its step records, read with it (one that cannot be decoded left out): a coalesced
     * thank-you leaves out a purchase whose thank-you an operator cancelled.
     */
    steps?: ReadonlyMap<string, StepRecord>;
  }> {
    const { fields, encoded, legacy } = await this.readStored(eventId);
    const steps = new Map<string, StepRecord>();
    for (const [name, raw] of Object.entries(fields)) {
      if (!name.startsWith("s:")) continue;
      const record = readableStepRecord(raw.toString("utf8"));
      if (record !== UNREADABLE_STEP) steps.set(name.slice(2), record);
    }
    if (!encoded) return legacy ? { event: legacy, steps } : { steps };
    let decoded: StoredPurchase;
    try {
      decoded = decodeStored(encoded);
    } catch (error) {
      return { unreadable: { errorName: errorName(error) }, steps };
    }
    return {
      event: decoded.kind === "whole" ? decoded.event : purchaseFromKept(decoded.kept),
      steps,
    };
  }

  /**
   * A step's record and the purchase to render it from, in one read of the event record; with
   * `lastStep` when its next state change may be the purchase's last (see SendView).
   */
  async sendView(eventId: string, stepId: string): Promise<SendView> {
    const { fields, encoded, inRecord, legacy } = await this.readStored(eventId);
    const field = stepField(stepId);
    const own = fields[field]?.toString("utf8");
    const record = own === undefined ? undefined : readableStepRecord(own);
    if (record === UNREADABLE_STEP) return { unreadableStep: { recordLength: own?.length ?? 0 } };
    // Read with the rest: a thank-you asks how it was filed without another round trip.
    const filedAs = fields[FILING_FIELD]?.toString("utf8");
    const known = {
      ...(record && { record }),
      ...(filedAs !== undefined && { filed: filedAs }),
    };
    if (!encoded) return { ...known, ...(legacy && { event: legacy }) };
    let decoded: StoredPurchase;
    try {
      decoded = decodeStored(encoded);
    } catch (error) {
      return { ...known, unreadable: { errorName: errorName(error) } };
    }
    if (decoded.kind === "kept") return { ...known, event: purchaseFromKept(decoded.kept) };
    const event = decoded.event;
    // A sibling this version cannot read may be pending: its purchase is kept for it.
    const othersPending = Object.entries(fields).some(([name, raw]) => {
      if (name === field || !name.startsWith("s:")) return false;
      const sibling = readableStepRecord(raw.toString("utf8"));
      return sibling === UNREADABLE_STEP || PENDING_STATES.has(sibling.state);
    });
    if (othersPending || !inRecord) return { ...known, event };
    return {
      ...known,
      event,
      lastStep: () => ({
        asRead: encoded,
        kept: encodeKept(keptPart(event)),
        summary: JSON.stringify(summaryOf(event)),
      }),
    };
  }

  /**
   * Puts an ended step back to scheduled, due `now`, for an operator (requeue-step.lua): a resend
   * of a sent or failed step, or a retry of a failed one, counted as `ledger`. The caller then
   * queues its job.
   */
  async requeue(
    eventId: string,
    stepId: string,
    mode: "resend" | "retry",
    now: number,
    ledger: LedgerEntry,
  ): Promise<RequeueResult> {
    const keys = changeKeys(this.keys, now, now);
    const [outcome, raw] = await this.redis.fuRequeueStep(
      this.keys.eventRecord(eventId),
      keys.hourKey,
      keys.dayKey,
      stepField(stepId),
      now,
      mode === "resend" ? "sent,failed" : "failed",
      changeSpec(ledger),
      mode === "resend" ? "rs" : "rq",
    );
    if (outcome === 1) return { requeued: true, record: readStepRecord(raw) };
    if (outcome === 2) return { requeued: false, stoppedFor: raw };
    return raw ? { requeued: false, record: readStepRecord(raw) } : { requeued: false };
  }

  /**
   * What the timeline, a resend and an alert may show of a purchase: from the whole purchase while
   * a step is pending, from the part kept after its last step until the record expires.
   */
  async loadKept(eventId: string): Promise<KeptPurchase | undefined> {
    const { encoded, legacy } = await this.readStored(eventId);
    if (!encoded) return legacy && keptPart(legacy);
    const decoded = decodeStored(encoded);
    return decoded.kind === "kept" ? decoded.kept : keptPart(decoded.event);
  }

  /**
   * What is stored of a purchase: the whole of it, the part kept after its last step, or none;
   * `unreadable` when it is stored but cannot be decoded (damaged, or a format this version does
   * not know): what shows and looks up purchases goes on without it rather than failing.
   */
  async storedPurchase(eventId: string): Promise<{
    data: "whole" | "kept" | "gone" | "unreadable";
    kept?: KeptPurchase;
    customerId?: string;
  }> {
    const { encoded, legacy } = await this.readStored(eventId);
    if (!encoded) {
      return legacy
        ? { data: "whole", kept: keptPart(legacy), customerId: legacy.customer.id }
        : { data: "gone" };
    }
    let decoded: StoredPurchase;
    try {
      decoded = decodeStored(encoded);
    } catch {
      return { data: "unreadable" };
    }
    const kept = decoded.kind === "kept" ? decoded.kept : keptPart(decoded.event);
    return { data: decoded.kind === "kept" ? "kept" : "whole", kept, customerId: kept.customer.id };
  }

  /**
   * When the purchase's event record expires (epoch ms), or undefined when it has no expiry or
   * is gone: what refers to the record from outside it is kept no longer (message references).
   */
  async recordExpiresAt(eventId: string): Promise<number | undefined> {
    const at = await this.redis.pexpiretime(this.keys.eventRecord(eventId));
    return at > 0 ? at : undefined;
  }

  /**
   * Erases the customer's data from a purchase's records (erase-event.lua): the stored purchase,
   * the summary, and everything personal in the step records. Cancel pending steps first.
   */
  async erase(eventId: string): Promise<number> {
    return this.redis.fuEraseEvent(
      this.keys.eventRecord(eventId),
      this.keys.purchase(eventId),
      ERASED_STOP,
    );
  }

  /** Why the purchase was stopped (a full refund), if it was. */
  async stoppedFor(eventId: string): Promise<string | undefined> {
    return (await this.redis.hget(this.keys.eventRecord(eventId), "stop")) ?? undefined;
  }

  /**
   * Once no step of the purchase is pending, replaces the stored purchase by the part kept after
   * the last step (same expiry as the record). Called after each step ends; a crash before it only
   * keeps the whole purchase until the record expires.
   */
  async trimIfFinished(eventId: string, now = Date.now()): Promise<boolean> {
    const { fields, encoded, inRecord } = await this.readStored(eventId);
    for (const [field, raw] of Object.entries(fields)) {
      if (!field.startsWith("s:")) continue;
      // A step this version cannot read may be pending: the purchase is kept for it.
      const record = readableStepRecord(raw.toString("utf8"));
      if (record === UNREADABLE_STEP || PENDING_STATES.has(record.state)) return false;
    }
    if (!encoded) return false;
    const decoded = decodeStored(encoded);
    if (decoded.kind === "kept") return false;
    const kept = encodeKept(keptPart(decoded.event));
    // Only if nothing is pending again and the purchase is the one read (replace-purchase.lua).
    if (inRecord)
      return (
        (await this.redis.fuReplacePurchase(
          this.keys.eventRecord(eventId),
          encoded,
          kept,
          JSON.stringify(summaryOf(decoded.event)),
          this.recordRetentionMs === undefined ? "" : now + this.recordRetentionMs,
        )) === 1
      );
    await this.redis.set(this.keys.purchase(eventId), kept, "KEEPTTL", "XX");
    return true;
  }

  /**
   * Order id and customer name of an event, for reports: read from the whole purchase while it is
   * stored, else from the summary written when it was trimmed (or, by versions before
   * 2026-12-03, when it was scheduled).
   */
  async summary(eventId: string): Promise<{
    orderId: string | null;
    customerName: string | null;
    /** Set when what the summary is read from cannot be decoded: the error's name only. */
    unreadable?: string;
  }> {
    const { fields, encoded, legacy } = await this.readStored(eventId);
    const raw = fields[SUMMARY_FIELD];
    let summary: ReturnType<typeof summaryOfStored>;
    try {
      summary = raw ? JSON.parse(raw.toString("utf8")) : summaryOfStored(encoded, legacy);
    } catch (error) {
      summary = { unreadable: errorName(error) };
    }
    return {
      orderId: summary.o ?? null,
      customerName: summary.n ?? null,
      ...(summary.unreadable !== undefined && { unreadable: summary.unreadable }),
    };
  }

  /**
   * Applies a re-plan under rules `generation` (see replan-event.lua): once per generation, never
   * backwards, each step only if it is still scheduled for the due time it was read with. Every
   * step the record has as scheduled must be listed (unchanged ones as `keep`), so that its pending
   * count moves along. Returns how many steps changed, or undefined when nothing was applied.
   */
  async replan(
    eventId: string,
    generation: number,
    steps: readonly StepReplan[],
    now: number,
    keepUntil: number,
  ): Promise<number | undefined> {
    const entries = steps.map((step) => ({
      id: step.stepId,
      d: step.plannedDueAt,
      a: step.action,
      nd: step.dueAt,
      ...(step.graceEndsAt !== undefined && { ne: step.graceEndsAt }),
      oc: step.countedChannel,
      c: step.channel,
      k: step.kind,
      r: step.ruleId,
      x: step.reason ? `${step.reason.code}: ${step.reason.text}` : "",
      f: step.reason ? entryFields(step.reason.ledger) : [],
      b: bucketOf(step.dueAt),
      bs: bucketStart(step.dueAt),
      t: scheduleEntry(eventId, step.stepId),
    }));
    const keys = [
      this.keys.eventRecord(eventId),
      this.keys.purchase(eventId),
      this.keys.ledgerHour(hourOf(now)),
      this.keys.scheduleIndex(),
      ...steps.flatMap((step) => [
        this.keys.pendingDay(dayOf(step.plannedDueAt)),
        this.keys.pendingDay(dayOf(step.dueAt)),
        this.keys.scheduleBucket(bucketOf(step.dueAt)),
      ]),
    ];
    const changed = await this.redis.fuReplanEvent(
      keys.length,
      ...keys,
      generation,
      now,
      AGGREGATE_RETENTION_MS,
      JSON.stringify(entries),
      keepUntil,
    );
    if (changed === -1) return undefined;
    if (steps.some((step) => step.action === "cancel" || step.action === "skip"))
      await this.trimAfterChange(eventId, now);
    return changed;
  }

  /** The rules generation an event was last planned with (undefined before generations). */
  async generationOf(eventId: string): Promise<number | undefined> {
    const raw = await this.redis.hget(this.keys.eventRecord(eventId), GENERATION_FIELD);
    return raw === null ? undefined : Number(raw);
  }

  /**
   * Runs a step script with the pending-count key of the step's due day. The caller's guess comes
   * first; a script that finds the step due on another day answers -1 with the record, and runs
   * again with that day (a step's due time never changes, so once is enough).
   */
  private async withDueDay<T extends [number, string, ...unknown[]]>(
    guess: number,
    run: (dueAt: number) => Promise<T>,
  ): Promise<T> {
    const reply = await run(guess);
    if (reply[0] !== -1) return reply;
    return run(readStepRecord(reply[1]).dueAt);
  }
}
