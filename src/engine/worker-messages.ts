/**
 * What the main thread and the data-path worker threads tell each other
 * (src/engine/workers.ts and src/engine/worker.ts). Structured-clone data only.
 */
import type { ExportConfig } from "../config/types.js";
import type { SharedBackend } from "../io/backend.js";

export interface WorkerInit {
  /** 1-based: the worker's place in each interface's fanout group after the main thread. */
  index: number;
  logLevel: string;
  pretty: boolean;
}

/** An export as a worker serves it: on the main thread's descriptors and shared access lists. */
export interface TargetSpec {
  id: number;
  cfg: ExportConfig;
  backend: SharedBackend;
  maxSectors: number;
  lists: SharedArrayBuffer;
}

/** An interface whose fanout group the worker joins. */
export interface PortSpec {
  name: string;
  mtu: number;
  ringBytes: number;
  busyPollUs: number;
  fanoutId: number;
}

export type ToWorker =
  | {
      /**
       * The whole picture after a config change: every port, and every target by
       * id (new ones in full). Targets the worker has and are not listed retire;
       * a port whose fanout group changed is replaced.
       */
      type: "apply";
      seq: number;
      logLevel: string;
      ports: PortSpec[];
      targets: (TargetSpec | number)[];
    }
  | { type: "stop" };

export type FromWorker =
  /** The apply is in effect; errors: interfaces the worker could not join (the main thread serves them). */
  | { type: "applied"; seq: number; errors: string[] }
  /** The worker has answered its last request for a target and let go of its descriptors. */
  | { type: "released"; id: number }
  /**
   * Counters since the last report (export vectors, requests in flight and when
   * the oldest of them started, epoch ms or 0, by target id; port vectors by interface).
   */
  | { type: "stats"; targets: [number, number[], number, number][]; ports: [string, number[]][] }
  | { type: "stopped" };
