import { domainToASCII } from "node:url";
import { parsePhoneNumberFromString } from "libphonenumber-js/max";
import { DateTime, IANAZone } from "luxon";
import { z } from "zod";
import { writesCharacterAsSeveral } from "./cut-text.js";
import { isCurrencyCode, type Money, toMinorUnits } from "./money.js";
import { remembered } from "./remembered.js";
import { formatPath, shownPath } from "./shown-path.js";

// Kept importable from here, where they were first written.
export { formatPath, shownPath };

import { UNPAIRED_SURROGATE } from "./unsafe-text.js";

/**
 * Event contract v1: what publishers put on the `purchase-events` queue or POST to /v1/events.
 * These schemas are the single source: TypeScript types and the JSON Schema files are derived.
 * Unknown extra fields are accepted and dropped, so publishers can add fields before we read them.
 */

/**
 * A text of 1 to `max` characters, stored trimmed. The bound counts the white space around it, so
 * a trailing newline or a few spaces around a shorter value pass, and a megabyte of them does not
 * (nor does it cost a trim: the length is checked first, and nothing after it once over).
 */
const boundedText = (max: number, what: string) =>
  z
    .string({ error: `expected ${what} (a string)` })
    .max(max, { error: (issue) => tooLong(what, max, issue.input), abort: true })
    .trim()
    .min(1, { error: `expected ${what}, got an empty string` });

/** The refusal of a text over `max` characters, naming the white space around it if that is why. */
function tooLong(what: string, max: number, input: unknown): string {
  const text = String(input);
  // Counted as the bound counts (contractLength); white space is one unit a character.
  const trimmed = text.trim();
  const kept = contractLength(trimmed);
  const around = text.length - trimmed.length;
  return around > 0 && kept <= max
    ? `expected ${what} of at most ${max} characters, counting the white space around it; got ${kept} and ${around} of white space`
    : `expected ${what} of at most ${max} characters`;
}

/** The longest id an event carries (event, order, customer, store ids and SKUs). */
export const MAX_ID_LENGTH = 200;
/**
 * A text's length as the contract's bounds count it (zod's `max`, as JSON Schema's `maxLength`):
 * in characters (code points), an emoji one, not the two UTF-16 units of `length`. An id of 200
 * emoji is within MAX_ID_LENGTH: 400 UTF-16 units, 800 UTF-8 bytes.
 */
export function contractLength(text: string): number {
  let surrogatePairs = 0;
  for (let i = 0; i < text.length - 1; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        surrogatePairs++;
        i++;
      }
    }
  }
  return text.length - surrogatePairs;
}
const id = (what: string) => boundedText(MAX_ID_LENGTH, what);
/** An item's quantity: at least one, at most 100,000 of it in one order. */
const QUANTITY = "expected a whole number of items from 1 to 100000";

/**
 * A value of the wrong type, said with what was given when it is text (other types keep the
 * bare expectation): a number or true/false written in quotes is named so, as JSON tools and
 * spreadsheets write them, where "expected a whole number" alone reads as if "2" were not one.
 */
function wrongType(expected: string, meant: (text: string) => boolean, fix: string) {
  return (issue: { input?: unknown }) => {
    if (typeof issue.input !== "string") return expected;
    return meant(issue.input)
      ? `${expected}, got the text ${quoted(issue.input)}: ${fix}`
      : `${expected}, got ${quoted(issue.input)}`;
  };
}

const quantityType = wrongType(
  QUANTITY,
  (text) => /^\s*\d+\s*$/.test(text),
  "write the number without quotes",
);
const booleanType = wrongType(
  "expected true or false",
  (text) => text === "true" || text === "false",
  "write it without quotes",
);

/** Digits of a second's fraction an instant may have: nanoseconds, as RFC 3339 producers write. */
export const MAX_FRACTION_DIGITS = 9;
const INSTANT_EXPECTED =
  "expected an ISO-8601 date-time with an offset, such as 2026-11-23T14:05:00+01:00 or …Z";

/** An RFC 3339 date-time with an offset (zod's calendar date), `fraction` the digits' quantifier. */
const dateTimeWithOffset = (fraction: string) =>
  new RegExp(
    `^${z.regexes.date.source.slice(1, -1)}T(?:[01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(?:\\.\\d${fraction})?(?:Z|[+-](?:[01]\\d|2[0-3]):[0-5]\\d)$`,
  );
