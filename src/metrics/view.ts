/**
 * What the metrics endpoint and the control socket read from the engine: the
 * parts of Engine, Target and Port they use, so tests can drive fakes. The
 * engine's maps are read at scrape/request time, never cached: a reload may
 * replace targets and ports.
 */
import type { ExportConfig } from "../config/types.js";
import type { TargetState } from "../engine/initiator-state.js";
import type { KernelCounts, PortStats, TargetStats } from "../engine/stats.js";

export type StateKind = "config" | "mask" | "reserve";

export interface TargetView {
  readonly name: string;
  readonly shelf: number;
  readonly slot: number;
  readonly state: TargetState;
  readonly inFlight: number;
  /** A request has been in flight for STUCK_AFTER_MS or longer (src/engine/ata-queue.ts). */
  readonly stuck: boolean;
  /** Age of the oldest request in flight, seconds; 0 when none. */
  readonly oldestRequestSeconds: number;
  readonly sizeBytes: number;
  readonly cfg: Pick<ExportConfig, "interfaces" | "queueLength" | "writeCache" | "io">;
  readonly backend: {
    readonly path: string;
    readonly readOnly: boolean;
    /** The I/O engine in effect, and why writes go buffered despite direct-io (src/io/backend.ts). */
    readonly caps?: { readonly engine?: string; readonly writesBuffered?: string };
    /** Set once a failed sync has failed the export (src/io/group-commit.ts). */
    readonly failed?: NodeJS.ErrnoException | null;
  };
  /** The export's counters, group commit's included. */
  counters(): TargetStats;
  clearState(what: StateKind): void;
  resetStats(): void;
}

export interface PortView {
  readonly name: string;
  readonly mtu: number;
  readonly macBytes: Buffer;
  readonly stats: PortStats;
  readonly exportCount: number;
  /** The socket's counts: its receive ring's (drops, other hosts' frames) and busy polling's. */
  kernelStats(): KernelCounts;
}

/** An export that waits for its backing store or an interface to appear. */
export interface WaitingView {
  readonly cfg: Pick<
    ExportConfig,
    | "name"
    | "shelf"
    | "slot"
    | "path"
    | "readOnly"
    | "interfaces"
    | "queueLength"
    | "writeCache"
    | "io"
  >;
  /** What it waits for: "file /srv/a.img", "interface bond0". */
  readonly missing: readonly string[];
}

export interface EngineView {
  readonly targets: ReadonlyMap<string, TargetView>;
  readonly ports: ReadonlyMap<string, PortView>;
  /** Exports not serving yet (absent: none). */
  readonly waiting?: ReadonlyMap<string, WaitingView>;
  /** Interfaces exports name that do not exist now (absent: none). */
  readonly missing?: ReadonlySet<string>;
  /** Frames each data-path worker thread received (worker i at i - 1). */
  workerFrames?(): readonly number[];
}

/** Request counters by their `op` label (metrics, `aoectl stats`), in output order. */
export const OPS = [
  ["read", "reads"],
  ["write", "writes"],
  ["identify", "identifies"],
  ["flush", "flushes"],
  ["config", "configs"],
  ["mask", "masks"],
  ["reserve", "reserves"],
  ["other", "otherAta"],
] as const satisfies readonly (readonly [string, keyof TargetStats])[];

export type OpLabel = (typeof OPS)[number][0];

/** Ignored frames by their `reason` label (metrics, `aoectl stats`), in output order. */
export const IGNORE_REASONS = [
  ["short", "ignoredShort"],
  ["version", "ignoredVersion"],
  ["response", "ignoredResponse"],
  ["own", "ignoredOwn"],
  ["wildcard", "ignoredWildcard"],
  ["unknown_target", "notForUs"],
  ["steering", "ignoredSteering"],
] as const satisfies readonly (readonly [string, keyof PortStats])[];

export type IgnoreReason = (typeof IGNORE_REASONS)[number][0];

/** "e1.0" */
export function targetLabel(t: { shelf: number; slot: number }): string {
  return `e${t.shelf}.${t.slot}`;
}
