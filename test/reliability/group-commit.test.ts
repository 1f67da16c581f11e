/**
 * Group commit with `write-cache: false`, seen from the kernel, not from the
 * daemon: ext4's tracepoints record when each write's data reached the page
 * cache (write_end) and when each data sync of the file began and ended
 * (ext4_sync_file_enter/exit, for fdatasync and RWF_DSYNC writes alike, from
 * a syscall or from io_uring); the client records when each reply arrived.
 *
 * - Every reply follows a sync that began after its write's data was in the
 *   page cache and ended before the reply was received. A write to uncached
 *   pages goes O_DIRECT (caps.uncachedWritesDirect): its data has reached the
 *   device (maybe only its cache) when the kernel traces its completion
 *   (iomap's dio_complete), and a sync must begin after that; a lone one has RWF_DSYNC, and its reply
 *   follows that completion, which the kernel traces after the write's own
 *   sync. "After" is the
 *   trace's order, not its printed microseconds: a lone RWF_DSYNC write's
 *   sync enters about a microsecond after its write_end, often in the same
 *   printed one (comparing those made about 1 run in 8 fail for no fault).
 * - One sync at a time: enter and exit alternate.
 * - Syncs are shared (fewer syncs than writes, 16 writes in flight), and no
 *   sync covers more than queue-length writes.
 * - FLUSH CACHE EXT: a sync between the request and its reply.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AoeClient, type TargetInfo } from "../../src/client/client.js";
import { cachedPagesAnswer, writtenRangeAnswer } from "../../src/io/blockdev.js";
import { probeUring } from "../../src/io/uring.js";
import { type Daemon, startDaemon } from "../helpers/daemon.js";
import {
  type DirectWriteEvent,
  fsType,
  KernelTrace,
  type SyncEvent,
  type WriteEndEvent,
} from "../helpers/ktrace.js";
import { createVethPair, type VethPair } from "../helpers/net.js";
import { pattern } from "../helpers/patterns.js";

const QUEUE = 16;
const WRITES = 480;
const SPACING = 8; // sectors between writes: each one's own page, never rewritten

const ENGINES = probeUring().ok ? (["threads", "io_uring"] as const) : (["threads"] as const);
const traceUnavailable = KernelTrace.unavailable();
const now = () => Number(process.hrtime.bigint()) / 1e9;

/** Whether a durable write to uncached pages of `file` goes O_DIRECT (src/io/open.ts). */
function uncachedDirect(file: string): boolean {
  const fd = fs.openSync(file, "r");
  try {
    return process.arch === "x64" && cachedPagesAnswer(fd) && writtenRangeAnswer(fd);
  } finally {
    fs.closeSync(fd);
  }
}

interface SyncPair {
  /** Trace order of the enter (see KernelTrace: the kernel's nanosecond order). */
  enterSeq: number;
  enter: number;
  exit: number;
  ret: number;
}

/** Sync events as (enter, exit) pairs; throws unless they strictly alternate (one in flight). */
function syncPairs(events: SyncEvent[]): SyncPair[] {
  const sorted = [...events].sort((a, b) => a.seq - b.seq);
  const pairs: SyncPair[] = [];
  for (let i = 0; i < sorted.length; i += 2) {
    const enter = sorted[i]!;
    const exit = sorted[i + 1];
    if (enter.phase !== "enter" || exit?.phase !== "exit")
      throw new Error(
        `syncs overlap or are cut: event ${i} is ${enter.phase} at ${enter.t}, then ${exit?.phase} at ${exit?.t}`,
      );
    pairs.push({ enterSeq: enter.seq, enter: enter.t, exit: exit.t, ret: exit.ret ?? -1 });
  }
  return pairs;
}

/**
 * Replies not preceded by a sync that began after their write's data was in
 * the page cache (the write's last write_end, in trace order) and ended before
 * the reply was received; and how many writes each sync covered.
 */
function unsyncedReplies(
  pairs: SyncPair[],
  writes: WriteEndEvent[],
  replies: Map<number, number>,
  directs: DirectWriteEvent[] = [],
): { unsynced: string[]; perSync: number[]; direct: number } {
  const writeEnds = new Map<number, WriteEndEvent>();
  for (const w of writes) if ((writeEnds.get(w.pos)?.seq ?? -1) < w.seq) writeEnds.set(w.pos, w);
  const directDone = new Map(directs.map((d) => [d.pos, d]));
  const perSync = new Array<number>(pairs.length).fill(0);
  const unsynced: string[] = [];
  let direct = 0;
  for (const [pos, received] of replies) {
    const done = writeEnds.get(pos);
    let after: { seq: number; t: number };
    if (done === undefined) {
      const d = directDone.get(pos);
      if (d === undefined) {
        unsynced.push(`${pos}: no write_end traced`);
        continue;
      }
      if (d.error !== 0 || d.t > received) {
        unsynced.push(`${pos}: written O_DIRECT (error ${d.error}) ${d.t}, reply ${received}`);
        continue;
      }
      direct++;
      // Written O_DIRECT: with RWF_DSYNC the kernel syncs before it calls the write done.
      if (d.dsync) continue;
      after = d;
    } else after = done;
    // The first sync that began after the data was in the page cache (or on the disk)...
    const i = pairs.findIndex((p) => p.enterSeq > after.seq);
    // ...must have ended before the reply arrived.
    if (i < 0 || pairs[i]!.exit > received)
      unsynced.push(
        `${pos}: written ${after.t}, reply ${received}, next sync ${pairs[i]?.enter}-${pairs[i]?.exit}`,
      );
    else perSync[i]!++;
  }
  return { unsynced, perSync, direct };
}