const WITH_ANY_FRACTION = dateTimeWithOffset("+");

const instant = z.stringFormat("date-time", dateTimeWithOffset(`{1,${MAX_FRACTION_DIGITS}}`), {
  // Nothing more is said of a malformed instant (not also that it is before 2000).
  abort: true,
  error: (issue) => {
    const text = issue.input;
    if (typeof text !== "string" || !WITH_ANY_FRACTION.test(text)) return INSTANT_EXPECTED;
    const digits = /\.(\d+)/.exec(text)?.[1]?.length;
    return `expected an ISO-8601 date-time with at most ${MAX_FRACTION_DIGITS} digits after the decimal point of the seconds (nanoseconds), got ${digits}`;
  },
});

/** No event happened before this: an earlier occurredAt is a publisher's bug (a zero date, 1970). */
const EARLIEST_OCCURRED_AT = DateTime.fromISO("2000-01-01T00:00:00Z", { zone: "utc" });
const EARLIEST_OCCURRED_MS = EARLIEST_OCCURRED_AT.toMillis();

/**
 * Epoch ms of an instant the schema accepts (ISO-8601 with an offset; NaN for anything else).
 * Date.parse reads exactly those strings as luxon does (a unit test compares them), at a
 * fraction of the cost: intake reads every event's occurredAt twice.
 */
export function instantMillis(text: string): number {
  return Date.parse(text);
}

/** How far after the receiver's clock an occurredAt may be: publishers' clocks drift. */
const OCCURRED_AT_TOLERANCE_MS = 24 * 3600 * 1000;

/** What `occurredAt` means, per event type, for the messages that refuse it. */
const HAPPENED = new Map<string, string>([
  ["purchase.completed", "the time the purchase happened"],
  ["purchase.refunded", "the time the refund happened"],
  ["customer.unsubscribed", "the time the customer unsubscribed"],
  ["customer.erased", "the time the customer asked for erasure"],
]);

/** `instant` that is not before 2000; the future bound needs a clock, so parseEvent applies it. */
const occurredAtFor = (type: EventType) =>
  instant.refine(
    (text) => {
      const at = instantMillis(text);
      return Number.isNaN(at) || at >= EARLIEST_OCCURRED_MS;
    },
    {
      error: (issue) =>
        `${String(issue.input)} is before ${EARLIEST_OCCURRED_AT.toISO({ suppressMilliseconds: true })}; expected ${HAPPENED.get(type)}`,
    },
  );

const isKnownZone = remembered((zone) => IANAZone.isValidZone(zone));

const isLocale = remembered((value) => {
  try {
    return Intl.getCanonicalLocales(value).length === 1;
  } catch {
    return false;
  }
});

const timeZone = z
  .string({ error: "expected an IANA time zone name such as Europe/Berlin" })
  // One problem for an over-long name, not also "not a time zone" for the same value.
  .max(64, { error: "expected an IANA time zone name of at most 64 characters", abort: true })
  .refine(isKnownZone, {
    error: (issue) =>
      `expected an IANA time zone name such as Europe/Berlin, got ${JSON.stringify(issue.input)}`,
  });

const locale = z
  .string({ error: "expected a BCP 47 locale such as en or de-AT" })
  // One problem for an over-long locale, as for a time zone.
  .max(35, { error: "expected a BCP 47 locale of at most 35 characters", abort: true })
  .refine(isLocale, {
    error: (issue) =>
      `expected a BCP 47 locale such as en or de-AT, got ${JSON.stringify(issue.input)}`,
  });

/** A phone number in E.164 (`+442079460958`) as events store it, or undefined when not valid. */
export function normalizePhone(raw: string): string | undefined {
  const parsed = parsePhoneNumberFromString(raw.trim());
  return parsed?.isValid() ? parsed.number : undefined;
}

/**
 * A number written without its country code, as a publisher may have sent it ("07911 123456"),
 * read in the country of `known` (E.164): in E.164 when it is a valid number there. Whether a
 * refused event names a known number (erasure): the same digits mean another number elsewhere.
 */
