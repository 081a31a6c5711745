import { parsePhoneNumberFromString } from "libphonenumber-js/max";
import { IANAZone } from "luxon";
import { z } from "zod";
import { isCurrencyCode, type Money, toMinorUnits } from "./money.js";
import { remembered } from "./remembered.js";

/**
 * Event contract v1: what publishers put on the `purchase-events` queue or POST to /v1/events.
 * These schemas are the single source: TypeScript types and the JSON Schema files are derived.
 * Unknown extra fields are accepted and dropped, so publishers can add fields before we read them.
 */

const boundedText = (max: number, what: string) =>
  z
    .string({ error: `expected ${what} (a string)` })
    .trim()
    .min(1, { error: `expected ${what}, got an empty string` })
    .max(max, { error: `expected ${what} of at most ${max} characters` });

const id = (what: string) => boundedText(200, what);

const instant = z.iso.datetime({
  offset: true,
  error: "expected an ISO-8601 date-time with an offset, such as 2026-11-23T14:05:00+01:00 or …Z",
});

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
  .max(64)
  .refine(isKnownZone, {
    error: (issue) =>
      `expected an IANA time zone name such as Europe/Berlin, got ${JSON.stringify(issue.input)}`,
  });

const locale = z
  .string({ error: "expected a BCP 47 locale such as en or de-AT" })
  .max(35)
  .refine(isLocale, {
    error: (issue) =>
      `expected a BCP 47 locale such as en or de-AT, got ${JSON.stringify(issue.input)}`,
  });

const phone = z
  .string({ error: "expected a phone number in international format, such as +14155550123" })
  .max(40)
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

const currency = z
  .string({ error: "expected an ISO 4217 currency code such as EUR" })
  .refine(isCurrencyCode, {
    error: (issue) =>
      `expected an ISO 4217 currency code such as EUR or USD, got ${JSON.stringify(issue.input)}`,
  });

const decimalAmount = z.union([z.number(), z.string().max(32)], {
  error: "expected a non-negative decimal amount such as 19.99 (a number or a decimal string)",
});

/** Channels a customer can be reached on; also what `customer.unsubscribed` names. */
export const CHANNELS = ["email", "sms", "voice"] as const;
export type Channel = (typeof CHANNELS)[number];

const customer = z.object({
  id: id("a customer id"),
  name: boundedText(200, "the customer's name").optional(),
  email: z
    .email({ error: "expected an email address such as ana@example.com" })
    .max(254)
    .optional(),
  phone: phone.optional(),
  timezone: timeZone.optional(),
  locale: locale.optional(),
  consent: z
    .object({
      email: z.boolean({ error: "expected true or false" }).optional(),
      sms: z.boolean({ error: "expected true or false" }).optional(),
      voice: z.boolean({ error: "expected true or false" }).optional(),
    })
    .optional(),
});

const item = z.object({
  sku: id("a SKU"),
  name: boundedText(300, "an item name"),
  category: boundedText(100, "a category name"),
  quantity: z
    .number({ error: "expected a whole number of items" })
    .int({ error: "expected a whole number of items" })
    .min(1)
    .max(100_000),
  unitPrice: decimalAmount,
});

const store = z.object({
  id: id("a store id"),
  name: boundedText(200, "a store name").optional(),
  timezone: timeZone.optional(),
});

/** `purchase.completed` as publishers send it (before money is converted to minor units). */
export const purchaseCompletedSchema = z
  .object({
    type: z.literal("purchase.completed"),
    id: id("a unique event id"),
    occurredAt: instant,
    orderId: id("an order id"),
    customer,
    items: z
      .array(item, { error: "expected a list of items" })
      .min(1, { error: "expected at least one item" })
      .max(500, { error: "expected at most 500 items" }),
    total: z.object({ amount: decimalAmount, currency }),
    store: store.optional(),
  })
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

/** `purchase.refunded`: a full refund when `amount` is absent, otherwise a partial one. */
export const purchaseRefundedSchema = z
  .object({
    type: z.literal("purchase.refunded"),
    id: id("a unique event id"),
    occurredAt: instant,
    orderId: id("an order id"),
    amount: z.object({ amount: decimalAmount, currency }).optional(),
  })
  .transform((event, ctx) => ({
    ...event,
    amount:
      event.amount &&
      readMoney(event.amount.amount, event.amount.currency, ["amount", "amount"], ctx),
  }));

/** `customer.unsubscribed`: the customer opts out of some channels, or of all of them. */
export const customerUnsubscribedSchema = z.object({
  type: z.literal("customer.unsubscribed"),
  id: id("a unique event id"),
  occurredAt: instant,
  customerId: id("a customer id"),
  channels: z.union(
    [
      z.literal("all"),
      z
        .array(z.enum(CHANNELS, { error: "expected email, sms or voice" }))
        .min(1, { error: "expected at least one channel: email, sms or voice" })
        .max(CHANNELS.length),
    ],
    { error: 'expected "all" or a list of one or more of email, sms and voice' },
  ),
});

/** Every event of contract v1, told apart by `type`. */
export const eventSchema = z.discriminatedUnion(
  "type",
  [purchaseCompletedSchema, purchaseRefundedSchema, customerUnsubscribedSchema],
  {
    error: "expected type to be purchase.completed, purchase.refunded or customer.unsubscribed",
  },
);

export const EVENT_TYPES = [
  "purchase.completed",
  "purchase.refunded",
  "customer.unsubscribed",
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export type PurchaseCompleted = z.output<typeof purchaseCompletedSchema>;
export type PurchaseCompletedInput = z.input<typeof purchaseCompletedSchema>;
export type PurchaseRefunded = z.output<typeof purchaseRefundedSchema>;
export type CustomerUnsubscribed = z.output<typeof customerUnsubscribedSchema>;
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

/** Validates one event; every problem is reported at once, each with its path. */
export function parseEvent(input: unknown): EventParseResult {
  const result = eventSchema.safeParse(input);
  if (result.success) return { ok: true, event: result.data };
  return { ok: false, problems: result.error.issues.map(toProblem) };
}

/** Formats a zod path as `items[0].unitPrice`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let text = "";
  for (const key of path) {
    if (typeof key === "number") text += `[${key}]`;
    else text += text === "" ? String(key) : `.${String(key)}`;
  }
  return text;
}

function toProblem(issue: z.core.$ZodIssue): EventProblem {
  return { path: formatPath(issue.path), message: issue.message };
}

/** One line per problem, e.g. `items[0].unitPrice: EUR has 2 decimal places, got 1.999`. */
export function describeProblems(problems: readonly EventProblem[]): string {
  return problems.map((p) => `${p.path || "(event)"}: ${p.message}`).join("\n");
}
