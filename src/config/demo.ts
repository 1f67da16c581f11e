/**
 * `aoed --demo`: a working target on any Linux machine (as root), no hardware needed.
 * Exports a sparse 64 MiB image as e0.0 ("demo") on aoed-demo0, one end of a veth pair;
 * an initiator on the same machine reaches it through the other end, aoed-demo1:
 *
 *   modprobe aoe aoe_iflist=aoed-demo1 && aoe-discover && ls /dev/etherd/   # e0.0
 */

import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { lstat, mkdir, open } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { formatDiagnostic } from "./diagnostics.js";
import { loadConfigText, systemInterfaces } from "./load.js";
import type { Config } from "./types.js";

export const DEMO_INTERFACE = "aoed-demo0";
export const DEMO_PEER = "aoed-demo1";
const DEMO_DIR = "/tmp/aoed-demo";
export const DEMO_IMAGE_BYTES = 64 * 1024 * 1024;
const DEMO_SOURCE = "embedded:demo";

/** The demo config, as a user would write it. */
function demoYaml(dir: string = DEMO_DIR): string {
  return `log-level: info
state-dir: ${join(dir, "state")}
interfaces:
  ${DEMO_INTERFACE}:
    mtu: auto
exports:
  - name: demo
    path: ${join(dir, "demo.img")}
    shelf: 0
    slot: 0
    interfaces: [${DEMO_INTERFACE}]
    serial: AOED-DEMO
`;
}

export interface DemoOptions {
  /** Where the image and state live (default /tmp/aoed-demo). */
  dir?: string;
  /** Runs a command; rejects on failure (default: execFile). */
  run?: (cmd: string, args: string[]) => Promise<void>;
  /** Lists network interfaces (default: /sys/class/net). */
  interfaces?: () => string[];
}

const execFileP = promisify(execFile);

async function defaultRun(cmd: string, args: string[]): Promise<void> {
  await execFileP(cmd, args);
}

/**
 * Creates `dir` (mode 0700) or checks that it is a real directory that only we can write:
 * as root in /tmp, anything else could be someone's symlink to a file we must not touch.
 */
async function privateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  const uid = process.getuid?.();
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o022) !== 0) {
    throw new Error(
      `aoed --demo: ${dir} is not a directory that only this user can write; remove it and try again`,
    );
  }
}

/** Creates what the demo needs (idempotent) and returns its resolved Config. */
export async function prepareDemo(opts: DemoOptions = {}): Promise<Config> {
  const dir = opts.dir ?? DEMO_DIR;
  const run = opts.run ?? defaultRun;
  const listInterfaces = opts.interfaces ?? systemInterfaces;

  await privateDir(dir);
  await mkdir(join(dir, "state"), { recursive: true, mode: 0o700 });
  const flags = constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW;
  const image = await open(join(dir, "demo.img"), flags, 0o600);
  try {
    if ((await image.stat()).size < DEMO_IMAGE_BYTES) await image.truncate(DEMO_IMAGE_BYTES);
  } finally {
    await image.close();
  }

  const ip = async (...args: string[]): Promise<void> => {
    try {
      await run("ip", args);
    } catch (err) {
      const e = err as Error & { stderr?: string };
      const why = (e.stderr ?? "").trim() || e.message;
      throw new Error(
        `aoed --demo: \`ip ${args.join(" ")}\` failed: ${why}\n` +
          "The demo creates a veth pair, which needs root (CAP_NET_ADMIN) and iproute2: try `sudo aoed --demo`.",
      );
    }
  };
  if (!listInterfaces().includes(DEMO_INTERFACE)) {
    await ip(
      "link",
      "add",
      DEMO_INTERFACE,
      "mtu",
      "9000",
      "type",
      "veth",
      "peer",
      "name",
      DEMO_PEER,
      "mtu",
      "9000",
    );
  }
  await ip("link", "set", DEMO_INTERFACE, "up");
  await ip("link", "set", DEMO_PEER, "up");

  const result = await loadConfigText(demoYaml(dir), DEMO_SOURCE, {
    interfaces: listInterfaces(),
  });
  if (!result.ok) {
    // The embedded config is ours: failing to load it is a bug, not a user mistake.
    throw new Error(
      `the embedded demo config does not load:\n${result.errors.map((d) => formatDiagnostic(d)).join("\n")}`,
    );
  }
  return result.config;
}
