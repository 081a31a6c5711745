import nodemailer, { type DKIMOptions } from "nodemailer";
import type { DeliveryChannel, OutgoingMessage, SendResult } from "./channel.js";
import { closedChannel, unsupportedChannel } from "./channel-results.js";
import { mailOptions, senderDomain } from "./mail-options.js";
import { classifySmtpFailure } from "./smtp-failure.js";

/** Settings of the SMTP email adapter, from SMTP_URL, MAIL_FROM and REPLY_TO. */
export interface SmtpEmailOptions {
  /** `smtp://user:pass@host:587` or `smtps://…:465`; credentials in the URL. */
  readonly smtpUrl: string;
  /** MAIL_FROM, such as `"Corner Shop" <hello@shop.example>`. */
  readonly from: string;
  /** REPLY_TO: the address customers' replies go to, sent as Reply-To. */
  readonly replyTo?: string;
  /** Pooled connections kept open to the server; small, the rate limit lives in the queue. */
  readonly maxConnections?: number;
  /** Messages one pooled connection carries before it is replaced (a server may cap them). */
  readonly messagesPerConnection?: number;
  /** Connect and greeting timeout; the socket timeout is three times this. */
  readonly timeoutMs?: number;
  /** From `dkimOptions`: signs every message, list headers included. */
  readonly dkim?: DKIMOptions;
}

/**
 * Email over SMTP with nodemailer's pool. The pool never requeues a message on its own
 * (`maxRequeues: 0`): a connection lost mid-send is reported as transient and the delivery
 * processor decides, so a message is not sent twice behind our back.
 */
export function createSmtpEmailChannel(options: SmtpEmailOptions): DeliveryChannel {
  const domain = senderDomain(options.from);
  const timeout = options.timeoutMs ?? 10_000;
  const transport = nodemailer.createTransport({
    pool: true,
    url: options.smtpUrl,
    maxConnections: options.maxConnections ?? 3,
    maxRequeues: 0,
    // nodemailer's default of 100 recycles every connection of the pool at about the same moment;
    // sends queue behind the reconnects and then leave together, a burst above the channel's rate
    // (measured: 56 in one second at 50/s, against 51 without recycling). A server that caps
    // messages per connection still closes it, and the message is retried as transient; set
    // SMTP_MESSAGES_PER_CONNECTION to that cap to avoid those retries.
    maxMessages: options.messagesPerConnection ?? 1_000,
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout * 3,
    ...(options.dkim !== undefined && { dkim: options.dkim }),
  });
  let closed = false;
  return {
    transport: "smtp",
    channels: ["email"],
    async send(message: OutgoingMessage): Promise<SendResult> {
      if (closed) return closedChannel("smtp");
      if (message.channel !== "email") return unsupportedChannel("smtp", message);
      try {
        const info = await transport.sendMail(
          mailOptions(message, options.from, domain, options.replyTo),
        );
        return { ok: true, id: info.messageId };
      } catch (error) {
        return { ok: false, error: classifySmtpFailure(error) };
      }
    },
    async close() {
      closed = true;
      transport.close();
    },
  };
}
