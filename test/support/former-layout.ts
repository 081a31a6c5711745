import { formerGlobalBase, globalTag, StoreKeys } from "../../src/store/keys.js";
import type { RedisClient } from "../../src/store/redis-client.js";
import { scanKeys } from "../../src/store/reshard-store.js";

/**
 * Puts every global key back beside the input queue (`{<prefix>}:fu:…`), value and expiry kept,
 * with the layout mark `layout` there: the Redis a worker of layouts 2 to 5 would have left.
 * Works on one Redis and on a cluster (DUMP and RESTORE: the two names lie in different slots).
 */
export async function backToFormerGlobalKeys(
  redis: RedisClient,
  prefix: string,
  layout: string,
): Promise<{ moved: number; lasting: number }> {
  const keys = new StoreKeys(prefix);
  await redis.del(keys.layoutLock());
  const from = `${globalTag(prefix)}:fu:`;
  const to = formerGlobalBase(prefix);
  let moved = 0;
  // Keys that outlive the test (a rate slot lasts about a second and may be gone at the upgrade).
  let lasting = 0;
  for await (const found of scanKeys(redis, `${from}*`)) {
    for (const key of found) {
      const [value, expiresAt] = await Promise.all([redis.dumpBuffer(key), redis.pexpiretime(key)]);
      if (value === null) continue;
      await redis.restore(
        `${to}${key.slice(from.length)}`,
        Math.max(expiresAt, 0),
        value,
        "ABSTTL",
      );
      await redis.del(key);
      moved++;
      if (expiresAt === -1 || expiresAt > Date.now() + 60_000) lasting++;
    }
  }
  await redis.set(`${to}layout`, layout);
  return { moved, lasting };
}
