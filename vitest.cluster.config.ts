import { defineConfig } from "vitest/config";

/**
 * The integration tests that follow purchases through the whole pipeline, the operator commands
 * (CLI, admin API and console) over shards, and the promoter, re-planning, replies and calls run
 * again against a real Redis Cluster (three masters, three replicas) started by the global
 * setup, with customers spread over four shards.
 */
export default defineConfig({
  test: {
    globalSetup: ["test/support/global-setup-cluster.ts"],
    include: [
      "test/integration/pipeline.test.ts",
      "test/integration/lifecycle.test.ts",
      "test/integration/reports.test.ts",
      "test/integration/redis-cluster.test.ts",
      // The upgrade that moves the global keys copies them across slots on a cluster.
      "test/integration/key-layout-global.test.ts",
      "test/integration/operator-shards.test.ts",
      "test/integration/reshard.test.ts",
      "test/integration/migrate.test.ts",
      // The commands and surfaces operators use, each on the cluster.
      "test/integration/publish-command.test.ts",
      "test/integration/intake-retries.test.ts",
      "test/integration/operator-tools.test.ts",
      "test/integration/schedule-command.test.ts",
      "test/integration/replan.test.ts",
      "test/integration/demo-command.test.ts",
      "test/integration/discount-codes.test.ts",
      "test/integration/admin-api.test.ts",
      "test/integration/operator-opt-out.test.ts",
      "test/browser/console.test.ts",
      "test/integration/worker-process.test.ts",
      // Stores and flows keyed by customer, address or message, across shards.
      "test/integration/promoter.test.ts",
      "test/integration/customer-index.test.ts",
      "test/integration/opt-outs.test.ts",
      "test/integration/replies.test.ts",
      "test/integration/email-replies.test.ts",
      "test/integration/owner-alerts.test.ts",
      "test/integration/voice-calls.test.ts",
      "test/integration/check-in-comparison.test.ts",
      "test/integration/postponed-steps.test.ts",
      "test/integration/erasure-race.test.ts",
      "test/integration/lost-jobs.test.ts",
    ],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
  },
});
