import { isIP } from "node:net";
import { domainToASCII } from "node:url";
import { z } from "zod";
import { cutText } from "../domain/cut-text.js";
import { MAX_SHARDS, parseServedShards } from "../domain/shard-spec.js";
import { formatPath } from "../domain/shown-path.js";
import { SIGNED_UNSUBSCRIBE_TOKEN_LENGTH } from "../domain/unsubscribe-token.js";
import { asciiBaseUrl, UNSUBSCRIBE_PATH } from "./public-paths.js";

/**
 * The worker's environment, validated once at start so a missing or malformed variable is named
 * before anything connects. The README's configuration table documents the same variables.
 */

/**
 * The longest PUBLIC_URL (without trailing slashes) a marketing email's unsubscribe link can be
 * built on: nodemailer puts the link on a `List-Unsubscribe` header line of its own,
 * ` <PUBLIC_URL/unsubscribe/<token>?lang=<language>>,`, which RFC 5322 bounds at 998 characters (a
 * relay may break a longer line, which breaks the DKIM signature and the one-click unsubscribe).
 * A language is a BCP 47 language subtag, at most 8 letters.
 */
export const MAX_PUBLIC_URL_LENGTH =
  998 -
  " <".length -
  `${UNSUBSCRIBE_PATH}/`.length -
  SIGNED_UNSUBSCRIBE_TOKEN_LENGTH -
  "?lang=".length -
  8 -
  ">,".length;

/**
 * How long PUBLIC_URL is in the links built on it: in ASCII (a host name of other letters in
 * punycode, other characters percent-encoded, as asciiUrl writes a link), without trailing slashes.
 */
function linkBaseLength(text: string): number {
  try {
    return asciiBaseUrl(text).length;
  } catch {
    // Not a URL: refused as such.
    return text.replace(/\/+$/, "").length;
  }
}

/**
 * The longest UNSUBSCRIBE_MAILTO, in ASCII: RFC 5321's longest address (its path less the angle
 * brackets). On its List-Unsubscribe line, ` <mailto:…?subject=unsubscribe%20<token>>`, it stays
 * far within the 998 characters RFC 5322 allows.
 */
export const MAX_UNSUBSCRIBE_MAILTO_LENGTH = 254;

const OTHER_THAN_ASCII = /[\u0080-\uffff]/;

/**
 * An address zod's z.email() takes (its mailbox name all characters a mailto carries as they are,
 * so its length is its length in List-Unsubscribe), with a top-level domain in punycode too
 * (`рф` → `xn--p1ai`), as an event's address may have one.
 */
