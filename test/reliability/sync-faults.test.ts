/**
 * A failing sync ("fsyncgate"), against the real daemon: a FUSE filesystem
 * answers fsync/fdatasync with EIO on demand.
 *
 * - write-cache off: writes covered by the failed sync get ATA ABRT, never
 *   success; from then on every write and FLUSH gets ABRT, even once the
 *   fault is gone (after a failed fsync the kernel may have dropped the dirty
 *   pages, so a later successful sync would prove nothing); reads still work.
 * - write-cache on: the same for FLUSH CACHE.
 * - Counted in the export's ATA errors, logged once per burst; `aoectl
 *   reload` reopens the export and it works again.
 *
 * Both through Node's fs (the thread pool) and through io_uring: neither may
 * hide the failed sync.
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AoeClient, AtaErrorReply, type TargetInfo } from "../../src/client/client.js";
import type { StatsResult, StatusResult } from "../../src/control/protocol.js";
import { probeUring } from "../../src/io/uring.js";
import { aoectl, aoectlJson } from "../helpers/aoectl.js";
import { AOED, type Daemon, startDaemon } from "../helpers/daemon.js";
import { FuseFaults, fuseUnavailable } from "../helpers/fuse-faults.js";
import { createVethPair, type VethPair } from "../helpers/net.js";
import { pattern } from "../helpers/patterns.js";
import { scrapeMetrics } from "../helpers/scrape.js";
import { waitFor } from "../helpers/wait.js";

const ENGINES = probeUring().ok ? (["threads", "io_uring"] as const) : (["threads"] as const);
const noFuse = fuseUnavailable();
const MiB = 1024 * 1024;

/** Stops what beforeAll started, as far as it got. */
async function tearDown(
  client?: AoeClient,
  daemon?: Daemon,
  fuse?: FuseFaults,
  net?: VethPair,
  dir?: string,
): Promise<void> {
  client?.close();
  await daemon?.stop();
  await fuse?.unmount();
  net?.destroy();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}

/** Settles a request: "ok", "abrt", or throws on anything else. */
const outcome = (p: Promise<unknown>): Promise<"ok" | "abrt"> =>
  p.then(
    () => "ok" as const,
    (e: unknown) => {
      if (e instanceof AtaErrorReply && e.status === 0x41 && e.error === 0x04)
        return "abrt" as const;
      throw e;
    },
  );

