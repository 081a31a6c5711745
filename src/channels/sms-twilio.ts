import http from "node:http";
import type https from "node:https";
import twilio from "twilio";
import type { DeliveryChannel, OutgoingMessage, SendResult } from "./channel.js";
import { closedChannel, unsupportedChannel } from "./channel-results.js";
import { createTwilioHttpClient } from "./twilio-base-url.js";
import { classifyTwilioFailure } from "./twilio-failure.js";

/** Settings of the Twilio SMS adapter, from the TWILIO_* variables. */
export interface TwilioSmsOptions {
  readonly accountSid: string;
  readonly authToken: string;
  /** TWILIO_FROM (E.164); one of `from` and `messagingServiceSid` is required. */
  readonly from?: string;
  /** TWILIO_MESSAGING_SERVICE_SID; used instead of `from` when both are set. */
  readonly messagingServiceSid?: string;
  /** URL Twilio posts delivery status updates to. */
  readonly statusCallback?: string;
  /** TWILIO_API_URL: send the SDK's requests to this base URL (a proxy or a test server). */
  readonly apiUrl?: string;
  /** Per-request timeout. */
  readonly timeoutMs?: number;
}

/**
 * SMS through the official twilio SDK, with its auto-retry off: the delivery processor is the one
 * place that retries. Voice calls are a separate adapter.
 */
export function createTwilioSmsChannel(options: TwilioSmsOptions): DeliveryChannel {
  if (!options.from && !options.messagingServiceSid) {
    throw new Error("Twilio SMS needs TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID");
  }
  const timeout = options.timeoutMs ?? 15_000;
  const httpClient = options.apiUrl
    ? createTwilioHttpClient(options.apiUrl, { timeout })
    : new twilio.RequestClient({ autoRetry: false, timeout });
  // Our own keep-alive agent for plain-HTTP base URLs, so close() can end its sockets.
  const httpAgent = new http.Agent({ keepAlive: true, timeout });
  httpClient.axios.defaults.httpAgent = httpAgent;
  const client = twilio(options.accountSid, options.authToken, { httpClient });
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
      try {
        const created = await client.messages.create({
          to: message.to,
          body: message.text,
          ...sender,
          ...(options.statusCallback && { statusCallback: options.statusCallback }),
        });
        return { ok: true, id: created.sid };
      } catch (error) {
        return { ok: false, error: classifyTwilioFailure(error) };
      }
    },
    async close() {
      closed = true;
      httpAgent.destroy();
      (httpClient.axios.defaults.httpsAgent as https.Agent | undefined)?.destroy?.();
    },
  };
}
