/**
 * Runs the built daemon under a command prefix (e.g. setpriv, to drop to
 * another user with only some capabilities), optionally inside a network
 * namespace: `ip netns exec NS PREFIX... node aoed --config FILE`. Both ip and
 * setpriv exec, so the child's pid is the daemon's.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import path from "node:path";

const BIN = path.resolve(import.meta.dirname, "../../dist/src/bin");
/** The daemon's entry point as built. */
export const AOED_ENTRY = path.join(BIN, "aoed.cjs");

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
  const cmd = [...prefix, process.execPath, AOED_ENTRY, ...args];
  return netns ? ["ip", "netns", "exec", netns, ...cmd] : cmd;
}

export interface DaemonAs {
  proc: ChildProcess;
  logs: Record<string, unknown>[];
  stop(): Promise<number | null>;
}

/** Starts it and resolves once it logs "aoed ready"; rejects with its output if it exits first. */
export function startDaemonAs(
  prefix: string[],
  args: string[],
  netns: string | null,
  timeoutMs = 15_000,
): Promise<DaemonAs> {
  const [cmd, ...rest] = argv(prefix, args, netns);
  const proc = spawn(cmd!, rest, { stdio: ["ignore", "pipe", "pipe"] });
  const logs: Record<string, unknown>[] = [];
  let out = "";
  let err = "";
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
  const daemon: DaemonAs = {
    proc,
    logs,
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill("SIGTERM");
      return exited;
    },
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`aoed not ready within ${timeoutMs} ms: ${out}${err}`));
    }, timeoutMs);
    proc.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
    });
    proc.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const lines = out.split("\n");
      out = lines.pop() ?? "";
      for (const line of lines) {
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          logs.push(entry);
          if (/aoed ready/.test(String(entry.msg))) {
            clearTimeout(timer);
            resolve(daemon);
          }
        } catch {
          // not a log line
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(
        new Error(`aoed exited with ${code} before it was ready: ${JSON.stringify(logs)} ${err}`),
      );
    });
  });
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
