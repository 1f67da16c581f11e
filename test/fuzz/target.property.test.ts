/**
 * Property tests of the engine's frame handling: the real Port (filter and
 * dispatch) and Target (the four commands, state, queue) on a fake packet
 * socket, against the model in spec.ts. Any sequence of frames, valid or not:
 * nothing throws, every frame gets exactly the replies the model allows (none
 * for what must be ignored), every reply is a well-formed response from the
 * export's own shelf/slot and MAC, reads return what earlier writes stored,
 * and the initiator-set state matches the model after every frame.
 */
import fc from "fast-check";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { ExportConfig } from "../../src/config/types.js";
import { Port } from "../../src/engine/port.js";
import type { FrameHandler, PortSocket } from "../../src/engine/seams.js";
import { Target } from "../../src/engine/target.js";
import { FIRMWARE_VERSION } from "../../src/version.js";
import { exportConfig } from "../helpers/export-config.js";
import { MemoryBackend } from "../helpers/memory-backend.js";
import { buildFrame, type FrameWorld, frameArb } from "./frames.js";
import {
  type ExportSpec,
  emptySpecState,
  type Outcome,
  portVerdict,
  replyProblems,
  type SpecState,
  targetOutcome,
} from "./spec.js";

const RUNS = Number(process.env.AOED_FUZZ_RUNS ?? 300);
const log = pino({ level: "silent" });
const mac = (hex: string) => Buffer.from(hex.replace(/:/g, ""), "hex");
const num = (b: Buffer) => b.readUIntBE(0, 6);

const PORT_MAC = mac("02:00:00:00:00:01");
const A = mac("02:00:00:00:0a:aa");
const B = mac("02:00:00:00:0b:bb");
const C = mac("02:00:00:00:0c:cc");
const D = mac("02:00:00:00:0d:dd");

/** The PacketSocket surface Port uses, over an in-memory "ring" full of stale bytes. */
class FakeSocket implements PortSocket {
  readonly mac: Buffer;
  readonly ifindex = 7;
  readonly fanoutId = 0;
  readonly maxFrame: number;
  readonly sent: Buffer[] = [];
  private readonly slot: Buffer;
  private readonly ring = Buffer.alloc(20_000);
  private onFrame: FrameHandler | null = null;
  private onBatchEnd: (() => void) | null = null;
  ringFull = false;

  constructor(
    readonly mtu: number,
    macBytes = PORT_MAC,
  ) {
    this.mac = macBytes;
    this.maxFrame = mtu + 14;
    this.slot = Buffer.alloc(this.maxFrame);
  }

  start(onFrame: FrameHandler, onBatchEnd: () => void): void {
    this.onFrame = onFrame;
    this.onBatchEnd = onBatchEnd;
  }
  repliesSent(): void {}

  /** Hands a frame to the port the way the RX ring does: a window into a larger buffer of old bytes. */
  deliver(frame: Buffer): void {
    this.ring.fill(0xa5);
    const off = 66 + 2048;
    frame.copy(this.ring, off);
    this.onFrame!(this.ring, off, frame.length);
    this.onBatchEnd!();
  }

  txAcquire(): Buffer | null {
    return this.ringFull ? null : this.slot.fill(0xee);
  }

  txCommit(len: number): void {
    // The real socket's contract (src/net/packet-socket.ts): throws outside [14, maxFrame], pads to 60.
    if (!(len >= 14 && len <= this.maxFrame))
      throw new RangeError(`frame length ${len} not in [14, ${this.maxFrame}]`);
    const frame = Buffer.from(this.slot.subarray(0, Math.max(len, 60)));
    if (len < 60) frame.fill(0, len);
    this.sent.push(frame);
  }

  flush(): void {}
  setSteering(): void {}
  stop(): void {}
  close(): void {}
  stats() {
    return { rxFrames: 0, rxDrops: 0, rxIgnored: 0, busyPollHits: 0, busyPollMisses: 0 };
  }
}

function openPort(sock: FakeSocket): Port {
  return Port.fromSocket(`fake${sock.mtu}`, sock, { mtu: null, ringBytes: 0 });
}

interface ExportDef {
  cfg: Partial<ExportConfig> & { name: string; shelf: number; slot: number };
  sectors: number;
  readOnly?: boolean;
}

/** The export's settings over the shared defaults (interface "fake"). */
const configOf = (d: ExportDef): ExportConfig =>
  exportConfig({ interfaces: ["fake"], readOnly: d.readOnly ?? false, ...d.cfg });

const DEFS: ExportDef[] = [
  {
    cfg: {
      name: "t1",
      shelf: 3,
      slot: 1,
      acl: { policy: "accept", accept: [], deny: ["02:00:00:00:0d:dd"] },
    },
    sectors: 2048,
  },
  {
    cfg: { name: "t2", shelf: 3, slot: 2, broadcast: false, sectors: 1, queueLength: 2 },
    sectors: 64,
    readOnly: true,
  },
  {
    cfg: {
      name: "t3",
      shelf: 4,
      slot: 1,
      acl: { policy: "reject", accept: ["02:00:00:00:0a:aa", "02:00:00:00:0b:bb"], deny: [] },
    },
    sectors: 1000,
  },
];

