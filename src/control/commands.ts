/**
 * The control socket's commands: one request line (protocol.ts) -> one
 * answer, read from the engine's views. The socket itself is server.ts.
 */
import type { Logger } from "pino";
import { LATENCY_BUCKETS } from "../engine/latency.js";
import { socketCounts } from "../engine/stats.js";
import type { StatsLedger } from "../metrics/ledger.js";
import {
  type EngineView,
  IGNORE_REASONS,
  OPS,
  type TargetView,
  targetLabel,
} from "../metrics/view.js";
import { macToString, readMac } from "../protocol/mac.js";
import { globToRegExp } from "../util/glob.js";
import { VERSION } from "../version.js";
import {
  CLEAR_WHAT,
  type ClearResult,
  COMMANDS,
  type ExportCounters,
  type InterfaceCounters,
  PROTOCOL_VERSION,
  type ReloadResult,
  type Response,
  SHOW_WHAT,
  type ShowResult,
  type StatsResult,
  type StatusResult,
} from "./protocol.js";

export interface CommandOptions {
  engine: EngineView;
  /** Re-reads and applies the config; without it `reload` answers that it is unsupported. */
  reload?: () => Promise<ReloadResult>;
  /** Keeps the metrics monotonic across `clear stats`. */
  ledger?: StatsLedger;
  log?: Logger;
}

/** A user's mistake, answered as ok:false. */
class RequestError extends Error {
  constructor(
    message: string,
    readonly errors?: string[],
  ) {
    super(message);
  }
}

/** The counters of `table` under their labels, in the table's order. */
function labelled<L extends string, K extends string>(
  table: readonly (readonly [L, K])[],
  stats: Readonly<Record<K, number>>,
): Record<L, number> {
  return Object.fromEntries(table.map(([label, key]) => [label, stats[key]])) as Record<L, number>;
}

type Obj = Record<string, unknown>;

/** Answers one request line; a user's mistake is an ok:false answer, never a throw. */
export class CommandHandler {
  private readonly started = performance.now();

  constructor(private readonly opts: CommandOptions) {}

  async handleLine(line: string): Promise<Response> {
    let req: unknown;
    try {
      req = JSON.parse(line);
    } catch {
      return { v: PROTOCOL_VERSION, ok: false, error: "not JSON: send one JSON object per line" };
    }
    if (typeof req !== "object" || req === null || Array.isArray(req))
      return { v: PROTOCOL_VERSION, ok: false, error: "a request is a JSON object" };
    const r = req as Obj;
    const id = r.id;
    const withId = <T extends Response>(res: T): T => (id === undefined ? res : { ...res, id });
    const v = r.v ?? PROTOCOL_VERSION;
    if (v !== PROTOCOL_VERSION)
      return withId({
        v: PROTOCOL_VERSION,
        ok: false,
        error: `protocol version ${JSON.stringify(v)} is not supported: this aoed ${VERSION} speaks version ${PROTOCOL_VERSION}`,
      });
    try {
      const result = await this.dispatch(r);
      return withId({ v: PROTOCOL_VERSION, ok: true, result });
    } catch (err) {
      const res: Response = { v: PROTOCOL_VERSION, ok: false, error: (err as Error).message };
      if (err instanceof RequestError && err.errors) res.errors = err.errors;
      if (!(err instanceof RequestError))
        this.opts.log?.error({ err: (err as Error).message, cmd: r.cmd }, "control request failed");
      return withId(res);
    }
  }

  private async dispatch(r: Obj): Promise<unknown> {
    switch (r.cmd) {
      case "status":
        return this.status();
      case "stats":
        return this.stats();
      case "reload":
        return this.reload();
      case "show":
        return this.show(r);
      case "clear":
        return this.clear(r);
      default:
        throw new RequestError(
          r.cmd === undefined
            ? `no "cmd": one of ${COMMANDS.join(", ")}`
            : `unknown command ${JSON.stringify(r.cmd)}: one of ${COMMANDS.join(", ")}`,
        );
    }
  }

  private targets(): TargetView[] {
    return [...this.opts.engine.targets.values()];
  }

  /** The exports `pattern` names; an error if none. */
  private match(pattern: unknown): TargetView[] {
    if (typeof pattern !== "string" || pattern === "")
      throw new RequestError('no "export": give an export name or a glob such as "lv*" or "*"');
    const re = globToRegExp(pattern);
    const all = this.targets();
    const hits = all.filter((t) => re.test(t.name));
    if (hits.length === 0) {
      const names = all.map((t) => t.name);
      throw new RequestError(
        `no export matches ${JSON.stringify(pattern)}${names.length > 0 ? ` (exports: ${names.join(", ")})` : " (there are no exports)"}`,
      );
    }
    return hits;
  }

