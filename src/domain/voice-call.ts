/**
 * Voice check-in calls, decided without touching Twilio: what a call says when it is answered,
 * what a key press means, how a call ended, and whether a step's fallback still has to go out.
 * The HTTP routes turn these turns into TwiML; the stores keep the outcomes.
 */

import type { Purpose } from "./rules.js";
import { smsKeyword } from "./sms-keywords.js";

/** Languages a call can be spoken in: the keypad instructions exist in these. */
export const VOICE_LANGUAGES = ["en", "de"] as const;
export type VoiceLanguage = (typeof VOICE_LANGUAGES)[number];

/** Longest spoken message a voice template may render to (about a minute of speech). */
export const MAX_VOICE_TEXT_LENGTH = 800;

/** What happens when an answering machine picks up. */
export type AnsweringMachineAction = "voicemail" | "hangup";

/** How calls are spoken and answered: `channels.voice` in the rules. */
export interface VoiceCallSettings {
  /** Twilio voice per language (`Polly.Amy`); absent: Twilio's default voice for the language. */
  readonly voices: Readonly<Partial<Record<VoiceLanguage, string>>>;
  readonly answeringMachine: AnsweringMachineAction;
  /** Whether a spoken answer ("two", "zwei") counts as well as a key press. */
  readonly speech: boolean;
}

/** The fixed sentences of a call around the template's message, per language. */
interface Phrases {
  readonly prompt: string;
  readonly promptSpeech: string;
  readonly thanks: string;
  readonly sorry: string;
  readonly stopped: string;
  readonly stoppedOffers: string;
  /** To one who opted out of calls before answering: what is known is that calls stopped. */
  readonly stoppedCalls: string;
  readonly noAnswer: string;
  readonly invalid: string;
  readonly voicemailEnd: string;
  /** What an offer's call says first: who calls, and that a 9 stops the calls. */
  readonly offerOpening: (shopName: string) => string;
}

const PHRASES: Readonly<Record<VoiceLanguage, Phrases>> = {
  en: {
    prompt:
      "Please press a key from 1 to 5: 5 means very happy, 1 means not happy at all. Press 9 to stop these calls.",
    promptSpeech:
      "Please press or say a number from 1 to 5: 5 means very happy, 1 means not happy at all. Press 9 to stop these calls.",
    thanks: "Thank you for your answer. Goodbye.",
    sorry: "Thank you. We are sorry to hear that, and someone from our team will be in touch.",
    stopped: "You will get no more calls or texts from us. Goodbye.",
    stoppedOffers: "You will get no more offers from us by phone. Goodbye.",
    stoppedCalls: "You will get no more calls from us. Goodbye.",
    noAnswer: "We did not hear an answer. Thank you for your time. Goodbye.",
    invalid: "Sorry, we did not understand that.",
    voicemailEnd: "There is no need to call back. Goodbye.",
    offerOpening: (shop) =>
      `This is a call from ${shop}. To stop calls from us, press 9 at any time.`,
  },
  de: {
    prompt:
      "Bitte drücken Sie eine Taste von 1 bis 5: 5 heißt sehr zufrieden, 1 heißt gar nicht zufrieden. Drücken Sie die 9, wenn Sie keine weiteren Anrufe wünschen.",
    promptSpeech:
      "Bitte drücken oder sagen Sie eine Zahl von 1 bis 5: 5 heißt sehr zufrieden, 1 heißt gar nicht zufrieden. Drücken Sie die 9, wenn Sie keine weiteren Anrufe wünschen.",
    thanks: "Vielen Dank für Ihre Antwort. Auf Wiederhören.",
    sorry:
      "Vielen Dank. Das tut uns leid, jemand aus unserem Team wird sich bei Ihnen melden. Auf Wiederhören.",
    stopped: "Sie erhalten von uns keine Anrufe und SMS mehr. Auf Wiederhören.",
    stoppedOffers: "Sie erhalten von uns keine Angebote mehr per Telefon. Auf Wiederhören.",
    stoppedCalls: "Sie erhalten von uns keine Anrufe mehr. Auf Wiederhören.",
    noAnswer: "Wir haben keine Antwort gehört. Vielen Dank für Ihre Zeit. Auf Wiederhören.",
    invalid: "Das haben wir leider nicht verstanden.",
    voicemailEnd: "Sie brauchen nicht zurückzurufen. Auf Wiederhören.",
    offerOpening: (shop) =>
      `Hier spricht ${shop}. Wenn Sie keine Anrufe von uns mehr wünschen, drücken Sie jederzeit die 9.`,
  },
};

