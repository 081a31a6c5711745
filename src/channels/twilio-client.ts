import http from "node:http";
import type https from "node:https";
import twilio from "twilio";
import type { SendResult } from "./channel.js";
import { createTwilioHttpClient } from "./twilio-base-url.js";
import { classifyTwilioFailure } from "./twilio-failure.js";

/** Credentials and transport of a Twilio adapter, from the TWILIO_* variables. */
export interface TwilioClientOptions {
  readonly accountSid: string;
  readonly authToken: string;
  /** TWILIO_API_URL: send the SDK's requests to this base URL (a proxy or a test server). */
  readonly apiUrl?: string;
  /** Per-request timeout. */
  readonly timeoutMs?: number;
}

/**
 * The official SDK's client with its auto-retry off (the delivery processor is the one place that
 * retries) and our own keep-alive agent, so `close` ends its sockets.
 */
export function createTwilioClient(options: TwilioClientOptions): {
  readonly client: twilio.Twilio;
  close(): void;
} {
  const timeout = options.timeoutMs ?? 15_000;
  const httpClient = options.apiUrl
    ? createTwilioHttpClient(options.apiUrl, { timeout })
    : new twilio.RequestClient({ autoRetry: false, timeout });
  const httpAgent = new http.Agent({ keepAlive: true, timeout });
  httpClient.axios.defaults.httpAgent = httpAgent;
  return {
    client: twilio(options.accountSid, options.authToken, { httpClient }),
    close() {
      httpAgent.destroy();
      (httpClient.axios.defaults.httpsAgent as https.Agent | undefined)?.destroy?.();
    },
  };
}

/** One request to Twilio as a send result: the created resource's sid, or the classified failure. */
export async function twilioSend(request: () => Promise<{ sid: string }>): Promise<SendResult> {
  try {
    return { ok: true, id: (await request()).sid };
  } catch (error) {
    return { ok: false, error: classifyTwilioFailure(error) };
  }
}