describe.skipIf(noFuse !== null).each(ENGINES)("failed syncs, io: %s", (engine) => {
  let net: VethPair;
  let dir: string;
  let sock: string;
  let config: string;
  let daemon: Daemon;
  let client: AoeClient;
  let fuse: FuseFaults;
  const targets = new Map<string, TargetInfo>();
  const t = (name: string) => targets.get(name)!;

  const write = (name: string, lba: number, gen: number) =>
    outcome(client.write(t(name), lba, pattern(lba, 2, gen)));
  const flush = (name: string) => outcome(client.flush(t(name)));
  const ataErrors = async (name: string) =>
    (await aoectlJson<StatsResult>(sock, "stats")).exports.find((e) => e.name === name)!.ataErrors;
  const errorLogs = (name: string) =>
    daemon.logs.filter((l) => l.export === name && l.msg === "backend I/O error: answering ABRT")
      .length;

  beforeAll(async () => {
    net = createVethPair({ netns: true, mtu: 1500 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-sync-faults-"));
    sock = path.join(dir, "aoed.sock");
    fuse = await FuseFaults.mount();
    const nowc = fuse.addFile("nowc.img", 4 * MiB);
    const wc = fuse.addFile("wc.img", 4 * MiB);
    config = path.join(dir, "aoed.yaml");
    fs.writeFileSync(
      config,
      `control-socket: ${sock}
defaults:
  io: ${engine}
exports:
  - name: nowc
    path: ${nowc}
    shelf: 6
    slot: 0
    interfaces: [${net.b}]
    write-cache: false
  - name: wc
    path: ${wc}
    shelf: 6
    slot: 1
    interfaces: [${net.b}]
    write-cache: true
`,
    );
    client = AoeClient.open(net.a, { timeoutMs: 1000, tries: 3 });
    daemon = await startDaemon(["--config", config], {
      netns: net.netns,
    });
    for (const info of await client.discover({ shelf: 6, timeoutMs: 300 }))
      targets.set(info.slot === 0 ? "nowc" : "wc", info);
    expect([...targets.keys()].sort()).toEqual(["nowc", "wc"]);
  });

  afterAll(() => tearDown(client, daemon, fuse, net, dir));

  it("the risk of write-cache on is stated per export: start-up log, aoectl status, aoed check", async () => {
    const warned = daemon.logs.filter(
      (l) => Number(l.level) === 40 && /page cache/.test(String(l.msg)),
    );
    expect(warned.map((l) => l.export)).toEqual(["wc"]);
    expect(String(warned[0]!.msg)).toMatch(/power cut or crash of this machine can lose them/);
    // Not execFileSync: aoed check stats the files, which this process's FUSE loop must answer.
    const check = await new Promise<string>((resolve, reject) =>
      execFile(
        "ip",
        ["netns", "exec", net.netns!, process.execPath, AOED, "check", "--config", config],
        (err, out) => (err ? reject(err) : resolve(out)),
      ),
    );
    const wcBlock = check.slice(check.indexOf("wc\n"));
    expect(check.match(/WARNING: write-cache is on/g)).toHaveLength(1);
    expect(wcBlock).toMatch(/WARNING: write-cache is on.*power cut/);
  });

  it("aoectl status says which export keeps acknowledged writes in the page cache", async () => {
    const out = (await aoectl(sock, ["status"])).stdout;
    expect(out).toMatch(/^wc \(e6\.1\): write-cache is on: .*page cache.*power cut/m);
    expect(out).not.toMatch(/^nowc \(e6\.0\): write-cache/m);
  });

  it("write-cache off: while fdatasync hangs no write is acknowledged and the other export serves; all are acknowledged once it answers", async () => {
    expect(await write("nowc", 0, 1)).toBe("ok");
    fuse.stallSyncs("nowc.img");
    // More writes than the export's share of the pool: each waits for a sync.
    const burst = Array.from({ length: 24 }, (_, i) => write("nowc", 400 + i * 2, 5));
    const answered: string[] = [];
    for (const p of burst) void p.then((o) => answered.push(o));
    await waitFor("the first sync to reach the filesystem", () => fuse.heldSyncs("nowc.img") > 0);
    // The write-cache export on the same filesystem is not held up.
    expect(await write("wc", 40, 5)).toBe("ok");
    expect(await flush("wc")).toBe("ok");
    await waitFor("every write of the burst to be in the daemon", async () => {
      const s = await aoectlJson<StatusResult>(sock, "status");
      return (s.exports.find((e) => e.name === "nowc")?.inFlight ?? 0) >= 24;
    });
    expect(answered).toEqual([]);
    fuse.heal("nowc.img");
    expect(await Promise.all(burst)).toEqual(Array(24).fill("ok"));
    for (let i = 0; i < 24; i++) {
      const lba = 400 + i * 2;
      const at = lba * 512;
      expect(
        fuse
          .data("nowc.img")
          .subarray(at, at + 1024)
          .equals(pattern(lba, 2, 5)),
      ).toBe(true);
    }
  });

  it("write-cache off: writes covered by a failed fdatasync get ABRT, and so does everything after it until a reload", async () => {
    expect(await write("nowc", 0, 1)).toBe("ok");
    const syncsBefore = fuse.syncs("nowc.img").total;
    expect(syncsBefore).toBeGreaterThan(0); // a write is acknowledged only after an fdatasync
    fuse.fail("nowc.img", { sync: true });
    // Eight writes at once: every one needs a sync, and every sync fails.
    const burst = await Promise.all(
      Array.from({ length: 8 }, (_, i) => write("nowc", 100 + i * 2, 2)),
    );
    expect(burst).toEqual(Array(8).fill("abrt"));
    expect(fuse.syncs("nowc.img").failed).toBeGreaterThan(0);
    // The fault is gone, but the pages the failed sync covered may be too: still ABRT.
    fuse.heal("nowc.img");
    const syncsAtHeal = fuse.syncs("nowc.img").total;
    expect(await write("nowc", 200, 3)).toBe("abrt");
    expect(await flush("nowc")).toBe("abrt");
    // No sync was even tried: a success now would prove nothing.
    expect(fuse.syncs("nowc.img").total).toBe(syncsAtHeal);
    // Reads still work, and what was acknowledged before the fault is there.
    expect((await client.read(t("nowc"), 0, 2)).equals(pattern(0, 2, 1))).toBe(true);
    // Counted per request, logged once for the burst.
    expect(await ataErrors("nowc")).toBe(10);
    expect(errorLogs("nowc")).toBe(1);
    const status = await aoectl(sock, ["status"]);
    expect(status.stdout).toMatch(/nowc.*(failed|fdatasync)/is);
    // A reload reopens the export.
    const r = await aoectl(sock, ["reload"]);
    expect(r.code, r.stderr).toBe(0);
    await waitFor(
      "the reopened export to take writes",
      async () => (await write("nowc", 300, 4)) === "ok",
    );
    expect(await flush("nowc")).toBe("ok");
    expect((await client.read(t("nowc"), 300, 2)).equals(pattern(300, 2, 4))).toBe(true);
  });

  it("write-cache on: a failed FLUSH CACHE fails every later FLUSH until a reload", async () => {
    expect(await write("wc", 0, 1)).toBe("ok");
    expect(await flush("wc")).toBe("ok");
    fuse.fail("wc.img", { sync: true });
    expect(await write("wc", 10, 2)).toBe("ok"); // into the page cache, as write-cache on promises
    expect(await flush("wc")).toBe("abrt");
    fuse.heal("wc.img");
    expect(await flush("wc")).toBe("abrt");
    expect(await write("wc", 20, 2)).toBe("abrt");
    expect(await ataErrors("wc")).toBe(3);
    const r = await aoectl(sock, ["reload"]);
    expect(r.code, r.stderr).toBe(0);
    await waitFor("the reopened export to flush", async () => (await flush("wc")) === "ok");
    expect(await write("wc", 30, 3)).toBe("ok");
    expect(await flush("wc")).toBe("ok");
  });
});

// With worker threads each thread syncs the file on its own, and a write-back
// error may reach only the thread that syncs first: one failure must fail
// every thread's writes.
describe.skipIf(noFuse !== null)("failed syncs with workers: 2", () => {
  let net: VethPair;
  let dir: string;
  let sock: string;
  let daemon: Daemon;
  let client: AoeClient;
  let fuse: FuseFaults;
  let target: TargetInfo;

  const write = (lba: number, gen: number) =>
    outcome(client.write(target, lba, pattern(lba, 2, gen)));

  beforeAll(async () => {
    net = createVethPair({ netns: true, mtu: 1500, prefix: "sfw" });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-sync-faults-workers-"));
    sock = path.join(dir, "aoed.sock");
    fuse = await FuseFaults.mount();
    const file = fuse.addFile("w.img", 4 * MiB);
    const config = path.join(dir, "aoed.yaml");
    fs.writeFileSync(
      config,
      `control-socket: ${sock}
workers: 2
exports:
  - name: w
    path: ${file}
    shelf: 6
    slot: 2
    interfaces: [${net.b}]
    write-cache: false
    io: threads
`,
    );
    client = AoeClient.open(net.a, { timeoutMs: 1000, tries: 3 });
    daemon = await startDaemon(["--config", config], { netns: net.netns });
    const found = await client.discover({ shelf: 6, slot: 2, timeoutMs: 300 });
    expect(found).toHaveLength(1);
    target = found[0]!;
  });

  afterAll(() => tearDown(client, daemon, fuse, net, dir));

  it("one thread's failed fdatasync fails the writes every thread gets after it", async () => {
    // Writes spread over both workers by tag; each is acknowledged after a sync.
    for (let i = 0; i < 16; i++) expect(await write(i * 2, 1)).toBe("ok");
    // The premise: consecutive tags reach both workers (the client numbers its
    // requests one after another, as it will below).
    const frames = (m: Map<string, number>, w: number) =>
      m.get(`aoed_worker_receive_frames_total{worker="${w}"}`) ?? 0;
    const m = await waitFor("the workers' frame counts in the metrics", async () => {
      const m = await scrapeMetrics(net.netns!);
      return frames(m, 1) + frames(m, 2) >= 16 ? m : null;
    });
    expect(frames(m, 1)).toBeGreaterThan(0);
    expect(frames(m, 2)).toBeGreaterThan(0);
    fuse.fail("w.img", { sync: true });
    // One write, so one thread syncs and hears of the failure.
    expect(await write(100, 2)).toBe("abrt");
    expect(fuse.syncs("w.img").failed).toBe(1);
    fuse.heal("w.img");
    const syncsAtHeal = fuse.syncs("w.img").total;
    // Writes with new tags reach the other worker too: none may be acknowledged,
    // and no thread even tries a sync whose success would prove nothing.
    const after = await Promise.all(Array.from({ length: 16 }, (_, i) => write(200 + i * 2, 3)));
    expect(after).toEqual(Array(16).fill("abrt"));
    expect(fuse.syncs("w.img").total).toBe(syncsAtHeal);
    expect(await outcome(client.flush(target))).toBe("abrt"); // the main thread's FLUSH too
    const status = await aoectl(sock, ["status"]);
    expect(status.stdout).toMatch(/w \(e6\.2\): FAILED: fdatasync/);
    // A reload reopens the export in every thread.
    const r = await aoectl(sock, ["reload"]);
    expect(r.code, r.stderr).toBe(0);
    await waitFor("the reopened export to take writes", async () => (await write(300, 4)) === "ok");
    const again = await Promise.all(Array.from({ length: 16 }, (_, i) => write(400 + i * 2, 5)));
    expect(again).toEqual(Array(16).fill("ok"));
  });
});
