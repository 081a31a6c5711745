import { defineConfig } from "vitest/config";

/** `npm run test:faults`: the fault-injection scenarios, one file at a time (they spawn workers). */
export default defineConfig({
  test: {
    globalSetup: ["test/support/global-setup.ts"],
    include: ["test/faults/**/*.test.ts"],
    testTimeout: 300_000,
    hookTimeout: 60_000,
    pool: "forks",
    fileParallelism: false,
  },
});