/** The language a call to a customer with this locale is spoken in, if calls speak it. */
export function voiceLanguageOf(locale: string): VoiceLanguage | undefined {
  const language = locale.split("-")[0]?.toLowerCase();
  return VOICE_LANGUAGES.find((known) => known === language);
}

/** Regions Twilio's `<Say>` has voices for, per language; others fall back to the first. */
const SAY_REGIONS: Readonly<Record<VoiceLanguage, readonly string[]>> = {
  en: ["GB", "US", "AU", "IN", "CA"],
  de: ["DE"],
};

/** The `language` attribute of `<Say>` and `<Gather>` for a customer's locale (en-GB, de-DE). */
export function sayLanguageOf(locale: string, language: VoiceLanguage): string {
  const region = locale
    .split("-")
    .slice(1)
    .find((part) => /^[A-Z]{2}$/i.test(part));
  const regions = SAY_REGIONS[language];
  const chosen = regions.find((known) => known === region?.toUpperCase()) ?? regions[0];
  return `${language}-${chosen}`;
}

/**
 * What one call needs from the moment it is answered: kept for the call's lifetime (keyed by
 * its follow-up id), so the answer webhooks need neither the templates nor the purchase.
 */
export interface CallScript {
  readonly eventId: string;
  readonly stepId: string;
  /** The shard the event lives in (FOLLOW_UP_SHARDS): the webhooks record on its step there. */
  readonly shard: number;
  /** The called number's suppression member (a keyed hash): a 9 suppresses it. */
  readonly recipient: string;
  /**
   * The customer's suppression member (`k:<keyed hash>`): an opt-out by customer id made while
   * the call rang is honoured when it is answered. Absent from scripts of versions before 6
   * December 2026 (those are checked by the number alone).
   */
  readonly customer?: string;
  /**
   * The step's purpose: a marketing call is not played to a customer or number that opted out of
   * voice offers while it rang. Absent from scripts of versions before 7 December 2026: those
   * are taken for marketing (an offers-only opt-out made while they rang ends them too).
   */
  readonly purpose?: Purpose;
  readonly language: VoiceLanguage;
  /** `<Say language>`: en-GB, de-DE. */
  readonly sayLanguage: string;
  readonly voice?: string;
  /** The template's message. */
  readonly text: string;
  readonly answeringMachine: AnsweringMachineAction;
  readonly speech: boolean;
  /** What a started minute to the number costs (micros of the default currency), when priced. */
  readonly minutePriceMicros?: number;
}

/** How a call is spoken and answered: a call script without its step, number and message. */
export type CallVoice = Omit<
  CallScript,
  | "eventId"
  | "stepId"
  | "shard"
  | "recipient"
  | "customer"
  | "purpose"
  | "text"
  | "minutePriceMicros"
>;

/**
 * The call settings for a customer's locale, or undefined when calls do not speak its language.
 * An offer's call (purpose marketing) leaves no voicemail whatever the rules say: a recorded
 * telemarketing message left on a machine must give a toll-free number that reaches an automated
 * opt-out (TCPA, 47 CFR 64.1200(b)(3)), which this worker does not answer.
 */
