/**
 * Floods: many spoofed MACs keep ten times the queue length of ATA requests
 * in front of one export (aoe-fuzz.c, paced so the daemon's receive ring
 * always holds about 10 x queue-length requests), then a broadcast discovery
 * storm, while a well-behaved initiator on its own MAC writes and reads back
 * verified data on the same export.
 *
 * Passes when: in-flight never exceeds the queue length (sampled on the
 * control socket throughout, and in the metrics); every frame is accounted
 * for on the wire (test/fuzz/wire.ts, wireIdentities); every read or write
 * the export took was dropped for a full queue or completed; every flood
 * request that went unanswered is a counted drop (queue drops, ring drops on
 * either end, a full transmit ring, veth drops); no request got two answers;
 * RSS stays flat; the client's I/O completes (with retransmits) during the
 * flood, and all it wrote reads back afterwards. None of it depends on how
 * fast the daemon is against the flood, or on the I/O engine (mmap on tmpfs
 * completes synchronously, so nothing need ever be seen in flight).
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AoeClient, type TargetInfo } from "../../src/client/client.js";
import { ControlClient } from "../../src/control/client.js";
import type { StatsResult, StatusResult } from "../../src/control/protocol.js";
import { buildFrame } from "../fuzz/frames.js";
import {
  buildTool,
  type Entry,
  readResults,
  runTool,
  type ToolSummary,
  type WireLinks,
  waitForQuiet,
  wireDrops,
  wireIdentities,
  writeCorpus,
} from "../fuzz/wire.js";
import { aoectlJson, rssBytes } from "../helpers/aoectl.js";
import { type Daemon, startDaemon } from "../helpers/daemon.js";
import { createMacvlan, type Macvlan } from "../helpers/macvlan.js";
import { createVethPair, linkInfo, type VethPair } from "../helpers/net.js";
import { scrapeMetrics } from "../helpers/scrape.js";
import { ENGINES, expectEngine } from "./engines.js";

const QUEUE = 16;
const SECTORS = 32768; // 16 MiB
const CLIENT_SECTORS = 8192; // the client's part; the flood stays above it
const MiB = 1024 * 1024;
const CLIENT = "02:c2:00:00:00:01";
const PROBE = "02:fe:00:00:00:02";
const mac = (hex: string) => Buffer.from(hex.replace(/:/g, ""), "hex");
const macText = (b: Buffer) => b.toString("hex").replace(/(..)(?!$)/g, "$1:");

/** Valid READ/WRITE SECTORS EXT requests (2 sectors) from `macs` spoofed MACs, above the client's range. */
function ioFlood(portMac: Buffer, macs: number, n: number): Entry[] {
  return Array.from({ length: n }, (_, i) => {
    const src = Buffer.from([0x02, 0xf1, 0, 0, (i % macs) >> 8, (i % macs) & 0xff]);
    const write = i % 2 === 1;
    const arg = Buffer.alloc(12 + (write ? 1024 : 0), 0x5a);
    arg[0] = write ? 0x41 : 0x40;
    arg[1] = 0;
    arg[2] = 2;
    arg[3] = write ? 0x34 : 0x24;
    arg.writeUIntLE(CLIENT_SECTORS + ((i * 2) % (SECTORS - CLIENT_SECTORS - 2)), 4, 6);
    arg.writeUInt16BE(0, 10);
    const frame = buildFrame(
      { dst: portMac, src, verFlags: 0x10, error: 0, shelf: 5, slot: 5, tag: 0 },
      { command: 0, arg },
    );
    return {
      frame,
      ignore: null,
      counter: null,
      stateless: null,
      stateful: false,
      maxReplies: 1,
      mustAnswer: false,
    };
  });
}

/** Broadcast discovery (query config read to every shelf and slot) from `macs` spoofed MACs. */
function discoveryStorm(macs: number, n: number): Entry[] {
  return Array.from({ length: n }, (_, i) => ({
    frame: buildFrame(
      {
        dst: Buffer.alloc(6, 0xff),
        src: Buffer.from([0x02, 0xf2, 0, 0, (i % macs) >> 8, (i % macs) & 0xff]),
        verFlags: 0x10,
        error: 0,
        shelf: 0xffff,
        slot: 0xff,
        tag: 0,
      },
      { command: 1, arg: Buffer.alloc(8) },
    ),
    ignore: null,
    counter: null,
    stateless: null,
    stateful: false,
    maxReplies: 1,
    mustAnswer: true,
  }));
}

