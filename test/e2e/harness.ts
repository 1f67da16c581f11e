// TypeScript front end of the AoE end-to-end harness (test/e2e/run-guest.sh).
// It spawns the shell harness, streams its output, and parses the result
// lines.  All the work (namespaces, QEMU, the target, capture, checks) is in
// the shell script so that CI and people can run exactly the same thing.
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
export const RUN_GUEST = join(HERE, "run-guest.sh");

/**
 * discover < raw < ext4 < full each include the previous ones; reload (aoed
 * only) is discover plus verified I/O on e0.0 while the config is rewritten;
 * failover (aoed, failover-target.sh) is node loss, restart and link loss
 * under verified I/O.
 */
export type Scenario = "discover" | "raw" | "ext4" | "full" | "reload" | "failover";

export interface E2EOptions {
  /** MTU of every link and of the guest NIC. Default 1500. */
  mtu?: number;
  /** Guest scenario (see Scenario). Default "full". */
  scenario?: Scenario;
  /**
   * Target start command, a `sh -c` template run inside the target network
   * namespace. Placeholders: {iface} {file0} {file1} {file2} {mtu} {ns}
   * {out} (also exported as AOE_IFACE, AOE_FILE0, AOE_FILE1, AOE_FILE2,
   * AOE_MTU, AOE_NETNS, AOE_OUT). It must export {file0} as e0.0 and {file1} as e0.1 on {iface}
   * and run until SIGTERM (sent to its process group). Default: two vblades.
   */
  targetCmd?: string;
  /** Directory for console.log, target.log, capture, ... (default under .cache/e2e/runs). */
  outDir?: string;
  /** Size of each sparse backing file in MiB (>= 256). */
  imgMiB?: number;
  /** Bound on guest boot -> summary line, seconds (default 900). */
  timeoutSec?: number;
  /** Keep images and capture even on success. */
  keep?: boolean;
  /** Extra environment for run-guest.sh (E2E_* knobs, see README.md). */
  env?: Record<string, string>;
  /** Called with every output line as it arrives. */
  onLine?: (line: string) => void;
  /** Hard bound for the whole harness process, ms (default timeoutSec + 300 s). */
  killAfterMs?: number;
}

export interface Step {
  name: string;
  status: "PASS" | "FAIL" | "SKIP";
  seconds?: number;
  detail: string;
}

export interface E2EResult {
  ok: boolean;
  exitCode: number | null;
  /** Guest steps (net, discover, sizes, raw, ext4, md). */
  guest: Step[];
  /** Host-side checks (aoeping, backing-file verification, tshark). */
  host: { ok: boolean; detail: string }[];
  /** Seconds per harness phase, plus "total". */
  timings: Record<string, number>;
  /** Key/values of the E2E-CAPTURE line (frame statistics). */
  capture: Record<string, number>;
  /** E2E-INFO lines from the guest. */
  info: string[];
  outDir: string | undefined;
  output: string;
}

/** Why the harness cannot run here, or undefined if it can. */
export function e2eUnavailableReason(): string | undefined {
  if (process.platform !== "linux") return "not Linux";
  if (typeof process.getuid === "function" && process.getuid() !== 0) return "not root";
  for (const tool of [
    "qemu-system-x86_64",
    "ip",
    "aoeping",
    "fio",
    "tshark",
    "busybox",
    "mdadm",
    "curl",
  ]) {
    const r = spawnSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    if (r.status !== 0) return `missing ${tool} (see test/e2e/README.md)`;
  }
  if (!existsSync("/dev/net/tun")) return "no /dev/net/tun";
  return undefined;
}

export function parseOutput(output: string): Omit<E2EResult, "exitCode" | "output"> {
  const guest: Step[] = [];
  const host: { ok: boolean; detail: string }[] = [];
  const timings: Record<string, number> = {};
  const capture: Record<string, number> = {};
  const info: string[] = [];
  let ok = false;
  let outDir: string | undefined;
  for (const raw of output.split("\n")) {
    const line = raw.replace(/^ {2}guest\| /, "").replace(/\r$/, "");
    let m = /^E2E-(PASS|FAIL|SKIP) (\S+)(?: ([0-9.]+))? ?(.*)$/.exec(line);
    if (m && raw.startsWith("  guest| ")) {
      const step: Step = { name: m[2]!, status: m[1] as Step["status"], detail: m[4] ?? "" };
      if (m[1] === "PASS" && m[3] !== undefined) step.seconds = Number(m[3]);
      else if (m[3] !== undefined) step.detail = `${m[3]} ${step.detail}`.trim();
      guest.push(step);
      continue;
    }
    if (raw.startsWith("  guest| E2E-INFO ")) {
      info.push(line.slice("E2E-INFO ".length));
      continue;
    }
    m = /^HOST-(PASS|FAIL) (.*)$/.exec(raw);
    if (m) {
      host.push({ ok: m[1] === "PASS", detail: m[2]! });
      continue;
    }
    if (raw.startsWith("timings (s):")) {
      for (const kv of raw.slice("timings (s):".length).trim().split(/\s+/)) {
        const [k, v] = kv.split("=");
        if (k && v) timings[k] = Number(v);
      }
      continue;
    }
    if (raw.startsWith("E2E-CAPTURE ")) {
      for (const kv of raw.slice("E2E-CAPTURE ".length).trim().split(/\s+/)) {
        const [k, v] = kv.split("=");
        if (k && v) capture[k] = Number(v);
      }
      continue;
    }
    m = /^E2E-RESULT (PASS|FAIL) .*out=(\S+)/.exec(raw);
    if (m) {
      ok = m[1] === "PASS";
      outDir = m[2];
    }
  }
  return { ok, guest, host, timings, capture, info, outDir };
}

/** Run the whole end-to-end scenario once. Resolves (never rejects) with the parsed result. */
export function runE2E(opts: E2EOptions = {}): Promise<E2EResult> {
  const args = [
    RUN_GUEST,
    "--mtu",
    String(opts.mtu ?? 1500),
    "--scenario",
    opts.scenario ?? "full",
  ];
  if (opts.targetCmd) args.push("--target-cmd", opts.targetCmd);
  if (opts.outDir) args.push("--out", opts.outDir);
  if (opts.imgMiB) args.push("--img-mb", String(opts.imgMiB));
  const timeoutSec = opts.timeoutSec ?? 900;
  args.push("--timeout", String(timeoutSec));
  if (opts.keep) args.push("--keep");
  const child = spawn("bash", args, {
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  let pending = "";
  const onData = (chunk: Buffer) => {
    const text = chunk.toString("utf8");
    output += text;
    if (!opts.onLine) return;
    pending += text;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const l of lines) opts.onLine(l);
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  // The script bounds every wait itself; this is only a last resort. SIGTERM
  // lets its trap tear down namespaces and processes.
  const killAfter = opts.killAfterMs ?? (timeoutSec + 300) * 1000;
  const timer = setTimeout(() => child.kill("SIGTERM"), killAfter);
  return new Promise((resolve) => {
    child.on("close", (code) => {
      clearTimeout(timer);
      if (pending && opts.onLine) opts.onLine(pending);
      const parsed = parseOutput(output);
      resolve({ ...parsed, ok: parsed.ok && code === 0, exitCode: code, output });
    });
  });
}
