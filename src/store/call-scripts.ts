import { type CallOutcome, type CallScript, stepCallOutcome } from "../domain/voice-call.js";
import { StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { withStoreCommands } from "./script-registry.js";

/**
 * How long a call's script is kept: calls ring for a minute and last a few, and Twilio may post
 * its callbacks late; after this the script (a first name and a message) is gone.
 */
const SCRIPT_KEEP_MS = 2 * 24 * 3600_000;
/**
 * How long a call's record stays after Twilio reported it over: a key pressed as the customer hung
 * up reaches the gather webhook in no set order with the final status callback, sometimes after.
 */
const ENDED_KEEP_MS = 3600_000;
/**
 * How long a call stays bound to its follow-up (CallScripts.adoptable): a retry asks Twilio's
 * Calls list for calls created since its step's first attempt began, while the step's record
 * lasts (two days from its latest attempt); a week outlasts any retries.
 */
const BINDING_KEEP_MS = 7 * 24 * 3600_000;
/**
 * How often a change to a call's record is worked out anew because another webhook of the call
 * changed it meanwhile, before giving up (an error: Twilio retries the webhook). A call has a
 * handful of webhooks; this is never reached but by a bug.
 */
const MAX_CHANGE_ROUNDS = 20;

/**
 * A change to a call's record, worked out from the record as it is: the record to write, with
 * `ending` when it is the call's end (its expiry then shortens to an hour), or undefined when
 * there is nothing to write. It may run more than once (the record changed meanwhile: it is read
 * again), so whatever else it does must be safe to do again.
 */
export type CallChange = (
  call: StoredCall,
) => Promise<{ readonly call: StoredCall; readonly ending?: boolean } | undefined>;

/** A stored script and what the call's webhooks recorded so far. */
export interface StoredCall {
  readonly script: CallScript;
  /**
   * The sid of the call placed with it, once Twilio accepted it, or once one of the call's
   * webhooks came (a call placed although its request failed).
   */
  readonly callSid?: string;
  /**
   * The step's outcome so far (a score, a voicemail), the best of its calls' (stepCallOutcome):
   * the final callback keeps it.
   */
  readonly outcome?: CallOutcome;
  /**
   * Each call's own outcome, by call sid: a step has two calls when Twilio placed one although
   * its request failed and the retry placed another, and a webhook of one (a pick-up replayed
   * late from the spool) changes that call's outcome only. Records written before it was kept
   * have `outcome` alone, taken as the script's call's (callOutcomes).
   */
  readonly outcomes?: Readonly<Record<string, CallOutcome>>;
  /** How often the question was asked again after a key that means nothing. */
  readonly repeats?: number;
  /**
   * When the first attempt to place the call began (epoch ms): a later attempt that finds the
   * record without a call sid (the request failed midway, or its worker died) asks Twilio's Calls
   * list for a call placed since then (DeliveryChannel.findPlaced) before placing one.
   */
  readonly placingSince?: number;
  /** Twilio reported the call over: its outcome is recorded, only a late answer may follow. */
  readonly ended?: boolean;
  /**
   * When the final status callback came (epoch ms): the ledger hour its end was counted in, which
   * a pick-up replayed later from the webhook spool corrects (`unheard`).
   */
  readonly endedAt?: number;
}

/**
 * The scripts of voice calls in progress, keyed by follow-up id (the id in the callback URLs):
 * written before the call is placed, so the answer webhook finds it however soon it comes, and
 * kept an hour without its message once Twilio reports the call over (`endedCall`), for a key press
 * posted after that. Updates never bring a deleted script back, and never outlive its expiry.
 */
export class CallScripts {
  private readonly keys: StoreKeys;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
  ) {
    this.keys = new StoreKeys(prefix);
  }

  /** Stores the script before its call is placed, by an attempt begun at `placingSince`. */
  async prepare(followUpId: string, script: CallScript, placingSince: number): Promise<void> {
    await this.redis.set(
      this.keys.callScript(followUpId),
      JSON.stringify({ script, placingSince } satisfies StoredCall),
      "PX",
      SCRIPT_KEEP_MS,
    );
  }

  async get(followUpId: string): Promise<StoredCall | undefined> {
    const raw = await this.redis.get(this.keys.callScript(followUpId));
    return raw ? parseCall(raw) : undefined;
  }

  /**
   * What an earlier attempt left of the call (undefined: none prepared it): the sid of the call
   * it placed, as the call's webhooks told when Twilio placed it although its request failed (a
   * 5xx, a broken connection) or its worker died before recording it, and when that attempt began.
   */
  async earlierAttempt(
    followUpId: string,
  ): Promise<{ readonly callSid?: string; readonly placingSince?: number } | undefined> {
    const call = await this.get(followUpId);
    if (!call) return undefined;
    return {
      ...(call.callSid !== undefined && { callSid: call.callSid }),
      ...(call.placingSince !== undefined && { placingSince: call.placingSince }),
    };
  }

  /**
   * Of the calls Twilio's Calls list shows to the number (earliest first), the one a retry of
   * `followUpId` takes for the call its earlier attempt placed: the earliest bound to no
   * follow-up or to this one, so never another purchase's call to the same number, bound to this
   * follow-up in the same step, so that two retries asking at once never both take one call
   * (adoptable-call.lua). Undefined when there is none.
   */
  async adoptable(followUpId: string, callSids: readonly string[]): Promise<string | undefined> {
    if (callSids.length === 0) return undefined;
    const at = await withStoreCommands(this.redis).fuAdoptableCall(
      callSids.length,
      ...callSids.map((sid) => this.keys.callBinding(sid)),
      followUpId,
      BINDING_KEEP_MS,
    );
    return at > 0 ? callSids[at - 1] : undefined;
  }

  /** Notes the sid of the call placed with the script. */
  async bind(followUpId: string, callSid: string): Promise<void> {
    await this.change(followUpId, async (call) =>
      call.callSid === callSid ? undefined : { call: { ...call, callSid } },
    );
  }

  /**
   * Changes a call's record atomically (swap-call.lua): the change is worked out from the record
   * as read and written only if nobody wrote it meanwhile, else worked out again from what they
   * wrote. The call's webhooks (a key press and the final status callback, posted together as the
   * customer hangs up) so never write over each other's outcome. A record that names a call
   * anew (its own, or a second call's outcome) binds that call to the follow-up in the same write
   * (adoptable). Returns the record as it
   * was before the change and as it is after (the same when nothing was written); undefined when
   * it is gone (the call ended over an hour ago, or the customer was erased): nothing is written.
   */
  async change(
    followUpId: string,
    change: CallChange,
  ): Promise<{ readonly before: StoredCall; readonly after: StoredCall } | undefined> {
    const key = this.keys.callScript(followUpId);
    const redis = withStoreCommands(this.redis);
    for (let round = 0; round < MAX_CHANGE_ROUNDS; round++) {
      const raw = await this.redis.get(key);
      if (!raw) return undefined;
      const before = parseCall(raw);
      const next = await change(before);
      if (!next) return { before, after: before };
      const binds = namedAnew(before, next.call).map((sid) => this.keys.callBinding(sid));
      const written = await redis.fuSwapCall(
        1 + binds.length,
        key,
        ...binds,
        raw,
        JSON.stringify(next.call),
        next.ending ? ENDED_KEEP_MS : 0,
        ...(binds.length > 0 ? [followUpId, BINDING_KEEP_MS] : []),
      );
      if (written === 1) return { before, after: next.call };
      if (written === -1) return undefined;
    }
    throw new Error(
      `a call's record kept changing under ${MAX_CHANGE_ROUNDS} rounds of one change`,
    );
  }

  /** Forgets a call that was never placed, or whose customer was erased as it was placed. */
  async forget(followUpId: string): Promise<void> {
    await this.redis.del(this.keys.callScript(followUpId));
  }
}

