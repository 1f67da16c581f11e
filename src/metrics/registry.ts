/**
 * The Prometheus registry: per-export and per-interface metrics read from the
 * engine's plain counters when scraped (nothing is updated on the data path),
 * plus prom-client's default process metrics.
 *
 * Every metric below is a small object with prom-client's get() shape; the
 * registry formats them. All of one scrape's metrics share one snapshot of the
 * engine, taken by the first get() and dropped in the next microtask.
 */
import { collectDefaultMetrics, type Metric, Registry } from "prom-client";
import { LATENCY_BUCKETS } from "../engine/latency.js";
import type { ReloadOutcome } from "../engine/reload.js";
import {
  LATENCY_OPS,
  opHistogramAt,
  type PortCounter,
  portIndex,
  type TargetCounter,
  targetIndex,
} from "../engine/stats.js";
import { VERSION } from "../version.js";
import type { StatsLedger } from "./ledger.js";
import { type EngineView, IGNORE_REASONS, OPS, targetLabel } from "./view.js";

type Labels = Record<string, string | number>;

interface Sample {
  labels: Labels;
  value: number;
  metricName?: string;
}

type MetricKind = "counter" | "gauge" | "histogram";

interface ExportSnap {
  labels: { export: string };
  /** e1.0: in aoed_export_info only, the export name being the one key of every series. */
  target: string;
  path: string;
  totals: number[];
  inFlight: number;
  stuck: boolean;
  oldestRequestSeconds: number;
  sizeBytes: number;
  queueLength: number;
}

interface PortSnap {
  labels: { interface: string };
  totals: number[];
  mtu: number;
}

interface Snapshot {
  exports: ExportSnap[];
  interfaces: PortSnap[];
  /** Every export in the config: 1 serving, 0 waiting for its device or every interface. */
  up: { labels: { export: string }; value: number }[];
  /** Every interface an export names: 1 present, 0 missing. */
  links: { labels: { interface: string }; value: number }[];
}

/** A metric whose samples are computed when it is scraped. */
class ScrapedMetric {
  readonly aggregator = "sum";

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: MetricKind,
    private readonly samples: () => Sample[],
  ) {}

  async get(): Promise<{
    name: string;
    help: string;
    type: MetricKind;
    aggregator: string;
    values: Sample[];
  }> {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: this.samples(),
    };
  }

  // What the registry may call on its metrics besides get(): nothing to do here.
  reset(): void {}
  collect(): void {}
}

export interface MetricsRegistryOptions {
  /** prom-client's process and Node.js metrics (default true). */
  defaultMetrics?: boolean;
  /** The config reloads' outcome; without it (the embedded demo) the config never reloads. */
  reloads?: ReloadOutcome;
}

