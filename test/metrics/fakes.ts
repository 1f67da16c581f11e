/** Fake engine objects for the metrics and control tests: plain counters, as the engine has them. */
import type { TargetState } from "../../src/engine/initiator-state.js";
import type { OpKind } from "../../src/engine/request.js";
import {
  type KernelCounts,
  newPortStats,
  newTargetStats,
  type TargetStats,
} from "../../src/engine/stats.js";
import type {
  EngineView,
  PortView,
  StateKind,
  TargetView,
  WaitingView,
} from "../../src/metrics/view.js";
import { parseMac } from "../../src/protocol/mac.js";

export class FakeTarget implements TargetView {
  stats = newTargetStats();
  state: TargetState = { config: Buffer.alloc(0), mask: [], reserve: [] };
  inFlight = 0;
  stuck = false;
  oldestRequestSeconds = 0;
  readonly cfg: {
    interfaces: string[];
    queueLength: number;
    writeCache: boolean;
    io: "auto" | "io_uring";
  };
  readonly backend: { path: string; readOnly: boolean; caps: { engine: string } };
  readonly sizeBytes: number;

  constructor(
    readonly name: string,
    readonly shelf: number,
    readonly slot: number,
    opts: { interfaces?: string[]; queueLength?: number; size?: number; readOnly?: boolean } = {},
  ) {
    this.cfg = {
      interfaces: opts.interfaces ?? ["eth0"],
      queueLength: opts.queueLength ?? 64,
      writeCache: true,
      io: "auto",
    };
    this.backend = {
      path: `/srv/${name}.img`,
      readOnly: opts.readOnly ?? false,
      caps: { engine: "io_uring" },
    };
    this.sizeBytes = opts.size ?? 1 << 30;
  }

  counters(): TargetStats {
    return this.stats;
  }

  clearState(what: StateKind): void {
    if (what === "config") this.state = { ...this.state, config: Buffer.alloc(0) };
    else if (what === "mask") this.state = { ...this.state, mask: [] };
    else this.state = { ...this.state, reserve: [] };
  }

  /** A backend completion, as the target records it: in the total and in its operation's histogram. */
  observe(op: OpKind, seconds: number): void {
    this.stats.latency.observe(seconds);
    this.stats.opLatency[op].observe(seconds);
  }

  resetStats(): void {
    const latency = this.stats.latency;
    latency.reset();
    Object.assign(this.stats, newTargetStats(), { latency });
  }
}

export class FakePort implements PortView {
  readonly stats = newPortStats();
  readonly macBytes: Buffer;
  exportCount = 1;
  kernel: KernelCounts = {
    rxFrames: 0,
    rxDrops: 0,
    otherHost: 0,
    busyPollHits: 0,
    busyPollMisses: 0,
  };
  kernelBroken = false;

  constructor(
    readonly name: string,
    readonly mtu = 1500,
    mac = "02:00:00:00:00:01",
  ) {
    this.macBytes = Buffer.from(mac.replace(/:/g, ""), "hex");
  }

  kernelStats(): KernelCounts {
    if (this.kernelBroken) throw new Error("ENODEV");
    return { ...this.kernel };
  }
}

export class FakeEngine implements EngineView {
  targets = new Map<string, FakeTarget>();
  ports = new Map<string, FakePort>();
  waiting = new Map<string, WaitingView>();
  missing = new Set<string>();

  add(...items: (FakeTarget | FakePort)[]): this {
    for (const i of items) {
      if (i instanceof FakeTarget) this.targets.set(i.name, i);
      else this.ports.set(i.name, i);
    }
    return this;
  }
}

export const mac = (text: string): number => {
  const m = parseMac(text);
  if (m === null) throw new Error(`bad MAC ${text}`);
  return m;
};

/** Samples of a Prometheus text exposition: "name{a=\"b\"}" -> value. */
export function parseExposition(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    const v = line.slice(at + 1);
    out.set(line.slice(0, at), v === "+Inf" ? Number.POSITIVE_INFINITY : Number(v));
  }
  return out;
}
