import { decodeStored } from "../../src/store/purchase-codec.js";
import { purchaseOfFields } from "../../src/store/purchase-fields.js";
import { isCluster, type RedisClient } from "../../src/store/redis-client.js";

/**
 * Every readable value under a key prefix, whatever its type, with what the store compresses
 * (stored purchases, in their records or keys of their own) decoded: for tests that prove personal
 * data is gone.
 */
export async function valuesUnder(
  redis: RedisClient,
  prefix: string,
): Promise<{ key: string; text: string }[]> {
  const found: { key: string; text: string }[] = [];
  // On a Redis Cluster every master holds some of the keys: each is scanned (SCAN through the
  // cluster client would see one node's keys only, and a test of erasure could not fail).
  const nodes = isCluster(redis) ? redis.nodes("master") : [redis];
  // BullMQ's keys start with the prefix, the store's with it inside a hash tag.
  for (const node of nodes)
    for (const pattern of [`${prefix}*`, `{${prefix}*`])
      await scanInto(redis, node, pattern, found);
  return found;
}

/** A key of a secret the workers made themselves (StoreKeys.secret). */
const SECRET_KEY = /:fu:secret:[^:]+$/;

/** Scans `node` for keys, and reads each through `redis` (which finds its node on a cluster). */
async function scanInto(
  redis: RedisClient,
  node: Pick<RedisClient, "scan">,
  pattern: string,
  found: { key: string; text: string }[],
): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await node.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    cursor = next;
    for (const key of keys) {
      const parts: string[] = [key];
      const type = await redis.type(key);
      // A secret the workers made (shared-secrets.ts: 32 random bytes in base64url) holds no one's
      // data, and now and then spells a needle by chance ("Erin", compared without case).
      if (SECRET_KEY.test(key)) {
        found.push({ key, text: key });
        continue;
      }
      if (type === "string") {
        const value = await redis.getBuffer(key);
        if (value) parts.push(readable(value));
      } else if (type === "hash") {
        const all = await redis.hgetallBuffer(key);
        for (const [field, value] of Object.entries(all)) parts.push(field, readable(value));
        // An event record's purchase, in 64-byte fields.
        const purchase = purchaseOfFields(all);
        if (purchase) parts.push(readable(purchase));
      } else if (type === "list") {
        parts.push(...(await redis.lrange(key, "0", "-1")));
      } else if (type === "set") {
        parts.push(...(await redis.smembers(key)));
      } else if (type === "zset") {
        parts.push(...(await redis.zrange(key, "0", "-1")));
      } else if (type === "stream") {
        for (const [, fields] of await redis.xrange(key, "-", "+")) parts.push(...fields);
      }
      found.push({ key, text: parts.join("\n") });
    }
  } while (cursor !== "0");
}

/** The keys under the prefix whose name or content contains one of the needles. */
export async function keysHolding(
  redis: RedisClient,
  prefix: string,
  needles: readonly string[],
): Promise<{ key: string; needle: string }[]> {
  const hits: { key: string; needle: string }[] = [];
  for (const { key, text } of await valuesUnder(redis, prefix)) {
    const lower = text.toLowerCase();
    for (const needle of needles) {
      if (lower.includes(needle.toLowerCase())) hits.push({ key, needle });
    }
  }
  return hits;
}

function readable(value: Buffer): string {
  if (value[0] === 1 || value[0] === 2) {
    try {
      return JSON.stringify(decodeStored(value));
    } catch {
      // Not a stored purchase after all.
    }
  }
  return value.toString("utf8");
}
