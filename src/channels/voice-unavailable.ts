/**
 * The reason voice steps are skipped while calls go nowhere but the outbox. Its own module: `check`
 * quotes it without loading the channels (nodemailer, twilio).
 */
export const VOICE_UNAVAILABLE =
  "voice calls need Twilio credentials, a caller id (TWILIO_CALLER_ID or TWILIO_FROM) and PUBLIC_URL";
