import { spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ControlClient, ControlError, controlRequest } from "../../src/control/client.js";
import type {
  ClearResult,
  ShowResult,
  StatsResult,
  StatusResult,
} from "../../src/control/protocol.js";
import { type ControlServer, startControlServer } from "../../src/control/server.js";
import { StatsLedger } from "../../src/metrics/ledger.js";
import { createMetricsRegistry } from "../../src/metrics/registry.js";
import { FakeEngine, FakePort, FakeTarget, mac, parseExposition } from "../metrics/fakes.js";

let dir: string;
let sock: string;
const servers: ControlServer[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-ctl-"));
  sock = path.join(dir, "run", "aoed.sock");
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  fs.rmSync(dir, { recursive: true, force: true });
});

function engine(): FakeEngine {
  const lv0 = new FakeTarget("lv0", 0, 0, { interfaces: ["eth0", "eth1"], size: 8 << 20 });
  const lv1 = new FakeTarget("lv1", 0, 1, { queueLength: 16, readOnly: true });
  const other = new FakeTarget("backup", 1, 0);
  const eth0 = new FakePort("eth0", 9000, "02:00:00:00:00:0a");
  eth0.exportCount = 3;
  return new FakeEngine().add(lv0, lv1, other, eth0, new FakePort("eth1"));
}

async function start(opts: Partial<Parameters<typeof startControlServer>[0]> = {}) {
  const e = (opts.engine as FakeEngine | undefined) ?? engine();
  const s = await startControlServer({ path: sock, ...opts, engine: e });
  servers.push(s);
  return { s, e };
}

/** Raw protocol: send lines, collect `n` answer lines. */
function raw(lines: string[], n = lines.length): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const c = net.connect(sock);
    let buf = "";
    c.on("error", reject);
    c.on("data", (d) => {
      buf += d.toString();
      const got = buf.split("\n").filter(Boolean);
      if (got.length >= n) {
        c.destroy();
        resolve(got.map((l) => JSON.parse(l)));
      }
    });
    c.write(lines.map((l) => `${l}\n`).join(""));
  });
}

