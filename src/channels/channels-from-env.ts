import type { Env } from "../config/env.js";
import type { Channel } from "../domain/events.js";
import type { DeliveryChannel } from "./channel.js";
import { createSmtpEmailChannel } from "./email-smtp.js";
import { createOutboxChannel } from "./outbox.js";
import { createTwilioSmsChannel } from "./sms-twilio.js";

/** Sender used in outbox .eml files when MAIL_FROM is not set. */
const OUTBOX_FROM = "followups <followups@localhost>";

/**
 * Picks each channel's adapter from the environment: SMTP when SMTP_URL is set, Twilio when its
 * credentials are, and the outbox folder otherwise, so a newcomer with only Redis sees it all work.
 * Voice calls go to the outbox until the voice adapter exists.
 */
export function channelsFromEnv(env: Env): Record<Channel, DeliveryChannel> {
  const outbox = createOutboxChannel({ dir: env.OUTBOX_DIR, from: env.MAIL_FROM ?? OUTBOX_FROM });
  const email =
    env.SMTP_URL && env.MAIL_FROM
      ? createSmtpEmailChannel({
          smtpUrl: env.SMTP_URL,
          from: env.MAIL_FROM,
          maxConnections: env.SMTP_MAX_CONNECTIONS,
        })
      : outbox;
  const sms =
    env.TWILIO_ACCOUNT_SID && env.TWILIO_AUTH_TOKEN
      ? createTwilioSmsChannel({
          accountSid: env.TWILIO_ACCOUNT_SID,
          authToken: env.TWILIO_AUTH_TOKEN,
          ...(env.TWILIO_FROM && { from: env.TWILIO_FROM }),
          ...(env.TWILIO_MESSAGING_SERVICE_SID && {
            messagingServiceSid: env.TWILIO_MESSAGING_SERVICE_SID,
          }),
          ...(env.TWILIO_API_URL && { apiUrl: env.TWILIO_API_URL }),
        })
      : outbox;
  return { email, sms, voice: outbox };
}