export function phoneInCountryOf(raw: string, known: string): string | undefined {
  const country = parsePhoneNumberFromString(known)?.country;
  if (country === undefined) return undefined;
  const parsed = parsePhoneNumberFromString(raw.trim(), country);
  return parsed?.isValid() ? parsed.number : undefined;
}

const phone = z
  .string({ error: "expected a phone number in international format, such as +14155550123" })
  // Counting the white space around it, as for a text: the number is read trimmed.
  .max(40, { error: (issue) => tooLong("a phone number", 40, issue.input), abort: true })
  .transform((raw, ctx) => {
    const parsed = parsePhoneNumberFromString(raw.trim());
    if (!parsed?.isValid()) {
      ctx.addIssue({
        code: "custom",
        message: `expected a valid phone number in international format, such as +14155550123, got ${JSON.stringify(raw)}`,
        input: raw,
      });
      return z.NEVER;
    }
    return parsed.number;
  });

/** A refusal's quote of what it was given: the value, or only its length when that is long. */
function quoted(input: unknown): string {
  const text = String(input);
  return text.length <= 40 ? JSON.stringify(text) : `${text.length} characters`;
}

const currencyProblem = (issue: { input?: unknown }) =>
  `expected an ISO 4217 currency code such as EUR or USD, got ${quoted(issue.input)}`;

const currency = z
  .string({ error: "expected an ISO 4217 currency code such as EUR" })
  // Three letters: a longer value is refused without being read further, and not quoted whole.
  .max(3, { error: currencyProblem, abort: true })
  .refine(isCurrencyCode, { error: currencyProblem });

const decimalAmount = z.union(
  [z.number(), z.string().max(32, { error: "expected a decimal amount of at most 32 characters" })],
  { error: "expected a non-negative decimal amount such as 19.99 (a number or a decimal string)" },
);

/** Channels a customer can be reached on; also what `customer.unsubscribed` names. */
export const CHANNELS = ["email", "sms", "voice"] as const;
/**
 * The channels that reach a phone number: an opt-out by text or keypad stops both (the FCC's 2024
 * revocation rule: revoking by any reasonable means covers calls and texts alike).
 */
export const PHONE_CHANNELS: readonly ("sms" | "voice")[] = ["sms", "voice"];
export type Channel = (typeof CHANNELS)[number];

const EMAIL = "expected an email address such as ana@example.com";
/**
 * An address as checkouts take it: a local part of the characters RFC 5322 allows unquoted (as
 * browsers' email inputs do: `ana&bob@`, `orders=ana@`), dots only between them; a domain with a
 * dot, whose top level is letters or an internationalised one in its ASCII form (`.xn--p1ai`,
 * .рф). zod's own pattern refused both, and so the whole purchase.
 */
const EMAIL_ADDRESS =
  /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[A-Za-z0-9][A-Za-z0-9-]*\.)+(?:[A-Za-z]{2,}|xn--[A-Za-z0-9-]*[A-Za-z0-9])$/;

/**
 * An email address an operator types, in the form events carry it (an internationalised domain in
 * its ASCII form: `ana@bücher.de` is `ana@xn--bcher-kva.de`), or undefined when no event could carry
 * it (`<ana@example.com>`): an opt-out of it would cover no one.
 */
export function eventEmailAddress(raw: string): string | undefined {
  const trimmed = raw.trim();
  const at = trimmed.lastIndexOf("@");
  if (at < 1) return undefined;
  const typed = trimmed.slice(at + 1);
  // Only a domain with other than ASCII in it: an ASCII one is taken as events take it.
  const domain = /^[\x21-\x7e]*$/.test(typed) ? typed : domainToASCII(typed);
  const address = `${trimmed.slice(0, at)}@${domain}`;
  return domain !== "" && address.length <= 254 && EMAIL_ADDRESS.test(address)
    ? address
    : undefined;
}

