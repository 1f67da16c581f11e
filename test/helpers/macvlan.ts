/**
 * Extra initiator MACs on one wire: a macvlan on end A of a veth pair sends
 * from its own MAC through A and receives what is addressed to it, so several
 * AoeClients with different MACs can talk to one daemon over one veth pair.
 * Deleted with destroy(), or with its lower link when the pair is destroyed.
 */
import { existsSync, writeFileSync } from "node:fs";
import { run } from "./net.js";

export interface Macvlan {
  readonly name: string;
  readonly mac: string;
  destroy(): void;
}

let counter = 0;

/** Creates a macvlan on `lower` (in the current namespace), up, IPv6 off, with `mac` or a random one. */
export function createMacvlan(lower: string, mac?: string): Macvlan {
  const name = `${lower.slice(0, 10)}m${counter++}`;
  if (name.length > 15) throw new Error(`interface name ${name} is longer than 15 characters`);
  run([
    "ip",
    "link",
    "add",
    "link",
    lower,
    "name",
    name,
    ...(mac ? ["address", mac] : []),
    "type",
    "macvlan",
    "mode",
    "private",
  ]);
  try {
    const ipv6 = `/proc/sys/net/ipv6/conf/${name}/disable_ipv6`;
    if (existsSync(ipv6)) writeFileSync(ipv6, "1"); // no router solicitations on the wire
    run(["ip", "link", "set", name, "up"]);
  } catch (e) {
    run(["ip", "link", "del", name]);
    throw e;
  }
  const [info] = JSON.parse(run(["ip", "-j", "link", "show", "dev", name])) as {
    address: string;
  }[];
  let gone = false;
  return {
    name,
    mac: info!.address,
    destroy() {
      if (gone) return;
      gone = true;
      try {
        run(["ip", "link", "del", name]);
      } catch {
        // already gone with its lower link
      }
    },
  };
}