// Per engine: the same accounting must hold whether requests complete at once or later.
describe.each(ENGINES)("floods from many MACs, io: %s", (engine) => {
  let net: VethPair;
  let mv: Macvlan;
  let dir: string;
  let sock: string;
  let daemon: Daemon;
  let pid: number;
  let client: AoeClient;
  let target: TargetInfo;
  let bin: string;
  let portMac: Buffer;
  /** What the client wrote: its range of the export, as it must read back. */
  const shadow = Buffer.alloc(CLIENT_SECTORS * 512);

  beforeAll(async () => {
    net = createVethPair({ netns: true, prefix: "fl" });
    mv = createMacvlan(net.a, CLIENT);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-flood-"));
    sock = path.join(dir, "aoed.sock");
    const img = path.join(dir, "flood.img");
    fs.writeFileSync(img, "");
    fs.truncateSync(img, SECTORS * 512);
    fs.writeFileSync(
      path.join(dir, "aoed.yaml"),
      `control-socket: ${sock}
metrics:
  listen: 127.0.0.1:9288
defaults:
  io: ${engine}
exports:
  - name: flood
    path: ${img}
    shelf: 5
    slot: 5
    queue-length: ${QUEUE}
    interfaces: [${net.b}]
`,
    );
    bin = buildTool(dir);
    portMac = mac(linkInfo(net.b, net.netns).mac);
    daemon = await startDaemon(["--config", path.join(dir, "aoed.yaml")], {
      netns: net.netns,
    });
    expectEngine(daemon, engine);
    pid = (await aoectlJson<StatusResult>(sock, "status")).daemon.pid;
    client = AoeClient.open(mv.name, { timeoutMs: 40, tries: 200 });
    [target] = (await client.discover({ shelf: 5, slot: 5, timeoutMs: 400 })) as [TargetInfo];
    expect(target.bufferCount).toBe(QUEUE);
  }, 60_000);

  afterAll(async () => {
    client?.close();
    const code = await daemon?.stop();
    mv?.destroy();
    net?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    expect(code).toBe(0);
  });

  /**
   * Writes random 4 KiB blocks in the client's range and reads each back until `stop()`, and at
   * least 5 times however soon the flood is over; throws if one reads back wrong or goes unanswered.
   */
  async function verifiedIo(stop: () => boolean): Promise<number> {
    let ops = 0;
    while (!stop() || ops < 5) {
      const lba = (ops * 8 * 13) % CLIENT_SECTORS;
      const data = randomBytes(4096);
      await client.write(target, lba, data);
      data.copy(shadow, lba * 512);
      if (!(await client.read(target, lba, 8)).equals(data))
        throw new Error(`lba ${lba}: read back differs during the flood`);
      ops++;
    }
    return ops;
  }

  /** Runs a flood corpus while sampling in-flight and doing client I/O; returns what was seen. */
  async function flood(name: string, entries: Entry[], frames: number, window: number) {
    const corpus = path.join(dir, `${name}.corpus`);
    const results = path.join(dir, `${name}.results`);
    writeCorpus(corpus, entries);
    const ctl = await ControlClient.connect(sock);
    const links: WireLinks = { a: net.a, b: net.b, netns: net.netns!, macvlan: mv.name };
    const stats = () => ctl.request<StatsResult>({ cmd: "stats" });
    const s0 = await waitForQuiet(links, stats);
    const rss0 = await rssBytes(pid);
    let running = true;
    let maxInFlight = 0;
    let samples = 0;
    const sampling = (async () => {
      while (running) {
        const s = await ctl.request<StatsResult>({ cmd: "stats" });
        maxInFlight = Math.max(maxInFlight, s.exports[0]!.inFlight);
        samples++;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const io = verifiedIo(() => !running);
    let summary: ToolSummary;
    try {
      summary = await runTool(bin, {
        iface: net.a,
        corpus,
        results,
        frames,
        targetMac: macText(portMac),
        probeMac: PROBE,
        probeShelf: 5,
        probeSlot: 5,
        window,
        probeEvery: QUEUE,
        ignoreDst: CLIENT,
        // Only reached if the daemon stopped answering: the run is paced by its replies.
        maxSeconds: 300,
      });
    } finally {
      running = false;
    }
    const clientOps = await io;
    await sampling;
    const s1 = await waitForQuiet(links, stats);
    ctl.close();
    const rss1 = await rssBytes(pid);
    const res = readResults(results);
    let replies = 0;
    let duplicated = 0;
    res.replies.forEach((r, i) => {
      replies += r;
      if (r > res.sent[i]!) duplicated++;
    });
    const e0 = s0.exports[0]!;
    const e1 = s1.exports[0]!;
    const io0 = e0.requests.read + e0.requests.write + e0.requests.flush;
    const io1 = e1.requests.read + e1.requests.write + e1.requests.flush;
    const drops = wireDrops(s0, s1, summary);
    const seen = {
      ...summary,
      floodReplies: replies,
      duplicated,
      queueDrops: e1.queueDrops - e0.queueDrops,
      ioTaken: io1 - io0,
      ioCompleted: e1.latency.count - e0.latency.count,
      drops,
      wireDrops: Object.values(drops).reduce((a, b) => a + b),
      countedDrops: e1.queueDrops - e0.queueDrops + Object.values(drops).reduce((a, b) => a + b),
      maxInFlight,
      inFlightSamples: samples,
      clientVerifiedRoundTrips: clientOps,
      rssBeforeMiB: +(rss0 / MiB).toFixed(1),
      rssAfterMiB: +(rss1 / MiB).toFixed(1),
    };
    console.log(`${name}: ${JSON.stringify(seen)}`);
    // Nothing else answers on this wire: an R-flag frame from another MAC would be a reply from a wrong address.
    expect(res.foreign.map((f) => f.bytes.toString("hex").slice(0, 120))).toEqual([]);
    expect(summary.txErrors).toBe(0);
    // Every frame sent reached the daemon or is a counted drop, and every reply it made left.
    for (const { got, want } of wireIdentities(s0, s1, summary)) expect(got).toBe(want);
    // Every read, write or flush the export took was dropped for a full queue or completed.
    expect(`taken ${seen.ioTaken} = queue drops + completed`).toBe(
      `taken ${seen.queueDrops + seen.ioCompleted} = queue drops + completed`,
    );
    return { seen, rss0, rss1 };
  }

  it(`10 x queue-length (${10 * QUEUE}) requests from 1024 MACs: bounded, dropped and counted, client served`, async () => {
    const corpus = ioFlood(portMac, 1024, 4096);
    // Warm-up: slots, rings and JIT reach their working size before RSS is taken.
    await flood("warm-up", corpus, 50_000, 10 * QUEUE);
    const { seen, rss0, rss1 } = await flood("io", corpus, 1_000_000, 10 * QUEUE);
    expect(seen.timedOut).toBe(false);
    expect(seen.sent).toBe(1_000_000);
    expect(daemon.proc.exitCode).toBeNull();
    // Bounded by configuration, whatever the engine (sampled on the control socket, however often).
    expect(seen.maxInFlight).toBeLessThanOrEqual(QUEUE);
    expect(rss1 - rss0).toBeLessThan(24 * MiB);
    // No request got two answers, and every unanswered one (flood or probe) is a counted drop.
    expect(seen.duplicated).toBe(0);
    expect(seen.unmatched).toBe(0);
    const unanswered = seen.sent - seen.floodReplies + seen.probes - seen.probeAcks;
    expect(unanswered, "unanswered vs counted drops").toBeLessThanOrEqual(seen.countedDrops);
    // The metrics agree: in-flight back to zero, the drops counted.
    const m = await scrape();
    expect(m.get('aoed_export_in_flight_requests{export="flood"}')).toBe(0);
    const stats = await aoectlJson<StatsResult>(sock, "stats");
    expect(m.get('aoed_export_queue_drops_total{export="flood"}')).toBe(
      stats.exports[0]!.queueDrops,
    );
  }, 600_000);

  it("a broadcast discovery storm from 1024 MACs: every query answered, client served", async () => {
    const { seen, rss0, rss1 } = await flood("storm", discoveryStorm(1024, 4096), 200_000, 1024);
    expect(seen.timedOut).toBe(false);
    expect(daemon.proc.exitCode).toBeNull();
    expect(seen.duplicated).toBe(0);
    expect(seen.unmatched).toBe(0);
    // Discovery needs no queue slot (the queue drops are the client's retransmits): each query is
    // answered unless a frame was dropped on the wire or a ring, and that is counted.
    const unanswered = seen.sent - seen.floodReplies + seen.probes - seen.probeAcks;
    expect(unanswered, "unanswered vs counted drops").toBeLessThanOrEqual(seen.wireDrops);
    expect(seen.maxInFlight).toBeLessThanOrEqual(QUEUE);
    expect(rss1 - rss0).toBeLessThan(24 * MiB);
  }, 600_000);

  it("afterwards everything the client wrote reads back", async () => {
    expect((await client.read(target, 0, CLIENT_SECTORS)).equals(shadow)).toBe(true);
  });

  const scrape = () => scrapeMetrics(net.netns!);
});
