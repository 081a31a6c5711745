import { randomBytes } from "node:crypto";
import { StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";

/**
 * A secret used when its variable is not set: random, created once per deployment and shared by
 * every worker through Redis, so codes and links stay stable across processes and restarts.
 */
export async function sharedSecret(
  redis: RedisClient,
  prefix: string,
  name: string,
): Promise<string> {
  const key = new StoreKeys(prefix).sharedSecret(name);
  await redis.set(key, randomBytes(32).toString("base64url"), "NX");
  return (await redis.get(key)) ?? "";
}
