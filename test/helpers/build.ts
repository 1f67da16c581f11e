/**
 * Global setup: compiles the daemon and tools into dist/ so integration tests
 * run what users run, then stages a copy for the tests that run them as
 * another user (see staged.ts).
 */
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { TestProject } from "vitest/node";

const ROOT = path.resolve(import.meta.dirname, "../..");

/** Whether every file compiled from src/ is newer than its source and than tsconfig.json and package.json. */
function distIsFresh(): boolean {
  const config = ["tsconfig.json", "package.json"].map((f) => fs.statSync(path.join(ROOT, f)));
  const floor = Math.max(...config.map((s) => s.mtimeMs));
  const walk = (dir: string): boolean =>
    fs.readdirSync(dir, { withFileTypes: true }).every((e) => {
      const src = path.join(dir, e.name);
      if (e.isDirectory()) return walk(src);
      const m = /\.(c?)ts$/.exec(e.name);
      if (!m) return true;
      const out = path
        .join(ROOT, "dist", path.relative(ROOT, src))
        .replace(/\.c?ts$/, `.${m[1]}js`);
      try {
        const built = fs.statSync(out).mtimeMs;
        return built >= fs.statSync(src).mtimeMs && built >= floor;
      } catch {
        return false;
      }
    });
  return walk(path.join(ROOT, "src"));
}

/** The package directories the daemon needs at run time: its dependencies, transitively. */
function runtimePackages(): string[] {
  const seen = new Set<string>();
  const visit = (from: string) => {
    const pkg = JSON.parse(fs.readFileSync(path.join(from, "package.json"), "utf8")) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    for (const name of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) {
      // Nested copies travel with their parent; hoisted ones sit in the root's node_modules.
      if (from !== ROOT && fs.existsSync(path.join(from, "node_modules", name))) continue;
      const dir = path.join(ROOT, "node_modules", name);
      if (seen.has(dir) || !fs.existsSync(dir)) continue;
      seen.add(dir);
      visit(dir);
    }
  };
  visit(ROOT);
  return [...seen];
}

/** Why `file` is not readable by user nobody, or null if it is. */
function unreadableByNobody(file: string): string | null {
  const r = spawnSync(
    "setpriv",
    ["--reuid=65534", "--regid=65534", "--clear-groups", "cat", file],
    {
      encoding: "utf8",
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  if (r.error) return `setpriv: ${r.error.message}`;
  return r.status === 0 ? null : r.stderr.trim() || `cat exited ${r.status}`;
}

/**
 * Copies dist/src, the native addon, package.json and the runtime packages to
 * a fresh 0755 directory under the temp dir: the clone itself may sit under a
 * directory other users cannot enter (/root, a `mktemp -d` directory).
 */
function stage(): { dir: string | null; problem: string | null } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-staged-"));
  fs.chmodSync(dir, 0o755);
  fs.cpSync(path.join(ROOT, "dist", "src"), path.join(dir, "dist", "src"), { recursive: true });
  fs.cpSync(path.join(ROOT, "package.json"), path.join(dir, "package.json"));
  fs.cpSync(
    path.join(ROOT, "build", "Release", "aoed_native.node"),
    path.join(dir, "build", "Release", "aoed_native.node"),
  );
  for (const pkg of runtimePackages())
    fs.cpSync(
      pkg,
      path.join(dir, "node_modules", path.relative(path.join(ROOT, "node_modules"), pkg)),
      {
        recursive: true,
      },
    );
  const probe = path.join(dir, "dist", "src", "bin", "aoectl.js");
  const why = unreadableByNobody(probe);
  if (why === null) return { dir, problem: null };
  fs.rmSync(dir, { recursive: true, force: true });
  return {
    dir: null,
    problem: `user nobody cannot read the staged copy of aoed at ${probe} (${why}): the temp dir ${os.tmpdir()} must be reachable by other users`,
  };
}

export default function setup(project: TestProject): () => void {
  if (!distIsFresh()) execFileSync("npx", ["tsc", "-p", "tsconfig.json"], { stdio: "inherit" });
  const { dir, problem } = stage();
  project.provide("stagedRoot", dir);
  project.provide("stagedProblem", problem);
  return () => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    /** A copy of the built daemon other users can read, or null (see stagedProblem). */
    stagedRoot: string | null;
    stagedProblem: string | null;
  }
}
