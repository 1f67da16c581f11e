/**
 * Unix group lookups for the control socket: the config names a group, the
 * daemon needs its id, and aoectl names the group in a permission error.
 * /etc/group first, then `getent` for groups from NSS (LDAP, sssd...).
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

function parse(line: string): GroupEntry | null {
  const [name, , gid, members] = line.split(":");
  if (!name || gid === undefined || !/^\d+$/.test(gid)) return null;
  return { name, gid: Number(gid), members: (members ?? "").split(",").filter(Boolean) };
}

function fromEtcGroup(match: (g: GroupEntry) => boolean): GroupEntry | null {
  let text: string;
  try {
    text = readFileSync("/etc/group", "utf8");
  } catch {
    return null;
  }
  for (const line of text.split("\n")) {
    const g = parse(line);
    if (g && match(g)) return g;
  }
  return null;
}

function fromGetent(key: string): GroupEntry | null {
  try {
    const out = execFileSync("getent", ["group", key], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
      timeout: 5000,
    });
    return parse(out.trim().split("\n")[0] ?? "");
  } catch {
    return null;
  }
}

/** The group named `name`, or null if there is none. */
function groupByName(name: string): GroupEntry | null {
  return fromEtcGroup((g) => g.name === name) ?? fromGetent(name);
}

/** The group with id `gid`, or null if it has no entry. */
export function groupById(gid: number): GroupEntry | null {
  return fromEtcGroup((g) => g.gid === gid) ?? fromGetent(String(gid));
}

/** A group name's id, or null: the default group lookup of the config loader. */
export function groupIdByName(name: string): number | null {
  return groupByName(name)?.gid ?? null;
}
