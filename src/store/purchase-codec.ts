import { deflateRawSync, inflateRawSync } from "node:zlib";
import { eventJson } from "../domain/event-fingerprint.js";
import type { PurchaseCompleted } from "../domain/events.js";
import { fromFormerMinor, type Money, minorUnitChanged } from "../domain/money.js";

/**
 * How a purchase is stored while its follow-ups wait (often for months): its JSON, deflated
 * against a preset dictionary of the event's own field names and common values. A typical
 * purchase of about 590 B of JSON takes about 175 B, under a third. The first byte names the format, so a stored purchase stays readable when a
 * later version adds a better dictionary; a stored value that starts with `{` is plain JSON.
 */

/** Format 1: deflate-raw with DICTIONARY_V1. Never change this dictionary; add a format instead. */
const FORMAT_DEFLATE_V1 = 1;
/** Format 2: what is kept after the last step (KeptPurchase), deflate-raw with DICTIONARY_V1. */
const FORMAT_KEPT_V1 = 2;
/**
 * Formats 3 and 4: as 1 and 2, for a purchase in a currency whose minor unit versions up to 6
 * December 2026 took otherwise (money.ts FORMER_MINOR_DIGITS: HUF, IDR, COP, …): its amounts are
 * in ISO 4217 minor units. Formats 1, 2 and plain JSON hold such amounts in the former units, and
 * are read into today's; a purchase in any other currency is written as 1 or 2, as it always was.
 * Versions up to 6 December 2026 refuse formats 3 and 4 as unknown rather than misread them.
 */
const FORMAT_DEFLATE_ISO = 3;
const FORMAT_KEPT_ISO = 4;

/**
 * Field names in the order the validated event has them, with values most purchases share.
 * deflate finds matches in the whole dictionary, and the nearer its end, the cheaper.
 */
const DICTIONARY_V1 = Buffer.from(
  [
    '"timezone":"America/New_York","locale":"en-US","timezone":"America/Los_Angeles","locale":"de-DE"',
    '"timezone":"Europe/Paris","locale":"fr-FR","timezone":"Australia/Sydney","locale":"en-AU"',
    '@gmail.com","phone":"+1","@outlook.com","@hotmail.com","@yahoo.com","@icloud.com","phone":"+49',
    '{"type":"purchase.completed","id":"","occurredAt":"2026-01-01T00:00:00.000Z","orderId":"",',
    '"customer":{"id":"","name":"","email":"","phone":"+44","timezone":"Europe/London","locale":"en-GB",',
    '"consent":{"email":true,"sms":true,"voice":false}},',
    '"items":[{"sku":"","name":"","category":"","quantity":1,"unitPrice":{"minor":0,"currency":"EUR"}}],',
    '"total":{"minor":0,"currency":"USD"},"store":{"id":"","name":"","timezone":"Europe/Berlin"}}',
  ].join(""),
);

/** The stored form of a validated purchase. */
export function encodePurchase(event: PurchaseCompleted): Buffer {
  // From a Buffer: zlib converts a string more slowly than Buffer.from does.
  const packed = deflateRawSync(Buffer.from(eventJson(event)), { dictionary: DICTIONARY_V1 });
  const format = minorUnitChanged(event.total.currency) ? FORMAT_DEFLATE_ISO : FORMAT_DEFLATE_V1;
  return Buffer.concat([Buffer.of(format), packed]);
}

/**
 * What is kept of a purchase once its last step has ended, for as long as its step records: what
 * the timeline, a deliberate resend and an unhappy-reply alert need. The customer's surname, item
 * categories and SKUs go; so does whatever the event carried beyond.
 */
export interface KeptPurchase {
  readonly id: string;
  readonly orderId: string;
  readonly occurredAt: string;
  readonly customer: {
    readonly id: string;
    readonly firstName?: string;
    readonly email?: string;
    readonly phone?: string;
    readonly locale?: string;
    readonly timezone?: string;
    /** What the customer agreed to (kept since December 2026): a resend is guarded like a send. */
    readonly consent?: PurchaseCompleted["customer"]["consent"];
  };
  readonly items: readonly {
    readonly name: string;
    readonly quantity: number;
    readonly unitPrice: PurchaseCompleted["total"];
  }[];
  readonly total: PurchaseCompleted["total"];
  /** The shop's store, as templates sign with it (kept since December 2026). */
  readonly store?: PurchaseCompleted["store"];
}

