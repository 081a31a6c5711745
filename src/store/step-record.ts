import type { Channel } from "../domain/events.js";
import type { StepKind } from "../domain/rules.js";

/**
 * A step's send state, as callers see it. The store keeps it in a few characters (StoredStep,
 * encodeStoredStep) because there is one per pending follow-up; the names stay in here.
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

/**
 * A step `sending` whose sender last changed it at or before this instant: its lease ran out, so
 * its sender is taken for dead (a worker killed mid-send) and the step may be cancelled, as a
 * scheduled one, instead of waiting for another worker to take it over and send it
 * (update-step.lua reads `sending<=<epoch ms>` so).
 */
export type AbandonedSending = `sending<=${number}`;

/** The states a change may find a step in: any of these, or an abandoned `sending`. */
export type StepStateFilter = StepState | AbandonedSending;

/** `sending` whose lease of `leaseMs` has run out by `now`. */
export function abandonedSending(now: number, leaseMs: number): AbandonedSending {
  return `sending<=${Math.floor(now - leaseMs)}`;
}

/** Whether a record is a `sending` step whose lease of `leaseMs` has run out by `now`. */
export function isAbandonedSending(record: StepRecord, now: number, leaseMs: number): boolean {
  return record.state === "sending" && (record.changedAt ?? 0) + leaseMs <= now;
}

/** Why a step failed, was skipped or cancelled (or, while retrying, its last error). */
export interface StepReason {
  /** Machine-readable: `capped`, `refunded`, `permanent 550`, `transient ETIMEDOUT`. */
  readonly code: string;
  /** For people: what happened. */
  readonly text: string;
}

export interface StepRecord {
  readonly state: StepState;
  /** When the state was entered (epoch ms); absent while a step waits untouched since planning. */
  readonly changedAt?: number;
  /** The instant the step was planned for (epoch ms). */
  readonly dueAt: number;
  /**
   * Only for a step planned (or re-planned) after its due time had passed, so that `dueAt` is a
   * later send-window opening: when its grace period ends (epoch ms). The send-time guard skips
   * it after then, where it would otherwise count the grace period from `dueAt`.
   */
  readonly graceEndsAt?: number;
  /** Send attempts made so far. */
  readonly attempts: number;
  /** The step's channel and kind as planned (absent on records written before December 2026). */
  readonly channel?: Channel;
  readonly kind?: StepKind;
  /** The provider's message id once sent. */
  readonly providerId?: string;
  /**
   * Sent, but the bookkeeping after the send (message references, the call's binding, the
   * check-in note, the customer's latest sent) is not known to be done: the run that sent it
   * failed before its end, and the job's next run redoes it (FollowUpStore.settleSent clears it).
   */
  readonly bookkeepingPending?: true;
  /**
   * The provider's ids of the sends before a resend or retry put the step back (the latest
   * five): erasure removes their message references too.
   */
  readonly earlierProviderIds?: readonly string[];
  /**
   * The discount code its message carried, by the hash its stored code is keyed by
   * (discountCodeHash): erasure revokes it. Set once the send was tried; a resend keeps it (the
   * same step sends the same code).
   */
  readonly codeHash?: string;
  readonly reason?: StepReason;
  /** How often a send was taken over after its sender vanished (a possible duplicate each time). */
  readonly takeovers: number;
  /** The provider's last delivery report (Twilio status and error code). */
  readonly delivery?: { readonly status: string; readonly errorCode?: number };
  /** A reply to a check-in. */
  readonly reply?: { readonly text: string; readonly receivedAt: number };
  /** How often an operator had it sent again deliberately (`followups resend`). */
  readonly resends: number;
  /** How often an operator put it back in the queue after it failed (`followups failed --retry`). */
  readonly retries: number;
  /**
   * Whether its latest requeue, whose job sent it since, was a resend or a retry, when the record
   * tells (a step both resent and retried: which of `-r<n>` and `-q<n>` sent its latest message).
   */
  readonly lastRequeue?: "resend" | "retry";
  /**
   * While scheduled: its job was put back to wait (a send window, a frequency cap, a retry after
   * a transient failure) until `until` (epoch ms), for the reason `code` (POSTPONE_CODES). The
   * due time stays the planned one: the grace period counts from it.
   */
  readonly postponed?: { readonly until: number; readonly code: PostponeCode };
}