export function callVoiceFor(
  locale: string,
  settings: VoiceCallSettings,
  purpose: Purpose = "transactional",
): CallVoice | undefined {
  const language = voiceLanguageOf(locale);
  if (!language) return undefined;
  const voice = settings.voices[language];
  return {
    language,
    sayLanguage: sayLanguageOf(locale, language),
    ...(voice !== undefined && { voice }),
    answeringMachine: purpose === "marketing" ? "hangup" : settings.answeringMachine,
    speech: settings.speech,
  };
}

/** What Twilio tells a call's webhooks: the follow-up id from `?call=`, the call and who answered. */
export interface CallRequest {
  readonly followUpId: string;
  readonly callSid: string;
  readonly answeredBy?: string;
}

/** How sentences are spoken: `<Say language voice>`. */
export interface Speaking {
  readonly language: string;
  readonly voice?: string;
}

/** One turn of a call, as the TwiML answer will say it. */
export type CallTurn =
  /** Say the sentences, then gather one key (or a spoken number) and post it back. */
  | {
      readonly type: "ask";
      readonly say: readonly string[];
      readonly speaking: Speaking;
      readonly speech: boolean;
    }
  /** Say the sentences and hang up (also a voicemail: said after the beep). */
  | {
      readonly type: "say-and-hang-up";
      readonly say: readonly string[];
      readonly speaking: Speaking;
    }
  | { readonly type: "hang-up" };

function speakingOf(script: CallScript): Speaking {
  return {
    language: script.sayLanguage,
    ...(script.voice !== undefined && { voice: script.voice }),
  };
}

/** Twilio's AnsweredBy when machine detection thinks no person answered. */
function isMachine(answeredBy: string | undefined): boolean {
  return answeredBy !== undefined && (answeredBy.startsWith("machine") || answeredBy === "fax");
}

/** The first turn of an answered call: the message and the question, or a voicemail. */
export function answerCall(
  script: CallScript,
  answeredBy: string | undefined,
  shopName: string,
): CallTurn {
  const phrases = PHRASES[script.language];
  if (isMachine(answeredBy)) {
    return script.answeringMachine === "voicemail" && answeredBy !== "fax"
      ? {
          type: "say-and-hang-up",
          say: [script.text, phrases.voicemailEnd],
          speaking: speakingOf(script),
        }
      : { type: "hang-up" };
  }
  const prompt = script.speech ? phrases.promptSpeech : phrases.prompt;
  return {
    type: "ask",
    // An offer's call says who calls and how to stop the calls before anything else: the TCPA
    // wants the opt-out offered within two seconds of the caller's name (47 CFR 64.1200(b)(3)).
    // The key is gathered from the first word on, so a 9 pressed then counts.
    say:
      script.purpose === "marketing"
        ? [phrases.offerOpening(shopName), script.text, prompt]
        : [script.text, prompt],
    speaking: speakingOf(script),
    speech: script.speech,
  };
}

/**
 * The first turn of a call to a number that opted out after the call was placed (Twilio queues
 * calls, and they ring for a while): no message and no question, only that no more will come
 * (`offers`: an offer's call to one that opted out of voice offers only, told no more offers will).
 * A machine gets nothing.
 */
export function answerOptedOut(
  script: CallScript,
  answeredBy: string | undefined,
  scope: "all" | "offers" = "all",
): CallTurn {
  if (isMachine(answeredBy)) return { type: "hang-up" };
  const phrases = PHRASES[script.language];
  return {
    type: "say-and-hang-up",
    // Not "calls or texts": an opt-out of calls alone (by an event, a link) leaves texts on.
    say: [scope === "all" ? phrases.stoppedCalls : phrases.stoppedOffers],
    speaking: speakingOf(script),
  };
}

/** How often a call asks again after a key that means nothing, before it ends. */
export const MAX_REPEATS = 2;

