/**
 * What the metrics endpoint and the control socket read from the engine: the
 * parts of Engine, Target and Port they use, so tests can drive fakes. The
 * engine's maps are read at scrape/request time, never cached: a reload may
 * replace targets and ports.
 */
import type { ExportConfig } from "../config/types.js";
import type { PortStats } from "../engine/port.js";
import type { TargetState, TargetStats } from "../engine/target.js";

export type StateKind = "config" | "mask" | "reserve";

export interface TargetView {
  readonly name: string;
  readonly shelf: number;
  readonly slot: number;
  readonly stats: TargetStats;
  readonly state: TargetState;
  readonly inFlight: number;
  /** A request has been in flight for STUCK_AFTER_MS or longer (src/engine/target.ts). */
  readonly stuck: boolean;
  /** Age of the oldest request in flight, seconds; 0 when none. */
  readonly oldestRequestSeconds: number;
  readonly sizeBytes: number;
  readonly cfg: Pick<ExportConfig, "interfaces" | "queueLength">;
  readonly backend: { readonly path: string; readonly readOnly: boolean };
  clearState(what: StateKind): void;
  resetStats(): void;
}

export interface PortView {
  readonly name: string;
  readonly mtu: number;
  readonly macBytes: Buffer;
  readonly stats: PortStats;
  readonly exportCount: number;
  /** otherHost: frames for another host's MAC the receive ring delivered and the port skipped. */
  kernelStats(): { rxFrames: number; rxDrops: number; otherHost: number };
}

export interface EngineView {
  readonly targets: ReadonlyMap<string, TargetView>;
  readonly ports: ReadonlyMap<string, PortView>;
  /** Frames each data-path worker thread received (worker i at i - 1). */
  workerFrames?(): readonly number[];
}

/** "e1.0" */
export function targetLabel(t: { shelf: number; slot: number }): string {
  return `e${t.shelf}.${t.slot}`;
}