/** Why a step's job waits past its due time, as its record notes it (`postponed`). */
export const POSTPONE_CODES = [
  "send-window",
  "frequency-cap",
  "call-not-over",
  "thank-you-joined",
  "retry",
] as const;
export type PostponeCode = (typeof POSTPONE_CODES)[number];
/** A PostponeCode as a record stores it (`wy`): one letter. */
const POSTPONE_LETTERS: Readonly<Record<PostponeCode, string>> = {
  "send-window": "s",
  "frequency-cap": "f",
  "call-not-over": "c",
  "thank-you-joined": "t",
  retry: "r",
};
const POSTPONES_BY_LETTER = new Map(
  Object.entries(POSTPONE_LETTERS).map(([code, letter]) => [letter, code as PostponeCode]),
);

/** How a record stores why its job waits. */
export function postponeLetter(code: PostponeCode): string {
  return POSTPONE_LETTERS[code];
}

/** What a state change or annotation sets; fields left out keep their value. */
export interface StepPatch {
  readonly state?: StepState;
  /** The channel it went out on, when a rules edit changed it after the step was planned. */
  readonly channel?: Channel;
  readonly attempts?: number;
  readonly providerId?: string;
  readonly reason?: StepReason;
  readonly takeovers?: number;
  readonly delivery?: { readonly status: string; readonly errorCode?: number };
  readonly reply?: { readonly text: string; readonly receivedAt: number };
  /** Its job waits until then (a retry after a transient failure). */
  readonly postponed?: { readonly until: number; readonly code: PostponeCode };
  /** Set with `sent`: the bookkeeping after the send is to be done (StepRecord.bookkeepingPending). */
  readonly bookkeepingPending?: true;
  /** With the state a send leads to: the discount code it carried (StepRecord.codeHash). */
  readonly codeHash?: string;
}

/**
 * A step record's fields as the store names them; the Lua scripts read and write `s`, `t`, `d`,
 * `a`, `r`, `x`. The stored value is encodeStoredStep's, or (key layout 4 and before) its JSON.
 */
export interface StoredStep {
  s: StepState;
  t?: number;
  d: number;
  e?: number;
  a?: number;
  c?: Channel;
  k?: StepKind;
  id?: string;
  /** Earlier provider ids (requeue-step.lua keeps the latest five). */
  pid?: string[];
  /** Sent, its bookkeeping not known to be done (settle-sent.lua takes it off). */
  bk?: 1;
  /** The discount code sent, by its hash (StepRecord.codeHash; requeue-step.lua keeps it). */
  dc?: string;
  x?: string;
  r?: number;
  dl?: string;
  de?: number;
  rp?: string;
  rt?: number;
  rs?: number;
  rq?: number;
  /**
   * Which requeue came last (requeue-step.lua), and how many there were then: `r3`, the third
   * (resends and retries together) a resend. Older versions requeue without it: a count that is
   * not `rs` + `rq` any more says it is out of date.
   */
  lr?: string;
  /** While scheduled: its job waits until then (epoch ms), and why (`wy`, postponeLetter). */
  w?: number;
  wy?: string;
}