const MAILTO_ADDRESS =
  /^(?:[A-Za-z0-9_'+-]+\.)*[A-Za-z0-9_'+-]*[A-Za-z0-9_+-]@(?:[A-Za-z0-9][A-Za-z0-9-]*\.)+(?:[A-Za-z]{2,}|xn--[A-Za-z0-9-]*[A-Za-z0-9])$/;

/**
 * UNSUBSCRIBE_MAILTO as RFC 6068 writes a mailto: a domain of other letters in punycode (IDNA,
 * `bücher.example` → `xn--bcher-kva.example`), so List-Unsubscribe stays in ASCII and is not
 * MIME-encoded whole (which hides its links from mail providers). A mailbox name (before the @) of
 * other letters is refused: mail to it needs SMTPUTF8 from the customer's provider to ours, which a
 * provider's unsubscribe by mail cannot be counted on for.
 */
const unsubscribeMailto = () =>
  z
    .string()
    .refine((text) => !OTHER_THAN_ASCII.test(text.slice(0, Math.max(0, text.lastIndexOf("@")))), {
      error:
        "expected an address whose mailbox name (before the @) is in ASCII, such as unsubscribe@shop.example (a domain of other letters is taken, written in punycode): mail to a mailbox name of other letters needs SMTPUTF8 all the way, which a mail provider's unsubscribe cannot be counted on for",
      abort: true,
    })
    .transform((text) => {
      const at = text.lastIndexOf("@");
      const domain = text.slice(at + 1);
      return at < 0 || !OTHER_THAN_ASCII.test(domain)
        ? text
        : `${text.slice(0, at + 1)}${domainToASCII(domain)}`;
    })
    .pipe(
      z
        .email({ pattern: MAILTO_ADDRESS, error: "expected an email address" })
        .max(MAX_UNSUBSCRIBE_MAILTO_LENGTH, {
          error: (issue) =>
            `expected an address of at most ${MAX_UNSUBSCRIBE_MAILTO_LENGTH} characters (${String(issue.input).length} given, written in ASCII as List-Unsubscribe carries it)`,
        }),
    );

const url = (what: string, protocols: readonly string[]) =>
  z.string().refine(
    (text) => {
      try {
        return protocols.includes(new URL(text).protocol);
      } catch {
        return false;
      }
    },
    { error: `expected ${what} URL (${protocols.join(" or ")})` },
  );

/**
 * REDIS_URL: one Redis URL, or (with REDIS_CLUSTER) the seed nodes of a Redis Cluster as
 * comma-separated URLs; passwords and TLS are read from the first.
 */
const redisUrls = () =>
  z.string().refine(
    (text) =>
      text.split(",").every((part) => {
        try {
          return ["redis:", "rediss:"].includes(new URL(part.trim()).protocol);
        } catch {
          return false;
        }
      }),
    {
      error: (issue) =>
        issue.input === ""
          ? "set but empty: name a Redis URL (redis: or rediss:), or unset it for the default"
          : "expected a Redis URL (redis: or rediss:), or comma-separated ones for a cluster",
    },
  );

/** The path of a Redis URL (its database number, as `/2`), or "" when it has none or is not a URL. */
function pathOf(text: string): string {
  try {
    return new URL(text.trim()).pathname;
  } catch {
    return "";
  }
}

const emptyAsUnset = (value: unknown) => (value === "" ? undefined : value);

/** What was given, quoted and cut short: for variables that hold no secret. */
const given = (input: unknown) => JSON.stringify(cutText(String(input), 100));

/**
 * One of a fixed set of words (none of them a secret): a refusal names them all and quotes what
 * was given, `expected json or pretty, got "text"`, rather than zod's `Invalid option: …`.
 */
function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  const words = `${values.slice(0, -1).join(", ")} or ${values.at(-1)}`;
  return z.enum(values, { error: (issue) => `expected ${words}, got ${given(issue.input)}` });
}

/** A text of at most `max` characters: a longer one is refused with its length, never quoted. */
const atMost = (max: number) =>
  z.string().max(max, {
    error: (issue) => `expected at most ${max} characters, got ${String(issue.input).length}`,
  });

/**
 * A whole number written in digits (spaces around it ignored); empty or unset is the default.
 * `0x50`, `1e3`, `3.0` or `-1` are refused with what was given, not read as 80, 1000 or 3; so is
 * a number beyond 2^53 - 1, which a JavaScript number would hold rounded (9007199254740993 read
 * as 9007199254740992): a problem quotes the digits as written, never a rounded reading of them.
 */
function wholeNumber(
  fallback: number,
  bounds: { readonly min?: number; readonly max?: number; readonly expected?: string } = {},
) {
  const min = bounds.min ?? 1;
  const max = bounds.max ?? Number.MAX_SAFE_INTEGER;
  const expected =
    bounds.expected ??
    (bounds.max === undefined
      ? `expected a whole number of at least ${min}`
      : `expected a whole number from ${min} to ${max}`);
  return z.preprocess(
    (value) => (typeof value === "string" ? emptyAsUnset(value.trim()) : value),
    z
      .string({ error: expected })
      .transform((text, ctx) => {
        const refuse = (message: string) => {
          ctx.addIssue({ code: "custom", message, input: text });
          return z.NEVER;
        };
        if (!/^\d+$/.test(text)) return refuse(`${expected}, got ${JSON.stringify(text)}`);
        const value = Number(text);
        if (!Number.isSafeInteger(value) && bounds.max === undefined)
          return refuse(
            `${expected}, got ${text}: beyond ${Number.MAX_SAFE_INTEGER} (2^53 - 1), the largest whole number read exactly`,
          );
        if (!Number.isSafeInteger(value) || value < min || value > max)
          return refuse(`${expected}, got ${text}`);
        return value;
      })
      .default(fallback),
  );
}
const positiveInt = (fallback: number) => wholeNumber(fallback);
/**
 * Milliseconds that become a Node timer: a longer one (over 2^31 - 1 ms) runs at once, so a
 * shutdown deadline, a job lock's renewal or the stalled-job check would fire every millisecond.
 */
