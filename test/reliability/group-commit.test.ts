/**
 * Group commit with `write-cache: false`, seen from the kernel, not from the
 * daemon: ext4's tracepoints record when each write's data reached the page
 * cache (write_end) and when each data sync of the file began and ended
 * (ext4_sync_file_enter/exit, for fdatasync and RWF_DSYNC writes alike, from
 * a syscall or from io_uring); the client records when each reply arrived.
 *
 * - Every reply follows a sync that began after its write's data was in the
 *   page cache and ended before the reply was received.
 * - One sync at a time: enter and exit alternate.
 * - Syncs are shared (fewer syncs than writes, 16 writes in flight), and no
 *   sync covers more than queue-length writes.
 * - FLUSH CACHE EXT: a sync between the request and its reply.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AoeClient, type TargetInfo } from "../../src/client/client.js";
import { probeUring } from "../../src/io/uring.js";
import { type Daemon, startDaemon } from "../helpers/daemon.js";
import { fsType, KernelTrace, type SyncEvent } from "../helpers/ktrace.js";
import { createVethPair, type VethPair } from "../helpers/net.js";
import { pattern } from "../helpers/patterns.js";

const QUEUE = 16;
const WRITES = 480;
const SPACING = 8; // sectors between writes: each one's own page, never rewritten

const ENGINES = probeUring().ok ? (["threads", "io_uring"] as const) : (["threads"] as const);
const traceUnavailable = KernelTrace.unavailable();
const now = () => Number(process.hrtime.bigint()) / 1e9;

/** Sync events as (enter, exit) pairs; throws unless they strictly alternate (one in flight). */
function syncPairs(events: SyncEvent[]): { enter: number; exit: number; ret: number }[] {
  const sorted = [...events].sort((a, b) => a.t - b.t);
  const pairs: { enter: number; exit: number; ret: number }[] = [];
  for (let i = 0; i < sorted.length; i += 2) {
    const enter = sorted[i]!;
    const exit = sorted[i + 1];
    if (enter.phase !== "enter" || exit?.phase !== "exit")
      throw new Error(
        `syncs overlap or are cut: event ${i} is ${enter.phase} at ${enter.t}, then ${exit?.phase} at ${exit?.t}`,
      );
    pairs.push({ enter: enter.t, exit: exit.t, ret: exit.ret ?? -1 });
  }
  return pairs;
}

describe.skipIf(traceUnavailable !== null).each(ENGINES)(
  "group commit seen by the kernel, io: %s",
  (engine) => {
    let net: VethPair;
    let dir: string;
    let daemon: Daemon;
    let client: AoeClient;
    let target: TargetInfo;
    const img = () => path.join(dir, "sync.img");

    beforeAll(async () => {
      net = createVethPair({ netns: true, mtu: 1500 });
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-group-commit-"));
      fs.writeFileSync(img(), "");
      fs.truncateSync(img(), WRITES * SPACING * 512 + 1024 * 1024);
      const config = path.join(dir, "aoed.yaml");
      fs.writeFileSync(
        config,
        `defaults:
  io: ${engine}
exports:
  - name: sync
    path: ${img()}
    shelf: 8
    slot: 0
    interfaces: [${net.b}]
    write-cache: false
    queue-length: ${QUEUE}
`,
      );
      client = AoeClient.open(net.a, { timeoutMs: 2000, tries: 1 });
      daemon = await startDaemon(["--config", config], {
        netns: net.netns,
        env: { AOED_SOCKET: path.join(dir, "aoed.sock") },
        // One CPU for the daemon and the kernel work it causes (its io-wq and pool
        // threads inherit it): a write's write_end and the sync after it are then
        // stamped by the same CPU's clock, so their order in the trace is the real one.
        wrap: ["taskset", "-c", "0"],
      });
      const found = await client.discover({ shelf: 8, timeoutMs: 300 });
      expect(found.map((t) => t.bufferCount)).toEqual([QUEUE]);
      target = found[0]!;
    });

    afterAll(async () => {
      client?.close();
      await daemon?.stop();
      net?.destroy();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it(`${WRITES} writes, ${QUEUE} in flight: each reply follows a sync that began after the write's data was in the page cache`, async ({
      skip,
    }) => {
      // stat -f calls ext4 "ext2/ext3"; the tracepoints are ext4's.
      if (fsType(img()) !== "ext2/ext3") skip(`${img()} is not on ext4`);
      const trace = KernelTrace.open()
        .syncsOf(fs.statSync(img()).ino)
        .writesOf(fs.statSync(img()).ino);
      try {
        const replies = new Map<number, number>(); // byte position -> reply received
        let next = 0;
        const writer = async () => {
          while (next < WRITES) {
            const lba = next++ * SPACING;
            await client.write(target, lba, pattern(lba, 2, 1));
            replies.set(lba * 512, now());
          }
        };
        await Promise.all(Array.from({ length: QUEUE }, writer));
        const pairs = syncPairs(trace.syncs());
        const writeEnds = new Map<number, number>();
        for (const w of trace.writes())
          writeEnds.set(w.pos, Math.max(writeEnds.get(w.pos) ?? 0, w.t));
        expect(pairs.every((p) => p.ret === 0)).toBe(true);

        const perSync = new Array<number>(pairs.length).fill(0);
        const unsynced: string[] = [];
        for (const [pos, received] of replies) {
          const done = writeEnds.get(pos);
          if (done === undefined) {
            unsynced.push(`${pos}: no write_end traced`);
            continue;
          }
          // The first sync that began after the data was in the page cache...
          const i = pairs.findIndex((p) => p.enter > done);
          // ...must have ended before the reply arrived.
          if (i < 0 || pairs[i]!.exit > received)
            unsynced.push(
              `${pos}: written ${done}, reply ${received}, next sync ${pairs[i]?.enter}-${pairs[i]?.exit}`,
            );
          else perSync[i]!++;
        }
        expect(unsynced.slice(0, 5)).toEqual([]);
        const maxBatch = Math.max(...perSync);
        console.log(
          `group commit io: ${engine}: ${WRITES} writes, ${pairs.length} syncs, largest batch ${maxBatch}`,
        );
        expect(maxBatch).toBeLessThanOrEqual(QUEUE);
        // How many writes share a sync depends on how fast the disk syncs against how
        // fast writes arrive: printed above, not asserted. That writes completed during
        // a sync share the next one is proven without timing in test/io/group-commit.test.ts.
      } finally {
        trace.close();
      }
    }, 60_000);

    it("FLUSH CACHE EXT: a data sync begins after the request and ends before the reply", async ({
      skip,
    }) => {
      if (fsType(img()) !== "ext2/ext3") skip(`${img()} is not on ext4`);
      const trace = KernelTrace.open().syncsOf(fs.statSync(img()).ino);
      try {
        for (let i = 0; i < 5; i++) {
          trace.clear();
          const sent = now();
          await client.flush(target);
          const acked = now();
          const pairs = syncPairs(trace.syncs());
          expect(pairs.some((p) => p.enter > sent && p.exit < acked && p.ret === 0)).toBe(true);
        }
      } finally {
        trace.close();
      }
    });
  },
);
