/**
 * Prometheus counters must never go down, but the engine's counters do:
 * `aoectl clear stats` zeroes an export's, and a reload may replace a target
 * or a port with a fresh one. The ledger keeps, per export and per interface
 * name, an offset of everything counted before such a reset, so the metrics
 * carry on from where they were while `aoectl stats` shows the counts since
 * the clear. Nothing here runs on the data path: it is read at scrape time.
 */
import { LATENCY_BUCKETS } from "../engine/latency.js";
import type { PortStats } from "../engine/port.js";
import type { TargetStats } from "../engine/target.js";
import type { PortView, TargetView } from "./view.js";

/** The plain-number counters of TargetStats, in vector order. */
export const TARGET_COUNTERS = [
  "reads",
  "writes",
  "flushes",
  "identifies",
  "otherAta",
  "configs",
  "masks",
  "reserves",
  "bytesRead",
  "bytesWritten",
  "ataErrors",
  "queueDrops",
  "aclDenied",
  "maskDenied",
  "aoeErrors",
] as const satisfies readonly Exclude<keyof TargetStats, "latency" | "opLatency">[];

export type TargetCounter = (typeof TARGET_COUNTERS)[number];

/** Vector layout of an export: the counters, the latency buckets (per bucket, +Inf last), sum, count. */
export const TARGET_BUCKETS_AT = TARGET_COUNTERS.length;
export const TARGET_SUM_AT = TARGET_BUCKETS_AT + LATENCY_BUCKETS.length + 1;
export const TARGET_COUNT_AT = TARGET_SUM_AT + 1;
/** Then one histogram per operation, in this order, each laid out as the total's (buckets, sum, count). */
export const LATENCY_OPS = ["read", "write", "flush"] as const;
const HISTOGRAM_LENGTH = LATENCY_BUCKETS.length + 3;

/** Where operation `i` of LATENCY_OPS starts: its buckets, then sum and count. */
export function opHistogramAt(i: number): number {
  return TARGET_COUNT_AT + 1 + i * HISTOGRAM_LENGTH;
}

export function targetIndex(key: TargetCounter): number {
  return TARGET_COUNTERS.indexOf(key);
}

export function targetVector(stats: TargetStats): number[] {
  const v = TARGET_COUNTERS.map((k) => stats[k]);
  for (const h of [stats.latency, ...LATENCY_OPS.map((op) => stats.opLatency[op])]) {
    for (const c of h.counts) v.push(c);
    v.push(h.sum, h.count);
  }
  return v;
}

/** Adds a targetVector() difference (a worker thread's counts) into `stats`. */
export function addTargetVector(stats: TargetStats, delta: readonly number[]): void {
  TARGET_COUNTERS.forEach((k, i) => {
    stats[k] += delta[i]!;
  });
  const histograms = [stats.latency, ...LATENCY_OPS.map((op) => stats.opLatency[op])];
  histograms.forEach((h, j) => {
    const at = j === 0 ? TARGET_BUCKETS_AT : opHistogramAt(j - 1);
    for (let i = 0; i < h.counts.length; i++) h.counts[i]! += delta[at + i]!;
    h.sum += delta[at + h.counts.length]!;
    h.count += delta[at + h.counts.length + 1]!;
  });
}

/** The counters of PortStats, in vector order; the receive ring's drops and other-host frames come last. */
export const PORT_COUNTERS = [
  "rxFrames",
  "rxBytes",
  "txFrames",
  "txBytes",
  "ignoredShort",
  "ignoredVersion",
  "ignoredResponse",
  "ignoredOwn",
  "ignoredWildcard",
  "notForUs",
  "ignoredSteering",
  "txRingFull",
] as const satisfies readonly (keyof PortStats)[];

export type PortCounter = (typeof PORT_COUNTERS)[number] | "kernelDrops";

export function portIndex(key: PortCounter): number {
  return key === "kernelDrops" ? PORT_COUNTERS.length : PORT_COUNTERS.indexOf(key);
}

/** The kernel's count of frames dropped on the receive ring; 0 if the socket cannot say. */
export function kernelDrops(port: PortView): number {
  try {
    return port.kernelStats().rxDrops;
  } catch {
    return 0;
  }
}

/** Frames for another host's MAC the receive ring delivered and the port skipped; 0 if the socket cannot say. */
export function otherHostFrames(port: PortView): number {
  try {
    return port.kernelStats().otherHost;
  } catch {
    return 0;
  }
}

export function portVector(port: PortView): number[] {
  const v: number[] = PORT_COUNTERS.map((k) => port.stats[k]);
  v.push(kernelDrops(port), otherHostFrames(port));
  return v;
}

/** Adds a portVector() difference (a worker thread's socket) into `stats` and the kernel counts. */
export function addPortVector(
  stats: PortStats,
  kernel: { rxDrops: number; otherHost: number },
  delta: readonly number[],
): void {
  PORT_COUNTERS.forEach((k, i) => {
    stats[k] += delta[i]!;
  });
  kernel.rxDrops += delta[PORT_COUNTERS.length]!;
  kernel.otherHost += delta[PORT_COUNTERS.length + 1]!;
}

interface Entry<S> {
  source: S;
  /** Everything counted by earlier sources or before resets. */
  base: number[];
  /** The source's values when last read. */
  last: number[];
}

/** Monotonic totals of counter vectors read from sources that may be reset or replaced. */
export class Monotonic<S extends object> {
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
    return this.exports.totals(t.name, t.stats);
  }

  interfaceTotals(p: PortView): number[] {
    return this.interfaces.totals(p.name, p);
  }

  /** `aoectl clear stats`: zero the export's counters without moving its metrics backwards. */
  resetExport(t: TargetView): void {
    this.exports.beforeReset(t.name, t.stats);
    t.resetStats();
  }
}
