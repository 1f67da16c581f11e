/**
 * The daemon's admin side: the Prometheus endpoint and the control socket, as
 * the config asks. Started before the engine (the control socket is what
 * refuses a second aoed before it opens an interface). Both read the engine
 * at request time, so they follow reloads; their own settings (listen
 * address, socket path, group) take effect at the next start.
 */
import type { Logger } from "pino";
import type { Config } from "../config/types.js";
import type { ReloadOutcome } from "../engine/reload.js";
import { StatsLedger } from "../metrics/ledger.js";
import { createMetricsRegistry } from "../metrics/registry.js";
import { type MetricsServer, startMetricsServer } from "../metrics/server.js";
import type { EngineView } from "../metrics/view.js";
import type { ReloadResult } from "./protocol.js";
import { type ControlServer, startControlServer } from "./server.js";

export interface AdminServices {
  readonly metrics: MetricsServer | null;
  readonly control: ControlServer | null;
  close(): Promise<void>;
}

export interface AdminServicesOptions {
  config: Pick<Config, "metrics" | "control">;
  engine: EngineView;
  log: Logger;
  reload?: () => Promise<ReloadResult>;
  /** The reloads' outcome, for the metrics. */
  reloads?: ReloadOutcome;
}

/** Starts what the config enables; on any failure closes what started and throws. */
export async function startAdminServices(opts: AdminServicesOptions): Promise<AdminServices> {
  const { config, engine, log } = opts;
  const ledger = new StatsLedger();
  let metrics: MetricsServer | null = null;
  let control: ControlServer | null = null;
  try {
    if (config.metrics) {
      const registry = createMetricsRegistry(
        engine,
        ledger,
        opts.reloads ? { reloads: opts.reloads } : {},
      );
      metrics = await startMetricsServer({ ...config.metrics, registry });
      log.info({ listen: metrics.address }, `metrics on http://${metrics.address}/metrics`);
    }
    if (config.control) {
      control = await startControlServer({
        path: config.control.socket,
        gid: config.control.gid,
        engine,
        ledger,
        log,
        ...(opts.reload ? { reload: opts.reload } : {}),
      });
      log.info(
        { socket: control.path, group: config.control.group },
        `control socket ${control.path}`,
      );
    }
  } catch (err) {
    await Promise.all([metrics?.close(), control?.close()]);
    throw err;
  }
  return {
    metrics,
    control,
    async close() {
      await Promise.all([metrics?.close(), control?.close()]);
    },
  };
}
