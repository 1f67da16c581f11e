/**
 * Reloading a block-device export whose backend must be reopened: the old
 * backend holds the device with O_EXCL, so the new one opens shared and takes
 * the exclusive claim over once the old one has drained.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AoeClient, AtaErrorReply } from "../../src/client/client.js";
import { type Daemon, startDaemon } from "../helpers/daemon.js";
import { createVethPair, type VethPair } from "../helpers/net.js";

function losetup(file: string): string | null {
  try {
    return execFileSync("losetup", ["--find", "--show", file], { encoding: "utf8" }).trim();
  } catch {
    return null;
  }
}

const exclusiveOpenFails = (dev: string) => {
  try {
    fs.closeSync(fs.openSync(dev, fs.constants.O_RDONLY | fs.constants.O_EXCL));
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EBUSY";
  }
};

describe("reload of a block-device export", () => {
  let net: VethPair;
  let dir: string;
  let dev: string | null = null;
  let daemon: Daemon;
  let client: AoeClient;
  let config: string;
  let rewrite: (readOnly: boolean) => void;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-blk-"));
    const img = path.join(dir, "disk.img");
    fs.writeFileSync(img, "");
    fs.truncateSync(img, 4 * 1024 * 1024);
    dev = losetup(img);
    if (dev === null) return;
    net = createVethPair({ netns: true });
    config = path.join(dir, "aoed.yaml");
    rewrite = (readOnly: boolean) =>
      fs.writeFileSync(
        config,
        `watch-config: true\nexports:\n  - name: blk\n    path: ${dev}\n    shelf: 3\n    slot: 3\n    read-only: ${readOnly}\n    interfaces: [${net.b}]\n`,
      );
    rewrite(false);
    client = AoeClient.open(net.a, { timeoutMs: 300, tries: 3 });
    daemon = await startDaemon(["--config", config], { netns: net.netns });
  });

  afterAll(async () => {
    client?.close();
    await daemon?.stop();
    net?.destroy();
    if (dev) execFileSync("losetup", ["-d", dev]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("switches read-only without EBUSY and keeps the device claimed", async (ctx) => {
    if (dev === null) ctx.skip();
    const [t] = await client.discover({ shelf: 3, slot: 3, timeoutMs: 300 });
    await client.write(t!, 0, Buffer.alloc(512, 0x42));
    expect(exclusiveOpenFails(dev!)).toBe(true);

    const from = daemon.logs.length;
    rewrite(true);
    const line = await daemon.waitForLog(/config (not )?reloaded/, { from });
    expect(line.msg).toBe("config reloaded");
    expect(line).toMatchObject({ changed: ["blk"] });
    await expect(client.write(t!, 0, Buffer.alloc(512, 1))).rejects.toBeInstanceOf(AtaErrorReply);
    expect((await client.read(t!, 0, 1)).every((b) => b === 0x42)).toBe(true);
    // The claim moved to the new backend: still nobody else may open it exclusively.
    await new Promise((r) => setTimeout(r, 200));
    expect(exclusiveOpenFails(dev!)).toBe(true);
    expect(daemon.logs.some((l) => /exclusive claim/.test(String(l.msg)))).toBe(false);
  });
});
