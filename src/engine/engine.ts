/**
 * The engine turns a Config into running ports and targets. `apply` moves
 * from the running config to a new one with the least disturbance: exports
 * whose settings did not change keep serving untouched; new ones open and
 * announce; removed ones stop taking requests and answer what is in flight
 * before their backend closes; changed ones are replaced by a new target that
 * takes over the address at once while the old one drains. Everything that
 * can fail (opening files, devices, interfaces) happens before anything
 * running is touched, so a failed apply leaves the old config serving.
 */
import fs from "node:fs";
import { isDeepStrictEqual } from "node:util";
import type { Logger } from "pino";
import { INTERFACE_DEFAULTS } from "../config/resolve.js";
import type { Config, ExportConfig, InterfaceConfig } from "../config/types.js";
import type { Backend } from "../io/backend.js";
import { namesExport } from "../io/errors.js";
import { type LinkEvent, LinkMonitor, linkState } from "../net/link-monitor.js";
import { maxSectorsForMtu } from "../protocol/constants.js";
import { within } from "./bounded-fs.js";
import { backendKey, grew, inheritsClaim, openBackend } from "./export-backend.js";
import { emptyState, type TargetState } from "./initiator-state.js";
import { Port } from "./port.js";
import { SharedAccessLists } from "./shared-state.js";
import { logSocketErrors } from "./socket-errors.js";
import { StateStore } from "./state-store.js";
import { encodeProgram, TO_MAIN_ONLY } from "./steering.js";
import { Target } from "./target.js";
import { WorkerPool } from "./workers.js";

export interface ApplySummary {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
  /** Exports whose backing store or every interface does not exist yet. */
  waiting: string[];
}

/** An export that cannot serve yet, and what it waits for ("file /srv/a.img", "interface bond0"). */
export interface WaitingExport {
  readonly cfg: ExportConfig;
  readonly missing: string[];
}

/** How long a stop or a replaced export waits for requests in flight before leaving them. */
const DRAIN_TIMEOUT_MS = 5000;

const TO_MAIN = encodeProgram(TO_MAIN_ONLY);

/** How often exports are checked for a stuck backend. */
const STUCK_CHECK_MS = 500;

/**
 * Links announce their changes (rtnetlink), backing files do not: while an
 * export waits for its file, or a changed link could not be bound, the engine
 * looks again this often.
 */
const RECHECK_MS = 1000;

/** Mask and reservation in shared memory for the worker threads, starting from `state`. */
function publishedLists(state: TargetState): SharedAccessLists {
  const lists = new SharedAccessLists();
  lists.publish(state.mask, state.reserve);
  return lists;
}

export class Engine {
  readonly ports = new Map<string, Port>();
  readonly targets = new Map<string, Target>();
  /** Exports in the config that wait for their backing store or an interface to appear. */
  readonly waiting = new Map<string, WaitingExport>();
  /** Interfaces exports name that do not exist now: never seen yet, or gone. */
  readonly missing = new Set<string>();
  private config: Config | null = null;
  private store: StateStore | null = null;
  /** Drains of replaced or removed targets still answering in-flight requests. */
  private readonly draining = new Set<Promise<void>>();

  /** Data-path worker threads; null when the main thread serves everything (`workers: 0`). */
  private pool: WorkerPool | null = null;

  constructor(
    private readonly log: Logger,
    private readonly opts: { prettyLogs?: boolean } = {},
  ) {}

  /** Data-path worker threads running (fixed at start). */
  get workers(): number {
    return this.pool?.size ?? 0;
  }

  /** Frames each worker thread has received (worker i at i - 1); empty without workers. */
  workerFrames(): readonly number[] {
    return this.pool?.rxFrames ?? [];
  }

  /** The config in effect. */
  get running(): Config | null {
    return this.config;
  }

