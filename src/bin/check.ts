/**
 * `aoed check`: whether the daemon, started now as this user, would serve every
 * export. Each backing store is opened the way the engine opens it (same
 * access mode, O_DSYNC and O_DIRECT; only O_EXCL is left out, so a running
 * aoed holding a device does not make the check fail), then closed. Run as the
 * service's user (`sudo -u aoed aoed check`) it shows the service's view.
 *
 * Exit status: 0 every export would serve; 1 the config is valid but an
 * export would not serve now (something it names does not exist, or this user
 * cannot open it); 2 the config has errors (the daemon refuses to start).
 */
import fs from "node:fs";
import os from "node:os";
import { type BackingProbe, describeConfig } from "../config/describe.js";
import type { Diagnostic } from "../config/diagnostics.js";
import type { Config, ExportConfig } from "../config/types.js";
import { openBackend } from "../engine/export-backend.js";
import { blockDeviceSize } from "../io/blockdev.js";
import { linkState } from "../net/link-monitor.js";

/** A regular file's size from stat; a block device's from the device. */
export const probeBacking: BackingProbe = (path) => {
  const st = fs.statSync(path);
  if (!st.isBlockDevice()) return { kind: "file", bytes: st.size };
  const fd = fs.openSync(path, "r");
  try {
    return { kind: "block device", bytes: blockDeviceSize(fd) };
  } finally {
    fs.closeSync(fd);
  }
};

/** Why `e` would not serve now, or null when it would. */
async function problem(e: ExportConfig, user: string): Promise<string | null> {
  const missing = e.interfaces.filter((n) => linkState(n) === null);
  if (!fs.existsSync(e.path))
    return `waits: ${[`${e.path} does not exist`, ...missing.map((n) => `no interface ${n}`)].join(", ")}`;
  if (missing.length === e.interfaces.length)
    return `waits: ${missing.map((n) => `no interface ${n}`).join(", ")}`;
  try {
    await (await openBackend(e, true)).close();
    return null;
  } catch (err) {
    const message = (err as Error).message;
    const mode = e.readOnly ? fs.constants.R_OK : fs.constants.R_OK | fs.constants.W_OK;
    try {
      fs.accessSync(e.path, mode);
    } catch (access) {
      const code = (access as NodeJS.ErrnoException).code;
      if (code === "EACCES" || code === "EPERM") {
        const rw = e.readOnly ? "r" : "rw";
        return `cannot open: user ${user} may not open ${e.path} for ${e.readOnly ? "reading" : "reading and writing"} (open: ${code}); fix: give ${user} access to exactly this path, e.g. \`setfacl -m u:${user}:${rw} ${e.path}\`${e.readOnly ? "" : ", or set `read-only: true` if it should be read-only"}`;
      }
    }
    return `cannot open: ${message}`;
  }
}

/** Prints the exports with what keeps any of them from serving; returns the exit status. */
export async function check(config: Config, warnings: readonly Diagnostic[]): Promise<number> {
  const user = os.userInfo().username;
  const problems = new Map<string, string>();
  const found = await Promise.all(config.exports.map((e) => problem(e, user)));
  config.exports.forEach((e, i) => {
    if (found[i] !== null) problems.set(e.name, found[i]!);
  });
  process.stdout.write(describeConfig(config, probeBacking, problems));
  if (problems.size === 0) return 0;
  const absent = warnings.filter((w) => w.absent).length;
  process.stderr.write(
    `aoed: ${config.source}: valid, but ${problems.size} of ${config.exports.length} export(s) would not serve now as user ${user}${absent > 0 ? ` (${absent} thing(s) named do not exist: a typo, or not there yet?)` : ""}\n`,
  );
  return 1;
}