const customer = z.object(
  {
    id: id("a customer id"),
    name: boundedText(200, "the customer's name").optional(),
    // The length first: an over-long address is one problem, and not read for its form.
    email: z
      .string({ error: EMAIL })
      .max(254, { error: "expected an email address of at most 254 characters", abort: true })
      .check(z.email({ pattern: EMAIL_ADDRESS, error: EMAIL }))
      .optional(),
    phone: phone.optional(),
    timezone: timeZone.optional(),
    locale: locale.optional(),
    consent: z
      .object(
        {
          email: z.boolean({ error: booleanType }).optional(),
          sms: z.boolean({ error: booleanType }).optional(),
          voice: z.boolean({ error: booleanType }).optional(),
        },
        { error: 'expected consent as an object such as {"email": true}' },
      )
      .optional(),
  },
  { error: 'expected the customer, an object such as {"id": "cus-1", "email": "ana@example.com"}' },
);

const item = z.object(
  {
    sku: id("a SKU"),
    name: boundedText(300, "an item name"),
    category: boundedText(100, "a category name"),
    quantity: z
      .number({ error: quantityType })
      .int({ error: QUANTITY })
      .min(1, { error: QUANTITY })
      .max(100_000, { error: QUANTITY }),
    unitPrice: decimalAmount,
  },
  { error: "expected an item, an object with sku, name, category, quantity and unitPrice" },
);

const store = z.object(
  {
    id: id("a store id"),
    name: boundedText(200, "a store name").optional(),
    timezone: timeZone.optional(),
  },
  { error: 'expected the store, an object such as {"id": "store-1", "timezone": "Europe/London"}' },
);

/** An amount of money as events carry it; `what` names it in the refusal of another shape. */
const moneyOf = (what: string, orElse = "") =>
  z.object(
    { amount: decimalAmount, currency },
    {
      error: `expected ${what}, an object such as {"amount": "19.99", "currency": "EUR"}${orElse}`,
    },
  );

const DISCOUNT_CODE = "expected a discount code of 1 to 64 characters";

/** `purchase.completed` as publishers send it (before money is converted to minor units). */
const purchaseCompletedInputSchema = z.object({
  type: z.literal("purchase.completed"),
  id: id("a unique event id"),
  occurredAt: occurredAtFor("purchase.completed"),
  orderId: id("an order id"),
  customer,
  items: z
    .array(item, { error: "expected a list of items" })
    .min(1, { error: "expected at least one item" })
    .max(500, { error: "expected at most 500 items" }),
  total: moneyOf("the total"),
  store: store.optional(),
  /**
   * Discount codes used on this order: each valid one is redeemed by it. Any text: the order may
   * carry codes of the shop's other campaigns (`SUMMER_SALE`, `10%OFF`), which redeem nothing
   * here and must not make the purchase invalid. Taken as written (looked up normalised).
   */
  discountCodes: z
    .array(
      z
        .string({ error: "expected a discount code" })
        .min(1, { error: DISCOUNT_CODE, abort: true })
        .max(64, { error: DISCOUNT_CODE, abort: true })
        .refine((code) => code.trim() !== "", { error: DISCOUNT_CODE }),
      { error: "expected a list of discount codes" },
    )
    .max(20, { error: "expected at most 20 discount codes" })
    .optional(),
});

/** `purchase.completed`, validated, with money in minor units and categories in lower case. */
export const purchaseCompletedSchema = purchaseCompletedInputSchema
  .superRefine(
    (event, ctx) => {
      const { total, items } = event as { total?: unknown; items?: unknown };
      const code = (total as { currency?: unknown } | undefined)?.currency;
      checkAmount(
        (total as { amount?: unknown } | undefined)?.amount,
        code,
        ["total", "amount"],
        ctx,
      );
      // At most the 500 items the contract admits: a longer list is refused as too long anyway.
      if (Array.isArray(items))
        items.slice(0, 500).forEach((entry: { unitPrice?: unknown } | undefined, index) => {
          checkAmount(entry?.unitPrice, code, ["items", index, "unitPrice"], ctx);
        });
    },
    { when: () => true },
  )
  .transform((event, ctx) => {
    const code = event.total.currency;
    const total = readMoney(event.total.amount, code, ["total", "amount"], ctx);
    const items = event.items.map((entry, index) => ({
      ...entry,
      category: entry.category.toLowerCase(),
      unitPrice: readMoney(entry.unitPrice, code, ["items", index, "unitPrice"], ctx),
    }));
    return { ...event, total, items };
  });

