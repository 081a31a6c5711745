import { pino } from "pino";
import { SECRET_ENV_VARS } from "./config/env.js";

/**
 * Field names replaced with "[redacted]" at the top of a log line and one level down (`*.email`
 * in pino's terms): contact details, names and secrets never reach a log, wherever they are
 * nested.
 */
export const REDACTED_NAMES: ReadonlySet<string> = new Set([
  "email",
  "phone",
  "to",
  "name",
  "customer",
  "password",
  "authToken",
  "token",
  "smtpUrl",
  "redisUrl",
  ...SECRET_ENV_VARS,
]);

/**
 * Paths pino's redaction replaces: the names above at the top of a line, and the payloads of an
 * error (also dropped by the err serializer). The names one level down are censored by
 * censorNested in one pass instead: pino's wildcard paths cost about 1 µs each per line, 25 µs
 * per line for these (the intake of a purchase takes about 1.3 ms).
 */
const REDACTED_PATHS = [
  ...REDACTED_NAMES,
  "err.config",
  "err.response",
  "err.command.args",
  "err.args",
  "err.data",
  "err.body",
];

const CENSOR = "[redacted]";

/**
 * Fields of an error that carry what was being sent or asked for, never why it failed: ioredis
 * puts a failed command's arguments on `command.args` (a whole event, a reply text), BullMQ and
 * HTTP clients put request bodies and configs on theirs. Dropped at any depth of an error.
 */
const ERROR_PAYLOAD_FIELDS = new Set([
  "args",
  "argv",
  "data",
  "body",
  "input",
  "config",
  "request",
  "response",
  "headers",
  "email",
  "phone",
  "to",
  "from",
  "customer",
  "recipient",
  "recipients",
  "envelope",
  "accepted",
  "rejected",
  "rejectedErrors",
  "password",
  "authToken",
  "token",
  "text",
  "html",
]);

/** How deep objects nested in an error (causes, previous errors of a transaction) are followed. */
const MAX_ERROR_DEPTH = 8;

