/**
 * The built daemon as a child process that tests may kill outright, run with
 * a chosen environment (AOED_IO=threads|uring) or under a wrapper such as
 * strace. Like test/helpers/daemon.ts, but the daemon's own pid is known
 * (from its first log line), so SIGKILL reaches the daemon and not the wrapper.
 */
import { type ChildProcess, spawn } from "node:child_process";
import os from "node:os";
import path from "node:path";

export const AOED = path.resolve(import.meta.dirname, "../../dist/src/bin/aoed.cjs");
let started = 0;

export interface AoedOptions {
  /** Run inside this network namespace. */
  netns?: string | null;
  /** Extra environment (e.g. { AOED_IO: "threads" }). */
  env?: Record<string, string>;
  /** A command the daemon runs under, e.g. ["strace", "-f", "-o", file, "-e", "trace=..."]. */
  wrap?: string[];
}

export interface AoedProc {
  proc: ChildProcess;
  /** The daemon's own pid (not a wrapper's). */
  pid: number;
  /** Parsed JSON log lines so far. */
  logs: Record<string, unknown>[];
  stderr(): string;
  /** The first log line from index `from` on whose msg matches. */
  waitForLog(
    re: RegExp,
    opts?: { timeoutMs?: number; from?: number },
  ): Promise<Record<string, unknown>>;
  /** Resolves when the spawned process (the wrapper, if any) has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL to the daemon; resolves once the spawned process has exited. */
  kill(): Promise<void>;
  /** SIGTERM to the daemon; resolves with the exit code. */
  stop(): Promise<number | null>;
}

export async function startAoed(args: string[], opts: AoedOptions = {}): Promise<AoedProc> {
  const argv = [...(opts.wrap ?? []), process.execPath, AOED, ...args];
  const env = {
    ...process.env,
    AOED_SOCKET: path.join(os.tmpdir(), `aoed-rel-${process.pid}-${started++}.sock`),
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

  const waitForLog: AoedProc["waitForLog"] = (re, { timeoutMs = 15_000, from = 0 } = {}) => {
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

  const ready = await waitForLog(/aoed ready/);
  const pid = Number(ready.pid);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error("aoed's log carries no pid");
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
    }
  };
  let done = false;
  void exited.then(() => {
    done = true;
  });
  return {
    proc,
    pid,
    logs,
    stderr: () => err,
    waitForLog,
    exited,
    async kill() {
      if (!done) signal("SIGKILL");
      await exited;
    },
    async stop() {
      if (!done) signal("SIGTERM");
      return (await exited).code;
    },
  };
}
