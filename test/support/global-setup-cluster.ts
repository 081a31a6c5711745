import type { TestProject } from "vitest/node";
import { startRedisCluster } from "./redis-cluster.js";

/**
 * Vitest globalSetup of the Redis Cluster run (vitest.cluster.config.ts): a private six-node
 * cluster, provided as `redisUrl` (its nodes, comma-separated) with `redisCluster` true.
 */
export default async function setup(
  project: TestProject,
): Promise<(() => Promise<void>) | undefined> {
  const cluster = await startRedisCluster();
  project.provide("redisUrl", cluster.url);
  project.provide("redisCluster", true);
  return async () => {
    await cluster.stop();
  };
}