/**
 * An amount checked against its currency's minor unit whatever else is wrong with the event (the
 * transforms that read money run only once everything else is valid), so that one refusal lists
 * every problem. An amount or currency of the wrong type is the schema's problem, not looked at.
 */
function checkAmount(
  amount: unknown,
  code: unknown,
  path: (string | number)[],
  ctx: z.RefinementCtx,
): void {
  if (typeof code !== "string" || !isCurrencyCode(code)) return;
  if (typeof amount !== "number" && (typeof amount !== "string" || amount.length > 32)) return;
  const result = toMinorUnits(amount, code);
  if (!result.ok) ctx.addIssue({ code: "custom", message: result.problem, path, input: amount });
}

function readMoney(
  amount: number | string,
  code: string,
  path: (string | number)[],
  ctx: z.RefinementCtx,
): Money {
  const result = toMinorUnits(amount, code);
  if (!result.ok) {
    ctx.addIssue({ code: "custom", message: result.problem, path, input: amount });
    return { minor: 0, currency: code };
  }
  return { minor: result.minor, currency: code };
}

/** `purchase.refunded` as publishers send it: a full refund when `amount` is absent. */
const purchaseRefundedInputSchema = z.object({
  type: z.literal("purchase.refunded"),
  id: id("a unique event id"),
  occurredAt: occurredAtFor("purchase.refunded"),
  orderId: id("an order id"),
  amount: moneyOf("the amount refunded", ", or leave it out for the whole order").optional(),
  /** Items handed back: their steps are re-planned as if they had never been bought. */
  items: z
    .array(
      z.object(
        {
          sku: id("a SKU"),
          quantity: z
            .number({ error: quantityType })
            .int({ error: QUANTITY })
            .min(1, { error: QUANTITY })
            .max(100_000, { error: QUANTITY }),
        },
        {
          error:
            'expected an item handed back, an object such as {"sku": "TV-OLED-55", "quantity": 1}',
        },
      ),
      { error: "expected a list of items handed back, each {sku, quantity}" },
    )
    .min(1, { error: "expected at least one item, or leave items out" })
    .max(500, { error: "expected at most 500 items" })
    .optional(),
});

/** `purchase.refunded`, validated, with the amount in minor units. */
export const purchaseRefundedSchema = purchaseRefundedInputSchema
  .superRefine(
    (event, ctx) => {
      const { amount } = event as { amount?: { amount?: unknown; currency?: unknown } };
      checkAmount(amount?.amount, amount?.currency, ["amount", "amount"], ctx);
    },
    { when: () => true },
  )
  .transform((event, ctx) => ({
    ...event,
    amount:
      event.amount &&
      readMoney(event.amount.amount, event.amount.currency, ["amount", "amount"], ctx),
  }));

/** How many entries an unsubscribe's list of channels may have, repeats included. */
const MAX_UNSUBSCRIBE_CHANNELS = 12;

/** `customer.unsubscribed`: the customer opts out of some channels, or of all of them. */
export const customerUnsubscribedSchema = z.object({
  type: z.literal("customer.unsubscribed"),
  id: id("a unique event id"),
  occurredAt: occurredAtFor("customer.unsubscribed"),
  customerId: id("a customer id"),
  channels: z.union(
    [
      z.literal("all"),
      z
        .array(z.enum(CHANNELS, { error: "expected email, sms or voice" }))
        .min(1, { error: "expected at least one channel: email, sms or voice" })
        // A channel named twice is still the customer's wish (a form's checkboxes sent twice):
        // the bound only keeps the list small.
        .max(MAX_UNSUBSCRIBE_CHANNELS, {
          error: `expected at most ${MAX_UNSUBSCRIBE_CHANNELS} channels: email, sms or voice`,
        }),
    ],
    { error: 'expected "all" or a list of one or more of email, sms and voice' },
  ),
  /** What the opt-out covers: absent = every follow-up; ["marketing"] = offers only. */
  purposes: z
    .array(z.literal("marketing", { error: 'expected "marketing"' }), {
      error: 'expected a list of purposes: ["marketing"]',
    })
    .min(1, { error: 'expected ["marketing"], or leave purposes out to stop everything' })
    .max(1)
    .optional(),
});

