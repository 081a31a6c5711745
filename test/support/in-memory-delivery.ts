import type { OutgoingMessage, SendResult } from "../../src/channels/channel.js";
import type { Channel, PurchaseCompleted } from "../../src/domain/events.js";
import type { FrequencyCap } from "../../src/domain/rules.js";
import type { DeliveryDeps, DeliveryJob } from "../../src/queue/delivery-processor.js";
import type { SentFollowUp } from "../../src/store/customer-history.js";
import type { LedgerEntry } from "../../src/store/delivery-ledger.js";
import type { ClaimResult, SendView } from "../../src/store/follow-up-store.js";
import type { CapResult } from "../../src/store/frequency-cap-store.js";
import { keptPart, purchaseFromKept } from "../../src/store/purchase-codec.js";
import type { RateTake } from "../../src/store/rate-limiter.js";
import type { EarlySmsStatus, StepRef } from "../../src/store/sms-references.js";
import {
  type PostponeCode,
  postponeLetter,
  readStepRecord,
  type StepPatch,
  type StepRecord,
  type StepState,
  type StepStateFilter,
  type StoredStep,
  storedPatch,
} from "../../src/store/step-record.js";
import { type OptOutQuery, optOutAnswer } from "../../src/store/suppression-list.js";

/**
 * In-memory stand-ins for the stores and channels delivery uses (the narrow `Pick`s of
 * DeliveryDeps), for unit tests without Redis. The step store follows the claim and update
 * scripts (src/store/scripts/claim-step.lua, update-step.lua) and keeps records in their stored
 * form, so a reason reads back as the real store reads it.
 */

type DeliveryStore = DeliveryDeps["store"];
type DeliveryCaps = DeliveryDeps["caps"];
type DeliveryRateLimiter = DeliveryDeps["rateLimiter"];
type DeliverySuppressions = DeliveryDeps["suppressions"];
type DeliverySmsReferences = DeliveryDeps["smsReferences"];

const PENDING: ReadonlySet<StepState> = new Set(["scheduled", "sending"]);

/** A step record as a test seeds it; what is left out is absent, as in a fresh record. */
export interface SeedRecord {
  readonly state: StepState;
  readonly dueAt: number;
  readonly changedAt?: number;
  readonly attempts?: number;
  readonly takeovers?: number;
  readonly channel?: Channel;
  readonly kind?: StepRecord["kind"];
  readonly providerId?: string;
  readonly reason?: { readonly code: string; readonly text: string };
}

/** One counted state change, as the step scripts count it in the ledger. */
export interface CountedChange {
  readonly stepId: string;
  readonly from: StepState;
  readonly to: StepState;
  readonly at: number;
  readonly entry: LedgerEntry;
}

/** The follow-up store's step state machine, in memory. */
export class InMemoryFollowUpStore implements DeliveryStore {
  private readonly events = new Map<string, PurchaseCompleted>();
  /** Event record hashes: step id → stored step JSON (as the Lua scripts keep it). */
  private readonly records = new Map<string, Map<string, string>>();
  private readonly stops = new Map<string, string>();
  private readonly generations = new Map<string, number>();
  /** Every ledger count the state changes carried, in order. */
  readonly counted: CountedChange[] = [];

  /** Saves the purchase as scheduling does (the event record exists from then on). */
  saveEvent(event: PurchaseCompleted): void {
    this.events.set(event.id, event);
    this.hash(event.id, true);
  }

  /** Writes a step record as it would be after earlier activity. */
  seed(eventId: string, stepId: string, seed: SeedRecord): void {
    const stored: StoredStep = {
      s: seed.state,
      d: seed.dueAt,
      ...(seed.changedAt !== undefined && { t: seed.changedAt }),
      ...(seed.attempts !== undefined && { a: seed.attempts }),
      ...(seed.takeovers !== undefined && { r: seed.takeovers }),
      ...(seed.channel !== undefined && { c: seed.channel }),
      ...(seed.kind !== undefined && { k: seed.kind }),
      ...storedPatch({
        ...(seed.providerId !== undefined && { providerId: seed.providerId }),
        ...(seed.reason !== undefined && { reason: seed.reason }),
      }),
    };
    this.hash(eventId, true)?.set(stepId, JSON.stringify(stored));
  }

