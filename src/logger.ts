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

export interface LoggerOptions {
  readonly level: string;
  readonly pretty: boolean;
  /** Where JSON lines go instead of stdout (tests read them back). */
  readonly destination?: pino.DestinationStream;
}

/** JSON lines in production; readable lines when `pretty` (development terminals). */
export function createLogger(options: LoggerOptions): Logger {
  const settings: pino.LoggerOptions = {
    level: options.level,
    redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
    base: { service: "followups" },
    ...(options.pretty &&
      !options.destination && {
        transport: {
          target: "pino-pretty",
          options: { colorize: true, translateTime: "SYS:standard" },
        },
      }),
  };
  return options.destination ? pino(settings, options.destination) : pino(settings);
}