  async start(config: Config): Promise<void> {
    if (config.workers > 0)
      this.pool = new WorkerPool(config.workers, this.log, {
        logLevel: this.log.level,
        pretty: this.opts.prettyLogs ?? false,
      });
    // Listening before the first apply, so no link that appears meanwhile goes unnoticed.
    try {
      this.links = LinkMonitor.open(this.onLinks, this.onLinksLost);
    } catch (err) {
      this.onLinksLost(err as Error);
    }
    try {
      await this.apply(config);
    } catch (err) {
      this.links?.close();
      this.links = null;
      await this.pool?.stop();
      this.pool = null;
      throw err;
    }
    this.stuckTimer = setInterval(() => {
      for (const t of this.targets.values()) t.checkStuck();
      for (const t of this.retiring) t.checkStuck();
    }, STUCK_CHECK_MS);
    this.stuckTimer.unref();
  }

  private stuckTimer: NodeJS.Timeout | null = null;
  /** Replaced or removed targets still answering requests in flight. */
  private readonly retiring = new Set<Target>();

  /** Applies are serialized: a reload and a link change never interleave. */
  private queue: Promise<unknown> = Promise.resolve();

  apply(next: Config, reopen: ReadonlySet<string> = new Set()): Promise<ApplySummary> {
    const run = this.queue.then(() => this.applyNow(next, reopen));
    this.queue = run.catch(() => {});
    return run;
  }

