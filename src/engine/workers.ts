/**
 * The main thread's side of the data-path worker threads (src/engine/worker.ts).
 * After every apply the engine hands the pool its ports and targets; the pool
 * tells each worker what changed, says when a retired target's descriptors are
 * free (every worker has answered its last request on them), and adds the
 * workers' counters into the main thread's, so metrics and aoectl see totals.
 *
 * Workers accelerate; they are not needed for service. A worker that cannot
 * join an interface leaves its share of the frames to the fanout group's other
 * members, the main thread among them. A worker that dies stops the process.
 */
import { Worker } from "node:worker_threads";
import type { Logger } from "pino";
import type { Port } from "./port.js";
import { portIndex } from "./stats.js";
import { encodeProgram, steeringProgram } from "./steering.js";
import type { Target } from "./target.js";
import type { FromWorker, TargetSpec, ToWorker, WorkerInit } from "./worker-messages.js";

interface Member {
  index: number;
  thread: Worker;
  alive: boolean;
  /** Applies sent and not yet answered, by sequence number. */
  applying: Map<number, () => void>;
  stopped: Promise<void>;
}

export class WorkerPool {
  private readonly members: Member[] = [];
  private readonly ids = new WeakMap<Target, number>();
  /** Targets the workers know: serving, or retired and not yet released. */
  private readonly byId = new Map<number, Target>();
  private readonly serving = new Set<number>();
  /** Retired targets some worker may still be using: the workers yet to let go, and who waits. */
  private readonly releasing = new Map<number, { waiting: Set<Member>; done: () => void }>();
  private readonly released = new Map<number, Promise<void>>();
  private ports = new Map<string, Port>();
  private nextId = 1;
  private seq = 0;

  /** Frames each worker has received, over all interfaces (worker i at i - 1). */
  readonly rxFrames: number[];

  /** The steering program for this many workers, for the main thread's sockets. */
  readonly program: Buffer;

  constructor(
    readonly size: number,
    private readonly log: Logger,
    init: Omit<WorkerInit, "index">,
  ) {
    this.program = encodeProgram(steeringProgram(size));
    this.rxFrames = new Array<number>(size).fill(0);
    for (let index = 1; index <= size; index++) {
      const thread = new Worker(new URL("./worker.js", import.meta.url), {
        workerData: { ...init, index } satisfies WorkerInit,
      });
      const member: Member = {
        index,
        thread,
        alive: true,
        applying: new Map(),
        stopped: new Promise((resolve) => thread.once("exit", () => resolve())),
      };
      thread.on("message", (m: FromWorker) => this.onMessage(member, m));
      thread.on("error", (err) =>
        log.error({ worker: index, err: err.message }, "worker thread failed"),
      );
      thread.once("exit", (code) => this.onExit(member, code));
      this.members.push(member);
    }
  }

  /**
   * Brings every worker to the engine's ports and targets. Targets no longer
   * listed retire in the workers; `releasedBy` then says when each is let go.
   * Resolves when every live worker has applied the change.
   */
  apply(ports: Map<string, Port>, targets: Iterable<Target>, logLevel: string): Promise<void> {
    this.ports = ports;
    const listed = new Set<number>();
    const specs: (TargetSpec | number)[] = [];
    for (const t of targets) {
      let id = this.ids.get(t);
      if (id !== undefined) {
        specs.push(id);
      } else {
        const shared = t.backend.share?.();
        const lists = t.sharedLists;
        // Only tests' fake backends have no descriptors to share, and they run without workers.
        if (shared === undefined || lists === null) continue;
        id = this.nextId++;
        this.ids.set(t, id);
        this.byId.set(id, t);
        this.serving.add(id);
        specs.push({
          id,
          cfg: t.cfg,
          backend: shared,
          maxSectors: t.maxSectors,
          lists: lists.buffer,
        });
      }
      listed.add(id);
    }
    for (const id of this.serving) if (!listed.has(id)) this.retire(id);
    const seq = ++this.seq;
    const message: ToWorker = {
      type: "apply",
      seq,
      logLevel,
      ports: [...ports.values()].map((p) => ({
        name: p.name,
        mtu: p.mtu,
        ringBytes: p.ringBytes,
        busyPollUs: p.busyPollUs,
        fanoutId: p.fanoutId,
      })),
      targets: specs,
    };
    return Promise.all(
      this.live().map(
        (m) =>
          new Promise<void>((resolve) => {
            m.applying.set(seq, resolve);
            m.thread.postMessage(message);
          }),
      ),
    ).then(() => {});
  }

