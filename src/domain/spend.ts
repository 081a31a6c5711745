import { parsePhoneNumberFromString } from "libphonenumber-js";
import { DateTime } from "luxon";
import type { Channel } from "./events.js";
import { minorDigits } from "./money.js";

/**
 * What SMS and calls cost, and the monthly budgets that stop them. Prices are per SMS segment and
 * per started call minute, in the rules' default currency, per destination country. Amounts are
 * kept in micro-units (millionths of the currency's major unit) so that a price such as 0.0079
 * multiplies and adds exactly.
 */

export const PRICED_CHANNELS = ["sms", "voice"] as const;
export type PricedChannel = (typeof PRICED_CHANNELS)[number];

/** Micro-units in one major unit of any currency. */
export const MICROS = 1_000_000;

/** Prices of one channel: per country (ISO 3166 alpha-2), and for every other country. */
export interface PriceTable {
  readonly byCountry: ReadonlyMap<string, number>;
  /** Micros per unit for countries the table does not name; absent: such sends are not priced. */
  readonly other?: number;
}

/** A channel's monthly budget (calendar month in the rules' default time zone). */
export interface Budget {
  readonly monthlyMicros: number;
  /** Whether transactional steps (check-ins) also stop when it is reached. */
  readonly transactional: "continue" | "skip";
}

export interface SpendSettings {
  readonly prices: Readonly<Partial<Record<PricedChannel, PriceTable>>>;
  readonly budgets: Readonly<Partial<Record<PricedChannel, Budget>>>;
  /** How many minutes a call is assumed to last where no real duration is known (plan, simulate). */
  readonly estimatedCallMinutes: number;
}

export function isPricedChannel(channel: Channel): channel is PricedChannel {
  return channel === "sms" || channel === "voice";
}

/** The country of an E.164 number ("+447700900123" → "GB"), if the numbering plan tells. */
export function phoneCountry(phone: string): string | undefined {
  return parsePhoneNumberFromString(phone)?.country;
}

/** The price of one unit (an SMS segment, a call minute) to a number, in micros. */
export type UnitPrice =
  | { readonly ok: true; readonly micros: number; readonly country: string | undefined }
  | { readonly ok: false; readonly reason: string };

export function unitPrice(spend: SpendSettings, channel: PricedChannel, phone: string): UnitPrice {
  const table = spend.prices[channel];
  const country = phoneCountry(phone);
  if (!table) return { ok: false, reason: `no ${channel} prices in the rules` };
  const micros = (country !== undefined ? table.byCountry.get(country) : undefined) ?? table.other;
  if (micros === undefined) {
    return {
      ok: false,
      reason: `no ${channel} price for ${country ?? "the number's country"} and no "other" price`,
    };
  }
  return { ok: true, micros, country };
}

/** What a message costs: how many units of what, and the total in micros of the default currency. */
export interface MessageCost {
  readonly units: number;
  readonly unit: "segment" | "minute";
  readonly micros: number;
}

/** The cost of sending `units` (SMS segments, call minutes) to `phone`, or undefined if unpriced. */
export function costOf(
  spend: SpendSettings,
  channel: PricedChannel,
  phone: string,
  units: number,
): MessageCost | undefined {
  const price = unitPrice(spend, channel, phone);
  if (!price.ok) return undefined;
  return { units, unit: channel === "sms" ? "segment" : "minute", micros: price.micros * units };
}

/** Twilio bills a call per started minute: 61 s is two minutes, 0 s (never answered) is none. */
export function billedMinutes(durationSeconds: number): number {
  return Math.max(0, Math.ceil(durationSeconds / 60));
}

const DECIMAL = /^(\d{1,9})(?:\.(\d{1,6}))?$/;

/** "0.0079" → 7900 micros, exactly; undefined when it is not such a decimal. */
export function parseMicros(text: string): number | undefined {
  const match = DECIMAL.exec(text.trim());
  if (!match) return undefined;
  return Number(match[1]) * MICROS + Number((match[2] ?? "").padEnd(6, "0"));
}

/**
 * Micros as a decimal in the currency: at least its minor digits, more only when the amount has
 * them (7900 → "0.0079", 40000 → "0.04" in GBP, 200000000 → "200.00").
 */
export function formatMicros(micros: number, currency: string): string {
  const digits = minorDigits(currency);
  const sign = micros < 0 ? "-" : "";
  const abs = Math.abs(Math.round(micros));
  const whole = Math.floor(abs / MICROS);
  let fraction = String(abs % MICROS)
    .padStart(6, "0")
    .replace(/0+$/, "");
  if (fraction.length < digits) fraction = fraction.padEnd(digits, "0");
  return fraction === "" ? `${sign}${whole}` : `${sign}${whole}.${fraction}`;
}

/** Where a month's spend stands against its budget. */
export interface BudgetState {
  readonly spentMicros: number;
  readonly budgetMicros: number;
}

/** A budget threshold crossed: owners get one email per channel, month and percent. */
export interface BudgetAlert {
  readonly channel: PricedChannel;
  /** The calendar month, "2026-12". */
  readonly month: string;
  readonly percent: number;
  /** The month's spend with the charge that crossed the threshold (micros); absent in jobs queued before 5 December 2026. */
  readonly spentMicros?: number;
}

/** The budget alert thresholds owners are emailed at, in percent. */
export const BUDGET_ALERTS = [80, 100] as const;

/** Whether a step may still go out on a channel whose month's spend is `spent`. */
export function budgetAllows(
  budget: Budget | undefined,
  purpose: "transactional" | "marketing",
  spentMicros: number,
): boolean {
  if (!budget || spentMicros < budget.monthlyMicros) return true;
  return purpose === "transactional" && budget.transactional === "continue";
}

/** The calendar month ("2026-12") an instant falls in, in the rules' default time zone. */
export function spendMonthOf(epochMs: number, zone: string): string {
  return DateTime.fromMillis(epochMs, { zone }).toFormat("yyyy-MM");
}