const timerMs = (fallback: number) =>
  wholeNumber(fallback, {
    max: 2_147_483_647,
    expected: "expected a whole number from 1 to 2147483647 (about 24.8 days, the longest timer)",
  });

/**
 * A token callers present as `Authorization: Bearer <token>`: 16+ characters without spaces (a
 * header carries none after the scheme). Surrounding whitespace is dropped, as ADMIN_TOKENS' is:
 * a secret mounted from a file ends in a newline, which no caller could ever send.
 */
const bearerToken = () =>
  z.preprocess(
    (value) => (typeof value === "string" ? emptyAsUnset(value.trim()) : value),
    z
      .string()
      .min(16, { error: "expected at least 16 characters", abort: true })
      .regex(/^\S+$/, {
        error: "expected a token without spaces (an Authorization: Bearer header carries none)",
      })
      .optional(),
  );

/** An operator allowed into the admin API and console: the name the audit trail records. */
export interface AdminToken {
  readonly name: string;
  readonly token: string;
}

/** `name:token` pairs, comma-separated: names of letters, digits and `._@-`; tokens of 16+ characters. */
/**
 * TRUST_PROXY: which proxies in front of the HTTP server are believed about the client's address
 * and protocol (X-Forwarded-For, X-Forwarded-Proto): `false` (none: the default), `true` (the
 * nearest peer, whatever its address: one proxy that no client gets past), or comma-separated
 * addresses and CIDR ranges of the proxies. Fastify's `trustProxy` (whose hop count trusts no one).
 */
const trustProxy = () =>
  z.string().transform((text, ctx): boolean | string[] => {
    const value = text.trim();
    if (value === "true" || value === "false") return value === "true";
    const entries = value.split(",").map((entry) => entry.trim());
    const bad = entries.find((entry) => !isAddressRange(entry));
    if (bad === undefined) return entries;
    ctx.addIssue({
      code: "custom",
      message: `expected true, false, or comma-separated IP addresses and CIDR ranges such as 10.0.0.0/8,127.0.0.1; ${JSON.stringify(cutText(bad, 60))} is none of these`,
    });
    return z.NEVER;
  });

/** An IP address, or a CIDR range (`10.0.0.0/8`, `fd00::/8`). */
function isAddressRange(entry: string): boolean {
  const [address = "", bits, ...rest] = entry.split("/");
  const version = isIP(address);
  if (version === 0 || rest.length > 0) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (version === 4 ? 32 : 128);
}

function adminTokens() {
  return z.string().transform((text, ctx): AdminToken[] => {
    const tokens: AdminToken[] = [];
    for (const [index, pair] of text.split(",").entries()) {
      const match = /^\s*([A-Za-z0-9._@-]{1,64}):(\S{16,})\s*$/.exec(pair);
      if (!match?.[1] || !match[2]) {
        ctx.addIssue({
          code: "custom",
          message: `pair ${index + 1}: expected name:token, a name of letters, digits or ._@- and a token of at least 16 characters without spaces`,
        });
        return z.NEVER;
      }
      if (tokens.some((known) => known.name === match[1])) {
        ctx.addIssue({
          code: "custom",
          message: `pair ${index + 1}: the name ${match[1]} is used twice`,
        });
        return z.NEVER;
      }
      tokens.push({ name: match[1], token: match[2] });
    }
    return tokens;
  });
}

