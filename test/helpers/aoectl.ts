/** Runs the built aoectl (dist/) against a daemon's control socket, as root or as another user; reads a process's RSS. */
import { execFile } from "node:child_process";
import path from "node:path";
import { stagedBin } from "./daemon-as.js";

const AOECTL = path.resolve(import.meta.dirname, "../../dist/src/bin/aoectl.js");

export interface AoectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `aoectl ARGS --socket SOCK`; `as` (setprivAs) runs the staged copy as another user. */
export function aoectl(sock: string, args: string[], as: string[] = []): Promise<AoectlResult> {
  const bin = as.length > 0 ? stagedBin("aoectl.js") : AOECTL;
  const argv = [...as, process.execPath, bin, ...args, "--socket", sock];
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (err as { code?: unknown }).code : 0;
      resolve({ code: typeof code === "number" ? code : 1, stdout, stderr });
    });
  });
}

/** `aoectl ARGS --json`, parsed; throws with aoectl's message when it fails. */
export async function aoectlJson<T>(sock: string, ...args: string[]): Promise<T> {
  const r = await aoectl(sock, [...args, "--json"]);
  if (r.code !== 0) throw new Error(`aoectl ${args.join(" ")}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** VmRSS of a process in bytes, from /proc. */
export async function rssBytes(pid: number): Promise<number> {
  const { readFile } = await import("node:fs/promises");
  const m = /^VmRSS:\s+(\d+) kB/m.exec(await readFile(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}
