import { configDefaults, defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    globalSetup: ["test/support/global-setup.ts"],
    include: ["test/**/*.test.ts"],
    exclude: ["test/faults/**", ...configDefaults.exclude],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    pool: "forks",
  },
});
