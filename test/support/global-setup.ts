import type { TestProject } from "vitest/node";
import { startRedisServer } from "./redis-server.js";

declare module "vitest" {
  export interface ProvidedContext {
    redisUrl: string;
    /** Whether redisUrl names the nodes of a Redis Cluster (global-setup-cluster.ts). */
    redisCluster: boolean;
    /** FOLLOW_UP_SHARDS of the pipelines the run starts (the cluster run spreads over several). */
    followUpShards: number;
  }
}

/** Vitest globalSetup: provides `redisUrl` (REDIS_URL or a private redis-server) to all tests. */
export default async function setup(
  project: TestProject,
): Promise<(() => Promise<void>) | undefined> {
  const externalUrl = process.env.REDIS_URL;
  project.provide("redisCluster", false);
  project.provide("followUpShards", 1);
  if (externalUrl) {
    project.provide("redisUrl", externalUrl);
    return undefined;
  }
  const server = await startRedisServer();
  project.provide("redisUrl", server.url);
  return async () => {
    await server.stop();
  };
}
