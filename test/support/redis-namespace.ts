import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";

const SCAN_BATCH = 500;

/** Returns a fresh key prefix like `t-<label>-<random>` so each test owns its BullMQ keys. */
export function uniquePrefix(label: string): string {
  const safeLabel = label
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "");
  return `t-${safeLabel || "test"}-${randomBytes(6).toString("hex")}`;
}

/**
 * Deletes every key of a prefix with SCAN + UNLINK (never FLUSHDB): BullMQ's `<prefix>:*` and the
 * store's hash-tagged `{<prefix>}:*` and `{<prefix>:<shard>}:*`. Returns how many.
 */
export async function deleteKeysWithPrefix(redis: Redis, prefix: string): Promise<number> {
  if (prefix.length === 0) throw new Error("refusing to delete keys for an empty prefix");
  const escaped = escapeGlob(prefix);
  let deleted = 0;
  for (const pattern of [`${escaped}:*`, `{${escaped}}:*`, `{${escaped}:*}:*`]) {
    let cursor = "0";
    do {
      const [nextCursor, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", SCAN_BATCH);
      cursor = nextCursor;
      if (keys.length > 0) deleted += await redis.unlink(...keys);
    } while (cursor !== "0");
  }
  return deleted;
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, "\\$&");
}
