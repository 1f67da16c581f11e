/**
 * The wire fuzzer's TypeScript half: builds a corpus of mutated frames with
 * the generators in frames.ts, sorts each into what the daemon must do with
 * it (spec.ts), runs the C sender (aoe-fuzz.c) and checks its results.
 *
 * Layout the corpus is made for: a "stateless" export S whose initiator-set
 * state must never change (any frame that would change it is readdressed to
 * the "stateful" export M), so every reply from S can be checked exactly; M,
 * which takes config, mask and reservation edits from the fuzz MACs and is
 * checked against what any state allows; and the well-behaved client's export,
 * whose ACL admits only the client, so fuzz frames must get nothing from it.
 */
import { execFile, execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import fc from "fast-check";
import type { ExportCounters, InterfaceCounters, StatsResult } from "../../src/control/protocol.js";
import { run } from "../helpers/net.js";
import { waitFor } from "../helpers/wait.js";
import { broadcastDiscovery, type FrameWorld, frameArb } from "./frames.js";
import {
  type ExportSpec,
  emptySpecState,
  type Outcome,
  portVerdict,
  replyProblems,
  type SpecState,
  targetOutcome,
} from "./spec.js";

export const SAMPLES_PER_ENTRY = 3;
export const SAMPLE_BYTES = 200;
const UNMATCHED = 0xffffffff;
const FOREIGN = 0xfffffffe;

/** Why the port drops a frame, as the daemon counts it in `aoectl stats` (ignored.*). */
export type IgnoreCounter =
  | "short"
  | "response"
  | "version"
  | "own"
  | "wildcard"
  | "unknown_target";

export interface Entry {
  frame: Buffer;
  /** The port must drop it: no reply, ever. */
  ignore: string | null;
  /** Which `aoectl stats` ignored counter it lands in (null: dropped by the kernel, or not ignored). */
  counter: IgnoreCounter | null;
  /** Exact expected outcome from the stateless export, if it is addressed. */
  stateless: Outcome | null;
  /** The stateful export is addressed (its replies are checked against any state). */
  stateful: boolean;
  /** The most replies one copy of this frame may earn. */
  maxReplies: number;
  /** Every copy must be answered (no backend I/O that a full queue could drop). */
  mustAnswer: boolean;
}

export interface WireWorld {
  portMac: Buffer;
  stateless: ExportSpec;
  stateful: ExportSpec;
  client: ExportSpec;
  sources: Buffer[];
}

const num = (b: Buffer) => b.readUIntBE(0, 6);

function counterFor(reason: string): IgnoreCounter | null {
  if (reason.startsWith("shorter")) return "short";
  if (reason === "response flag") return "response";
  if (reason === "AoE version") return "version";
  if (reason.startsWith("our own")) return "own";
  if (reason.startsWith("wildcard")) return "wildcard";
  if (reason.startsWith("not our")) return "unknown_target";
  // A wildcard query that matches no export is dropped without being counted.
  return null;
}

const sameState = (a: SpecState, b: SpecState) =>
  a.config.equals(b.config) &&
  a.mask.length === b.mask.length &&
  a.reserve.length === b.reserve.length;

function classify(frame: Buffer, w: WireWorld): Entry {
  const exports = [w.stateless, w.stateful, w.client];
  const v = portVerdict(frame, num(w.portMac), exports, true);
  if ("ignore" in v)
    return {
      frame,
      ignore: v.ignore,
      counter: counterFor(v.ignore),
      stateless: null,
      stateful: false,
      maxReplies: 0,
      mustAnswer: false,
    };
  const src = frame.readUIntBE(6, 6);
  let stateless: Outcome | null = null;
  let stateful = false;
  let maxReplies = 0;
  let mustAnswer = true;
  for (const t of v.targets) {
    if (t === w.stateless) {
      stateless = targetOutcome(frame, src, v.broadcast, t, emptySpecState()).outcome;
      if (stateless.reply !== "none") maxReplies++;
      if (stateless.reply === "ata" && stateless.io !== null) mustAnswer = false;
    } else if (t === w.stateful) {
      stateful = true;
      maxReplies++;
      mustAnswer = false;
    } else if (targetOutcome(frame, src, v.broadcast, t, emptySpecState()).outcome.reply !== "none")
      throw new Error("a fuzz frame would be answered by the client's export");
  }
  return {
    frame,
    ignore: maxReplies === 0 && !stateful ? "no export answers it" : null,
    counter: null,
    stateless,
    stateful,
    maxReplies,
    mustAnswer: mustAnswer && stateless !== null && stateless.reply !== "none",
  };
}

/** Would the frame change the stateless export's state? Then it goes to the stateful one. */
function changesStateless(frame: Buffer, w: WireWorld): boolean {
  const v = portVerdict(frame, num(w.portMac), [w.stateless, w.stateful, w.client], true);
  if ("ignore" in v || !v.targets.includes(w.stateless)) return false;
  const s0 = emptySpecState();
  const { next } = targetOutcome(frame, frame.readUIntBE(6, 6), v.broadcast, w.stateless, s0);
  return !sameState(next, s0);
}

/** A deterministic corpus: mutated frames of every kind plus broadcast discovery storms. */
export function buildCorpus(w: WireWorld, size: number, seed: number): Entry[] {
  const world: FrameWorld = {
    portMac: w.portMac,
    sources: w.sources,
    targets: [w.stateless, w.stateful, w.client].map((e) => ({
      shelf: e.shelf,
      slot: e.slot,
      sectors: e.sectors,
    })),
    maxFrame: 1514,
  };
  const frames = fc.sample(frameArb(world), { numRuns: size, seed });
  const out: Entry[] = [];
  frames.forEach((f, i) => {
    let frame: Buffer = Buffer.from(f);
    if (changesStateless(frame, w)) {
      frame.writeUInt16BE(w.stateful.shelf, 16);
      frame[18] = w.stateful.slot;
    }
    // One frame in 16 is a broadcast discovery: storms of them, from every source.
    if (i % 16 === 0) frame = broadcastDiscovery(w.sources[i % w.sources.length]!, 0);
    out.push(classify(frame, w));
  });
  return out;
}

export function writeCorpus(file: string, entries: Entry[]): void {
  const parts: Buffer[] = [Buffer.from("AOEFZC01")];
  const n = Buffer.alloc(4);
  n.writeUInt32LE(entries.length);
  parts.push(n);
  for (const e of entries) {
    const h = Buffer.alloc(4);
    h.writeUInt16LE(e.frame.length, 0);
    parts.push(h, e.frame);
  }
  fs.writeFileSync(file, Buffer.concat(parts));
}

/** Compiles aoe-fuzz.c into `dir`; returns the binary's path. */
export function buildTool(dir: string): string {
  const src = path.join(import.meta.dirname, "aoe-fuzz.c");
  const bin = path.join(dir, "aoe-fuzz");
  execFileSync("cc", ["-O2", "-Wall", "-Wno-unused-function", "-o", bin, src], { stdio: "pipe" });
  return bin;
}

export interface ToolSummary {
  sent: number;
  seconds: number;
  framesPerSecond: number;
  probes: number;
  probeAcks: number;
  probeTimeouts: number;
  replies: number;
  unmatched: number;
  announcements: number;
  foreign: number;
  clientFrames: number;
  txFull: number;
  txErrors: number;
  /** The tool's receive ring: frames the kernel delivered or dropped (PACKET_STATISTICS). */
  rxKernelPackets: number;
  rxKernelDrops: number;
  timedOut: boolean;
}

export interface RunOptions {
  iface: string;
  corpus: string;
  results: string;
  frames: number;
  targetMac: string;
  probeMac: string;
  probeShelf: number;
  probeSlot: number;
  window: number;
  probeEvery: number;
  /** Replies to this MAC (the well-behaved client) are not the fuzzer's. */
  ignoreDst: string;
  maxSeconds: number;
}

export function runTool(bin: string, o: RunOptions): Promise<ToolSummary> {
  const args = [
    o.iface,
    o.corpus,
    o.results,
    String(o.frames),
    o.targetMac,
    o.probeMac,
    String(o.probeShelf),
    String(o.probeSlot),
    String(o.window),
    String(o.probeEvery),
    o.ignoreDst,
    String(o.maxSeconds),
  ];
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: (o.maxSeconds + 30) * 1000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`aoe-fuzz failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as ToolSummary);
    });
  });
}

export interface Results {
  sent: Uint32Array;
  replies: Uint32Array;
  samples: { entry: number; len: number; bytes: Buffer }[];
  unmatched: { len: number; bytes: Buffer }[];
  /** Replies from a MAC other than the target's. */
  foreign: { len: number; bytes: Buffer }[];
}

export function readResults(file: string): Results {
  const b = fs.readFileSync(file);
  if (b.subarray(0, 8).toString() !== "AOEFZR01") throw new Error(`${file}: not aoe-fuzz results`);
  const count = b.readUInt32LE(8);
  const sent = new Uint32Array(count);
  const replies = new Uint32Array(count);
  let o = 12;
  for (let i = 0; i < count; i++, o += 8) {
    sent[i] = b.readUInt32LE(o);
    replies[i] = b.readUInt32LE(o + 4);
  }
  const n = b.readUInt32LE(o);
  o += 4;
  const samples: Results["samples"] = [];
  const unmatched: Results["unmatched"] = [];
  const foreign: Results["foreign"] = [];
  for (let i = 0; i < n; i++, o += 8 + SAMPLE_BYTES) {
    const entry = b.readUInt32LE(o);
    const len = b.readUInt16LE(o + 4);
    const bytes = Buffer.from(b.subarray(o + 8, o + 8 + Math.min(len, SAMPLE_BYTES)));
    if (entry === UNMATCHED) unmatched.push({ len, bytes });
    else if (entry === FOREIGN) foreign.push({ len, bytes });
    else samples.push({ entry, len, bytes });
  }
  return { sent, replies, samples, unmatched, foreign };
}

/** The frame as the C sender put it on the wire: tag 0x5A000000 | index. */
export function sentFrame(e: Entry, index: number): Buffer {
  const f = Buffer.from(e.frame);
  if (f.length >= 24) f.writeUInt32BE((0x5a000000 | index) >>> 0, 20);
  return f;
}

/** Mask entries as a reply carries them, from its visible bytes (count from the reply). */
function replyEntries(reply: Buffer): Buffer[] {
  return Array.from({ length: reply[27]! }, (_, i) => {
    const e = Buffer.alloc(8);
    // Entries past the sampled bytes stay zero; replyProblems only compares what it can see.
    if (28 + i * 8 < reply.length) reply.copy(e, 0, 28 + i * 8, Math.min(36 + i * 8, reply.length));
    return e;
  });
}

/**
 * Outcomes the stateful export may give for `frame` in some state the reply
 * itself reveals (its config string, its lists), provided what the reply
 * shows is consistent with the request (a test reply carries the tested
 * string, a successful edit's list holds what was added...).
 */
function revealedOutcomes(reply: Buffer, frame: Buffer): Outcome[] {
  const out: Outcome[] = [];
  const len = frame.length;
  const error = (reply[14]! & 0x04) !== 0;
  if (reply.length < 28 || error) {
    if (frame[19] === 1 && len >= 32 && (frame[29]! & 0x0f) === 3)
      out.push({ reply: "aoe-error", code: 4 });
    return out;
  }
  switch (frame[19]) {
    case 1: {
      if (len < 32 || reply.length < 32) break;
      const ccmd = frame[29]! & 0x0f;
      const flen = frame.readUInt16BE(30);
      const valid = flen <= 1024 && 32 + flen <= len;
      const slen = reply.readUInt16BE(30);
      const shown = reply.subarray(32, 32 + Math.min(slen, reply.length - 32));
      const config = Buffer.concat([shown, Buffer.alloc(slen - shown.length)]);
      const theirs = frame.subarray(32, 32 + flen);
      const seen = Math.min(shown.length, theirs.length);
      if (
        ccmd === 0 ||
        (ccmd === 1 &&
          valid &&
          slen === flen &&
          shown.subarray(0, seen).equals(theirs.subarray(0, seen))) ||
        (ccmd === 2 &&
          valid &&
          slen >= flen &&
          shown.subarray(0, seen).equals(theirs.subarray(0, seen)))
      )
        out.push({ reply: "config", ccmd, config });
      break;
    }
    case 2: {
      const mcmd = frame[25];
      if (mcmd === 0) out.push({ reply: "mask", mcmd, merror: 0, entries: replyEntries(reply) });
      if (mcmd !== 1 || 28 + frame[27]! * 8 > len) break;
      if (reply[26] === 0) {
        // Success: the whole list. When all of it is visible, the final add/delete of each MAC shows.
        const entries = replyEntries(reply);
        if (28 + entries.length * 8 <= reply.length) {
          const listed = new Set(entries.map((e) => e.readUIntBE(2, 6)));
          const last = new Map<number, number>();
          for (let i = 0; i < frame[27]!; i++)
            last.set(frame.readUIntBE(30 + i * 8, 6), frame[29 + i * 8]!);
          for (const [mac, dcmd] of last)
            if ((dcmd === 1) !== listed.has(mac) && dcmd !== 0) return out;
        }
        out.push({ reply: "mask", mcmd, merror: 0, entries });
      } else if (reply[26] === 3 && frame[29 + reply[27]! * 8] === 1) {
        // List full at an add directive: the count names it, the directives before it are echoed.
        const entries = Array.from({ length: reply[27]! }, (_, j) => {
          const e = Buffer.from(frame.subarray(28 + j * 8, 36 + j * 8));
          e[0] = 0;
          return e;
        });
        out.push({ reply: "mask", mcmd, merror: 3, entries });
      }
      break;
    }
    case 3:
      if (frame[24] === 0 && len >= 26) {
        const n = reply[25]!;
        const macs = Array.from({ length: n }, (_, i) =>
          26 + i * 6 + 6 <= reply.length ? reply.readUIntBE(26 + i * 6, 6) : 0,
        );
        out.push({ reply: "reserve", rcmd: 0, macs });
      }
      break;
  }
  return out;
}

/**
 * What is wrong with a reply from the stateful export, whatever its state:
 * the header must be right, and the body one that some state gives.
 */
export function statefulProblems(
  reply: Buffer,
  wireLength: number,
  frame: Buffer,
  w: WireWorld,
): string[] {
  const spec = w.stateful;
  const portMac = num(w.portMac);
  const src = frame.readUIntBE(6, 6);
  const broadcast = frame.readUInt16BE(16) === 0xffff || frame[18] === 0xff;
  const other = src === 1 ? 2 : 1;
  const states: SpecState[] = [
    emptySpecState(),
    { ...emptySpecState(), reserve: [other] },
    { ...emptySpecState(), reserve: [src] },
  ];
  const outcomes = [
    ...states.map((s) => targetOutcome(frame, src, broadcast, spec, s).outcome),
    ...revealedOutcomes(reply, frame),
  ];
  let best: string[] | null = null;
  for (const outcome of outcomes) {
    if (outcome.reply === "none") continue;
    const problems = replyProblems(reply, { frame, export: spec, portMac, outcome, wireLength });
    if (problems.length === 0) return [];
    if (best === null || problems.length < best.length) best = problems;
  }
  return best ?? ["a reply where no state allows one"];
}

/** How many corpus frames fall in each category the fuzz must cover (a frame may be in several). */
export function corpusCoverage(entries: Entry[], w: WireWorld): Record<string, number> {
  const c: Record<string, number> = {};
  const add = (k: string, yes: boolean) => {
    c[k] = (c[k] ?? 0) + (yes ? 1 : 0);
  };
  const portMac = num(w.portMac);
  for (const { frame: f, ignore } of entries) {
    const len = f.length;
    const cmd = len >= 20 ? f[19]! : -1;
    const wildcard = len >= 19 && (f.readUInt16BE(16) === 0xffff || f[18] === 0xff);
    add("shorter than the AoE header", len < 24);
    add("response flag set", len >= 15 && (f[14]! & 0x08) !== 0);
    add("wrong AoE version", len >= 15 && f[14]! >> 4 !== 1);
    add("our own source MAC", f.readUIntBE(6, 6) === portMac);
    add("for another host", len >= 6 && (f[0]! & 1) === 0 && f.readUIntBE(0, 6) !== portMac);
    add("wildcard, not discovery", wildcard && cmd !== 1 && cmd !== -1);
    add("broadcast discovery", wildcard && cmd === 1 && f[0] === 0xff);
    add("denied MAC", len >= 24 && !w.stateless.allows(f.readUIntBE(6, 6)) && f[19] !== undefined);
    add("unknown command", cmd >= 4 && cmd < 0xf0);
    add("vendor command", cmd >= 0xf0);
    add("must be ignored", ignore !== null);
    if (cmd === 0) {
      add("ATA truncated (< 36 bytes)", len >= 24 && len < 36);
      if (len < 36) continue;
      const rw = [0x20, 0x24, 0x30, 0x34].includes(f[27]!);
      const count = f[26]!;
      const lba48 = (f[24]! & 0x40) !== 0;
      const lba = lba48 ? f.readUIntLE(28, 6) : f.readUInt32LE(28) & 0x0fffffff;
      const size =
        f.readUInt16BE(16) === w.stateful.shelf ? w.stateful.sectors : w.stateless.sectors;
      add("ATA sector count 0", rw && count === 0);
      add("ATA sector count over the max", rw && count > 2);
      add("ATA sector count 255", rw && count === 255);
      add("ATA LBA at the end", rw && count > 0 && lba + count === size);
      add("ATA LBA past the end", rw && lba + count > size && lba < size + 256);
      add("ATA huge LBA", rw && lba >= 2 ** 28);
      add("ATA LBA28 with device bits", rw && !lba48 && (f[31]! & 0xf0) !== 0);
      add(
        "ATA write with short data",
        (f[27] === 0x30 || f[27] === 0x34) && len < 36 + count * 512,
      );
      add(
        "ATA frame longer than needed",
        len > 36 + (f[27] === 0x30 || f[27] === 0x34 ? count * 512 : 0),
      );
      add(
        "ATA unsupported command",
        ![0x20, 0x24, 0x30, 0x34, 0xe5, 0xe7, 0xea, 0xec].includes(f[27]!),
      );
    }
    if (cmd === 1) {
      add("config truncated (< 32 bytes)", len >= 24 && len < 32);
      if (len < 32) continue;
      const slen = f.readUInt16BE(30);
      add("config string over 1024", slen > 1024);
      add("config string length past the frame", 32 + slen > len);
      add("config string of 1024", slen === 1024 && len >= 32 + 1024);
      add("config ccmd over 4", (f[29]! & 0x0f) > 4);
      for (let k = 0; k <= 4; k++) add(`config ccmd ${k}`, (f[29]! & 0x0f) === k);
    }
    if (cmd === 2 && len >= 28) {
      add("mask count past the frame", 28 + f[27]! * 8 > len);
      add("mask bad mcmd", f[25]! > 1);
      let bad = false;
      for (let i = 0; i < f[27]! && 36 + i * 8 <= len; i++) if (f[29 + i * 8]! > 2) bad = true;
      add("mask bad directive", f[25] === 1 && bad);
      add("mask list of 100+", f[27]! >= 100);
    }
    if (cmd === 3 && len >= 26) {
      add("reserve count past the frame", 26 + f[25]! * 6 > len);
      add("reserve bad rcmd", f[24]! > 2);
      add("reserve list of 100+", f[25]! >= 100);
    }
  }
  return c;
}

/** Packet counters of a link, as `ip -s link` reports them (veth counts its drops as tx_dropped on the sending end). */
export interface LinkCounters {
  rxPackets: number;
  txPackets: number;
  txDropped: number;
}

export function linkCounters(ifname: string, netns: string | null = null): LinkCounters {
  const argv = ["ip", ...(netns ? ["-n", netns] : []), "-j", "-s", "link", "show", "dev", ifname];
  const [link] = JSON.parse(run(argv)) as {
    stats64: { rx: { packets: number }; tx: { packets: number; dropped: number } };
  }[];
  if (!link) throw new Error(`${argv.join(" ")}: no such link`);
  const { rx, tx } = link.stats64;
  return { rxPackets: rx.packets, txPackets: tx.packets, txDropped: tx.dropped };
}

/**
 * The wire between the fuzzer (end A, with the well-behaved client on a
 * macvlan of it) and the daemon (end B, in its namespace): counters of all
 * three links and of the daemon's interface, taken together.
 */
export interface WireLinks {
  a: string;
  b: string;
  netns: string;
  macvlan: string;
}

export interface WireSnapshot {
  a: LinkCounters;
  b: LinkCounters;
  macvlan: LinkCounters;
  daemon: InterfaceCounters;
  exports: ExportCounters[];
}

export function wireSnapshot(links: WireLinks, stats: StatsResult): WireSnapshot {
  const daemon = stats.interfaces.find((i) => i.name === links.b);
  if (!daemon) throw new Error(`aoectl stats lists no interface ${links.b}`);
  return {
    a: linkCounters(links.a),
    b: linkCounters(links.b, links.netns),
    macvlan: linkCounters(links.macvlan),
    daemon,
    exports: stats.exports,
  };
}

/** Frames dropped on the way and counted, between two snapshots and by the tool's receive ring. */
export interface WireDrops {
  /** veth A -> B (requests): the sending end's tx_dropped. */
  toDaemon: number;
  /** The daemon's receive ring was full (PACKET_STATISTICS tp_drops). */
  daemonRing: number;
  /** No transmit slot for a reply. */
  daemonTxRingFull: number;
  /** veth B -> A (replies). */
  fromDaemon: number;
  /** The tool's receive ring was full (its PACKET_STATISTICS tp_drops). */
  toolRing: number;
}

export function wireDrops(s0: WireSnapshot, s1: WireSnapshot, tool: ToolSummary): WireDrops {
  return {
    toDaemon: s1.a.txDropped - s0.a.txDropped,
    daemonRing: s1.daemon.kernelDrops - s0.daemon.kernelDrops,
    daemonTxRingFull: s1.daemon.txRingFull - s0.daemon.txRingFull,
    fromDaemon: s1.b.txDropped - s0.b.txDropped,
    toolRing: tool.rxKernelDrops,
  };
}

/**
 * The conservation laws of the wire, exactly, as `what: left = right`
 * strings for expect(...).toEqual(...) (a failure shows both sides):
 * every frame the tool and the client sent left A or was dropped by veth;
 * every frame that reached B was walked by the daemon, skipped as another
 * host's or dropped on its full ring; every reply the daemon committed left B
 * or was dropped by veth. Call once the daemon is idle (waitForQuiet).
 */
export function wireIdentities(s0: WireSnapshot, s1: WireSnapshot, tool: ToolSummary) {
  const d = (f: (s: WireSnapshot) => number) => f(s1) - f(s0);
  const line = (what: string, left: number, right: number) => ({
    got: `${what}: ${left} = ${right}`,
    want: `${what}: ${right} = ${right}`,
  });
  return [
    line(
      "frames sent by the tool and the client = frames that left A + veth drops",
      tool.sent + tool.probes + d((s) => s.macvlan.txPackets + s.macvlan.txDropped),
      d((s) => s.a.txPackets + s.a.txDropped),
    ),
    line(
      "frames that left A = frames that reached B",
      d((s) => s.a.txPackets),
      d((s) => s.b.rxPackets),
    ),
    line(
      "frames that reached B = walked by aoed + another host's + dropped on its ring",
      d((s) => s.b.rxPackets),
      d((s) => s.daemon.rxFrames + s.daemon.otherHost + s.daemon.kernelDrops),
    ),
    line(
      "replies aoed committed = frames that left B + veth drops",
      d((s) => s.daemon.txFrames),
      d((s) => s.b.txPackets + s.b.txDropped),
    ),
  ];
}

/**
 * Waits until the daemon is idle and its link adds up since it was created
 * (nothing else sends on these links: IPv6 is off on all of them): nothing
 * in flight; every frame that reached B walked by aoed, skipped as another
 * host's or dropped on its full ring; every reply aoed committed sent by B or
 * dropped by veth. Times out naming the counts if they never add up.
 */
export async function waitForQuiet(
  links: WireLinks,
  stats: () => Promise<StatsResult>,
): Promise<WireSnapshot> {
  return waitFor("aoed idle, with every frame on its link accounted for", async () => {
    const s = wireSnapshot(links, await stats());
    const d = s.daemon;
    const busy = s.exports.filter((e) => e.inFlight > 0).map((e) => e.name);
    const walked = d.rxFrames + d.otherHost + d.kernelDrops;
    const left = s.b.txPackets + s.b.txDropped;
    if (busy.length > 0 || s.b.rxPackets !== walked || d.txFrames !== left)
      throw new Error(
        `in flight on [${busy.join(",")}]; reached B ${s.b.rxPackets} vs walked ${d.rxFrames} + other host ${d.otherHost} + ring drops ${d.kernelDrops}; committed ${d.txFrames} vs left B ${s.b.txPackets} + veth drops ${s.b.txDropped}`,
      );
    return s;
  });
}
