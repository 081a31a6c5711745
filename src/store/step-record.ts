import type { Channel } from "../domain/events.js";
import type { StepKind } from "../domain/rules.js";

/**
 * A step's send state, as callers see it. The store keeps it as short JSON (one- and two-letter
 * fields, see StoredStep) because there is one per pending follow-up; the names stay in here.
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
  /** Send attempts made so far. */
  readonly attempts: number;
  /** The step's channel and kind as planned (absent on records written before December 2026). */
  readonly channel?: Channel;
  readonly kind?: StepKind;
  /** The provider's message id once sent. */
  readonly providerId?: string;
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
}

/** What a state change or annotation sets; fields left out keep their value. */
export interface StepPatch {
  readonly state?: StepState;
  readonly attempts?: number;
  readonly providerId?: string;
  readonly reason?: StepReason;
  readonly takeovers?: number;
  readonly delivery?: { readonly status: string; readonly errorCode?: number };
  readonly reply?: { readonly text: string; readonly receivedAt: number };
}

/** The stored form; the Lua scripts read and write `s`, `t`, `d`, `a`, `r`, `x`. */
export interface StoredStep {
  s: StepState;
  t?: number;
  d: number;
  a?: number;
  c?: Channel;
  k?: StepKind;
  id?: string;
  x?: string;
  r?: number;
  dl?: string;
  de?: number;
  rp?: string;
  rt?: number;
  rs?: number;
  rq?: number;
}

/** A stored record (JSON) as callers see it. */
export function readStepRecord(raw: string): StepRecord {
  const stored = JSON.parse(raw) as StoredStep;
  return {
    state: stored.s,
    ...(stored.t !== undefined && { changedAt: stored.t }),
    dueAt: stored.d,
    attempts: stored.a ?? 0,
    ...(stored.c !== undefined && { channel: stored.c }),
    ...(stored.k !== undefined && { kind: stored.k }),
    ...(stored.id !== undefined && { providerId: stored.id }),
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
  };
}

/** A patch in stored field names. */
export function storedPatch(patch: StepPatch): Partial<StoredStep> {
  return {
    ...(patch.state !== undefined && { s: patch.state }),
    ...(patch.attempts !== undefined && { a: patch.attempts }),
    ...(patch.providerId !== undefined && { id: patch.providerId }),
    ...(patch.reason !== undefined && { x: `${patch.reason.code}: ${patch.reason.text}` }),
    ...(patch.takeovers !== undefined && { r: patch.takeovers }),
    ...(patch.delivery !== undefined && {
      dl: patch.delivery.status,
      ...(patch.delivery.errorCode !== undefined && { de: patch.delivery.errorCode }),
    }),
    ...(patch.reply !== undefined && { rp: patch.reply.text, rt: patch.reply.receivedAt }),
  };
}

/** `capped: the customer's email frequency cap is reached` → code and text. */
function readReason(stored: string): StepReason {
  const colon = stored.indexOf(": ");
  return colon < 0
    ? { code: stored, text: "" }
    : { code: stored.slice(0, colon), text: stored.slice(colon + 2) };
}
