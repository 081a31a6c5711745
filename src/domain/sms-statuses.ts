/**
 * The statuses of a message we sent that Twilio documents and this version knows (what
 * note-sms-status.lua ranks): its way to the phone and its final outcomes. Any other (one Twilio
 * may add later) is shown as it came, marked as unknown: it is no outcome.
 */
export const KNOWN_SMS_STATUSES: ReadonlySet<string> = new Set([
  "accepted",
  "scheduled",
  "queued",
  "sending",
  "sent",
  "delivered",
  "undelivered",
  "failed",
  "canceled",
  "partially_delivered",
  "read",
]);

/** Whether an SMS step's delivery status is one this version does not know. */
export function isUnknownSmsStatus(channel: string | undefined, status: string): boolean {
  return channel === "sms" && !KNOWN_SMS_STATUSES.has(status);
}
