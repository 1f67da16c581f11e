/**
 * The built daemon as another user: setpriv arguments for startDaemon's `wrap`,
 * and a run to completion for configurations that must fail at start
 * (`ip netns exec NS setpriv ... node aoed --config FILE`).
 */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { inject } from "vitest";

/**
 * A built program (aoed.cjs, aoectl.js) that another user can run: the global
 * setup's copy (build.ts), since the clone may sit where others cannot enter.
 */
export function stagedBin(name: "aoed.cjs" | "aoectl.js"): string {
  const root = inject("stagedRoot");
  if (root === null) throw new Error(inject("stagedProblem") ?? "no staged copy of aoed");
  return path.join(root, "dist", "src", "bin", name);
}

/** setpriv arguments: become `user`:`group` with no supplementary groups and only `caps` (e.g. ["net_raw"]). */
export function setprivAs(user: string, group: string, caps: string[]): string[] {
  const set = ["-all", ...caps.map((c) => `+${c}`)].join(",");
  return [
    "setpriv",
    `--reuid=${user}`,
    `--regid=${group}`,
    "--clear-groups",
    `--inh-caps=${set}`,
    `--ambient-caps=${set}`,
    `--bounding-set=${set}`,
  ];
}

function argv(prefix: string[], args: string[], netns: string | null): string[] {
  const cmd = [...prefix, process.execPath, stagedBin("aoed.cjs"), ...args];
  return netns ? ["ip", "netns", "exec", netns, ...cmd] : cmd;
}

/** Runs it to completion (for configurations that must fail at start): exit code and parsed log lines. */
export function runDaemonAs(
  prefix: string[],
  args: string[],
  netns: string | null,
): { code: number | null; logs: Record<string, unknown>[]; stderr: string } {
  const [cmd, ...rest] = argv(prefix, args, netns);
  const r = spawnSync(cmd!, rest, { encoding: "utf8", timeout: 30_000 });
  const logs = r.stdout
    .split("\n")
    .filter(Boolean)
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  return { code: r.status, logs, stderr: r.stderr };
}
