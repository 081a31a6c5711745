import type { TestProject } from "vitest/node";
import { startRedisCluster } from "./redis-cluster.js";

/**
 * Vitest globalSetup of the Redis Cluster run (vitest.cluster.config.ts): a private six-node
 * cluster, provided as `redisUrl` (its nodes, comma-separated) with `redisCluster` true; the
 * pipelines spread their customers over four shards, so shards land on different masters.
 */
export default async function setup(
  project: TestProject,
): Promise<(() => Promise<void>) | undefined> {
  const cluster = await startRedisCluster();
  project.provide("redisUrl", cluster.url);
  project.provide("redisCluster", true);
  project.provide("followUpShards", 4);
  return async () => {
    await cluster.stop();
  };
}
