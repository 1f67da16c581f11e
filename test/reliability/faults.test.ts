/**
 * Backend faults against the real daemon, for each I/O engine: a full
 * filesystem (ENOSPC), a block device that fails writes with EIO (a loop
 * device over a file on a full tmpfs), a backing file truncated or deleted
 * while exported, and reads and writes failing with EIO (a FUSE filesystem
 * this test serves, see test/helpers/fuse-faults.ts). device-mapper (dm-error,
 * dm-flakey) is not in this kernel; FUSE and loop stand in for it.
 *
 * Expected of every fault: the failing requests are answered ATA ABRT
 * (status 0x41, error 0x04), counted (aoectl stats, metrics), logged once per
 * burst plus one summary; other exports of the same daemon keep serving
 * verified I/O throughout; the export works again when the fault is gone,
 * without a restart.
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AoeClient, AtaErrorReply, type TargetInfo } from "../../src/client/client.js";
import type { StatsResult } from "../../src/control/protocol.js";
import { probeUring } from "../../src/io/uring.js";
import { AOED, type Daemon, startDaemon } from "../helpers/daemon.js";
import { FuseFaults, fuseUnavailable } from "../helpers/fuse-faults.js";
import { fdFlags, hasIoUring } from "../helpers/ktrace.js";
import { createVethPair, type VethPair } from "../helpers/net.js";
import { pattern, SECTOR } from "../helpers/patterns.js";
import { scrapeMetrics } from "../helpers/scrape.js";
import {
  attachLoop,
  type Loop,
  loopUnavailable,
  type Mounted,
  mountTmpfs,
} from "../helpers/scratch-mounts.js";
import { waitFor } from "../helpers/wait.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const AOECTL = path.join(path.dirname(AOED), "aoectl.js");
// Each engine explicitly: the regular images sit on a tmpfs this test mounts,
// so "mmap" maps them wherever TMPDIR is (on a disk it would fall back to sync).
const ENGINES = probeUring().ok
  ? (["threads", "io_uring", "mmap", "sync"] as const)
  : (["threads", "mmap", "sync"] as const);
const noLoop = loopUnavailable();
const noFuse = fuseUnavailable();

const EXPORTS = {
  steady: { shelf: 9, slot: 0 },
  full: { shelf: 9, slot: 1 },
  shrink: { shelf: 9, slot: 2 },
  gone: { shelf: 9, slot: 3 },
  flaky: { shelf: 9, slot: 4 },
  bdev: { shelf: 9, slot: 5 },
  bdevc: { shelf: 9, slot: 6 },
} as const;
type Name = keyof typeof EXPORTS;

/** Verified write-then-read I/O on one export until stopped; no error is expected. */
class SteadyIo {
  ops = 0;
  readonly errors: string[] = [];
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(client: AoeClient, t: TargetInfo, from: number, sectors: number) {
    this.done = (async () => {
      for (let gen = 1; !this.stopped; gen++) {
        const lba = from + Math.floor(Math.random() * (sectors - t.maxSectors));
        const data = pattern(lba, t.maxSectors, gen);
        try {
          await client.write(t, lba, data);
          const back = await client.read(t, lba, t.maxSectors);
          if (!back.equals(data)) this.errors.push(`lba ${lba} gen ${gen}: read back differs`);
          this.ops++;
        } catch (e) {
          this.errors.push(`lba ${lba} gen ${gen}: ${(e as Error).message}`);
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

describe.each(ENGINES)("backend faults, io: %s", (engine) => {
  let net: VethPair;
  let dir: string;
  let sock: string;
  let daemon: Daemon;
  let client: AoeClient;
  let fuse: FuseFaults | null = null;
  let small: Mounted; // tmpfs for ENOSPC on a regular file
  let images: Mounted; // tmpfs for the other regular images
  let loopFs: Mounted | null = null; // tmpfs under the loop devices
  const loops: Loop[] = [];
  const targets = new Map<Name, TargetInfo>();
  const abrts = new Map<Name, number>();
  let steady: SteadyIo[] = [];
  const t = (name: Name) => targets.get(name)!;
  const file = (name: string) => path.join(dir, name);
  const image = (name: string) => path.join(images.dir, name);

  /** The request must fail with ATA ABRT; counted per export. */
  const expectAbrt = async (name: Name, p: Promise<unknown>) => {
    const err = await p.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err, `${name}: expected ATA ABRT`).toBeInstanceOf(AtaErrorReply);
    expect((err as AtaErrorReply).status).toBe(0x41);
    expect((err as AtaErrorReply).error).toBe(0x04);
    abrts.set(name, (abrts.get(name) ?? 0) + 1);
  };
  const write = (name: Name, lba: number, gen: number, count = t(name).maxSectors) =>
    client.write(t(name), lba, pattern(lba, count, gen));
  const readBack = async (name: Name, lba: number, gen: number, count = t(name).maxSectors) =>
    expect((await client.read(t(name), lba, count)).equals(pattern(lba, count, gen))).toBe(true);

  const aoectl = (args: string[]): Promise<string> =>
    new Promise((resolve, reject) =>
      execFile(
        process.execPath,
        [AOECTL, ...args, "--socket", sock],
        { timeout: 20_000 },
        (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout)),
      ),
    );
  const scrape = () => scrapeMetrics(net.netns!);
  /** While a fault is active: the steady export completes more verified I/O. */
  const steadyOps = () => steady.reduce((a, s) => a + s.ops, 0);
  const steadyAdvances = async () => {
    const from = steadyOps();
    await waitFor("verified I/O on the steady export during the fault", () => {
      const errors = steady.flatMap((s) => s.errors);
      if (errors.length > 0) throw new Error(`steady export: ${errors.join("; ")}`);
      return steadyOps() >= from + 4;
    });
  };
  const errorLines = (name: Name, msg: string) =>
    daemon.logs.filter((l) => l.export === name && l.msg === msg);

  beforeAll(async () => {
    net = createVethPair({ netns: true, mtu: 9000 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-faults-"));
    sock = file("aoed.sock");
    const sparse = (p: string, size: number) => {
      fs.writeFileSync(p, "");
      fs.truncateSync(p, size);
      return p;
    };
    // 2 MiB of tmpfs: 512 KiB of ballast (freed later) and a 16 MiB sparse image.
    small = mountTmpfs(file("small"), 2 * MiB);
    images = mountTmpfs(file("images"), 32 * MiB);
    fs.writeFileSync(path.join(small.dir, "ballast"), Buffer.alloc(512 * KiB, 1));
    const paths: Record<Name, string> = {
      steady: sparse(image("steady.img"), 8 * MiB),
      full: sparse(path.join(small.dir, "full.img"), 16 * MiB),
      shrink: sparse(image("shrink.img"), 8 * MiB),
      gone: sparse(image("gone.img"), 4 * MiB),
      flaky: "",
      bdev: "",
      bdevc: "",
    };
    if (noFuse === null) {
      fuse = await FuseFaults.mount();
      paths.flaky = fuse.addFile("flaky.img", 4 * MiB);
    }
    if (noLoop === null) {
      // Two 4 MiB loop devices over sparse files on a 1 MiB tmpfs (256 KiB of it ballast).
      loopFs = mountTmpfs(file("loopfs"), 1 * MiB);
      fs.writeFileSync(path.join(loopFs.dir, "ballast"), Buffer.alloc(256 * KiB, 1));
      for (const name of ["bdev", "bdevc"] as const) {
        const loop = attachLoop(sparse(path.join(loopFs.dir, `${name}.backing`), 4 * MiB));
        loops.push(loop);
        paths[name] = loop.dev;
      }
    }
    const exportYaml = (name: Name, extra = "") =>
      paths[name] === ""
        ? ""
        : `  - name: ${name}
    path: ${paths[name]}
    shelf: ${EXPORTS[name].shelf}
    slot: ${EXPORTS[name].slot}
    interfaces: [${net.b}]
    write-cache: ${name === "bdevc"}
${extra}`;
    const config = file("aoed.yaml");
    fs.writeFileSync(
      config,
      `metrics:
  listen: 127.0.0.1:9288
control-socket: ${sock}
defaults:
  io: ${engine}
exports:
${(Object.keys(EXPORTS) as Name[]).map((n) => exportYaml(n)).join("")}`,
    );
    client = AoeClient.open(net.a, { timeoutMs: 500, tries: 4 });
    daemon = await startDaemon(["--config", config], {
      netns: net.netns,
    });
    expect(hasIoUring(daemon.pid)).toBe(engine === "io_uring");
    const ready = daemon.logs.find((l) => /aoed ready/.test(String(l.msg)))!;
    const io = Object.fromEntries(
      (ready.exports as { name: string; io: string }[]).map((e) => [e.name, e.io]),
    );
    const expectedIo = engine;
    for (const name of ["steady", "full", "shrink", "gone"])
      expect(io[name], name).toBe(expectedIo);
    for (const info of await client.discover({ shelf: 9, timeoutMs: 300 })) {
      const name = (Object.keys(EXPORTS) as Name[]).find((n) => EXPORTS[n].slot === info.slot)!;
      targets.set(name, info);
    }
    expect(targets.size).toBe(7 - (noLoop === null ? 0 : 2) - (noFuse === null ? 0 : 1));
    expect(t("steady").maxSectors).toBe(17);
    // Verified I/O on the steady export, two disjoint halves, for the whole suite.
    steady = [
      new SteadyIo(client, t("steady"), 0, 8192),
      new SteadyIo(client, t("steady"), 8192, 8192),
    ];
  });

  afterAll(async () => {
    await Promise.all(steady.map((s) => s.stop()));
    client?.close();
    await daemon?.stop();
    for (const l of loops) l.release();
    await fuse?.unmount();
    loopFs?.release();
    small?.release();
    images?.release();
    net?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("disk full (ENOSPC): writes needing space get ABRT, reads and overwrites still work, and writes succeed again once space is freed", async () => {
    // Fill the tmpfs through the export, 17 sectors at a time, until a write is refused.
    const step = t("full").maxSectors;
    let lba = 0;
    let err: unknown = null;
    for (; lba < (4 * MiB) / SECTOR; lba += step) {
      err = await write("full", lba, 1).then(
        () => null,
        (e: unknown) => e,
      );
      if (err !== null) break;
    }
    expect(err).toBeInstanceOf(AtaErrorReply);
    expect((err as AtaErrorReply).error).toBe(0x04);
    abrts.set("full", 1);
    const firstFailed = lba;
    expect(firstFailed * SECTOR).toBeGreaterThan(1 * MiB); // about 1.5 MiB fit
    // Still full: the same write fails again.
    await expectAbrt("full", write("full", firstFailed, 1));
    await steadyAdvances();
    // Reads, and overwrites of space already allocated, still work.
    await readBack("full", 0, 1);
    await write("full", 0, 2);
    await readBack("full", 0, 2);
    // Free space; no restart.
    fs.unlinkSync(path.join(small.dir, "ballast"));
    await write("full", firstFailed, 3);
    await readBack("full", firstFailed, 3);
    await readBack("full", step, 1); // everything acknowledged before the fault is intact
    await readBack("full", firstFailed - step, 1);
  });

  it.skipIf(noLoop !== null)(
    "block device I/O error (loop device on a full tmpfs): durable writes get ABRT; with write-cache on, FLUSH CACHE does; both recover once reopened",
    async () => {
      // bdev (write-cache off): fill the loop device's backing tmpfs until EIO.
      const step = t("bdev").maxSectors;
      let lba = 0;
      let failedAt = -1;
      for (; lba < (4 * MiB) / SECTOR; lba += step) {
        const e = await write("bdev", lba, 1).then(
          () => null,
          (x: unknown) => x,
        );
        if (e !== null) {
          expect(e).toBeInstanceOf(AtaErrorReply);
          expect((e as AtaErrorReply).error).toBe(0x04);
          abrts.set("bdev", 1);
          failedAt = lba;
          break;
        }
      }
      expect(failedAt).toBeGreaterThan(0);
      await expectAbrt("bdev", write("bdev", failedAt + 64, 1));
      // bdevc (write-cache on): writes go to the page cache and are acknowledged;
      // the error shows when FLUSH CACHE EXT makes them durable.
      for (let i = 0; i < 4; i++) await write("bdevc", 1000 + i * step, 1);
      await expectAbrt("bdevc", client.flush(t("bdevc")));
      // After a failed sync the dirty pages may be gone: the export fails writes
      // and flushes until it is reopened (fsyncgate).
      await expectAbrt("bdevc", write("bdevc", 1100, 1));
      await expectAbrt("bdevc", client.flush(t("bdevc")));
      await steadyAdvances();
      // Free space and reopen what a failed sync failed: both work again without a restart.
      fs.unlinkSync(path.join(loopFs!.dir, "ballast"));
      await aoectl(["reload"]);
      await write("bdev", failedAt, 2);
      await readBack("bdev", failedAt, 2);
      await readBack("bdev", 0, 1);
      await write("bdevc", 2000, 3);
      await client.flush(t("bdevc"));
      await readBack("bdevc", 2000, 3);
    },
  );

  it("backing file truncated while exported: reads past the new end get ABRT, the rest works, and reads succeed once it is grown back", async () => {
    const high = 12000; // ~5.9 MiB
    await write("shrink", 0, 1);
    await write("shrink", high, 1);
    fs.truncateSync(image("shrink.img"), 4 * MiB);
    await readBack("shrink", 0, 1);
    await expectAbrt("shrink", client.read(t("shrink"), high, t("shrink").maxSectors));
    // A read straddling the new end fails whole.
    await expectAbrt("shrink", client.read(t("shrink"), (4 * MiB) / SECTOR - 2, 4));
    await steadyAdvances();
    // Grown back (sparse): reads succeed again; what was cut off is gone (zeros).
    fs.truncateSync(image("shrink.img"), 8 * MiB);
    const back = await client.read(t("shrink"), high, t("shrink").maxSectors);
    expect(back.every((b) => b === 0)).toBe(true);
    await readBack("shrink", 0, 1);
    fs.truncateSync(image("shrink.img"), 4 * MiB);
    if (engine === "mmap") {
      // A store through the mapping cannot extend the file: the write fails like a read there.
      await expectAbrt("shrink", write("shrink", high, 2));
      expect(fs.statSync(image("shrink.img")).size).toBe(4 * MiB);
    } else {
      // A write past a shrunken end is a plain file write: it succeeds and extends the file again.
      await write("shrink", high, 2);
      expect(fs.statSync(image("shrink.img")).size).toBe((high + t("shrink").maxSectors) * SECTOR);
      await readBack("shrink", high, 2);
    }
    fs.truncateSync(image("shrink.img"), 8 * MiB);
  });

  it("backing file deleted while exported: the export keeps working on the open file", async () => {
    await write("gone", 100, 1);
    fs.unlinkSync(image("gone.img"));
    // The daemon still holds the (deleted) inode open.
    expect(fdFlags(daemon.pid, image("gone.img")).length).toBeGreaterThan(0);
    await readBack("gone", 100, 1);
    await write("gone", 200, 2);
    await readBack("gone", 200, 2);
    await client.flush(t("gone"));
    expect(fs.existsSync(image("gone.img"))).toBe(false);
    const status = JSON.parse(await aoectl(["status", "--json"])) as {
      exports: { name: string }[];
    };
    expect(status.exports.map((e) => e.name)).toContain("gone");
  });

  it.skipIf(noFuse !== null)(
    "EIO from the filesystem (FUSE): failing ranges get ABRT, others work, and the export recovers when the fault clears",
    async () => {
      const ffs = fuse!;
      const n = t("flaky").maxSectors;
      await write("flaky", 0, 1);
      await write("flaky", 100, 1);
      ffs.fail("flaky.img", { read: true, from: 100 * SECTOR, to: (100 + n) * SECTOR });
      await expectAbrt("flaky", client.read(t("flaky"), 100, n));
      await expectAbrt("flaky", client.read(t("flaky"), 110, 1)); // any overlap
      await readBack("flaky", 0, 1);
      await write("flaky", 300, 1); // writes unaffected
      ffs.fail("flaky.img", { write: true, from: 300 * SECTOR, to: (300 + n) * SECTOR });
      await expectAbrt("flaky", write("flaky", 300, 2));
      await write("flaky", 400, 2);
      await readBack("flaky", 400, 2);
      await steadyAdvances();
      ffs.heal("flaky.img");
      await readBack("flaky", 100, 1); // never changed
      await readBack("flaky", 300, 1); // the refused write did not land
      await write("flaky", 300, 3);
      await readBack("flaky", 300, 3);
      // What the filesystem holds is what was acknowledged.
      const held = ffs.data("flaky.img");
      expect(held.subarray(300 * SECTOR, (300 + n) * SECTOR).equals(pattern(300, n, 3))).toBe(true);
      expect(ffs.failures("flaky.img")).toBe(abrts.get("flaky"));
    },
  );

  it("each burst of errors is logged once with a summary, counted in stats and metrics; other exports never saw an error", async () => {
    const failing = [...abrts.keys()];
    const expected: Name[] = ["full", "shrink"];
    if (noLoop === null) expected.push("bdev", "bdevc");
    if (noFuse === null) expected.push("flaky");
    expect(failing.sort()).toEqual(expected.sort());
    // Counted as they happen.
    const stats = JSON.parse(await aoectl(["stats", "--json"])) as StatsResult;
    const metrics = await scrape();
    for (const name of Object.keys(EXPORTS) as Name[]) {
      if (!targets.has(name)) continue;
      const expected = abrts.get(name) ?? 0;
      const s = stats.exports.find((e) => e.name === name)!;
      expect(s.ataErrors, `${name} ata errors`).toBe(expected);
      expect(s.aoeErrors, `${name} AoE errors`).toBe(0);
      expect(metrics.get(`aoed_export_ata_errors_total{export="${name}"}`), `${name} metric`).toBe(
        expected,
      );
    }
    // One "backend I/O error" line per export so far (one burst each).
    for (const name of failing) {
      expect(errorLines(name, "backend I/O error: answering ABRT"), name).toHaveLength(1);
    }
    // The steady export did verified I/O the whole time without one error.
    await waitFor("50 verified I/Os on the steady export", () => steadyOps() >= 50);
    await Promise.all(steady.map((s) => s.stop()));
    expect(steady.flatMap((s) => s.errors)).toEqual([]);
    // A burst ends 10 s after it began (test/engine/target.test.ts) or when the
    // daemon stops: one summary per burst with its count.
    expect(await daemon.stop()).toBe(0);
    for (const name of failing) {
      const first = errorLines(name, "backend I/O error: answering ABRT")[0]!;
      console.log(
        `faults io: ${engine}: ${name}: ${abrts.get(name)} ABRT, first: ${first.op} ${first.err}`,
      );
      const summary = errorLines(name, "backend I/O errors");
      expect(summary, name).toHaveLength(1);
      expect(summary[0]!.errors, name).toBe(abrts.get(name));
      expect(errorLines(name, "backend I/O error: answering ABRT"), name).toHaveLength(1);
    }
    for (const name of ["steady", "gone"] as const)
      expect(daemon.logs.filter((l) => l.export === name && Number(l.level) >= 50)).toEqual([]);
  });
});
