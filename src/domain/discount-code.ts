import { createHmac } from "node:crypto";
import { DateTime } from "luxon";
import type { DiscountSettings } from "./rules.js";

/** Crockford's base32: no I, L, O or U, so a code read aloud or retyped is not misread. */
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/** 12 symbols of 5 bits: 60 bits, far beyond guessing at any rate a shop would allow. */
const CODE_SYMBOLS = 12;
const GROUP = 4;

/**
 * A customer's code for one follow-up, such as `THANKS-7KQ2-M9XD-4TBW`: an HMAC of the customer
 * and follow-up ids, so a retry sends the same code, codes cannot be guessed without the secret,
 * and nothing needs storing to recreate one.
 */
export function discountCode(
  secret: string,
  customerId: string,
  followUpId: string,
  prefix: string,
): string {
  if (secret.length === 0) throw new RangeError("discountCode needs a non-empty secret");
  const digest = createHmac("sha256", secret)
    .update(JSON.stringify(["discount-code/v1", customerId, followUpId]))
    .digest();
  let bits = 0n;
  for (const byte of digest.subarray(0, 8)) bits = (bits << 8n) | BigInt(byte);
  let symbols = "";
  for (let i = 0; i < CODE_SYMBOLS; i++) {
    symbols += CROCKFORD[Number((bits >> BigInt(64 - 5 * (i + 1))) & 31n)];
  }
  const groups = symbols.match(new RegExp(`.{1,${GROUP}}`, "g")) ?? [symbols];
  return [prefix, ...groups].filter((part) => part !== "").join("-");
}

/** What a discount follow-up offers: the code, its percent and the last day it is valid. */
export interface DiscountOffer {
  readonly code: string;
  readonly percent: number;
  /** Last valid day, YYYY-MM-DD in the customer's zone. */
  readonly validUntil: string;
}

/** Inputs of buildDiscountOffer; `now` is the send time, so validity counts from the message. */
export interface DiscountOfferInput {
  readonly settings: DiscountSettings;
  readonly secret: string;
  readonly customerId: string;
  readonly followUpId: string;
  readonly now: DateTime;
  /** The customer's zone (planner's customerZone), so "valid until" is their calendar day. */
  readonly timezone: string;
}

/** The offer a discount step carries, from the rules' discount settings. */
export function buildDiscountOffer(input: DiscountOfferInput): DiscountOffer {
  const { settings } = input;
  const validUntil = input.now.setZone(input.timezone).plus(settings.validFor).toISODate();
  if (validUntil === null) throw new RangeError(`invalid time zone ${input.timezone}`);
  return {
    code: discountCode(input.secret, input.customerId, input.followUpId, settings.codePrefix),
    percent: settings.percent,
    validUntil,
  };
}

/**
 * A code as typed at a till or checkout, in the form codes are matched by: case and hyphens (and
 * spaces) ignored, so `thanks 7kq2-m9xd4tbw` finds `THANKS-7KQ2-M9XD-4TBW`.
 */
export function normalizeCode(text: string): string {
  return text.replace(/[\s-]+/g, "").toUpperCase();
}

/** The instant a code stops being valid: the end of its last valid day in the customer's zone. */
export function codeExpiresAt(validUntil: string, timezone: string): number {
  const end = DateTime.fromISO(validUntil, { zone: timezone }).endOf("day");
  if (!end.isValid) throw new RangeError(`invalid validity ${validUntil} in ${timezone}`);
  return end.toMillis();
}

/**
 * What a till learns of a code: `revoked` when the customer it was issued to had their data
 * erased before redeeming it.
 */
export type CodeStatus = "valid" | "expired" | "redeemed" | "revoked";

/** A stored code as the lookup answers it (`GET /v1/discount-codes/{code}`, `followups code`). */
export interface CodeLookup {
  readonly code: string;
  readonly status: CodeStatus;
  readonly percent: number;
  /** Last valid day, YYYY-MM-DD in the customer's zone. */
  readonly validUntil: string;
  /** The order that redeemed it (not named once its customer was erased). */
  readonly redeemedBy?: string;
}

/** The answer to redeeming a code for an order. */
export type RedeemResult =
  | { readonly status: "redeemed"; readonly code: CodeLookup; readonly now: boolean }
  | { readonly status: "taken"; readonly code: CodeLookup }
  | { readonly status: "expired"; readonly code: CodeLookup }
  | { readonly status: "revoked"; readonly code: CodeLookup }
  | { readonly status: "unknown" };

/**
 * How a redemption is counted: `redeemed` now, `taken` by another order, `expired`, `revoked`, `unknown`;
 * undefined for the same order asking again (nothing new happened).
 */
export function redemptionLabel(result: RedeemResult): string | undefined {
  if (result.status === "redeemed") return result.now ? "redeemed" : undefined;
  return result.status;
}
