/** aoectl's admin commands, run as the built CLI against a control socket served by this process. */
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ReloadResult } from "../../src/control/protocol.js";
import { type ControlServer, startControlServer } from "../../src/control/server.js";
import { stagedBin } from "../helpers/daemon-as.js";
import { waitFor } from "../helpers/wait.js";
import { FakeEngine, FakePort, FakeTarget, mac } from "../metrics/fakes.js";

const AOECTL = path.resolve(import.meta.dirname, "../../dist/src/bin/aoectl.js");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs aoectl without blocking this process, which serves the socket; as `uid`, the copy other users can read. */
function aoectl(
  args: string[],
  opts: { env?: Record<string, string>; uid?: number; gid?: number } = {},
): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [opts.uid !== undefined ? stagedBin("aoectl.js") : AOECTL, ...args],
      {
        env: { ...process.env, AOED_SOCKET: "", ...opts.env },
        ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid ?? opts.uid } : {}),
        timeout: 20_000,
      },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? 1) : 0;
        resolve({ code: typeof code === "number" ? code : 1, stdout, stderr });
      },
    );
  });
}

let dir: string;
let sock: string;
let server: ControlServer | null;
let engine: FakeEngine;
let reloadResult: ReloadResult = { ok: true };

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoectl-"));
  sock = path.join(dir, "aoed.sock");
  const lv0 = new FakeTarget("lv0", 1, 0, { size: 64 << 20 });
  lv0.state = { config: Buffer.from("rack4"), mask: [], reserve: [mac("02:00:00:00:00:0b")] };
  engine = new FakeEngine().add(lv0, new FakeTarget("lv1", 1, 1), new FakePort("eth0", 9000));
  server = await startControlServer({ path: sock, engine, reload: async () => reloadResult });
});

