import { AsyncLocalStorage } from "node:async_hooks";
import http from "node:http";
import type https from "node:https";
import twilio from "twilio";
import type { SendFailure, SendResult } from "./channel.js";
import { createTwilioHttpClient } from "./twilio-base-url.js";
import { classifyTwilioFailure, retryAfterMs } from "./twilio-failure.js";

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
  // The SDK's errors (RestException) keep the status and Twilio's code but drop the headers: the
  // answer's Retry-After is noted here, for the request (twilioRequest) it answers.
  const request = httpClient.request.bind(httpClient);
  httpClient.request = (async (opts: Parameters<typeof request>[0]) => {
    const response = await request(opts);
    const answer = twilioAnswers.getStore();
    const retryAfter: unknown = response.headers?.["retry-after"];
    if (answer && typeof retryAfter === "string") answer.retryAfter = retryAfter;
    return response;
  }) as typeof httpClient.request;
  return {
    client: twilio(options.accountSid, options.authToken, { httpClient }),
    close() {
      httpAgent.destroy();
      (httpClient.axios.defaults.httpsAgent as https.Agent | undefined)?.destroy?.();
    },
  };
}

/** What a request's answer said beyond the SDK's result or error: its Retry-After header. */
const twilioAnswers = new AsyncLocalStorage<{ retryAfter?: string }>();

/**
 * One request to Twilio (through a client of createTwilioClient): its result, or the classified
 * failure, which for a transient one says how long Twilio asked to wait (its Retry-After).
 */
export async function twilioRequest<T>(
  request: () => Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; error: SendFailure }> {
  const answer: { retryAfter?: string } = {};
  try {
    return { ok: true, value: await twilioAnswers.run(answer, request) };
  } catch (error) {
    const failure = classifyTwilioFailure(error);
    const waitMs = answer.retryAfter && retryAfterMs(answer.retryAfter, Date.now());
    return {
      ok: false,
      error:
        failure.kind === "transient" && waitMs ? { ...failure, retryAfterMs: waitMs } : failure,
    };
  }
}

/** One request to Twilio as a send result: the created resource's sid, or the classified failure. */
export async function twilioSend(request: () => Promise<{ sid: string }>): Promise<SendResult> {
  const result = await twilioRequest(request);
  return result.ok ? { ok: true, id: result.value.sid } : result;
}
