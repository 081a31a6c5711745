import { DateTime } from "luxon";
import type { DiscountOffer } from "../domain/discount-code.js";
import type { Channel } from "../domain/events.js";
import {
  formatMinor,
  MAX_MAJOR_AMOUNT,
  type Money,
  minorDigits,
  shownDigits,
  toMinorUnits,
} from "../domain/money.js";
import { remembered } from "../domain/remembered.js";
import type { StepKind } from "../domain/rules.js";

/**
 * The variables a template sees. Every key is always present (null when unknown), so templates run
 * with strict variables: a misspelt name fails `followups check` instead of rendering as nothing.
 */
export interface TemplateContext {
  readonly customer: {
    readonly id: string;
    readonly name: string | null;
    readonly firstName: string | null;
  };
  readonly order: TemplateOrder;
  /**
   * Every order the message is about, oldest first: the purchase's own (`order`) and, for a
   * thank-you of a rule with `coalesce`, the customer's other purchases within its window.
   */
  readonly orders: readonly TemplateOrder[];
  readonly store: { readonly id: string | null; readonly name: string | null };
  /** The business the message is from (`shop` in the rules), so the sender is identifiable. */
  readonly shop: {
    readonly name: string;
    /** The postal address on one line, "1 High Street, London N1 1AA"; null when not set. */
    readonly address: string | null;
    /** The same address, one entry per line. */
    readonly addressLines: readonly string[];
  };
  readonly step: { readonly kind: StepKind; readonly channel: Channel };
  /** Present on discount steps only. */
  readonly discount: {
    readonly code: string;
    readonly percent: number;
    /** Last valid day on the customer's calendar, such as "11 April 2026". */
    readonly validUntil: string;
  } | null;
  /** Filled once unsubscribe links exist; null until then. */
  readonly unsubscribeUrl: string | null;
}

/** One order as templates see it. */
export interface TemplateOrder {
  readonly id: string;
  /** Formatted for the customer's locale, such as "£1,299.00" or "1.299,00 €". */
  readonly total: string;
  readonly currency: string;
  readonly items: readonly TemplateItem[];
  /** The purchase date on the customer's calendar, such as "12 March 2026". */
  readonly purchasedAt: string;
}

/** One purchased item as templates see it. */
export interface TemplateItem {
  readonly sku: string;
  readonly name: string;
  readonly category: string;
  readonly quantity: number;
  /** Formatted like order.total. */
  readonly unitPrice: string;
}

/** The parts of a stored purchase that templates may show (a parsed purchase.completed fits). */
export interface PurchaseSnapshot {
  readonly orderId: string;
  readonly occurredAt: string;
  readonly customer: { readonly id: string; readonly name?: string | undefined };
  readonly items: readonly {
    readonly sku: string;
    readonly name: string;
    readonly category: string;
    readonly quantity: number;
    readonly unitPrice: Money;
  }[];
  readonly total: Money;
  readonly store?: { readonly id: string; readonly name?: string | undefined } | undefined;
}

/** What buildTemplateContext needs besides the purchase. */
export interface TemplateContextInput {
  readonly purchase: PurchaseSnapshot;
  /** Other purchases the message thanks for too (a coalesced thank-you). */
  readonly alsoThanked?: readonly PurchaseSnapshot[];
  readonly step: { readonly kind: StepKind; readonly channel: Channel };
  /** Formats amounts and dates: the customer's locale, else the rules' default locale. */
  readonly locale: string;
  /** Dates are shown in this zone (the planner's customerZone). */
  readonly timezone: string;
  readonly discount: DiscountOffer | null;
  readonly unsubscribeUrl: string | null;
  readonly shop: ShopDetails;
}

/** `shop` of the rules as templates need it: its name and the lines of its postal address. */
export interface ShopDetails {
  readonly name: string;
  /** Empty when the rules name no address. */
  readonly address: readonly string[];
}

const DATE_FORMAT = { year: "numeric", month: "long", day: "numeric" } as const;

