/**
 * Durability of acknowledged writes, against the real daemon in a network
 * namespace, for each I/O engine (the thread pool and io_uring).
 *
 * 1. SIGKILL at random moments while 16 writers keep multi-sector writes in
 *    flight (write-cache off). After every kill the backing file is read
 *    directly and then through a restarted aoed: every acknowledged write is
 *    there intact; a write that was never acknowledged left each of its
 *    sectors old or new, never a torn sector. SIGKILL of a process does not
 *    lose the page cache, so this proves "acknowledged = in the file, not
 *    corrupted or reordered by the daemon", not power-loss durability; see
 *    docs/reliability.md.
 * 2. The sync semantics that do give power-loss durability, seen from the
 *    kernel rather than from the daemon: with write-cache off ext4 completed a
 *    data sync of the backing file before each write was acknowledged (group
 *    commit, no O_DSYNC: test/reliability/group-commit.test.ts checks the order); with write-cache on, writes are not synced and FLUSH
 *    CACHE EXT is (fdatasync on the thread pool, IORING_OP_FSYNC on io_uring);
 *    and, with strace on the thread-pool engine, the syscalls themselves.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AoeClient, type TargetInfo, TimeoutError } from "../../src/client/client.js";
import { probeUring } from "../../src/io/uring.js";
import { AtaCmd, AtaFlag } from "../../src/protocol/constants.js";
import { type Daemon, startDaemon } from "../helpers/daemon.js";
import { fdFlags, fsType, hasIoUring, KernelTrace, O_DSYNC } from "../helpers/ktrace.js";
import { createVethPair, type VethPair } from "../helpers/net.js";
import { pattern, SECTOR, SectorModel } from "../helpers/patterns.js";

const KILLS = 20;
const DISK_SECTORS = 4096; // 2 MiB: small, so sectors are overwritten many times
const WRITERS = 16;

const uring = probeUring().ok;
const ENGINES = uring ? (["threads", "uring"] as const) : (["threads"] as const);
const traceUnavailable = KernelTrace.unavailable();
const hasStrace = (() => {
  try {
    execFileSync("strace", ["-V"], { stdio: "pipe" });
    return true;
  } catch {
    return false;
  }
})();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => Number(process.hrtime.bigint()) / 1e9;
const rand = (n: number) => Math.floor(Math.random() * n);

it("says which engines and kernel tools this run covers", () => {
  // Not a condition of the suite, a statement in its output of what ran.
  console.log(
    `durability: engines ${ENGINES.join(", ")}; kernel tracing: ${traceUnavailable ?? "yes"}; strace: ${hasStrace}`,
  );
  expect(ENGINES).toContain("threads");
});

describe.each(ENGINES)("durability, AOED_IO=%s", (engine) => {
  let net: VethPair;
  let dir: string;
  let config: string;
  let daemon: Daemon | null = null;
  let client: AoeClient;
  let syncT: TargetInfo;
  let cachedT: TargetInfo;
  const syncImg = () => path.join(dir, "sync.img");
  const cachedImg = () => path.join(dir, "cached.img");

  const start = async (wrap?: string[]) => {
    const opts: Parameters<typeof startDaemon>[1] = {
      netns: net.netns,
      // The socket is left behind by every SIGKILL: keep it in our directory.
      env: { AOED_IO: engine, AOED_SOCKET: path.join(dir, "aoed.sock") },
    };
    if (wrap) opts.wrap = wrap;
    daemon = await startDaemon(["--config", config], opts);
    return daemon;
  };

  beforeAll(async () => {
    // MTU 9000: 17 sectors per request, so requests span pages and can tear.
    net = createVethPair({ netns: true, mtu: 9000 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-durability-"));
    for (const img of [syncImg(), cachedImg()]) {
      fs.writeFileSync(img, "");
      fs.truncateSync(img, DISK_SECTORS * SECTOR);
    }
    config = path.join(dir, "aoed.yaml");
    fs.writeFileSync(
      config,
      `exports:
  - name: sync
    path: ${syncImg()}
    shelf: 7
    slot: 0
    interfaces: [${net.b}]
    write-cache: false
  - name: cached
    path: ${cachedImg()}
    shelf: 7
    slot: 1
    interfaces: [${net.b}]
    write-cache: true
`,
    );
    // One try per request: the client never retransmits, so a write is either
    // acknowledged or of unknown outcome, and no stale duplicate can land later.
    client = AoeClient.open(net.a, { timeoutMs: 400, tries: 1 });
    await start();
    const found = await client.discover({ shelf: 7, timeoutMs: 300 });
    syncT = found.find((t) => t.slot === 0)!;
    cachedT = found.find((t) => t.slot === 1)!;
    expect(syncT.maxSectors).toBe(17);
    expect(cachedT).toBeDefined();
    // The engine asked for is the one in use.
    expect(hasIoUring(daemon!.pid)).toBe(engine === "uring");
  });

  afterAll(async () => {
    client?.close();
    await daemon?.stop();
    net?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it(`every acknowledged write survives ${KILLS} SIGKILLs; unacknowledged ones are old or new per sector`, async () => {
    const model = new SectorModel(DISK_SECTORS);
    const totals = {
      acked: 0,
      unknown: 0,
      inflightAtKill: 0,
      ackedBeforeKill: 0,
      landed: 0,
      lost: 0,
      torn: 0,
    };
    const unexpected: string[] = [];
    for (let round = 0; round < KILLS; round++) {
      let stop = false;
      let inflight = 0;
      let acked = 0;
      const worker = async () => {
        while (!stop) {
          let lba = 0;
          let count = 0;
          let locked = false;
          for (let tries = 0; tries < 20 && !locked; tries++) {
            count = 1 + rand(syncT.maxSectors);
            lba = rand(DISK_SECTORS - count + 1);
            locked = model.tryLock(lba, count);
          }
          if (!locked) {
            await sleep(1);
            continue;
          }
          const gen = model.begin(lba, count);
          inflight++;
          try {
            await client.ata(syncT, {
              aflags: AtaFlag.lba48 | AtaFlag.write,
              sectorCount: count,
              cmdStatus: AtaCmd.writeSectorsExt,
              lba,
              data: pattern(lba, count, gen),
            });
            model.acknowledged(lba, count, gen);
            acked++;
          } catch (e) {
            if (!(e instanceof TimeoutError)) unexpected.push(String(e));
            model.failed(lba, count);
            totals.unknown++;
          } finally {
            inflight--;
          }
        }
      };
      const workers = Array.from({ length: WRITERS }, worker);
      // Kill at a random moment once writes are flowing (some acknowledged already).
      await sleep(20 + rand(230));
      for (let waited = 0; acked === 0 && waited < 5000; waited += 5) await sleep(5);
      totals.inflightAtKill += inflight;
      totals.ackedBeforeKill += acked > 0 ? 1 : 0;
      await daemon!.kill();
      stop = true;
      await Promise.all(workers);
      daemon = null;
      totals.acked += acked;

      // What is in the file, read by us with no daemon running.
      const onDisk = fs.readFileSync(syncImg());
      expect(onDisk.length).toBe(DISK_SECTORS * SECTOR);
      const direct = model.verify(onDisk, 0, DISK_SECTORS, false);
      expect(direct.violations.slice(0, 10), `round ${round}, backing file`).toEqual([]);

      // The same through a restarted daemon; then unknown outcomes are settled by what is there.
      await start();
      const viaAoe = await client.read(syncT, 0, DISK_SECTORS);
      expect(viaAoe.equals(onDisk), `round ${round}: AoE read differs from the file`).toBe(true);
      const r = model.verify(viaAoe, 0, DISK_SECTORS, true);
      expect(r.violations.slice(0, 10), `round ${round}, through aoed`).toEqual([]);
      expect(model.unresolved).toBe(0);
      totals.landed += r.unknownLanded;
      totals.lost += r.unknownLost;
      totals.torn += r.tornRequests;
    }
    console.log(`durability AOED_IO=${engine}: ${JSON.stringify(totals)}`);
    expect(unexpected).toEqual([]);
    // The kills did hit writes in flight, and writes were acknowledged between them.
    expect(totals.inflightAtKill).toBeGreaterThan(KILLS);
    expect(totals.ackedBeforeKill).toBe(KILLS);
    expect(totals.acked).toBeGreaterThan(KILLS * 20);
  }, 80_000);

  it("no backing file is open O_DSYNC: write-cache off syncs groups of writes instead", () => {
    const sync = fdFlags(daemon!.pid, syncImg());
    const cached = fdFlags(daemon!.pid, cachedImg());
    expect(sync.length).toBeGreaterThan(0);
    expect(cached.length).toBeGreaterThan(0);
    for (const f of [...sync, ...cached]) expect(f & O_DSYNC).toBe(0);
  });

  it.skipIf(traceUnavailable !== null)(
    "write-cache off: the kernel completed a data sync of the file before each write was acknowledged",
    async ({ skip }) => {
      // stat -f calls ext4 "ext2/ext3"; the tracepoints are ext4's.
      if (fsType(syncImg()) !== "ext2/ext3") skip(`${syncImg()} is not on ext4`);
      const trace = KernelTrace.open().syncsOf(fs.statSync(syncImg()).ino);
      try {
        const acks: { sent: number; acked: number }[] = [];
        for (let i = 0; i < 30; i++) {
          const lba = i * 17;
          const sent = now();
          await client.write(syncT, lba, pattern(lba, 17, 1_000_000 + i));
          acks.push({ sent, acked: now() });
        }
        const exits = trace.syncs().filter((e) => e.phase === "exit" && e.ret === 0);
        const enters = trace.syncs().filter((e) => e.phase === "enter");
        expect(enters.every((e) => e.datasync)).toBe(true);
        // For each write: a data sync of the file completed after it was sent and before it was acknowledged.
        const unsynced = acks.filter((a) => !exits.some((e) => e.t > a.sent && e.t < a.acked));
        expect(unsynced).toEqual([]);
      } finally {
        trace.close();
      }
    },
  );

  it.skipIf(traceUnavailable !== null)(
    "write-cache on: writes are not synced, FLUSH CACHE EXT is (fdatasync / IORING_OP_FSYNC)",
    async ({ skip }) => {
      if (fsType(cachedImg()) !== "ext2/ext3") skip(`${cachedImg()} is not on ext4`);
      const d = daemon!;
      const trace = KernelTrace.open().syncsOf(fs.statSync(cachedImg()).ino).uringOf(d.pid);
      try {
        for (let i = 0; i < 30; i++) await client.write(cachedT, i * 17, pattern(i * 17, 17, 7));
        expect(trace.syncs()).toEqual([]);
        if (engine === "uring") expect(trace.uringOps().get("WRITE") ?? 0).toBeGreaterThan(0);
        trace.clear();
        const sent = now();
        await client.flush(cachedT);
        const acked = now();
        const syncs = trace.syncs();
        const enter = syncs.find((e) => e.phase === "enter");
        const exit = syncs.find((e) => e.phase === "exit");
        expect(enter?.datasync).toBe(true);
        expect(exit?.ret).toBe(0);
        expect(enter!.t).toBeGreaterThan(sent);
        expect(exit!.t).toBeLessThan(acked);
        if (engine === "uring") expect(trace.uringOps().get("FSYNC")).toBe(1);
        else expect(trace.uringOps().size).toBe(0);
      } finally {
        trace.close();
      }
    },
  );

  it.skipIf(engine !== "threads" || !hasStrace)(
    "strace: no O_DSYNC; pwrite64 per write; write-cache off: a lone write is followed by fdatasync; on: fdatasync on FLUSH only",
    async () => {
      await daemon!.stop();
      daemon = null;
      const out = path.join(dir, "strace.out");
      // -y: every fd printed with its path, so calls are matched by file, not by number
      // (an "<unfinished ...>" line still starts with the call and its fd).
      const d = await start([
        "strace",
        "-f",
        "-qq",
        "-y",
        "-o",
        out,
        "-e",
        "trace=openat,pwrite64,pwritev,pwritev2,fdatasync,fsync,io_uring_enter",
      ]);
      const esc = (x: string) => x.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      const openFlags = (img: string) => {
        const m = new RegExp(`openat\\(AT_FDCWD(?:<[^>]*>)?, "${esc(img)}", ([A-Z0-9_|]+)`).exec(
          fs.readFileSync(out, "utf8"),
        );
        if (!m) throw new Error(`no openat of ${img} in the strace output`);
        return m[1]!;
      };
      const calls = (text: string, call: string, img: string) =>
        text.split("\n").filter((l) => new RegExp(`\\b${call}\\(\\d+<${esc(img)}>`).test(l)).length;
      expect(openFlags(syncImg())).not.toContain("O_DSYNC");
      expect(openFlags(cachedImg())).not.toContain("O_DSYNC");
      for (let i = 0; i < 5; i++) {
        await client.write(syncT, 100 + i * 17, pattern(100 + i * 17, 17, 9));
        await client.write(cachedT, 100 + i * 17, pattern(100 + i * 17, 17, 9));
      }
      const before = fs.readFileSync(out, "utf8");
      // One pwrite64 per 17-sector request; write-cache off: one at a time, each is
      // alone, so each gets its own fdatasync (the thread pool has no RWF_DSYNC).
      expect(calls(before, "pwrite64", syncImg())).toBe(5);
      expect(calls(before, "pwrite64", cachedImg())).toBe(5);
      expect(calls(before, "fdatasync", syncImg())).toBe(5);
      for (const call of ["fdatasync", "fsync"]) expect(calls(before, call, cachedImg())).toBe(0);
      expect(calls(before, "fsync", syncImg())).toBe(0);
      expect(before).not.toContain("io_uring_enter");
      await client.flush(cachedT);
      const after = fs.readFileSync(out, "utf8");
      expect(calls(after, "fdatasync", cachedImg())).toBe(1);
      expect(calls(after, "fdatasync", syncImg())).toBe(5);
      expect(await d.stop()).toBe(0);
      daemon = null;
      await start();
    },
    40_000,
  );
});
