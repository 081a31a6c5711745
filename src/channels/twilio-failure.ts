import { NEVER_CONNECTED, type SendFailure } from "./channel.js";

/** The fields of a Twilio RestException (or a network error) we classify by. */
export interface TwilioErrorFields {
  readonly status?: number;
  readonly code?: number | string;
  readonly moreInfo?: string;
}

/** Wrong credentials, account or sender: every later send would fail the same way. */
const MISCONFIGURED_CODES = new Set([20003, 20005, 20404, 21205, 21210, 21212, 21603, 21705]);

/** Answered 400, but clear by themselves: 21611, the sender's queue of messages is full. */
const TRANSIENT_CODES = new Set([21611]);

/** Plain words for the codes an operator meets most; never the provider's message (it names numbers). */
const CODE_REASONS: Record<number, string> = {
  20003: "Twilio refused the credentials (check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)",
  20005: "the Twilio account is not active",
  20404: "Twilio does not know this account or resource (check TWILIO_ACCOUNT_SID)",
  20429: "Twilio is rate limiting requests",
  13223: "the 'To' number is not in a valid format for a call",
  13224: "the 'To' number is not a valid phone number for a call",
  13227: "calls to this destination are not enabled on the Twilio account",
  21205: "Twilio cannot use the call's answer URL (check PUBLIC_URL)",
  21210: "the caller id is not a number of the Twilio account (check TWILIO_CALLER_ID)",
  21211: "the 'To' number is not a valid phone number",
  21215: "calls to this region are not enabled on the Twilio account (geo permissions)",
  21212: "the 'From' number is not valid (check TWILIO_FROM)",
  21408: "sending to this region is not enabled on the Twilio account",
  21602: "the message body is empty",
  21603: "neither a 'From' number nor a messaging service is set",
  21606: "the 'From' number cannot send SMS to this destination",
  21610: "the recipient replied STOP and is unsubscribed from this sender",
  21611: "the sending number has too many messages queued at Twilio (it drains by itself)",
  21612: "Twilio cannot route a message to this number",
  21614: "the 'To' number is not a mobile number",
  21705: "the messaging service is not valid (check TWILIO_MESSAGING_SERVICE_SID)",
};

/**
 * Classifies a failed Twilio request by HTTP status and Twilio error code: 429, 5xx and network
 * errors transient (5xx and a connection broken midway uncertain: the request may have been
 * carried out); 401/403 and account or sender errors misconfigured; other 4xx permanent, with
 * 21610 marked as an opt-out so the number is suppressed.
 */
export function classifyTwilioFailure(error: unknown): SendFailure {
  const fields = (error ?? {}) as TwilioErrorFields;
  const status = typeof fields.status === "number" ? fields.status : undefined;
  const twilioCode = typeof fields.code === "number" ? fields.code : undefined;
  const networkCode = typeof fields.code === "string" ? fields.code : undefined;

  if (status === undefined) {
    return {
      kind: "transient",
      code: networkCode ?? "UNKNOWN",
      reason: `the request to Twilio failed before an answer${networkCode ? ` (${networkCode})` : ""}`,
      // Unless the connection never opened, the request may have reached Twilio before it broke.
      ...(!NEVER_CONNECTED.has(networkCode ?? "") && { uncertain: true }),
    };
  }
  const code = String(twilioCode ?? status);
  // A success whose answer could not be read (the connection broke midway through its body):
  // Twilio created the message or call, but no sid came back. Retried, and counted as a possible
  // duplicate (uncertain), so that a call's retry looks for it in Twilio's Calls list first.
  if (status >= 200 && status < 300)
    return {
      kind: "transient",
      code,
      reason: `Twilio answered HTTP ${status} but its answer could not be read`,
      uncertain: true,
    };
  const reason = describe(status, twilioCode, fields.moreInfo);
  if (status === 401 || status === 403 || (twilioCode && MISCONFIGURED_CODES.has(twilioCode))) {
    return { kind: "misconfigured", code, reason };
  }
  // Twilio's own words for a 5xx (error 20500): the message or call may have been created all
  // the same, so a retry may reach the customer twice. Retried, and counted as such (uncertain).
  if (status >= 500) return { kind: "transient", code, reason, uncertain: true };
  if (status === 429 || (twilioCode && TRANSIENT_CODES.has(twilioCode)))
    return { kind: "transient", code, reason };
  if (twilioCode === 21610) return { kind: "permanent", code, reason, optedOut: true };
  if (status >= 400) return { kind: "permanent", code, reason };
  return { kind: "transient", code, reason };
}

function describe(status: number, code: number | undefined, moreInfo: string | undefined): string {
  const known = code === undefined ? undefined : CODE_REASONS[code];
  const base =
    known ?? `Twilio answered HTTP ${status}${code === undefined ? "" : ` with error ${code}`}`;
  const link = moreInfo?.startsWith("https://www.twilio.com/") ? `; see ${moreInfo}` : "";
  return `${base}${link}`;
}

/**
 * How long a Retry-After header asks to wait (ms), from `now` (epoch ms): delay-seconds or an
 * HTTP date; undefined for none, one already past, or one that does not read.
 */
export function retryAfterMs(header: string, now: number): number | undefined {
  const value = header.trim();
  const ms = /^\d+$/.test(value) ? Number(value) * 1000 : Date.parse(value) - now;
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}