/** Email addresses and international phone numbers, where a message or stack quotes one. */
const EMAIL_PATTERN = /[^\s@<>"'`(),;:/\\[\]]+@[^\s@<>"'`(),;:/\\[\]]+\.[A-Za-z]{2,}/g;
const PHONE_PATTERN = /\+\d[\d ().-]{6,18}\d/g;

type Serialized = Record<string, unknown>;

const isErrorLike = (value: unknown): value is Error =>
  typeof value === "object" && value !== null && typeof (value as Error).message === "string";

/** Masks contact details quoted in a text (a provider's message naming the recipient). */
function maskContacts(text: string): string {
  return text.replace(EMAIL_PATTERN, "[email]").replace(PHONE_PATTERN, "[phone]");
}

/**
 * A failed command as operators need it: its name, never its arguments. ioredis writes
 * `{ name, args }`, nodemailer the SMTP line (`RCPT TO:<address>`), of which the verb is kept.
 */
function commandName(command: unknown): unknown {
  if (typeof command === "string") return command.split(/[\s:]/, 1)[0];
  if (typeof command === "object" && command !== null) {
    const name = (command as { name?: unknown }).name;
    return typeof name === "string" ? { name } : CENSOR;
  }
  return command;
}

/** A copy of `value` without payload fields, nested errors serialized the same way. */
function scrub(value: unknown, depth: number, seen: Set<object>): unknown {
  if (typeof value === "string") return maskContacts(value);
  if (typeof value !== "object" || value === null) return value;
  if (seen.has(value)) return "[circular]";
  if (depth > MAX_ERROR_DEPTH) return "[nested too deep]";
  if (isErrorLike(value)) return serializeError(value, depth, seen);
  if (Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return CENSOR;
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((entry) => scrub(entry, depth + 1, seen));
    return scrubFields(value, depth, seen);
  } finally {
    seen.delete(value);
  }
}

function scrubFields(source: object, depth: number, seen: Set<object>, into: Serialized = {}) {
  // for-in, as pino's serializer: an error's enumerable fields may be inherited.
  for (const key in source) {
    if (key in into) continue;
    const field = (source as Serialized)[key];
    if (field === undefined) continue;
    if (ERROR_PAYLOAD_FIELDS.has(key)) into[key] = CENSOR;
    else if (key === "command") into[key] = commandName(field);
    else into[key] = scrub(field, depth + 1, seen);
  }
  return into;
}

/**
 * pino's standard error serializer for type, message and stack (causes folded into both), then
 * every other field scrubbed: a failed Redis command keeps its name and loses its arguments,
 * previous errors of a transaction, causes and wrapped errors lose their payload the same way at
 * any depth, and contact details quoted in a message or stack are masked. The original error is
 * never modified.
 */
function serializeError(error: Error, depth: number, seen: Set<object>): Serialized {
  seen.add(error);
  try {
    const standard = pino.stdSerializers.err(error) as unknown as Serialized;
    const result: Serialized = { type: standard.type };
    if (typeof standard.message === "string") result.message = maskContacts(standard.message);
    if (typeof standard.stack === "string") result.stack = maskContacts(standard.stack);
    const errors = (error as { errors?: unknown }).errors;
    if (Array.isArray(errors)) result.aggregateErrors = scrub(errors, depth + 1, seen);
    scrubFields(error, depth, seen, result);
    // The class name is `type`, and the stack's first line; an own `name` would only be redacted.
    delete result.name;
    // Folded into message and stack above; kept as a structure too (usually not enumerable), so
    // an ioredis error wrapped by BullMQ or by us still names the command that failed.
    const cause = (error as { cause?: unknown }).cause;
    if (cause !== undefined && !("cause" in result)) result.cause = scrub(cause, depth + 1, seen);
    return result;
  } finally {
    seen.delete(error);
  }
}

/**
 * The `err` serializer of every logger: error payloads never reach a log (see serializeError), nor
 * a field named in REDACTED_NAMES (`err.<name>`, as the wildcard paths did).
 */
export const errorSerializer = (error: unknown): unknown => {
  const serialized = scrub(error, 0, new Set());
  return isFieldObject(serialized) ? censorFields(serialized) : serialized;
};

/** Fields whose values a serializer turns into what is logged (errorSerializer censors them). */
const SERIALIZERS: Readonly<Record<string, (value: unknown) => unknown>> = {
  err: errorSerializer,
  error: errorSerializer,
};

/**
 * A log line's fields (or a child logger's bindings) with every field named in REDACTED_NAMES one
 * level down censored: `{ env: { REDIS_URL } }` logs `{ env: { REDIS_URL: "[redacted]" } }`.
 * What is censored is what the line would show: an object's `toJSON()` if it has one, an error's
 * own fields under any name but `err` and `error`. Copies only what it censors; arrays are left
 * alone (`*.email` never matched their items either).
 */
function censorNested(fields: Record<string, unknown>): Record<string, unknown> {
  let copy: Record<string, unknown> | undefined;
  for (const key in fields) {
    if (Object.hasOwn(SERIALIZERS, key)) continue;
    const shown = shownFields(fields[key]);
    if (!shown) continue;
    const censored = censorFields(shown);
    if (censored === shown) continue;
    copy ??= { ...fields };
    copy[key] = censored;
  }
  return copy ?? fields;
}

/** `fields` with its own fields named in REDACTED_NAMES censored: a copy, or itself if none is. */
function censorFields(fields: Record<string, unknown>): Record<string, unknown> {
  let copy: Record<string, unknown> | undefined;
  for (const key in fields) {
    if (!REDACTED_NAMES.has(key) || fields[key] === undefined) continue;
    copy ??= { ...fields };
    copy[key] = CENSOR;
  }
  return copy ?? fields;
}

/**
 * The fields a JSON line shows of a value (its `toJSON()` first, as JSON.stringify does), or
 * undefined when it shows none: not an object, or an array or a buffer.
 */
function shownFields(value: unknown): Record<string, unknown> | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  let shown: unknown = value;
  try {
    if (typeof toJSON === "function") shown = toJSON.call(value);
  } catch {
    // Left to the line's serialization, which reports it as pino does.
    return undefined;
  }
  return isFieldObject(shown) ? shown : undefined;
}

/** An object whose fields a log line shows: not an array or a buffer. */
function isFieldObject(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    !ArrayBuffer.isView(value)
  );
}

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
    redact: { paths: REDACTED_PATHS, censor: CENSOR },
    formatters: { log: censorNested, bindings: censorNested },
    serializers: SERIALIZERS,
    base: { service: "followups" },
    ...(options.pretty &&
      !options.destination && {
        transport: {
          target: "pino-pretty",
          options: { colorize: true, translateTime: "SYS:standard" },
        },
      }),
  };
  const logger = options.destination ? pino(settings, options.destination) : pino(settings);
  // pino gives formatters.bindings the root's bindings only; a child's, and those set later, are
  // censored one level down like a line's fields (children inherit these methods).
  const { child, setBindings } = logger;
  logger.child = function (this: Logger, bindings, childOptions) {
    return child.call(this, censorNested(bindings), childOptions);
  } as Logger["child"];
  logger.setBindings = function (this: Logger, bindings) {
    setBindings.call(this, censorNested(bindings));
  };
  return logger;
}

/**
 * An error's name (its class), for a log line that must not carry its message: a decoder's
 * message, say, may quote the personal data it could not read.
 */
export function errorName(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}
