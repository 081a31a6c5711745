import { randomBytes } from "node:crypto";
import { isCluster, type RedisClient } from "../../src/store/redis-client.js";

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
 * hash-tagged `{<prefix>}:*` (queues on a cluster), `{<prefix>.global…}:*` (global keys) and
 * `{<prefix>:<shard>}:*`. Returns how many.
 */
export async function deleteKeysWithPrefix(redis: RedisClient, prefix: string): Promise<number> {
  if (prefix.length === 0) throw new Error("refusing to delete keys for an empty prefix");
  const escaped = escapeGlob(prefix);
  let deleted = 0;
  // On a Redis Cluster every master holds some of the keys: each is scanned.
  const nodes = isCluster(redis) ? redis.nodes("master") : [redis];
  const patterns = [`${escaped}:*`, `{${escaped}}:*`, `{${escaped}.global*}:*`, `{${escaped}:*}:*`];
  for (const node of nodes) {
    for (const pattern of patterns) {
      let cursor = "0";
      do {
        const [nextCursor, keys] = await node.scan(cursor, "MATCH", pattern, "COUNT", SCAN_BATCH);
        cursor = nextCursor;
        if (keys.length === 0) continue;
        // On a cluster one key at a time: one command may not name keys of different slots.
        if (!isCluster(redis)) deleted += await node.unlink(...keys);
        else for (const key of keys) deleted += await node.unlink(key);
      } while (cursor !== "0");
    }
  }
  return deleted;
}

/**
 * Every key matching a glob pattern, on one Redis or on every master of a Redis Cluster (KEYS or
 * SCAN through the cluster client would ask one node only).
 */
export async function keysMatching(redis: RedisClient, pattern: string): Promise<string[]> {
  const found: string[] = [];
  for (const node of isCluster(redis) ? redis.nodes("master") : [redis]) {
    let cursor = "0";
    do {
      const [nextCursor, keys] = await node.scan(cursor, "MATCH", pattern, "COUNT", SCAN_BATCH);
      cursor = nextCursor;
      found.push(...keys);
    } while (cursor !== "0");
  }
  return found;
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, "\\$&");
}
