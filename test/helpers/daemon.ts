/** Runs the built daemon as a child process (optionally inside a network namespace) for integration tests. */
import { type ChildProcess, spawn } from "node:child_process";
import os from "node:os";
import path from "node:path";

const AOED = path.resolve(import.meta.dirname, "../../dist/src/bin/aoed.cjs");
let started = 0;

export interface Daemon {
  proc: ChildProcess;
  /** Parsed JSON log lines so far. */
  logs: Record<string, unknown>[];
  stderr(): string;
  /** Resolves with the first log line from index `from` on whose msg matches. */
  waitForLog(
    re: RegExp,
    opts?: { timeoutMs?: number; from?: number },
  ): Promise<Record<string, unknown>>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

export function startDaemon(args: string[], opts: { netns?: string | null } = {}): Promise<Daemon> {
  const argv = ["node", AOED, ...args];
  // Each test daemon gets its own control socket unless its config names one.
  const env = {
    ...process.env,
    AOED_SOCKET: path.join(os.tmpdir(), `aoed-test-${process.pid}-${started++}.sock`),
  };
  const proc = opts.netns
    ? spawn("ip", ["netns", "exec", opts.netns, ...argv], { env })
    : spawn(argv[0]!, argv.slice(1), { env });
  const logs: Record<string, unknown>[] = [];
  const waiters: { re: RegExp; resolve: (l: Record<string, unknown>) => void }[] = [];
  let err = "";
  let partial = "";
  proc.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
  });
  proc.stdout!.on("data", (d: Buffer) => {
    const lines = (partial + d.toString()).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line);
      } catch {
        continue;
      }
      logs.push(entry);
      for (const w of [...waiters]) {
        if (w.re.test(String(entry.msg))) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(entry);
        }
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));

  const daemon: Daemon = {
    proc,
    logs,
    stderr: () => err,
    waitForLog(re, { timeoutMs = 15_000, from = 0 } = {}) {
      const seen = logs.slice(from).find((l) => re.test(String(l.msg)));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no log matching ${re} within ${timeoutMs} ms; stderr: ${err}`)),
          timeoutMs,
        );
        waiters.push({
          re,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`aoed exited with ${code} before logging ${re}; stderr: ${err}`));
        });
      });
    },
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill("SIGTERM");
      return exited;
    },
  };
  return daemon.waitForLog(/aoed ready/).then(() => daemon);
}
