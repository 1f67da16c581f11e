/**
 * The admin side of the real daemon: it runs in a network namespace with its
 * metrics on 127.0.0.1 there (scraped from inside the namespace) and its
 * control socket on a temp path (unix sockets cross namespaces), while the
 * TypeScript initiator does I/O from the other end of the veth pair.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AoeClient, type TargetInfo } from "../../src/client/client.js";
import { controlRequest } from "../../src/control/client.js";
import type { StatsResult, StatusResult } from "../../src/control/protocol.js";
import { ConfigCmd } from "../../src/protocol/constants.js";
import { aoectl as runAoectl } from "../helpers/aoectl.js";
import { type Daemon, startDaemon } from "../helpers/daemon.js";
import { createVethPair, type VethPair } from "../helpers/net.js";
import { scrapeMetrics } from "../helpers/scrape.js";

const AOED = path.resolve(import.meta.dirname, "../../dist/src/bin/aoed.cjs");
const MiB = 1024 * 1024;

describe("metrics and control socket of a running aoed", () => {
  let net: VethPair;
  let dir: string;
  let sock: string;
  let config: string;
  let daemon: Daemon;
  let client: AoeClient;
  let target: TargetInfo;

  const scrape = () => scrapeMetrics(net.netns!);
  /** What `aoectl CMD --json` prints, asked over the socket in-process (no node start-up per check). */
  const json = <T>(cmd: "status" | "stats"): Promise<T> => controlRequest<T>(sock, { cmd });
  const aoectl = (args: string[]) => runAoectl(sock, args);
  const L = 'export="disk"';

  beforeAll(async () => {
    net = createVethPair({ netns: true });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-admin-"));
    sock = path.join(dir, "ctl", "aoed.sock");
    const img = path.join(dir, "disk.img");
    fs.writeFileSync(img, "");
    fs.truncateSync(img, 16 * MiB);
    config = path.join(dir, "aoed.yaml");
    fs.writeFileSync(
      config,
      `metrics:
  listen: 127.0.0.1:9288
control-socket: ${sock}
exports:
  - name: disk
    path: ${img}
    shelf: 3
    slot: 4
    interfaces: [${net.b}]
`,
    );
    client = AoeClient.open(net.a, { timeoutMs: 300, tries: 3 });
    daemon = await startDaemon(["--config", config], { netns: net.netns });
    [target] = (await client.discover({ shelf: 3, slot: 4, timeoutMs: 500 })) as [TargetInfo];
    expect(target).toBeDefined();
  });

  afterAll(async () => {
    client?.close();
    const code = await daemon?.stop();
    net?.destroy();
    // The daemon removes its socket when it stops.
    if (sock) expect(fs.existsSync(sock)).toBe(false);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    expect(code).toBe(0);
  });

  it("logs where the metrics and the socket are", async () => {
    expect(
      daemon.logs.find((l) => l.msg === "metrics on http://127.0.0.1:9288/metrics"),
    ).toBeDefined();
    expect(daemon.logs.find((l) => l.msg === `control socket ${sock}`)).toBeDefined();
    expect(fs.lstatSync(sock).mode & 0o777).toBe(0o660);
  });

  it("aoectl status shows the export, its I/O engine and the interface", async () => {
    // The engine the start-up log names (it depends on the machine: io_uring, threads, mmap on tmpfs).
    const ready = daemon.logs.find((l) => /aoed ready/.test(String(l.msg)))!;
    const io = (ready.exports as { io: string }[])[0]!.io;
    expect(["io_uring", "threads", "mmap"]).toContain(io);
    const r = await aoectl(["status"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(
      new RegExp(`^disk\\s+e3\\.4\\s+16 MiB\\s+rw\\s+${io}\\s+0\\s+64\\s+${net.b}\\s+`, "m"),
    );
    const s = await json<StatusResult>("status");
    expect(s.exports).toMatchObject([{ name: "disk", target: "e3.4", sizeBytes: 16 * MiB, io }]);
    expect(s.interfaces).toMatchObject([{ name: net.b, mtu: 1500, mac: target.mac, exports: 1 }]);
  });

  it("counters move with I/O, in aoectl stats and in the metrics", async () => {
    const before = await json<StatsResult>("stats");
    for (let i = 0; i < 20; i++) await client.read(target, i * 2, 2);
    await client.write(target, 100, Buffer.alloc(1024, 7));
    const after = await json<StatsResult>("stats");
    const [b, a] = [before.exports[0]!, after.exports[0]!];
    expect(a.requests.read - b.requests.read).toBe(20);
    expect(a.requests.write - b.requests.write).toBe(1);
    expect(a.bytesRead - b.bytesRead).toBe(20 * 1024);
    expect(a.bytesWritten - b.bytesWritten).toBe(1024);
    expect(a.latency.count - b.latency.count).toBe(21);
    expect(after.interfaces[0]!.rxFrames).toBeGreaterThan(before.interfaces[0]!.rxFrames);

    const m = await scrape();
    expect(m.get(`aoed_export_requests_total{${L},op="read"}`)).toBe(a.requests.read);
    expect(m.get(`aoed_export_read_bytes_total{${L}}`)).toBe(a.bytesRead);
    // Per operation in the metric; their counts add up to aoectl's total.
    const perOp = ["read", "write", "flush"].map(
      (op) => m.get(`aoed_export_request_duration_seconds_count{${L},op="${op}"}`)!,
    );
    expect(perOp[0]).toBeGreaterThan(0);
    expect(perOp.reduce((a, b) => a + b, 0)).toBe(a.latency.count);
    expect(m.get(`aoed_export_size_bytes{${L}}`)).toBe(16 * MiB);
    expect(m.get(`aoed_interface_mtu_bytes{interface="${net.b}"}`)).toBe(1500);
    expect(m.get(`aoed_interface_receive_frames_total{interface="${net.b}"}`)).toBeGreaterThan(20);
    expect(m.get("process_resident_memory_bytes")).toBeGreaterThan(0);

    const stats = await aoectl(["stats"]);
    expect(stats.stdout).toContain(`disk (e3.4)\n  requests   read ${a.requests.read}  write 1`);
  });

  it("clear stats zeroes aoectl's counters; the metrics do not go back", async () => {
    const m0 = await scrape();
    const reads = m0.get(`aoed_export_requests_total{${L},op="read"}`)!;
    expect(reads).toBeGreaterThan(0);
    expect((await aoectl(["clear", "stats", "d*"])).stdout).toBe("cleared stats on disk\n");
    expect((await json<StatsResult>("stats")).exports[0]!.requests.read).toBe(0);
    await client.read(target, 0, 1);
    const m1 = await scrape();
    expect(m1.get(`aoed_export_requests_total{${L},op="read"}`)).toBe(reads + 1);
  });

  it("show and clear what an initiator set", async () => {
    await client.config(target, ConfigCmd.forceSet, "rack9");
    expect((await aoectl(["show", "config", "disk"])).stdout).toBe("rack9\n");
    expect((await aoectl(["clear", "config", "*"])).stdout).toBe("cleared config on disk\n");
    expect((await client.discover({ shelf: 3, slot: 4, timeoutMs: 300 }))[0]?.config).toBe("");
  });

  it("aoectl reload re-reads the config file", async () => {
    const r = await aoectl(["reload"]);
    expect(r).toMatchObject({ code: 0, stdout: "aoed reloaded its config, nothing changed\n" });
  });

  it("a rejected reload shows in aoed_config_last_reload_successful until one succeeds", async () => {
    const good = fs.readFileSync(config, "utf8");
    const before = (await scrape()).get("aoed_config_last_reload_success_timestamp_seconds")!;
    expect((await scrape()).get("aoed_config_last_reload_successful")).toBe(1);
    try {
      fs.writeFileSync(config, good.replace("slot: 4", "slot: many"));
      expect((await aoectl(["reload"])).code).toBe(1);
      const m = await scrape();
      expect(m.get("aoed_config_last_reload_successful")).toBe(0);
      expect(m.get("aoed_config_last_reload_success_timestamp_seconds")).toBe(before);
    } finally {
      fs.writeFileSync(config, good);
    }
    expect((await aoectl(["reload"])).code).toBe(0);
    const m = await scrape();
    expect(m.get("aoed_config_last_reload_successful")).toBe(1);
    expect(m.get("aoed_config_last_reload_success_timestamp_seconds")).toBeGreaterThan(before);
  });

  it("monitor --count 2 shows the export", async () => {
    const r = await aoectl(["monitor", "0.2", "--count", "2"]);
    expect(r.code).toBe(0);
    expect(r.stdout.match(/^disk\s+e3\.4\s/gm)).toHaveLength(2);
  });

  it("a second daemon on the same socket refuses to start, says nothing on the wire and leaves the first alone", async () => {
    const announced: string[] = [];
    client.onUnsolicited((m) => announced.push(`e${m.shelf}.${m.slot} command ${m.command}`));
    const second = path.join(dir, "second.yaml");
    fs.writeFileSync(
      second,
      fs.readFileSync(config, "utf8").replace(/^metrics:\n.*\n/m, "metrics: false\n"),
    );
    const r = spawnSync(
      "ip",
      ["netns", "exec", net.netns!, process.execPath, AOED, "--config", second],
      {
        encoding: "utf8",
        timeout: 30_000,
      },
    );
    expect(r.status).toBe(1);
    const fatal = r.stdout
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === "cannot start");
    expect(fatal?.err).toBe(
      `another aoed is already running: something answers on the control socket ${sock}; stop it first, or give this one another \`control-socket:\``,
    );
    expect(fs.lstatSync(sock).isSocket()).toBe(true);
    // Frames arrive in order: once the first daemon's answer to this query is in, an
    // announcement the second one sent before it gave up would have been seen.
    expect(await client.discover({ shelf: 3, slot: 4, timeoutMs: 500 })).toHaveLength(1);
    client.onUnsolicited(() => {});
    expect(announced).toEqual([]);
  });

  it("aoectl still reaches the first daemon", async () => {
    const r = await aoectl(["status", "--json"]);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as StatusResult).daemon.pid).toBe(daemon.pid);
  });
});