/** The spec's view of an export on a port of this MTU, from the config (not from Target). */
function specFor(d: ExportDef, mtu: number): ExportSpec {
  const cfg = configOf(d);
  const portMax = Math.min(255, Math.floor((mtu - 36) / 512));
  const deny = new Set(cfg.acl.deny.map((m) => num(mac(m))));
  const accept = new Set(cfg.acl.accept.map((m) => num(mac(m))));
  return {
    name: cfg.name,
    shelf: cfg.shelf,
    slot: cfg.slot,
    sectors: d.sectors,
    maxSectors: cfg.sectors > 0 ? Math.min(cfg.sectors, portMax) : portMax,
    queueLength: cfg.queueLength,
    readOnly: cfg.readOnly,
    broadcast: cfg.broadcast,
    allows: (m) => !deny.has(m) && (accept.has(m) || cfg.acl.policy === "accept"),
    maskCapacity: Math.min(255, Math.floor((mtu + 14 - 28) / 8)),
    firmware: FIRMWARE_VERSION,
  };
}

/**
 * Lists and strings longer than one frame of this port (possible when they
 * were set through a port with a larger MTU) are answered with what fits.
 */
function fitted(o: Outcome, maxFrame: number): Outcome {
  if (o.reply === "config" && 32 + o.config.length > maxFrame)
    return { ...o, config: o.config.subarray(0, maxFrame - 32) };
  if (o.reply === "mask" && 28 + o.entries.length * 8 > maxFrame)
    return { ...o, entries: o.entries.slice(0, Math.floor((maxFrame - 28) / 8)) };
  if (o.reply === "reserve" && 26 + o.macs.length * 6 > maxFrame)
    return { ...o, macs: o.macs.slice(0, Math.floor((maxFrame - 26) / 6)) };
  return o;
}

const settle = async () => {
  for (let i = 0; i < 6; i++) await new Promise((r) => setImmediate(r));
};

/** Ports of the given MTUs, every export on each, plus the model's state and disks. */
function rig(mtus: number[]) {
  const socks = mtus.map((m) => new FakeSocket(m));
  const ports = socks.map(openPort);
  const backends = DEFS.map((d) => new MemoryBackend(d.sectors * 512, d.readOnly ?? false));
  const maxSectors = Math.max(...mtus.map((m) => Math.min(255, Math.floor((m - 36) / 512))));
  const targets = DEFS.map((d, i) => new Target(configOf(d), backends[i]!, maxSectors, log));
  for (const p of ports) for (const t of targets) p.attach(t);
  const states: SpecState[] = DEFS.map(() => emptySpecState());
  const disks = DEFS.map((d) => Buffer.alloc(d.sectors * 512));
  return { socks, ports, backends, targets, states, disks };
}

/** Delivers one frame on port `pi`, waits for I/O, and checks everything against the model. */
async function step(r: ReturnType<typeof rig>, pi: number, frame: Buffer): Promise<void> {
  const sock = r.socks[pi]!;
  const specs = DEFS.map((d) => specFor(d, sock.mtu));
  const before = sock.sent.length;
  sock.deliver(frame);
  await settle();
  const replies = sock.sent.slice(before);
  const verdict = portVerdict(frame, num(PORT_MAC), specs, false);
  const where = `frame ${frame.toString("hex")}`;
  if ("ignore" in verdict) {
    expect(replies, `${where}: must be ignored (${verdict.ignore})`).toEqual([]);
    return;
  }
  const src = frame.readUIntBE(6, 6);
  const expected: { i: number; outcome: Outcome; readData: Buffer | null }[] = [];
  for (const spec of verdict.targets) {
    const i = specs.indexOf(spec);
    const { outcome, next } = targetOutcome(frame, src, verdict.broadcast, spec, r.states[i]!);
    r.states[i] = next;
    if (outcome.reply === "none") continue;
    let readData: Buffer | null = null;
    if (outcome.reply === "ata" && outcome.io === "read")
      readData = Buffer.from(
        r.disks[i]!.subarray(outcome.lba * 512, (outcome.lba + outcome.count) * 512),
      );
    if (outcome.reply === "ata" && outcome.io === "write")
      frame.copy(r.disks[i]!, outcome.lba * 512, 36, 36 + outcome.count * 512);
    expected.push({ i, outcome: fitted(outcome, sock.maxFrame), readData });
  }
  expect(replies.length, `${where}: ${replies.length} replies, expected ${expected.length}`).toBe(
    expected.length,
  );
  for (const reply of replies) {
    const shelf = reply.readUInt16BE(16);
    const slot = reply[18];
    const k = expected.findIndex((e) => specs[e.i]!.shelf === shelf && specs[e.i]!.slot === slot);
    expect(k, `${where}: reply from ${shelf}.${slot} nobody should send`).toBeGreaterThanOrEqual(0);
    const e = expected.splice(k, 1)[0]!;
    const problems = replyProblems(reply, {
      frame,
      export: specs[e.i]!,
      portMac: num(PORT_MAC),
      outcome: e.outcome,
      readData: e.readData,
    });
    expect(problems, `${where}\nreply ${reply.toString("hex")}`).toEqual([]);
  }
  DEFS.forEach((_, i) => {
    const t = r.targets[i]!;
    const s = r.states[i]!;
    expect(t.state.config.equals(s.config), `${where}: config string of ${DEFS[i]!.cfg.name}`).toBe(
      true,
    );
    expect(t.state.mask, `${where}: mask of ${DEFS[i]!.cfg.name}`).toEqual(s.mask);
    expect(t.state.reserve, `${where}: reservation of ${DEFS[i]!.cfg.name}`).toEqual(s.reserve);
    expect(r.backends[i]!.store.equals(r.disks[i]!), `${where}: disk of ${DEFS[i]!.cfg.name}`).toBe(
      true,
    );
    expect(t.inFlight).toBe(0);
  });
}

