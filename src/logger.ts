import { pino } from "pino";

/**
 * Paths pino replaces with "[redacted]": contact details, names and secrets never reach a log,
 * wherever they are nested.
 */
export const REDACTED_PATHS = [
  "email",
  "phone",
  "to",
  "name",
  "customer",
  "password",
  "authToken",
  "token",
  "*.email",
  "*.phone",
  "*.to",
  "*.name",
  "*.customer",
  "*.password",
  "*.authToken",
  "*.token",
  "*.smtpUrl",
  "*.redisUrl",
  "err.config",
  "err.response",
];

export type Logger = pino.Logger;

/** JSON lines in production; readable lines when `pretty` (development terminals). */
export function createLogger(options: { level: string; pretty: boolean }): Logger {
  return pino({
    level: options.level,
    redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
    base: { service: "followups" },
    ...(options.pretty && {
      transport: {
        target: "pino-pretty",
        options: { colorize: true, translateTime: "SYS:standard" },
      },
    }),
  });
}
