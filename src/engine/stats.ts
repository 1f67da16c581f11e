/**
 * The engine's counters: plain numbers bumped on the data path, read by the
 * metrics and the control socket (src/metrics/, src/control/), never updated
 * there. With worker threads each thread counts its own; every STATS_MS a
 * worker sends the main thread a vector of differences (src/engine/worker.ts)
 * in the layout defined here, which the main thread adds into its own counters.
 * The metrics read the same vectors (src/metrics/ledger.ts).
 */
import type { SyncStats } from "../io/backend.js";
import { LATENCY_BUCKETS, LatencyHistogram } from "./latency.js";
import type { OpKind } from "./request.js";

export interface TargetStats {
  reads: number;
  writes: number;
  flushes: number;
  identifies: number;
  otherAta: number;
  configs: number;
  masks: number;
  reserves: number;
  bytesRead: number;
  bytesWritten: number;
  /** ATA commands answered with ABRT. */
  ataErrors: number;
  /** Requests dropped because every queue slot was busy. */
  queueDrops: number;
  aclDenied: number;
  maskDenied: number;
  /** AoE-level error replies (bad argument, reserved, unknown command...). */
  aoeErrors: number;
  /** Group commit (src/io/group-commit.ts), counted from the backend's SyncStats by countSyncs(). */
  syncs: number;
  syncedWrites: number;
  dsyncWrites: number;
  syncErrors: number;
  /** Backend time of reads, writes and flushes. */
  latency: LatencyHistogram;
  /** The same, per operation (the metric's `op` label). */
  opLatency: Record<OpKind, LatencyHistogram>;
}

export function newTargetStats(): TargetStats {
  return {
    reads: 0,
    writes: 0,
    flushes: 0,
    identifies: 0,
    otherAta: 0,
    configs: 0,
    masks: 0,
    reserves: 0,
    bytesRead: 0,
    bytesWritten: 0,
    ataErrors: 0,
    queueDrops: 0,
    aclDenied: 0,
    maskDenied: 0,
    aoeErrors: 0,
    syncs: 0,
    syncedWrites: 0,
    dsyncWrites: 0,
    syncErrors: 0,
    latency: new LatencyHistogram(),
    opLatency: {
      read: new LatencyHistogram(),
      write: new LatencyHistogram(),
      flush: new LatencyHistogram(),
    },
  };
}

/** Zeroes every counter and histogram in place (`aoectl clear stats`). */
export function resetTargetStats(stats: TargetStats): void {
  for (const key of Object.keys(stats) as (keyof TargetStats)[]) {
    if (key !== "latency" && key !== "opLatency") stats[key] = 0;
  }
  stats.latency.reset();
  for (const h of Object.values(stats.opLatency)) h.reset();
}

export interface PortStats {
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  /** Frames ignored, by reason. */
  ignoredShort: number;
  ignoredVersion: number;
  /** Frames with the response flag: other targets' replies. */
  ignoredResponse: number;
  /** Our own frames looping back (bridges, lo). */
  ignoredOwn: number;
  /** Wildcard shelf/slot on anything but discovery. */
  ignoredWildcard: number;
  /** Addressed to a shelf/slot nobody here exports. */
  notForUs: number;
  /** Not a read or write, on a worker thread's socket: the steering program sends those to the main thread. */
  ignoredSteering: number;
  /** Replies lost because the transmit ring was full (the initiator retransmits). */
  txRingFull: number;
}

export function newPortStats(): PortStats {
  return {
    rxFrames: 0,
    rxBytes: 0,
    txFrames: 0,
    txBytes: 0,
    ignoredShort: 0,
    ignoredVersion: 0,
    ignoredResponse: 0,
    ignoredOwn: 0,
    ignoredWildcard: 0,
    notForUs: 0,
    ignoredSteering: 0,
    txRingFull: 0,
  };
}

/** What a port's socket counts (src/net/packet-socket.ts): its receive ring, and busy polling. */
export interface KernelCounts {
  rxFrames: number;
  rxDrops: number;
  /** Frames for another host's MAC the ring delivered and the port skipped. */
  otherHost: number;
  /** Busy polls that caught a frame: an epoll wake-up saved each. */
  busyPollHits: number;
  /** Busy polls that ended with no frame. */
  busyPollMisses: number;
}

// --- Counter vectors ----------------------------------------------------------

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
  "syncs",
  "syncedWrites",
  "dsyncWrites",
  "syncErrors",
] as const satisfies readonly Exclude<keyof TargetStats, "latency" | "opLatency">[];