  /**
   * `reopen` names interfaces whose socket must be bound again (the link was
   * recreated or its MTU changed); their exports get new targets sized for it.
   */
  private async applyNow(next: Config, reopen: ReadonlySet<string>): Promise<ApplySummary> {
    const prev = this.config;
    const summary: ApplySummary = {
      added: [],
      removed: [],
      changed: [],
      unchanged: [],
      waiting: [],
    };
    const store = this.stateStoreFor(next);

    // Plan: which exports stay as they are, which need a new target and whether
    // that target can reuse the running backend.
    let build: { cfg: ExportConfig; old: Target | null; backend: Backend | null }[] = [];
    // Interfaces whose settings stay: compared once each, not once per export.
    const sameIface = new Map<string, boolean>();
    const ifaceSame = (n: string): boolean => {
      let same = sameIface.get(n);
      if (same === undefined) {
        same =
          prev !== null &&
          !reopen.has(n) &&
          isDeepStrictEqual(prev.interfaces[n], next.interfaces[n]);
        sameIface.set(n, same);
      }
      return same;
    };
    // Opened anew: a backend failed by a failed sync (src/io/group-commit.ts), or a file that grew.
    const reopened = new Set<Target>();
    await Promise.all(
      next.exports.map(async (cfg) => {
        const old = this.targets.get(cfg.name);
        if (old !== undefined && ((old.backend.failed ?? null) !== null || (await grew(old))))
          reopened.add(old);
      }),
    );
    for (const cfg of next.exports) {
      const old = this.targets.get(cfg.name) ?? null;
      const portsSame = old !== null && prev !== null && cfg.interfaces.every(ifaceSame);
      if (old && portsSame && isDeepStrictEqual(old.cfg, cfg) && !reopened.has(old)) {
        summary.unchanged.push(cfg.name);
        continue;
      }
      const reuse =
        old && isDeepStrictEqual(backendKey(old.cfg), backendKey(cfg)) && !reopened.has(old);
      build.push({ cfg, old, backend: reuse ? old.backend : null });
    }
    const nextNames = new Set(next.exports.map((e) => e.name));
    const removed = [...this.targets.values()].filter((t) => !nextNames.has(t.name));
    summary.removed = removed.map((t) => t.name);
    // What does not exist now: those exports wait instead of failing the apply.
    const present = new Map<string, boolean>();
    const exists = (n: string): boolean => {
      let p = present.get(n);
      if (p === undefined) {
        p = this.ports.has(n) || linkState(n) !== null;
        present.set(n, p);
      }
      return p;
    };
    const waiting = new Map<string, WaitingExport>();
    /** An export waits without its backing store (unless a running backend is reused) or any interface. */
    const waits = (b: (typeof build)[number]): boolean => {
      const missing = b.cfg.interfaces.filter((n) => !exists(n)).map((n) => `interface ${n}`);
      const noFile = b.backend === null && !fs.existsSync(b.cfg.path);
      if (noFile) missing.unshift(`file ${b.cfg.path}`);
      if (!noFile && missing.length < b.cfg.interfaces.length) return false;
      waiting.set(b.cfg.name, { cfg: b.cfg, missing });
      summary.waiting.push(b.cfg.name);
      // A running export whose new settings name what is missing stops until it appears.
      if (b.old) removed.push(b.old);
      return true;
    };
    build = build.filter((b) => !waits(b));
    for (const b of build) (b.old ? summary.changed : summary.added).push(b.cfg.name);
    const serving = next.exports.filter((e) => !waiting.has(e.name));

    // Fallible part: open new backends and any port whose interface is new or re-set.
    const opened: Backend[] = [];
    const newPorts = new Map<string, Port>();
    /** Running ports being replaced whose workers no longer get frames (undone on failure). */
    const resteered: Port[] = [];
    try {
      const results = await Promise.allSettled(
        build.map((b) =>
          b.backend
            ? Promise.resolve(b.backend)
            : openBackend(b.cfg, inheritsClaim(b.old, b.cfg), this.pool !== null),
        ),
      );
      const failures: string[] = [];
      results.forEach((r, i) => {
        const b = build[i]!;
        if (r.status === "rejected") {
          // The backend's errors name the export; anything else gets its name in front.
          const message = (r.reason as Error).message;
          failures.push(namesExport(r.reason, b.cfg.name) ? message : `${b.cfg.name}: ${message}`);
        } else if (r.value !== b.backend) {
          opened.push(r.value);
          b.backend = r.value;
        }
      });
      if (failures.length > 0) throw new Error(`cannot open exports:\n  ${failures.join("\n  ")}`);
      for (const name of new Set(serving.flatMap((e) => e.interfaces))) {
        const settings: InterfaceConfig = next.interfaces[name] ?? INTERFACE_DEFAULTS;
        const running = this.ports.get(name);
        if (
          running &&
          prev &&
          !reopen.has(name) &&
          isDeepStrictEqual(prev.interfaces[name] ?? INTERFACE_DEFAULTS, settings)
        )
          continue;
        if (!exists(name)) continue;
        const queueSlots = next.exports
          .filter((e) => e.interfaces.includes(name))
          .reduce((n, e) => n + e.queueLength, 0);
        if (running && this.pool) {
          running.steer(TO_MAIN);
          resteered.push(running);
        }
        newPorts.set(name, this.openPort(name, settings, queueSlots));
      }
    } catch (err) {
      for (const p of resteered) p.steer(this.pool!.program);
      for (const p of newPorts.values()) p.close();
      await Promise.all(opened.map((b) => b.close()));
      throw err;
    }

    // Infallible part: swap. Old ports being replaced stop receiving at once but
    // keep transmitting until their targets have answered what is in flight.
    const retiredPorts = [...this.ports.entries()].filter(
      ([name]) => newPorts.has(name) || !serving.some((e) => e.interfaces.includes(name)),
    );
    for (const [name, port] of retiredPorts) {
      port.stopReceiving();
      this.ports.delete(name);
    }
    for (const [name, port] of newPorts) {
      this.ports.set(name, port);
      this.missing.delete(name);
    }

    const reusedBackends = new Set(build.map((b) => b.backend));
    const heirs = new Map(
      build.flatMap((b) => (b.old && b.backend !== b.old.backend ? [[b.old, b.backend!]] : [])),
    );
    const announce: Target[] = [];
    for (const b of build) {
      const ports = b.cfg.interfaces.flatMap((n) => this.ports.get(n) ?? []);
      const maxSectors = Math.max(...ports.map((p) => maxSectorsForMtu(p.mtu)));
      const state = b.old?.state ?? store?.load(b.cfg.name) ?? emptyState();
      const target = new Target(b.cfg, b.backend!, maxSectors, this.log, {
        state,
        stats: b.old?.stats,
        ...(this.pool ? { lists: b.old?.sharedLists ?? publishedLists(state) } : {}),
        // Looked up at each change, so a new state-dir applies to every export.
        onStateChange: (s) => this.store?.save(b.cfg.name, s),
      });
      this.targets.set(b.cfg.name, target);
      for (const p of ports) p.attach(target);
      announce.push(target);
    }

    const retire = (t: Target) => {
      for (const p of this.ports.values()) p.detach(t);
      const closeBackend = !reusedBackends.has(t.backend);
      // Detached at once; a backend that does not answer in time is left, and said so.
      const late = setTimeout(
        () =>
          this.log.warn(
            { export: t.name, path: t.backend.path, inFlight: t.inFlight },
            `replaced or removed export still has requests in flight after ${DRAIN_TIMEOUT_MS / 1000} s: left to finish; its backend closes when they complete`,
          ),
        DRAIN_TIMEOUT_MS,
      );
      late.unref();
      const drained = Promise.all([t.drain(), this.pool?.releasedBy(t)]);
      void drained.finally(() => clearTimeout(late));
      this.retiring.add(t);
      void drained.finally(() => this.retiring.delete(t));
      const done = drained.then(async () => {
        // Its last syncs, into the counters its successor carries on.
        t.counters();
        if (!closeBackend) return;
        await t.backend.close();
        await heirs
          .get(t)
          ?.claimExclusive?.()
          .catch((err: Error) =>
            this.log.warn(
              { export: t.name, err: err.message },
              "cannot take the exclusive claim back",
            ),
          );
      });
      this.draining.add(done);
      void done.finally(() => this.draining.delete(done));
      return done;
    };
    for (const t of removed) this.targets.delete(t.name);

    // Workers learn the new picture before anything retired may close under them.
    const workersApplied = this.pool?.apply(this.ports, this.targets.values(), this.log.level);
    const retiring = [...removed, ...build.flatMap((b) => (b.old ? [b.old] : []))].map(retire);

    this.config = next;
    this.store = store;
    this.noteWaiting(waiting);
    this.armRecheck();
    const named = new Set(next.exports.flatMap((e) => e.interfaces));
    for (const name of this.missing) if (!named.has(name)) this.missing.delete(name);
    for (const name of named)
      if (!exists(name) && !this.missing.has(name)) {
        this.log.warn({ interface: name }, "interface does not exist; its exports wait for it");
        this.missing.add(name);
      }
    void Promise.all(retiring).then(() => {
      for (const [, port] of retiredPorts) port.close();
    });
    await workersApplied;
    // Announced once the workers serve them too, so the first reads are not
    // dropped there, and once the link is up, so the announcement is not lost.
    const up = new Map<string, boolean>();
    for (const t of announce)
      for (const n of t.cfg.interfaces) {
        const port = this.ports.get(n);
        if (port === undefined || this.targets.get(t.name) !== t) continue;
        if (!up.has(n)) up.set(n, linkState(n)?.up ?? false);
        if (up.get(n)) t.announce(port);
        else this.unannounced.set(n, (this.unannounced.get(n) ?? new Set()).add(t));
      }
    return summary;
  }