describe("control socket", () => {
  it("is created mode 0660, in a directory it creates, and removed at close", async () => {
    const { s } = await start();
    const st = fs.lstatSync(sock);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
    await s.close();
    expect(fs.existsSync(sock)).toBe(false);
  });

  it("gives the socket the configured group", async () => {
    await start({ gid: 12345 });
    expect(fs.statSync(sock).gid).toBe(12345);
  });

  it("status: exports with target, path, size, state, interfaces, queue; interfaces with MTU, MAC", async () => {
    const { e } = await start();
    const lv0 = e.targets.get("lv0")!;
    lv0.inFlight = 2;
    lv0.stuck = true;
    lv0.oldestRequestSeconds = 12.34;
    lv0.state = {
      config: Buffer.from("rack4"),
      mask: [mac("00:1b:21:aa:bb:01")],
      reserve: [mac("00:1b:21:aa:bb:02")],
    };
    const r = await controlRequest<StatusResult>(sock, { cmd: "status" });
    expect(r.daemon).toMatchObject({ pid: process.pid, protocol: 1 });
    expect(r.exports.map((x) => x.name)).toEqual(["lv0", "lv1", "backup"]);
    expect(r.exports[0]).toEqual({
      name: "lv0",
      target: "e0.0",
      path: "/srv/lv0.img",
      sizeBytes: 8 << 20,
      readOnly: false,
      interfaces: ["eth0", "eth1"],
      inFlight: 2,
      queueLength: 64,
      writeCache: true,
      io: "io_uring",
      writesBuffered: null,
      failed: null,
      stuck: true,
      oldestRequestSeconds: 12.3,
      up: true,
      waitingFor: [],
      state: { config: "rack4", macmask: ["00:1b:21:aa:bb:01"], reserve: ["00:1b:21:aa:bb:02"] },
    });
    expect(r.exports[1]).toMatchObject({ readOnly: true, queueLength: 16 });
    expect(r.interfaces).toEqual([
      { name: "eth0", mtu: 9000, mac: "02:00:00:00:00:0a", exports: 3, up: true },
      { name: "eth1", mtu: 1500, mac: "02:00:00:00:00:01", exports: 1, up: true },
    ]);
  });

  it("stats: counters per export and per interface", async () => {
    const { e } = await start();
    Object.assign(e.targets.get("lv1")!.stats, { reads: 4, bytesRead: 2048, aclDenied: 1 });
    e.targets.get("lv1")!.stats.latency.observe(0.002);
    Object.assign(e.ports.get("eth0")!.stats, { rxFrames: 9, notForUs: 2 });
    e.ports.get("eth0")!.kernel.rxDrops = 5;
    e.ports.get("eth0")!.kernel.otherHost = 3;
    e.ports.get("eth0")!.kernel.busyPollHits = 6;
    e.ports.get("eth0")!.kernel.busyPollMisses = 1;
    const r = await controlRequest<StatsResult>(sock, { cmd: "stats" });
    expect(r.time).toBeGreaterThan(0);
    const lv1 = r.exports.find((x) => x.name === "lv1")!;
    expect(lv1).toMatchObject({
      target: "e0.1",
      requests: {
        read: 4,
        write: 0,
        identify: 0,
        flush: 0,
        config: 0,
        mask: 0,
        reserve: 0,
        other: 0,
      },
      bytesRead: 2048,
      aclDenied: 1,
      latency: { count: 1, sum: 0.002 },
    });
    expect(lv1.latency.counts).toHaveLength(lv1.latency.bounds.length + 1);
    expect(r.interfaces[0]).toMatchObject({
      name: "eth0",
      rxFrames: 9,
      ignored: { unknown_target: 2, short: 0 },
      kernelDrops: 5,
      otherHost: 3,
      busyPollHits: 6,
      busyPollMisses: 1,
    });
  });

  it("show config|macmask|reserve for a name or a glob", async () => {
    const { e } = await start();
    e.targets.get("lv0")!.state = {
      config: Buffer.from("a"),
      mask: [mac("02:00:00:00:00:05")],
      reserve: [],
    };
    e.targets.get("lv1")!.state = {
      config: Buffer.from("b"),
      mask: [],
      reserve: [mac("02:00:00:00:00:06")],
    };
    const c = await ControlClient.connect(sock);
    try {
      expect(await c.request<ShowResult>({ cmd: "show", what: "config", export: "lv*" })).toEqual({
        what: "config",
        exports: [
          { name: "lv0", config: "a" },
          { name: "lv1", config: "b" },
        ],
      });
      expect(await c.request<ShowResult>({ cmd: "show", what: "macmask", export: "lv0" })).toEqual({
        what: "macmask",
        exports: [{ name: "lv0", macmask: ["02:00:00:00:00:05"] }],
      });
      expect(await c.request<ShowResult>({ cmd: "show", what: "reserve", export: "lv?" })).toEqual({
        what: "reserve",
        exports: [
          { name: "lv0", reserve: [] },
          { name: "lv1", reserve: ["02:00:00:00:00:06"] },
        ],
      });
    } finally {
      c.close();
    }
  });

  it("clear with globs answers which exports matched", async () => {
    const { e } = await start();
    for (const t of e.targets.values())
      t.state = { config: Buffer.from("x"), mask: [1], reserve: [2] };
    const clear = (what: ClearResult["what"], pattern: string) =>
      controlRequest<ClearResult>(sock, { cmd: "clear", what, export: pattern });
    expect(await clear("config", "lv*")).toEqual({ what: "config", matched: ["lv0", "lv1"] });
    expect(e.targets.get("lv0")!.state.config.length).toBe(0);
    expect(e.targets.get("backup")!.state.config.toString()).toBe("x");
    expect(await clear("macmask", "backup")).toEqual({ what: "macmask", matched: ["backup"] });
    expect(e.targets.get("backup")!.state.mask).toEqual([]);
    expect(e.targets.get("lv0")!.state.mask).toEqual([1]);
    expect(await clear("reserve", "*")).toEqual({
      what: "reserve",
      matched: ["lv0", "lv1", "backup"],
    });
    for (const t of e.targets.values()) expect(t.state.reserve).toEqual([]);
    expect(await clear("config", "[b]*")).toMatchObject({ matched: ["backup"] });
    expect(await clear("config", "[!b]*")).toMatchObject({ matched: ["lv0", "lv1"] });
  });

  it("clear stats zeroes `stats` but the metrics carry on", async () => {
    const e = engine();
    const ledger = new StatsLedger();
    const registry = createMetricsRegistry(e, ledger, { defaultMetrics: false });
    await start({ engine: e, ledger });
    const lv0 = e.targets.get("lv0")!;
    lv0.stats.writes = 6;
    lv0.observe("write", 0.01);
    expect(
      await controlRequest<ClearResult>(sock, { cmd: "clear", what: "stats", export: "lv0" }),
    ).toEqual({ what: "stats", matched: ["lv0"] });
    const stats = await controlRequest<StatsResult>(sock, { cmd: "stats" });
    expect(stats.exports[0]).toMatchObject({ requests: { write: 0 }, latency: { count: 0 } });
    const m = parseExposition(await registry.metrics());
    expect(m.get('aoed_export_requests_total{export="lv0",op="write"}')).toBe(6);
    expect(m.get('aoed_export_request_duration_seconds_count{export="lv0",op="write"}')).toBe(1);
  });

  it("errors: nothing matched, unknown what, missing export, unknown command", async () => {
    await start();
    const err = (p: Promise<unknown>) =>
      p.then(
        () => null,
        (e: ControlError) => e.message,
      );
    expect(await err(controlRequest(sock, { cmd: "clear", what: "stats", export: "nope*" }))).toBe(
      'no export matches "nope*" (exports: lv0, lv1, backup)',
    );
    expect(await err(controlRequest(sock, { cmd: "show", what: "config", export: "x" }))).toBe(
      'no export matches "x" (exports: lv0, lv1, backup)',
    );
    expect(
      await err(controlRequest(sock, { cmd: "clear", what: "everything", export: "*" } as never)),
    ).toBe("clear what? one of config, macmask, reserve, stats");
    expect(
      await err(controlRequest(sock, { cmd: "show", what: "stats", export: "*" } as never)),
    ).toBe("show what? one of config, macmask, reserve");
    expect(await err(controlRequest(sock, { cmd: "show", what: "config" } as never))).toMatch(
      /^no "export"/,
    );
    expect(await err(controlRequest(sock, { cmd: "frobnicate" } as never))).toBe(
      'unknown command "frobnicate": one of status, stats, reload, show, clear',
    );
  });

  it("speaks line-delimited JSON: ids echoed, answers in order, bad input answered", async () => {
    await start();
    const replies = await raw([
      '{"v":1,"id":"a","cmd":"status"}',
      "not json",
      '{"cmd":"stats","id":3}',
      '{"v":2,"id":4,"cmd":"status"}',
      "[1]",
    ]);
    expect(replies.map((r) => [r.id, r.ok, r.v])).toEqual([
      ["a", true, 1],
      [undefined, false, 1],
      [3, true, 1],
      [4, false, 1],
      [undefined, false, 1],
    ]);
    expect(replies[1]!.error).toBe("not JSON: send one JSON object per line");
    expect(replies[3]!.error).toMatch(
      /^protocol version 2 is not supported: this aoed .* speaks version 1$/,
    );
  });

  it("reload calls the daemon's handler and passes failures on", async () => {
    let fail = false;
    await start({
      reload: async () =>
        fail ? { ok: false, errors: ["aoed.yaml:3:5: error: bad"] } : { ok: true },
    });
    expect(await controlRequest(sock, { cmd: "reload" })).toEqual({ ok: true });
    fail = true;
    const e = await controlRequest(sock, { cmd: "reload" }).catch((x: ControlError) => x);
    expect(e).toBeInstanceOf(ControlError);
    expect((e as ControlError).message).toBe(
      "reload failed (1 error(s)); still running the previous config",
    );
    expect((e as ControlError).errors).toEqual(["aoed.yaml:3:5: error: bad"]);
  });

  it("reload without a handler says so", async () => {
    await start();
    await expect(controlRequest(sock, { cmd: "reload" })).rejects.toThrow(
      "this aoed cannot reload its config",
    );
  });

  it("reads the engine's maps at request time", async () => {
    const { e } = await start();
    e.targets.delete("lv1");
    e.add(new FakeTarget("new", 7, 7));
    const r = await controlRequest<StatusResult>(sock, { cmd: "status" });
    expect(r.exports.map((x) => x.name)).toEqual(["lv0", "backup", "new"]);
  });
});