/** What the customer answered to the question. */
export type HeardAnswer =
  /** A score from 1 (not happy at all) to 5 (very happy), and the reply text recorded for it. */
  | {
      readonly kind: "score";
      readonly score: number;
      readonly reply: string;
      readonly turn: CallTurn;
    }
  /** 9: no more calls or texts to this number. */
  | { readonly kind: "stop"; readonly turn: CallTurn }
  /** Nothing pressed or said before the time-out. */
  | { readonly kind: "none"; readonly turn: CallTurn }
  /** Something else: the question again. */
  | { readonly kind: "invalid"; readonly turn: CallTurn };

const SPOKEN_NUMBERS: Readonly<Record<string, number>> = {
  one: 1,
  two: 2,
  three: 3,
  four: 4,
  five: 5,
  nine: 9,
  eins: 1,
  ein: 1,
  zwei: 2,
  drei: 3,
  vier: 4,
  fünf: 5,
  neun: 9,
};

/** The number a key press or a spoken answer names, if exactly one. */
function numberHeard(digits: string | undefined, speech: string | undefined): number | undefined {
  if (digits !== undefined && digits !== "") return /^\d$/.test(digits) ? Number(digits) : -1;
  if (speech === undefined) return undefined;
  const words = speech.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  const numbers = words.flatMap((word) =>
    /^\d$/.test(word) ? [Number(word)] : word in SPOKEN_NUMBERS ? [SPOKEN_NUMBERS[word] ?? -1] : [],
  );
  // Any wording a text would be an opt-out in ("please don't call me again", "It's a five. Stop."),
  // or "stop" with no score said: "stop" beside one is another sense ("five, can't stop watching
  // it"), and a happy customer must not lose their texts by it.
  if (smsKeyword(speech) === "opt-out") return 9;
  const stop = words.some((word) => word === "stop" || word === "stopp");
  const only = numbers.length === 1 ? numbers[0] : undefined;
  if (stop && !(only !== undefined && only >= 1 && only <= 5)) return 9;
  return numbers.length === 1 ? numbers[0] : words.length === 0 ? undefined : -1;
}

/** The last turn of a call with nothing to say (its script is gone, or Redis was away): hang up. */
export const HANG_UP: CallTurn = { type: "hang-up" };

/**
 * Whether an answer asks for no more calls or texts (a 9, or stop said), as hearAnswer reads it;
 * it needs no script, so it is known also when the call's record is gone.
 */
export function meansStop(digits: string | undefined, speech: string | undefined): boolean {
  return numberHeard(digits, speech) === 9;
}

/**
 * Reads the keypad (or speech) answer. The reply recorded for a score reads `Keypad: 2/5`, which
 * the reports' reply judgement (`2/5` is a low score) counts as unhappy for 1 and 2.
 */
export function hearAnswer(
  script: CallScript,
  digits: string | undefined,
  speech: string | undefined,
  /** How often the question was already asked again: after MAX_REPEATS the call ends. */
  repeats = 0,
): HeardAnswer {
  const phrases = PHRASES[script.language];
  const speaking = speakingOf(script);
  const heard = numberHeard(digits, speech);
  if (heard === undefined) {
    return { kind: "none", turn: { type: "say-and-hang-up", say: [phrases.noAnswer], speaking } };
  }
  if (heard === 9) {
    return { kind: "stop", turn: { type: "say-and-hang-up", say: [phrases.stopped], speaking } };
  }
  if (heard >= 1 && heard <= 5) {
    const how = digits ? "Keypad" : "Said";
    return {
      kind: "score",
      score: heard,
      reply: `${how}: ${heard}/5`,
      turn: {
        type: "say-and-hang-up",
        say: [heard <= 2 ? phrases.sorry : phrases.thanks],
        speaking,
      },
    };
  }
  if (repeats >= MAX_REPEATS) {
    return {
      kind: "none",
      turn: { type: "say-and-hang-up", say: [phrases.invalid, phrases.noAnswer], speaking },
    };
  }
  return {
    kind: "invalid",
    turn: {
      type: "ask",
      say: [phrases.invalid, script.speech ? phrases.promptSpeech : phrases.prompt],
      speaking,
      speech: script.speech,
    },
  };
}