  /** Marks the event stopped (a full refund), as stopEvent does. */
  stopEvent(eventId: string, reason: string): void {
    if (this.records.has(eventId)) this.stops.set(eventId, reason);
  }

  /** The step's record now, for assertions. */
  record(eventId: string, stepId: string): StepRecord | undefined {
    const raw = this.records.get(eventId)?.get(stepId);
    return raw === undefined ? undefined : readStepRecord(raw);
  }

  /** The step's record as stored (its field names), for assertions on what it keeps. */
  storedForm(eventId: string, stepId: string): StoredStep | undefined {
    const raw = this.records.get(eventId)?.get(stepId);
    return raw === undefined ? undefined : (JSON.parse(raw) as StoredStep);
  }

  /** Drops the stored purchase (expired, or scrubbed), keeping the event record. */
  forgetEvent(eventId: string): void {
    this.events.delete(eventId);
  }

  async stepRecords(
    eventId: string,
    stepIds: readonly string[],
  ): Promise<Map<string, StepRecord | undefined>> {
    return new Map(stepIds.map((id) => [id, this.record(eventId, id)]));
  }

  async readForSend(eventId: string): Promise<{ event?: PurchaseCompleted }> {
    const event = this.events.get(eventId);
    return event ? { event } : {};
  }

  /** Records here never expire. */
  async recordExpiresAt(_eventId: string): Promise<number | undefined> {
    return undefined;
  }

  /** The rules generation a purchase was planned under (none: before generations were kept). */
  async generationOf(eventId: string): Promise<number | undefined> {
    return this.generations.get(eventId);
  }

  /** Says a purchase was planned under rules generation `generation`. */
  plannedUnder(eventId: string, generation: number): void {
    this.generations.set(eventId, generation);
  }

  /** The step's record and the purchase; nothing to scrub in memory (no `lastStep`). */
  async sendView(eventId: string, stepId: string): Promise<SendView> {
    const record = this.record(eventId, stepId);
    const event = this.events.get(eventId);
    return { ...(record && { record }), ...(event && { event }) };
  }

  async claim(
    eventId: string,
    stepId: string,
    now: number,
    leaseMs: number,
    options: { ifCancelled?: LedgerEntry; dueAt?: number } = {},
  ): Promise<ClaimResult> {
    const hash = this.hash(eventId, true) ?? new Map<string, string>();
    const raw = hash.get(stepId);
    // As read-step.lua: a step without a record reads as a fresh one, scheduled and due now.
    const rec: StoredStep = raw
      ? (JSON.parse(raw) as StoredStep)
      : { s: "scheduled", t: now, d: now, a: 0 };
    const takenOver = rec.s === "sending" && (rec.t ?? Number.NaN) + leaseMs <= now;
    const stop = this.stops.get(eventId);
    if (stop !== undefined && (rec.s === "scheduled" || takenOver)) {
      const cancelled: StoredStep = { ...rec, s: "cancelled", x: stop, t: now };
      hash.set(stepId, JSON.stringify(cancelled));
      if (options.ifCancelled)
        this.counted.push({
          stepId,
          from: "scheduled",
          to: "cancelled",
          at: now,
          entry: options.ifCancelled,
        });
      this.scrubIfDone(eventId);
      return { claimed: false, record: readStepRecord(JSON.stringify(cancelled)) };
    }
    if (rec.s === "scheduled" || takenOver) {
      const claimed: StoredStep = {
        ...rec,
        ...(takenOver && { r: (rec.r ?? 0) + 1 }),
        s: "sending",
        t: now,
      };
      hash.set(stepId, JSON.stringify(claimed));
      return { claimed: true, record: readStepRecord(JSON.stringify(claimed)), takenOver };
    }
    return { claimed: false, record: readStepRecord(JSON.stringify(rec)) };
  }