/** `customer.erased`: the customer asked for their data to be erased (right to erasure). */
export const customerErasedSchema = z.object({
  type: z.literal("customer.erased"),
  id: id("a unique event id"),
  occurredAt: occurredAtFor("customer.erased"),
  customerId: id("a customer id"),
});

/** Every event of contract v1, told apart by `type`. */
export const eventSchema = z.discriminatedUnion(
  "type",
  [
    purchaseCompletedSchema,
    purchaseRefundedSchema,
    customerUnsubscribedSchema,
    customerErasedSchema,
  ],
  {
    error:
      "expected type to be purchase.completed, purchase.refunded, customer.unsubscribed or customer.erased",
  },
);

/**
 * Contract v1 as publishers write it, without the conversions: what is enqueued, so the queue
 * holds exactly the contract (unknown keys dropped) and the worker converts it once.
 */
const eventInputSchema = z.discriminatedUnion("type", [
  purchaseCompletedInputSchema,
  purchaseRefundedInputSchema,
  customerUnsubscribedSchema,
  customerErasedSchema,
]);

export const EVENT_TYPES = [
  "purchase.completed",
  "purchase.refunded",
  "customer.unsubscribed",
  "customer.erased",
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export type PurchaseCompleted = z.output<typeof purchaseCompletedSchema>;
export type PurchaseCompletedInput = z.input<typeof purchaseCompletedSchema>;
export type PurchaseRefunded = z.output<typeof purchaseRefundedSchema>;
export type CustomerUnsubscribed = z.output<typeof customerUnsubscribedSchema>;
export type CustomerErased = z.output<typeof customerErasedSchema>;
export type FollowUpEvent = z.output<typeof eventSchema>;
export type FollowUpEventInput = z.input<typeof eventSchema>;

/** One validation problem, written for the publisher who has to fix it. */
export interface EventProblem {
  /** Dotted path into the event, e.g. `items[0].unitPrice`; empty for the event itself. */
  readonly path: string;
  readonly message: string;
}

export type EventParseResult =
  | { ok: true; event: FollowUpEvent }
  | { ok: false; problems: EventProblem[] };

export interface ParseEventOptions {
  /** The receiver's clock: when given, an occurredAt more than a day after it is refused. */
  readonly now?: DateTime;
}

/**
 * Validates one event; every problem is reported at once, each with its path. An occurredAt
 * before 2000, or (given `now`) more than a day after `now`, is refused: it would be stored with
 * a lifetime of decades.
 */
export function parseEvent(input: unknown, options: ParseEventOptions = {}): EventParseResult {
  if (input === null || typeof input !== "object" || Array.isArray(input))
    return {
      ok: false,
      problems: [
        {
          path: "",
          message: `expected one event, a JSON object with a type; got ${Array.isArray(input) ? "a list (send events one at a time)" : input === null ? "null" : `a ${typeof input}`}`,
        },
      ],
    };
  const result = eventSchema.safeParse(input);
  // Each problem once: zod reports some twice (a list given as a string, for one).
  const problems = result.success
    ? []
    : [
        ...new Map(
          result.error.issues.map(toProblem).map((p) => [`${p.path}\n${p.message}`, p]),
        ).values(),
      ];
  const unpaired = result.success ? unpairedSurrogate(input) : undefined;
  if (unpaired) problems.push(unpaired);
  const future = options.now && futureProblem(input, options.now);
  if (future && !problems.some((p) => p.path === "occurredAt")) problems.push(future);
  if (result.success && problems.length === 0) return { ok: true, event: result.data };
  return { ok: false, problems };
}

/**
 * The first text of the event (a value or a key, at any depth) holding an unpaired surrogate.
 * Such an event could not be taken in: intake's Redis scripts refuse its JSON, on every attempt.
 * Walked without recursion (a body can nest deeper than the stack).
 */
function unpairedSurrogate(input: unknown): EventProblem | undefined {
  // Each value with the step that led to it: the path is spelt out only for a problem found.
  type Step = { readonly key: PropertyKey; readonly parent: Step | undefined } | undefined;
  const pathOf = (step: Step, key?: PropertyKey) => {
    const path: PropertyKey[] = key === undefined ? [] : [key];
    for (let at = step; at; at = at.parent) path.push(at.key);
    return path.reverse();
  };
  const stack: [value: unknown, step: Step][] = [[input, undefined]];
  for (let next = stack.pop(); next; next = stack.pop()) {
    const [value, step] = next;
    if (typeof value === "string") {
      if (UNPAIRED_SURROGATE.test(value)) return halfCharacter(value, pathOf(step), "the text");
    } else if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push([value[i], { key: i, parent: step }]);
    } else if (value !== null && typeof value === "object") {
      for (const [key, inner] of Object.entries(value).reverse()) {
        if (UNPAIRED_SURROGATE.test(key)) return halfCharacter(key, pathOf(step, key), "the key");
        stack.push([inner, { key, parent: step }]);
      }
    }
  }
  return undefined;
}

