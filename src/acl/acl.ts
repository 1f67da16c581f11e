/**
 * Per-export access control from the config: deny wins over accept; the
 * policy decides MACs on neither list. The AoE MAC mask list (command 2) is
 * a second, initiator-managed filter applied after this one (see Target).
 */
import type { AclConfig } from "../config/types.js";
import { parseMac } from "../protocol/mac.js";

function macSet(list: string[]): Set<number> {
  const set = new Set<number>();
  for (const text of list) {
    const mac = parseMac(text);
    if (mac === null) throw new Error(`invalid MAC in ACL: ${text}`);
    set.add(mac);
  }
  return set;
}

export class Acl {
  private readonly accept: Set<number>;
  private readonly deny: Set<number>;
  private readonly policyAccepts: boolean;
  /** True when every MAC is allowed: the data path then skips the lookups. */
  readonly open: boolean;

  constructor(cfg: AclConfig) {
    this.accept = macSet(cfg.accept);
    this.deny = macSet(cfg.deny);
    this.policyAccepts = cfg.policy === "accept";
    this.open = this.policyAccepts && this.deny.size === 0;
  }

  allows(mac: number): boolean {
    if (this.open) return true;
    if (this.deny.has(mac)) return false;
    return this.accept.has(mac) || this.policyAccepts;
  }

  /** MACs to announce to by unicast when the policy rejects everyone not listed. */
  announceTargets(): number[] | null {
    return this.policyAccepts ? null : [...this.accept].filter((m) => !this.deny.has(m));
  }
}