/** Builds the template variables from a stored purchase; pure, so tests pin every value. */
export function buildTemplateContext(input: TemplateContextInput): TemplateContext {
  const { purchase, step } = input;
  const locale = formattingLocale(input.locale);
  // SMS bodies stay GSM-7 (and short) only with plain spaces; Intl puts no-break spaces in amounts.
  const plain = step.channel === "email" ? (text: string) => text : plainSpaces;
  const money = (value: Money) => plain(formatMoney(value, locale));
  const date = (value: DateTime) =>
    plain(value.setZone(input.timezone).setLocale(locale).toLocaleString(DATE_FORMAT));
  const name = purchase.customer.name?.trim() || null;
  const orderOf = (snapshot: PurchaseSnapshot): TemplateOrder => ({
    id: snapshot.orderId,
    total: money(snapshot.total),
    currency: snapshot.total.currency,
    items: snapshot.items.map((item) => ({
      sku: item.sku,
      name: item.name,
      category: item.category,
      quantity: item.quantity,
      unitPrice: money(item.unitPrice),
    })),
    purchasedAt: date(DateTime.fromISO(snapshot.occurredAt, { setZone: true })),
  });
  const order = orderOf(purchase);
  const others = (input.alsoThanked ?? []).filter((other) => other.orderId !== purchase.orderId);
  const orders = [purchase, ...others]
    .map((snapshot) => ({ at: Date.parse(snapshot.occurredAt), order: orderOf(snapshot) }))
    .sort((a, b) => a.at - b.at)
    .map((entry) => entry.order);
  return {
    customer: {
      id: purchase.customer.id,
      name,
      firstName: name?.split(/\s+/)[0] ?? null,
    },
    order,
    orders,
    store: { id: purchase.store?.id ?? null, name: purchase.store?.name?.trim() || null },
    shop: {
      name: input.shop.name,
      address: input.shop.address.length > 0 ? input.shop.address.join(", ") : null,
      addressLines: input.shop.address,
    },
    step: { kind: step.kind, channel: step.channel },
    discount: input.discount && {
      code: input.discount.code,
      percent: input.discount.percent,
      validUntil: date(DateTime.fromISO(input.discount.validUntil, { zone: input.timezone })),
    },
    unsubscribeUrl: input.unsubscribeUrl,
  };
}

/**
 * A formatter per "locale currency digits": building one costs more than the rest of a message's
 * context.
 */
const moneyFormat = remembered((key) => {
  const [locale, currency, digits] = key.split(" ");
  const fractionDigits = Number(digits);
  return new Intl.NumberFormat(locale, {
    style: "currency",
    currency,
    minimumFractionDigits: fractionDigits,
    maximumFractionDigits: fractionDigits,
  });
}, 1_000);

/**
 * "£1,299.00" for en-GB, "1.299,00 €" for de; exact, from the decimal text of minor units. With
 * the decimals the locale's shoppers usually see for the currency ("1 300 Ft" in hu), and all of
 * its minor unit's when the amount has more ("1 299,50 Ft"): never rounded.
 */
function formatMoney(value: Money, locale: string): string {
  return moneyFormat(`${locale} ${value.currency} ${shownDigits(value)}`).format(
    formatMinor(value) as `${number}`,
  );
}

/** A locale Intl accepts: the given one canonicalised, or "en" if it is not a valid tag. */
function formattingLocale(locale: string): string {
  try {
    return Intl.getCanonicalLocales(locale)[0] ?? "en";
  } catch {
    return "en";
  }
}

function plainSpaces(text: string): string {
  return text.replace(/[\u00a0\u202f]/g, " ");
}

/** Which sample `followups check` renders: every field filled, or every optional one empty. */
export type SampleKind = "full" | "sparse";

/** Options for sampleTemplateContext; the check passes the rules' defaults. */
export interface SampleOptions {
  readonly step: { readonly kind: StepKind; readonly channel: Channel };
  readonly locale: string;
  readonly kind?: SampleKind;
  readonly currency?: string;
  readonly timezone?: string;
  /** Used on discount steps; a sample offer with the default prefix otherwise. */
  readonly discount?: DiscountOffer;
  /** The rules' shop; SAMPLE_SHOP otherwise. */
  readonly shop?: ShopDetails;
}

/** A shop with a two-line address, for samples without rules. */
export const SAMPLE_SHOP: ShopDetails = {
  name: "Your shop",
  address: ["1 High Street", "London N1 1AA"],
};

const SAMPLE_OFFER: DiscountOffer = {
  code: "THANKS-7KQ2-M9XD-4TBW",
  percent: 10,
  validUntil: "2026-04-11",
};

/**
 * A realistic purchase for `followups check`: the full sample has a long-ish name, two items and a
 * store, so length checks are honest; the sparse one has no name, no store and one item, so the
 * `else` branches of templates run too. Discount steps get an offer, other steps none, as at send.
 */
