import { LEGACY_PURCHASE_FIELD } from "./legacy-layout.js";
import { decodeStored, type KeptPurchase } from "./purchase-codec.js";
import type { RedisClient } from "./redis-client.js";

/**
 * The stored purchase inside its event record: the encoded purchase (purchase-codec.ts) cut into
 * fields `p0`, `p1`, … of at most 64 bytes (scripts/lib/purchase-fields.lua writes them), so the
 * record stays a compact listpack on a Redis with default settings and expires with it.
 */

/** The record's fields as buffers (HGETALL), from which the purchase is read. */
export type RecordFields = Readonly<Record<string, Buffer>>;

/** The encoded purchase the record's fields hold, or undefined when they hold none. */
export function purchaseOfFields(fields: RecordFields): Buffer | undefined {
  const chunks: Buffer[] = [];
  for (let chunk = fields.p0; chunk !== undefined; chunk = fields[`p${chunks.length}`])
    chunks.push(chunk);
  return chunks.length > 0 ? Buffer.concat(chunks) : undefined;
}

/**
 * Whose purchase a record holds: the purchase in its fields (whole, or the part kept after its
 * last step), else the JSON of versions before 2026-11-30; undefined when it holds neither.
 */
export async function purchaseInRecord(
  redis: RedisClient,
  recordKey: string,
): Promise<Pick<KeptPurchase, "id" | "customer"> | undefined> {
  return purchaseOfRecordFields(await redis.hgetallBuffer(recordKey));
}

/** Whose purchase a record's fields hold (purchaseInRecord), from fields already read. */
export function purchaseOfRecordFields(
  fields: RecordFields,
): Pick<KeptPurchase, "id" | "customer"> | undefined {
  const encoded = purchaseOfFields(fields);
  if (encoded) {
    const decoded = decodeStored(encoded);
    return decoded.kind === "whole" ? decoded.event : decoded.kept;
  }
  const legacy = fields[LEGACY_PURCHASE_FIELD];
  return legacy ? (JSON.parse(legacy.toString("utf8")) as KeptPurchase) : undefined;
}