const world = (maxFrame: number): FrameWorld => ({
  portMac: PORT_MAC,
  sources: [A, B, C, D],
  targets: DEFS.map((d) => ({ shelf: d.cfg.shelf, slot: d.cfg.slot, sectors: d.sectors })),
  maxFrame,
});

describe("Port and Target against the model", () => {
  it("any sequence of frames gets exactly the replies the model allows", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(frameArb(world(1514)), { minLength: 1, maxLength: 40 }),
        async (frames) => {
          const r = rig([1500]);
          for (const f of frames) await step(r, 0, f);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("the same on two ports of different MTUs serving the same exports", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 1 }), frameArb(world(9014))), {
          minLength: 1,
          maxLength: 40,
        }),
        async (frames) => {
          const r = rig([9000, 1500]);
          for (const [pi, f] of frames) if (f.length <= r.socks[pi]!.maxFrame) await step(r, pi, f);
        },
      ),
      { numRuns: Math.ceil(RUNS / 2) },
    );
  });

  it("lists set through a jumbo port are answered without crashing on a 1500-byte port", async () => {
    const r = rig([9000, 1500]);
    const many = (n: number, first: number) =>
      Array.from({ length: n }, (_, i) => {
        const b = Buffer.alloc(6);
        b.writeUIntBE(0x020000100000 + first + i, 0, 6);
        return b;
      });
    const hdr = (command: number, tag: number) => ({
      dst: PORT_MAC,
      src: A,
      verFlags: 0x10,
      error: 0,
      shelf: 3,
      slot: 1,
      tag,
      command,
    });
    const reserve = (rcmd: number, macs: Buffer[]) => {
      const arg = Buffer.alloc(2 + macs.length * 6);
      arg[0] = rcmd;
      arg[1] = macs.length;
      macs.forEach((m, i) => {
        m.copy(arg, 2 + i * 6);
      });
      return buildFrame(hdr(3, 1), { command: 3, arg });
    };
    const mask = (mcmd: number, macs: Buffer[]) => {
      const arg = Buffer.alloc(4 + macs.length * 8);
      arg[1] = mcmd;
      arg[3] = macs.length;
      macs.forEach((m, i) => {
        arg[5 + i * 8] = 1;
        m.copy(arg, 6 + i * 8);
      });
      return buildFrame(hdr(2, 2), { command: 2, arg });
    };
    await step(r, 0, reserve(2, [A, ...many(254, 0)]));
    await step(r, 1, reserve(0, []));
    await step(r, 0, mask(1, [A, ...many(254, 500)]));
    await step(r, 1, mask(0, []));
    expect(r.targets[0]!.state.reserve.length).toBe(255);
    expect(r.targets[0]!.state.mask.length).toBe(255);
  });

  it("a burst of requests beyond the queue length is dropped and counted; the queue bounds in-flight", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 40 }),
        fc.array(fc.constantFrom(A, B, C), { minLength: 40, maxLength: 40 }),
        async (k, sources) => {
          const r = rig([1500]);
          const t = r.targets[0]!;
          r.backends[0]!.hold = true;
          for (let i = 0; i < k; i++) {
            const arg = Buffer.alloc(12);
            arg[0] = 0x40;
            arg[2] = 2;
            arg[3] = 0x24;
            arg.writeUIntLE(i * 2, 4, 6);
            r.socks[0]!.deliver(
              buildFrame(
                {
                  dst: PORT_MAC,
                  src: sources[i]!,
                  verFlags: 0x10,
                  error: 0,
                  shelf: 3,
                  slot: 1,
                  tag: i,
                },
                { command: 0, arg },
              ),
            );
            expect(t.inFlight).toBeLessThanOrEqual(4);
          }
          expect(t.inFlight).toBe(Math.min(k, 4));
          expect(t.stats.queueDrops).toBe(Math.max(0, k - 4));
          expect(r.socks[0]!.sent.length).toBe(0);
          r.backends[0]!.release();
          await settle();
          expect(t.inFlight).toBe(0);
          expect(r.socks[0]!.sent.map((f) => f.readUInt32BE(20))).toEqual(
            Array.from({ length: Math.min(k, 4) }, (_, i) => i),
          );
        },
      ),
      { numRuns: 100 },
    );
  });
});
