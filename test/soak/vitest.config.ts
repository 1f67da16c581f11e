import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// The soak suite: long, heavy runs (million-frame fuzz, floods, kill -9 loops,
// reload under load) kept out of `npm test`. Run with `npm run test:soak`.
export default defineConfig({
  test: {
    root: fileURLToPath(new URL("../..", import.meta.url)),
    include: ["test/soak/**/*.test.ts"],
    globalSetup: ["test/helpers/build.ts"],
    testTimeout: 10 * 60 * 1000,
    hookTimeout: 120_000,
    pool: "forks",
    // One at a time: each file loads both cores, and a soak run measures the daemon, not contention.
    fileParallelism: false,
  },
});
