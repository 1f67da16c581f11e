/**
 * The control socket: aoectl's admin commands (status, stats, reload, show,
 * clear) over newline-delimited JSON on a unix socket (see protocol.ts).
 * Access is the socket file's permissions: mode 0660, owned by the daemon's
 * user and optionally a configured group.
 */

import type fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import type { Logger } from "pino";
import { LATENCY_BUCKETS } from "../engine/latency.js";
import type { StatsLedger } from "../metrics/ledger.js";
import { type EngineView, type TargetView, targetLabel } from "../metrics/view.js";
import { macToString, readMac } from "../protocol/mac.js";
import { globToRegExp } from "../util/glob.js";
import { VERSION } from "../version.js";
import {
  CLEAR_WHAT,
  type ClearResult,
  COMMANDS,
  type ExportCounters,
  type InterfaceCounters,
  MAX_LINE,
  PROTOCOL_VERSION,
  type ReloadResult,
  type Response,
  SHOW_WHAT,
  type ShowResult,
  type StatsResult,
  type StatusResult,
} from "./protocol.js";

export const SOCKET_MODE = 0o660;

export interface ControlServerOptions {
  /** Where to create the socket. */
  path: string;
  /** Group to give the socket (null: the daemon's own). */
  gid?: number | null;
  engine: EngineView;
  /** Re-reads and applies the config; without it `reload` answers that it is unsupported. */
  reload?: () => Promise<ReloadResult>;
  /** Keeps the metrics monotonic across `clear stats`. */
  ledger?: StatsLedger;
  log?: Logger;
}

export interface ControlServer {
  readonly path: string;
  /** Stops listening, drops open connections and removes the socket file. */
  close(): Promise<void>;
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

/** Connects to `p`; resolves true if something accepts, false if nothing listens (stale). */
function probe(p: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const s = net.connect(p);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", (err: NodeJS.ErrnoException) => {
      s.destroy();
      if (err.code === "ECONNREFUSED" || err.code === "ENOENT") resolve(false);
      else reject(err);
    });
  });
}

/** Another daemon holds the socket path. */
export class AlreadyRunningError extends Error {
  constructor(p: string) {
    super(
      `another aoed is already running: something answers on the control socket ${p}; stop it first, or give this one another \`control-socket:\``,
    );
    this.name = "AlreadyRunningError";
  }
}

/** Makes way for the socket: removes a stale one, refuses if a live daemon holds it. */
async function clearStale(p: string, log?: Logger): Promise<void> {
  let st: fs.Stats;
  try {
    st = await fsp.lstat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  if (!st.isSocket())
    throw new Error(
      `${p} exists and is not a socket; remove it or choose another \`control-socket:\``,
    );
  if (await probe(p)) throw new AlreadyRunningError(p);
  await fsp.unlink(p).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "ENOENT") throw err;
  });
  log?.info({ socket: p }, "removed a stale control socket (nothing listened on it)");
}

/** Listens with mode 0660 from the start: the umask covers the moment between bind and chmod. */
function listen(server: net.Server, p: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => reject(err);
    server.once("error", onError);
    const old = process.umask(0o117);
    try {
      server.listen(p, () => {
        server.off("error", onError);
        resolve();
      });
    } finally {
      process.umask(old);
    }
  });
}

