/**
 * Reload under load, per I/O engine: while eight initiator tasks keep
 * verified reads and writes going on one export, the config is reloaded over
 * the control socket again and again, each time changing that export (queue
 * length and ACL: a new target takes over its address while the old one
 * answers what it has in flight) and adding or removing another.
 *
 * Passes when: every reload succeeds; every write is acknowledged and every
 * read returns what was last written (the client retransmits what a
 * hand-over drops); afterwards the whole export, read over AoE and from the
 * file, holds exactly what was acknowledged; the daemon exits cleanly.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AoeClient, type TargetInfo } from "../../src/client/client.js";
import { ControlClient } from "../../src/control/client.js";
import type { ReloadResult, StatusResult } from "../../src/control/protocol.js";
import { type Daemon, startDaemon } from "../helpers/daemon.js";
import { createVethPair, linkInfo, type VethPair } from "../helpers/net.js";
import { ENGINES, expectEngine } from "./engines.js";

const RELOADS = 200;
const TASKS = 8;
const SECTORS = 16384; // 8 MiB
const SPAN = SECTORS / TASKS; // each task owns its range: no two writes race for a sector

describe.each(ENGINES)("reload under load, io: %s", (engine) => {
  let net: VethPair;
  let dir: string;
  let sock: string;
  let configPath: string;
  let daemon: Daemon;
  let client: AoeClient;
  let target: TargetInfo;
  const shadow = Buffer.alloc(SECTORS * 512);
  const img = () => path.join(dir, "busy.img");

  const writeConfig = (i: number) => {
    const clientMac = linkInfo(net.a).mac;
    const extra = `  - name: extra
    path: ${path.join(dir, "extra.img")}
    shelf: 3
    slot: 9
    interfaces: [${net.b}]
`;
    fs.writeFileSync(
      configPath,
      `control-socket: ${sock}
defaults:
  io: ${engine}
exports:
  - name: busy
    path: ${img()}
    shelf: 3
    slot: 1
    interfaces: [${net.b}]
    queue-length: ${i % 2 === 0 ? 16 : 32}
    accept: [${clientMac}${i % 3 === 0 ? "" : `, 02:00:00:00:00:${(i % 256).toString(16).padStart(2, "0")}`}]
    policy: reject
${i % 2 === 0 ? "" : extra}`,
    );
  };

  beforeAll(async () => {
    net = createVethPair({ netns: true });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-reload-load-"));
    sock = path.join(dir, "aoed.sock");
    configPath = path.join(dir, "aoed.yaml");
    for (const name of ["busy", "extra"]) {
      fs.writeFileSync(path.join(dir, `${name}.img`), "");
      fs.truncateSync(path.join(dir, `${name}.img`), SECTORS * 512);
    }
    writeConfig(0);
    daemon = await startDaemon(["--config", configPath], {
      netns: net.netns,
    });
    expectEngine(daemon, engine);
    // Generous retries: a request the old target dropped while handing over is sent again.
    client = AoeClient.open(net.a, { timeoutMs: 100, tries: 100 });
    [target] = (await client.discover({ shelf: 3, slot: 1, timeoutMs: 500 })) as [TargetInfo];
    expect(target).toBeDefined();
  }, 60_000);

  afterAll(async () => {
    client?.close();
    const code = await daemon?.stop();
    net?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    expect(code).toBe(0);
  });

  it(`${RELOADS} reloads changing the export under verified I/O: nothing lost or wrong`, async () => {
    let reloading = true;
    let roundTrips = 0;
    const task = async (n: number) => {
      // At least a few round trips per task, however soon the reloads are over.
      for (let i = 0; reloading || i < 5; i++) {
        const lba = n * SPAN + ((i * 8 * 7) % (SPAN - 8));
        const data = randomBytes(4096);
        await client.write(target, lba, data);
        data.copy(shadow, lba * 512);
        const back = await client.read(target, lba, 8);
        if (!back.equals(data)) throw new Error(`task ${n}, lba ${lba}: read back differs`);
        roundTrips++;
      }
    };
    const tasks = Array.from({ length: TASKS }, (_, n) => task(n));
    const admin = await ControlClient.connect(sock);
    try {
      for (let i = 1; i <= RELOADS; i++) {
        writeConfig(i);
        // The file watcher may have applied it already; either way it is in effect on return.
        expect((await admin.request<ReloadResult>({ cmd: "reload" })).ok).toBe(true);
        const { exports } = await admin.request<StatusResult>({ cmd: "status" });
        expect(exports.map((e) => `${e.name} ${e.queueLength}`)).toEqual(
          i % 2 === 0 ? ["busy 16"] : ["busy 32", "extra 64"],
        );
      }
    } finally {
      reloading = false;
      admin.close();
      // Every task finished: none failed, or its error is reported here.
      const failed = (await Promise.allSettled(tasks)).filter((r) => r.status === "rejected");
      expect(failed.map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
    }
    console.log(
      `reload under load io: ${engine}: ${RELOADS} reloads, ${roundTrips} verified round trips`,
    );
    // All that was acknowledged is there, over AoE and in the file.
    for (let lba = 0; lba < SECTORS; lba += 1024) {
      const got = await client.read(target, lba, 1024);
      expect(got.equals(shadow.subarray(lba * 512, (lba + 1024) * 512)), `lba ${lba}`).toBe(true);
    }
    expect(fs.readFileSync(img()).equals(shadow)).toBe(true);
    expect(daemon.proc.exitCode).toBeNull();
  }, 600_000);
});