/** Each variable on its own; the checks across variables follow (crossChecks). */
const envFields = z.object({
  NODE_ENV: z.preprocess(
    emptyAsUnset,
    oneOf(["production", "development", "test"]).default("production"),
  ),
  LOG_LEVEL: z.preprocess(
    emptyAsUnset,
    oneOf(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  ),
  LOG_FORMAT: z.preprocess(emptyAsUnset, oneOf(["json", "pretty"]).optional()),
  REDIS_URL: redisUrls().default("redis://127.0.0.1:6379"),
  REDIS_WAIT_REPLICAS: wholeNumber(0, { min: 0, max: 10 }),
  REDIS_WAIT_TIMEOUT_MS: positiveInt(1000),
  // One-shot commands only: how long each Redis command may go unanswered (a frozen Redis).
  REDIS_COMMAND_TIMEOUT_MS: wholeNumber(10_000, {
    min: 100,
    max: 2_147_483_647,
    expected: "expected a whole number from 100 to 2147483647 (about 24.8 days, the longest timer)",
  }),
  REDIS_CLUSTER: z.preprocess(
    emptyAsUnset,
    z
      .enum(["true", "false"], { error: "expected true or false" })
      .default("false")
      .transform((text) => text === "true"),
  ),
  FOLLOW_UP_SHARDS: wholeNumber(1, {
    max: MAX_SHARDS,
    expected: `expected a whole number of shards, 1 to ${MAX_SHARDS}`,
  }),
  FOLLOW_UP_SHARDS_SERVED: z.preprocess(emptyAsUnset, z.string().max(4000).optional()),
  QUEUE_PREFIX: z.preprocess(
    emptyAsUnset,
    z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, {
        error: (issue) =>
          `expected letters, digits, _ or - (at most 64), got ${given(issue.input)}`,
      })
      .default("followups"),
  ),
  CONFIG_DIR: z.preprocess(emptyAsUnset, z.string().default("config")),
  OUTBOX_DIR: z.preprocess(emptyAsUnset, z.string().default("var/outbox")),
  WEBHOOK_SPOOL_DIR: z.preprocess(emptyAsUnset, z.string().default("var/spool/webhooks")),
  SMTP_URL: z.preprocess(emptyAsUnset, url("an SMTP", ["smtp:", "smtps:"]).optional()),
  SMTP_MAX_CONNECTIONS: positiveInt(3),
  SMTP_MESSAGES_PER_CONNECTION: positiveInt(1000),
  MAIL_FROM: z.preprocess(
    emptyAsUnset,
    z
      .string()
      .min(3, { error: 'expected a sender address such as "Shop" <hello@shop.example>' })
      .optional(),
  ),
  INBOUND_EMAIL_TOKEN: bearerToken(),
  INBOUND_EMAIL_MAX_BYTES: positiveInt(10 * 1024 * 1024),
  SUPPORT_EMAIL: z.preprocess(
    emptyAsUnset,
    z.email({ error: "expected an email address such as support@shop.example" }).optional(),
  ),
  REPLY_TO: z.preprocess(
    emptyAsUnset,
    z.email({ error: "expected an email address such as help@shop.example" }).optional(),
  ),
  TWILIO_ACCOUNT_SID: z.preprocess(
    emptyAsUnset,
    z
      .string()
      .regex(/^AC[0-9a-fA-F]{32}$/, {
        error: "expected an account SID: AC followed by 32 hex digits",
      })
      .optional(),
  ),
  TWILIO_AUTH_TOKEN: z.preprocess(
    emptyAsUnset,
    z.string().min(8, { error: "expected at least 8 characters" }).optional(),
  ),
  TWILIO_FROM: z.preprocess(
    emptyAsUnset,
    z
      .string()
      .regex(/^\+[1-9]\d{6,14}$/, { error: "expected an E.164 number such as +14155550123" })
      .optional(),
  ),
  TWILIO_MESSAGING_SERVICE_SID: z.preprocess(
    emptyAsUnset,
    z
      .string()
      .regex(/^MG[0-9a-fA-F]{32}$/, {
        error: "expected a messaging service SID: MG followed by 32 hex digits",
      })
      .optional(),
  ),
  TWILIO_CALLER_ID: z.preprocess(
    emptyAsUnset,
    z
      .string()
      .regex(/^\+[1-9]\d{6,14}$/, { error: "expected an E.164 number such as +14155550123" })
      .optional(),
  ),
  TWILIO_API_URL: z.preprocess(emptyAsUnset, url("an HTTP", ["http:", "https:"]).optional()),
  DISCOUNT_SECRET: z.preprocess(
    emptyAsUnset,
    z.string().min(16, { error: "expected at least 16 characters" }).optional(),
  ),
  ADDRESS_HASH_SECRET: z.preprocess(
    emptyAsUnset,
    z.string().min(16, { error: "expected at least 16 characters" }).optional(),
  ),
  INTAKE_CONCURRENCY: positiveInt(32),
  DELIVERY_CONCURRENCY: positiveInt(8),
  DELIVERY_ATTEMPTS: positiveInt(8),
  DELIVERY_RETRY_BASE_MS: positiveInt(30_000),
  DELIVERY_RETRY_MAX_MS: positiveInt(3_600_000),
  DELIVERY_LEASE_MS: wholeNumber(120_000, {
    min: 1_000,
    expected:
      "expected a whole number of at least 1000 (a second; a send still under way when it ends may be sent again)",
  }),
  // A lock of a few ms had BullMQ check for stalled jobs that often and fail a job after ten.
  JOB_LOCK_MS: wholeNumber(30_000, {
    min: 1_000,
    max: 2_147_483_647,
    expected:
      "expected a whole number from 1000 to 2147483647 (a second to about 24.8 days, the longest timer)",
  }),
  SHUTDOWN_TIMEOUT_MS: timerMs(15_000),
  RECORD_RETENTION_DAYS: wholeNumber(90, {
    max: 3650,
    expected: "expected a whole number from 1 to 3650 (ten years)",
  }),
  PROMOTE_HORIZON_MS: wholeNumber(300_000, {
    min: 60_000,
    expected: "expected a whole number of at least 60000 (one minute)",
  }),
  HTTP_ENABLED: z.preprocess(
    emptyAsUnset,
    z.enum(["true", "false"], { error: "expected true or false" }).default("true"),
  ),
  HTTP_HOST: z.preprocess(emptyAsUnset, z.string().default("0.0.0.0")),
  HTTP_PORT: wholeNumber(8080, { min: 0, max: 65_535 }),
  /**
   * The largest body of POST /v1/events. The largest event the contract admits is about 1.9 MB
   * as compact JSON (500 items with every text at its bound, each character written as a \u
   * escape, as Python's json.dumps writes any non-ASCII one; about 0.97 MB in raw UTF-8): 4 MiB
   * leaves room. The other routes read at most 64 KiB (http-server.ts).
   */
  HTTP_BODY_LIMIT: positiveInt(4 * 1024 * 1024),
  TRUST_PROXY: z.preprocess(emptyAsUnset, trustProxy().default(false)),
  API_TOKEN: bearerToken(),
  TILL_TOKEN: bearerToken(),
  ADMIN_TOKENS: z.preprocess(emptyAsUnset, adminTokens().optional()),
  PUBLIC_URL: z.preprocess(
    emptyAsUnset,
    url("an HTTP", ["http:", "https:"])
      .refine((text) => !/[?#]/.test(text), {
        error:
          "expected a base URL without a query string or fragment (? or #), such as https://followups.shop.example",
      })
      .refine((text) => linkBaseLength(text) <= MAX_PUBLIC_URL_LENGTH, {
        error: (issue) =>
          `expected at most ${MAX_PUBLIC_URL_LENGTH} characters (${linkBaseLength(String(issue.input))} given${linkBaseLength(String(issue.input)) === String(issue.input).replace(/\/+$/, "").length ? "" : ", written in ASCII as links carry it"}): an unsubscribe link built on it would make a List-Unsubscribe header line longer than the 998 characters RFC 5322 allows`,
      })
      .optional(),
  ),
  UNSUBSCRIBE_SECRET: z.preprocess(
    emptyAsUnset,
    z.string().min(16, { error: "expected at least 16 characters" }).optional(),
  ),
  UNSUBSCRIBE_MAILTO: z.preprocess(emptyAsUnset, unsubscribeMailto().optional()),
  SHOP_NAME: z.preprocess(emptyAsUnset, atMost(100).optional()),
  DKIM_DOMAIN: z.preprocess(emptyAsUnset, z.string().min(3).optional()),
  DKIM_SELECTOR: z.preprocess(emptyAsUnset, z.string().min(1).optional()),
  DKIM_PRIVATE_KEY: z.preprocess(
    emptyAsUnset,
    z.string().min(100, { error: "expected a PEM private key" }).optional(),
  ),
  // Traces are on when set (src/tracing.ts); the OTLP/HTTP base URL, as OpenTelemetry names it.
  OTEL_EXPORTER_OTLP_ENDPOINT: z.preprocess(
    emptyAsUnset,
    url("an HTTP", ["http:", "https:"]).optional(),
  ),
  OTEL_SERVICE_NAME: z.preprocess(emptyAsUnset, atMost(200).min(1).default("followups")),
});