describe("control socket lifecycle", () => {
  it("removes a stale socket that nothing listens on", async () => {
    fs.mkdirSync(path.dirname(sock));
    // A daemon killed with SIGKILL leaves its socket file behind.
    const r = spawnSync(process.execPath, [
      "-e",
      `require("net").createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, "SIGKILL"))`,
    ]);
    expect(r.signal).toBe("SIGKILL");
    expect(fs.lstatSync(sock).isSocket()).toBe(true);
    await start();
    expect((await controlRequest<StatusResult>(sock, { cmd: "status" })).exports).toHaveLength(3);
  });

  it("refuses to start while another daemon listens, and leaves it working", async () => {
    await start();
    await expect(startControlServer({ path: sock, engine: engine() })).rejects.toThrow(
      `another aoed is already running: something answers on the control socket ${sock}; stop it first, or give this one another \`control-socket:\``,
    );
    expect((await controlRequest<StatusResult>(sock, { cmd: "status" })).exports).toHaveLength(3);
  });

  it("refuses to replace a file that is not a socket", async () => {
    fs.mkdirSync(path.dirname(sock));
    fs.writeFileSync(sock, "precious");
    await expect(startControlServer({ path: sock, engine: engine() })).rejects.toThrow(
      `${sock} exists and is not a socket; remove it or choose another \`control-socket:\``,
    );
    expect(fs.readFileSync(sock, "utf8")).toBe("precious");
  });

  it("closes with a client still connected and leaves a successor's socket alone", async () => {
    const { s } = await start();
    const c = await ControlClient.connect(sock);
    await s.close();
    servers.length = 0;
    await expect(c.request({ cmd: "status" })).rejects.toThrow(/closed|lost/);
    // A successor took the path before the old one finished closing: its socket stays.
    const a = await start();
    fs.renameSync(sock, `${sock}.old`);
    const b = await start();
    await a.s.close();
    expect(fs.lstatSync(sock).isSocket()).toBe(true);
    await b.s.close();
    expect(fs.existsSync(sock)).toBe(false);
  });
});