  private status(): StatusResult {
    const { engine } = this.opts;
    const missing = engine.missing ?? new Set<string>();
    const absent = (names: readonly string[]) =>
      names.filter((n) => missing.has(n)).map((n) => `interface ${n}`);
    return {
      daemon: {
        version: VERSION,
        pid: process.pid,
        uptimeSeconds: Math.round((performance.now() - this.started) / 1000),
        protocol: PROTOCOL_VERSION,
      },
      exports: this.targets()
        .map((t) => ({
          name: t.name,
          target: targetLabel(t),
          path: t.backend.path,
          sizeBytes: t.sizeBytes,
          readOnly: t.backend.readOnly,
          interfaces: [...t.cfg.interfaces],
          inFlight: t.inFlight,
          queueLength: t.cfg.queueLength,
          writeCache: t.cfg.writeCache,
          io: t.backend.caps?.engine ?? t.cfg.io,
          writesBuffered: t.backend.caps?.writesBuffered ?? null,
          failed: t.backend.failed?.message ?? null,
          stuck: t.stuck,
          oldestRequestSeconds: Math.round(t.oldestRequestSeconds * 10) / 10,
          up: t.cfg.interfaces.some((n) => !missing.has(n)),
          waitingFor: absent(t.cfg.interfaces),
          state: {
            config: t.state.config.toString("latin1"),
            macmask: t.state.mask.map(macToString),
            reserve: t.state.reserve.map(macToString),
          },
        }))
        .concat(
          [...(engine.waiting?.values() ?? [])].map(({ cfg, missing: waitingFor }) => ({
            name: cfg.name,
            target: targetLabel(cfg),
            path: cfg.path,
            sizeBytes: 0,
            readOnly: cfg.readOnly,
            interfaces: [...cfg.interfaces],
            inFlight: 0,
            queueLength: cfg.queueLength,
            writeCache: cfg.writeCache,
            io: cfg.io,
            writesBuffered: null,
            failed: null,
            stuck: false,
            oldestRequestSeconds: 0,
            up: false,
            waitingFor: [...waitingFor],
            state: { config: "", macmask: [], reserve: [] },
          })),
        ),
      interfaces: [...engine.ports.values()]
        .filter((p) => !missing.has(p.name))
        .map((p) => ({
          name: p.name,
          mtu: p.mtu,
          mac: macToString(readMac(p.macBytes, 0)),
          exports: p.exportCount,
          up: true,
        }))
        .concat(
          [...missing].map((name) => ({
            name,
            mtu: 0,
            mac: "",
            exports: this.targets().filter((t) => t.cfg.interfaces.includes(name)).length,
            up: false,
          })),
        ),
    };
  }

  private stats(): StatsResult {
    const { engine } = this.opts;
    return {
      time: performance.now() / 1000,
      exports: this.targets().map((t): ExportCounters => {
        const s = t.counters();
        return {
          name: t.name,
          target: targetLabel(t),
          inFlight: t.inFlight,
          requests: labelled(OPS, s),
          bytesRead: s.bytesRead,
          bytesWritten: s.bytesWritten,
          ataErrors: s.ataErrors,
          aoeErrors: s.aoeErrors,
          queueDrops: s.queueDrops,
          aclDenied: s.aclDenied,
          maskDenied: s.maskDenied,
          sync: {
            syncs: s.syncs,
            syncedWrites: s.syncedWrites,
            dsyncWrites: s.dsyncWrites,
            errors: s.syncErrors,
          },
          latency: {
            bounds: [...LATENCY_BUCKETS],
            counts: [...s.latency.counts],
            sum: s.latency.sum,
            count: s.latency.count,
          },
        };
      }),
      interfaces: [...engine.ports.values()].map((p): InterfaceCounters => {
        const s = p.stats;
        const socket = socketCounts(p);
        return {
          name: p.name,
          rxFrames: s.rxFrames,
          rxBytes: s.rxBytes,
          txFrames: s.txFrames,
          txBytes: s.txBytes,
          ignored: labelled(IGNORE_REASONS, s),
          kernelDrops: socket.rxDrops,
          otherHost: socket.otherHost,
          txRingFull: s.txRingFull,
          busyPollHits: socket.busyPollHits,
          busyPollMisses: socket.busyPollMisses,
        };
      }),
    };
  }

  private async reload(): Promise<ReloadResult> {
    const { reload, log } = this.opts;
    if (!reload) throw new RequestError("this aoed cannot reload its config");
    log?.info("reload requested on the control socket");
    const r = await reload();
    if (!r.ok) {
      const errors = r.errors ?? [];
      throw new RequestError(
        `reload failed${errors.length > 0 ? ` (${errors.length} error(s))` : ""}; still running the previous config`,
        errors,
      );
    }
    return r;
  }

  private show(r: Obj): ShowResult {
    const what = r.what;
    if (!SHOW_WHAT.includes(what as never))
      throw new RequestError(`show what? one of ${SHOW_WHAT.join(", ")}`);
    const w = what as ShowResult["what"];
    return {
      what: w,
      exports: this.match(r.export).map((t) =>
        w === "config"
          ? { name: t.name, config: t.state.config.toString("latin1") }
          : w === "macmask"
            ? { name: t.name, macmask: t.state.mask.map(macToString) }
            : { name: t.name, reserve: t.state.reserve.map(macToString) },
      ),
    };
  }

  private clear(r: Obj): ClearResult {
    const what = r.what;
    if (!CLEAR_WHAT.includes(what as never))
      throw new RequestError(`clear what? one of ${CLEAR_WHAT.join(", ")}`);
    const w = what as ClearResult["what"];
    const targets = this.match(r.export);
    for (const t of targets) {
      if (w === "stats") {
        if (this.opts.ledger) this.opts.ledger.resetExport(t);
        else t.resetStats();
      } else t.clearState(w === "macmask" ? "mask" : w);
    }
    if (w === "stats")
      this.opts.log?.info(
        { exports: targets.map((t) => t.name) },
        "statistics cleared by the admin",
      );
    return { what: w, matched: targets.map((t) => t.name) };
  }
}