  async transition(
    eventId: string,
    stepId: string,
    from: readonly StepStateFilter[],
    patch: StepPatch,
    now: number,
    ledger?: LedgerEntry,
    _dueAt?: number,
  ): Promise<StepRecord | undefined> {
    const hash = this.hash(eventId, false);
    if (!hash) return undefined;
    const raw = hash.get(stepId);
    const rec: StoredStep = raw
      ? (JSON.parse(raw) as StoredStep)
      : { s: "scheduled", t: now, d: now, a: 0 };
    // As update-step.lua: `sending<=T` is a step being sent whose sender last changed it by T.
    const allowed = from.some((state) => {
      const before = /^sending<=(-?\d+)$/.exec(state)?.[1];
      return before === undefined
        ? state === rec.s
        : rec.s === "sending" && (rec.t ?? 0) <= Number(before);
    });
    if (!allowed) return undefined;
    const { w: _until, wy: _why, ...settled } = rec;
    const patched: StoredStep = { ...rec, ...storedPatch(patch), t: now };
    // As update-step.lua: a step out of the pending states keeps no note of a postponement.
    const changed: StoredStep = PENDING.has(patched.s)
      ? patched
      : { ...settled, ...storedPatch(patch), t: now };
    hash.set(stepId, JSON.stringify(changed));
    if (ledger) this.counted.push({ stepId, from: rec.s, to: changed.s, at: now, entry: ledger });
    if (PENDING.has(rec.s) && !PENDING.has(changed.s)) this.scrubIfDone(eventId);
    return readStepRecord(JSON.stringify(changed));
  }

  /** As note-postponed.lua: only on a scheduled step. */
  async notePostponed(
    eventId: string,
    stepId: string,
    until: number,
    code: PostponeCode,
  ): Promise<boolean> {
    const hash = this.hash(eventId, false);
    const raw = hash?.get(stepId);
    if (!hash || raw === undefined) return false;
    const rec = JSON.parse(raw) as StoredStep;
    if (rec.s !== "scheduled") return false;
    hash.set(stepId, JSON.stringify({ ...rec, w: until, wy: postponeLetter(code) }));
    return true;
  }

  /** The latest sent follow-up per customer, as settle-sent.lua keeps it. */
  readonly lastSent = new Map<string, SentFollowUp>();

  /**
   * As settle-sent.lua: the step loses its mark, the customer's latest sent moves on; for an
   * event stopped by an erasure, the step loses its provider ids and code instead.
   */
  async settleSent(
    eventId: string,
    stepId: string,
    customerId: string,
    sent: SentFollowUp,
    _keepMs: number,
  ): Promise<"settled" | "gone" | "erased"> {
    const hash = this.hash(eventId, false);
    const raw = hash?.get(stepId);
    if (!hash || raw === undefined) return "gone";
    const { bk: _mark, ...rec } = JSON.parse(raw) as StoredStep;
    if (this.stops.get(eventId)?.startsWith("erased:")) {
      const { id: _id, pid: _earlier, dc: _code, ...scrubbed } = rec;
      hash.set(stepId, JSON.stringify(scrubbed));
      return "erased";
    }
    hash.set(stepId, JSON.stringify(rec));
    const known = this.lastSent.get(customerId);
    if (!known || known.at <= sent.at) this.lastSent.set(customerId, sent);
    return "settled";
  }

  private hash(eventId: string, create: boolean): Map<string, string> | undefined {
    let hash = this.records.get(eventId);
    if (!hash && create) {
      hash = new Map();
      this.records.set(eventId, hash);
    }
    return hash;
  }

  /**
   * As update-step.lua: once no step is pending, the purchase is trimmed to what is kept after the
   * last step (keptPart: no categories or SKUs, the first name only).
   */
  private scrubIfDone(eventId: string): void {
    for (const raw of this.records.get(eventId)?.values() ?? []) {
      if (PENDING.has((JSON.parse(raw) as StoredStep).s)) return;
    }
    // As the store: what a resend, the timeline and an alert need stays (keptPart).
    const event = this.events.get(eventId);
    if (event) this.events.set(eventId, purchaseFromKept(keptPart(event)));
  }
}

/** A channel adapter that records what it is given and answers from a script, in order. */
export class ScriptedChannel {
  readonly sent: OutgoingMessage[] = [];
  private readonly results: SendResult[];
  private next = 0;

  constructor(results: readonly SendResult[] = []) {
    this.results = [...results];
  }

  async send(message: OutgoingMessage): Promise<SendResult> {
    this.sent.push(message);
    const result = this.results[this.next];
    this.next += 1;
    return result ?? { ok: true, id: `${message.channel}-${this.sent.length}` };
  }
}