  /** Exports started on an interface that was down, to announce once it is up, by interface. */
  private readonly unannounced = new Map<string, Set<Target>>();

  private announceWhereUp(): void {
    for (const [name, targets] of this.unannounced) {
      const port = this.ports.get(name);
      if (port !== undefined && !linkState(name)?.up) continue;
      this.unannounced.delete(name);
      if (port !== undefined)
        for (const t of targets) if (this.targets.get(t.name) === t) t.announce(port);
    }
  }

  /**
   * A port of the main thread; with workers, the first member of a new fanout
   * group. Joining fails on a link that is down (Linux before 6.13), so then
   * the main thread serves the interface alone until it is bound again.
   */
  private openPort(name: string, settings: InterfaceConfig, queueSlots: number): Port {
    const opts = {
      mtu: settings.mtu,
      ringBytes: settings.ringBytes,
      busyPollUs: settings.busyPollUs,
      queueSlots,
      onSocketError: logSocketErrors(this.log, name),
    };
    if (this.pool === null) return Port.open(name, opts);
    try {
      return Port.open(name, { ...opts, fanout: { id: 0, program: this.pool.program } });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EINVAL") throw err;
      this.log.warn(
        { interface: name, err: (err as Error).message },
        "cannot share the interface with the worker threads; the main thread serves it alone",
      );
      return Port.open(name, opts);
    }
  }

