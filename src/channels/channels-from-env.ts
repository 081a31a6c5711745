import type { Env } from "../config/env.js";
import { asciiBaseUrl, TWILIO_STATUS_PATH } from "../config/public-paths.js";
import type { Channel } from "../domain/events.js";
import type { DeliveryChannel } from "./channel.js";
import { dkimOptions } from "./dkim.js";
import { createSmtpEmailChannel } from "./email-smtp.js";
import { createOutboxChannel } from "./outbox.js";
import { createTwilioSmsChannel } from "./sms-twilio.js";
import { createTwilioVoiceChannel } from "./voice-twilio.js";
import { VOICE_UNAVAILABLE } from "./voice-unavailable.js";

/** Sender used in outbox .eml files when MAIL_FROM is not set. */
const OUTBOX_FROM = "followups <followups@localhost>";

/**
 * Picks each channel's adapter from the environment: SMTP when SMTP_URL is set, Twilio when its
 * credentials are, and the outbox folder otherwise, so a newcomer with only Redis sees it all work.
 * Voice calls go through Twilio when it can call back with the call's words (PUBLIC_URL).
 */
export function channelsFromEnv(env: Env): Record<Channel, DeliveryChannel> {
  const dkim =
    env.DKIM_DOMAIN && env.DKIM_SELECTOR && env.DKIM_PRIVATE_KEY
      ? dkimOptions({
          domainName: env.DKIM_DOMAIN,
          keySelector: env.DKIM_SELECTOR,
          // A PEM key in one environment line has its line breaks written as \n.
          privateKey: env.DKIM_PRIVATE_KEY.replaceAll("\\n", "\n"),
        })
      : undefined;
  const outbox = createOutboxChannel({
    dir: env.OUTBOX_DIR,
    from: env.MAIL_FROM ?? OUTBOX_FROM,
    ...(env.REPLY_TO && { replyTo: env.REPLY_TO }),
    ...(dkim && { dkim }),
  });
  const email =
    env.SMTP_URL && env.MAIL_FROM
      ? createSmtpEmailChannel({
          ...(dkim && { dkim }),
          smtpUrl: env.SMTP_URL,
          from: env.MAIL_FROM,
          ...(env.REPLY_TO && { replyTo: env.REPLY_TO }),
          maxConnections: env.SMTP_MAX_CONNECTIONS,
          messagesPerConnection: env.SMTP_MESSAGES_PER_CONNECTION,
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
          ...(env.PUBLIC_URL && {
            statusCallback: `${asciiBaseUrl(env.PUBLIC_URL)}${TWILIO_STATUS_PATH}`,
          }),
        })
      : outbox;
  const callerId = env.TWILIO_CALLER_ID ?? env.TWILIO_FROM;
  const voice =
    env.TWILIO_ACCOUNT_SID && env.TWILIO_AUTH_TOKEN && callerId && env.PUBLIC_URL
      ? createTwilioVoiceChannel({
          accountSid: env.TWILIO_ACCOUNT_SID,
          authToken: env.TWILIO_AUTH_TOKEN,
          callerId,
          publicUrl: env.PUBLIC_URL,
          ...(env.TWILIO_API_URL && { apiUrl: env.TWILIO_API_URL }),
        })
      : outbox;
  return { email, sms, voice };
}

/**
 * Channels that must not count as sent: voice goes to the outbox unless Twilio can place calls,
 * which is right for a trial with every channel in the outbox but would report calls that never
 * happened once a real provider sends the other channels. Their steps are skipped instead.
 */
export function unavailableChannelsOf(
  channels: Readonly<Record<Channel, Pick<DeliveryChannel, "transport">>>,
): ReadonlyMap<Channel, string> {
  const realProvider = Object.values(channels).some((channel) => channel.transport !== "outbox");
  return realProvider && channels.voice.transport === "outbox"
    ? new Map([["voice", VOICE_UNAVAILABLE]])
    : new Map();
}