/** What one variable's value means for another (a credential without its partner, …). */
function crossChecks(
  env: z.output<typeof envFields>,
  ctx: { issues: z.core.$ZodRawIssue[] },
): void {
  if (env.REDIS_URL.includes(",") && !env.REDIS_CLUSTER) {
    ctx.issues.push({
      code: "custom",
      path: ["REDIS_URL"],
      input: undefined,
      message: "several URLs are the seed nodes of a Redis Cluster: set REDIS_CLUSTER=true",
    });
  }
  // A cluster has database 0 only: a seed URL naming another would be used as database 0.
  if (env.REDIS_CLUSTER) {
    const named = env.REDIS_URL.split(",").find((part) => !/^\/?0?$/.test(pathOf(part)));
    if (named !== undefined) {
      ctx.issues.push({
        code: "custom",
        path: ["REDIS_URL"],
        input: undefined,
        message: `a Redis Cluster has database 0 only: remove the database number (${pathOf(named)}) from the URL`,
      });
    }
  }
  // cappedBackoff caps every wait at the longest: a first one above it would be cut to it, and
  // every retry would wait the longest, whatever DELIVERY_RETRY_BASE_MS said.
  if (env.DELIVERY_RETRY_BASE_MS > env.DELIVERY_RETRY_MAX_MS) {
    ctx.issues.push({
      code: "custom",
      path: ["DELIVERY_RETRY_BASE_MS"],
      input: undefined,
      message: `${env.DELIVERY_RETRY_BASE_MS} is above DELIVERY_RETRY_MAX_MS (${env.DELIVERY_RETRY_MAX_MS}), the longest wait between retries: lower DELIVERY_RETRY_BASE_MS or raise DELIVERY_RETRY_MAX_MS`,
    });
  }
  // Checked against the deployment's shard count when a worker starts (commands ignore it).
  const served = parseServedShards(
    env.FOLLOW_UP_SHARDS_SERVED,
    MAX_SHARDS,
    `a deployment has at most ${MAX_SHARDS} shards`,
  );
  if ("problem" in served) {
    ctx.issues.push({
      code: "custom",
      path: ["FOLLOW_UP_SHARDS_SERVED"],
      input: undefined,
      message: served.problem,
    });
  }
  if (env.SMTP_URL && !env.MAIL_FROM) {
    ctx.issues.push({
      code: "custom",
      path: ["MAIL_FROM"],
      input: undefined,
      message: "required when SMTP_URL is set",
    });
  }
  const twilio = [env.TWILIO_ACCOUNT_SID, env.TWILIO_AUTH_TOKEN];
  if (twilio.some(Boolean) && !twilio.every(Boolean)) {
    const missing = env.TWILIO_ACCOUNT_SID ? "TWILIO_AUTH_TOKEN" : "TWILIO_ACCOUNT_SID";
    ctx.issues.push({
      code: "custom",
      path: [missing],
      input: undefined,
      message: "required when the other Twilio credential is set",
    });
  }
  const dkim = [env.DKIM_DOMAIN, env.DKIM_SELECTOR, env.DKIM_PRIVATE_KEY];
  if (dkim.some(Boolean) && !dkim.every(Boolean)) {
    ctx.issues.push({
      code: "custom",
      path: [
        env.DKIM_DOMAIN
          ? env.DKIM_SELECTOR
            ? "DKIM_PRIVATE_KEY"
            : "DKIM_SELECTOR"
          : "DKIM_DOMAIN",
      ],
      input: undefined,
      message: "DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY go together",
    });
  }
  if (env.UNSUBSCRIBE_SECRET && !env.PUBLIC_URL) {
    ctx.issues.push({
      code: "custom",
      path: ["PUBLIC_URL"],
      input: undefined,
      message: "required for unsubscribe links (UNSUBSCRIBE_SECRET is set)",
    });
  }
  if (env.TWILIO_ACCOUNT_SID && !env.TWILIO_FROM && !env.TWILIO_MESSAGING_SERVICE_SID) {
    ctx.issues.push({
      code: "custom",
      path: ["TWILIO_FROM"],
      input: undefined,
      message: "set TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID when Twilio credentials are set",
    });
  }
}

