import { createHash } from "node:crypto";
import type { SendMailOptions } from "nodemailer";
import type { EmailMessage } from "./channel.js";

/** Header naming the follow-up a message belongs to: bounces and replies can be traced back. */
export const FOLLOW_UP_HEADER = "X-Followup-Id";

/** Headers we set ourselves; a caller's extra header of the same name is dropped. */
const OWN_HEADERS = new Set([
  "message-id",
  "from",
  "to",
  "subject",
  FOLLOW_UP_HEADER.toLowerCase(),
]);

/** The address part of MAIL_FROM (`"Shop" <shop@example.com>` → `shop@example.com`). */
export function senderAddress(from: string): string {
  const bracketed = /<([^<>]+)>\s*$/.exec(from);
  return (bracketed?.[1] ?? from).trim();
}

/** Domain of the sender, for Message-IDs; throws on a sender without one (a config error). */
export function senderDomain(from: string): string {
  const address = senderAddress(from);
  const at = address.lastIndexOf("@");
  const domain = at === -1 ? "" : address.slice(at + 1);
  if (!/^[A-Za-z0-9.-]+$/.test(domain)) {
    throw new Error(`MAIL_FROM needs an address with a domain, such as shop@example.com`);
  }
  return domain;
}

/**
 * The same Message-ID for every attempt of a follow-up, so a resend after a lost reply is
 * recognisable as a duplicate by receiving servers and in our own logs.
 */
export function followUpMessageId(followUpId: string, domain: string): string {
  const hash = createHash("sha256").update(followUpId).digest("hex").slice(0, 32);
  return `<followup.${hash}@${domain}>`;
}

/**
 * Nodemailer options for a rendered email; SMTP and the outbox build the same message. With
 * `replyTo` (REPLY_TO), customers' replies go there instead of to the sender, and it replaces any
 * Reply-To among the message's own headers.
 */
export function mailOptions(
  message: EmailMessage,
  from: string,
  domain: string,
  replyTo?: string,
): SendMailOptions {
  const own = replyTo === undefined ? OWN_HEADERS : new Set([...OWN_HEADERS, "reply-to"]);
  const extra = Object.entries(message.headers ?? {}).filter(
    ([name]) => !own.has(name.toLowerCase()),
  );
  return {
    from,
    ...(replyTo !== undefined && { replyTo }),
    to: message.to,
    subject: message.subject,
    text: message.text,
    ...(message.html !== undefined && { html: message.html }),
    ...(message.attachments !== undefined && {
      attachments: message.attachments.map((attachment) => ({
        filename: attachment.filename,
        contentType: attachment.contentType,
        content: attachment.content,
        ...(attachment.cid !== undefined && {
          cid: attachment.cid,
          contentDisposition: "inline" as const,
        }),
      })),
    }),
    messageId: followUpMessageId(message.followUpId, domain),
    headers: { ...Object.fromEntries(extra), [FOLLOW_UP_HEADER]: message.followUpId },
    // Rendered content is text only: nothing in it may make nodemailer read files or fetch URLs.
    disableFileAccess: true,
    disableUrlAccess: true,
  };
}
