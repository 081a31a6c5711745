import { consentFor } from "../domain/consent-timeline.js";
import { PHONE_CHANNELS } from "../domain/events.js";
import type { RuleSet } from "../domain/rules.js";
import { consentRefusal } from "../domain/send-guard.js";
import { billedMinutes, unitPrice } from "../domain/spend.js";
import { findStep } from "../domain/step-ref.js";
import {
  answerCall,
  answerOptedOut,
  type CallOutcome,
  type CallRequest,
  type CallTurn,
  callDelivered,
  callOutcome,
  HANG_UP,
  hearAnswer,
  meansStop,
  outcomeAfter,
} from "../domain/voice-call.js";
import type { Logger } from "../logger.js";
import {
  type CallScripts,
  callOutcomes,
  endedCall,
  type StoredCall,
  withCallOutcome,
} from "../store/call-scripts.js";
import type { CustomerHistoryStore } from "../store/customer-history.js";
import type { DeliveryLedger } from "../store/delivery-ledger.js";
import type { FollowUpStore } from "../store/follow-up-store.js";
import type { Shards } from "../store/shards.js";
import type { StepRef } from "../store/sms-references.js";
import type { StepReply } from "../store/step-replies.js";
import type { SuppressionList, SuppressionTarget } from "../store/suppression-list.js";
import { SENT_RECEIPTS } from "../store/webhook-receipts.js";
import { chargeSpend, type SpendDeps } from "./channel-spend.js";
import { stepLabels } from "./step-labels.js";

export interface VoiceCallDeps {
  readonly rules: () => RuleSet;
  /** Who an offer's call says is calling: the rules' shop name (or SHOP_NAME standing in for it). */
  readonly shopName: () => string;
  readonly calls: CallScripts;
  /** Every shard's stores: a call's script names the shard of its step's event. */
  readonly shards: Pick<
    Shards<{
      readonly store: Pick<FollowUpStore, "annotate" | "readForSend">;
      readonly history: Pick<CustomerHistoryStore, "latestConsent">;
    }>,
    "of"
  >;
  /** Files a keypad answer as a reply on the step (CustomerFeedback.fileReply). */
  readonly fileReply: (
    step: StepRef,
    text: string,
    channel: "voice",
    receipt: string,
  ) => Promise<StepReply | undefined>;
  /**
   * A 9 suppresses the number; a number or customer suppressed before the call is answered (of
   * offers, for an offer's call), or whose consent for calls a later purchase withdrew, hears no
   * message and no question.
   */
  readonly suppressions: Pick<SuppressionList, "suppress" | "optOutsOf" | "noteOptOutAt">;
  /** A call's minutes are charged to the voice spend of the month when it ends. */
  readonly spend: SpendDeps;
  /** Counts a call's end (in the global ledger), and corrects it for a call found unheard. */
  readonly ledger: Pick<DeliveryLedger, "countOnce" | "recountOnce">;
  readonly logger: Logger;
  /** Epoch ms now. */
  readonly now: () => number;
}

/**
 * The three webhooks of a voice check-in: what to say when the call is answered, what a key press
 * means, and how the call ended. The turns come from the pure call logic (domain/voice-call);
 * this records their effects: the score as a reply on the step (which alerts owners when it is
 * low), a 9 as an opt-out from calls and texts, and the outcome on the step and in the ledger.
 */