export const envSchema = envFields.check((ctx) => crossChecks(ctx.value, ctx));

export type Env = z.output<typeof envSchema>;

/** Every variable the schema accepts, in schema order: the README's configuration table lists exactly these. */
export const ENV_VARIABLES = Object.keys(envSchema.shape) as readonly (keyof Env)[];

/**
 * Variables never logged or echoed back in error messages: every credential, signing key and URL
 * that may carry a password (redis://:pw@host, smtp://user:pw@host). The logger redacts them by
 * name; the start-up line lists which are set, never their values.
 */
export const SECRET_ENV_VARS = [
  "REDIS_URL",
  "SMTP_URL",
  "TWILIO_AUTH_TOKEN",
  "DISCOUNT_SECRET",
  "ADDRESS_HASH_SECRET",
  "API_TOKEN",
  "TILL_TOKEN",
  "ADMIN_TOKENS",
  "INBOUND_EMAIL_TOKEN",
  "UNSUBSCRIBE_SECRET",
  "DKIM_PRIVATE_KEY",
] as const satisfies readonly (keyof Env)[];

export type EnvResult = { ok: true; env: Env } | { ok: false; problems: string[] };

/** Validates the environment; problems name the variable and what is expected, never a secret's value. */
export function readEnv(source: NodeJS.ProcessEnv): EnvResult {
  const result = envSchema.safeParse(source);
  if (result.success) return { ok: true, env: result.data };
  const problems = result.error.issues.map(
    (issue) => `${formatPath(issue.path)}: ${issue.message}`,
  );
  // zod checks across variables only once every variable is valid: check them again with the
  // invalid ones left unset, so that one start lists every problem, not one round at a time.
  const repaired: NodeJS.ProcessEnv = { ...source };
  const invalid = new Set<PropertyKey>();
  for (const issue of result.error.issues) {
    const name = issue.path[0];
    if (typeof name !== "string") continue;
    invalid.add(name);
    delete repaired[name];
  }
  const fields = envFields.safeParse(repaired);
  if (fields.success) {
    const ctx = { issues: [] as z.core.$ZodRawIssue[] };
    crossChecks(fields.data, ctx);
    for (const issue of ctx.issues) {
      // A variable already named as invalid is not named again as missing.
      if (invalid.has(issue.path?.[0] ?? "")) continue;
      const problem = `${formatPath(issue.path ?? [])}: ${issue.message}`;
      if (!problems.includes(problem)) problems.push(problem);
    }
  }
  return { ok: false, problems };
}
