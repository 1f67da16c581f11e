/**
 * A backend that hangs stays in its own export (docs/architecture.md, "A stuck
 * backend stays in its export"), for every I/O engine: two exports in one
 * daemon, one on a tmpfs file, one on a FUSE file this test serves and stalls
 * (test/helpers/fuse-faults.ts), as a dead NFS server or a hung FUSE daemon
 * would. Expected while it hangs: the stuck export holds exactly its queue
 * length of requests and drops (and counts) the rest; the other export keeps
 * serving verified I/O (its rate with and without the stall, measured in
 * alternating phases, is printed: a measurement, not a verdict); discovery and the control socket answer; status, metrics and the log
 * say it is stuck and when it recovers; it serves again once the filesystem
 * answers; a reload and SIGTERM finish.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AoeClient, type TargetInfo } from "../../src/client/client.js";
import type {
  ExportCounters,
  ExportStatus,
  StatsResult,
  StatusResult,
} from "../../src/control/protocol.js";
import { probeUring } from "../../src/io/uring.js";
import { aoectl, aoectlJson } from "../helpers/aoectl.js";
import { type Daemon, startDaemon } from "../helpers/daemon.js";
import { FuseFaults, fuseUnavailable } from "../helpers/fuse-faults.js";
import { createVethPair, type VethPair } from "../helpers/net.js";
import { pattern } from "../helpers/patterns.js";
import { scrapeMetrics } from "../helpers/scrape.js";
import { type Mounted, mountTmpfs } from "../helpers/scratch-mounts.js";
import { discoverUntil, waitFor } from "../helpers/wait.js";

const MiB = 1024 * 1024;
const ENGINES = probeUring().ok
  ? (["threads", "io_uring", "mmap", "sync"] as const)
  : (["threads", "mmap", "sync"] as const);
const noFuse = fuseUnavailable();
/** The stuck export's queue length. */
const Q = 16;
const SHELF = 7;
const STUCK_FILE = "stuck.img";
const HEALTHY_SECTORS = (16 * MiB) / 512;
/** Verified write-and-read-back round trips per measuring phase, and phases of each kind. */
const OPS = 100;
const ROUNDS = 5;
const STUCK_LOG = /^backend stuck/;
const RECOVERED_LOG = /^backend recovered/;

