/** Named MAC lists under `acls:`: expansion, unknown names, bad MACs, cycles, unused lists. */

import { didYouMean, formatPath, type PathSegment } from "./diagnostics.js";
import { isMulticastMac, looksLikeMac, macProblem, normalizeMac } from "./mac.js";

/** What the resolver needs from the loader: typed reads and reporting, by key path. */
export interface AclContext {
  get(path: readonly PathSegment[]): string | undefined;
  list(path: readonly PathSegment[]): unknown[];
  error(path: readonly PathSegment[], message: string, hint?: string): void;
  warn(path: readonly PathSegment[], message: string, hint?: string, want?: "key"): void;
}

/** Expands named MAC lists (which may name other lists), finding unknown names and cycles. */
export class AclResolver {
  private readonly names: string[];
  private readonly memo = new Map<string, string[]>();
  private readonly refs = new Map<string, Set<string>>();
  private readonly stack: string[] = [];
  private readonly cycles = new Set<string>();
  private readonly usedByExports = new Set<string>();
  private readonly reported = new Set<string>();

  constructor(
    private readonly ctx: AclContext,
    lists: [string, unknown][],
  ) {
    this.names = lists.map(([n]) => n);
  }

  /** Expand every list once, so mistakes in unused lists are reported too. */
  checkAll(): void {
    for (const name of this.names) this.expandList(name, ["acls", name]);
  }

  /** The MACs of an export's accept/deny list. */
  expand(path: PathSegment[]): string[] {
    const direct = new Set<string>();
    const out = this.expandEntries(path, direct);
    for (const n of direct) this.usedByExports.add(n);
    return out;
  }

  warnUnused(): void {
    const used = new Set<string>();
    const walk = (n: string): void => {
      if (used.has(n)) return;
      used.add(n);
      for (const m of this.refs.get(n) ?? []) walk(m);
    };
    for (const n of this.usedByExports) walk(n);
    for (const n of this.names) {
      if (!used.has(n)) {
        this.ctx.warn(["acls", n], `ACL list \`${n}\` is not used by any export`, undefined, "key");
      }
    }
  }

  private expandList(name: string, refPath: PathSegment[]): string[] {
    const cached = this.memo.get(name);
    if (cached) return cached;
    const at = this.stack.indexOf(name);
    if (at >= 0) {
      const cycle = [...this.stack.slice(at), name];
      const key = [...new Set(cycle)].sort().join("\u0000");
      if (!this.cycles.has(key)) {
        this.cycles.add(key);
        this.ctx.error(
          refPath,
          `ACL lists refer to each other in a cycle: ${cycle.join(" -> ")}`,
          "remove one of these references",
        );
      }
      return [];
    }
    this.stack.push(name);
    const direct = new Set<string>();
    const macs = this.expandEntries(["acls", name], direct);
    this.refs.set(name, direct);
    this.stack.pop();
    this.memo.set(name, macs);
    return macs;
  }

  private expandEntries(listPath: PathSegment[], direct: Set<string>): string[] {
    const out: string[] = [];
    const entries = this.ctx.list(listPath);
    for (let j = 0; j < entries.length; j++) {
      const p = [...listPath, j];
      const entry = this.ctx.get(p);
      if (entry === undefined) continue;
      const mac = normalizeMac(entry);
      if (mac !== null) {
        if (isMulticastMac(mac))
          this.once(p, () =>
            this.ctx.warn(p, `${mac} is a multicast address, never the source of a request`),
          );
        out.push(mac);
      } else if (this.names.includes(entry)) {
        direct.add(entry);
        out.push(...this.expandList(entry, p));
      } else if (looksLikeMac(entry)) {
        this.once(p, () =>
          this.ctx.error(
            p,
            `${JSON.stringify(entry)} is not a valid MAC address: ${macProblem(entry)}`,
            "write six two-digit hex bytes, e.g. 00:1b:21:aa:bb:01",
          ),
        );
      } else {
        const near = didYouMean(entry, this.names);
        this.once(p, () =>
          this.ctx.error(
            p,
            `unknown ACL list \`${entry}\``,
            near
              ? `did you mean \`${near}\`?`
              : this.names.length > 0
                ? `lists defined under \`acls:\`: ${this.names.join(", ")}`
                : "define it under `acls:`, or write a MAC address such as 00:1b:21:aa:bb:01",
          ),
        );
      }
    }
    return dedupe(out);
  }

  /** Report a problem with an entry only once, however many times the list is expanded. */
  private once(path: PathSegment[], report: () => void): void {
    const key = formatPath(path);
    if (this.reported.has(key)) return;
    this.reported.add(key);
    report();
  }
}

function dedupe(list: readonly string[]): string[] {
  return [...new Set(list)];
}
