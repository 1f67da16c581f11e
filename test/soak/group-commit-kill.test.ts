/**
 * Soak: SIGKILL while 32 writers keep group-committed writes in flight
 * (`write-cache: false`, a file on the machine's disk), many times, on each
 * I/O engine. After every kill, every acknowledged write is in the file and
 * reads back through a restarted aoed; a write never acknowledged left each
 * of its sectors old or new. (SIGKILL keeps the page cache: this proves that
 * group commit never acknowledges a write the daemon has not written; the
 * power-loss half, the sync order, is test/reliability/group-commit.test.ts.)
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AoeClient, type TargetInfo, TimeoutError } from "../../src/client/client.js";
import { probeUring } from "../../src/io/uring.js";
import { type Daemon, startDaemon } from "../helpers/daemon.js";
import { createVethPair, type VethPair } from "../helpers/net.js";
import { pattern, SECTOR, SectorModel } from "../helpers/patterns.js";
import { waitFor } from "../helpers/wait.js";

const KILLS = 60;
const SECTORS = 8192; // 4 MiB
const WRITERS = 32;
const ENGINES = probeUring().ok ? (["io_uring", "threads"] as const) : (["threads"] as const);
const rand = (n: number) => Math.floor(Math.random() * n);

describe.each(ENGINES)("group commit under SIGKILL, io: %s", (engine) => {
  let net: VethPair;
  let dir: string;
  let config: string;
  let daemon: Daemon | null = null;
  let client: AoeClient;
  let target: TargetInfo;
  const img = () => path.join(dir, "img");
  const start = async () => {
    daemon = await startDaemon(["--config", config], {
      netns: net.netns,
      env: { AOED_SOCKET: path.join(dir, "aoed.sock") },
    });
  };

  beforeAll(async () => {
    net = createVethPair({ netns: true, mtu: 9000 });
    // On the machine's disk (not tmpfs), where a sync means something.
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-soak-gc-"));
    fs.writeFileSync(img(), "");
    fs.truncateSync(img(), SECTORS * SECTOR);
    config = path.join(dir, "aoed.yaml");
    fs.writeFileSync(
      config,
      `defaults:
  io: ${engine}
exports:
  - name: durable
    path: ${img()}
    shelf: 5
    slot: 0
    interfaces: [${net.b}]
    write-cache: false
    queue-length: ${WRITERS}
`,
    );
    client = AoeClient.open(net.a, { timeoutMs: 1000, tries: 1 });
    await start();
    [target] = (await client.discover({ shelf: 5, timeoutMs: 300 })) as [TargetInfo];
    expect(target.maxSectors).toBe(17);
  });

  afterAll(async () => {
    client?.close();
    await daemon?.stop();
    net?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it(`every acknowledged write survives ${KILLS} SIGKILLs`, async () => {
    const model = new SectorModel(SECTORS);
    let acked = 0;
    let inflightAtKill = 0;
    for (let round = 0; round < KILLS; round++) {
      let stop = false;
      let inflight = 0;
      const ackedBefore = acked;
      const writer = async () => {
        while (!stop) {
          const count = 1 + rand(target.maxSectors);
          const lba = rand(SECTORS - count + 1);
          if (!model.tryLock(lba, count)) {
            await new Promise((r) => setImmediate(r));
            continue;
          }
          const gen = model.begin(lba, count);
          inflight++;
          try {
            await client.write(target, lba, pattern(lba, count, gen));
            model.acknowledged(lba, count, gen);
            acked++;
          } catch (e) {
            if (!(e instanceof TimeoutError)) throw e;
            model.failed(lba, count);
          } finally {
            inflight--;
          }
        }
      };
      const writers = Array.from({ length: WRITERS }, writer);
      // Kill once this round has had writes acknowledged, a random number of them.
      const want = ackedBefore + 1 + rand(200);
      await waitFor("writes to be acknowledged before the kill", () => acked >= want);
      inflightAtKill += inflight;
      await daemon!.kill();
      stop = true;
      await Promise.all(writers);
      daemon = null;
      const onDisk = fs.readFileSync(img());
      expect(
        model.verify(onDisk, 0, SECTORS, false).violations.slice(0, 5),
        `round ${round}`,
      ).toEqual([]);
      await start();
      const viaAoe = await client.read(target, 0, SECTORS);
      expect(viaAoe.equals(onDisk), `round ${round}: AoE read differs from the file`).toBe(true);
      expect(model.verify(viaAoe, 0, SECTORS, true).violations.slice(0, 5)).toEqual([]);
      expect(model.unresolved).toBe(0);
    }
    console.log(
      `soak group commit io: ${engine}: ${acked} acknowledged, ${inflightAtKill} in flight at kills`,
    );
    expect(inflightAtKill).toBeGreaterThan(KILLS);
  }, 600_000);
});