/** The part of a purchase kept after its last step. */
export function keptPart(event: PurchaseCompleted): KeptPurchase {
  const { customer } = event;
  const firstName = customer.name?.trim().split(/\s+/)[0];
  return {
    id: event.id,
    orderId: event.orderId,
    occurredAt: event.occurredAt,
    customer: {
      id: customer.id,
      ...(firstName && { firstName }),
      ...(customer.email && { email: customer.email }),
      ...(customer.phone && { phone: customer.phone }),
      ...(customer.locale && { locale: customer.locale }),
      ...(customer.timezone && { timezone: customer.timezone }),
      ...(customer.consent && { consent: customer.consent }),
    },
    items: event.items.map((item) => ({
      name: item.name,
      quantity: item.quantity,
      unitPrice: item.unitPrice,
    })),
    total: event.total,
    ...(event.store && { store: event.store }),
  };
}

/**
 * A purchase to render a deliberate resend from, rebuilt from what was kept: the first name for
 * the name, no SKUs or categories (templates show them as empty).
 */
export function purchaseFromKept(kept: KeptPurchase): PurchaseCompleted {
  const { firstName, ...customer } = kept.customer;
  return {
    type: "purchase.completed",
    id: kept.id,
    orderId: kept.orderId,
    occurredAt: kept.occurredAt,
    customer: { ...customer, ...(firstName && { name: firstName }) },
    items: kept.items.map((item) => ({ sku: "", category: "", ...item })),
    total: kept.total,
    ...(kept.store && { store: kept.store }),
  } as PurchaseCompleted;
}

/** The stored form of a kept purchase. */
export function encodeKept(kept: KeptPurchase): Buffer {
  const packed = deflateRawSync(JSON.stringify(kept), { dictionary: DICTIONARY_V1 });
  const format = minorUnitChanged(kept.total.currency) ? FORMAT_KEPT_ISO : FORMAT_KEPT_V1;
  return Buffer.concat([Buffer.of(format), packed]);
}

/** A stored purchase: the whole one while a step is pending, or the part kept after. */
export type StoredPurchase =
  | { readonly kind: "whole"; readonly event: PurchaseCompleted }
  | { readonly kind: "kept"; readonly kept: KeptPurchase };

/** Reads either stored form; throws on a format this version does not know. */
export function decodeStored(stored: Buffer): StoredPurchase {
  const format = stored[0];
  if (format === FORMAT_KEPT_V1 || format === FORMAT_KEPT_ISO) {
    const json = inflateRawSync(stored.subarray(1), { dictionary: DICTIONARY_V1 });
    const kept = JSON.parse(json.toString("utf8")) as KeptPurchase;
    return { kind: "kept", kept: format === FORMAT_KEPT_V1 ? inTodaysMinorUnits(kept) : kept };
  }
  return { kind: "whole", event: decodePurchase(stored) };
}

/** The purchase back from its stored form; throws on a format this version does not know. */
export function decodePurchase(stored: Buffer): PurchaseCompleted {
  const format = stored[0];
  if (format === FORMAT_DEFLATE_V1 || format === FORMAT_DEFLATE_ISO) {
    const json = inflateRawSync(stored.subarray(1), { dictionary: DICTIONARY_V1 });
    const event = JSON.parse(json.toString("utf8")) as PurchaseCompleted;
    return format === FORMAT_DEFLATE_V1 ? inTodaysMinorUnits(event) : event;
  }
  if (format === "{".charCodeAt(0))
    return inTodaysMinorUnits(JSON.parse(stored.toString("utf8")) as PurchaseCompleted);
  throw new Error(`stored purchase has an unknown format (first byte ${String(format)})`);
}

/**
 * A purchase stored in the minor units of versions up to 6 December 2026, in today's: unchanged
 * (the same object) unless its currency's minor unit changed (1300 HUF stored as 1300 is 130000).
 */
function inTodaysMinorUnits<T extends { total: Money; items: readonly { unitPrice: Money }[] }>(
  purchase: T,
): T {
  if (!minorUnitChanged(purchase.total.currency)) return purchase;
  return {
    ...purchase,
    items: purchase.items.map((item) => ({ ...item, unitPrice: fromFormerMinor(item.unitPrice) })),
    total: fromFormerMinor(purchase.total),
  };
}
