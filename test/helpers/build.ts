import { execFileSync } from "node:child_process";

/** Compiles the daemon and tools into dist/ so integration tests run what users run. */
export default function setup(): void {
  execFileSync("npx", ["tsc", "-p", "tsconfig.json"], { stdio: "inherit" });
}