/** A registry serving the engine's metrics; totals come from `ledger` so they never go down. */
export function createMetricsRegistry(
  engine: EngineView,
  ledger: StatsLedger,
  opts: MetricsRegistryOptions = {},
): Registry {
  const registry = new Registry();
  let snap: Snapshot | null = null;
  const missing = (): ReadonlySet<string> => engine.missing ?? new Set();
  const snapshot = (): Snapshot => {
    if (snap === null) {
      snap = {
        exports: [...engine.targets.values()].map((t) => ({
          labels: { export: t.name },
          target: targetLabel(t),
          path: t.backend.path,
          totals: ledger.exportTotals(t),
          inFlight: t.inFlight,
          stuck: t.stuck,
          oldestRequestSeconds: t.oldestRequestSeconds,
          sizeBytes: t.sizeBytes,
          queueLength: t.cfg.queueLength,
        })),
        interfaces: [...engine.ports.values()].map((p) => ({
          labels: { interface: p.name },
          totals: ledger.interfaceTotals(p),
          mtu: p.mtu,
        })),
        up: [...engine.targets.values()]
          .map((t) => ({
            labels: { export: t.name },
            value: t.cfg.interfaces.some((n) => !missing().has(n)) ? 1 : 0,
          }))
          .concat(
            [...(engine.waiting?.keys() ?? [])].map((name) => ({
              labels: { export: name },
              value: 0,
            })),
          ),
        links: [...new Set([...engine.ports.keys(), ...missing()])].map((name) => ({
          labels: { interface: name },
          value: missing().has(name) ? 0 : 1,
        })),
      };
      queueMicrotask(() => {
        snap = null;
      });
    }
    return snap;
  };

  const add = (name: string, help: string, type: MetricKind, samples: () => Sample[]): void => {
    registry.registerMetric(new ScrapedMetric(name, help, type, samples) as unknown as Metric);
  };
  const perExport = (
    name: string,
    help: string,
    type: MetricKind,
    value: (e: ExportSnap) => number,
  ): void =>
    add(name, help, type, () =>
      snapshot().exports.map((e) => ({ labels: e.labels, value: value(e) })),
    );
  const exportCounter = (name: string, help: string, key: TargetCounter): void => {
    const i = targetIndex(key);
    perExport(name, help, "counter", (e) => e.totals[i]!);
  };
  const perInterface = (
    name: string,
    help: string,
    type: MetricKind,
    value: (p: PortSnap) => number,
  ): void =>
    add(name, help, type, () =>
      snapshot().interfaces.map((p) => ({ labels: p.labels, value: value(p) })),
    );
  const interfaceCounter = (name: string, help: string, key: PortCounter): void => {
    const i = portIndex(key);
    perInterface(name, help, "counter", (p) => p.totals[i]!);
  };

  add("aoed_build_info", "aoed's version; always 1.", "gauge", () => [
    { labels: { version: VERSION }, value: 1 },
  ]);
  const reloads = opts.reloads ?? { lastSuccessful: true, lastSuccessAt: Date.now() / 1000 };
  add(
    "aoed_config_last_reload_successful",
    "1 when the last config reload was applied (or none was tried since start), 0 when the file was rejected and the previous config still runs.",
    "gauge",
    () => [{ labels: {}, value: reloads.lastSuccessful ? 1 : 0 }],
  );
  add(
    "aoed_config_last_reload_success_timestamp_seconds",
    "When the running config was loaded: the last successful reload, or the start.",
    "gauge",
    () => [{ labels: {}, value: reloads.lastSuccessAt }],
  );

  // ---- per export
  add(
    "aoed_export_requests_total",
    "Requests an export handled, by operation: ATA read, write, identify, flush and other; AoE config, mask and reserve.",
    "counter",
    () =>
      snapshot().exports.flatMap((e) =>
        OPS.map(([op, key]) => ({
          labels: { ...e.labels, op },
          value: e.totals[targetIndex(key)]!,
        })),
      ),
  );
  exportCounter(
    "aoed_export_read_bytes_total",
    "Bytes read from the backing store and sent.",
    "bytesRead",
  );
  exportCounter(
    "aoed_export_written_bytes_total",
    "Bytes received and written to the backing store.",
    "bytesWritten",
  );
  exportCounter(
    "aoed_export_ata_errors_total",
    "ATA commands answered with an error (aborted: bad LBA or count, read-only, I/O error).",
    "ataErrors",
  );
  exportCounter(
    "aoed_export_aoe_errors_total",
    "AoE error replies (bad argument, unrecognized command, reserved, config string present).",
    "aoeErrors",
  );
  exportCounter(
    "aoed_export_queue_drops_total",
    "Requests dropped because all of the export's queue slots were busy (the initiator retransmits).",
    "queueDrops",
  );
  // Group commit with `write-cache: false` (src/io/group-commit.ts); zero otherwise.
  exportCounter(
    "aoed_export_syncs_total",
    "fdatasync calls started to make written data durable (write-cache: false); each covers every write completed before it.",
    "syncs",
  );
  exportCounter(
    "aoed_export_synced_writes_total",
    "Writes (and FLUSH CACHE commands) acknowledged after a completed fdatasync covered them (write-cache: false).",
    "syncedWrites",
  );
  exportCounter(
    "aoed_export_dsync_writes_total",
    "Lone writes made durable on their own with RWF_DSYNC instead of a shared fdatasync (write-cache: false).",
    "dsyncWrites",
  );
  exportCounter(
    "aoed_export_sync_errors_total",
    "fdatasync calls that failed; the first fails the export's writes and flushes until it is reopened.",
    "syncErrors",
  );
  add(
    "aoed_export_denied_requests_total",
    "Requests ignored because the sender is refused: by the ACL (reason acl) or not on the MAC mask list (reason mask).",
    "counter",
    () =>
      snapshot().exports.flatMap((e) => [
        { labels: { ...e.labels, reason: "acl" }, value: e.totals[targetIndex("aclDenied")]! },
        { labels: { ...e.labels, reason: "mask" }, value: e.totals[targetIndex("maskDenied")]! },
      ]),
  );
  add(
    "aoed_export_request_duration_seconds",
    "Backend time of reads, writes and flushes, by operation (op).",
    "histogram",
    () =>
      snapshot().exports.flatMap((e) =>
        LATENCY_OPS.flatMap((op, i) => {
          const at = opHistogramAt(i);
          const labels = { ...e.labels, op };
          const out: Sample[] = [];
          let cumulative = 0;
          for (let b = 0; b <= LATENCY_BUCKETS.length; b++) {
            cumulative += e.totals[at + b]!;
            out.push({
              metricName: "aoed_export_request_duration_seconds_bucket",
              labels: { ...labels, le: b < LATENCY_BUCKETS.length ? LATENCY_BUCKETS[b]! : "+Inf" },
              value: cumulative,
            });
          }
          out.push(
            {
              metricName: "aoed_export_request_duration_seconds_sum",
              labels,
              value: e.totals[at + LATENCY_BUCKETS.length + 1]!,
            },
            {
              metricName: "aoed_export_request_duration_seconds_count",
              labels,
              value: e.totals[at + LATENCY_BUCKETS.length + 2]!,
            },
          );
          return out;
        }),
      ),
  );
  perExport(
    "aoed_export_in_flight_requests",
    "Requests being processed by the backend now.",
    "gauge",
    (e) => e.inFlight,
  );
  perExport(
    "aoed_export_backend_stuck",
    "1 while the export's backend has left a request unanswered for 3 s or more (it hangs: a dead NFS server, a FUSE daemon that stopped answering), else 0.",
    "gauge",
    (e) => (e.stuck ? 1 : 0),
  );
  perExport(
    "aoed_export_oldest_request_age_seconds",
    "Age of the export's oldest request in flight (0 when none): how long a stuck backend has been stuck.",
    "gauge",
    (e) => e.oldestRequestSeconds,
  );
  perExport(
    "aoed_export_queue_length",
    "Requests the export accepts at once (its queue slots, advertised as the AoE buffer count).",
    "gauge",
    (e) => e.queueLength,
  );
  perExport("aoed_export_size_bytes", "Size of the export.", "gauge", (e) => e.sizeBytes);
  add(
    "aoed_export_info",
    "An export's AoE address (target, e<shelf>.<slot>) and backing path; always 1. Join on `export` to label other series with them.",
    "gauge",
    () =>
      snapshot().exports.map((e) => ({
        labels: { ...e.labels, target: e.target, path: e.path },
        value: 1,
      })),
  );
  add(
    "aoed_export_up",
    "1 when the export serves; 0 while it waits for its backing file or device, or for every one of its interfaces, to appear. Every export in the config has a sample.",
    "gauge",
    () => snapshot().up,
  );

  // ---- per interface
  interfaceCounter(
    "aoed_interface_receive_frames_total",
    "AoE frames received on the interface.",
    "rxFrames",
  );
  interfaceCounter(
    "aoed_interface_receive_bytes_total",
    "Bytes of AoE frames received on the interface.",
    "rxBytes",
  );
  interfaceCounter(
    "aoed_interface_transmit_frames_total",
    "AoE frames sent on the interface.",
    "txFrames",
  );
  interfaceCounter(
    "aoed_interface_transmit_bytes_total",
    "Bytes of AoE frames sent on the interface.",
    "txBytes",
  );
  add(
    "aoed_interface_ignored_frames_total",
    "Received frames ignored, by reason: short, version (not AoE version 1), response (another target's reply), own (looped back), wildcard (broadcast shelf/slot on anything but discovery), unknown_target (a shelf/slot not exported here), steering (anything but a read or write on a worker thread's socket: should stay 0).",
    "counter",
    () =>
      snapshot().interfaces.flatMap((p) =>
        IGNORE_REASONS.map(([reason, key]) => ({
          labels: { ...p.labels, reason },
          value: p.totals[portIndex(key)]!,
        })),
      ),
  );
  interfaceCounter(
    "aoed_interface_receive_drops_total",
    "Frames the kernel dropped because the receive ring was full.",
    "kernelDrops",
  );
  // Busy polling (`busy-poll`, src/net/packet-socket.ts); both stay 0 with `busy-poll: 0`.
  interfaceCounter(
    "aoed_interface_busy_poll_hits_total",
    "Busy polls that caught a frame: it arrived while aoed watched the receive ring, and was handled without an epoll wake-up (one per wake-up saved, not per frame).",
    "busyPollHits",
  );
  interfaceCounter(
    "aoed_interface_busy_poll_misses_total",
    "Busy polls that ended with no frame: each spent up to busy-poll microseconds of CPU for nothing.",
    "busyPollMisses",
  );
  interfaceCounter(
    "aoed_interface_transmit_ring_full_total",
    "Replies not sent because the transmit ring was full (the initiator retransmits).",
    "txRingFull",
  );
  perInterface("aoed_interface_mtu_bytes", "MTU in use on the interface.", "gauge", (p) => p.mtu);
  add(
    "aoed_interface_up",
    "1 when the interface exists and aoed's socket is bound to it; 0 while an interface an export names does not exist (its exports wait for it).",
    "gauge",
    () => snapshot().links,
  );

  // ---- per worker thread (`workers:`)
  add(
    "aoed_worker_receive_frames_total",
    "AoE frames a data-path worker thread received, over all interfaces: how evenly the kernel spreads reads and writes. No samples without workers.",
    "counter",
    () => (engine.workerFrames?.() ?? []).map((value, i) => ({ labels: { worker: i + 1 }, value })),
  );

  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  return registry;
}
