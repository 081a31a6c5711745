import { TWILIO_VOICE_ANSWER_PATH, TWILIO_VOICE_STATUS_PATH } from "../config/public-paths.js";
import type { DeliveryChannel, OutgoingMessage, SendResult } from "./channel.js";
import { closedChannel, unsupportedChannel } from "./channel-results.js";
import { createTwilioClient, type TwilioClientOptions, twilioSend } from "./twilio-client.js";

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
  const base = options.publicUrl.replace(/\/+$/, "");
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
    async close() {
      closed = true;
      twilio.close();
    },
  };
}
