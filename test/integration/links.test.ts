/**
 * Interfaces come and go: aoed rebinds a link that is deleted and created
 * again, follows MTU changes, and keeps serving on its other interfaces.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AoeClient } from "../../src/client/client.js";
import { type Daemon, startDaemon } from "../helpers/daemon.js";
import { createVethPair, run, type VethPair } from "../helpers/net.js";
import { waitFor } from "../helpers/wait.js";

describe("links that come and go", () => {
  let net: VethPair;
  let dir: string;
  let daemon: Daemon;
  let steadyClient: AoeClient;
  const flaky = { a: "", b: "" };

  /** A second veth pair whose B end sits in the daemon's namespace (set up unless told otherwise). */
  const addFlaky = (mtu = 1500, upB = true) => {
    run([
      "ip",
      "link",
      "add",
      flaky.a,
      "mtu",
      String(mtu),
      "type",
      "veth",
      "peer",
      "name",
      flaky.b,
      "mtu",
      String(mtu),
      "netns",
      net.netns!,
    ]);
    run(["ip", "link", "set", flaky.a, "up"]);
    if (upB) run(["ip", "-n", net.netns!, "link", "set", flaky.b, "up"]);
  };
  const discoverOn = async (iface: string) => {
    const c = AoeClient.open(iface, { timeoutMs: 200, tries: 2 });
    try {
      return await c.discover({ timeoutMs: 300 });
    } finally {
      c.close();
    }
  };

  beforeAll(async () => {
    net = createVethPair({ netns: true });
    flaky.a = `${net.a.slice(0, -1)}x`;
    flaky.b = `${net.b.slice(0, -1)}y`;
    addFlaky();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-links-"));
    const img = path.join(dir, "d.img");
    fs.writeFileSync(img, "");
    fs.truncateSync(img, 1024 * 1024);
    fs.writeFileSync(
      path.join(dir, "aoed.yaml"),
      `exports:\n  - name: steady\n    path: ${img}\n    shelf: 1\n    slot: 0\n    interfaces: [${net.b}]\n  - name: flaky\n    path: ${img}\n    read-only: true\n    shelf: 1\n    slot: 1\n    interfaces: [${flaky.b}]\n`,
    );
    daemon = await startDaemon(["--config", path.join(dir, "aoed.yaml")], { netns: net.netns });
    steadyClient = AoeClient.open(net.a, { timeoutMs: 200, tries: 3 });
  });

  afterAll(async () => {
    steadyClient?.close();
    await daemon?.stop();
    try {
      run(["ip", "link", "del", flaky.a]);
    } catch {}
    net?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("rebinds and re-announces an interface that is deleted and created again", async () => {
    expect((await discoverOn(flaky.a)).map((t) => t.slot)).toEqual([1]);
    run(["ip", "link", "del", flaky.a]);
    await daemon.waitForLog(/interface is gone/);
    // The other interface's export keeps serving meanwhile.
    const [steady] = await steadyClient.discover({ timeoutMs: 300 });
    expect(steady?.slot).toBe(0);
    expect((await steadyClient.read(steady!, 0, 2)).length).toBe(1024);

    const from = daemon.logs.length;
    // Listen on the new link before it comes up, to see the announcement: aoed
    // binds it as soon as it appears and announces once it is up.
    addFlaky(1500, false);
    const c = AoeClient.open(flaky.a, { timeoutMs: 200, tries: 2 });
    const announced: number[] = [];
    c.onUnsolicited((m) => {
      if (m.kind === "config" && m.tag === 0) announced.push(m.slot);
    });
    try {
      await daemon.waitForLog(/bound again/, { from });
      run(["ip", "-n", net.netns!, "link", "set", flaky.b, "up"]);
      await waitFor("the announcement on the new link", () => announced.length > 0);
      expect(announced).toContain(1);
      expect((await c.discover({ timeoutMs: 300 })).map((t) => t.slot)).toEqual([1]);
    } finally {
      c.close();
    }
  });

  it("follows an MTU change: more sectors per request at 9000", async () => {
    expect((await discoverOn(flaky.a))[0]?.maxSectors).toBe(2);
    const from = daemon.logs.length;
    run(["ip", "link", "set", flaky.a, "mtu", "9000"]);
    run(["ip", "-n", net.netns!, "link", "set", flaky.b, "mtu", "9000"]);
    await daemon.waitForLog(/bound again/, { from });
    await waitFor(
      "discovery to offer 17 sectors",
      async () => (await discoverOn(flaky.a))[0]?.maxSectors === 17,
    );
    const c = AoeClient.open(flaky.a, { timeoutMs: 300, tries: 3 });
    try {
      const [t] = await c.discover({ timeoutMs: 300 });
      expect((await c.read(t!, 0, 34)).length).toBe(34 * 512);
    } finally {
      c.close();
    }
  });

  it("logs the socket error of a link set down with its name, and serves again once it is up", async () => {
    // The steady link was bound up: no error of its own yet that would start a quiet period.
    const from = daemon.logs.length;
    run(["ip", "-n", net.netns!, "link", "set", net.b, "down"]);
    const line = await daemon.waitForLog(/^socket error$/, { from });
    expect(line).toMatchObject({ interface: net.b, code: "ENETDOWN" });
    run(["ip", "-n", net.netns!, "link", "set", net.b, "up"]);
    await waitFor(
      "discovery on the link brought back up",
      async () => (await discoverOn(net.a)).length === 1,
    );
    // In the log, not a process warning on stderr.
    expect(daemon.stderr()).not.toContain("ENETDOWN");
  });
});