describe("the ordering check", () => {
  const write = (seq: number, t: number, pos: number): WriteEndEvent => ({
    seq,
    t,
    pos,
    len: 1024,
  });
  const sync = (seq: number, t: number, phase: "enter" | "exit"): SyncEvent =>
    phase === "enter"
      ? { seq, t, pid: 1, ino: 1, phase, datasync: true }
      : { seq, t, pid: 1, ino: 1, phase, ret: 0 };

  it("an RWF_DSYNC write's sync, printed in the same microsecond as its write_end, covers it", () => {
    // As ftrace prints a lone RWF_DSYNC write: write_end, then its own sync, in the same µs.
    const pairs = syncPairs([sync(1, 10.000001, "enter"), sync(2, 10.0008, "exit")]);
    const check = unsyncedReplies(pairs, [write(0, 10.000001, 0)], new Map([[0, 10.001]]));
    expect(check).toEqual({ unsynced: [], perSync: [1], direct: 0 });
  });

  it("a sync that entered before the write_end, in the same microsecond, does not", () => {
    const pairs = syncPairs([sync(0, 10.000001, "enter"), sync(2, 10.0008, "exit")]);
    const check = unsyncedReplies(pairs, [write(1, 10.000001, 0)], new Map([[0, 10.001]]));
    expect(check.unsynced).toHaveLength(1);
  });

  it("an O_DIRECT write counts once done with RWF_DSYNC before its reply, or done before a sync that ended before it", () => {
    const pairs = syncPairs([sync(0, 10.0001, "enter"), sync(1, 10.0002, "exit")]);
    const direct = (dsync: boolean, t: number): DirectWriteEvent => ({
      seq: 2,
      t,
      pos: 0,
      len: 1024,
      dsync,
      error: 0,
    });
    const reply = new Map([[0, 10.001]]);
    expect(unsyncedReplies(pairs, [], reply, [direct(true, 10.0003)])).toEqual({
      unsynced: [],
      perSync: [0],
      direct: 1,
    });
    expect(unsyncedReplies(pairs, [], reply, [direct(false, 10.0003)]).unsynced).toHaveLength(1);
    expect(unsyncedReplies(pairs, [], reply, [direct(true, 10.002)]).unsynced).toHaveLength(1);
    // Without RWF_DSYNC: covered by a sync that entered after it was done (seq 3 > 2).
    const later = syncPairs([sync(3, 10.0004, "enter"), sync(4, 10.0005, "exit")]);
    expect(unsyncedReplies(later, [], reply, [direct(false, 10.0003)])).toEqual({
      unsynced: [],
      perSync: [1],
      direct: 1,
    });
    const notYet = new Map([[0, 10.00045]]); // the reply before that sync's exit
    expect(unsyncedReplies(later, [], notYet, [direct(false, 10.0003)]).unsynced).toHaveLength(1);
  });

  it("a reply received before the covering sync ended is reported", () => {
    const pairs = syncPairs([sync(1, 10.00001, "enter"), sync(2, 10.0008, "exit")]);
    const check = unsyncedReplies(pairs, [write(0, 10.000001, 0)], new Map([[0, 10.0005]]));
    expect(check.unsynced).toHaveLength(1);
  });
});

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
      // Written through, synced and dropped from the page cache: a write to it finds
      // written extents and no cached page, and can go O_DIRECT (not into a hole).
      fs.writeFileSync(img(), Buffer.alloc(WRITES * SPACING * 512 + 1024 * 1024, 0x5a));
      const fd = fs.openSync(img(), "r");
      fs.fdatasyncSync(fd);
      fs.closeSync(fd);
      execFileSync("dd", [`if=${img()}`, "iflag=nocache", "count=0", "status=none"]);
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
        .writesOf(fs.statSync(img()).ino)
        .directWritesOf(fs.statSync(img()).ino);
      try {
        const replies = new Map<number, number>(); // byte position -> reply received
        // Uncached pages: through io_uring, on x86-64 with cachestat, they go O_DIRECT,
        // the first (alone) with RWF_DSYNC.
        await client.write(target, 0, pattern(0, 2, 1));
        replies.set(0, now());
        let next = 1;
        const writer = async () => {
          while (next < WRITES) {
            const lba = next++ * SPACING;
            await client.write(target, lba, pattern(lba, 2, 1));
            replies.set(lba * 512, now());
          }
        };
        await Promise.all(Array.from({ length: QUEUE }, writer));
        const pairs = syncPairs(trace.syncs());
        expect(pairs.every((p) => p.ret === 0)).toBe(true);
        const { unsynced, perSync, direct } = unsyncedReplies(
          pairs,
          trace.writes(),
          replies,
          trace.directIo(),
        );
        expect(unsynced.slice(0, 5)).toEqual([]);
        if (engine === "io_uring" && uncachedDirect(img())) expect(direct).toBeGreaterThan(0);
        const maxBatch = Math.max(...perSync);
        console.log(
          `group commit io: ${engine}: ${WRITES} writes (${direct} O_DIRECT), ${pairs.length} syncs, largest batch ${maxBatch}`,
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
