import { describe, expect, it } from "vitest";
import { LATENCY_BUCKETS } from "../../src/engine/latency.js";
import { StatsLedger } from "../../src/metrics/ledger.js";
import { createMetricsRegistry } from "../../src/metrics/registry.js";
import { VERSION } from "../../src/version.js";
import { FakeEngine, FakePort, FakeTarget, parseExposition } from "./fakes.js";

const LV0 = 'export="lv0"';

function setup(defaultMetrics = false) {
  const lv0 = new FakeTarget("lv0", 1, 2, { queueLength: 32, size: 10 * 1024 ** 3 });
  const eth0 = new FakePort("eth0", 9000);
  const engine = new FakeEngine().add(lv0, eth0);
  const ledger = new StatsLedger();
  const registry = createMetricsRegistry(engine, ledger, { defaultMetrics });
  const scrape = async () => parseExposition(await registry.metrics());
  return { lv0, eth0, engine, ledger, registry, scrape };
}

describe("metrics text", () => {
  it("names, types and help follow Prometheus conventions", async () => {
    const { registry } = setup();
    const text = await registry.metrics();
    const types = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]);
    expect(types).toEqual([
      ["aoed_build_info", "gauge"],
      ["aoed_config_last_reload_successful", "gauge"],
      ["aoed_config_last_reload_success_timestamp_seconds", "gauge"],
      ["aoed_export_requests_total", "counter"],
      ["aoed_export_read_bytes_total", "counter"],
      ["aoed_export_written_bytes_total", "counter"],
      ["aoed_export_ata_errors_total", "counter"],
      ["aoed_export_aoe_errors_total", "counter"],
      ["aoed_export_queue_drops_total", "counter"],
      ["aoed_export_syncs_total", "counter"],
      ["aoed_export_synced_writes_total", "counter"],
      ["aoed_export_dsync_writes_total", "counter"],
      ["aoed_export_sync_errors_total", "counter"],
      ["aoed_export_denied_requests_total", "counter"],
      ["aoed_export_request_duration_seconds", "histogram"],
      ["aoed_export_in_flight_requests", "gauge"],
      ["aoed_export_backend_stuck", "gauge"],
      ["aoed_export_oldest_request_age_seconds", "gauge"],
      ["aoed_export_queue_length", "gauge"],
      ["aoed_export_size_bytes", "gauge"],
      ["aoed_export_info", "gauge"],
      ["aoed_export_up", "gauge"],
      ["aoed_interface_receive_frames_total", "counter"],
      ["aoed_interface_receive_bytes_total", "counter"],
      ["aoed_interface_transmit_frames_total", "counter"],
      ["aoed_interface_transmit_bytes_total", "counter"],
      ["aoed_interface_ignored_frames_total", "counter"],
      ["aoed_interface_receive_drops_total", "counter"],
      ["aoed_interface_busy_poll_hits_total", "counter"],
      ["aoed_interface_busy_poll_misses_total", "counter"],
      ["aoed_interface_transmit_ring_full_total", "counter"],
      ["aoed_interface_mtu_bytes", "gauge"],
      ["aoed_interface_up", "gauge"],
      ["aoed_worker_receive_frames_total", "counter"],
    ]);
    for (const [name, type] of types) {
      expect(name).toMatch(/^aoed_[a-z_]+$/);
      if (type === "counter") expect(name).toMatch(/_total$/);
      else expect(name).not.toMatch(/_total$/);
      expect(text).toMatch(new RegExp(`^# HELP ${name} \\S.+$`, "m"));
    }
  });

  it("exports each target's counters and gauges with export and target labels", async () => {
    const { lv0, scrape } = setup();
    Object.assign(lv0.stats, {
      reads: 5,
      writes: 3,
      identifies: 2,
      flushes: 1,
      configs: 4,
      masks: 6,
      reserves: 7,
      otherAta: 8,
      bytesRead: 5 * 4096,
      bytesWritten: 3 * 1024,
      ataErrors: 9,
      aoeErrors: 10,
      queueDrops: 11,
      aclDenied: 12,
      maskDenied: 13,
      syncs: 14,
      syncedWrites: 15,
      dsyncWrites: 16,
      syncErrors: 17,
    });
    lv0.inFlight = 4;
    lv0.stuck = true;
    lv0.oldestRequestSeconds = 7.5;
    const m = await scrape();
    const ops = {
      read: 5,
      write: 3,
      identify: 2,
      flush: 1,
      config: 4,
      mask: 6,
      reserve: 7,
      other: 8,
    };
    for (const [op, n] of Object.entries(ops))
      expect(m.get(`aoed_export_requests_total{${LV0},op="${op}"}`), op).toBe(n);
    expect(m.get(`aoed_export_read_bytes_total{${LV0}}`)).toBe(20480);
    expect(m.get(`aoed_export_written_bytes_total{${LV0}}`)).toBe(3072);
    expect(m.get(`aoed_export_ata_errors_total{${LV0}}`)).toBe(9);
    expect(m.get(`aoed_export_aoe_errors_total{${LV0}}`)).toBe(10);
    expect(m.get(`aoed_export_queue_drops_total{${LV0}}`)).toBe(11);
    expect(m.get(`aoed_export_denied_requests_total{${LV0},reason="acl"}`)).toBe(12);
    expect(m.get(`aoed_export_denied_requests_total{${LV0},reason="mask"}`)).toBe(13);
    expect(m.get(`aoed_export_syncs_total{${LV0}}`)).toBe(14);
    expect(m.get(`aoed_export_synced_writes_total{${LV0}}`)).toBe(15);
    expect(m.get(`aoed_export_dsync_writes_total{${LV0}}`)).toBe(16);
    expect(m.get(`aoed_export_sync_errors_total{${LV0}}`)).toBe(17);
    expect(m.get(`aoed_export_in_flight_requests{${LV0}}`)).toBe(4);
    expect(m.get(`aoed_export_backend_stuck{${LV0}}`)).toBe(1);
    expect(m.get(`aoed_export_oldest_request_age_seconds{${LV0}}`)).toBe(7.5);
    expect(m.get(`aoed_export_queue_length{${LV0}}`)).toBe(32);
    expect(m.get(`aoed_export_size_bytes{${LV0}}`)).toBe(10 * 1024 ** 3);
    expect(m.get(`aoed_build_info{version="${VERSION}"}`)).toBe(1);
  });

  it("says which exports serve and which interfaces exist, and maps exports to their address", async () => {
    const { engine, scrape } = setup();
    engine.add(new FakeTarget("mirror", 1, 3, { interfaces: ["eth0", "bond0"] }));
    engine.add(new FakeTarget("stranded", 1, 4, { interfaces: ["bond0"] }));
    engine.missing.add("bond0");
    engine.waiting.set("late", {
      cfg: {
        name: "late",
        shelf: 1,
        slot: 5,
        path: "/dev/vg0/late",
        readOnly: false,
        interfaces: ["eth0"],
        queueLength: 64,
        writeCache: true,
        io: "auto",
      },
      missing: ["file /dev/vg0/late"],
    });
    const m = await scrape();
    expect(m.get('aoed_export_up{export="lv0"}')).toBe(1);
    expect(m.get('aoed_export_up{export="mirror"}')).toBe(1); // still on eth0
    expect(m.get('aoed_export_up{export="stranded"}')).toBe(0); // its only interface is gone
    expect(m.get('aoed_export_up{export="late"}')).toBe(0);
    expect(m.get('aoed_interface_up{interface="eth0"}')).toBe(1);
    expect(m.get('aoed_interface_up{interface="bond0"}')).toBe(0);
    expect(m.get('aoed_export_info{export="lv0",target="e1.2",path="/srv/lv0.img"}')).toBe(1);
    expect([...m.keys()].filter((k) => k.includes("target="))).toEqual([
      'aoed_export_info{export="lv0",target="e1.2",path="/srv/lv0.img"}',
      'aoed_export_info{export="mirror",target="e1.3",path="/srv/mirror.img"}',
      'aoed_export_info{export="stranded",target="e1.4",path="/srv/stranded.img"}',
    ]);
  });

  it("reports the outcome of the last config reload", async () => {
    const engine = new FakeEngine();
    const reloads = { lastSuccessful: true, lastSuccessAt: 1_700_000_000 };
    const registry = createMetricsRegistry(engine, new StatsLedger(), {
      defaultMetrics: false,
      reloads,
    });
    let m = parseExposition(await registry.metrics());
    expect(m.get("aoed_config_last_reload_successful")).toBe(1);
    expect(m.get("aoed_config_last_reload_success_timestamp_seconds")).toBe(1_700_000_000);
    reloads.lastSuccessful = false;
    m = parseExposition(await registry.metrics());
    expect(m.get("aoed_config_last_reload_successful")).toBe(0);
    expect(m.get("aoed_config_last_reload_success_timestamp_seconds")).toBe(1_700_000_000);
  });

  it("exports each interface's counters, ignore reasons, kernel drops, busy polling and MTU", async () => {
    const { eth0, scrape } = setup();
    Object.assign(eth0.stats, {
      rxFrames: 100,
      rxBytes: 64000,
      txFrames: 90,
      txBytes: 80000,
      ignoredShort: 1,
      ignoredVersion: 2,
      ignoredResponse: 3,
      ignoredOwn: 4,
      ignoredWildcard: 5,
      notForUs: 6,
      txRingFull: 7,
    });
    eth0.kernel.rxDrops = 8;
    eth0.kernel.busyPollHits = 10;
    eth0.kernel.busyPollMisses = 11;
    const m = await scrape();
    const I = 'interface="eth0"';
    expect(m.get(`aoed_interface_receive_frames_total{${I}}`)).toBe(100);
    expect(m.get(`aoed_interface_receive_bytes_total{${I}}`)).toBe(64000);
    expect(m.get(`aoed_interface_transmit_frames_total{${I}}`)).toBe(90);
    expect(m.get(`aoed_interface_transmit_bytes_total{${I}}`)).toBe(80000);
    const reasons = { short: 1, version: 2, response: 3, own: 4, wildcard: 5, unknown_target: 6 };
    for (const [reason, n] of Object.entries(reasons))
      expect(m.get(`aoed_interface_ignored_frames_total{${I},reason="${reason}"}`)).toBe(n);
    expect(m.get(`aoed_interface_transmit_ring_full_total{${I}}`)).toBe(7);
    expect(m.get(`aoed_interface_receive_drops_total{${I}}`)).toBe(8);
    expect(m.get(`aoed_interface_busy_poll_hits_total{${I}}`)).toBe(10);
    expect(m.get(`aoed_interface_busy_poll_misses_total{${I}}`)).toBe(11);
    expect(m.get(`aoed_interface_mtu_bytes{${I}}`)).toBe(9000);
  });

  it("turns the latency histogram into cumulative buckets, sum and count", async () => {
    const { lv0, scrape } = setup();
    for (const s of [0.00001, 0.00004, 0.0003, 0.003, 0.003, 0.2, 5]) lv0.observe("read", s);
    lv0.observe("flush", 20);
    const m = await scrape();
    const bucket = (le: string) =>
      m.get(`aoed_export_request_duration_seconds_bucket{${LV0},op="read",le="${le}"}`);
    expect(bucket("0.00005")).toBe(2);
    expect(bucket("0.0001")).toBe(2);
    expect(bucket("0.00025")).toBe(2);
    expect(bucket("0.0005")).toBe(3);
    expect(bucket("0.0025")).toBe(3);
    expect(bucket("0.005")).toBe(5);
    expect(bucket("0.25")).toBe(6);
    expect(bucket("1")).toBe(6);
    expect(bucket("2.5")).toBe(6);
    expect(bucket("5")).toBe(7);
    expect(bucket("30")).toBe(7);
    expect(bucket("+Inf")).toBe(7);
    expect(m.get(`aoed_export_request_duration_seconds_count{${LV0},op="read"}`)).toBe(7);
    expect(m.get(`aoed_export_request_duration_seconds_sum{${LV0},op="read"}`)).toBeCloseTo(
      5.20635,
      9,
    );
    // Each operation has its own histogram: a 20 s flush is in its 30 s bucket, not in the reads'.
    const flush = (le: string) =>
      m.get(`aoed_export_request_duration_seconds_bucket{${LV0},op="flush",le="${le}"}`);
    expect([flush("10"), flush("30"), flush("+Inf")]).toEqual([0, 1, 1]);
    expect(m.get(`aoed_export_request_duration_seconds_count{${LV0},op="write"}`)).toBe(0);
    // One line per bound plus +Inf, never decreasing.
    const values = [...LATENCY_BUCKETS.map(String), "+Inf"].map((le) => bucket(le)!);
    expect(values).toHaveLength(LATENCY_BUCKETS.length + 1);
    for (let i = 1; i < values.length; i++)
      expect(values[i]).toBeGreaterThanOrEqual(values[i - 1]!);
  });

  it("reads the engine's maps at scrape time: added and removed exports and interfaces", async () => {
    const { engine, scrape } = setup();
    engine.add(new FakeTarget("new", 3, 4), new FakePort("eth1"));
    let m = await scrape();
    expect(m.get('aoed_export_size_bytes{export="new"}')).toBe(1 << 30);
    expect(m.get('aoed_interface_mtu_bytes{interface="eth1"}')).toBe(1500);
    engine.targets.delete("lv0");
    engine.ports.delete("eth0");
    m = await scrape();
    expect([...m.keys()].some((k) => k.includes('export="lv0"'))).toBe(false);
    expect([...m.keys()].some((k) => k.includes('interface="eth0"'))).toBe(false);
  });

  it("reports 0 kernel drops and busy polls when the socket cannot say", async () => {
    const { eth0, scrape } = setup();
    eth0.kernelBroken = true;
    const m = await scrape();
    expect(m.get('aoed_interface_receive_drops_total{interface="eth0"}')).toBe(0);
    expect(m.get('aoed_interface_busy_poll_hits_total{interface="eth0"}')).toBe(0);
    expect(m.get('aoed_interface_busy_poll_misses_total{interface="eth0"}')).toBe(0);
  });

  it("includes prom-client's default process metrics", async () => {
    const { registry } = setup(true);
    const text = await registry.metrics();
    expect(text).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(text).toMatch(/^process_resident_memory_bytes \d/m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes \d/m);
    expect(text).toMatch(/^aoed_export_requests_total\{/m);
  });
});

