import { hash } from "node:crypto";
import { type FollowUpEvent, instantMillis } from "./events.js";
import { minorUnitChanged, toFormerMinor } from "./money.js";

/**
 * What makes two events with one id the same event: the SHA-256 of the validated event (contract
 * v1, unknown keys dropped, values as the worker reads them) with its `occurredAt` written as UTC
 * with milliseconds, so a re-published event matches itself whatever its key order, spacing, extra
 * fields or way of writing its instant (`…T10:00:00Z`, `…T10:00:00.000Z` and `…T11:00:00+01:00`
 * are one time), and an id reused for other content does not. 11 base64url characters (66 bits:
 * an id reused for other content goes unnoticed with a chance of one in 10^19), kept with every
 * purchase's record. Key layout 4 and before kept 22 characters of the same hash: see
 * fingerprintMatches; versions before 6 December 2026 hashed `occurredAt` as written: see
 * eventFingerprints.
 */
export function eventFingerprint(event: FollowUpEvent): string {
  return fingerprintOf(unitsMark(event) + canonicalJson(event));
}

/**
 * Before the JSON of an event whose amounts are in a currency whose minor unit changed on 6
 * December 2026 (HUF, IDR, …): its units named, so that its fingerprint never equals one made of
 * the same JSON in the former units, which versions up to then kept for an amount a hundred
 * times (IQD a thousand times) larger: 13 HUF (1300 in today's units) is not 1300 HUF (1300 in
 * theirs). "" for every other event, whose fingerprint is as it always was.
 */
function unitsMark(event: FollowUpEvent): string {
  const currency =
    event.type === "purchase.completed"
      ? event.total.currency
      : event.type === "purchase.refunded"
        ? event.amount?.currency
        : undefined;
  return currency !== undefined && minorUnitChanged(currency) ? "ISO 4217 minor units\n" : "";
}

/**
 * An event's fingerprints: the one to keep first (eventFingerprint), then the one versions before
 * 6 December 2026 kept for it, when that differs (its `occurredAt` was not written as UTC with
 * milliseconds), so that an event they recorded still matches itself when it is sent again as it
 * was. Such an event sent again with its instant written another way is taken for other content:
 * its earlier fingerprint cannot be made from another spelling.
 */
export type EventFingerprints = readonly [kept: string, ...earlier: string[]];

/**
 * Versions up to 6 December 2026 also read amounts of some currencies (HUF, IDR, COP, …: money.ts
 * FORMER_MINOR_DIGITS) in other minor units, and hashed them so: an event in one of those that
 * they recorded has those fingerprints among its earlier ones too, so that it is still the same
 * event when sent again after the upgrade.
 */
export function eventFingerprints(event: FollowUpEvent): EventFingerprints {
  const kept = eventFingerprint(event);
  const found: [string, ...string[]] = [kept];
  const add = (fingerprint: string) => {
    if (!found.includes(fingerprint)) found.push(fingerprint);
  };
  // As written: only versions before this one kept it, and in the former units where those
  // differ (below).
  if (unitsMark(event) === "") add(fingerprintOf(eventJson(event)));
  const former = inFormerMinorUnits(event);
  if (former) {
    add(fingerprintOf(canonicalJson(former)));
    add(fingerprintOf(JSON.stringify(former)));
  }
  return found;
}

/**
 * The event as versions up to 6 December 2026 read it, when they read its amounts in other minor
 * units than today and could read it at all (they refused decimals these currencies now have);
 * undefined otherwise.
 */
function inFormerMinorUnits(event: FollowUpEvent): FollowUpEvent | undefined {
  if (event.type === "purchase.completed" && minorUnitChanged(event.total.currency)) {
    const total = toFormerMinor(event.total);
    const prices = event.items.map((item) => toFormerMinor(item.unitPrice));
    if (!total || prices.some((price) => price === undefined)) return undefined;
    const items = event.items.map((item, i) => ({
      ...item,
      unitPrice: prices[i] ?? item.unitPrice,
    }));
    return { ...event, total, items };
  }
  if (
    event.type === "purchase.refunded" &&
    event.amount &&
    minorUnitChanged(event.amount.currency)
  ) {
    const amount = toFormerMinor(event.amount);
    return amount && { ...event, amount };
  }
  return undefined;
}

function fingerprintOf(json: string): string {
  return hash("sha256", json, "base64url").slice(0, 11);
}

/** The event's JSON with its instant as UTC with milliseconds (the same text when it was so). */
function canonicalJson(event: FollowUpEvent): string {
  const utc = new Date(instantMillis(event.occurredAt)).toISOString();
  // The spread keeps the key order, so `occurredAt` stays where it was.
  return utc === event.occurredAt
    ? eventJson(event)
    : JSON.stringify({ ...event, occurredAt: utc });
}

const jsonOfEvents = new WeakMap<FollowUpEvent, string>();

/**
 * The JSON of a validated event, made once per event object: intake hashes it for the fingerprint
 * and deflates it into the stored purchase (store/purchase-codec.ts). Validated events are never
 * changed (their fields are read-only), so the text stays the event's.
 */
export function eventJson(event: FollowUpEvent): string {
  let json = jsonOfEvents.get(event);
  if (json === undefined) {
    json = JSON.stringify(event);
    jsonOfEvents.set(event, json);
  }
  return json;
}

/**
 * Whether a kept fingerprint is one of this event's: the same, or one of 22 characters kept by key
 * layout 4 and before that begins with it (record-purchase.lua and claim-event-id.lua compare so).
 */
export function fingerprintMatches(kept: string, fingerprints: EventFingerprints): boolean {
  return fingerprints.some((fingerprint) => kept.startsWith(fingerprint));
}