  private readonly onLinks = (events: readonly LinkEvent[] | null): void => {
    const named = new Set(this.config?.exports.flatMap((e) => e.interfaces));
    for (const e of events ?? [])
      if (named.has(e.name) || this.ports.has(e.name))
        this.log.debug(
          { interface: e.name, ifindex: e.ifindex, mtu: e.mtu, up: e.up, deleted: e.deleted },
          "link changed",
        );
    // Any link event may matter (a rename, a link a pending reload names): look at ours again.
    this.relink();
  };

  /** Without rtnetlink the links are looked at every RECHECK_MS, as files are. */
  private readonly onLinksLost = (err: Error): void => {
    this.log.warn(
      { err: err.message },
      `cannot follow link changes; looking at the links every ${RECHECK_MS / 1000} s instead`,
    );
    this.links = null;
    this.relink();
  };

  /** Looks at the links again once whatever is looking now has finished. */
  private relink(): void {
    if (this.stopping) return;
    if (this.relinking) {
      this.relinkAgain = true;
      return;
    }
    this.relinking = true;
    const run = this.queue
      .then(() => this.relinkNow())
      .catch((err: Error) => this.log.error({ err: err.message }, "cannot look at the links"));
    this.queue = run;
    void run.finally(() => {
      this.relinking = false;
      if (this.relinkAgain) {
        this.relinkAgain = false;
        this.relink();
      } else {
        this.armRecheck();
      }
    });
  }

  /**
   * Links come and go: an interface deleted and created again gets a new
   * ifindex, and the old socket is dead; an MTU change alters how many sectors
   * fit a frame. Either way the port is bound again and its exports re-announced.
   * While an interface is missing its exports simply wait for it. Runs in the
   * apply queue, so it sees the config in effect, never one being replaced.
   */
  private async relinkNow(): Promise<void> {
    const config = this.config;
    if (config === null || this.stopping) return;
    this.announceWhereUp();
    const reopen = new Set<string>();
    for (const e of config.exports)
      for (const name of e.interfaces)
        if (!this.ports.has(name) && !this.waiting.has(e.name) && linkState(name) !== null)
          reopen.add(name);
    for (const [name, port] of this.ports) {
      const link = linkState(name);
      if (link === null) {
        if (!this.missing.has(name))
          this.log.warn(
            { interface: name },
            "interface is gone; its exports wait for it to return",
          );
        this.missing.add(name);
      } else if (link.ifindex !== port.ifindex || link.mtu !== port.linkMtu) {
        reopen.add(name);
      }
    }
    if (reopen.size === 0 && !this.waitedForAppeared()) {
      this.retryError = null;
      return;
    }
    try {
      await this.applyNow(config, reopen);
      this.retryError = null;
      if (reopen.size > 0)
        this.log.info(
          { interfaces: [...reopen] },
          "interface changed: bound again and exports re-announced",
        );
    } catch (err) {
      const message = (err as Error).message;
      // Retried every RECHECK_MS: said again only when the reason changes.
      if (message !== this.retryError)
        this.log.warn(
          { interfaces: [...reopen], err: message },
          reopen.size > 0
            ? "interface changed but cannot be bound yet"
            : "what an export waited for appeared, but it cannot be opened yet",
        );
      this.retryError = message;
    }
  }

  /**
   * Looks again in RECHECK_MS while a backing file is awaited or a relink
   * failed, or all the time when link changes cannot be followed.
   */
  private armRecheck(): void {
    if (this.recheckTimer !== null || this.stopping) return;
    const fileAwaited = [...this.waiting.values()].some((w) =>
      w.missing.includes(`file ${w.cfg.path}`),
    );
    if (!fileAwaited && this.retryError === null && this.links !== null) return;
    this.recheckTimer = setTimeout(() => {
      this.recheckTimer = null;
      this.relink();
    }, RECHECK_MS);
    this.recheckTimer.unref();
  }

