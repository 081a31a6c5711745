/**
 * URL paths that leave this service inside messages and provider settings (links in emails,
 * Twilio's callback URLs): a contract with customers' inboxes and providers, so they never move.
 */

/** The unsubscribe page and RFC 8058 one-click endpoint; `<PUBLIC_URL>/unsubscribe/<token>`. */
export const UNSUBSCRIBE_PATH = "/unsubscribe";
/** Twilio's message status callbacks. */
export const TWILIO_STATUS_PATH = "/webhooks/twilio/status";
/** Twilio's inbound messages (replies, STOP and START). */
export const TWILIO_INBOUND_PATH = "/webhooks/twilio/inbound";
/** What a voice call says when answered (TwiML); `?call=<follow-up id>`. */
export const TWILIO_VOICE_ANSWER_PATH = "/webhooks/twilio/voice/answer";
/** The keypad (or spoken) answer to a call's question (TwiML); `?call=<follow-up id>`. */
export const TWILIO_VOICE_GATHER_PATH = "/webhooks/twilio/voice/gather";
/** Twilio's call status callbacks; `?call=<follow-up id>`. */
export const TWILIO_VOICE_STATUS_PATH = "/webhooks/twilio/voice/status";

/**
 * A URL in the ASCII form a mail header carries it in: a host name of other letters in punycode
 * (`bücher.example` → `xn--bcher-kva.example`), other characters of its path percent-encoded. A
 * header of other characters is MIME-encoded whole (`=?UTF-8?Q?=3Chttps…`), and its link lost to
 * the mail providers' one-click unsubscribe. An ASCII URL names the same link as before.
 */
export function asciiUrl(url: string): string {
  return new URL(url).href;
}

/**
 * PUBLIC_URL in that ASCII form without trailing slashes: the base of the URLs Twilio is given
 * (callbacks, a call's TwiML), which Twilio requests and signs as given.
 */
export function asciiBaseUrl(url: string): string {
  return asciiUrl(url).replace(/\/+$/, "");
}
