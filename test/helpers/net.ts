/**
 * Test helpers for network tests (need root): veth pairs, optionally with one
 * end in a fresh network namespace. Everything created here is removed by
 * destroy(), at process exit, and, if a test process died without cleaning
 * up, by the next test process that creates a pair (links and namespaces are
 * tagged with the creating pid).
 */
import { type ChildProcess, execFileSync, type SpawnOptions, spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";

export interface VethPair {
  /** End A, always in the current network namespace. */
  readonly a: string;
  /** End B: in `netns` if one was requested, else in the current namespace. */
  readonly b: string;
  /** The namespace holding B, or null. */
  readonly netns: string | null;
  readonly mtu: number;
  /** Delete the link (both ends) and the namespace. Idempotent. */
  destroy(): void;
}

export interface VethOptions {
  /** Name prefix, default "av" (names stay within IFNAMSIZ 15). */
  prefix?: string;
  /** MTU of both ends, default 1500. */
  mtu?: number;
  /** Move end B into a new network namespace. */
  netns?: boolean;
}

export interface LinkInfo {
  ifindex: number;
  mac: string;
  mtu: number;
  up: boolean;
}

const TAG = "aoed-test:";
const NETNS_PREFIX = "aoedt-";
const live = new Set<VethPair>();
let counter = 0;
let swept = false;
let exitHookInstalled = false;

/** Run a command, return stdout; throws with the command's stderr on failure. */
export function run(argv: string[]): string {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error("run: empty argv");
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${argv.join(" ")} failed: ${(err.stderr ?? "").trim() || err.message}`);
  }
}

function tryRun(argv: string[]): boolean {
  try {
    run(argv);
    return true;
  } catch {
    return false;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Remove links and namespaces left behind by test processes that no longer exist. */
export function sweepStale(): void {
  try {
    const links = JSON.parse(run(["ip", "-j", "link", "show", "type", "veth"])) as Array<{
      ifname: string;
      ifalias?: string;
    }>;
    for (const l of links) {
      if (!l.ifalias?.startsWith(TAG)) continue;
      const pid = Number(l.ifalias.slice(TAG.length));
      if (Number.isInteger(pid) && pid > 0 && !pidAlive(pid))
        tryRun(["ip", "link", "del", l.ifname]);
    }
  } catch {
    // best effort
  }
  try {
    for (const line of run(["ip", "netns", "list"]).split("\n")) {
      const name = line.split(" ")[0] ?? "";
      const m = /^aoedt-(\d+)-\d+$/.exec(name);
      if (m && !pidAlive(Number(m[1]))) tryRun(["ip", "netns", "del", name]);
    }
  } catch {
    // best effort
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const p of [...live]) p.destroy();
  });
}

function linkExists(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`);
}

/** Disable IPv6 on an interface in the current namespace (no router solicitations, no MLD). */
function disableIpv6(ifname: string): void {
  const path = `/proc/sys/net/ipv6/conf/${ifname}/disable_ipv6`;
  if (existsSync(path)) writeFileSync(path, "1");
}

/**
 * Create a veth pair with unique short names, MTU set on both ends, IPv6
 * disabled, both ends up. With `netns: true` end B lives in a new namespace.
 */
export function createVethPair(opts: VethOptions = {}): VethPair {
  const mtu = opts.mtu ?? 1500;
  const prefix = opts.prefix ?? "av";
  if (!swept) {
    swept = true;
    sweepStale();
  }
  installExitHook();

  let ns: string | null = null;
  if (opts.netns) {
    ns = `${NETNS_PREFIX}${process.pid}-${counter}`;
    run(["ip", "netns", "add", ns]);
    // Devices created in or moved into the namespace take these defaults.
    run([
      "ip",
      "netns",
      "exec",
      ns,
      "sh",
      "-c",
      "for f in /proc/sys/net/ipv6/conf/default/disable_ipv6 /proc/sys/net/ipv6/conf/all/disable_ipv6; do [ -e $f ] && echo 1 > $f; done; true",
    ]);
    run(["ip", "-n", ns, "link", "set", "lo", "up"]);
  }

  let a = "";
  let b = "";
  for (let attempt = 0; ; attempt++) {
    const id = `${prefix}${process.pid % 10000}${counter++}`;
    a = `${id}a`;
    b = `${id}b`;
    if (a.length > 15) throw new Error(`interface name ${a} is longer than 15 characters`);
    if (attempt > 50) throw new Error(`no free veth name with prefix ${prefix}`);
    if (linkExists(a) || linkExists(b)) continue;
    const peer = ["peer", "name", b, "mtu", String(mtu)];
    if (ns) peer.push("netns", ns);
    try {
      run(["ip", "link", "add", a, "mtu", String(mtu), "type", "veth", ...peer]);
      break;
    } catch (e) {
      // A name clash with another process (pid % 10000 collides): try the next one.
      if (attempt < 20 && /exists/i.test((e as Error).message)) continue;
      if (ns) tryRun(["ip", "netns", "del", ns]);
      throw e;
    }
  }

  let destroyed = false;
  const pair: VethPair = {
    a,
    b,
    netns: ns,
    mtu,
    destroy() {
      if (destroyed) return;
      destroyed = true;
      live.delete(pair);
      tryRun(["ip", "link", "del", a]);
      if (ns) tryRun(["ip", "netns", "del", ns]);
    },
  };
  live.add(pair);

  try {
    run(["ip", "link", "set", a, "alias", `${TAG}${process.pid}`]);
    disableIpv6(a);
    if (ns) {
      execInNetns(ns, [
        "sh",
        "-c",
        `f=/proc/sys/net/ipv6/conf/${b}/disable_ipv6; [ -e $f ] && echo 1 > $f; true`,
      ]);
      run(["ip", "-n", ns, "link", "set", b, "up"]);
    } else {
      disableIpv6(b);
      run(["ip", "link", "set", b, "up"]);
    }
    run(["ip", "link", "set", a, "up"]);
  } catch (e) {
    pair.destroy();
    throw e;
  }
  return pair;
}

/** `ip -j link show` for one interface (in `netns` if given). */
export function linkInfo(ifname: string, netns?: string | null): LinkInfo {
  const argv = netns
    ? ["ip", "-n", netns, "-j", "link", "show", "dev", ifname]
    : ["ip", "-j", "link", "show", "dev", ifname];
  const [l] = JSON.parse(run(argv)) as Array<{
    ifindex: number;
    address: string;
    mtu: number;
    flags: string[];
  }>;
  if (!l) throw new Error(`no such interface ${ifname}`);
  return { ifindex: l.ifindex, mac: l.address, mtu: l.mtu, up: l.flags.includes("UP") };
}

/** Spawn argv inside a network namespace (`ip netns exec NS ...`). */
export function runInNetns(ns: string, argv: string[], options: SpawnOptions = {}): ChildProcess {
  return spawn("ip", ["netns", "exec", ns, ...argv], { stdio: "pipe", ...options });
}

/** Run argv inside a network namespace and wait for it; returns stdout, throws on failure. */
export function execInNetns(ns: string, argv: string[]): string {
  return run(["ip", "netns", "exec", ns, ...argv]);
}

/** Bring a link up or down (in `netns` if given). */
export function setLinkUp(ifname: string, up: boolean, netns?: string | null): void {
  const argv = ["ip", ...(netns ? ["-n", netns] : []), "link", "set", ifname, up ? "up" : "down"];
  run(argv);
}
