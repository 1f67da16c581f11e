#!/usr/bin/env node
/**
 * aoed-device-access: gives the service user access to exactly the block
 * devices its config exports, and takes it away from every other one.
 *
 *   aoed-device-access --config /etc/aoed.yaml --user aoed
 *
 * The unit runs it as root (`ExecStartPre=+`, and before `aoectl reload` in
 * `ExecReload=+`), so the daemon itself needs no `disk` group: a POSIX ACL
 * entry `user:aoed:rw-` (`r--` for read-only exports) is set on each exported
 * block device node, and removed from every block device node in /dev that
 * has one but is no longer exported. Image files are left alone: their owner
 * and mode decide, as for any file. A config that does not load changes
 * nothing (the daemon or `aoectl reload` reports why). The ACLs are set and
 * read with setfacl/getfacl (package acl). See docs/architecture.md.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { loadConfigFile } from "../config/load.js";

const USAGE = "usage: aoed-device-access --config FILE --user NAME";

function fail(message: string, status = 1): never {
  process.stderr.write(`aoed-device-access: ${message}\n`);
  process.exit(status);
}

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT") fail(`${cmd}: not found (install the acl package)`);
    fail(`${cmd} ${args.join(" ")}: ${(e.stderr ?? e.message).trim()}`);
  }
}

/** Every block device node directly in /dev (where the kernel's names live; /dev/vg/lv and /dev/disk/* link to them). */
function blockNodes(): string[] {
  return fs
    .readdirSync("/dev", { withFileTypes: true })
    .filter((d) => d.isBlockDevice())
    .map((d) => path.join("/dev", d.name));
}

/** Nodes among `nodes` whose ACL has an entry for `user`. */
function withEntryFor(user: string, nodes: string[]): string[] {
  if (nodes.length === 0) return [];
  // --skip-base: only files with extended ACLs; -p: names as given.
  const out = run("getfacl", ["--skip-base", "-p", ...nodes]);
  const found: string[] = [];
  let file = "";
  for (const line of out.split("\n")) {
    if (line.startsWith("# file: ")) file = line.slice(8);
    else if (line.startsWith(`user:${user}:`)) found.push(file);
  }
  return found;
}

async function main(): Promise<void> {
  let values: { config?: string; user?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        config: { type: "string" },
        user: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`, 2);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (!values.config || !values.user) fail(`--config and --user are required\n${USAGE}`, 2);
  const user = values.user;
  try {
    execFileSync("id", ["-u", user], { stdio: "ignore" });
  } catch {
    fail(`no such user: ${user}`, 2);
  }

  const result = await loadConfigFile(values.config);
  if (!result.ok) {
    process.stderr.write(
      `aoed-device-access: ${values.config} does not load; device access unchanged\n`,
    );
    return;
  }
  // Exported block devices by their node in /dev, rw unless every export of it is read-only.
  const wanted = new Map<string, { mode: "rw" | "r"; names: string[] }>();
  for (const e of result.config.exports) {
    let node: string;
    try {
      node = fs.realpathSync(e.path);
      if (!fs.statSync(node).isBlockDevice()) continue;
    } catch {
      continue; // not there (yet): nothing to grant; the daemon reports it
    }
    const entry = wanted.get(node) ?? { mode: "r", names: [] };
    if (!e.readOnly) entry.mode = "rw";
    entry.names.push(e.name);
    wanted.set(node, entry);
  }

  const stale = withEntryFor(
    user,
    blockNodes().filter((n) => !wanted.has(n)),
  );
  if (stale.length > 0) {
    run("setfacl", ["-x", `u:${user}`, ...stale]);
    process.stderr.write(`aoed-device-access: revoked ${user}'s access to ${stale.join(", ")}\n`);
  }
  for (const [node, { mode, names }] of wanted) {
    run("setfacl", ["-m", `u:${user}:${mode}`, node]);
    process.stderr.write(
      `aoed-device-access: ${user} may open ${node} (${mode}) for ${names.join(", ")}\n`,
    );
  }
}

main().catch((err) => fail((err as Error).message));
