/**
 * Twilio's opt-out and opt-in keywords: a message that is exactly one of these words (any case,
 * surrounding spaces and punctuation ignored) changes the sender's subscription.
 */
const OPT_OUT = new Set([
  "STOP",
  "STOPALL",
  "UNSUBSCRIBE",
  "CANCEL",
  "END",
  "QUIT",
  "OPTOUT",
  "REVOKE",
]);
const OPT_IN = new Set(["START", "YES", "UNSTOP"]);

export type SmsKeyword = "opt-out" | "opt-in" | undefined;

/** Classifies an inbound SMS body: opt-out, opt-in, or an ordinary reply (undefined). */
export function smsKeyword(body: string): SmsKeyword {
  const word = body
    .trim()
    .replace(/^[\s\p{P}]+|[\s\p{P}]+$/gu, "")
    .replace(/\s+/g, "")
    .toUpperCase();
  if (OPT_OUT.has(word)) return "opt-out";
  if (OPT_IN.has(word)) return "opt-in";
  return undefined;
}