describe("counters stay monotonic", () => {
  it("across `clear stats` through the ledger", async () => {
    const { lv0, ledger, scrape } = setup();
    lv0.stats.reads = 10;
    lv0.stats.bytesRead = 10240;
    lv0.observe("read", 0.001);
    await scrape();
    lv0.stats.reads = 12; // counted after the last scrape, before the clear: not lost
    ledger.resetExport(lv0);
    expect(lv0.stats.reads).toBe(0);
    let m = await scrape();
    expect(m.get(`aoed_export_requests_total{${LV0},op="read"}`)).toBe(12);
    expect(m.get(`aoed_export_read_bytes_total{${LV0}}`)).toBe(10240);
    expect(m.get(`aoed_export_request_duration_seconds_count{${LV0},op="read"}`)).toBe(1);
    expect(m.get(`aoed_export_request_duration_seconds_bucket{${LV0},op="read",le="+Inf"}`)).toBe(
      1,
    );
    lv0.stats.reads = 3;
    lv0.observe("read", 0.002);
    m = await scrape();
    expect(m.get(`aoed_export_requests_total{${LV0},op="read"}`)).toBe(15);
    expect(m.get(`aoed_export_request_duration_seconds_count{${LV0},op="read"}`)).toBe(2);
    expect(m.get(`aoed_export_request_duration_seconds_sum{${LV0},op="read"}`)).toBeCloseTo(
      0.003,
      9,
    );
  });

  it("across a reset the ledger was not told about (from the last scrape on)", async () => {
    const { lv0, scrape } = setup();
    lv0.stats.writes = 7;
    await scrape();
    lv0.resetStats();
    lv0.stats.writes = 2;
    const m = await scrape();
    expect(m.get(`aoed_export_requests_total{${LV0},op="write"}`)).toBe(9);
  });

  it("across a reload that replaces the target or the port", async () => {
    const { engine, lv0, eth0, scrape } = setup();
    lv0.stats.reads = 10;
    eth0.stats.rxFrames = 50;
    eth0.kernel.rxDrops = 3;
    eth0.kernel.busyPollHits = 20;
    await scrape();
    lv0.stats.reads = 11; // the old target's last requests, after the last scrape
    eth0.stats.rxFrames = 55;
    eth0.kernel.busyPollHits = 21;
    const lv0b = new FakeTarget("lv0", 1, 2);
    lv0b.stats.reads = 1;
    const eth0b = new FakePort("eth0");
    eth0b.stats.rxFrames = 2;
    eth0b.kernel.busyPollHits = 4;
    engine.add(lv0b, eth0b);
    const m = await scrape();
    expect(m.get(`aoed_export_requests_total{${LV0},op="read"}`)).toBe(12);
    expect(m.get('aoed_interface_receive_frames_total{interface="eth0"}')).toBe(57);
    expect(m.get('aoed_interface_receive_drops_total{interface="eth0"}')).toBe(3);
    expect(m.get('aoed_interface_busy_poll_hits_total{interface="eth0"}')).toBe(25);
  });

  it("a target that carries its predecessor's stats object is not counted twice", async () => {
    const { engine, lv0, scrape } = setup();
    lv0.stats.reads = 10;
    await scrape();
    const lv0b = new FakeTarget("lv0", 1, 2);
    lv0b.stats = lv0.stats; // what Engine.apply does on reload
    lv0b.stats.reads = 11;
    engine.add(lv0b);
    expect((await scrape()).get(`aoed_export_requests_total{${LV0},op="read"}`)).toBe(11);
  });
});
