import { hash } from "node:crypto";
import type { FollowUpEvent } from "./events.js";

/**
 * What makes two events with one id the same event: the SHA-256 of the validated event (contract
 * v1, unknown keys dropped, values as the worker reads them), so a re-published event matches
 * itself whatever its key order, spacing or extra fields, and an id reused for other content does
 * not. 22 base64url characters (132 bits).
 */
export function eventFingerprint(event: FollowUpEvent): string {
  return hash("sha256", JSON.stringify(event), "base64url").slice(0, 22);
}
