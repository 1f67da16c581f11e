/**
 * Prometheus counters must never go down, but the engine's counters do:
 * `aoectl clear stats` zeroes an export's, and a reload may replace a target
 * or a port with a fresh one. The ledger keeps, per export and per interface
 * name, an offset of everything counted before such a reset, so the metrics
 * carry on from where they were while `aoectl stats` shows the counts since
 * the clear. Nothing here runs on the data path: it is read at scrape time.
 * The counter vectors it keeps are the engine's (src/engine/stats.ts).
 */
import { portVector, type TargetStats, targetVector } from "../engine/stats.js";
import type { PortView, TargetView } from "./view.js";

interface Entry<S> {
  source: S;
  /** Everything counted by earlier sources or before resets. */
  base: number[];
  /** The source's values when last read. */
  last: number[];
}

/** Monotonic totals of counter vectors read from sources that may be reset or replaced. */
class Monotonic<S extends object> {
  private readonly entries = new Map<string, Entry<S>>();

  constructor(private readonly read: (source: S) => number[]) {}

  /** The totals for `key`, now counted by `source`; never below what was returned before. */
  totals(key: string, source: S): number[] {
    const cur = this.read(source);
    const e = this.entries.get(key);
    if (e === undefined) {
      this.entries.set(key, { source, base: cur.map(() => 0), last: cur });
      return cur.slice();
    }
    if (e.source !== source) {
      // Replaced (a reload): the old source's final counts become history. It is
      // still readable, so nothing counted since the last scrape is lost.
      let final = e.last;
      try {
        final = this.read(e.source);
      } catch {
        // keep what we saw last
      }
      addInto(e.base, final);
      e.source = source;
    } else if (cur.some((v, i) => v < e.last[i]!)) {
      // Reset behind our back: what was seen last is history.
      addInto(e.base, e.last);
    }
    e.last = cur;
    return cur.map((v, i) => v + e.base[i]!);
  }

  /** Call right before zeroing `source`'s counters: the totals carry on from here. */
  beforeReset(key: string, source: S): void {
    this.totals(key, source);
    const e = this.entries.get(key)!;
    addInto(e.base, e.last);
    e.last = e.last.map(() => 0);
  }
}

function addInto(into: number[], add: readonly number[]): void {
  for (let i = 0; i < into.length; i++) into[i]! += add[i] ?? 0;
}

/** The monotonic totals behind the metrics, per export and per interface name. */
export class StatsLedger {
  readonly exports = new Monotonic<TargetStats>(targetVector);
  readonly interfaces = new Monotonic<PortView>(portVector);

  exportTotals(t: TargetView): number[] {
    return this.exports.totals(t.name, t.counters());
  }

  interfaceTotals(p: PortView): number[] {
    return this.interfaces.totals(p.name, p);
  }

  /** `aoectl clear stats`: zero the export's counters without moving its metrics backwards. */
  resetExport(t: TargetView): void {
    this.exports.beforeReset(t.name, t.counters());
    t.resetStats();
  }
}
