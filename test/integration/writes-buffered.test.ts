/**
 * A direct-io export on a store whose O_DIRECT needs 4 KiB alignment (a 4Kn
 * disk; here a loop device with 4096-byte sectors) sends its writes through
 * the page cache. The admin reads why wherever the export is described: the
 * log when a reload opens it, and aoectl status (text and JSON), not only the
 * start-up log.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StatusResult } from "../../src/control/protocol.js";
import { aoectl, aoectlJson } from "../helpers/aoectl.js";
import { type Daemon, startDaemon } from "../helpers/daemon.js";
import { createVethPair, type VethPair } from "../helpers/net.js";
import { sparseFile } from "../helpers/net-daemon.js";
import { attachLoop, type Loop, loopUnavailable } from "../helpers/scratch-mounts.js";

const MiB = 1024 * 1024;
const WHY = /^O_DIRECT needs 4096-byte alignment here: .*writes go through the page cache/;

describe("writes through the page cache on a 4Kn store, reported after a reload", () => {
  let net: VethPair;
  let dir: string;
  let sock: string;
  let config: string;
  let loop: Loop | null = null;
  let daemon: Daemon;

  const write = (exports: string) =>
    fs.writeFileSync(config, `control-socket: ${sock}\nexports:\n${exports}`);
  const plain = () =>
    `  - name: plain\n    path: ${path.join(dir, "plain.img")}\n    shelf: 5\n    slot: 0\n    direct-io: true\n    interfaces: [${net.b}]\n`;
  const fourK = () =>
    `  - name: fourk\n    path: ${loop!.dev}\n    shelf: 5\n    slot: 1\n    direct-io: true\n    interfaces: [${net.b}]\n`;

  beforeAll(async () => {
    // On /var/tmp, not a tmpfs: the plain export's file must take O_DIRECT.
    dir = fs.mkdtempSync(path.join("/var/tmp", "aoed-4kn-"));
    for (const name of ["plain.img", "fourk.img"]) sparseFile(path.join(dir, name), 4 * MiB);
    if (loopUnavailable() !== null) return;
    loop = attachLoop(path.join(dir, "fourk.img"), ["--sector-size", "4096"]);
    net = createVethPair({ netns: true });
    sock = path.join(dir, "aoed.sock");
    config = path.join(dir, "aoed.yaml");
    write(plain());
    daemon = await startDaemon(["--config", config], { netns: net.netns });
  });

  afterAll(async () => {
    await daemon?.stop();
    net?.destroy();
    loop?.release();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("a reload that adds the export logs why its writes go buffered", async (ctx) => {
    if (loop === null) ctx.skip();
    const from = daemon.logs.length;
    write(plain() + fourK());
    expect((await aoectl(sock, ["reload"])).code).toBe(0);
    const line = await daemon.waitForLog(/^export serving$/, { from });
    expect(line).toMatchObject({ export: "fourk", target: "e5.1", directIo: true });
    expect(String(line.writesBuffered)).toMatch(WHY);
    // Only the export the reload opened: the unchanged one is not reported again.
    expect(
      daemon.logs.slice(from).filter((l) => l.msg === "export serving" && l.export === "plain"),
    ).toEqual([]);
  });

  it("aoectl status says it under the table and in its JSON; the 512-byte export has nothing", async (ctx) => {
    if (loop === null) ctx.skip();
    const s = await aoectlJson<StatusResult>(sock, "status");
    const byName = new Map(s.exports.map((e) => [e.name, e]));
    expect(byName.get("plain")!.writesBuffered).toBeNull();
    expect(byName.get("fourk")!.writesBuffered).toMatch(WHY);
    const r = await aoectl(sock, ["status"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^fourk \(e5\.1\): direct-io: O_DIRECT needs 4096-byte alignment here/m,
    );
    expect(r.stdout).not.toMatch(/^plain \(e5\.0\): direct-io:/m);
  });
});
