import { defineConfig } from "vitest/config";

/**
 * The integration tests that follow purchases through the whole pipeline, and the operator
 * commands over shards, run again against a real Redis Cluster (three masters, three replicas)
 * started by the global setup.
 */
export default defineConfig({
  test: {
    globalSetup: ["test/support/global-setup-cluster.ts"],
    include: [
      "test/integration/pipeline.test.ts",
      "test/integration/lifecycle.test.ts",
      "test/integration/reports.test.ts",
      "test/integration/redis-cluster.test.ts",
      "test/integration/operator-shards.test.ts",
      "test/integration/reshard.test.ts",
      "test/integration/migrate.test.ts",
    ],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
  },
});