export function createVoiceCalls(deps: VoiceCallDeps) {
  /**
   * Writes a call's outcome on its step record, as the call's record has it. Two webhooks of a
   * call handled at once (a key press and the final status callback) each write what they
   * recorded, in no set order: the one that wrote the older outcome then finds the call's record
   * says otherwise, and writes what it says, so the step ends with the call's latest outcome.
   */
  const annotate = async (
    followUpId: string,
    call: StoredCall,
    outcome: CallOutcome,
    at: { readonly now: number; readonly written?: boolean },
  ) => {
    const { eventId, stepId, shard } = call.script;
    const store = deps.shards.of(shard).store;
    let written = outcome;
    if (!at.written)
      await store.annotate(eventId, stepId, { delivery: { status: written } }, at.now);
    for (let round = 0; round < 3; round++) {
      const recorded = (await deps.calls.get(followUpId))?.outcome;
      if (recorded === undefined || recorded === written) break;
      written = recorded;
      await store.annotate(eventId, stepId, { delivery: { status: written } }, at.now);
    }
  };

  /**
   * Records an outcome on the call's record (atomically: CallScripts.change) and on the step
   * record; nothing when the script is gone (the call already ended over an hour ago, or the
   * customer was erased), or, unless `afterEnd`, when the call is over (its final status callback
   * recorded its outcome).
   */
  const note = async (request: CallRequest, next: CallOutcome, afterEnd = false): Promise<void> => {
    const changed = await deps.calls.change(request.followUpId, async (stored) => {
      if (stored.ended && !afterEnd) return undefined;
      // The call's own outcome: a person reached stays reached, but for a score (outcomeAfter);
      // the step's is the best of its calls' (a person reached on its other call stays reached).
      const call = withSid(stored, request);
      return outcomeAfter(callOutcomes(call)[request.callSid], next) === next
        ? { call: withCallOutcome(call, request.callSid, next) }
        : undefined;
    });
    const outcome = changed?.after.outcome;
    if (changed && changed.after !== changed.before && outcome !== undefined)
      await annotate(request.followUpId, changed.after, outcome, { now: deps.now() });
  };

  /**
   * The call's record, with the webhook's call sid when none is noted yet: a call Twilio placed
   * although its request failed (or its worker died before recording it) is known by its webhooks,
   * and what they write notes it, so that the step's retry takes it for its call (earlierAttempt).
   */
  const withSid = (call: StoredCall, request: CallRequest): StoredCall =>
    call.callSid === undefined ? { ...call, callSid: request.callSid } : call;
  const callOf = async (request: CallRequest) => {
    const call = await deps.calls.get(request.followUpId);
    return call && withSid(call, request);
  };

  /**
   * Charges a call's billed minutes at `minutePriceMicros` (none when unpriced) to the voice spend
   * of the month it ended in, once per call.
   */
  const chargeMinutes = async (
    minutePriceMicros: number | undefined,
    request: CallRequest & { readonly durationSeconds?: number },
    now: number,
  ) => {
    const minutes = billedMinutes(request.durationSeconds ?? 0);
    if (minutePriceMicros === undefined || minutes === 0) return;
    await chargeSpend(
      deps.spend,
      deps.rules(),
      { channel: "voice", id: `call:${request.callSid}`, micros: minutes * minutePriceMicros },
      undefined,
      now,
    );
  };

  /** What a started minute to a number costs, as the rules price it now; undefined when unpriced. */
  const priceOf = (to: string | undefined) => {
    const price = to === undefined ? undefined : unitPrice(deps.rules().spend, "voice", to);
    return price?.ok ? price.micros : undefined;
  };

  /** A webhook about another call than the script's (an earlier attempt Twilio placed after all). */
  const otherCall = (call: StoredCall, request: CallRequest) =>
    call.callSid !== undefined && call.callSid !== request.callSid;

  /** The number a call's script was placed to, as the suppression lists know it (its keyed hash). */
  const calledNumber = (call: StoredCall): SuppressionTarget => ({
    addressHash: call.script.recipient.replace(/^h:/, ""),
  });

  /**
   * Whether the customer's consent for calls now (their latest purchase that stated one, as the
   * send-time guard reads it) no longer lets the call's step go: "all" when they declined calls,
   * "offers" when an offer's call lacks the consent it needs. Undefined when it does, or when the
   * purchase is gone (erased) or cannot be read.
   */
  const consentWithdrawn = async (call: StoredCall): Promise<"all" | "offers" | undefined> => {
    const { store, history } = deps.shards.of(call.script.shard);
    const { event } = await store.readForSend(call.script.eventId);
    if (!event) return undefined;
    const consent = consentFor(event, "voice", await history.latestConsent(event.customer.id));
    // A script of a version before 7 December 2026 names no purpose: its step's in the rules.
    const rules = deps.rules();
    const purpose =
      call.script.purpose ?? findStep(rules, call.script.stepId)?.step.purpose ?? "marketing";
    const refused = consentRefusal(
      { channel: "voice", purpose },
      consent,
      rules.defaults.transactionalNeedsConsent,
    );
    if (!refused) return undefined;
    return refused.declined || purpose !== "marketing" ? "all" : "offers";
  };

  /** A 9 on a call: no more calls or texts to the number. */
  const optOut = async (who: SuppressionTarget, now: number) => {
    // Its time first: a START sent before it and replayed from the spool while the number is
    // being suppressed must not take it off again.
    await deps.suppressions.noteOptOutAt(who, now);
    for (const channel of PHONE_CHANNELS) {
      await deps.suppressions.suppress(channel, who, {
        entry: { outcome: "optout", channel, kind: "-", ruleId: "-", reason: "call-keypad" },
        now,
      });
    }
  };

  return {
    /** The call was picked up (by a person or a machine): its first turn. */
    async answered(request: CallRequest): Promise<CallTurn> {
      const stored = await deps.calls.get(request.followUpId);
      if (!stored || stored.ended) return HANG_UP;
      const call = withSid(stored, request);
      // A call whose request failed, placed all the same: noted, so the retry places no other.
      if (stored.callSid === undefined)
        await deps.calls.change(request.followUpId, async (now) =>
          now.callSid === undefined ? { call: withSid(now, request) } : undefined,
        );
      // The number (a STOP, a 9 on another call) or the customer (an event, a link: by id) may
      // have opted out since the call was placed: of every call, or (an offer's call) of offers.
      // Both lists in one round trip. A script of a version before 7 December 2026 names no
      // purpose: taken for an offer's, so an offers-only opt-out ends it too.
      const who = {
        ...calledNumber(call),
        ...(call.script.customer !== undefined && { customerMember: call.script.customer }),
      };
      // So may their consent for calls, which a later purchase's checkout withdrew: read as the
      // send-time guard reads it.
      const [optedOut, withdrawn] = await Promise.all([
        deps.suppressions.optOutsOf([{ channel: "voice", who }]),
        consentWithdrawn(call),
      ]);
      const offer = (call.script.purpose ?? "marketing") === "marketing";
      const optedOutOf = optedOut.all.has("voice")
        ? "all"
        : offer && optedOut.marketing.has("voice")
          ? "offers"
          : undefined;
      const scope = optedOutOf ?? withdrawn;
      if (scope !== undefined) {
        const turn = answerOptedOut(call.script, request.answeredBy, scope);
        await note(request, turn.type === "hang-up" ? "machine" : "answered-no-score");
        deps.logger.info(
          { stepId: call.script.stepId, scope, why: optedOutOf ? "opted-out" : "no-consent" },
          "call answered after its number or customer opted out, or its customer withdrew consent",
        );
        return turn;
      }
      const turn = answerCall(call.script, request.answeredBy, deps.shopName());
      if (turn.type !== "ask") {
        await note(request, turn.type === "hang-up" ? "machine" : "voicemail");
      }
      return turn;
    },

    /**
     * The customer's answer to the question (keys pressed or words said, or nothing). `to` is the
     * number Twilio called: when the call's record is gone (an answer spooled while Redis was away
     * and replayed over an hour after the call ended), a 9 still opts that number out. The
     * opt-out is dated `receivedAt` when given (the answer's arrival), else now.
     */
    async gathered(
      request: CallRequest & {
        readonly digits?: string;
        readonly speech?: string;
        readonly to?: string;
        readonly receivedAt?: number;
      },
    ): Promise<CallTurn> {
      const call = await callOf(request);
      if (!call) {
        if (request.to !== undefined && meansStop(request.digits, request.speech)) {
          await optOut({ address: request.to }, request.receivedAt ?? deps.now());
          deps.logger.info(
            { followUpId: request.followUpId },
            "customer pressed 9 on a call no longer on file: no more calls or texts to its number",
          );
        }
        return HANG_UP;
      }
      const heard = hearAnswer(call.script, request.digits, request.speech, call.repeats ?? 0);
      const { eventId, stepId, shard } = call.script;
      // Posted after the final status callback (Twilio sends both as the customer hangs up, in
      // no set order): a score or a 9 still counts; no answer leaves the outcome recorded.
      if (call.ended && heard.kind !== "score" && heard.kind !== "stop") return HANG_UP;
      if (heard.kind === "score") {
        // Filed under the call's answer (fileReply): two copies of the webhook at once, or the
        // retry of one that failed half-way, file (count and alert) one reply.
        const receipt = SENT_RECEIPTS.callAnswer(request.callSid);
        await deps.fileReply({ eventId, stepId, shard }, heard.reply, "voice", receipt);
        await note(request, "answered", true);
      } else if (heard.kind === "stop") {
        await optOut(calledNumber(call), request.receivedAt ?? deps.now());
        await note(request, "answered-no-score", true);
        deps.logger.info({ stepId }, "customer pressed 9 on a call: no more calls or texts");
      } else if (heard.kind === "none") {
        await note(request, "answered-no-score");
      } else {
        await deps.calls.change(request.followUpId, async (now) => ({
          call: { ...withSid(now, request), repeats: (now.repeats ?? 0) + 1 },
        }));
      }
      return heard.turn;
    },

    /**
     * A call picked up while Redis was away, and hung up on before it said anything (its answer
     * webhook, spooled): recorded as `unheard`, so that its final status (`completed`, as for a
     * person who picked up) leaves it undelivered and its fallback goes out; also after that
     * status callback (Redis back before the spool's next round), whose count in the ledger is
     * then corrected. Changes nothing for another call than the script's.
     */
    async unheard(request: CallRequest): Promise<"recorded" | "unknown-call"> {
      const seen: { answer: "recorded" | "unknown-call" } = { answer: "recorded" };
      const changed = await deps.calls.change(request.followUpId, async (stored) => {
        const call = withSid(stored, request);
        if (otherCall(call, request)) {
          seen.answer = "unknown-call";
          return undefined;
        }
        seen.answer = "recorded";
        // Recorded by an earlier replay of this pick-up. A score cannot follow a call hung up on
        // at pick-up.
        const own = callOutcomes(call)[request.callSid];
        if (own === "unheard" || own === "answered") return undefined;
        const next = withCallOutcome(call, request.callSid, "unheard");
        // The step's outcome stays when another call of the step went further (a person reached
        // on the call Twilio placed although its request failed): only this call's changes.
        if (next.outcome === call.outcome) return { call: next };
        const outcome = next.outcome ?? "unheard";
        const { eventId, stepId, shard } = call.script;
        const record = await deps.shards
          .of(shard)
          .store.annotate(eventId, stepId, { delivery: { status: outcome } }, deps.now());
        // Its final status callback came first (Redis back before the spool's next round) and
        // counted the call's end by what it said alone (`completed`: a person reached): counted
        // again as unheard, once, before the script's outcome changes (a crash in between redoes
        // it).
        if (call.ended && call.outcome !== undefined && call.endedAt !== undefined) {
          const labels = stepLabels(deps.rules(), stepId, record);
          const counted = (counts: CallOutcome) =>
            callDelivered(counts)
              ? { outcome: "delivered", ...labels, channel: "voice" }
              : { outcome: "undelivered", ...labels, channel: "voice", reason: counts };
          await deps.ledger.recountOnce(
            SENT_RECEIPTS.callUnheard(request.callSid),
            counted(call.outcome),
            counted(outcome),
            call.endedAt,
          );
        }
        return { call: next };
      });
      if (!changed) return "unknown-call";
      const outcome = changed.after.outcome;
      if (changed.after.outcome !== changed.before.outcome && outcome !== undefined) {
        await annotate(request.followUpId, changed.after, outcome, {
          now: deps.now(),
          written: true,
        });
        deps.logger.info(
          { stepId: changed.after.script.stepId },
          "call picked up while Redis was away, hung up on before its message: recorded as unheard",
        );
      }
      return seen.answer;
    },

    /**
     * Twilio's status callback: the call's final outcome on the step and, once per call, in the
     * ledger (`delivered` when it reached a person or a voicemail, else `undelivered` with the
     * outcome as reason). The script is marked over (endedCall), so a key press posted after this
     * callback is still filed; a repeated final callback changes nothing. The outcome is worked
     * out and the call marked over in one atomic change of the call's record (CallScripts.change):
     * a key press handled at the same moment is either in it or comes after it, never lost under
     * it. A callback about another call than the script's (an earlier attempt that Twilio placed
     * after all) changes nothing either. A status that is not final (`ringing`, `in-progress`)
     * changes nothing, so one replayed from the webhook spool after the final one cannot move the
     * call back. The outcome is dated `receivedAt` when given (the callback's arrival, replayed
     * from the spool), else now.
     */
    async status(
      request: CallRequest & {
        readonly callStatus: string;
        readonly durationSeconds?: number;
        /** The number called (Twilio's `To`): it prices a call whose record is gone. */
        readonly to?: string;
        readonly receivedAt?: number;
      },
    ): Promise<"recorded" | "in-progress" | "unknown-call"> {
      const over = callOutcome(request.callStatus, undefined, undefined, "hangup") !== undefined;
      const now = request.receivedAt ?? deps.now();
      const seen: {
        answer: "recorded" | "in-progress" | "unknown-call";
        otherPrice?: number;
        ended?: CallOutcome;
      } = { answer: "recorded" };
      const changed = await deps.calls.change(request.followUpId, async (stored) => {
        const call = withSid(stored, request);
        seen.ended = undefined;
        if (otherCall(call, request)) {
          seen.answer = "unknown-call";
          seen.otherPrice = call.script.minutePriceMicros;
          return undefined;
        }
        // How this call ended, by what its webhooks recorded; the step's outcome is the best of
        // its calls' (a person reached on the step's other call stays reached).
        const ending = callOutcome(
          request.callStatus,
          request.answeredBy,
          callOutcomes(call)[request.callSid],
          call.script.answeringMachine,
        );
        seen.answer = ending ? "recorded" : "in-progress";
        if (!ending || call.ended) return undefined;
        const next = withCallOutcome(call, request.callSid, ending);
        const outcome = next.outcome ?? ending;
        // Done before the call is marked over, each once however often it runs: a callback
        // retried after a crash in between, or a change worked out again because a key press
        // changed the record meanwhile, records the call's end once.
        const { eventId, stepId, shard } = call.script;
        const record = await deps.shards
          .of(shard)
          .store.annotate(eventId, stepId, { delivery: { status: outcome } }, now);
        const labels = stepLabels(deps.rules(), stepId, record);
        const delivered = callDelivered(outcome);
        // Charged once per call (by its sid), before the count.
        await chargeMinutes(call.script.minutePriceMicros, request, now);
        await deps.ledger.countOnce(
          SENT_RECEIPTS.callEnd(request.callSid),
          {
            outcome: delivered ? "delivered" : "undelivered",
            ...labels,
            channel: "voice",
            ...(!delivered && { reason: outcome }),
          },
          now,
        );
        seen.ended = outcome;
        return { call: endedCall(next, outcome, now), ending: true };
      });
      if (!changed || seen.answer === "unknown-call") {
        // Its record is gone (the customer erased while it rang), or another call placed with
        // the script (one Twilio placed although its request failed): it changes nothing on the
        // step, but Twilio bills it.
        const price = changed ? seen.otherPrice : priceOf(request.to);
        if (over) await chargeMinutes(price, request, now);
        return "unknown-call";
      }
      if (seen.ended !== undefined)
        await annotate(request.followUpId, changed.after, seen.ended, { now, written: true });
      return seen.answer;
    },
  };
}

export type VoiceCalls = ReturnType<typeof createVoiceCalls>;
