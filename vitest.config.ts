import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // test/e2e and test/soak have configs of their own (npm run test:e2e, test:soak).
    exclude: ["test/e2e/**", "test/soak/**", "node_modules/**"],
    // Integration tests spawn the built daemon: compile once before any test runs.
    globalSetup: ["test/helpers/build.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Most files wait on the network and on daemons, not on the CPU: two at a time on 2 cores.
    maxWorkers: 2,
  },
});