describe.skipIf(noFuse !== null).each(ENGINES)("a stuck backend, io: %s", (engine) => {
  let net: VethPair;
  let dir: string;
  let mem: Mounted;
  let fuse: FuseFaults;
  let daemon: Daemon;
  let client: AoeClient;
  /** Sends the requests the stuck export holds: no retransmits, no timeout while the test runs. */
  let patient: AoeClient;
  let sock: string;
  let config: string;
  let healthy: TargetInfo;
  let stuck: TargetInfo;
  let gen = 1;

  const exportYaml = (model: string) => `metrics:
  listen: 127.0.0.1:9288
control-socket: ${sock}
defaults:
  io: ${engine}
exports:
  - name: healthy
    path: ${path.join(mem.dir, "healthy.img")}
    shelf: ${SHELF}
    slot: 0
    interfaces: [${net.b}]
  - name: stuck
    path: ${path.join(fuse.mountpoint, STUCK_FILE)}
    shelf: ${SHELF}
    slot: 1
    queue-length: ${Q}
    model: ${model}
    interfaces: [${net.b}]
`;
  const status = async (name: string): Promise<ExportStatus> =>
    (await aoectlJson<StatusResult>(sock, "status")).exports.find((e) => e.name === name)!;
  const counters = async (name: string): Promise<ExportCounters> =>
    (await aoectlJson<StatsResult>(sock, "stats")).exports.find((e) => e.name === name)!;
  const logs = (name: string, re: RegExp) =>
    daemon.logs.filter((l) => l.export === name && re.test(String(l.msg)));
  const both = (found: TargetInfo[]) => found.length >= 2;

  /** `n` verified round trips (write a pattern, read it back) on the healthy export; ms each. */
  const verifiedOps = async (n: number): Promise<number[]> => {
    const times: number[] = [];
    const count = healthy.maxSectors;
    for (let i = 0; i < n; i++) {
      const started = performance.now();
      const lba = Math.floor(Math.random() * (HEALTHY_SECTORS - count));
      const data = pattern(lba, count, gen++);
      await client.write(healthy, lba, data);
      const back = await client.read(healthy, lba, count);
      if (!back.equals(data)) throw new Error(`healthy export: lba ${lba} read back differs`);
      times.push(performance.now() - started);
    }
    return times;
  };
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

  /**
   * Stalls the FUSE file and sends reads to the stuck export until one is
   * dropped: then it holds its whole queue. Every read it received is either
   * held or counted as dropped, since nothing completes while stalled.
   */
  const fill = async () => {
    const before = await counters("stuck");
    fuse.stall(STUCK_FILE);
    const replies: Promise<Buffer | null>[] = [];
    const send = () => {
      const lba = replies.length % Q;
      replies.push(
        patient.read(stuck, lba, 1).then(
          (b) =>
            b.equals(pattern(lba, 1, 1)) ? b : Promise.reject(new Error(`lba ${lba} differs`)),
          (e: Error) => (e.message === "client closed" ? null : Promise.reject(e)),
        ),
      );
    };
    for (let i = 0; i < Q + 4; i++) send();
    const now = await waitFor(
      "the stuck export to drop a request",
      async () => {
        const c = await counters("stuck");
        if (c.queueDrops > before.queueDrops) return c;
        send();
        return null;
      },
      { intervalMs: 20 },
    );
    const received = now.requests.read - before.requests.read;
    expect(now.inFlight, "requests held by the stuck export").toBe(Q);
    expect(received, "every read received is held or counted as dropped").toBe(
      now.inFlight + now.queueDrops - before.queueDrops,
    );
    // Of the Q it holds, the filesystem sees its share of the I/O pool at most.
    const held = await waitFor("the filesystem to hold the stuck reads", () =>
      fuse.held(STUCK_FILE),
    );
    expect(held).toBeLessThanOrEqual(Q);
    let answered = 0;
    for (const r of replies) void r.then((b) => b !== null && answered++);
    return {
      dropped: now.queueDrops - before.queueDrops,
      /** Unstalls the file: every held request is answered with the data on the file. */
      release: async () => {
        fuse.heal(STUCK_FILE);
        await waitFor("every held request to be answered", () => answered === Q);
        await waitFor(
          "the stuck export to be idle",
          async () => (await status("stuck")).inFlight === 0,
        );
      },
    };
  };

  beforeAll(async () => {
    net = createVethPair({ netns: true, mtu: 9000 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-stuck-"));
    sock = path.join(dir, "aoed.sock");
    config = path.join(dir, "aoed.yaml");
    mem = mountTmpfs(path.join(dir, "mem"), 32 * MiB);
    fs.writeFileSync(path.join(mem.dir, "healthy.img"), "");
    fs.truncateSync(path.join(mem.dir, "healthy.img"), HEALTHY_SECTORS * 512);
    fuse = await FuseFaults.mount();
    fuse.addFile(STUCK_FILE, 4 * MiB);
    fs.writeFileSync(config, exportYaml("stuck-1"));
    daemon = await startDaemon(["--config", config], {
      netns: net.netns,
    });
    client = AoeClient.open(net.a, { timeoutMs: 500, tries: 4 });
    patient = AoeClient.open(net.a, { timeoutMs: 600_000, tries: 1 });
    const found = await client.discover({ shelf: SHELF, timeoutMs: 300 });
    healthy = found.find((t) => t.slot === 0)!;
    stuck = found.find((t) => t.slot === 1)!;
    expect(healthy.maxSectors).toBe(17);
    expect(stuck.bufferCount).toBe(Q);
    for (let lba = 0; lba < Q; lba++) await client.write(stuck, lba, pattern(lba, 1, 1));
  });

  afterAll(async () => {
    patient?.close();
    client?.close();
    await daemon?.stop();
    await fuse?.unmount();
    mem?.release();
    net?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("the FUSE export never runs on the event loop; io_uring hands it to the kernel's workers", () => {
    const ready = daemon.logs.find((l) => /aoed ready/.test(String(l.msg)))!;
    const io = Object.fromEntries(
      (ready.exports as { name: string; io: string; ioNote?: string }[]).map((e) => [e.name, e]),
    );
    const expected = { threads: "threads", io_uring: "io_uring", mmap: "threads", sync: "threads" };
    expect(io.stuck!.io).toBe(expected[engine]);
    if (engine === "mmap" || engine === "sync") expect(io.stuck!.ioNote).toMatch(/fuse/);
    expect(io.healthy!.io).toBe(engine);
  });

  it("the other export keeps serving verified I/O while the backend hangs (alternating phases)", async () => {
    await verifiedOps(20); // warm-up
    const solo: number[] = [];
    const hung: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      solo.push(...(await verifiedOps(OPS)));
      const f = await fill();
      // A pool the stuck export exhausted would stop these round trips altogether.
      hung.push(...(await verifiedOps(OPS)));
      expect((await counters("stuck")).inFlight, "still held after the phase").toBe(Q);
      await f.release();
    }
    expect(hung).toHaveLength(ROUNDS * OPS);
    // How fast is a measurement, not a verdict (it moves with the machine's load):
    // printed for the record, the >= 0.8x goal of issue #15 is read from here.
    console.log(
      `stuck-backend ${engine}: median round trip solo ${median(solo).toFixed(2)} ms, while stuck ${median(hung).toFixed(2)} ms, ratio ${(median(solo) / median(hung)).toFixed(2)}`,
    );
  }, 180_000);

  it("while stuck: discovery and the control socket answer; status, the gauges and one log line say so; it resumes when the filesystem answers", async () => {
    // An earlier phase that outlived the stuck threshold on a loaded machine logged too: count from here.
    const stuckLogged = logs("stuck", STUCK_LOG).length;
    const recoveryLogged = logs("stuck", RECOVERED_LOG).length;
    const f = await fill();
    expect(f.dropped).toBeGreaterThan(0);
    expect((await discoverUntil(client, { shelf: SHELF }, both)).map((t) => t.slot)).toEqual([
      0, 1,
    ]);

    const s = await waitFor(
      "status to show the export stuck",
      async () => {
        const e = await status("stuck");
        return e.stuck && e;
      },
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    expect(s.oldestRequestSeconds).toBeGreaterThanOrEqual(3);
    expect(s.inFlight).toBe(Q);
    expect((await status("healthy")).stuck).toBe(false);
    const text = await aoectl(sock, ["status"]);
    expect(text.stdout).toMatch(
      new RegExp(
        `^stuck \\(e${SHELF}\\.1\\): backend stuck: oldest request \\d+m \\d+s old, ${Q} of ${Q} queue slots held`,
        "m",
      ),
    );
    const m = await scrapeMetrics(net.netns!);
    expect(m.get(`aoed_export_backend_stuck{export="stuck"}`)).toBe(1);
    expect(m.get(`aoed_export_backend_stuck{export="healthy"}`)).toBe(0);
    expect(m.get(`aoed_export_oldest_request_age_seconds{export="stuck"}`)).toBeGreaterThanOrEqual(
      3,
    );
    expect(logs("stuck", STUCK_LOG)).toHaveLength(stuckLogged + 1);
    await verifiedOps(20);

    // A retransmit while stuck is dropped and counted.
    const before = await counters("stuck");
    void client.read(stuck, 0, 1).catch(() => {});
    const after = await waitFor("the retransmits to be dropped", async () => {
      const c = await counters("stuck");
      return c.requests.read > before.requests.read && c;
    });
    expect(after.queueDrops - before.queueDrops).toBe(after.requests.read - before.requests.read);

    // The filesystem answers again: held requests are answered, new ones served, once logged.
    await f.release();
    expect((await client.read(stuck, 3, 1)).equals(pattern(3, 1, 1))).toBe(true);
    await client.write(stuck, 100, pattern(100, 4, 9));
    expect(
      fuse
        .data(STUCK_FILE)
        .subarray(100 * 512, 104 * 512)
        .equals(pattern(100, 4, 9)),
    ).toBe(true);
    await waitFor(
      "the recovery to be logged",
      () => logs("stuck", RECOVERED_LOG).length === recoveryLogged + 1,
    );
    expect((await status("stuck")).stuck).toBe(false);
    expect(logs("stuck", STUCK_LOG)).toHaveLength(stuckLogged + 1);
    expect(logs("healthy", STUCK_LOG)).toHaveLength(0);
  }, 60_000);

  it("a reload finishes while the backend hangs, one replacing the stuck export included", async () => {
    const f = await fill();
    fs.writeFileSync(config, exportYaml("stuck-2"));
    const r = await aoectl(sock, ["reload"]);
    expect(r.code, r.stderr).toBe(0);
    const reloaded = await daemon.waitForLog(/config reloaded/);
    expect(reloaded.changed).toEqual(["stuck"]);
    await daemon.waitForLog(/still has requests in flight after/, { timeoutMs: 20_000 });
    expect((await discoverUntil(client, { shelf: SHELF }, both)).map((t) => t.slot)).toEqual([
      0, 1,
    ]);
    await verifiedOps(20);
    await f.release();
    expect((await client.read(stuck, 5, 1)).equals(pattern(5, 1, 1))).toBe(true);
  }, 60_000);

  it("SIGTERM while the backend hangs: the stuck requests are left after the drain timeout and the daemon ends", async () => {
    await fill();
    process.kill(daemon.pid, "SIGTERM");
    const last = await daemon.waitForLog(
      /^stopped, leaving requests to a stuck backend unanswered/,
      {
        timeoutMs: 20_000,
      },
    );
    expect(last.exports).toEqual(["stuck"]);
    expect(logs("stuck", /^shutdown: the backend did not finish/)).toHaveLength(1);
    expect(logs("healthy", /^shutdown: the backend did not finish/)).toHaveLength(0);
    // exit(3) would wait for the threads stuck in the filesystem: the daemon ends by the
    // signal. A FUSE request its server has taken cannot be abandoned, even by SIGKILL:
    // the last threads go when it answers.
    fuse.heal(STUCK_FILE);
    expect(await daemon.exited).toEqual({ code: null, signal: "SIGTERM" });
  }, 60_000);
});
