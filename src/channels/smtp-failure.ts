import { NEVER_CONNECTED, type SendFailure } from "./channel.js";

/** The fields of a nodemailer error we classify by; its message text is never looked at. */
export interface SmtpErrorFields {
  readonly code?: string;
  readonly responseCode?: number;
  readonly response?: string;
  readonly command?: string;
  /** The system error's own code when nodemailer replaced it (ECONNREFUSED under ESOCKET, say). */
  readonly originalCode?: string;
  /** Which of nodemailer's timeouts ran out (CONNECT_TIMEOUT, GREETING_TIMEOUT, …). */
  readonly timeoutType?: string;
}

/** Credentials or settings are wrong: retrying cannot help until the operator fixes them. */
const MISCONFIGURED_CODES = new Set(["EAUTH", "ENOAUTH", "ECONFIG"]);
/** 530 authentication required, 534 mechanism too weak, 535 credentials invalid, 538 needs TLS. */
const AUTH_RESPONSES = new Set([530, 534, 535, 538]);
/** Problems with the message or envelope itself, found before any server reply. */
const PERMANENT_CODES = new Set([
  "EENVELOPE",
  "EMAXRECIPIENTS",
  "EFILEACCESS",
  "EURLACCESS",
  // Larger than the server's SIZE, found before sending: it will be as large next time.
  "EMESSAGE",
]);

const CODE_REASONS: Record<string, string> = {
  EAUTH: "the SMTP server refused the credentials in SMTP_URL",
  ENOAUTH: "the SMTP server needs credentials and SMTP_URL has none",
  ECONFIG: "the SMTP settings are invalid",
  ECONNECTION: "the connection to the SMTP server closed unexpectedly",
  ECONNREFUSED: "the SMTP server refused the connection",
  ETIMEDOUT: "the SMTP server did not answer in time",
  ESOCKET: "a network error on the connection to the SMTP server",
  EDNS: "the SMTP host name did not resolve",
  ETLS: "the TLS handshake with the SMTP server failed",
  EPROTOCOL: "the SMTP server answered outside the protocol",
  EENVELOPE: "the message has no valid recipient",
  EMESSAGE: "the message is larger than the SMTP server accepts",
};

/**
 * Classifies a failed SMTP send by reply code and nodemailer error code: 4xx transient, 5xx
 * permanent (misconfigured before the recipients: the server refuses us; 552 to RCPT transient
 * unless its enhanced code says it is permanent), authentication misconfigured, connection
 * problems and anything unknown transient.
 */
export function classifySmtpFailure(error: unknown): SendFailure {
  const fields = (error ?? {}) as SmtpErrorFields;
  const code = typeof fields.code === "string" ? fields.code : undefined;
  const reply = typeof fields.responseCode === "number" ? fields.responseCode : undefined;
  const at = typeof fields.command === "string" ? ` at ${fields.command.split(" ")[0]}` : "";
  const enhanced = /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(fields.response ?? "")?.[1];
  const replyText = reply === undefined ? "" : `SMTP ${reply}${enhanced ? ` ${enhanced}` : ""}`;

  // A 4xx reply to AUTH (454 temporary authentication failure, 421 busy) says "later", not "wrong".
  const deferred = reply !== undefined && reply >= 400 && reply < 500;
  const misconfiguredCode = code && MISCONFIGURED_CODES.has(code) && !deferred ? code : undefined;
  if (misconfiguredCode || (reply && AUTH_RESPONSES.has(reply))) {
    return {
      kind: "misconfigured",
      code: misconfiguredCode ?? String(reply),
      reason: `${describe(code, "the SMTP server refused to authenticate us")}${replyText ? ` (${replyText})` : ""}`,
    };
  }
  if (refusesUs(reply, fields.command)) {
    return {
      kind: "misconfigured",
      code: String(reply),
      reason: `the SMTP server refused us${at}, not the recipient (${replyText}): check MAIL_FROM, SMTP_URL and the sending host's standing with the server`,
    };
  }
  if (reply === 552 && RECIPIENT.test(fields.command ?? "") && !permanentEnhanced(enhanced)) {
    return {
      kind: "transient",
      code: String(reply),
      reason: `the SMTP server deferred the message${at} (${replyText}): a 552 to a recipient (its mailbox full, too many recipients) is retried as a 452, as RFC 5321 asks`,
    };
  }
  if (reply !== undefined && reply >= 400 && reply < 600) {
    // 503 (bad sequence of commands) is about the session, not the message: a new one may work.
    // 552 to MAIL FROM (SIZE) or after DATA: the message is over what the server takes, and will
    // be as large next time.
    const permanent = reply >= 500 && reply !== 503;
    return {
      kind: permanent ? "permanent" : "transient",
      code: String(reply),
      reason: permanent
        ? `the SMTP server rejected the message${at} (${replyText})`
        : `the SMTP server deferred the message${at} (${replyText})`,
    };
  }
  if (code && PERMANENT_CODES.has(code)) {
    return { kind: "permanent", code, reason: describe(code, "the message cannot be sent") };
  }
  return {
    kind: "transient",
    code: code ?? "UNKNOWN",
    reason: describe(code, "sending over SMTP failed for an unknown reason"),
    ...(mayHaveBeenAccepted(fields) && { uncertain: true }),
  };
}