  /** Logs each export once when it starts waiting and once when it serves. */
  private noteWaiting(next: Map<string, WaitingExport>): void {
    for (const [name, w] of next) {
      const before = this.waiting.get(name);
      if (before === undefined || !isDeepStrictEqual(before.missing, w.missing))
        this.log.warn(
          { export: name, waitingFor: w.missing },
          `export waits for what does not exist yet: ${w.missing.join(", ")}`,
        );
    }
    for (const name of this.waiting.keys()) {
      const t = this.targets.get(name);
      if (!next.has(name) && t !== undefined)
        this.log.info({ export: name, ...t.ioFacts }, "export is up: what it waited for appeared");
    }
    this.waiting.clear();
    for (const [name, w] of next) this.waiting.set(name, w);
  }

  /** True when something a waiting export lacks has appeared. */
  private waitedForAppeared(): boolean {
    for (const w of this.waiting.values()) {
      if (!fs.existsSync(w.cfg.path)) continue;
      if (w.cfg.interfaces.some((n) => this.ports.has(n) || linkState(n) !== null)) return true;
    }
    return false;
  }

  private links: LinkMonitor | null = null;
  private relinking = false;
  /** Links changed while they were being looked at. */
  private relinkAgain = false;
  private retryError: string | null = null;
  private recheckTimer: NodeJS.Timeout | null = null;
  private stopping = false;

  private stateStoreFor(next: Config): StateStore | null {
    if (next.stateDir === null) return null;
    if (this.store?.dir === next.stateDir) return this.store;
    return new StateStore(next.stateDir, (message) => this.log.error(message));
  }

  /** Resolves when every replaced or removed target has answered its in-flight requests. */
  async settled(): Promise<void> {
    while (this.draining.size > 0) await Promise.all([...this.draining]);
  }

  /**
   * Stops accepting, answers what is in flight, flushes and closes everything.
   * An export whose backend does not get there within DRAIN_TIMEOUT_MS is left
   * as it is (logged): its requests stay unanswered and the initiator
   * retransmits them to whoever serves the export next. Resolves with the
   * names of the exports left so (the process then cannot exit(3): see daemon.ts).
   */
  async stop(): Promise<string[]> {
    this.stopping = true;
    this.links?.close();
    this.links = null;
    if (this.recheckTimer) clearTimeout(this.recheckTimer);
    if (this.stuckTimer) clearInterval(this.stuckTimer);
    await this.queue;
    const targets = [...this.targets.values()];
    this.targets.clear();
    const workersStopped = this.pool?.stop() ?? Promise.resolve();
    this.pool = null;
    const deadline = performance.now() + DRAIN_TIMEOUT_MS;
    const left: string[] = [];
    await Promise.all(
      targets.map(async (t) => {
        const closed = (async () => {
          await Promise.all([t.drain(), workersStopped]);
          await new Promise<void>((resolve) =>
            t.backend.flush((err) => {
              if (err)
                this.log.error({ export: t.name, err: err.message }, "flush at shutdown failed");
              resolve();
            }),
          );
          await t.backend.close();
          return true;
        })();
        if (await within(closed, Math.max(0, deadline - performance.now()), false)) return;
        left.push(t.name);
        this.log.warn(
          { export: t.name, path: t.backend.path, inFlight: t.inFlight },
          `shutdown: the backend did not finish within ${DRAIN_TIMEOUT_MS / 1000} s; leaving its requests unanswered`,
        );
      }),
    );
    await workersStopped;
    if (
      !(await within(
        this.settled().then(() => true),
        Math.max(0, deadline - performance.now()),
        false,
      ))
    ) {
      const names = [...this.retiring].map((t) => t.name);
      left.push(...(names.length > 0 ? names : ["a replaced export"]));
      this.log.warn(
        { exports: names },
        "shutdown: replaced or removed exports still have requests in flight; leaving them",
      );
    }
    for (const port of this.ports.values()) port.close();
    this.ports.clear();
    this.waiting.clear();
    this.unannounced.clear();
    this.config = null;
    return left;
  }
}
