import type { DeliveryChannel, OutgoingMessage, SendResult } from "./channel.js";
import { closedChannel, unsupportedChannel } from "./channel-results.js";
import { createTwilioClient, type TwilioClientOptions, twilioSend } from "./twilio-client.js";

/** Settings of the Twilio SMS adapter, from the TWILIO_* variables. */
export interface TwilioSmsOptions extends TwilioClientOptions {
  /** TWILIO_FROM (E.164); one of `from` and `messagingServiceSid` is required. */
  readonly from?: string;
  /** TWILIO_MESSAGING_SERVICE_SID; used instead of `from` when both are set. */
  readonly messagingServiceSid?: string;
  /** URL Twilio posts delivery status updates to. */
  readonly statusCallback?: string;
}

/**
 * SMS through the official twilio SDK, with its auto-retry off: the delivery processor is the one
 * place that retries. Voice calls are a separate adapter.
 */
export function createTwilioSmsChannel(options: TwilioSmsOptions): DeliveryChannel {
  if (!options.from && !options.messagingServiceSid) {
    throw new Error("Twilio SMS needs TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID");
  }
  const twilio = createTwilioClient(options);
  const { client } = twilio;
  const sender = options.messagingServiceSid
    ? { messagingServiceSid: options.messagingServiceSid }
    : { from: options.from };
  let closed = false;
  return {
    transport: "twilio",
    channels: ["sms"],
    async send(message: OutgoingMessage): Promise<SendResult> {
      if (closed) return closedChannel("twilio");
      if (message.channel !== "sms") return unsupportedChannel("twilio", message);
      return twilioSend(() =>
        client.messages.create({
          to: message.to,
          body: message.text,
          ...sender,
          ...(options.statusCallback && { statusCallback: options.statusCallback }),
        }),
      );
    },
    async close() {
      closed = true;
      twilio.close();
    },
  };
}