/**
 * Frequency caps: a follow-up that holds a slot keeps it (a retry); otherwise `full` says whether
 * the cap is reached and when it frees up, as take-cap-slot.lua answers.
 */
export class InMemoryCaps implements DeliveryCaps {
  private readonly held = new Set<string>();
  readonly taken: { channel: Channel; customerId: string; followUpId: string }[] = [];
  readonly released: { channel: Channel; customerId: string; followUpId: string }[] = [];

  constructor(private readonly full?: { readonly freeAt: number }) {}

  /** A slot taken earlier (by a previous attempt of the same follow-up). */
  hold(channel: Channel, customerId: string, followUpId: string): void {
    this.held.add(`${channel}|${customerId}|${followUpId}`);
  }

  holds(channel: Channel, customerId: string, followUpId: string): boolean {
    return this.held.has(`${channel}|${customerId}|${followUpId}`);
  }

  async take(
    channel: Channel,
    customerId: string,
    followUpId: string,
    caps: readonly FrequencyCap[],
    _now: number,
  ): Promise<CapResult> {
    const key = `${channel}|${customerId}|${followUpId}`;
    if (caps.length === 0 || this.held.has(key)) return { allowed: true };
    if (this.full) return { allowed: false, freeAt: this.full.freeAt };
    this.held.add(key);
    this.taken.push({ channel, customerId, followUpId });
    return { allowed: true };
  }

  async release(channel: Channel, customerId: string, followUpId: string): Promise<void> {
    this.held.delete(`${channel}|${customerId}|${followUpId}`);
    this.released.push({ channel, customerId, followUpId });
  }
}

/** A rate limiter that answers the same each time (granted at once unless told otherwise). */
export class FixedRateLimiter implements DeliveryRateLimiter {
  readonly asked: { channel: Channel; ratePerSecond: number }[] = [];

  constructor(
    private readonly answer: RateTake = { granted: true, waitMs: 0 },
    /** Runs as each slot is given: what happens elsewhere while the send waits for it. */
    private readonly meanwhile?: () => Promise<void>,
  ) {}

  async take(channel: Channel, ratePerSecond: number): Promise<RateTake> {
    this.asked.push({ channel, ratePerSecond });
    await this.meanwhile?.();
    return this.answer;
  }
}

/**
 * The suppression list, with addresses kept as given (the real one hashes them); an opt-out it is
 * asked to count with a new suppression is recorded in `counted`, as the real one counts it.
 */
export class InMemorySuppressions implements DeliverySuppressions {
  private readonly members = new Set<string>();
  readonly suppressed: { channel: Channel; customerId?: string; address?: string }[] = [];
  readonly counted: LedgerEntry[] = [];

  async suppress(
    channel: Channel,
    who: { customerId?: string; address?: string },
    countAs?: { entry: LedgerEntry; now: number },
  ): Promise<boolean> {
    const keys = memberKeys(channel, who);
    const isNew = keys.some((key) => !this.members.has(key));
    for (const key of keys) this.members.add(key);
    this.suppressed.push({ channel, ...who });
    if (isNew && countAs) this.counted.push(countAs.entry);
    return isNew;
  }

  /** Opt-out times are not kept here: nothing replays a START against them. */
  async noteOptOutAt(): Promise<void> {}

  async addressMember(address: string): Promise<string> {
    return `member:${address}`;
  }

  async customerMember(customerId: string): Promise<string> {
    return `customer:${customerId}`;
  }

  /** The question the real list asks Redis: a list per channel and scope, with its members. */
  async optOutQuery(
    targets: readonly { channel: Channel; who: { customerId?: string; address?: string } }[],
  ): Promise<OptOutQuery> {
    const lists: string[] = [];
    const members: string[][] = [];
    const asked: OptOutQuery["asked"][number][] = [];
    for (const { channel, who } of targets) {
      const keys = memberKeys(channel, who);
      if (keys.length === 0) continue;
      lists.push(`${channel}|all`, `${channel}|marketing`);
      members.push(keys, keys);
      asked.push({ channel, scope: "all" }, { channel, scope: "marketing" });
    }
    return { lists, members, asked };
  }

