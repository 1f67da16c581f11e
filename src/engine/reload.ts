/**
 * Reloading the config file into a running engine: the whole new file is
 * parsed and validated first; if anything is wrong every problem is logged
 * and the running config stays exactly as it was.
 */
import type { Logger } from "pino";
import { writeCacheRisk } from "../config/describe.js";
import { formatDiagnostic, loadConfigFile, type StatInfo } from "../config/load.js";
import { boundedStat, FS_TIMEOUT_MS } from "./bounded-fs.js";
import type { ApplySummary, Engine } from "./engine.js";

export type ReloadResult = { ok: true; summary: ApplySummary } | { ok: false; errors: string[] };

/** The outcome of the last reload, for the metrics; the config loaded at start counts as one. */
export interface ReloadOutcome {
  readonly lastSuccessful: boolean;
  /** Unix time, seconds. */
  readonly lastSuccessAt: number;
}

export class Reloader implements ReloadOutcome {
  lastSuccessful = true;
  lastSuccessAt = Date.now() / 1000;

  /** Reloads run one after another, never interleaved. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly engine: Engine,
    private readonly path: string,
    private readonly log: Logger,
    /** A --log-level on the command line wins over the file. */
    private readonly fixedLogLevel: boolean,
  ) {}

  reload(reason: string): Promise<ReloadResult> {
    const run = this.chain.then(() => this.run(reason));
    this.chain = run.catch(() => {});
    return run;
  }

  /**
   * The config check's look at each backing file, bounded: a filesystem that
   * does not answer within FS_TIMEOUT_MS (one whose export is stuck) is taken
   * to hold what the running export was opened on, so the rest of the reload
   * goes on; a path no export runs on is an error.
   */
  private readonly stat = async (path: string): Promise<StatInfo> => {
    const st = await boundedStat(path);
    if (st !== null) return st;
    const running = [...this.engine.targets.values()].find((t) => t.cfg.path === path);
    this.log.warn(
      { path, exports: running ? [running.name] : [] },
      `stat of a backing file did not answer within ${FS_TIMEOUT_MS / 1000} s`,
    );
    if (running === undefined)
      return {
        kind: "error",
        message: `the filesystem did not answer a stat within ${FS_TIMEOUT_MS / 1000} s`,
      };
    const { caps, size } = running.backend;
    return { kind: caps.blockDevice ? "block" : "file", size: running.cfg.offset + size };
  };

  private async run(reason: string): Promise<ReloadResult> {
    const started = performance.now();
    const result = await loadConfigFile(this.path, { stat: this.stat });
    const loadMs = Math.round(performance.now() - started);
    for (const w of result.warnings) this.log.warn(formatDiagnostic(w));
    if (!result.ok) {
      const errors = result.errors.map((e) => formatDiagnostic(e));
      for (const e of errors) this.log.error(e);
      this.log.error(
        { reason, errors: errors.length },
        "config not reloaded: still serving the previous config",
      );
      this.lastSuccessful = false;
      return { ok: false, errors };
    }
    if (result.config.workers !== this.engine.workers)
      this.log.warn(
        { running: this.engine.workers, configured: result.config.workers },
        "workers: takes effect at the next restart",
      );
    try {
      // Before the apply: worker threads take the level the apply hands them.
      const level = this.log.level;
      if (!this.fixedLogLevel) this.log.level = result.config.logLevel;
      const before = this.engine.running;
      const summary = await this.engine.apply(result.config).catch((err: unknown) => {
        this.log.level = level;
        throw err;
      });
      const durationMs = Math.round(performance.now() - started);
      this.log.info({ reason, ...summary, durationMs, loadMs }, "config reloaded");
      // What the start-up log says of each export, for those this reload opened or changed.
      for (const name of [...summary.added, ...summary.changed]) {
        const t = this.engine.targets.get(name);
        if (t !== undefined)
          this.log.info(
            { export: name, target: `e${t.shelf}.${t.slot}`, ...t.ioFacts },
            "export serving",
          );
      }
      // As at start-up, for every export this reload put at that risk (added, or changed to it).
      for (const e of result.config.exports) {
        const risk = writeCacheRisk(e);
        const was = before?.exports.find((p) => p.name === e.name);
        if (risk !== null && (was === undefined || writeCacheRisk(was) === null))
          this.log.warn({ export: e.name, target: `e${e.shelf}.${e.slot}` }, risk);
      }
      this.lastSuccessful = true;
      this.lastSuccessAt = Date.now() / 1000;
      return { ok: true, summary };
    } catch (err) {
      const message = (err as Error).message;
      this.log.error(
        { reason, err: message },
        "config not reloaded: still serving the previous config",
      );
      this.lastSuccessful = false;
      return { ok: false, errors: [message] };
    }
  }
}
