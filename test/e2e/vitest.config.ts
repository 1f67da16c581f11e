import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// The end-to-end suite (QEMU guest with the Linux aoe initiator) is kept out of
// the main config; run it with: npx vitest run --config test/e2e/vitest.config.ts
export default defineConfig({
  test: {
    root: fileURLToPath(new URL("../..", import.meta.url)),
    include: ["test/e2e/**/*.test.ts"],
    testTimeout: 30 * 60 * 1000,
    hookTimeout: 60_000,
    pool: "forks",
    // one guest at a time: the machine has 2 cores and TCG is CPU-bound
    fileParallelism: false,
  },
});
