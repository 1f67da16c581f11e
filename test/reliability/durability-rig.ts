/**
 * The durability tests' rig, per I/O engine: a daemon in a network namespace
 * (MTU 9000: 17 sectors per request, so requests span pages and can tear)
 * with two exports, `sync` (write-cache off) and `cached` (write-cache on),
 * and a client that never retransmits. Used by test/reliability/durability.test.ts
 * (sync semantics) and the soak suite's SIGKILL loop (test/soak/durability-kill.test.ts).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect } from "vitest";
import { AoeClient, type TargetInfo } from "../../src/client/client.js";
import { probeUring } from "../../src/io/uring.js";
import { type Daemon, startDaemon } from "../helpers/daemon.js";
import { hasIoUring } from "../helpers/ktrace.js";
import { createVethPair, type VethPair } from "../helpers/net.js";
import { SECTOR } from "../helpers/patterns.js";
import { discoverUntil } from "../helpers/wait.js";

export const DISK_SECTORS = 4096; // 2 MiB: small, so sectors are overwritten many times
export const ENGINES = probeUring().ok
  ? (["threads", "io_uring"] as const)
  : (["threads"] as const);

export interface DurabilityRig {
  engine: (typeof ENGINES)[number];
  net: VethPair;
  dir: string;
  daemon: Daemon | null;
  client: AoeClient;
  syncT: TargetInfo;
  cachedT: TargetInfo;
  syncImg(): string;
  cachedImg(): string;
  /** Starts aoed (optionally under `wrap`, e.g. strace) and sets `daemon`. */
  start(wrap?: string[]): Promise<Daemon>;
}

/**
 * Registers beforeAll/afterAll in the calling describe; the rig is usable inside its tests.
 * `tryMs`: how long the client waits for each request's one try (default 15 s: an
 * fdatasync on a busy disk can take seconds). A kill loop, where a timeout only
 * makes a write's outcome unknown, keeps it short so that a kill is not waited out.
 */
export function durabilityRig(engine: DurabilityRig["engine"], tryMs = 15_000): DurabilityRig {
  let config = "";
  const rig = {
    engine,
    daemon: null,
    syncImg: () => path.join(rig.dir, "sync.img"),
    cachedImg: () => path.join(rig.dir, "cached.img"),
    async start(wrap?: string[]) {
      const opts: Parameters<typeof startDaemon>[1] = {
        netns: rig.net.netns,
        // The socket is left behind by every SIGKILL: keep it in our directory.
        env: { AOED_SOCKET: path.join(rig.dir, "aoed.sock") },
      };
      if (wrap) opts.wrap = wrap;
      rig.daemon = await startDaemon(["--config", config], opts);
      return rig.daemon;
    },
  } as DurabilityRig;

  beforeAll(async () => {
    rig.net = createVethPair({ netns: true, mtu: 9000 });
    rig.dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-durability-"));
    for (const img of [rig.syncImg(), rig.cachedImg()]) {
      fs.writeFileSync(img, "");
      fs.truncateSync(img, DISK_SECTORS * SECTOR);
    }
    config = path.join(rig.dir, "aoed.yaml");
    fs.writeFileSync(
      config,
      `defaults:
  io: ${engine}
exports:
  - name: sync
    path: ${rig.syncImg()}
    shelf: 7
    slot: 0
    interfaces: [${rig.net.b}]
    write-cache: false
  - name: cached
    path: ${rig.cachedImg()}
    shelf: 7
    slot: 1
    interfaces: [${rig.net.b}]
    write-cache: true
`,
    );
    // One try per request: the client never retransmits, so a write is either
    // acknowledged or of unknown outcome, and no stale duplicate can land later.
    rig.client = AoeClient.open(rig.net.a, { timeoutMs: tryMs, tries: 1 });
    await rig.start();
    const found = await discoverUntil(rig.client, { shelf: 7 }, (f) => f.length >= 2);
    rig.syncT = found.find((t) => t.slot === 0)!;
    rig.cachedT = found.find((t) => t.slot === 1)!;
    expect(rig.syncT.maxSectors).toBe(17);
    expect(rig.cachedT).toBeDefined();
    // The engine asked for is the one in use.
    expect(hasIoUring(rig.daemon!.pid)).toBe(engine === "io_uring");
  });

  afterAll(async () => {
    rig.client?.close();
    await rig.daemon?.stop();
    rig.net?.destroy();
    if (rig.dir) fs.rmSync(rig.dir, { recursive: true, force: true });
  });

  return rig;
}