export async function startControlServer(opts: ControlServerOptions): Promise<ControlServer> {
  const p = path.resolve(opts.path);
  const log = opts.log;
  await fsp.mkdir(path.dirname(p), { recursive: true, mode: 0o755 });
  await clearStale(p, log);

  const conns = new Set<net.Socket>();
  const handler = new Handler(opts);
  const server = net.createServer((sock) => {
    conns.add(sock);
    sock.on("close", () => conns.delete(sock));
    serve(sock, handler);
  });
  // Bound under a private name, given its mode and group, then linked into place: the
  // socket appears complete, link() refuses to replace one another daemon just made,
  // and libuv, which unlinks the name it bound when the server closes, never removes
  // the real path from under a successor.
  const tmp = path.join(
    path.dirname(p),
    `.${path.basename(p)}.${process.pid}.${Math.random().toString(36).slice(2, 10)}`,
  );
  let ino: number;
  try {
    await listen(server, tmp);
    await fsp.chmod(tmp, SOCKET_MODE);
    if (opts.gid !== null && opts.gid !== undefined) await fsp.chown(tmp, -1, opts.gid);
    ino = (await fsp.stat(tmp)).ino;
    await fsp.link(tmp, p).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code === "EEXIST") throw new AlreadyRunningError(p);
      if (err.code !== "EPERM" && err.code !== "ENOTSUP" && err.code !== "EOPNOTSUPP") throw err;
      // No hard links on this filesystem: rename, which would replace, after one more look.
      await clearStale(p, log);
      await fsp.rename(tmp, p);
    });
  } catch (err) {
    await new Promise((resolve) => server.close(resolve));
    await fsp.unlink(tmp).catch(() => {});
    if (err instanceof AlreadyRunningError) throw err;
    throw new Error(`cannot set up the control socket ${p}: ${(err as Error).message}`);
  } finally {
    await fsp.unlink(tmp).catch(() => {});
  }

  let closed: Promise<void> | null = null;
  return {
    path: p,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const c of conns) c.destroy();
      }).then(async () => {
        // Only our own socket: a successor may already have replaced it.
        const st = await fsp.stat(p).catch(() => null);
        if (st?.ino === ino) await fsp.unlink(p).catch(() => {});
      });
      return closed;
    },
  };
}

/** Reads request lines from one connection and answers each, in order. */
function serve(sock: net.Socket, handler: Handler): void {
  let buffered = "";
  let queue = Promise.resolve();
  sock.setEncoding("utf8");
  sock.on("error", () => sock.destroy()); // the client went away mid-answer: nothing to do
  sock.on("data", (chunk: string) => {
    buffered += chunk;
    let nl = buffered.indexOf("\n");
    while (nl >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line !== "")
        queue = queue.then(async () => {
          const reply = await handler.handleLine(line);
          if (!sock.destroyed) sock.write(`${JSON.stringify(reply)}\n`);
        });
      nl = buffered.indexOf("\n");
    }
    if (buffered.length > MAX_LINE) {
      queue = queue.then(() => {
        sock.end(
          `${JSON.stringify({ v: PROTOCOL_VERSION, ok: false, error: `request longer than ${MAX_LINE} bytes` })}\n`,
        );
      });
      buffered = "";
      sock.pause();
    }
  });
}

type Obj = Record<string, unknown>;

class Handler {
  private readonly started = performance.now();

  constructor(private readonly opts: ControlServerOptions) {}

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
        const s = t.stats;
        return {
          name: t.name,
          target: targetLabel(t),
          inFlight: t.inFlight,
          requests: {
            read: s.reads,
            write: s.writes,
            identify: s.identifies,
            flush: s.flushes,
            config: s.configs,
            mask: s.masks,
            reserve: s.reserves,
            other: s.otherAta,
          },
          bytesRead: s.bytesRead,
          bytesWritten: s.bytesWritten,
          ataErrors: s.ataErrors,
          aoeErrors: s.aoeErrors,
          queueDrops: s.queueDrops,
          aclDenied: s.aclDenied,
          maskDenied: s.maskDenied,
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
        let kernelDrops = 0;
        let otherHost = 0;
        try {
          ({ rxDrops: kernelDrops, otherHost } = p.kernelStats());
        } catch {
          // the interface may be gone
        }
        return {
          name: p.name,
          rxFrames: s.rxFrames,
          rxBytes: s.rxBytes,
          txFrames: s.txFrames,
          txBytes: s.txBytes,
          ignored: {
            short: s.ignoredShort,
            version: s.ignoredVersion,
            response: s.ignoredResponse,
            own: s.ignoredOwn,
            wildcard: s.ignoredWildcard,
            unknown_target: s.notForUs,
            steering: s.ignoredSteering,
          },
          kernelDrops,
          otherHost,
          txRingFull: s.txRingFull,
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
