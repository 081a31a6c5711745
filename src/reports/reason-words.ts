/**
 * Ledger reason codes in words a shop owner understands. Codes are what the worker records: skip
 * codes from the send-time guard (`opted-out`), cancel codes (`refunded`), and failures as
 * `<kind> <provider code>` (`permanent 550`, `transient ECONNECTION`, `misconfigured EAUTH`).
 */

const TELL_OPERATOR = "tell your operator";

const SKIPS_AND_CANCELS: Readonly<Record<string, string>> = {
  "no-contact": "there was no email address or phone number to send to",
  "no-consent": "the customer had not agreed to receive these messages",
  "opted-out": "the customer had unsubscribed from this channel",
  "past-due": "it was due so long ago that sending it would no longer make sense",
  "no-send-window": `the rules leave no time of day when this channel may send: ${TELL_OPERATOR}`,
  "rule-removed": "the follow-up was taken out of the rules after it was planned",
  "no-longer-matches":
    "the rules were changed after it was planned, and no longer apply to this order",
  // A re-plan after a rules edit that gave a step the kind of another step of its purchase.
  superseded:
    "another follow-up of the same kind was planned for this order (one of each kind per order)",
  capped: "the customer had already had as many messages as the frequency limit allows",
  "event-missing": "the order's details had expired before the follow-up was due",
  "unreadable-purchase": `the order's stored details could not be read: ${TELL_OPERATOR}`,
  refunded: "the order was refunded",
  operator: "someone at the shop cancelled it",
  erased: "the customer's data was erased at their request",
  cooldown: "the customer had had one of these shortly before (the rule's cooldown)",
  coalesced: "one thank-you covered this order and the customer's purchase shortly before",
  "budget-reached": "this month's budget for the channel was used up",
  "channel-unavailable": `the channel had no working account when it was due: ${TELL_OPERATOR}`,
  // A call's fallback (a text or email sent when the call did not reach the customer).
  "call-answered": "the customer answered the call it was standing in for",
  "call-cancelled": "the call it was standing in for was cancelled",
  "call-coalesced":
    "the call it was standing in for was joined to a thank-you for an earlier purchase, which thanked for both",
  "call-superseded":
    "the call it was standing in for gave way to another follow-up of the same kind for this order",
  "call-outcome-unknown": `the outcome of the call it was standing in for never arrived: ${TELL_OPERATOR}`,
  "no-call": "the call it was standing in for was no longer on record",
};

const EMAIL_SETTINGS = `the email account settings are wrong: ${TELL_OPERATOR}`;
const SMS_SETTINGS = `the SMS account settings are wrong: ${TELL_OPERATOR}`;

/** Provider codes whose meaning does not depend on the failure kind. */
const PROVIDER_CODES: Readonly<Record<string, string>> = {
  // Twilio: the number or the customer.
  "21211": "the phone number is not valid",
  "21614": "the number cannot receive SMS (landline?)",
  "21610": "the customer replied STOP earlier",
  "21612": "the SMS provider cannot reach this number",
  "21408": `SMS to this country is not switched on: ${TELL_OPERATOR}`,
  "21606": `the sending number cannot text this destination: ${TELL_OPERATOR}`,
  "21602": `the message was empty: ${TELL_OPERATOR}`,
  // Twilio: our account.
  "20003": SMS_SETTINGS,
  "20005": `the SMS account is not active: ${TELL_OPERATOR}`,
  "20404": SMS_SETTINGS,
  "21212": SMS_SETTINGS,
  "21603": SMS_SETTINGS,
  "21705": SMS_SETTINGS,
  "401": SMS_SETTINGS,
  "403": SMS_SETTINGS,
  // Twilio delivery reports: failed (it never went out).
  "30001": "the SMS provider's queue for the sending number was full: the text never went out",
  "30002": `the SMS account is suspended: ${TELL_OPERATOR}`,
  // Twilio delivery reports (undelivered).
  "30003": "the phone was switched off or out of reach",
  "30004": "the message was blocked on the way to the phone",
  "30005": "the phone number is unknown or no longer in use",
  "30006": "the number cannot receive SMS (landline?)",
  "30007": "the mobile network filtered the message as spam",
  "30008": "the mobile network could not deliver it",
  // Twilio's final statuses that say why without an error code (undelivered).
  canceled: "the text was cancelled at the SMS provider before it went out",
  failed: "the SMS provider could not send the text: it never went out",
  partially_delivered: "only part of the text reached the phone (a long text goes in parts)",
  // SMTP: our account.
  EAUTH: EMAIL_SETTINGS,
  ENOAUTH: EMAIL_SETTINGS,
  ECONFIG: EMAIL_SETTINGS,
  "530": EMAIL_SETTINGS,
  "534": EMAIL_SETTINGS,
  "535": EMAIL_SETTINGS,
  "538": EMAIL_SETTINGS,
  // Our own.
  render: `the message template could not be filled in: ${TELL_OPERATOR}`,
  EUNSUPPORTED: `this channel is not set up for sending: ${TELL_OPERATOR}`,
  EENVELOPE: "the email address is not usable",
  "no-script": `the call had no script to read: ${TELL_OPERATOR}`,
};

