/**
 * Boot races: an export whose backing file or interface does not exist when
 * aoed starts waits for it instead of stopping the daemon, and is served once
 * it appears; the other exports serve meanwhile. `aoed check` says what is
 * missing and fails, and reports a file the user cannot open with the fix.
 */
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AoeClient } from "../../src/client/client.js";
import type { StatusResult } from "../../src/control/protocol.js";
import { aoectlJson } from "../helpers/aoectl.js";
import { AOED, type Daemon, startDaemon } from "../helpers/daemon.js";
import { createVethPair, type VethPair } from "../helpers/net.js";
import { scrapeMetrics } from "../helpers/scrape.js";
import { waitFor } from "../helpers/wait.js";

const MiB = 1024 * 1024;

function image(p: string): void {
  fs.writeFileSync(p, "");
  fs.truncateSync(p, 4 * MiB);
}

function check(config: string, netns: string | null, uid?: number) {
  const argv = [process.execPath, AOED, "check", "--config", config];
  const r = netns
    ? spawnSync("ip", ["netns", "exec", netns, ...argv], { encoding: "utf8", timeout: 30_000 })
    : spawnSync(argv[0]!, argv.slice(1), {
        encoding: "utf8",
        timeout: 30_000,
        ...(uid !== undefined ? { uid, gid: uid } : {}),
      });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("exports whose device or interface is missing at start", () => {
  let net: VethPair;
  let dir: string;
  let sock: string;
  let config: string;
  let daemon: Daemon;
  let client: AoeClient;
  let lateClient: AoeClient | null = null;
  // The initiator's end of the interface that appears late; the daemon's end is late0.
  const lateHost = `lw${process.pid % 10000}a`;

  const discovered = async (c: AoeClient, slot: number) =>
    (await c.discover({ shelf: 1, slot, timeoutMs: 200 })).length === 1;

  beforeAll(async () => {
    net = createVethPair({ netns: true });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-waiting-"));
    sock = path.join(dir, "aoed.sock");
    image(path.join(dir, "now.img"));
    image(path.join(dir, "iface.img"));
    config = path.join(dir, "aoed.yaml");
    fs.writeFileSync(
      config,
      `metrics:
  listen: 127.0.0.1:9288
control-socket: ${sock}
exports:
  - name: now
    path: ${dir}/now.img
    shelf: 1
    slot: 0
    interfaces: [${net.b}]
  - name: file-later
    path: ${dir}/later.img
    shelf: 1
    slot: 1
    interfaces: [${net.b}]
  - name: iface-later
    path: ${dir}/iface.img
    shelf: 1
    slot: 2
    interfaces: [late0]
`,
    );
    client = AoeClient.open(net.a, { timeoutMs: 300, tries: 3 });
    daemon = await startDaemon(["--config", config], { netns: net.netns });
  });

  afterAll(async () => {
    client?.close();
    lateClient?.close();
    const code = await daemon?.stop();
    spawnSync("ip", ["link", "del", lateHost]);
    net?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    expect(code).toBe(0);
  });

  it("starts, serves the export that is there and says which ones wait and for what", async () => {
    const ready = await daemon.waitForLog(/aoed ready/);
    expect(ready.msg).toBe(
      "aoed ready, serving 1 export(s), 2 waiting for their device or interface",
    );
    expect(ready.waiting).toEqual([
      { name: "file-later", target: "e1.1", waitingFor: [`file ${dir}/later.img`] },
      { name: "iface-later", target: "e1.2", waitingFor: ["interface late0"] },
    ]);
    expect(await discovered(client, 0)).toBe(true);
    const waits = daemon.logs.filter((l) => String(l.msg).startsWith("export waits for"));
    expect(waits.map((l) => l.export)).toEqual(["file-later", "iface-later"]);
  });

  it("aoectl status marks the waiting exports and the missing interface", async () => {
    const s = await aoectlJson<StatusResult>(sock, "status");
    const byName = new Map(s.exports.map((e) => [e.name, e]));
    expect(byName.get("now")).toMatchObject({ up: true, waitingFor: [] });
    expect(byName.get("file-later")).toMatchObject({
      up: false,
      waitingFor: [`file ${dir}/later.img`],
    });
    expect(byName.get("iface-later")).toMatchObject({ up: false, waitingFor: ["interface late0"] });
    expect(s.interfaces.find((i) => i.name === "late0")).toMatchObject({ up: false });
  });

  it("exposes aoed_export_up and aoed_interface_up", async () => {
    const m = await scrapeMetrics(net.netns!);
    expect(m.get('aoed_export_up{export="now"}')).toBe(1);
    expect(m.get('aoed_export_up{export="file-later"}')).toBe(0);
    expect(m.get('aoed_export_up{export="iface-later"}')).toBe(0);
    expect(m.get(`aoed_interface_up{interface="${net.b}"}`)).toBe(1);
    expect(m.get('aoed_interface_up{interface="late0"}')).toBe(0);
  });

  it("aoed check names what is missing and exits 1", () => {
    const r = check(config, net.netns);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${config}: 3 export(s), 2 would not serve now`);
    expect(r.stdout).toContain(`NOT SERVING: waits: ${dir}/later.img does not exist`);
    expect(r.stdout).toContain("NOT SERVING: waits: no interface late0");
    expect(r.stderr).toContain(
      `the backing file ${dir}/later.img does not exist; the export waits for it`,
    );
    expect(r.stderr).toMatch(/valid, but 2 of 3 export\(s\) would not serve now as user root/);
  });

  it("serves the file once it is created", async () => {
    image(path.join(dir, "later.img"));
    await waitFor("e1.1 to answer discovery", () => discovered(client, 1));
    const up = await daemon.waitForLog(/export is up: what it waited for appeared/);
    // With what the start-up log says of an export: the engine it got, and why.
    expect(["io_uring", "threads", "mmap", "sync"]).toContain(up.io);
  });

  it("serves on the interface once it appears", async () => {
    execFileSync("ip", [
      "link",
      "add",
      lateHost,
      "type",
      "veth",
      "peer",
      "name",
      "late0",
      "netns",
      net.netns!,
    ]);
    execFileSync("ip", ["link", "set", lateHost, "up"]);
    execFileSync("ip", ["-n", net.netns!, "link", "set", "late0", "up"]);
    lateClient = AoeClient.open(lateHost, { timeoutMs: 300, tries: 3 });
    const c = lateClient;
    await waitFor("e1.2 to answer discovery on the new interface", () => discovered(c, 2));
    const m = await scrapeMetrics(net.netns!);
    expect(m.get('aoed_export_up{export="iface-later"}')).toBe(1);
    expect(m.get('aoed_interface_up{interface="late0"}')).toBe(1);
    expect(await discovered(client, 0)).toBe(true);
  });

  it("aoed check passes once everything exists", () => {
    const r = check(config, net.netns);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${config}: OK, 3 export(s)`);
  });
});