/**
 * How a call ended, as the step's delivery status: a person answered (with a score or without),
 * a voicemail was left or the machine hung up on, the call was picked up while Redis was away and
 * hung up on before it said anything (`unheard`), or nobody answered.
 */
export const CALL_OUTCOMES = [
  "answered",
  "answered-no-score",
  "voicemail",
  "machine",
  "unheard",
  "no-answer",
  "busy",
  "failed",
] as const;
export type CallOutcome = (typeof CALL_OUTCOMES)[number];

/** Outcomes where a person heard the call and could answer: no fallback after these. */
const REACHED: ReadonlySet<string> = new Set(["answered", "answered-no-score"]);

/**
 * What a call's webhook records over what the step's calls recorded before: a person reached
 * stays reached (a machine or voicemail picking up the step's other call, placed twice, changes
 * nothing), except that a score (`answered`) replaces a reach without one.
 */
export function outcomeAfter(recorded: string | undefined, next: CallOutcome): CallOutcome {
  if (recorded !== undefined && REACHED.has(recorded) && next !== "answered")
    return recorded as CallOutcome;
  return next;
}

/**
 * A step's outcome from the outcomes of its calls (one, or two when Twilio placed a call although
 * its request failed and the retry placed another): the one that went furthest, in the order of
 * CALL_OUTCOMES (a score, a person reached, a voicemail, a machine …). What one call's late
 * webhook records so never overwrites what another call established.
 */
export function stepCallOutcome(outcomes: Iterable<CallOutcome>): CallOutcome | undefined {
  let best: CallOutcome | undefined;
  for (const outcome of outcomes) {
    if (best === undefined || CALL_OUTCOMES.indexOf(outcome) < CALL_OUTCOMES.indexOf(best))
      best = outcome;
  }
  return best;
}

/**
 * The outcome of a call from Twilio's final status callback, given what the call's webhooks
 * already recorded (`answered` after a score, `voicemail`/`machine` after machine detection).
 * A person reached stays reached: a step's call placed twice (Twilio placed one although its
 * request failed, and the retry another) ends as answered when either was, whatever the other's
 * end. Undefined while the call is not over (queued, ringing, in progress).
 */
export function callOutcome(
  callStatus: string,
  answeredBy: string | undefined,
  recorded: string | undefined,
  answeringMachine: AnsweringMachineAction,
): CallOutcome | undefined {
  const ended = endedAs(callStatus, answeredBy, recorded, answeringMachine);
  return ended !== undefined && recorded !== undefined && REACHED.has(recorded)
    ? (recorded as CallOutcome)
    : ended;
}

function endedAs(
  callStatus: string,
  answeredBy: string | undefined,
  recorded: string | undefined,
  answeringMachine: AnsweringMachineAction,
): CallOutcome | undefined {
  switch (callStatus) {
    case "busy":
      return "busy";
    case "no-answer":
      return "no-answer";
    case "failed":
    case "canceled":
      return "failed";
    case "completed":
      if (recorded && (CALL_OUTCOMES as readonly string[]).includes(recorded)) {
        return recorded as CallOutcome;
      }
      if (isMachine(answeredBy)) {
        return answeringMachine === "voicemail" && answeredBy !== "fax" ? "voicemail" : "machine";
      }
      return "answered-no-score";
    default:
      return undefined;
  }
}

/** Whether an outcome means the message reached the customer (the ledger's `delivered`). */
export function callDelivered(outcome: CallOutcome): boolean {
  return REACHED.has(outcome) || outcome === "voicemail";
}

/** What a fallback step needs to know of its call step. */
export interface PrimaryStep {
  readonly state: "scheduled" | "sending" | "sent" | "failed" | "skipped" | "cancelled";
  readonly changedAt?: number;
  readonly delivery?: { readonly status: string };
  /** Why it was skipped or failed (`coalesced`, `capped` …). */
  readonly reason?: { readonly code: string };
}

