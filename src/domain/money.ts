import { data as iso4217 } from "currency-codes";
import { remembered } from "./remembered.js";

/**
 * Money as integer minor units (cents, pence, yen), so thresholds compare exactly and never with
 * float surprises such as 0.1 + 0.2 !== 0.3.
 */
export interface Money {
  /** Amount in the currency's minor unit (e.g. 1999 for 19.99 EUR, 1999 for 1999 JPY). */
  readonly minor: number;
  /** ISO 4217 code, upper case. */
  readonly currency: string;
}

const KNOWN_CURRENCIES = new Set(Intl.supportedValuesOf("currency"));
const DECIMAL = /^(\d{1,13})(?:\.(\d{1,6}))?$/;
/** Largest amount accepted in major units: well inside Number.MAX_SAFE_INTEGER once in minor units. */
export const MAX_MAJOR_AMOUNT = 1_000_000_000_000;

/** Whether `code` is an ISO 4217 currency this runtime knows. */
export function isCurrencyCode(code: string): boolean {
  return /^[A-Z]{3}$/.test(code) && KNOWN_CURRENCIES.has(code);
}

/**
 * Codes ISO 4217 lists without a minor unit ("N.A.": special drawing rights, precious metals, test
 * and no-currency codes). currency-codes writes 0 for them; their digits are Intl's (XDR 2), as
 * before.
 */
const ISO_WITHOUT_MINOR_UNIT: ReadonlySet<string> = new Set(
  "XAG XAU XBA XBB XBC XBD XDR XPD XPT XSU XTS XUA XXX".split(" "),
);

/** ISO 4217's minor unit per currency (List One, from the currency-codes package). */
const ISO_MINOR_DIGITS: ReadonlyMap<string, number> = new Map(
  iso4217
    .filter((record) => !ISO_WITHOUT_MINOR_UNIT.has(record.code))
    .map((record) => [record.code, record.digits]),
);

/**
 * How many decimals the currency's minor unit has: ISO 4217's (EUR 2, JPY 0, KWD 3, HUF 2, IQD 3),
 * so an amount the shop charged is never refused for its decimals. A code ISO 4217 no longer
 * lists (HRK, SLL, ZWL) or lists without a minor unit (XDR) keeps the digits Intl gives it
 * (CLDR's), as every version did. Remembered per currency.
 */
export const minorDigits: (currency: string) => number = remembered(
  (currency) => ISO_MINOR_DIGITS.get(currency) ?? displayDigits(currency),
);

/** The decimals Intl (CLDR) shows for the currency by default: HUF 0, though its minor unit is 2. */
export const displayDigits: (currency: string) => number = remembered(
  (currency) =>
    new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions()
      .maximumFractionDigits as number,
);

/**
 * The minor units that versions up to 6 December 2026 used where they differ from ISO 4217's:
 * those versions took Intl's display digits (CLDR's, as Node 20's ICU had them), which give these
 * currencies none. Their stored amounts (purchases, refunds, ledger revenue) are in these units;
 * readers convert them with fromFormerMinor. Frozen here, never read from Intl at run time: another
 * ICU could differ, and the meaning of stored amounts must not.
 */
export const FORMER_MINOR_DIGITS: ReadonlyMap<string, number> = new Map(
  "AFN ALL COP HUF IDR IQD IRR KPW LAK LBP MGA MMK PKR SOS SYP YER"
    .split(" ")
    .map((currency) => [currency, 0]),
);

/** Whether versions up to 6 December 2026 stored amounts of this currency in other minor units. */
export function minorUnitChanged(currency: string): boolean {
  return FORMER_MINOR_DIGITS.has(currency);
}

/** An amount stored in the minor units of versions up to 6 December 2026, in today's. */
export function fromFormerMinor(money: Money): Money {
  const former = FORMER_MINOR_DIGITS.get(money.currency);
  if (former === undefined) return money;
  return {
    minor: money.minor * 10 ** (minorDigits(money.currency) - former),
    currency: money.currency,
  };
}

/**
 * An amount in the minor units versions up to 6 December 2026 used, when they could hold it (no
 * more decimals than they allowed): how they would have stored it. Undefined when they could not.
 */
export function toFormerMinor(money: Money): Money | undefined {
  const former = FORMER_MINOR_DIGITS.get(money.currency);
  if (former === undefined) return money;
  const factor = 10 ** (minorDigits(money.currency) - former);
  return money.minor % factor === 0
    ? { minor: money.minor / factor, currency: money.currency }
    : undefined;
}

/** Result of reading an amount: minor units, or why it cannot be read. */
export type MinorUnitsResult = { ok: true; minor: number } | { ok: false; problem: string };

/**
 * Converts a decimal amount given as a JSON number or a decimal string into minor units, exactly.
 * Works on the decimal text, never on binary floats, and refuses more decimals than the currency has.
 */
export function toMinorUnits(amount: number | string, currency: string): MinorUnitsResult {
  const text = typeof amount === "number" ? numberToPlainText(amount) : amount.trim();
  const match = text === undefined ? null : DECIMAL.exec(text);
  if (!match) {
    return {
      ok: false,
      problem: `expected a non-negative decimal amount such as 19.99, got ${JSON.stringify(amount)}`,
    };
  }
  const whole = match[1] ?? "0";
  const fraction = (match[2] ?? "").replace(/0+$/, "");
  const digits = minorDigits(currency);
  if (fraction.length > digits) {
    return {
      ok: false,
      problem: `${currency} has ${digits} decimal place${digits === 1 ? "" : "s"}, got ${text}`,
    };
  }
  if (Number(whole) > MAX_MAJOR_AMOUNT) {
    return { ok: false, problem: `amount ${text} is larger than ${MAX_MAJOR_AMOUNT}` };
  }
  const minor = Number(whole) * 10 ** digits + Number(fraction.padEnd(digits, "0") || "0");
  return { ok: true, minor };
}

