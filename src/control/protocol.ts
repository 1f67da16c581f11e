/**
 * The control socket protocol, version 1: newline-delimited JSON over a unix
 * stream socket. The client sends one request object per line and the daemon
 * answers each with one line, in order; a connection may carry any number of
 * requests (aoectl monitor keeps one open).
 *
 *   -> {"v":1,"id":7,"cmd":"clear","what":"stats","export":"lv*"}
 *   <- {"v":1,"id":7,"ok":true,"result":{"what":"stats","matched":["lv0","lv1"]}}
 *   <- {"v":1,"id":8,"ok":false,"error":"no export matches \"x*\""}
 *
 * `v` is the protocol version (1 if absent); `id` is optional and echoed back.
 * Commands: status, stats, reload, show {what, export}, clear {what, export};
 * `export` is a name or a glob (*, ?, [abc]). A failed reload answers
 * ok:false with the reasons in `errors`. New fields may be added to results
 * within version 1; removing or changing one needs version 2.
 */

import type { IgnoreReason, OpLabel } from "../metrics/view.js";

export const PROTOCOL_VERSION = 1;

/** Longest request line the daemon reads. */
export const MAX_LINE = 64 * 1024;

export const SHOW_WHAT = ["config", "macmask", "reserve"] as const;
export const CLEAR_WHAT = ["config", "macmask", "reserve", "stats"] as const;
export type ShowWhat = (typeof SHOW_WHAT)[number];
export type ClearWhat = (typeof CLEAR_WHAT)[number];

export type Request =
  | { cmd: "status" }
  | { cmd: "stats" }
  | { cmd: "reload" }
  | { cmd: "show"; what: ShowWhat; export: string }
  | { cmd: "clear"; what: ClearWhat; export: string };

export type Command = Request["cmd"];
export const COMMANDS: readonly Command[] = ["status", "stats", "reload", "show", "clear"];

export type Response =
  | { v: number; id?: unknown; ok: true; result: unknown }
  | { v: number; id?: unknown; ok: false; error: string; errors?: string[] };

export interface ExportStatus {
  name: string;
  /** "e1.0" */
  target: string;
  path: string;
  sizeBytes: number;
  readOnly: boolean;
  interfaces: string[];
  inFlight: number;
  queueLength: number;
  /** The backend has left a request unanswered for 3 s or more (it hangs). */
  stuck: boolean;
  /** Age of the oldest request in flight, seconds (0 when none). */
  oldestRequestSeconds: number;
  /** False while it waits for its backing store or for every one of its interfaces. */
  up: boolean;
  /** What does not exist now: "file /srv/a.img", "interface bond0" (an up export may lack some interfaces). */
  waitingFor: string[];
  /** The write-cache setting in effect. */
  writeCache: boolean;
  /** The I/O engine in effect; the `io:` setting while the export waits. */
  io: string;
  /** Why writes go through the page cache although direct-io is on (4Kn stores), or null. Older daemons omit it. */
  writesBuffered?: string | null;
  /** Why the export fails writes and flushes (a failed sync; reload to reopen it), or null. */
  failed: string | null;
  /** What initiators have set: the config string, the MAC mask list, the reservation. */
  state: { config: string; macmask: string[]; reserve: string[] };
}

export interface InterfaceStatus {
  name: string;
  /** 0 while the interface does not exist. */
  mtu: number;
  /** "" while the interface does not exist. */
  mac: string;
  exports: number;
  /** False while the interface does not exist (exports on it wait for it). */
  up: boolean;
}

export interface StatusResult {
  daemon: { version: string; pid: number; uptimeSeconds: number; protocol: number };
  exports: ExportStatus[];
  interfaces: InterfaceStatus[];
}

export interface ExportCounters {
  name: string;
  target: string;
  inFlight: number;
  /** By operation, as in the metric aoed_export_requests_total. */
  requests: Record<OpLabel, number>;
  bytesRead: number;
  bytesWritten: number;
  ataErrors: number;
  aoeErrors: number;
  queueDrops: number;
  aclDenied: number;
  maskDenied: number;
  /** Group commit with `write-cache: false`, as in the aoed_export_syncs_total family; zeros otherwise. */
  sync: { syncs: number; syncedWrites: number; dsyncWrites: number; errors: number };
  /** Backend time of reads, writes and flushes; `counts[i]` per bucket (not cumulative), +Inf last. */
  latency: { bounds: number[]; counts: number[]; sum: number; count: number };
}

export interface InterfaceCounters {
  name: string;
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  ignored: Record<IgnoreReason, number>;
  /** Frames the kernel dropped on the receive ring. */
  kernelDrops: number;
  /** Frames for another host's MAC (a promiscuous link or a bridge port) that the daemon skipped. */
  otherHost: number;
  txRingFull: number;
  /** Busy polling, as in aoed_interface_busy_poll_hits_total and _misses_total: watches that caught a frame (a wake-up saved each), watches that caught none. */
  busyPollHits: number;
  busyPollMisses: number;
}

/** Counters since the daemon started or since `clear stats` (the metrics never go back). */
export interface StatsResult {
  /** The daemon's monotonic clock, seconds: rates are deltas over differences of this. */
  time: number;
  exports: ExportCounters[];
  interfaces: InterfaceCounters[];
}

export interface ShowResult {
  what: ShowWhat;
  exports: { name: string; config?: string; macmask?: string[]; reserve?: string[] }[];
}

export interface ClearResult {
  what: ClearWhat;
  /** The exports the pattern matched, all of them cleared. */
  matched: string[];
}

/** What the daemon's reload handler answers; `summary` names the exports by what happened to them. */
export interface ReloadResult {
  ok: boolean;
  errors?: string[];
  summary?: { added?: string[]; removed?: string[]; changed?: string[]; unchanged?: string[] };
}
