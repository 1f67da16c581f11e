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
import { waitFor } from "../helpers/wait.js";

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

/** The open flags of each of the process's descriptors on `file` (from /proc/PID/fdinfo). */
function openOn(pid: number, file: string): number[] {
  const dir = `/proc/${pid}/fd`;
  return fs.readdirSync(dir).flatMap((fd) => {
    try {
      if (fs.readlinkSync(path.join(dir, fd)) !== file) return [];
      const info = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8");
      return [Number.parseInt(/^flags:\s+([0-7]+)$/m.exec(info)![1]!, 8)];
    } catch {
      return []; // closed meanwhile
    }
  });
}

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

    const rw = openOn(daemon.pid, dev!).length;
    expect(rw).toBeGreaterThan(0);
    const from = daemon.logs.length;
    rewrite(true);
    const line = await daemon.waitForLog(/config (not )?reloaded/, { from });
    expect(line.msg).toBe("config reloaded");
    expect(line).toMatchObject({ changed: ["blk"] });
    await expect(client.write(t!, 0, Buffer.alloc(512, 1))).rejects.toBeInstanceOf(AtaErrorReply);
    expect((await client.read(t!, 0, 1)).every((b) => b === 0x42)).toBe(true);
    // The claim moves to the new backend once the old one has drained and closed:
    // its read-write descriptors go, and the new one opens a descriptor of its own for the claim.
    await waitFor("the old backend to close and the new one to claim the device", () => {
      const now = openOn(daemon.pid, dev!);
      return now.every((flags) => (flags & 3) === fs.constants.O_RDONLY) && now.length === rw + 1;
    });
    // Still nobody else may open it exclusively.
    expect(exclusiveOpenFails(dev!)).toBe(true);
    expect(daemon.logs.some((l) => /exclusive claim/.test(String(l.msg)))).toBe(false);
  });
});