describe("aoed check as another user", () => {
  it("opens what the daemon would open and names the fix for EACCES", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-check-"));
    try {
      fs.chmodSync(dir, 0o755);
      const img = path.join(dir, "root-only.img");
      image(img);
      fs.chmodSync(img, 0o644); // readable by everyone, writable by root only
      const config = path.join(dir, "aoed.yaml");
      fs.writeFileSync(
        config,
        `control-socket: ${dir}/aoed.sock\nexports:\n  - name: disk\n    path: ${img}\n    shelf: 0\n    slot: 1\n    interfaces: [lo]\n`,
      );
      fs.chmodSync(config, 0o644);
      const nobody = 65534;
      const r = check(config, null, nobody);
      expect(r.code).toBe(1);
      expect(r.stdout).toContain(
        `NOT SERVING: cannot open: user nobody may not open ${img} for reading and writing (open: EACCES); fix: give nobody access to exactly this path, e.g. \`setfacl -m u:nobody:rw ${img}\`, or set \`read-only: true\` if it should be read-only`,
      );
      // Read-only, the same user can open it: what the daemon would do.
      fs.writeFileSync(config, `${fs.readFileSync(config, "utf8")}    read-only: true\n`);
      const ro = check(config, null, nobody);
      expect(ro.stderr).toBe("");
      expect(ro.code).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