const STATE_CODES: Readonly<Record<StepState, string>> = {
  scheduled: "s",
  sending: "n",
  sent: "o",
  failed: "f",
  skipped: "k",
  cancelled: "c",
};
/** A channel in one letter, as stored step records (and a history's consent, `cn`) name it. */
export const CHANNEL_CODES: Readonly<Record<Channel, string>> = {
  email: "e",
  sms: "s",
  voice: "v",
};
const KIND_CODES: Readonly<Record<StepKind, string>> = {
  "thank-you": "t",
  "check-in": "c",
  discount: "d",
  custom: "u",
};
function byCode<T extends string>(codes: Readonly<Record<T, string>>): ReadonlyMap<string, T> {
  return new Map(Object.entries<string>(codes).map(([name, code]) => [code, name as T]));
}
const STATES_BY_CODE = byCode(STATE_CODES);
/** The channel a CHANNEL_CODES letter names. */
export const CHANNELS_BY_CODE = byCode(CHANNEL_CODES);
const KINDS_BY_CODE = byCode(KIND_CODES);
const COMPACT = /^(.)(.)(.)([0-9a-z]+)(?:\.([0-9a-z]+))?(?: (\{.*\}))?$/s;

function isWholeMs(value: number | undefined): value is number {
  return value !== undefined && Number.isSafeInteger(value) && value >= 0;
}

/**
 * The stored form of a step record (scripts/lib/step-codec.lua writes the same): one letter each
 * for the state, channel and kind, the due time in base 36, `.` and the time of the last change
 * in base 36 when set, then a space and the JSON of any other fields. A scheduled thank-you email
 * takes 11 characters against some 60 of JSON. A record that does not fit (a time that is not a
 * whole number of ms) is stored as JSON, as versions of key layout 4 and before stored every one.
 */
export function encodeStoredStep(stored: StoredStep): string {
  if (!isWholeMs(stored.d) || !Object.hasOwn(STATE_CODES, stored.s)) return JSON.stringify(stored);
  const { s, d, t, c, k, ...all } = stored;
  // As lib/step-codec.lua: a settled step keeps no note of a wait.
  const { w: _until, wy: _why, ...settled } = all;
  const rest = s === "scheduled" || s === "sending" ? all : settled;
  const channel = c && CHANNEL_CODES[c];
  const kind = k && KIND_CODES[k];
  const more: Record<string, unknown> = {
    ...rest,
    ...(!channel && c !== undefined && { c }),
    ...(!kind && k !== undefined && { k }),
    ...(!isWholeMs(t) && t !== undefined && { t }),
  };
  const changed = isWholeMs(t) ? `.${t.toString(36)}` : "";
  const tail = Object.keys(more).length > 0 ? ` ${JSON.stringify(more)}` : "";
  return `${STATE_CODES[s]}${channel ?? "-"}${kind ?? "-"}${d.toString(36)}${changed}${tail}`;
}

/** A stored step record's fields: from its compact form, or the JSON of earlier versions. */
export function decodeStoredStep(raw: string): StoredStep {
  if (raw.startsWith("{")) return JSON.parse(raw) as StoredStep;
  const match = COMPACT.exec(raw);
  const state = match && STATES_BY_CODE.get(match[1] ?? "");
  // Its length only: a record may hold a customer's reply, and this message is logged.
  if (!match || !state)
    throw new Error(`a step record in an unknown form (${raw.length} characters)`);
  const [, , channel = "-", kind = "-", due = "", changed, json] = match;
  const c = CHANNELS_BY_CODE.get(channel);
  const k = KINDS_BY_CODE.get(kind);
  return {
    ...(json ? (JSON.parse(json) as Partial<StoredStep>) : {}),
    s: state,
    d: Number.parseInt(due, 36),
    ...(changed && { t: Number.parseInt(changed, 36) }),
    ...(c && { c }),
    ...(k && { k }),
  };
}

/** A step record this version cannot read (damaged, or in a newer version's form). */
export const UNREADABLE_STEP = Symbol("unreadable step record");

/**
 * A stored step record, or UNREADABLE_STEP when this version cannot decode it: for readers that
 * go over many steps (the promoter, the job watch), which pass such a step over rather than fail
 * on it. The decoder's error is dropped.
 */
export function readableStepRecord(raw: string): StepRecord | typeof UNREADABLE_STEP {
  try {
    return readStepRecord(raw);
  } catch {
    return UNREADABLE_STEP;
  }
}

