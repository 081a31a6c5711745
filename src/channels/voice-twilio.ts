import {
  asciiBaseUrl,
  TWILIO_VOICE_ANSWER_PATH,
  TWILIO_VOICE_STATUS_PATH,
} from "../config/public-paths.js";
import type { DeliveryChannel, OutgoingMessage, PlacedLookup, SendResult } from "./channel.js";
import { closedChannel, unsupportedChannel } from "./channel-results.js";
import {
  createTwilioClient,
  type TwilioClientOptions,
  twilioRequest,
  twilioSend,
} from "./twilio-client.js";

/**
 * How far before the earlier attempt a call it placed may be dated by Twilio's clock (which is
 * not ours): a call created up to this long before `since` still counts as that attempt's.
 */
const CLOCK_SLACK_MS = 60_000;
/** The most recent calls to the number from the caller id that a lookup reads (one page). */
const LOOKUP_PAGE = 20;

/** Settings of the Twilio voice adapter. */
export interface TwilioVoiceOptions extends TwilioClientOptions {
  /** TWILIO_CALLER_ID (default TWILIO_FROM): the number calls come from. */
  readonly callerId: string;
  /** PUBLIC_URL: where Twilio asks what to say and reports how the call ended. */
  readonly publicUrl: string;
  /** How long a call rings before it counts as not answered, in seconds. */
  readonly ringSeconds?: number;
}

/**
 * Voice calls through the official twilio SDK's `calls.create`. The call's words are not sent
 * with it: when it is answered Twilio asks `<PUBLIC_URL>/webhooks/twilio/voice/answer?call=<id>`,
 * which answers TwiML from the call's script (stored before the call is placed). Status callbacks
 * report how it ended. Machine detection tells a person from an answering machine, waiting for
 * the beep when a voicemail is to be left.
 */
export function createTwilioVoiceChannel(options: TwilioVoiceOptions): DeliveryChannel {
  const twilio = createTwilioClient(options);
  const { client } = twilio;
  // In ASCII (punycode host, percent-encoded path): Twilio requests and signs the URLs as given.
  const base = asciiBaseUrl(options.publicUrl);
  let closed = false;
  return {
    transport: "twilio",
    channels: ["voice"],
    async send(message: OutgoingMessage): Promise<SendResult> {
      if (closed) return closedChannel("twilio");
      if (message.channel !== "voice") return unsupportedChannel("twilio", message);
      if (!message.call) {
        return {
          ok: false,
          error: { kind: "permanent", code: "no-script", reason: "the call has no script" },
        };
      }
      const ref = `?call=${encodeURIComponent(message.followUpId)}`;
      const machineDetection =
        message.call.answeringMachine === "voicemail" ? "DetectMessageEnd" : "Enable";
      return twilioSend(() =>
        client.calls.create({
          to: message.to,
          from: options.callerId,
          url: `${base}${TWILIO_VOICE_ANSWER_PATH}${ref}`,
          method: "POST",
          statusCallback: `${base}${TWILIO_VOICE_STATUS_PATH}${ref}`,
          statusCallbackMethod: "POST",
          machineDetection,
          timeout: options.ringSeconds ?? 30,
        }),
      );
    },
    /**
     * The calls that may be the one an earlier attempt placed although its request failed, from
     * Twilio's Calls list: those to the number from the caller id created since that attempt
     * began (less a minute for Twilio's clock), among the latest twenty, earliest first. Twilio's
     * Calls resource does not say which URL a call asks for its words, so calls of other
     * follow-ups to the same number are among them: the caller passes over those bound to
     * another follow-up (CallScripts.adoptable). Not filtered by start time: a call Twilio has
     * queued and not dialled yet has none.
     */
    async findPlaced(message: OutgoingMessage, since: number): Promise<PlacedLookup> {
      if (closed) return closedChannel("twilio");
      const listed = await twilioRequest(() =>
        client.calls.list({
          to: message.to,
          from: options.callerId,
          limit: LOOKUP_PAGE,
          pageSize: LOOKUP_PAGE,
        }),
      );
      if (!listed.ok) return listed;
      // Newest first, dated to the second: reversed, calls of one second stay in their order.
      const placed = listed.value
        .filter((call) => call.dateCreated && call.dateCreated.getTime() >= since - CLOCK_SLACK_MS)
        .reverse()
        .sort((a, b) => a.dateCreated.getTime() - b.dateCreated.getTime());
      return { ok: true, ids: placed.map((call) => call.sid) };
    },
    async close() {
      closed = true;
      twilio.close();
    },
  };
}