function numberToPlainText(value: number): string | undefined {
  if (!Number.isFinite(value) || value < 0) return undefined;
  const text = String(value);
  // Exponent notation (1e-7, 1e+21) is outside any sane amount; refuse it rather than guess.
  return text.includes("e") ? undefined : text;
}

/** Formats minor units as a plain decimal string in major units ("19.99", "1999", "0.500"). */
export function formatMinor(money: Money): string {
  const digits = minorDigits(money.currency);
  if (digits === 0) return String(money.minor);
  const text = String(money.minor).padStart(digits + 1, "0");
  return `${text.slice(0, -digits)}.${text.slice(-digits)}`;
}

/**
 * How many decimals to show an amount with: as many as Intl usually shows for its currency (HUF
 * none, EUR 2) when the amount has no more, else every decimal of its minor unit (1299.50 HUF), so
 * that no amount is shown rounded.
 */
export function shownDigits(money: Money): number {
  const usual = displayDigits(money.currency);
  const digits = minorDigits(money.currency);
  if (digits <= usual) return usual;
  return money.minor % 10 ** (digits - usual) === 0 ? usual : digits;
}

/** Human display such as "19.99 EUR". */
export function describeMoney(money: Money): string {
  return `${formatMinor(money)} ${money.currency}`;
}

/** Exchange rates of the rules: how much of `base` (the default currency) one unit of each is. */
export interface Rates {
  readonly base: string;
  /** Currency → its value in `base`, an exact decimal string ("0.79": 1 USD = 0.79 GBP). */
  readonly toBase: ReadonlyMap<string, string>;
  /** The date the rates were taken (for messages). */
  readonly asOf?: string;
}

/**
 * A threshold of the rules: an amount in one or more currencies (`min: { GBP: "50", USD: "60" }`),
 * and the rates that convert an order in another currency.
 */
export interface Threshold {
  readonly values: readonly Money[];
  readonly rates?: Rates;
}

/** An amount against a threshold: how it compares, and the threshold as it was applied. */
export type Comparison =
  | { readonly ok: true; readonly sign: -1 | 0 | 1; readonly against: string }
  | { readonly ok: false; readonly problem: string };

/** `0.79` → 79/100, exactly. */
function rational(decimal: string): { num: bigint; den: bigint } {
  const [whole = "0", fraction = ""] = decimal.split(".");
  return { num: BigInt(whole + fraction), den: 10n ** BigInt(fraction.length) };
}

/** The value of minor units in the base currency as a fraction: minor × rate / 10^digits. */
function inBase(money: Money, rate: string): { num: bigint; den: bigint } {
  const r = rational(rate);
  return {
    num: BigInt(money.minor) * r.num,
    den: r.den * 10n ** BigInt(minorDigits(money.currency)),
  };
}

/**
 * Compares an amount with a threshold: directly when the threshold names the amount's currency,
 * else both converted exactly into the rules' default currency through the rates (no rounding).
 * A currency the threshold does not name and no rate covers cannot be compared: the reason says so.
 */
export function compareAmount(amount: Money, threshold: Threshold): Comparison {
  const same = threshold.values.find((value) => value.currency === amount.currency);
  if (same) {
    const diff = amount.minor - same.minor;
    return { ok: true, sign: diff < 0 ? -1 : diff > 0 ? 1 : 0, against: describeMoney(same) };
  }
  const rates = threshold.rates;
  const rateOf = (currency: string) =>
    currency === rates?.base ? "1" : rates?.toBase.get(currency);
  const amountRate = rateOf(amount.currency);
  const value =
    threshold.values.find((candidate) => candidate.currency === rates?.base) ??
    threshold.values.find((candidate) => rateOf(candidate.currency) !== undefined);
  const valueRate = value && rateOf(value.currency);
  const named = threshold.values.map((v) => v.currency).join(" or ");
  if (rates && amountRate !== undefined && (!value || valueRate === undefined)) {
    // The order's currency converts; the threshold's does not.
    return {
      ok: false,
      problem: `no rate converts the rule's ${named} into ${rates.base} to compare with the order's ${amount.currency} (add a rate for ${threshold.values[0]?.currency ?? named} under currencies.rates, or give the threshold in ${rates.base === amount.currency ? amount.currency : `${rates.base} or ${amount.currency}`})`,
    };
  }
  if (!rates || amountRate === undefined || !value || valueRate === undefined) {
    return {
      ok: false,
      problem: `order currency ${amount.currency} differs from the rule's ${named}, and no rate converts it (add ${amount.currency} to the threshold, or a rate under currencies.rates)`,
    };
  }
  const a = inBase(amount, amountRate);
  const b = inBase(value, valueRate);
  const left = a.num * b.den;
  const right = b.num * a.den;
  const sign = left < right ? -1 : left > right ? 1 : 0;
  const asOf = rates.asOf ? ` as of ${rates.asOf}` : "";
  return {
    ok: true,
    sign,
    against: `${describeMoney(value)} (converted at 1 ${amount.currency} = ${amountRate} ${rates.base}${asOf})`,
  };
}
