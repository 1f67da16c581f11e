/**
 * A million malformed and valid frames at a running aoed. The daemon runs in
 * a network namespace on one end of a veth pair; aoe-fuzz.c replays a corpus
 * of mutated frames (wire.ts) from spoofed source MACs on the other end,
 * paced by probes so the daemon really handles each one, while a
 * well-behaved initiator on its own MAC (a macvlan on the same wire) keeps
 * writing and reading back verified data.
 *
 * Passes when: the daemon is still up and exits cleanly; nothing that must be
 * ignored (R flag, wrong version, our own source MAC, wildcard non-discovery,
 * unknown shelf/slot, denied MACs, another host's frames) got a reply; no
 * frame got more replies than it may; sampled replies are exactly right
 * (stateless export) or right for some state (stateful export); the client's
 * verified I/O completed during and after, and `aoectl clear` resets what the
 * fuzz set. Nothing is estimated: every frame sent is accounted for on the
 * wire and in the daemon's counters (wire.ts, wireIdentities), every frame
 * that must be answered and was not is a counted drop, and the ignored
 * counters are exact up to the counted drops.
 *
 * `npm test` runs a short fuzz (test/fuzz/daemon.fuzz.test.ts); the soak
 * suite a million frames, with a warm-up and a check that RSS stays flat.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AoeClient, type TargetInfo } from "../../src/client/client.js";
import { ControlClient } from "../../src/control/client.js";
import type { StatsResult, StatusResult } from "../../src/control/protocol.js";
import { FIRMWARE_VERSION } from "../../src/version.js";
import { aoectl, aoectlJson, rssBytes } from "../helpers/aoectl.js";
import { type Daemon, startDaemon } from "../helpers/daemon.js";
import { createMacvlan, type Macvlan } from "../helpers/macvlan.js";
import { createVethPair, linkInfo, type VethPair } from "../helpers/net.js";
import type { ExportSpec } from "./spec.js";
import { replyProblems } from "./spec.js";
import {
  buildCorpus,
  buildTool,
  corpusCoverage,
  type Entry,
  type IgnoreCounter,
  readResults,
  runTool,
  sentFrame,
  statefulProblems,
  type ToolSummary,
  type WireLinks,
  type WireWorld,
  waitForQuiet,
  wireDrops,
  wireIdentities,
  writeCorpus,
} from "./wire.js";

const SEED = 20250101;
const KiB = 1024;
const MiB = 1024 * KiB;
const mac = (hex: string) => Buffer.from(hex.replace(/:/g, ""), "hex");
const num = (b: Buffer) => b.readUIntBE(0, 6);
const macText = (b: Buffer) => b.toString("hex").replace(/(..)(?!$)/g, "$1:");

const SOURCES = Array.from({ length: 8 }, (_, i) => mac(`02:f0:00:00:00:0${i + 1}`));
const DENIED = SOURCES[7]!;
const PROBE = "02:fe:00:00:00:01";
const CLIENT = "02:c1:00:00:00:01";

export interface FuzzRun {
  /** Frames sent in the measured run (the corpus is replayed round after round). */
  frames: number;
  /** Distinct frames in the corpus. */
  corpus: number;
  /** Frames sent before it so rings, slots and JIT reach their working size; 0: no warm-up, no RSS check. */
  warmUp: number;
}