/**
 * RCPT TO: a 552 there is a full mailbox or, as RFC 821 wrongly listed it, too many recipients;
 * RFC 5321 §4.5.3.1.10 asks clients to take it as temporary (452).
 */
const RECIPIENT = /^RCPT\b/i;

/**
 * The enhanced status details (RFC 3463) that a 552 to RCPT TO is retried for: x.2.2 mailbox full,
 * x.3.1 mail system full and x.4.5 congestion, which RFC 3463 calls persistent transient
 * conditions, and x.5.3 too many recipients, RFC 5321's other reason to take a 552 there as a 452.
 */
const RETRIED_AT_RECIPIENT = new Set(["2.2", "3.1", "4.5", "5.3"]);

/**
 * Whether a 552's enhanced status code makes it permanent at RCPT TO: class 5 (permanent, RFC
 * 3463) with any detail but those of RETRIED_AT_RECIPIENT, as 5.3.4 (message too big for the
 * system) or 5.2.3 (message over the mailbox's size limit): the message will not be smaller next
 * time. Without an enhanced code, or with class 4, the 552 stays a 452.
 */
function permanentEnhanced(enhanced: string | undefined): boolean {
  const match = /^5\.(\d{1,3})\.(\d{1,3})$/.exec(enhanced ?? "");
  if (!match) return false;
  return !RETRIED_AT_RECIPIENT.has(`${Number(match[1])}.${Number(match[2])}`);
}

/** Commands before any recipient: a refusal there is of our host, our greeting or our sender. */
const BEFORE_RECIPIENTS = /^(CONN|EHLO|HELO|MAIL)\b/i;

/**
 * A 5xx reply to the greeting, EHLO/HELO or MAIL FROM refuses this deployment (a blocked host, a
 * sender the server does not send for), not the customer's address or the message: every later
 * send fails alike until the operator acts. Not 503 (a bad sequence: the session) nor 552 (a
 * message over the server's SIZE, given with MAIL FROM).
 */
function refusesUs(reply: number | undefined, command: string | undefined): reply is number {
  return (
    reply !== undefined &&
    reply >= 500 &&
    reply < 600 &&
    reply !== 503 &&
    reply !== 552 &&
    command !== undefined &&
    BEFORE_RECIPIENTS.test(command)
  );
}

/** Commands after which a broken connection proves nothing was accepted yet. */
const BEFORE_HANDOVER = /^(EHLO|HELO|STARTTLS|AUTH|MAIL|RCPT)\b/i;
/** Timeouts of the connection's setup: connecting, the greeting, the TLS upgrade. */
const SETUP_TIMEOUTS = new Set(["CONNECT_TIMEOUT", "GREETING_TIMEOUT", "UPGRADE_TIMEOUT"]);

/**
 * Without a reply, a failure during or after DATA may hide an acceptance: the server can have
 * queued the message and lost the connection before saying so. nodemailer names every socket
 * error, close or timeout of an open session `CONN`, whatever it was doing (the whole message may
 * have been written), so only what provably came before a session counts as certain.
 */
function mayHaveBeenAccepted(fields: SmtpErrorFields): boolean {
  const command = fields.command;
  if (command !== undefined && BEFORE_HANDOVER.test(command)) return false;
  if (command !== "CONN") return true;
  if (fields.code === "EDNS" || fields.code === "ETLS") return false;
  if (fields.originalCode && NEVER_CONNECTED.has(fields.originalCode)) return false;
  if (fields.code && NEVER_CONNECTED.has(fields.code)) return false;
  return !(fields.timeoutType && SETUP_TIMEOUTS.has(fields.timeoutType));
}

function describe(code: string | undefined, fallback: string): string {
  return (code && CODE_REASONS[code]) || (code ? `${fallback} (${code})` : fallback);
}
