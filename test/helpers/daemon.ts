/**
 * The built daemon as a child process for integration tests: optionally in a
 * network namespace, with extra environment (e.g. AOED_SOCKET) or under a
 * command prefix such as strace or setpriv. The daemon logs its own pid, and
 * signals go to that pid, so they reach the daemon and not a wrapper.
 */
import { type ChildProcess, spawn } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { stagedBin } from "./daemon-as.js";

export const AOED = path.resolve(import.meta.dirname, "../../dist/src/bin/aoed.cjs");
let started = 0;

export interface DaemonOptions {
  /** Run inside this network namespace. */
  netns?: string | null;
  /** Extra environment (e.g. { AOED_SOCKET: path }). */
  env?: Record<string, string>;
  /** A command the daemon runs under, e.g. ["strace", "-f", "-o", file]. */
  wrap?: string[];
  /** setprivAs(...): run the copy other users can read (stagedBin) as another user. */
  as?: string[];
}

export interface Daemon {
  proc: ChildProcess;
  /** The daemon's own pid, from its log. */
  pid: number;
  /** Parsed JSON log lines so far. */
  logs: Record<string, unknown>[];
  stderr(): string;
  /** The first log line from index `from` on whose msg matches. */
  waitForLog(
    re: RegExp,
    opts?: { timeoutMs?: number; from?: number },
  ): Promise<Record<string, unknown>>;
  /** Resolves when the spawned process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL to the daemon; resolves once it has exited. */
  kill(): Promise<void>;
  /** SIGTERM to the daemon; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Starts it and resolves once it logs "aoed ready"; rejects with its output if it exits first. */
export async function startDaemon(args: string[], opts: DaemonOptions = {}): Promise<Daemon> {
  const argv = opts.as
    ? [...(opts.wrap ?? []), ...opts.as, process.execPath, stagedBin("aoed.cjs"), ...args]
    : [...(opts.wrap ?? []), process.execPath, AOED, ...args];
  // Each test daemon gets its own control socket unless its config names one.
  const env = {
    ...process.env,
    AOED_SOCKET: path.join(os.tmpdir(), `aoed-test-${process.pid}-${started++}.sock`),
    ...opts.env,
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
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on("exit", (code, signal) => resolve({ code, signal })),
  );

  const waitForLog: Daemon["waitForLog"] = (re, { timeoutMs = 15_000, from = 0 } = {}) => {
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
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`aoed exited (${code ?? signal}) before logging ${re}; stderr: ${err}`));
      });
    });
  };

  let ready: Record<string, unknown>;
  try {
    ready = await waitForLog(/aoed ready/);
  } catch (e) {
    proc.kill("SIGKILL");
    throw e;
  }
  const pid = Number(ready.pid);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error("aoed's log carries no pid");
  let done = false;
  void exited.then(() => {
    done = true;
  });
  const signal = (sig: NodeJS.Signals) => {
    if (done) return;
    try {
      process.kill(pid, sig);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
    }
  };
  return {
    proc,
    pid,
    logs,
    stderr: () => err,
    waitForLog,
    exited,
    async kill() {
      signal("SIGKILL");
      await exited;
    },
    async stop() {
      signal("SIGTERM");
      return (await exited).code;
    },
  };
}