export type FallbackDecision =
  | { readonly action: "send" }
  | { readonly action: "skip"; readonly code: string; readonly reason: string }
  | { readonly action: "wait"; readonly until: number };

/** How long after a call is placed its outcome may still arrive. */
const CALL_OUTCOME_WAIT_MS = 2 * 3600_000;
/** How often a fallback looks again while its call has not happened yet. */
const RECHECK_MS = 3600_000;
/**
 * How long after the worker's connection to Redis became ready (at start, or back after an
 * outage) an unknown call outcome is not yet taken as never coming: a status callback that came
 * while Redis was away waits in the webhook spool, replayed within seconds of Redis returning.
 */
export const SPOOL_SETTLE_MS = 60_000;

/**
 * Whether a fallback (an SMS after an unanswered call) goes out: when the call was not answered
 * by a person, could not be placed or was skipped; not when the customer answered, when the call
 * step was cancelled (a refund), joined to an earlier thank-you or superseded by a re-plan, or
 * when its outcome never arrived (better silent than twice).
 */
export function decideFallback(
  primary: PrimaryStep | undefined,
  nowMs: number,
  /** The fallback's `after`: it goes out no sooner than this long after the call ended. */
  afterMs: number,
  /**
   * When the worker's connection to Redis last became ready (epoch ms): at start, or back after
   * an outage, during which the call's status callback may have been spooled (SPOOL_SETTLE_MS).
   */
  readySince?: number,
): FallbackDecision {
  if (!primary) {
    return { action: "skip", code: "no-call", reason: "the call step's record is gone" };
  }
  // A call that went out later than planned (a window, a cap) moves its fallback with it.
  const notBefore = (primary.changedAt ?? 0) + afterMs;
  const sendOrWait: FallbackDecision =
    notBefore > nowMs ? { action: "wait", until: notBefore } : { action: "send" };
  switch (primary.state) {
    case "scheduled":
    case "sending":
      return { action: "wait", until: nowMs + RECHECK_MS };
    case "cancelled":
      return { action: "skip", code: "call-cancelled", reason: "the call step was cancelled" };
    case "skipped":
      // Joined to an earlier purchase's thank-you, which thanks for both: nothing to stand in for.
      if (primary.reason?.code === "coalesced")
        return {
          action: "skip",
          code: "call-coalesced",
          reason: "the call was joined to an earlier purchase's thank-you, which thanks for both",
        };
      // Skipped by a re-plan as another step of its purchase has its kind: the fallback (of that
      // kind) would be a second one. A re-plan skips it too, unless it was a job already.
      if (primary.reason?.code === "superseded")
        return {
          action: "skip",
          code: "call-superseded",
          reason: "the call was superseded by another step of its kind, which stands for both",
        };
      return sendOrWait;
    case "failed":
      return sendOrWait;
    case "sent": {
      const status = primary.delivery?.status;
      if (status !== undefined && REACHED.has(status)) {
        return { action: "skip", code: "call-answered", reason: "the customer answered the call" };
      }
      if (status !== undefined) return sendOrWait;
      const waitUntil = (primary.changedAt ?? 0) + CALL_OUTCOME_WAIT_MS;
      if (waitUntil > nowMs)
        return { action: "wait", until: Math.min(waitUntil, nowMs + RECHECK_MS) };
      // Redis was away after the call, or this worker has just started: the outcome may wait in
      // the webhook spool (an outage of hours), replayed within seconds of the connection.
      const settled = (readySince ?? 0) + SPOOL_SETTLE_MS;
      if (readySince !== undefined && readySince > (primary.changedAt ?? 0) && settled > nowMs)
        return { action: "wait", until: settled };
      return {
        action: "skip",
        code: "call-outcome-unknown",
        reason: "the call's outcome never arrived (check PUBLIC_URL and the status callbacks)",
      };
    }
  }
}