/** Why transient failures kept happening, said before "… and we gave up". */
const TRANSIENT_CAUSES: Readonly<Record<string, string>> = {
  ECONNECTION: "the connection to the mail server kept breaking",
  ECONNREFUSED: "the mail server kept refusing connections",
  ETIMEDOUT: "the mail server kept not answering in time",
  ESOCKET: "the network to the mail server kept failing",
  EDNS: "the mail server's name kept failing to resolve",
  ETLS: "the secure connection to the mail server kept failing",
  // Only to RCPT TO, without an enhanced code that is permanent there (smtp-failure.ts).
  "552": "the recipient's mailbox stayed full (or the mail server took no more recipients)",
  ECLOSED: "the worker was shutting down every time it tried",
  "20429": "the SMS provider kept asking us to slow down",
  "429": "the SMS provider kept asking us to slow down",
  // BullMQ failed the job after it stalled too often: the workers sending it kept dying.
  stalled: "the workers sending it kept stopping before they were done (tell your operator)",
  "render-time": "filling in its template kept taking too long (tell your operator)",
};

/** Plain words for a ledger reason code, for report lines such as "3 × the phone number is not valid". */
export function reasonWords(code: string): string {
  const trimmed = code.trim();
  const known = SKIPS_AND_CANCELS[trimmed];
  if (known !== undefined) return known;
  const [kind = "", provider = ""] = splitFailure(trimmed);
  const byProvider = PROVIDER_CODES[provider];
  if (byProvider !== undefined) return byProvider;
  const reply = /^\d{3}$/.test(provider) ? Number(provider) : undefined;
  switch (kind) {
    case "permanent":
      return permanentWords(provider, reply);
    case "transient":
      return `${transientCause(provider, reply)} and we gave up`;
    case "misconfigured":
      return `the sending settings are wrong (code ${provider}): ${TELL_OPERATOR}`;
    case "undelivered":
      return `the mobile network could not deliver it (code ${provider})`;
    default:
      return `not sent, for a reason without a description yet (code “${trimmed}”)`;
  }
}

/** `permanent 550` → ["permanent", "550"]; a bare provider code → ["", code]. */
function splitFailure(code: string): [string, string] {
  const match = /^(permanent|transient|misconfigured|undelivered)\s+(\S+)/i.exec(code);
  if (match) return [(match[1] ?? "").toLowerCase(), match[2] ?? ""];
  return ["", code];
}

function permanentWords(provider: string, reply: number | undefined): string {
  // Permanent 5xx replies come from SMTP (Twilio's 5xx are transient); 4xx from Twilio's API.
  // To MAIL FROM or after DATA (the message's size), or to RCPT TO with a permanent enhanced code
  // (5.3.4 too big for the system, 5.2.3 over the mailbox's size limit, but also 5.7.1 policy or
  // 5.1.1 no such user, which the ledger's code does not tell apart); ledger entries from before
  // RCPT's 552 was retried also held a full mailbox's.
  if (reply === 552) {
    return "the mail server refused the message for good (552: most often its size, a mailbox over its limit, or the server's policy)";
  }
  if (reply === 554) return "the mail server refused the message";
  if (reply !== undefined && reply >= 500) return "the mail server refused the address";
  if (reply !== undefined && reply >= 400) {
    return `the SMS provider refused the message (code ${provider})`;
  }
  return `the message could not be sent (code ${provider})`;
}

function transientCause(provider: string, reply: number | undefined): string {
  const known = TRANSIENT_CAUSES[provider];
  if (known !== undefined) return known;
  if (reply !== undefined && reply >= 400 && reply < 500) {
    return "the mail server kept putting the message off";
  }
  if (reply !== undefined && reply >= 500) return "the provider kept having trouble";
  return `sending kept failing (code ${provider})`;
}
