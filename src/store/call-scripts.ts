import type { CallOutcome, CallScript } from "../domain/voice-call.js";
import { StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";

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

/** A stored script and what the call's webhooks recorded so far. */
export interface StoredCall {
  readonly script: CallScript;
  /**
   * The sid of the call placed with it, once Twilio accepted it, or once one of the call's
   * webhooks came (a call placed although its request failed).
   */
  readonly callSid?: string;
  /** Set once the call has an outcome (a score, a voicemail): the final callback keeps it. */
  readonly outcome?: CallOutcome;
  /** How often the question was asked again after a key that means nothing. */
  readonly repeats?: number;
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
 * kept an hour without its message once Twilio reports the call over (`end`), for a key press
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

  async prepare(followUpId: string, script: CallScript): Promise<void> {
    await this.redis.set(
      this.keys.callScript(followUpId),
      JSON.stringify({ script } satisfies StoredCall),
      "PX",
      SCRIPT_KEEP_MS,
    );
  }

  async get(followUpId: string): Promise<StoredCall | undefined> {
    const raw = await this.redis.get(this.keys.callScript(followUpId));
    if (!raw) return undefined;
    // Scripts stored before shards name no shard: their events are in shard 0.
    const stored = JSON.parse(raw) as StoredCall & { script: { shard?: number } };
    return { ...stored, script: { ...stored.script, shard: stored.script.shard ?? 0 } };
  }

  /**
   * The sid of a call placed with the script before this attempt, as the call's webhooks told:
   * Twilio placed it although its request failed (a 5xx, a broken connection), or its worker died
   * before recording it.
   */
  async placedBefore(followUpId: string): Promise<string | undefined> {
    return (await this.get(followUpId))?.callSid;
  }

  /** Notes the sid of the call placed with the script. */
  async bind(followUpId: string, callSid: string): Promise<void> {
    const call = await this.get(followUpId);
    if (call) await this.update(followUpId, { ...call, callSid });
  }

  /**
   * Replaces a script's record (its outcome so far, its repeats), keeping its expiry; false when
   * it is gone (the call ended, or the customer was erased): nothing is written then.
   */
  async update(followUpId: string, call: StoredCall): Promise<boolean> {
    const answer = await this.redis.call(
      "SET",
      this.keys.callScript(followUpId),
      JSON.stringify(call),
      "XX",
      "KEEPTTL",
    );
    return answer === "OK";
  }

  /**
   * Marks a call over with the outcome its final status callback recorded (at `endedAt`): the
   * message (a first name, what the call said) goes at once, the rest (step, language, the
   * number's keyed hash, the outcome) an hour later, so a key press whose webhook comes after the
   * final status callback is still filed and acted on. Nothing is written when the script is
   * gone; its expiry is never moved later.
   */
  async end(
    followUpId: string,
    call: StoredCall,
    outcome: CallOutcome,
    endedAt: number,
  ): Promise<void> {
    const key = this.keys.callScript(followUpId);
    const ended: StoredCall = {
      ...call,
      script: { ...call.script, text: "" },
      outcome,
      ended: true,
      endedAt,
    };
    const results = await this.redis
      .multi()
      .set(key, JSON.stringify(ended), "KEEPTTL", "XX")
      .pexpire(key, ENDED_KEEP_MS, "LT")
      .exec();
    const failed = results?.find(([error]) => error)?.[0];
    if (failed) throw failed;
  }

  /** Forgets a call that was never placed, or whose customer was erased as it was placed. */
  async forget(followUpId: string): Promise<void> {
    await this.redis.del(this.keys.callScript(followUpId));
  }
}
