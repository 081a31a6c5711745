import type { DiscountOffer } from "../domain/discount-code.js";
import type { Channel as ChannelName } from "../domain/events.js";
import type { CallVoice } from "../domain/voice-call.js";

/** A discount code a message carries: stored before it is sent, so a till can check it. */
export interface MessageOffer extends DiscountOffer {
  /** When the code stops being valid (the end of its last day in the customer's zone). */
  readonly expiresAt: number;
}

/**
 * The narrow interface every delivery adapter implements. Adapters only translate provider
 * results; the delivery processor alone decides what a failure means for retries.
 */

/** A rendered email, ready for a transport. */
export interface EmailMessage {
  readonly channel: "email";
  /** Follow-up id (the job id); stamped in a header and used for a stable Message-ID. */
  readonly followUpId: string;
  readonly to: string;
  readonly subject: string;
  readonly text: string;
  readonly html?: string;
  /** Extra headers, e.g. List-Unsubscribe. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Files sent along; one with a `cid` is an inline image the HTML shows as `<img src="cid:…">`. */
  readonly attachments?: readonly EmailAttachment[];
  /** The discount code in it, if any (transports ignore it). */
  readonly offer?: MessageOffer;
}

/** An attachment held in memory: transports never read files or URLs for it. */
export interface EmailAttachment {
  readonly filename: string;
  readonly contentType: string;
  readonly content: Buffer;
  /** Content-ID (without angle brackets) that makes it an inline, related part. */
  readonly cid?: string;
}

/** A rendered SMS, or the message of a voice call. */
export interface PhoneMessage {
  readonly channel: "sms" | "voice";
  readonly followUpId: string;
  /** E.164 number. */
  readonly to: string;
  readonly text: string;
  /** Voice calls: how the message is spoken and answered (the outbox writes the text only). */
  readonly call?: CallVoice;
  /** The discount code in it, if any (transports ignore it). */
  readonly offer?: MessageOffer;
}

export type OutgoingMessage = EmailMessage | PhoneMessage;

/**
 * Why a send failed, by what it means for the next attempt:
 * `transient` retry with backoff; `permanent` fail now and record why; `misconfigured` the
 * operator must fix credentials or settings (fail, and alert loudly).
 */
export type FailureKind = "transient" | "permanent" | "misconfigured";

/**
 * Network errors that mean a connection never opened, or its TLS handshake failed, so no request
 * or message can have reached the provider: a failure with one of these is certain, never a
 * possible duplicate. The TLS ones are raised by the handshake alone: the certificate checks. Not
 * ERR_SSL_WRONG_VERSION_NUMBER (a record that is not TLS): a server that does not speak TLS at
 * all raises it (smtps:// to a port of plain SMTP), but so does plain text under TLS at any later
 * point of a session, also after a whole message or request was written, with the same fields.
 */
export const NEVER_CONNECTED: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_REVOKED",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_SIGNATURE_FAILURE",
]);

export interface SendFailure {
  readonly kind: FailureKind;
  /** Provider code as text (SMTP "550", Twilio "21211", "ECONNREFUSED"): grouped in reports. */
  readonly code: string;
  /** Plain-words reason, free of personal data. */
  readonly reason: string;
  /** The recipient asked the provider to stop (Twilio 21610): suppress this address too. */
  readonly optedOut?: boolean;
  /**
   * The connection broke after the message was handed over, before the provider's answer: it may
   * have been accepted, so a retry may deliver it twice (counted as a possible duplicate).
   */
  readonly uncertain?: boolean;
  /**
   * How long the provider asked to wait before trying again (ms; Twilio's Retry-After on a 429 or
   * 503): the retry waits at least this long, up to the retry policy's longest wait.
   */
  readonly retryAfterMs?: number;
}

export type SendResult =
  | { readonly ok: true; readonly id: string }
  | { readonly ok: false; readonly error: SendFailure };

/** One delivery adapter: email over SMTP, SMS over Twilio, or the outbox folder. */
export interface DeliveryChannel {
  /** `smtp`, `twilio` or `outbox`: shown in the start-up log line. */
  readonly transport: string;
  readonly channels: readonly ChannelName[];
  /** Never throws for provider failures; returns them classified. */
  send(message: OutgoingMessage): Promise<SendResult>;
  /**
   * Asks the provider what it took like `message` since `since` (epoch ms), after a send whose
   * outcome was not known (a 5xx answer, a connection broken midway): the ids of what it took to
   * the same address, earliest first (the caller picks the one that may be this send's), or the
   * lookup's failure. Only where the provider can tell (voice: Twilio's Calls list).
   */
  findPlaced?(message: OutgoingMessage, since: number): Promise<PlacedLookup>;
  close(): Promise<void>;
}

/** What a provider found of a send whose outcome was not known (DeliveryChannel.findPlaced). */
export type PlacedLookup =
  | { readonly ok: true; readonly ids: readonly string[] }
  | { readonly ok: false; readonly error: SendFailure };