afterEach(async () => {
  await server?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("aoectl admin commands", () => {
  it("status lists exports and interfaces", async () => {
    engine.targets.get("lv0")!.inFlight = 3;
    const r = await aoectl(["status", "--socket", sock]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toMatch(/^aoed \S+ \(pid \d+\), up .*, 2 export\(s\)$/);
    expect(lines).toContainEqual(
      expect.stringMatching(
        /^EXPORT\s+TARGET\s+SIZE\s+MODE\s+IO\s+IN-FLIGHT\s+QUEUE\s+INTERFACES\s+PATH\s+STATE$/,
      ),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(
        /^lv0\s+e1\.0\s+64 MiB\s+rw\s+io_uring\s+3\s+64\s+eth0\s+\/srv\/lv0\.img\s+config "rack4"; reserved for 02:00:00:00:00:0b$/,
      ),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(
        /^lv1\s+e1\.1\s+1 GiB\s+rw\s+io_uring\s+0\s+64\s+eth0\s+\/srv\/lv1\.img\s+-$/,
      ),
    );
    expect(lines).toContainEqual(expect.stringMatching(/^eth0\s+9000\s+02:00:00:00:00:01\s+1$/));
  });

  it("status --json and $AOED_SOCKET", async () => {
    const r = await aoectl(["status", "--json"], { env: { AOED_SOCKET: sock } });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).exports.map((e: { name: string }) => e.name)).toEqual([
      "lv0",
      "lv1",
    ]);
  });

  it("stats prints the counters", async () => {
    Object.assign(engine.targets.get("lv1")!.stats, { reads: 7, bytesRead: 3 << 20, ataErrors: 2 });
    engine.targets.get("lv1")!.stats.latency.observe(0.0005);
    engine.ports.get("eth0")!.stats.rxFrames = 11;
    const r = await aoectl(["stats", "--socket", sock]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("lv1 (e1.1)\n  requests   read 7  write 0");
    expect(r.stdout).toContain("  bytes      read 3 MiB  written 0 B");
    expect(r.stdout).toContain("  latency    avg ms 0.500  requests 1");
    expect(r.stdout).toContain("  errors     ata 2  aoe 0  queue-drops 0");
    expect(r.stdout).toContain("interface eth0\n  received   frames 11");
    // The port's socket has not busy polled: no such line.
    expect(r.stdout).not.toContain("busy-poll");
  });

  it("stats shows busy polling's line for an interface that busy polled", async () => {
    Object.assign(engine.ports.get("eth0")!.kernel, { busyPollHits: 12, busyPollMisses: 3 });
    const r = await aoectl(["stats", "--socket", sock]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      "  dropped    kernel-ring 0  tx-ring-full 0\n  busy-poll  hits 12  misses 3\n",
    );
  });

  it("stats shows group commit's syncs and writes per sync for an export that syncs", async () => {
    Object.assign(engine.targets.get("lv1")!.stats, { syncs: 4, syncedWrites: 10, dsyncWrites: 2 });
    const r = await aoectl(["stats", "--socket", sock]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      "  errors     ata 0  aoe 0  queue-drops 0  acl-denied 0  mask-denied 0\n" +
        "  syncs      fdatasync 4  writes-per-sync 2.5  dsync-writes 2  errors 0\n",
    );
    // lv0 has synced nothing (write-cache on): no such line.
    expect(r.stdout.split("lv1 (")[0]).not.toContain("  syncs ");
  });

  it("show: the value for a name, name: value lines for a glob", async () => {
    expect((await aoectl(["show", "config", "lv0", "--socket", sock])).stdout).toBe("rack4\n");
    expect((await aoectl(["show", "reserve", "lv0", "--socket", sock])).stdout).toBe(
      "02:00:00:00:00:0b\n",
    );
    expect((await aoectl(["show", "config", "lv*", "--socket", sock])).stdout).toBe(
      'lv0: "rack4"\nlv1: ""\n',
    );
    expect((await aoectl(["show", "macmask", "*", "--socket", sock])).stdout).toBe(
      "lv0: (none)\nlv1: (none)\n",
    );
  });

  it("clear says which exports matched, and fails when none does", async () => {
    const r = await aoectl(["clear", "reserve", "lv*", "--socket", sock]);
    expect(r).toEqual({ code: 0, stdout: "cleared reserve on lv0, lv1\n", stderr: "" });
    expect(engine.targets.get("lv0")!.state.reserve).toEqual([]);
    const none = await aoectl(["clear", "stats", "db*", "--socket", sock]);
    expect(none.code).toBe(1);
    expect(none.stderr).toBe('aoectl: no export matches "db*" (exports: lv0, lv1)\n');
  });

  it("usage errors for show and clear", async () => {
    const r = await aoectl(["clear", "everything", "lv0", "--socket", sock]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("aoectl: usage: aoectl clear config|macmask|reserve|stats EXPORT\n");
    expect((await aoectl(["show", "config", "--socket", sock])).code).toBe(2);
  });

  it("reload: success with what changed, failure with every error", async () => {
    reloadResult = {
      ok: true,
      summary: { added: ["lv2"], removed: [], changed: ["lv0"], unchanged: ["lv1"] },
    };
    let r = await aoectl(["reload", "--socket", sock]);
    expect(r).toEqual({
      code: 0,
      stdout: "aoed reloaded its config: added lv2; changed lv0\n",
      stderr: "",
    });
    reloadResult = { ok: false, errors: ["/etc/aoed.yaml:4:11: error: bad", "second"] };
    r = await aoectl(["reload", "--socket", sock]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "aoectl: reload failed (2 error(s)); still running the previous config\n/etc/aoed.yaml:4:11: error: bad\nsecond\n",
    );
  });

  it("stats EXPORT shows only the exports the name or glob matches", async () => {
    engine.add(new FakeTarget("db0", 2, 0));
    const one = await aoectl(["stats", "lv1", "--socket", sock]);
    expect(one.code).toBe(0);
    expect(one.stdout).toContain("lv1 (e1.1)");
    expect(one.stdout).not.toContain("lv0 (e1.0)");
    expect(one.stdout).not.toContain("db0");
    expect(one.stdout).toContain("interface eth0");
    const glob = await aoectl(["stats", "lv*", "--json", "--socket", sock]);
    expect(JSON.parse(glob.stdout).exports.map((e: { name: string }) => e.name)).toEqual([
      "lv0",
      "lv1",
    ]);
    const none = await aoectl(["stats", "nope*", "--socket", sock]);
    expect(none.code).toBe(1);
    expect(none.stderr).toBe('aoectl: no export matches "nope*" (exports: lv0, lv1, db0)\n');
  });

  it("monitor EXPORT --json prints one JSON object per interval for the matching exports", async () => {
    const lv0 = engine.targets.get("lv0")!;
    const tick = setInterval(() => {
      lv0.stats.reads += 10;
    }, 20);
    try {
      const r = await aoectl(["monitor", "lv0", "0.2", "--count", "2", "--json", "--socket", sock]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const lines = r.stdout.trim().split("\n");
      expect(lines).toHaveLength(2);
      for (const line of lines) {
        const o = JSON.parse(line) as {
          seconds: number;
          exports: { name: string; reqPerSec: number }[];
        };
        expect(o.seconds).toBe(0.2);
        expect(o.exports.map((e) => e.name)).toEqual(["lv0"]);
        expect(o.exports[0]!.reqPerSec).toBeGreaterThan(0);
      }
    } finally {
      clearInterval(tick);
    }
  });

  it("monitor --count 2 prints two tables of rates computed from deltas", async () => {
    const lv0 = engine.targets.get("lv0")!;
    const stats = lv0.stats;
    // The daemon's counters grow by the same amount between any two samples,
    // whenever they are taken: 10 reads of 1 MiB, one latency sample of 1 ms.
    Object.defineProperty(lv0, "stats", {
      get() {
        stats.reads += 10;
        stats.bytesRead += 10 * 1024 * 1024;
        stats.latency.observe(0.001);
        return stats;
      },
    });
    const r = await aoectl(["monitor", "0.3", "--count", "2", "--socket", sock]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const tables = r.stdout.split(/^aoed monitor {2}every 0\.3s {2}/m).slice(1);
    expect(tables).toHaveLength(2);
    for (const t of tables) {
      expect(t).toMatch(
        /^EXPORT\s+TARGET\s+REQ\/S\s+READ MB\/S\s+WRITE MB\/S\s+AVG LAT MS\s+ERRORS\s+DROPS\s+IN-FLIGHT$/m,
      );
      const row = /^lv0\s+e1\.0\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+0\s+0\s+0$/m.exec(t);
      expect(row, t).not.toBeNull();
      const [reqs, readMBps] = [Number(row![1]), Number(row![2])];
      // 10 requests over at least the 0.3 s interval (timers may fire a little early).
      expect(reqs).toBeGreaterThan(0);
      expect(reqs).toBeLessThanOrEqual(10 / 0.29);
      // Bytes and requests are deltas over the same interval: 1 MiB per request, up to rounding.
      expect(Math.abs(readMBps - reqs * 1.048576)).toBeLessThanOrEqual(0.005 + 0.05 * 1.048576);
      expect(row![3]).toBe("0.00");
      expect(row![4]).toBe("1.000");
      expect(t).toMatch(/^lv1\s+e1\.1\s+0\.0\s+0\.00\s+0\.00\s+-\s+0\s+0\s+0$/m);
      expect(t).toMatch(/^TOTAL\s/m);
    }
    expect(r.stdout).not.toContain("\x1b["); // not a terminal: no screen control
  });

  it("monitor exits cleanly on SIGINT", async () => {
    const child = execFile(process.execPath, [AOECTL, "monitor", "0.2", "--socket", sock]);
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
    });
    await waitFor("monitor's first table", () => out.includes("IN-FLIGHT"));
    child.kill("SIGINT");
    const code = await new Promise((resolve) => child.on("exit", (c) => resolve(c)));
    expect(code).toBe(0);
  });
});

describe("aoectl when the daemon cannot be reached", () => {
  it("not running: no socket", async () => {
    const missing = path.join(dir, "nope.sock");
    const r = await aoectl(["status", "--socket", missing]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `aoectl: aoed is not running (no socket at ${missing}); if it runs with another \`control-socket:\`, give --socket PATH or set AOED_SOCKET\n`,
    );
  });

  it("not running: a socket file nothing listens on", async () => {
    await server!.close();
    server = null;
    // What a killed daemon leaves: a socket file without a listener.
    const { spawnSync } = await import("node:child_process");
    spawnSync(process.execPath, [
      "-e",
      `require("net").createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, "SIGKILL"))`,
    ]);
    const r = await aoectl(["stats", "--socket", sock]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `aoectl: aoed is not running (no socket at ${sock}: the file is left over and nothing listens on it)\n`,
    );
  });

  it("permission denied names the mode and the group to join", async () => {
    fs.chmodSync(dir, 0o755);
    const nobody = { uid: 65534, gid: 65534 };
    let r = await aoectl(["status", "--socket", sock], nobody);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `aoectl: permission denied on ${sock} (srw-rw----, owner uid 0, group root): only root can use it; run aoectl as root (sudo), or set \`control-group:\` in aoed's config to let a group in\n`,
    );
    fs.chownSync(sock, -1, 4242);
    r = await aoectl(["status", "--socket", sock], nobody);
    expect(r.stderr).toBe(
      `aoectl: permission denied on ${sock} (srw-rw----, owner uid 0, group 4242): run aoectl as root or as a member of group 4242 (\`usermod -aG 4242 USER\`, then log in again)\n`,
    );
    // ... and a member of the group gets in.
    r = await aoectl(["status", "--socket", sock], { uid: 65534, gid: 4242 });
    expect(r.code).toBe(0);
    fs.chmodSync(dir, 0o700);
    r = await aoectl(["status", "--socket", sock], nobody);
    expect(r.stderr).toBe(
      `aoectl: permission denied on ${dir}: this user cannot reach ${sock}; run aoectl as root\n`,
    );
  });
});

describe("aoectl usage", () => {
  it("lists the admin and the initiator commands", async () => {
    const r = await aoectl(["--help"]);
    for (const cmd of [
      "status",
      "stats",
      "monitor",
      "reload",
      "show",
      "clear",
      "discover",
      "identify",
    ])
      expect(r.stdout).toMatch(new RegExp(`^  ${cmd}\\b`, "m"));
    expect(r.stdout).toContain("--socket PATH");
  });

  it("--version prints the version", async () => {
    const r = await aoectl(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^aoectl \d+\.\d+\.\d+/);
  });

  it("an unknown command gets a did-you-mean, an unknown option one line, both exit 2", async () => {
    const typo = await aoectl(["statsu"]);
    expect(typo).toEqual({
      code: 2,
      stdout: "",
      stderr: 'aoectl: unknown command "statsu"; did you mean "stats"? (see aoectl --help)\n',
    });
    const flag = await aoectl(["status", "--jsn"]);
    expect(flag).toEqual({
      code: 2,
      stdout: "",
      stderr: "aoectl: unknown option --jsn; did you mean --json? (see aoectl --help)\n",
    });
  });

  it("initiator commands still want an interface", async () => {
    const r = await aoectl(["discover"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^aoectl: discover: which interface\?/);
  });
});