export function wireFuzz({ frames: FRAMES, corpus: CORPUS, warmUp }: FuzzRun): void {
  describe(`wire fuzz against a running aoed, ${FRAMES} frames`, () => {
    let net: VethPair;
    let mv: Macvlan;
    let dir: string;
    let sock: string;
    let daemon: Daemon;
    let pid: number;
    let client: AoeClient;
    let bin: string;
    let world: WireWorld;
    let corpus: Entry[];
    let corpusFile: string;
    const targets = new Map<string, TargetInfo>();

    const spec = (
      o: Partial<ExportSpec> & Pick<ExportSpec, "name" | "shelf" | "slot" | "sectors">,
    ): ExportSpec => ({
      maxSectors: 2,
      queueLength: 16,
      readOnly: false,
      broadcast: true,
      allows: () => true,
      maskCapacity: Math.floor((1514 - 28) / 8),
      firmware: FIRMWARE_VERSION,
      ...o,
    });

    beforeAll(async () => {
      net = createVethPair({ netns: true, prefix: "fz" });
      mv = createMacvlan(net.a, CLIENT);
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-fuzz-"));
      sock = path.join(dir, "aoed.sock");
      const img = (name: string, size: number) => {
        const p = path.join(dir, name);
        fs.writeFileSync(p, "");
        fs.truncateSync(p, size);
        return p;
      };
      fs.writeFileSync(
        path.join(dir, "aoed.yaml"),
        `control-socket: ${sock}
metrics: false
exports:
  - name: fz-stateless
    path: ${img("s.img", 1 * MiB)}
    shelf: 7
    slot: 1
    queue-length: 16
    interfaces: [${net.b}]
    deny: [${macText(DENIED)}]
  - name: fz-stateful
    path: ${img("m.img", 512 * KiB)}
    shelf: 8
    slot: 2
    queue-length: 16
    interfaces: [${net.b}]
  - name: client
    path: ${img("c.img", 8 * MiB)}
    shelf: 9
    slot: 3
    interfaces: [${net.b}]
    policy: reject
    accept: [${CLIENT}]
`,
      );
      bin = buildTool(dir);
      const portMac = mac(linkInfo(net.b, net.netns).mac);
      world = {
        portMac,
        sources: SOURCES,
        stateless: spec({
          name: "fz-stateless",
          shelf: 7,
          slot: 1,
          sectors: 2048,
          allows: (m) => m !== num(DENIED),
        }),
        stateful: spec({ name: "fz-stateful", shelf: 8, slot: 2, sectors: 1024 }),
        client: spec({
          name: "client",
          shelf: 9,
          slot: 3,
          sectors: 16384,
          queueLength: 64,
          allows: (m) => m === num(mac(CLIENT)),
        }),
      };
      corpus = buildCorpus(world, CORPUS, SEED);
      const coverage = corpusCoverage(corpus, world);
      console.log(`corpus of ${corpus.length} frames: ${JSON.stringify(coverage)}`);
      // Every kind of malformed frame is in it, in numbers.
      for (const [what, n] of Object.entries(coverage))
        expect(`${what}: ${n >= 20}`).toBe(`${what}: true`);
      corpusFile = path.join(dir, "corpus.bin");
      writeCorpus(corpusFile, corpus);

      daemon = await startDaemon(["--config", path.join(dir, "aoed.yaml")], { netns: net.netns });
      pid = (await aoectlJson<StatusResult>(sock, "status")).daemon.pid;
      client = AoeClient.open(mv.name, { timeoutMs: 100, tries: 30 });
      for (const t of await client.discover({ shelf: 0xffff, timeoutMs: 500 }))
        targets.set(`${t.shelf}.${t.slot}`, t);
      expect([...targets.keys()].sort()).toEqual(["7.1", "8.2", "9.3"]);
    }, 120_000);

    afterAll(async () => {
      client?.close();
      const code = await daemon?.stop();
      mv?.destroy();
      net?.destroy();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
      expect(code).toBe(0);
    });

    const run = (frames: number, results: string): Promise<ToolSummary> =>
      runTool(bin, {
        iface: net.a,
        corpus: corpusFile,
        results,
        frames,
        targetMac: macText(world.portMac),
        probeMac: PROBE,
        probeShelf: 7,
        probeSlot: 1,
        window: 1024,
        probeEvery: 128,
        ignoreDst: CLIENT,
        // Only reached if the daemon stopped answering: the run is paced by its replies.
        maxSeconds: 300,
      });

    /** Writes random data and reads it back until told to stop; returns verified round trips. */
    async function verifiedIo(t: TargetInfo, sectors: number, stop: () => boolean, atLeast = 0) {
      let ops = 0;
      while (!stop() || ops < atLeast) {
        const lba = (ops * 8 * 37) % (sectors - 8);
        const data = randomBytes(4 * KiB);
        await client.write(t, lba, data);
        const back = await client.read(t, lba, 8);
        if (!back.equals(data))
          throw new Error(`e${t.shelf}.${t.slot} lba ${lba}: read back differs`);
        ops++;
      }
      return ops;
    }

    it(`${FRAMES} mutated frames: no crash, no reply where none is due, right replies, every frame accounted for, client served`, async () => {
      const links: WireLinks = { a: net.a, b: net.b, netns: net.netns!, macvlan: mv.name };
      const stats = () => aoectlJson<StatsResult>(sock, "stats");
      if (warmUp > 0) {
        const warm = await run(warmUp, path.join(dir, "warm.bin"));
        expect(warm.timedOut).toBe(false);
      }
      const s0 = await waitForQuiet(links, stats);
      const rss0 = await rssBytes(pid);

      let fuzzing = true;
      // At least 10 verified round trips, however fast the fuzz is over.
      const during = verifiedIo(targets.get("9.3")!, 16384, () => !fuzzing, 10);
      // Only MACs on a mask list may edit it: once the fuzz fills it with strangers the stateful
      // export goes quiet. An admin keeps clearing it over the control socket, under load.
      const admin = await ControlClient.connect(sock);
      let clears = 0;
      const clearing = (async () => {
        while (fuzzing) {
          await admin.request({ cmd: "clear", what: "macmask", export: "fz-stateful" });
          clears++;
          await new Promise((r) => setTimeout(r, 25));
        }
      })();
      const summary = await run(FRAMES, path.join(dir, "results.bin")).finally(() => {
        fuzzing = false;
      });
      const clientOps = await during;
      await clearing;
      admin.close();
      const s1 = await waitForQuiet(links, stats);
      const rss1 = await rssBytes(pid);
      const res = readResults(path.join(dir, "results.bin"));
      const drops = wireDrops(s0, s1, summary);

      const report = {
        ...summary,
        rssBeforeMiB: +(rss0 / MiB).toFixed(1),
        rssAfterMiB: +(rss1 / MiB).toFixed(1),
        clientVerifiedRoundTrips: clientOps,
        adminClears: clears,
        daemonRxFrames: s1.daemon.rxFrames - s0.daemon.rxFrames,
        otherHost: s1.daemon.otherHost - s0.daemon.otherHost,
        drops,
        samples: res.samples.length,
      };
      console.log(`wire fuzz: ${JSON.stringify(report)}`);

      // The daemon is alive and answered the whole run.
      expect(daemon.proc.exitCode).toBeNull();
      expect(summary.timedOut).toBe(false);
      expect(summary.sent).toBe(FRAMES);
      expect(summary.txErrors).toBe(0);
      expect(summary.unmatched).toBe(0);
      // Nothing else answers on this wire: an R-flag frame from another MAC would be a reply from a wrong address.
      expect(res.foreign.map((f) => f.bytes.toString("hex").slice(0, 120))).toEqual([]);
      expect(summary.announcements).toBe(0);
      // Every frame sent reached the daemon or is a counted drop, and every reply it made left.
      for (const { got, want } of wireIdentities(s0, s1, summary)) expect(got).toBe(want);

      // Per frame: nothing for what must be ignored, never more than allowed, all that is due.
      const mustNot: string[] = [];
      const tooMany: string[] = [];
      let due = 0;
      let missing = 0;
      const ignored: Record<IgnoreCounter, number> = {
        short: 0,
        response: 0,
        version: 0,
        own: 0,
        wildcard: 0,
        unknown_target: 0,
      };
      corpus.forEach((e, i) => {
        const sent = res.sent[i]!;
        const got = res.replies[i]!;
        if (e.counter) ignored[e.counter] += sent;
        if (e.ignore !== null && got > 0)
          mustNot.push(
            `#${i} (${e.ignore}): ${got} replies to ${e.frame.toString("hex").slice(0, 80)}`,
          );
        if (got > sent * e.maxReplies) tooMany.push(`#${i}: ${got} replies for ${sent} sent`);
        if (e.mustAnswer) {
          due += sent;
          missing += Math.max(0, sent - got);
        }
      });
      expect(mustNot.slice(0, 10)).toEqual([]);
      expect(tooMany.slice(0, 10)).toEqual([]);
      // Replies that need no backend I/O cannot be dropped by a full queue: each one (and each
      // probe's) that did not arrive is a frame counted as dropped on the way there or back.
      expect(due).toBeGreaterThan(FRAMES / 20);
      const counted = Object.values(drops).reduce((a, b) => a + b, 0);
      const unanswered = missing + (summary.probes - summary.probeAcks);
      expect(
        unanswered,
        `unanswered vs counted drops ${JSON.stringify(drops)}`,
      ).toBeLessThanOrEqual(counted);

      // The daemon counted every ignored frame under its reason: exactly, but for those dropped
      // before it saw them.
      const lost = drops.toDaemon + drops.daemonRing;
      let shortfall = 0;
      for (const k of Object.keys(ignored) as IgnoreCounter[]) {
        const d = s1.daemon.ignored[k] - s0.daemon.ignored[k];
        expect(d, `ignored.${k}`).toBeLessThanOrEqual(ignored[k]);
        shortfall += ignored[k] - d;
      }
      expect(
        shortfall,
        `ignored frames not counted vs ${lost} dropped before aoed`,
      ).toBeLessThanOrEqual(lost);

      // Sampled replies are right in every byte the model pins down.
      const problems: string[] = [];
      const checked = { stateless: 0, stateful: 0 };
      for (const s of res.samples) {
        const e = corpus[s.entry]!;
        const frame = sentFrame(e, s.entry);
        const shelf = s.bytes.readUInt16BE(16);
        const slot = s.bytes[18];
        let p: string[];
        if (shelf === 7 && slot === 1 && e.stateless) {
          checked.stateless++;
          p = replyProblems(s.bytes, {
            frame,
            export: world.stateless,
            portMac: num(world.portMac),
            outcome: e.stateless,
            wireLength: s.len,
          });
        } else if (shelf === 8 && slot === 2 && e.stateful) {
          checked.stateful++;
          p = statefulProblems(s.bytes, s.len, frame, world);
        } else p = [`reply from ${shelf}.${slot}, which is not addressed`];
        if (p.length > 0)
          problems.push(
            `#${s.entry} ${p.join("; ")}\n  frame ${frame.toString("hex").slice(0, 120)}\n  reply ${s.bytes.toString("hex").slice(0, 120)}`,
          );
      }
      expect(problems.slice(0, 10)).toEqual([]);
      expect(checked.stateless).toBeGreaterThan(CORPUS / 4);
      expect(checked.stateful).toBeGreaterThan(CORPUS / 20);

      // Memory: flat after the warm-up.
      if (warmUp > 0) expect(rss1 - rss0).toBeLessThan(24 * MiB);

      // The stateless export's state never changed; the stateful one's is cleared by the admin.
      const status = await aoectlJson<StatusResult>(sock, "status");
      const state = (n: string) => status.exports.find((x) => x.name === n)!.state;
      expect(state("fz-stateless")).toEqual({ config: "", macmask: [], reserve: [] });
      expect(state("client")).toEqual({ config: "", macmask: [], reserve: [] });
      for (const what of ["config", "macmask", "reserve"])
        expect((await aoectl(sock, ["clear", what, "fz-*"])).code).toBe(0);
      expect((await aoectlJson<StatusResult>(sock, "status")).exports.map((x) => x.state)).toEqual([
        { config: "", macmask: [], reserve: [] },
        { config: "", macmask: [], reserve: [] },
        { config: "", macmask: [], reserve: [] },
      ]);
    }, 600_000);

    it("after the fuzz, the client reads and writes every export correctly", async () => {
      for (const what of ["config", "macmask", "reserve"]) await aoectl(sock, ["clear", what, "*"]);
      const stop = () => true;
      expect(await verifiedIo(targets.get("9.3")!, 16384, stop, 5)).toBe(5);
      expect(await verifiedIo(targets.get("8.2")!, 1024, stop, 5)).toBe(5);
      expect(await verifiedIo(targets.get("7.1")!, 2048, stop, 5)).toBe(5);
      expect((await client.identify(targets.get("7.1")!)).sectors).toBe(2048);
      expect(daemon.proc.exitCode).toBeNull();
    });
  });
}