export function sampleTemplateContext(options: SampleOptions): TemplateContext {
  const currency = options.currency ?? "GBP";
  const amount = (text: string): Money => {
    const result = toMinorUnits(text, currency);
    return { minor: result.ok ? result.minor : 0, currency };
  };
  const full = (options.kind ?? "full") === "full";
  const items = [
    {
      sku: "TV-55-OLED",
      name: "Aurora 55-inch OLED TV",
      category: "televisions",
      quantity: 1,
      unitPrice: amount("1299"),
    },
    {
      sku: "WM-200",
      name: "Slim wall mount",
      category: "accessories",
      quantity: 2,
      unitPrice: amount("25"),
    },
  ];
  return buildTemplateContext({
    purchase: {
      orderId: "ORD-2026-000123",
      occurredAt: "2026-03-12T14:05:00Z",
      customer: full ? { id: "cus_8f2k1", name: "Alexandra Whitfield" } : { id: "cus_8f2k1" },
      items: full ? items : items.slice(0, 1),
      total: amount(full ? "1349" : "1299"),
      store: full ? { id: "store-12", name: "Northgate High Street" } : undefined,
    },
    // The full sample of a thank-you also thanks for a second order, as a coalesced one does.
    ...(full &&
      options.step.kind === "thank-you" && {
        alsoThanked: [
          {
            orderId: "ORD-2026-000124",
            occurredAt: "2026-03-12T14:40:00Z",
            customer: { id: "cus_8f2k1", name: "Alexandra Whitfield" },
            items: [items[1] as (typeof items)[number]],
            total: amount("50"),
          },
        ],
      }),
    step: options.step,
    locale: options.locale,
    timezone: options.timezone ?? "Europe/London",
    discount: options.step.kind === "discount" ? (options.discount ?? SAMPLE_OFFER) : null,
    unsubscribeUrl: full ? "https://shop.example/unsubscribe?token=sample" : null,
    shop: options.shop ?? SAMPLE_SHOP,
  });
}

/**
 * The largest values the event contract v1 accepts (src/domain/events.ts); a test holds them to the
 * contract. The worst-case sample is built from them.
 */
export const CONTRACT_MAXIMA = {
  items: 500,
  itemName: 300,
  customerName: 200,
  storeName: 200,
  id: 200,
  category: 100,
  quantity: 100_000,
} as const;

/** Repeats `unit` to exactly `length` characters, not ending in a space (the contract trims). */
function filled(unit: string, length: number): string {
  return Array.from(unit.repeat(Math.ceil(length / Array.from(unit).length)))
    .slice(0, length)
    .join("")
    .replace(/\s$/, "x");
}

/**
 * The most expensive purchase the contract allows, for `followups check`'s cost and length checks:
 * 500 items with 300-character names full of what costs most (characters HTML escapes, characters
 * outside GSM-7 that make an SMS UCS-2), a one-word customer name of 200 characters (so the first
 * name is that long too), the longest store name, ids and amounts.
 */
export function worstCaseTemplateContext(options: SampleOptions): TemplateContext {
  const currency = options.currency ?? "GBP";
  // The largest amount the contract admits, with every decimal of the minor unit (1299.99 HUF
  // shows its decimals, 1300 HUF none: the longest has them all).
  const digits = minorDigits(currency);
  const largest = toMinorUnits(
    `${MAX_MAJOR_AMOUNT}${digits > 0 ? `.${"9".repeat(digits)}` : ""}`,
    currency,
  );
  const amount: Money = { minor: largest.ok ? largest.minor : 0, currency };
  const items = Array.from({ length: CONTRACT_MAXIMA.items }, (_, index) => ({
    sku: filled(`SKU-${index}-`, CONTRACT_MAXIMA.id),
    name: filled(`Aurora 55″ OLED TV – "Édition" & <Pro> ${index} `, CONTRACT_MAXIMA.itemName),
    category: filled("home-cinema-", CONTRACT_MAXIMA.category),
    quantity: CONTRACT_MAXIMA.quantity,
    unitPrice: amount,
  }));
  return buildTemplateContext({
    purchase: {
      orderId: filled("ORD-2026-", CONTRACT_MAXIMA.id),
      occurredAt: "2026-09-30T23:30:00Z",
      customer: {
        id: filled("cus_", CONTRACT_MAXIMA.id),
        name: filled("Maximiliána-", CONTRACT_MAXIMA.customerName),
      },
      items,
      total: amount,
      store: {
        id: filled("store-", CONTRACT_MAXIMA.id),
        name: filled("Northgate & Söhne – ", CONTRACT_MAXIMA.storeName),
      },
    },
    step: options.step,
    locale: options.locale,
    timezone: options.timezone ?? "Europe/London",
    discount: options.step.kind === "discount" ? (options.discount ?? SAMPLE_OFFER) : null,
    unsubscribeUrl: `https://shop.example/unsubscribe/${"x".repeat(160)}`,
    shop: options.shop ?? SAMPLE_SHOP,
  });
}

/** The full English sample of a thank-you email, for docs and tests. */
export const SAMPLE_TEMPLATE_CONTEXT: TemplateContext = sampleTemplateContext({
  step: { kind: "thank-you", channel: "email" },
  locale: "en",
});
