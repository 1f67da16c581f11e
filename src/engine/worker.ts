/**
 * A data-path worker thread. It joins each interface's fanout group with a
 * socket of its own and serves the ATA reads and writes the steering program
 * sends it (src/engine/steering.ts), with the same Port and Target code as the
 * main thread, on the main thread's backend descriptors. The main thread
 * keeps everything else: config, discovery, access lists, admin, metrics.
 */
import { parentPort, workerData } from "node:worker_threads";
import { adoptFileBackend } from "../io/open.js";
import { createLogger } from "../log.js";
import { Port } from "./port.js";
import { SharedAccessLists } from "./shared-state.js";
import { logSocketErrors } from "./socket-errors.js";
import { portVector, targetVector } from "./stats.js";
import { Target } from "./target.js";
import type { FromWorker, PortSpec, ToWorker, WorkerInit } from "./worker-messages.js";

/** How often counters go to the main thread: the metrics lag the data path by at most this. */
const STATS_MS = 100;

const init = workerData as WorkerInit;
const port = parentPort!;
const log = createLogger(init.logLevel, init.pretty).child({ worker: init.index });
const post = (m: FromWorker) => port.postMessage(m);

const targets = new Map<number, Target>();
const ports = new Map<string, Port>();
const retiring = new Set<Promise<void>>();
/** Counter vectors as last reported, by target id and by port. */
const reported = new Map<Target | Port, number[]>();

/** The target's counters, its backend's syncs included. */
function targetCounts(target: Target): number[] {
  return targetVector(target.counters());
}

function delta(source: Target | Port, now: number[]): number[] | null {
  const last = reported.get(source);
  reported.set(source, now);
  const d = last === undefined ? now : now.map((v, i) => v - last[i]!);
  return d.some((v) => v !== 0) ? d : null;
}

function reportStats(): void {
  const t: [number, number[], number, number][] = [];
  const p: [string, number[]][] = [];
  for (const [id, target] of targets) {
    const d = delta(target, targetCounts(target));
    if (d !== null) t.push([id, d, target.inFlight, target.oldestStart]);
  }
  for (const [name, sock] of ports) {
    const d = delta(sock, portVector(sock));
    if (d !== null) p.push([name, d]);
  }
  if (t.length > 0 || p.length > 0) post({ type: "stats", targets: t, ports: p });
}

/** Stops taking requests for a target, answers what it has in flight, then lets go of it. */
function retire(id: number, target: Target): void {
  targets.delete(id);
  for (const p of ports.values()) p.detach(target);
  const done = target.drain().then(async () => {
    const d = delta(target, targetCounts(target));
    if (d !== null) post({ type: "stats", targets: [[id, d, 0, 0]], ports: [] });
    reported.delete(target);
    await target.backend.close();
    post({ type: "released", id });
  });
  retiring.add(done);
  void done.finally(() => retiring.delete(done));
}

/** A port leaving: no more frames now, closed once the requests it carries are answered. */
function retirePort(p: Port): void {
  p.stopReceiving();
  const inFlight = [...retiring];
  void Promise.all(inFlight).then(() => {
    const d = delta(p, portVector(p));
    if (d !== null) post({ type: "stats", targets: [], ports: [[p.name, d]] });
    reported.delete(p);
    p.close();
  });
}

function openPort(spec: PortSpec): Port {
  return Port.open(spec.name, {
    mtu: spec.mtu,
    ringBytes: spec.ringBytes,
    busyPollUs: spec.busyPollUs,
    queueSlots: 0,
    fanout: { id: spec.fanoutId, program: Buffer.alloc(0) },
    readsAndWritesOnly: true,
    onSocketError: logSocketErrors(log, spec.name),
  });
}

function apply(m: Extract<ToWorker, { type: "apply" }>): void {
  log.level = m.logLevel;
  const listed = new Set<number>();
  for (const t of m.targets) {
    if (typeof t === "number") {
      listed.add(t);
      continue;
    }
    listed.add(t.id);
    const backend = adoptFileBackend(t.backend, (message) =>
      log.warn({ export: t.backend.exportName }, message),
    );
    targets.set(
      t.id,
      new Target(t.cfg, backend, t.maxSectors, log, { lists: new SharedAccessLists(t.lists) }),
    );
  }
  for (const [id, target] of targets) if (!listed.has(id)) retire(id, target);

  const errors: string[] = [];
  const wanted = new Map(m.ports.map((s) => [s.name, s]));
  for (const [name, p] of ports) {
    if (wanted.get(name)?.fanoutId === p.fanoutId) continue;
    ports.delete(name);
    retirePort(p);
  }
  for (const spec of m.ports) {
    // Without a group (the main thread could not create one) a socket here would see every frame.
    if (ports.has(spec.name) || spec.fanoutId === 0) continue;
    try {
      ports.set(spec.name, openPort(spec));
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  // Frames reach a new socket on a later event-loop turn, so it has its targets by then.
  for (const target of targets.values())
    for (const name of target.cfg.interfaces) ports.get(name)?.attach(target);
  post({ type: "applied", seq: m.seq, errors });
}

async function stop(): Promise<void> {
  clearInterval(statsTimer);
  for (const p of ports.values()) p.stopReceiving();
  for (const [id, target] of targets) retire(id, target);
  while (retiring.size > 0) await Promise.all([...retiring]);
  reportStats();
  for (const p of ports.values()) p.close();
  ports.clear();
  post({ type: "stopped" });
  port.close();
}

const statsTimer = setInterval(reportStats, STATS_MS);
statsTimer.unref();

port.on("message", (m: ToWorker) => {
  if (m.type === "apply") apply(m);
  else void stop();
});
