/**
 * SIGKILL at random moments while 16 writers keep multi-sector writes in
 * flight (write-cache off), for each I/O engine. After every kill the backing
 * file is read directly and then through a restarted aoed: every acknowledged
 * write is there intact; a write that was never acknowledged left each of its
 * sectors old or new, never a torn sector. SIGKILL of a process does not lose
 * the page cache, so this proves "acknowledged = in the file, not corrupted
 * or reordered by the daemon", not power-loss durability: the sync semantics
 * that give that are tested in test/reliability/durability.test.ts; see
 * docs/reliability.md.
 */
import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { TimeoutError } from "../../src/client/client.js";
import { AtaCmd, AtaFlag } from "../../src/protocol/constants.js";
import { pattern, SECTOR, SectorModel } from "../helpers/patterns.js";
import { waitFor } from "../helpers/wait.js";
import { DISK_SECTORS, durabilityRig, ENGINES } from "../reliability/durability-rig.js";

const KILLS = 20;
const WRITERS = 16;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rand = (n: number) => Math.floor(Math.random() * n);

describe.each(ENGINES)("SIGKILL under writes, io: %s", (engine) => {
  const rig = durabilityRig(engine, 400);

  it(`every acknowledged write survives ${KILLS} SIGKILLs; unacknowledged ones are old or new per sector`, async () => {
    const model = new SectorModel(DISK_SECTORS);
    const totals = {
      acked: 0,
      unknown: 0,
      inflightAtKill: 0,
      landed: 0,
      lost: 0,
      torn: 0,
    };
    const unexpected: string[] = [];
    for (let round = 0; round < KILLS; round++) {
      let stop = false;
      let inflight = 0;
      let acked = 0;
      const worker = async () => {
        while (!stop) {
          let lba = 0;
          let count = 0;
          let locked = false;
          for (let tries = 0; tries < 20 && !locked; tries++) {
            count = 1 + rand(rig.syncT.maxSectors);
            lba = rand(DISK_SECTORS - count + 1);
            locked = model.tryLock(lba, count);
          }
          if (!locked) {
            await sleep(1);
            continue;
          }
          const gen = model.begin(lba, count);
          inflight++;
          try {
            await rig.client.ata(rig.syncT, {
              aflags: AtaFlag.lba48 | AtaFlag.write,
              sectorCount: count,
              cmdStatus: AtaCmd.writeSectorsExt,
              lba,
              data: pattern(lba, count, gen),
            });
            model.acknowledged(lba, count, gen);
            acked++;
          } catch (e) {
            if (!(e instanceof TimeoutError)) unexpected.push(String(e));
            model.failed(lba, count);
            totals.unknown++;
          } finally {
            inflight--;
          }
        }
      };
      const workers = Array.from({ length: WRITERS }, worker);
      // Kill at a random moment once writes are flowing (20 acknowledged already).
      await waitFor(`20 acknowledged writes in round ${round}`, () => acked >= 20, {
        timeoutMs: 60_000,
      });
      await sleep(rand(230));
      totals.inflightAtKill += inflight;
      await rig.daemon!.kill();
      stop = true;
      await Promise.all(workers);
      rig.daemon = null;
      totals.acked += acked;

      // What is in the file, read by us with no daemon running.
      const onDisk = fs.readFileSync(rig.syncImg());
      expect(onDisk.length).toBe(DISK_SECTORS * SECTOR);
      const direct = model.verify(onDisk, 0, DISK_SECTORS, false);
      expect(direct.violations.slice(0, 10), `round ${round}, backing file`).toEqual([]);

      // The same through a restarted daemon; then unknown outcomes are settled by what is there.
      await rig.start();
      const viaAoe = await rig.client.read(rig.syncT, 0, DISK_SECTORS);
      expect(viaAoe.equals(onDisk), `round ${round}: AoE read differs from the file`).toBe(true);
      const r = model.verify(viaAoe, 0, DISK_SECTORS, true);
      expect(r.violations.slice(0, 10), `round ${round}, through aoed`).toEqual([]);
      expect(model.unresolved).toBe(0);
      totals.landed += r.unknownLanded;
      totals.lost += r.unknownLost;
      totals.torn += r.tornRequests;
    }
    console.log(`durability io: ${engine}: ${JSON.stringify(totals)}`);
    expect(unexpected).toEqual([]);
    // The kills did hit writes in flight (16 writers keep one each outstanding between replies).
    expect(totals.inflightAtKill).toBeGreaterThan(KILLS);
  }, 600_000);
});