  /** Resolves once no worker uses `target`'s backend any more. */
  releasedBy(target: Target): Promise<void> {
    const id = this.ids.get(target);
    return (id !== undefined && this.released.get(id)) || Promise.resolve();
  }

  private retire(id: number): void {
    this.serving.delete(id);
    let done = () => {};
    const promise = new Promise<void>((resolve) => {
      done = resolve;
    });
    const waiting = new Set(this.live());
    this.releasing.set(id, { waiting, done });
    this.released.set(id, promise);
    void promise.then(() => {
      this.released.delete(id);
      this.byId.delete(id);
    });
    if (waiting.size === 0) this.release(id);
  }

  private release(id: number, member?: Member): void {
    const r = this.releasing.get(id);
    if (r === undefined) return;
    if (member !== undefined) r.waiting.delete(member);
    if (r.waiting.size > 0) return;
    this.releasing.delete(id);
    r.done();
  }

  private live(): Member[] {
    return this.members.filter((m) => m.alive);
  }

  private onMessage(member: Member, m: FromWorker): void {
    switch (m.type) {
      case "applied": {
        for (const e of m.errors)
          this.log.warn(
            { worker: member.index, err: e },
            "worker thread cannot join the interface; the main thread serves its share",
          );
        member.applying.get(m.seq)?.();
        member.applying.delete(m.seq);
        return;
      }
      case "released":
        this.release(m.id, member);
        return;
      case "stats":
        for (const [id, d, inFlight, oldest] of m.targets) {
          const t = this.byId.get(id);
          if (t === undefined) continue;
          t.workerReport(member.index, d, inFlight, oldest);
        }
        for (const [name, d] of m.ports) {
          this.rxFrames[member.index - 1]! += d[portIndex("rxFrames")]!;
          const p = this.ports.get(name);
          p?.workerReport(d);
        }
        return;
      case "stopped":
        return;
    }
  }

  /**
   * A worker that exits on its own is a bug, and its in-flight I/O cannot be
   * accounted for (io_uring may still write into buffers it owned): stop the
   * process rather than serve on (systemd restarts it).
   */
  private onExit(member: Member, code: number): void {
    if (!member.alive) return;
    member.alive = false;
    if (this.stopping) {
      // Gone (terminated after the grace period, or done): nothing waits on it any more.
      for (const resolve of member.applying.values()) resolve();
      member.applying.clear();
      for (const id of [...this.releasing.keys()]) this.release(id, member);
      return;
    }
    this.log.fatal({ worker: member.index, code }, "worker thread exited; stopping aoed");
    process.exit(1);
  }

  private stopping = false;

  /**
   * Every worker answers what it has in flight, lets go of every backend and
   * exits; one still busy after `graceMs` (a backend that hangs) is terminated.
   */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    const stop: ToWorker = { type: "stop" };
    for (const m of this.live()) m.thread.postMessage(stop);
    const all = Promise.all(this.members.map((m) => m.stopped));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), graceMs);
    });
    if ((await Promise.race([all, late])) === "late") {
      this.log.error({ seconds: graceMs / 1000 }, "worker threads still busy; terminating them");
      await Promise.all(this.members.map((m) => m.thread.terminate()));
    }
    clearTimeout(timer);
  }
}
