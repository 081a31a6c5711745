import { hash } from "node:crypto";
import type { FollowUpEvent } from "./events.js";

/**
 * What makes two events with one id the same event: the SHA-256 of the validated event (contract
 * v1, unknown keys dropped, values as the worker reads them), so a re-published event matches
 * itself whatever its key order, spacing or extra fields, and an id reused for other content does
 * not. 11 base64url characters (66 bits: an id reused for other content goes unnoticed with a
 * chance of one in 10^19), kept with every purchase's record. Key layout 4 and before kept 22
 * characters of the same hash: see fingerprintMatches.
 */
export function eventFingerprint(event: FollowUpEvent): string {
  return hash("sha256", eventJson(event), "base64url").slice(0, 11);
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
 * Whether a kept fingerprint is this event's: the same, or one of 22 characters kept by key
 * layout 4 and before that begins with it (record-purchase.lua and claim-event-id.lua compare so).
 */
export function fingerprintMatches(kept: string, fingerprint: string): boolean {
  return kept.startsWith(fingerprint);
}