/**
 * The calls `after` names that `before` did not: the step's call (callSid), and a second call of
 * the step (placed by Twilio although its request failed) once its outcome is kept; each is bound
 * to the follow-up as it is written, so no other follow-up's retry takes it for its own.
 */
function namedAnew(before: StoredCall, after: StoredCall): string[] {
  const known = new Set([before.callSid, ...Object.keys(callOutcomes(before))]);
  const named = [after.callSid, ...Object.keys(callOutcomes(after))];
  return [...new Set(named)].filter((sid): sid is string => !!sid && !known.has(sid));
}

/** A stored call's record. Scripts stored before shards name no shard: their events are in shard 0. */
function parseCall(raw: string): StoredCall {
  const stored = JSON.parse(raw) as StoredCall & { script: { shard?: number } };
  return { ...stored, script: { ...stored.script, shard: stored.script.shard ?? 0 } };
}

/**
 * A call's record once Twilio reported it over, with the outcome its final status callback
 * recorded (at `endedAt`): the message (a first name, what the call said) goes at once, the rest
 * (step, language, the number's keyed hash, the outcome) with the record, an hour later
 * (CallChange's `ending`), so a key press whose webhook comes after the final status callback is
 * still filed and acted on.
 */
export function endedCall(call: StoredCall, outcome: CallOutcome, endedAt: number): StoredCall {
  return { ...call, script: { ...call.script, text: "" }, outcome, ended: true, endedAt };
}

/** Each call's own outcome, by call sid (StoredCall.outcomes). */
export function callOutcomes(call: StoredCall): Readonly<Record<string, CallOutcome>> {
  if (call.outcomes) return call.outcomes;
  return call.outcome === undefined ? {} : { [call.callSid ?? ""]: call.outcome };
}

/** The record with one call's own outcome set, and the step's worked out again from its calls'. */
export function withCallOutcome(
  call: StoredCall,
  callSid: string,
  outcome: CallOutcome,
): StoredCall {
  const outcomes = { ...callOutcomes(call), [callSid]: outcome };
  return { ...call, outcomes, outcome: stepCallOutcome(Object.values(outcomes)) ?? outcome };
}
