import type { PurchaseCompleted } from "../domain/events.js";
import { idHash } from "./keys.js";
import { decodePurchase } from "./purchase-codec.js";
import type { RedisClient } from "./redis-client.js";

/**
 * What versions before 2026-11-30 wrote and this one still reads, in one place so it can go when
 * the last such record has expired (RECORD_RETENTION_DAYS after its last step):
 * - the purchase as JSON in the event record's `event` field (now its own compressed key; the
 *   scrub in scripts/lib/scrub-finished-purchase.lua deletes this field too);
 * - follow-up jobs queued under 23-character job ids (now 15), which refunds and re-planning
 *   must still find.
 */

/** Where earlier versions kept the purchase, inside the event record. */
export const LEGACY_PURCHASE_FIELD = "event";

/** The purchase an earlier version kept inside the event record, if any. */
export async function readLegacyPurchase(
  redis: RedisClient,
  recordKey: string,
): Promise<PurchaseCompleted | undefined> {
  const legacy = await redis.hgetBuffer(recordKey, LEGACY_PURCHASE_FIELD);
  return legacy ? decodePurchase(legacy) : undefined;
}

/** The job id earlier versions gave a step (23 characters). */
export function legacyFollowUpJobId(eventId: string, stepId: string): string {
  return `f${idHash(`${eventId}\u0000${stepId}`)}`;
}