  async isSuppressed(
    channel: Channel,
    who: { customerId?: string; address?: string },
  ): Promise<boolean> {
    return memberKeys(channel, who).some((key) => this.members.has(key));
  }

  async optOutsOf(
    targets: readonly { channel: Channel; who: { customerId?: string; address?: string } }[],
  ): Promise<ReturnType<typeof optOutAnswer>> {
    return this.answer(await this.optOutQuery(targets));
  }

  /** What Redis answers that question (offers-only opt-outs are not kept here). */
  answer(query: OptOutQuery): ReturnType<typeof optOutAnswer> {
    const flags = query.lists.map((list, index) =>
      list.endsWith("|all") && (query.members[index] ?? []).some((key) => this.members.has(key))
        ? 1
        : 0,
    );
    return optOutAnswer(query, flags);
  }
}

/** An order with no refunds, read with the opt-outs `suppressions` answer. */
export function ordersWithoutRefunds(suppressions: InMemorySuppressions): DeliveryDeps["orders"] {
  const order = {
    events: [],
    eventIds: [],
    refunds: [],
    returns: [],
    fullyRefunded: false,
    recorded: [],
    dropped: [],
  };
  return {
    get: async () => order,
    getWithOptOuts: async (_orderId, query) => ({ order, optedOut: suppressions.answer(query) }),
  };
}

function memberKeys(channel: Channel, who: { customerId?: string; address?: string }): string[] {
  return [
    ...(who.customerId ? [`${channel}|c:${who.customerId}`] : []),
    ...(who.address ? [`${channel}|a:${who.address.trim().toLowerCase()}`] : []),
  ];
}

/** SMS sids remembered for Twilio's callbacks, recorded. */
export class RecordingSmsReferences implements DeliverySmsReferences {
  readonly remembered: {
    sid: string;
    recipientMember: string;
    at: StepRef & { kind: string };
    keepMs: number;
  }[] = [];

  /** Twilio's statuses posted before the reference, by sid: handed over as it is written. */
  readonly early = new Map<string, EarlySmsStatus[]>();

  async rememberSms(
    sid: string,
    recipientMember: string,
    at: StepRef & { kind: string },
    keepMs: number,
  ): Promise<EarlySmsStatus[]> {
    this.remembered.push({ sid, recipientMember, at, keepMs });
    return this.early.get(sid) ?? [];
  }

  async dropEarlyStatuses(): Promise<void> {}

  /** Emails remembered by Message-ID, for replies. */
  readonly emails: { messageId: string; at: StepRef }[] = [];

  async rememberEmail(messageId: string, at: StepRef): Promise<void> {
    this.emails.push({ messageId, at });
  }

  /** References removed again (a customer erased while their message was on its way). */
  readonly forgotten: { channel: "email" | "sms"; providerId: string; checkInOf?: string }[] = [];

  async forgetSent(
    channel: "email" | "sms",
    providerId: string,
    checkInOf?: string,
  ): Promise<void> {
    this.forgotten.push({ channel, providerId, ...(checkInOf !== undefined && { checkInOf }) });
  }

  async textedBefore(recipientMember: string): Promise<boolean> {
    return this.remembered.some((entry) => entry.recipientMember === recipientMember);
  }

  /** Charge ids kept for an erased customer's SMS, by sid. */
  readonly erasedCharges = new Map<string, string>();

  async keepErasedCharge(sid: string, chargeId: string): Promise<void> {
    this.erasedCharges.set(sid, chargeId);
  }
}

/** A BullMQ job as delivery sees it; `delayedUntil` holds every moveToDelayed time. */
export interface FakeJob extends DeliveryJob {
  readonly delayedUntil: number[];
}

export function fakeJob(options: {
  eventId: string;
  stepId: string;
  id: string;
  /** When the job was added and its delay (the due time of a step without a record). */
  timestamp: number;
  delay: number;
}): FakeJob {
  const delayedUntil: number[] = [];
  return {
    data: { e: options.eventId, s: options.stepId },
    id: options.id,
    timestamp: options.timestamp,
    // As BullMQ leaves a job that came due: its delay 0, the one it was made with in its options.
    delay: 0,
    opts: { delay: options.delay },
    delayedUntil,
    moveToDelayed: async (until: number, _token?: string) => {
      delayedUntil.push(until);
    },
  };
}