/** A stored record (either form, decodeStoredStep) as callers see it. */
export function readStepRecord(raw: string): StepRecord {
  const stored = decodeStoredStep(raw);
  return {
    state: stored.s,
    ...(stored.t !== undefined && { changedAt: stored.t }),
    dueAt: stored.d,
    ...(stored.e !== undefined && { graceEndsAt: stored.e }),
    attempts: stored.a ?? 0,
    ...(stored.c !== undefined && { channel: stored.c }),
    ...(stored.k !== undefined && { kind: stored.k }),
    ...(stored.id !== undefined && { providerId: stored.id }),
    ...(stored.bk !== undefined && { bookkeepingPending: true as const }),
    ...(Array.isArray(stored.pid) && { earlierProviderIds: stored.pid }),
    ...(typeof stored.dc === "string" && { codeHash: stored.dc }),
    ...(stored.x !== undefined && { reason: readReason(stored.x) }),
    takeovers: stored.r ?? 0,
    ...(stored.dl !== undefined && {
      delivery: { status: stored.dl, ...(stored.de !== undefined && { errorCode: stored.de }) },
    }),
    ...(stored.rp !== undefined && {
      reply: { text: stored.rp, receivedAt: stored.rt ?? stored.t ?? stored.d },
    }),
    resends: stored.rs ?? 0,
    retries: stored.rq ?? 0,
    ...lastRequeueOf(stored),
    ...postponedOf(stored),
  };
}

/** The record's note of its latest requeue (`lr`), when it counts every requeue there was. */
function lastRequeueOf(stored: StoredStep): Pick<StepRecord, "lastRequeue"> {
  const match = /^([rq])(\d+)$/.exec(stored.lr ?? "");
  if (!match || Number(match[2]) !== (stored.rs ?? 0) + (stored.rq ?? 0)) return {};
  return { lastRequeue: match[1] === "r" ? "resend" : "retry" };
}

/**
 * A scheduled step's note that its job waits, when it was written after the step's last state
 * change: a note left by a worker of an earlier version, which did not drop it when the step went
 * on and came back (a retry), is not shown.
 */
function postponedOf(stored: StoredStep): Pick<StepRecord, "postponed"> {
  const code = stored.wy === undefined ? undefined : POSTPONES_BY_LETTER.get(stored.wy);
  if (stored.s !== "scheduled" || stored.w === undefined || !code) return {};
  if (stored.t !== undefined && stored.w <= stored.t) return {};
  return { postponed: { until: stored.w, code } };
}

/** A patch in stored field names. */
export function storedPatch(patch: StepPatch): Partial<StoredStep> {
  return {
    ...(patch.state !== undefined && { s: patch.state }),
    ...(patch.channel !== undefined && { c: patch.channel }),
    ...(patch.attempts !== undefined && { a: patch.attempts }),
    ...(patch.providerId !== undefined && { id: patch.providerId }),
    ...(patch.bookkeepingPending && { bk: 1 as const }),
    ...(patch.codeHash !== undefined && { dc: patch.codeHash }),
    ...(patch.reason !== undefined && { x: `${patch.reason.code}: ${patch.reason.text}` }),
    ...(patch.takeovers !== undefined && { r: patch.takeovers }),
    ...(patch.delivery !== undefined && {
      dl: patch.delivery.status,
      ...(patch.delivery.errorCode !== undefined && { de: patch.delivery.errorCode }),
    }),
    ...(patch.reply !== undefined && { rp: patch.reply.text, rt: patch.reply.receivedAt }),
    ...(patch.postponed !== undefined && {
      w: patch.postponed.until,
      wy: postponeLetter(patch.postponed.code),
    }),
  };
}

/** `capped: the customer's email frequency cap is reached` → code and text. */
function readReason(stored: string): StepReason {
  const colon = stored.indexOf(": ");
  return colon < 0
    ? { code: stored, text: "" }
    : { code: stored.slice(0, colon), text: stored.slice(colon + 2) };
}