/**
 * The problem of a text (`what`, at `path`) with an unpaired surrogate. Its position counts
 * characters (code points, as a user counts them, an emoji one), not UTF-16 units; where the text
 * before it holds characters written as more than one code point (a letter and its accent apart,
 * an emoji with a skin tone), the message says how it counted.
 */
function halfCharacter(text: string, path: PropertyKey[], what: string): EventProblem {
  const index = text.search(UNPAIRED_SURROGATE);
  const before = text.slice(0, index);
  // UTF-16 units less one per surrogate pair (the text before holds no half one).
  let codePoints = index;
  for (let at = 0; at < index; at++) {
    const unit = text.charCodeAt(at);
    if (unit >= 0xd800 && unit <= 0xdbff) codePoints--;
  }
  const counted = writesCharacterAsSeveral(before)
    ? " (counting each accent and each part of an emoji sequence as one)"
    : "";
  const written = (half: string) => `\\u${half.charCodeAt(0).toString(16)}`;
  return {
    path: shownPath(path).replace(new RegExp(UNPAIRED_SURROGATE, "g"), written),
    message: `${what} holds half a character at character ${codePoints + 1}${counted} (an unpaired UTF-16 surrogate, ${written(text.charAt(index))}), which UTF-8 cannot hold: send the character whole, or leave it out`,
  };
}

/**
 * The future bound, outside the schema because it depends on `now` (a schema cannot take it, and
 * one built per call makes every parse half as slow again). Reads the raw input, so it is
 * reported together with the schema's problems.
 */
function futureProblem(input: unknown, now: DateTime): EventProblem | undefined {
  if (!input || typeof input !== "object") return undefined;
  const { type, occurredAt } = input as { type?: unknown; occurredAt?: unknown };
  if (typeof occurredAt !== "string" || !instant.safeParse(occurredAt).success) return undefined;
  const at = instantMillis(occurredAt);
  if (Number.isNaN(at) || at - now.toMillis() <= OCCURRED_AT_TOLERANCE_MS) return undefined;
  const happened = HAPPENED.get(String(type)) ?? "the time the event happened";
  return {
    path: "occurredAt",
    message: `${occurredAt} is more than a day after now (${now.toISO({ suppressMilliseconds: true })}); expected ${happened}`,
  };
}

/**
 * A valid event as contract-v1 input with every key the contract does not know dropped (at any
 * depth): what publishers put on the queue. Undefined for input that is not a valid event.
 */
export function contractInput(input: unknown): FollowUpEventInput | undefined {
  const result = eventInputSchema.safeParse(input);
  return result.success ? (result.data as FollowUpEventInput) : undefined;
}

function toProblem(issue: z.core.$ZodIssue): EventProblem {
  return { path: formatPath(issue.path), message: issue.message };
}

/** One line per problem, e.g. `items[0].unitPrice: EUR has 2 decimal places, got 1.999`. */
export function describeProblems(problems: readonly EventProblem[]): string {
  return problems.map((p) => `${p.path || "(event)"}: ${p.message}`).join("\n");
}

/** The customer an event is about, whose shard holds its id (a refund names none). */
export function customerOfEvent(event: FollowUpEvent): string | undefined {
  switch (event.type) {
    case "purchase.completed":
      return event.customer.id;
    case "customer.unsubscribed":
    case "customer.erased":
      return event.customerId;
    case "purchase.refunded":
      return undefined;
  }
}