export type TargetCounter = (typeof TARGET_COUNTERS)[number];

/** Vector layout of an export: the counters, the latency buckets (per bucket, +Inf last), sum, count. */
const TARGET_BUCKETS_AT = TARGET_COUNTERS.length;
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

/** The SyncStats counters that are target counters too. */
const SYNC_COUNTERS = [
  "syncs",
  "syncedWrites",
  "dsyncWrites",
  "syncErrors",
] as const satisfies readonly (keyof SyncStats & TargetCounter)[];

type SyncCounts = Record<(typeof SYNC_COUNTERS)[number], number>;

/**
 * What countSyncs() has taken from each backend's SyncStats so far. Kept by
 * backend, not by target: a reload may hand one backend to a new target that
 * carries the same TargetStats, and the old target, still draining, counts too.
 */
const syncsCounted = new WeakMap<Readonly<SyncStats>, SyncCounts>();

/**
 * Adds what a backend's group commit counted since the last call into
 * `stats`. Each thread's backend has its own group commit, so each thread
 * counts its own, and worker threads' counts reach the main thread in their
 * counter vectors: call it before targetVector() reads `stats`.
 */
export function countSyncs(stats: TargetStats, sync: Readonly<SyncStats> | undefined): void {
  if (sync === undefined) return;
  let counted = syncsCounted.get(sync);
  if (counted === undefined) {
    counted = { syncs: 0, syncedWrites: 0, dsyncWrites: 0, syncErrors: 0 };
    syncsCounted.set(sync, counted);
  }
  for (const k of SYNC_COUNTERS) {
    stats[k] += sync[k] - counted[k];
    counted[k] = sync[k];
  }
}

/** The counters of PortStats, in vector order; the socket's counts (SOCKET_COUNTERS) come last. */
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

/** The socket's counts a port's vector carries after PORT_COUNTERS, in this order. */
const SOCKET_COUNTERS = [
  "rxDrops",
  "otherHost",
  "busyPollHits",
  "busyPollMisses",
] as const satisfies readonly (keyof KernelCounts)[];

type SocketCounter = (typeof SOCKET_COUNTERS)[number];

/** The socket's counts that travel in a port's vector (worker threads' sockets add theirs). */
export type SocketCounts = Record<SocketCounter, number>;

export function newSocketCounts(): SocketCounts {
  return { rxDrops: 0, otherHost: 0, busyPollHits: 0, busyPollMisses: 0 };
}

/** A place in a port's vector; the receive ring's drops are "kernelDrops" there. */
export type PortCounter =
  | (typeof PORT_COUNTERS)[number]
  | "kernelDrops"
  | Exclude<SocketCounter, "rxDrops">;

export function portIndex(key: PortCounter): number {
  const socket = SOCKET_COUNTERS.indexOf(
    (key === "kernelDrops" ? "rxDrops" : key) as SocketCounter,
  );
  return socket >= 0
    ? PORT_COUNTERS.length + socket
    : PORT_COUNTERS.indexOf(key as (typeof PORT_COUNTERS)[number]);
}

/** A port as its counters are read: its own and its socket's. */
export interface CountedPort {
  readonly stats: PortStats;
  kernelStats(): KernelCounts;
}

/** Each port's socket counts as last read. */
const lastSocketCounts = new WeakMap<CountedPort, SocketCounts>();

/**
 * The socket's counts of a port. If the socket cannot say (closed under a
 * read), what it said last: zeros would look like a reset to the totals that
 * never go down (metrics/ledger.ts), and a negative difference to a worker's.
 */
export function socketCounts(port: CountedPort): SocketCounts {
  try {
    const counts = port.kernelStats();
    lastSocketCounts.set(port, counts);
    return counts;
  } catch {
    return lastSocketCounts.get(port) ?? newSocketCounts();
  }
}

export function portVector(port: CountedPort): number[] {
  const socket = socketCounts(port);
  return [...PORT_COUNTERS.map((k) => port.stats[k]), ...SOCKET_COUNTERS.map((k) => socket[k])];
}

/** Adds a portVector() difference (a worker thread's socket) into `stats` and the socket counts. */
export function addPortVector(
  stats: PortStats,
  socket: SocketCounts,
  delta: readonly number[],
): void {
  PORT_COUNTERS.forEach((k, i) => {
    stats[k] += delta[i]!;
  });
  SOCKET_COUNTERS.forEach((k, i) => {
    socket[k] += delta[PORT_COUNTERS.length + i]!;
  });
}
