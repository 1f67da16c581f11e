/**
 * The io_uring backend reads the page a buffered write partly covers before
 * the write (caps.pagesReadFirst), or on a durable export sends the write
 * through an O_DIRECT descriptor where its pages are uncached
 * (caps.uncachedWritesDirect), and keeps writes in arrival order within
 * each 2 MiB of the file while it holds one. The ring here is a recording
 * stand-in whose operations complete when the test says, so every ordering
 * is forced, not raced; the real ring runs the same writes on a disk file
 * at the end.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackendCapabilities, SharedBackend } from "../../src/io/backend.js";
import { cachedPages, cachedPagesAnswer, writtenRange } from "../../src/io/blockdev.js";
import { UringBackend } from "../../src/io/engines/uring.js";
import { openFileBackend } from "../../src/io/open.js";
import { EXT4_MAGIC } from "../../src/io/store.js";
import type { IoRing } from "../../src/io/uring.js";
import { probeUring } from "../../src/io/uring.js";
import { openOptions } from "../helpers/open-options.js";

const FD = 10;
const MiB = 1024 * 1024;
const DIRECT_FD = 11;

interface Op {
  kind: "read" | "write" | "sync";
  fd: number;
  len: number;
  pos: number;
  buf: Buffer;
  /** pwritev2 flags of a write (RWF_DSYNC = 2). */
  flags: number;
  done: (err: NodeJS.ErrnoException | null) => void;
}

/** Records operations; each completes when the test calls done(). Counts pending as the real ring does. */
function fakeRing(): { ring: IoRing; ops: Op[] } {
  const ops: Op[] = [];
  const start =
    (kind: Op["kind"]): IoRing["write"] =>
    (fd, buf, len, pos, cb, owner, flags = 0) => {
      if (owner) owner.pending++;
      ops.push({
        kind,
        fd,
        len,
        pos,
        buf,
        flags,
        done: (err) => {
          if (owner && --owner.pending === 0) owner.onIdle?.();
          cb(err);
        },
      });
    };
  const sync: IoRing["fdatasync"] = (fd, cb, owner) =>
    start("sync")(fd, Buffer.alloc(0), 0, 0, cb, owner);
  const ring = { boundedWorkers: 64, read: start("read"), write: start("write"), fdatasync: sync };
  return { ring: ring as unknown as IoRing, ops };
}

/**
 * A backend on a fake ring. `busy`: one whole-page write is already in flight
 * (returned as `other`, left out of `ops`), as pages are read first only
 * beside other writes.
 */
let files = 0;

/** `fileId`: backends given the same one know of each other as writers of one file. */
function backend(
  caps: Partial<BackendCapabilities> = {},
  offset = 0,
  busy = true,
  cached: (fd: number, offset: number, length: number) => number = () => -1,
  fileId = `fake:${++files}`,
  written: (fd: number, offset: number, length: number) => number = () => 1,
) {
  const { ring, ops } = fakeRing();
  const on: SharedBackend = {
    path: "/fake/image",
    exportName: "e1.1",
    fd: FD,
    directFd: caps.directIo || caps.uncachedWritesDirect ? DIRECT_FD : -1,
    size: 8 << 20,
    offset,
    readOnly: false,
    caps: { directIo: false, blockDevice: false, alignment: 512, pagesReadFirst: true, ...caps },
    fileId,
  };
  const b = new UringBackend(on, ring, { cached, written });
  if (!busy) return { b, ops, other: null };
  b.write(Buffer.alloc(4096), 4096, 65536 - offset, () => {}); // a whole page of the file
  return { b, ops, other: ops.shift()! };
}

/** Whether cachestat(2) answers here (Linux 6.5), asked of this file. */
const cachestat = (() => {
  const fd = fs.openSync(new URL(import.meta.url), "r");
  try {
    return cachedPagesAnswer(fd);
  } finally {
    fs.closeSync(fd);
  }
})();

/** close() of a backend on the stand-in ring, without closing its fake descriptors or a ring. */
function closeFake(b: UringBackend): Promise<void> {
  Object.assign(b, { ownsDescriptors: false, release: () => Promise.resolve() });
  return b.close();
}

const said = (ops: Op[]) => ops.map((o) => `${o.kind} ${o.pos}+${o.len}`);

describe("a buffered write to part of a page", () => {
  it("reads that page first, and goes out once it is in", () => {
    const { b, ops } = backend();
    const results: (NodeJS.ErrnoException | null)[] = [];
    b.write(Buffer.alloc(1024, 1), 1024, 5120, (e) => results.push(e));
    expect(said(ops)).toEqual(["read 4096+4096"]);
    expect(ops[0]!.fd).toBe(FD);
    ops[0]!.done(null);
    expect(said(ops)).toEqual(["read 4096+4096", "write 5120+1024"]);
    expect(results).toEqual([]);
    ops[1]!.done(null);
    expect(results).toEqual([null]);
  });

  it("reads both end pages when both are partial, one when the write starts or ends on a page", () => {
    const { b, ops } = backend();
    b.write(Buffer.alloc(8704), 8704, 512, () => {}); // 512..9216: pages 0 and 8192
    expect(said(ops)).toEqual(["read 0+4096", "read 8192+4096"]);
    ops[0]!.done(null);
    expect(said(ops)).toHaveLength(2); // still waiting for the second
    ops[1]!.done(null);
    expect(said(ops).slice(2)).toEqual(["write 512+8704"]);

    const tail = backend();
    tail.b.write(Buffer.alloc(5120), 5120, 4096, () => {}); // 4096..9216: only page 8192 partial
    expect(said(tail.ops)).toEqual(["read 8192+4096"]);
    const head = backend();
    head.b.write(Buffer.alloc(3072), 3072, 1024, () => {}); // 1024..4096: only page 0 partial
    expect(said(head.ops)).toEqual(["read 0+4096"]);
    const inside = backend();
    inside.b.write(Buffer.alloc(1024), 1024, 2048, () => {}); // one page, partial at both ends
    expect(said(inside.ops)).toEqual(["read 0+4096"]);
  });

  it("counts the export's window: pages are the file's", () => {
    const { b, ops } = backend({}, 1024);
    b.write(Buffer.alloc(4096), 4096, 0, () => {}); // a whole page of the export, file 1024..5120
    expect(said(ops)).toEqual(["read 0+4096", "read 4096+4096"]);
    ops[0]!.done(null);
    ops[1]!.done(null);
    expect(said(ops).at(-1)).toBe("write 1024+4096");
  });

  it("keeps a lone durable write's RWF_DSYNC, held for its turn or for its page", async () => {
    const durable = { groupCommit: { dsync: true } };
    const { b, ops } = backend(durable, 0, false);
    b.write(Buffer.alloc(1024), 1024, 1024, () => {});
    await Promise.resolve();
    expect(said(ops)).toEqual(["write 1024+1024"]);
    expect(ops[0]!.flags).toBe(2);

    const two = backend(durable, 0, false);
    two.b.write(Buffer.alloc(1024), 1024, 1024, () => {}); // lone so far: RWF_DSYNC
    two.b.write(Buffer.alloc(1024), 1024, 9216, () => {}); // not lone: group commit
    two.ops[0]!.done(null);
    two.ops[1]!.done(null);
    expect(said(two.ops).slice(2)).toEqual(["write 1024+1024", "write 9216+1024"]);
    expect(two.ops.slice(2).map((o) => o.flags)).toEqual([2, 0]);
  });

  it("reads nothing for a lone write, but reads both when another comes in the same turn", async () => {
    const { b, ops } = backend({}, 0, false);
    b.write(Buffer.alloc(1024), 1024, 1024, () => {});
    expect(said(ops)).toEqual([]); // held to the end of the turn
    await Promise.resolve();
    expect(said(ops)).toEqual(["write 1024+1024"]);
    // Now that one is in flight, the next partial write reads its page first.
    b.write(Buffer.alloc(1024), 1024, 9216, () => {});
    expect(said(ops)).toEqual(["write 1024+1024", "read 8192+4096"]);
    ops[0]!.done(null);
    ops[1]!.done(null);
    ops[2]!.done(null);

    // Nothing in flight again: two writes in one turn both read their pages, and keep their order.
    const turn = backend({}, 0, false);
    turn.b.write(Buffer.alloc(1024), 1024, 1024, () => {});
    turn.b.write(Buffer.alloc(1024), 1024, 9216, () => {});
    await Promise.resolve();
    expect(said(turn.ops)).toEqual(["read 0+4096", "read 8192+4096"]);
    turn.ops[1]!.done(null); // the second write's page first
    expect(said(turn.ops)).toHaveLength(2);
    turn.ops[0]!.done(null);
    expect(said(turn.ops).slice(2)).toEqual(["write 1024+1024", "write 9216+1024"]);
  });

  it("reads nothing for whole pages, on the O_DIRECT descriptor, or without the capability", () => {
    const whole = backend();
    whole.b.write(Buffer.alloc(8192), 8192, 4096, () => {});
    expect(said(whole.ops)).toEqual(["write 4096+8192"]);

    const direct = backend({ directIo: "writes", alignment: 512 });
    direct.b.write(Buffer.alloc(1024), 1024, 1024, () => {});
    expect(said(direct.ops)).toEqual(["write 1024+1024"]);
    expect(direct.ops[0]!.fd).toBe(DIRECT_FD);

    const off = backend({ pagesReadFirst: undefined });
    off.b.write(Buffer.alloc(1024), 1024, 1024, () => {});
    expect(said(off.ops)).toEqual(["write 1024+1024"]);
  });

  it("keeps writes in arrival order while one waits for its page", () => {
    const { b, ops } = backend();
    b.write(Buffer.alloc(1024, 1), 1024, 1024, () => {}); // page 0
    b.write(Buffer.alloc(1024, 2), 1024, 9216, () => {}); // page 8192
    b.write(Buffer.alloc(4096, 3), 4096, 16384, () => {}); // whole page: no read, but waits its turn
    expect(said(ops)).toEqual(["read 0+4096", "read 8192+4096"]);
    ops[1]!.done(null); // the second write's page comes in first
    expect(said(ops)).toHaveLength(2);
    ops[0]!.done(null);
    expect(said(ops).slice(2)).toEqual(["write 1024+1024", "write 9216+1024", "write 16384+4096"]);
    // Nothing held: a whole-page write goes straight out again.
    b.write(Buffer.alloc(4096), 4096, 0, () => {});
    expect(said(ops).at(-1)).toBe("write 0+4096");
  });

  it("keeps arrival order per 2 MiB of the file: a write across two waits for an earlier one in either", () => {
    const { b, ops } = backend();
    b.write(Buffer.alloc(1024), 1024, 2 * MiB + 1024, () => {}); // in [2 MiB, 4 MiB)
    b.write(Buffer.alloc(1024), 1024, 2 * MiB - 512, () => {}); // across both
    b.write(Buffer.alloc(1024), 1024, 1024, () => {}); // in [0, 2 MiB): behind the one across
    b.write(Buffer.alloc(1024), 1024, 4 * MiB + 1024, () => {}); // elsewhere
    expect(said(ops)).toEqual([
      `read ${2 * MiB}+4096`,
      `read ${2 * MiB - 4096}+4096`,
      `read ${2 * MiB}+4096`,
      "read 0+4096",
      `read ${4 * MiB}+4096`,
    ]);
    for (const i of [4, 3, 2, 1]) ops[i]!.done(null);
    expect(said(ops).slice(5)).toEqual([`write ${4 * MiB + 1024}+1024`]); // passes them all
    ops[0]!.done(null);
    expect(said(ops).slice(6)).toEqual([
      `write ${2 * MiB + 1024}+1024`,
      `write ${2 * MiB - 512}+1024`,
      "write 1024+1024",
    ]);
    // The same with the earlier write in the lower region.
    const low = backend();
    low.b.write(Buffer.alloc(1024), 1024, 1024, () => {});
    low.b.write(Buffer.alloc(1024), 1024, 2 * MiB - 512, () => {});
    low.ops[1]!.done(null);
    low.ops[2]!.done(null);
    expect(low.ops).toHaveLength(3);
    low.ops[0]!.done(null);
    expect(said(low.ops).slice(3)).toEqual(["write 1024+1024", `write ${2 * MiB - 512}+1024`]);
  });

  it("does not fail the write when the page read fails: the write reports its own result", () => {
    const { b, ops } = backend();
    const results: (NodeJS.ErrnoException | null)[] = [];
    b.write(Buffer.alloc(1024), 1024, 1024, (e) => results.push(e));
    const eio = Object.assign(new Error("pread: EIO"), { code: "EIO" });
    ops[0]!.done(eio);
    expect(said(ops)).toEqual(["read 0+4096", "write 1024+1024"]);
    expect(results).toEqual([]);
    ops[1]!.done(null);
    expect(results).toEqual([null]);
  });

  it("is in progress while held: close() waits for the write, not only its read", async () => {
    const { b, ops, other } = backend();
    b.write(Buffer.alloc(1024), 1024, 1024, () => {});
    other!.done(null); // only the held write is left
    let closed = false;
    // close() would close the fake descriptors; only its wait is looked at here.
    const waitIdle = new Promise<void>((resolve) => {
      b.onIdle = () => {
        closed = true;
        resolve();
      };
    });
    ops[0]!.done(null); // the read is done, the write just went out
    await Promise.resolve();
    expect(closed).toBe(false);
    expect(b.pending).toBe(1);
    ops[1]!.done(null);
    await waitIdle;
    expect(b.pending).toBe(0);
  });
});

describe("a durable write to pages the cache lacks (caps.uncachedWritesDirect)", () => {
  const durable = { groupCommit: { dsync: true }, uncachedWritesDirect: true };
  /** A durable backend with nothing in flight; `cached` answers for the write's range. */
  const lone = (
    /** The answer for any range, or the positions of cached pages (any byte of each). */
    cached: number | number[],
    caps: Partial<BackendCapabilities> = {},
    offset = 0,
    fileId?: string,
    written: (offset: number, length: number) => number = () => 1,
  ) => {
    const asked: string[] = [];
    const answer = (fd: number, off: number, len: number) => {
      asked.push(`${fd} ${off}+${len}`);
      return typeof cached === "number"
        ? cached
        : cached.filter((p) => p >= off && p < off + len).length;
    };
    const extents: string[] = [];
    const writtenAnswer = (fd: number, off: number, len: number) => {
      extents.push(`${fd} ${off}+${len}`);
      return written(off, len);
    };
    const r = backend({ ...durable, ...caps }, offset, false, answer, fileId, writtenAnswer);
    /** Writes `len` bytes at `at` (the file's offset), completes it and all else queued, and returns the descriptor it went to. */
    const settle = async (at: number, len = 1024) => {
      r.b.write(Buffer.alloc(len), len, at - offset, () => {});
      await Promise.resolve(); // a lone buffered one waits for the end of the turn
      const op = r.ops.find((o) => o.kind === "write" && o.pos === at)!;
      op.done(null);
      r.ops.splice(0); // syncs and all
      return op.fd;
    };
    return { ...r, asked, extents, settle };
  };

  it("goes through the O_DIRECT descriptor with RWF_DSYNC, and reads nothing", async () => {
    const { b, ops, asked } = lone(0);
    const results: (NodeJS.ErrnoException | null)[] = [];
    b.write(Buffer.alloc(1024), 1024, 1024, (e) => results.push(e));
    await Promise.resolve();
    expect(said(ops)).toEqual(["write 1024+1024"]);
    expect(ops[0]!.fd).toBe(DIRECT_FD);
    expect(ops[0]!.flags).toBe(2);
    expect(asked).toEqual([`${FD} 0+${2 * MiB}`]); // its 2 MiB, none of it cached
    ops[0]!.done(null);
    expect(results).toEqual([null]);
  });

  it("asks about the file's bytes under an export window", async () => {
    // A page elsewhere in its 2 MiB is cached: the write's own bytes are asked about.
    const { b, ops, asked } = lone([1 * MiB], {}, 4096);
    b.write(Buffer.alloc(1024), 1024, 1024, () => {});
    await Promise.resolve();
    // The region as far as the window reaches into it, then the write's own bytes.
    expect(asked).toEqual([`${FD} 4096+${2 * MiB - 4096}`, `${FD} 5120+1024`]);
    expect(said(ops)).toEqual(["write 5120+1024"]);
    expect(ops[0]!.fd).toBe(DIRECT_FD);
  });

  it("asks about the page cache once per 2 MiB; after a read there or just before, or a buffered write there, about each write, then the 2 MiB again", async () => {
    const { b, ops, asked, settle: direct } = lone([]);
    const read = (at: number) => {
      b.read(Buffer.alloc(4096), 4096, at, () => {});
      ops.pop()!.done(null);
    };
    expect(await direct(1024)).toBe(DIRECT_FD);
    expect(await direct(9216)).toBe(DIRECT_FD);
    expect(await direct(2 * MiB + 1024)).toBe(DIRECT_FD);
    expect(asked).toEqual([`${FD} 0+${2 * MiB}`, `${FD} ${2 * MiB}+${2 * MiB}`]);
    read(2 * MiB - 4096); // its readahead may reach into the next 2 MiB
    expect(await direct(2 * MiB + 9216)).toBe(DIRECT_FD);
    expect(await direct(17408)).toBe(DIRECT_FD);
    // In doubt now: each write's own bytes, then the region again after 64 asks.
    expect(asked.slice(2)).toEqual([`${FD} ${2 * MiB + 9216}+1024`, `${FD} 17408+1024`]);
    for (let i = 0; i < 62; i++) await direct(2 * MiB + 20480 + i * 4096);
    expect(asked).toHaveLength(4 + 62); // 63 of the region's writes asked about their own bytes
    expect(await direct(2 * MiB + 17408)).toBe(DIRECT_FD);
    expect(asked.slice(66)).toEqual([`${FD} ${2 * MiB}+${2 * MiB}`]); // the 64th: the region
    expect(await direct(2 * MiB + 13312)).toBe(DIRECT_FD);
    expect(asked).toHaveLength(67); // known again
    b.write(Buffer.alloc(4096), 4096, 2 * MiB + 65536, () => {}); // a whole page: buffered
    ops.splice(0)[0]!.done(null);
    expect(await direct(2 * MiB + 25600)).toBe(DIRECT_FD);
    expect(asked.slice(67)).toEqual([`${FD} ${2 * MiB + 25600}+1024`]);
  });

  it("asks no write about its own pages in a 2 MiB with 7 in 8 of its pages cached, and the 2 MiB again after 64 writes", async () => {
    const pages = (n: number) => Array.from({ length: n }, (_, i) => i * 4096);
    const at = 500 * 4096 + 1024; // in a page not cached
    const region = `${FD} 0+${2 * MiB}`;
    // One page fewer: the write's own bytes are asked about, and it goes direct.
    const some = lone(pages(447));
    some.b.write(Buffer.alloc(1024), 1024, at, () => {});
    await Promise.resolve();
    expect(some.asked).toEqual([region, `${FD} ${at}+1024`]);
    expect(some.ops.at(-1)!.fd).toBe(DIRECT_FD);

    const cached = pages(448);
    const { asked, settle: write } = lone(cached);
    expect(await write(at)).toBe(FD);
    for (let i = 1; i < 64; i++) expect(await write(at + (i % 8) * 4096)).toBe(FD);
    // Each write put it in doubt again, which did not restart its count: the 65th asks.
    expect(asked).toEqual([region]);
    cached.splice(0); // evicted
    expect(await write(at)).toBe(DIRECT_FD); // the 65th asks the region again
    expect(asked).toEqual([region, region]);
  });

  it("asks a 2 MiB again by its 65th write even where each write there goes buffered and puts it in doubt", async () => {
    const at = (i: number) => (i % 16) * 4096 + 1024;
    const cached = Array.from({ length: 16 }, (_, i) => at(i)); // the pages written: 16 of 512
    const { b, asked, settle } = lone(cached);
    const region = `${FD} 0+${2 * MiB}`;
    for (let i = 0; i < 64; i++) expect(await settle(at(i))).toBe(FD);
    expect(asked.filter((a) => a === region)).toHaveLength(1);
    expect(asked).toHaveLength(65); // and each write's own bytes
    b.write(Buffer.alloc(1024), 1024, at(64), () => {});
    await Promise.resolve();
    expect(asked.slice(65)).toEqual([region, `${FD} ${at(64)}+1024`]);
  });

  it("asks about each write's own pages after a read in a region never asked about: the read may not show yet", async () => {
    const { b, ops, asked } = lone(0);
    b.read(Buffer.alloc(4096), 4096, 65536, () => {}); // still in flight
    b.write(Buffer.alloc(1024), 1024, 1024, () => {});
    await Promise.resolve();
    expect(asked).toEqual([`${FD} 1024+1024`]);
    expect(ops.at(-1)!.fd).toBe(DIRECT_FD);
  });

  it("stays buffered where a page is cached, the kernel cannot say, O_DIRECT's alignment is not met, or without the capability", async () => {
    for (const { cached, caps, at, len, asks } of [
      { cached: 1, caps: {}, at: 1024, len: 1024, asks: 2 }, // its 2 MiB, then its own bytes
      { cached: -1, caps: {}, at: 1024, len: 1024, asks: 1 }, // no use asking about its own
      { cached: 0, caps: { alignment: 1024 }, at: 512, len: 1024, asks: 0 }, // offset off
      { cached: 0, caps: { alignment: 1024 }, at: 1024, len: 512, asks: 0 }, // length off
      { cached: 0, caps: { uncachedWritesDirect: undefined }, at: 1024, len: 1024, asks: 0 },
    ]) {
      const { b, ops, asked } = lone(cached, caps);
      b.write(Buffer.alloc(len), len, at, () => {});
      await Promise.resolve();
      expect(said(ops)).toEqual([`write ${at}+${len}`]);
      expect(ops[0]!.fd).toBe(FD);
      expect(ops[0]!.flags).toBe(2);
      expect(asked).toHaveLength(asks);
    }
    // The same write with the alignment met and nothing cached does go direct.
    const direct = lone(0, { alignment: 1024 });
    direct.b.write(Buffer.alloc(1024), 1024, 1024, () => {});
    await Promise.resolve();
    expect(direct.ops[0]!.fd).toBe(DIRECT_FD);
  });

  it("goes direct only in the file's sole writer here; another's writes wait for it", async () => {
    const a = lone(0, {}, 0, "shared:1");
    a.b.write(Buffer.alloc(1024), 1024, 1024, () => {});
    await Promise.resolve();
    expect(a.ops[0]!.fd).toBe(DIRECT_FD);
    // A second backend of the file (a reload's successor, another export of it) opens now.
    const other = lone(0, {}, 0, "shared:1");
    const results: string[] = [];
    other.b.write(Buffer.alloc(4096), 4096, 8 * MiB, (e) => results.push(`other ${e}`));
    expect(said(other.ops)).toEqual([]); // waits for the direct write, wherever it writes
    expect(other.b.pending).toBe(1); // and close() would wait for it
    a.ops[0]!.done(null);
    expect(said(other.ops)).toEqual([`write ${8 * MiB}+4096`]);
    other.ops[0]!.done(null);
    expect(results).toEqual(["other null"]);
    // Two writers now: neither goes direct.
    a.b.write(Buffer.alloc(1024), 1024, 9216, () => {});
    await Promise.resolve();
    expect(a.ops[1]!.fd).toBe(FD);
    a.ops[1]!.done(null);
    // The other closes with a write in flight: it is a writer until that is done.
    other.b.write(Buffer.alloc(4096), 4096, 3 * MiB, () => {});
    const inFlight = other.ops.at(-1)!;
    const closed = closeFake(other.b);
    a.b.write(Buffer.alloc(1024), 1024, 17408, () => {});
    await Promise.resolve();
    expect(a.ops[2]!.fd).toBe(FD);
    a.ops[2]!.done(null);
    inFlight.done(null);
    await closed;
    a.b.write(Buffer.alloc(1024), 1024, 25600, () => {});
    await Promise.resolve();
    expect(a.ops[3]!.fd).toBe(DIRECT_FD);
  });

  it("counts a write waiting for another backend's direct write as in progress: close() waits for it", async () => {
    const a = lone(0, {}, 0, "shared:2");
    a.b.write(Buffer.alloc(1024), 1024, 1024, () => {});
    await Promise.resolve();
    const other = lone(0, {}, 0, "shared:2");
    other.b.write(Buffer.alloc(4096), 4096, 8 * MiB, () => {});
    let closed = false;
    const closing = closeFake(other.b).then(() => (closed = true));
    await Promise.resolve();
    expect(closed).toBe(false);
    a.ops[0]!.done(null); // the waiting write goes out
    expect(said(other.ops)).toEqual([`write ${8 * MiB}+4096`]);
    await Promise.resolve();
    expect(closed).toBe(false);
    other.ops[0]!.done(null);
    await closing;
  });

  it("goes direct beside other writes too, without RWF_DSYNC: the group commit's sync covers it", async () => {
    const { b, ops } = lone(0);
    const results: string[] = [];
    b.write(Buffer.alloc(1024), 1024, 1024, (e) => results.push(`first ${e}`)); // lone when it came
    b.write(Buffer.alloc(1024), 1024, 9216, (e) => results.push(`second ${e}`));
    expect(said(ops)).toEqual(["write 1024+1024", "write 9216+1024"]); // no page reads
    expect(ops.map((o) => [o.fd, o.flags])).toEqual([
      [DIRECT_FD, 2],
      [DIRECT_FD, 0],
    ]);
    ops[0]!.done(null);
    ops[1]!.done(null);
    await Promise.resolve();
    expect(results).toEqual(["first null"]);
    expect(said(ops).slice(2)).toEqual(["sync 0+0"]); // one that started after the second completed
    ops[2]!.done(null);
    expect(results).toEqual(["first null", "second null"]);
  });

  it("holds a buffered write while a direct one is in flight in its 2 MiB, its page read too; then in order", async () => {
    // Page 4096 is cached: a write to it stays buffered.
    const { b, ops } = lone([5120]);
    const results: string[] = [];
    b.write(Buffer.alloc(1024), 1024, 1024, (e) => results.push(`direct ${e}`));
    b.write(Buffer.alloc(1024), 1024, 5120, (e) => results.push(`cached ${e}`)); // held
    // In another 2 MiB: goes on, direct.
    b.write(Buffer.alloc(1024), 1024, 2 * MiB + 1024, () => {});
    // Uncached, in the held write's 2 MiB: waits behind it.
    b.write(Buffer.alloc(1024), 1024, 9216, (e) => results.push(`after ${e}`));
    expect(said(ops)).toEqual(["write 1024+1024", `write ${2 * MiB + 1024}+1024`]);
    expect(b.pending).toBe(4);
    const far = ops.splice(1, 1)[0]!; // left in flight to the end
    ops[0]!.done(null);
    // Only now is its page read, so it holds what the direct write put there;
    // the write behind it goes buffered too, as one is now under way there.
    expect(said(ops).slice(1)).toEqual(["read 4096+4096", "read 8192+4096"]);
    ops[2]!.done(null);
    expect(said(ops)).toHaveLength(3); // not before the one ahead of it
    ops[1]!.done(null);
    expect(said(ops).slice(3)).toEqual(["write 5120+1024", "write 9216+1024"]);
    expect(ops.slice(3).map((o) => o.fd)).toEqual([FD, FD]);
    ops[3]!.done(null);
    ops[4]!.done(null);
    far.done(null);
    await Promise.resolve();
    expect(said(ops).slice(5)).toEqual(["sync 0+0"]);
    ops[5]!.done(null);
    expect(results).toEqual(["direct null", "cached null", "after null"]);
    expect(b.pending).toBe(0);
  });

  it("holds a write to the bytes of a direct write in flight until it is done: two may land in either order", async () => {
    const { b, ops } = lone(0);
    const writes = () => ops.filter((o) => o.kind === "write");
    b.write(Buffer.alloc(1024), 1024, 1024, () => {});
    b.write(Buffer.alloc(1024), 1024, 1536, () => {}); // 512 bytes in common: held
    b.write(Buffer.alloc(1024), 1024, 2048, () => {}); // next to the first only, but behind the held one
    b.write(Buffer.alloc(1024), 1024, 2 * MiB, () => {}); // elsewhere: goes
    expect(said(writes())).toEqual(["write 1024+1024", `write ${2 * MiB}+1024`]);
    writes()[1]!.done(null);
    expect(writes()).toHaveLength(2);
    writes()[0]!.done(null);
    expect(said(writes()).slice(2)).toEqual(["write 1536+1024"]); // 2048 now meets it in flight
    writes()[2]!.done(null);
    expect(said(writes()).slice(3)).toEqual(["write 2048+1024"]);
    expect(writes().map((o) => o.fd)).toEqual([DIRECT_FD, DIRECT_FD, DIRECT_FD, DIRECT_FD]);
  });

  it("stays buffered for whole pages, and in a 2 MiB with a hole or an unwritten extent; asks about each 2 MiB once", async () => {
    // [2 MiB, 4 MiB) has a 64 KiB hole at 3 MiB; [0, 2 MiB) is all written.
    const written = (off: number, len: number) =>
      off < 3 * MiB + 65536 && off + len > 3 * MiB ? 0 : 1;
    const { extents, settle: go } = lone(0, {}, 0, undefined, written);
    expect(await go(4096, 4096)).toBe(FD); // a whole page: nothing to read, stays buffered
    expect(extents).toEqual([]);
    expect(await go(1024)).toBe(DIRECT_FD);
    expect(await go(9216)).toBe(DIRECT_FD);
    expect(extents).toEqual([`${FD} 0+${2 * MiB}`]); // once for the region
    expect(await go(3 * MiB + 1024)).toBe(FD); // in the hole
    expect(await go(2 * MiB + 1024)).toBe(FD); // written, but in a region with a hole
    // Not asked about the writes' own bytes (that cost more than it gained on a sparse image).
    expect(extents.slice(1)).toEqual([`${FD} ${2 * MiB}+${2 * MiB}`]);
  });

  it("starts no later write in a region where an earlier one waits, for either region of a write across two", async () => {
    // 5120 and the page at 2 MiB - 4 KiB are cached: writes to them stay buffered.
    const { b, ops } = lone([5120, 2 * MiB - 512]);
    const writes = () => ops.filter((o) => o.kind === "write");
    const results: string[] = [];
    const write = (at: number, name: string) =>
      b.write(Buffer.alloc(1024), 1024, at, (e) => results.push(`${name} ${e}`));
    write(1024, "direct");
    write(5120, "cached"); // waits for the direct write in [0, 2 MiB)
    write(2 * MiB - 512, "across"); // cached, in both regions: behind "cached"
    write(2 * MiB + 8192, "after"); // behind "across" in [2 MiB, 4 MiB): does not start
    expect(said(writes())).toEqual(["write 1024+1024"]);
    writes()[0]!.done(null);
    // All three now buffered, in order, their pages read first.
    expect(said(ops.filter((o) => o.kind === "read"))).toEqual([
      "read 4096+4096",
      `read ${2 * MiB - 4096}+4096`,
      `read ${2 * MiB}+4096`,
      `read ${2 * MiB + 8192}+4096`,
    ]);
    // The last write's page first: it still waits for the one across both regions.
    const reads = ops.filter((o) => o.kind === "read");
    reads[3]!.done(null);
    reads[0]!.done(null);
    expect(said(writes()).slice(1)).toEqual(["write 5120+1024"]);
    reads[2]!.done(null);
    expect(writes()).toHaveLength(2);
    reads[1]!.done(null);
    expect(said(writes()).slice(1)).toEqual([
      "write 5120+1024",
      `write ${2 * MiB - 512}+1024`,
      `write ${2 * MiB + 8192}+1024`,
    ]);
    expect(writes().map((o) => o.fd)).toEqual([DIRECT_FD, FD, FD, FD]);
    for (const w of writes().slice(1)) w.done(null);
    await Promise.resolve();
    ops.find((o) => o.kind === "sync")?.done(null);
    expect(results.sort()).toEqual(["across null", "after null", "cached null", "direct null"]);
    expect(b.pending).toBe(0);
  });

  it("holds buffered writes in both regions of a direct write across two", async () => {
    const { b, ops } = lone([4096, 2 * MiB + 4096]);
    b.write(Buffer.alloc(1024), 1024, 2 * MiB - 512, () => {}); // direct, in [0, 2 MiB) and [2 MiB, 4 MiB)
    b.write(Buffer.alloc(1024), 1024, 4096, () => {}); // cached: held
    b.write(Buffer.alloc(1024), 1024, 2 * MiB + 4096, () => {}); // cached: held
    expect(said(ops)).toEqual([`write ${2 * MiB - 512}+1024`]);
    expect(ops[0]!.fd).toBe(DIRECT_FD);
    ops[0]!.done(null);
    // Only now do they start: their pages are read first.
    expect(said(ops).slice(1)).toEqual(["read 4096+4096", `read ${2 * MiB + 4096}+4096`]);
  });

  it("checks both regions of a write across two: a buffered or a direct write in flight in the upper one", async () => {
    // A buffered write in flight in [2 MiB, 4 MiB) only: one across both goes buffered too.
    const up = lone([2 * MiB + 4096]);
    up.b.write(Buffer.alloc(1024), 1024, 2 * MiB + 4096, () => {}); // cached: buffered, lone
    await Promise.resolve();
    up.b.write(Buffer.alloc(1024), 1024, 2 * MiB - 512, () => {});
    expect(said(up.ops)).toEqual([
      `write ${2 * MiB + 4096}+1024`,
      `read ${2 * MiB - 4096}+4096`,
      `read ${2 * MiB}+4096`,
    ]);
    // A direct write in flight in [2 MiB, 4 MiB) only: a cached one across both waits.
    const down = lone([2 * MiB - 512]);
    down.b.write(Buffer.alloc(1024), 1024, 2 * MiB + 8192, () => {});
    down.b.write(Buffer.alloc(1024), 1024, 2 * MiB - 512, () => {});
    expect(said(down.ops)).toEqual([`write ${2 * MiB + 8192}+1024`]);
    expect(down.ops[0]!.fd).toBe(DIRECT_FD);
    down.ops[0]!.done(null);
    await Promise.resolve(); // alone now: no page reads, at the end of the turn
    expect(said(down.ops).slice(1)).toEqual([`write ${2 * MiB - 512}+1024`]);
    expect(down.ops[1]!.fd).toBe(FD);
  });

  it("lets a write next to a direct one in flight go direct beside it", () => {
    const { b, ops } = lone(0);
    b.write(Buffer.alloc(1024), 1024, 1024, () => {});
    b.write(Buffer.alloc(1024), 1024, 2048, () => {}); // starts where the first ends
    b.write(Buffer.alloc(1024), 1024, 0, () => {}); // ends where it starts
    expect(said(ops)).toEqual(["write 1024+1024", "write 2048+1024", "write 0+1024"]);
    expect(ops.map((o) => o.fd)).toEqual([DIRECT_FD, DIRECT_FD, DIRECT_FD]);
  });

  it("stays buffered where the kernel cannot say what is written; asks no further than the window's end", async () => {
    const unknown = lone(0, {}, 0, undefined, () => -1);
    unknown.b.write(Buffer.alloc(1024), 1024, 1024, () => {});
    await Promise.resolve();
    expect(unknown.ops[0]!.fd).toBe(FD);
    // Window [1 MiB, 9 MiB) of the file: its last region is [8 MiB, 10 MiB), asked up to 9 MiB.
    const end = lone(0, {}, 1 * MiB);
    end.b.write(Buffer.alloc(1024), 1024, 7 * MiB + 1024, () => {});
    expect(end.extents).toEqual([`${FD} ${8 * MiB}+${1 * MiB}`]);
    expect(end.ops[0]!.fd).toBe(DIRECT_FD);
  });

  it("gives a write the ring's error, and scans on, when the ring throws while held writes go out", async () => {
    const { b, ops } = lone([1024, 5120]);
    const results: string[] = [];
    b.write(Buffer.alloc(1024), 1024, 9216, (e) => results.push(`direct ${e?.code ?? e}`));
    b.write(Buffer.alloc(1024), 1024, 1024, (e) => results.push(`first ${e?.code ?? e}`)); // cached: held
    b.write(Buffer.alloc(1024), 1024, 5120, (e) => results.push(`second ${e?.code ?? e}`)); // cached: held
    const ring = (b as unknown as { ring: IoRing }).ring;
    const write = ring.write;
    ring.write = (...args) => {
      if (args[3] === 1024) {
        ring.write = write;
        throw Object.assign(new RangeError("no memory for the request"), { code: "ENOMEM" });
      }
      write.call(ring, ...args);
    };
    ops[0]!.done(null); // the direct write: the held ones read their pages
    for (const r of ops.filter((o) => o.kind === "read")) r.done(null);
    expect(results).toContain("first ENOMEM");
    expect(said(ops.filter((o) => o.kind === "write"))).toEqual([
      "write 9216+1024",
      "write 5120+1024",
    ]);
    ops.find((o) => o.pos === 5120 && o.kind === "write")!.done(null);
    await Promise.resolve();
    ops.find((o) => o.kind === "sync")!.done(null); // the one covering the direct and the second
    expect(results.sort()).toEqual(["direct null", "first ENOMEM", "second null"]);
    expect(b.pending).toBe(0);
  });

  it("lets a write go without its page read where the ring refuses the read", () => {
    const { b, ops } = backend();
    const ring = (b as unknown as { ring: IoRing }).ring;
    const read = ring.read;
    ring.read = () => {
      throw new RangeError("no memory for the request");
    };
    b.write(Buffer.alloc(1024), 1024, 1024, () => {});
    ring.read = read;
    expect(said(ops)).toEqual(["write 1024+1024"]);
    expect(b.pending).toBe(2); // it and the write already in flight, both with the ring
  });

  it("goes buffered, its page read first, where a buffered write is in flight in its 2 MiB", async () => {
    const { b, ops } = lone([0]);
    b.write(Buffer.alloc(4096), 4096, 0, () => {}); // cached: buffered, a whole page
    b.write(Buffer.alloc(1024), 1024, 9216, () => {}); // uncached, same 2 MiB
    b.write(Buffer.alloc(1024), 1024, 2 * MiB + 1024, () => {}); // uncached, another
    expect(said(ops)).toEqual(["write 0+4096", "read 8192+4096", `write ${2 * MiB + 1024}+1024`]);
    expect(ops.map((o) => o.fd)).toEqual([FD, FD, DIRECT_FD]);
    ops[0]!.done(null);
    ops[1]!.done(null);
    expect(said(ops).at(-1)).toBe("write 9216+1024");
    expect(ops.at(-1)!.fd).toBe(FD);
  });

  it("keeps the 2 MiB regions aligned in the file's terms, and a write reaching into one waits for it", async () => {
    // No window: a direct write at 12 KiB holds a cached write below it, in [0, 2 MiB).
    const { b, ops } = lone([8192, 2 * MiB - 4096]);
    b.write(Buffer.alloc(1024), 1024, 12288, () => {});
    b.write(Buffer.alloc(4096), 4096, 8192, () => {}); // below it, cached: held
    b.write(Buffer.alloc(8192), 8192, 2 * MiB - 4096, () => {}); // into [2 MiB, 4 MiB) too: behind it
    expect(said(ops)).toEqual(["write 12288+1024"]);
    ops[0]!.done(null);
    expect(said(ops).slice(1)).toEqual(["write 8192+4096", `write ${2 * MiB - 4096}+8192`]);
    expect(ops.slice(1).map((o) => o.fd)).toEqual([FD, FD]);

    // Window at 1 MiB: export 1 KiB is file 1 MiB + 1 KiB, in the file's [0, 2 MiB).
    const w = lone([2 * MiB - 4096, 2 * MiB], {}, 1 * MiB);
    w.b.write(Buffer.alloc(1024), 1024, 1024, () => {});
    w.b.write(Buffer.alloc(4096), 4096, 1 * MiB - 4096, () => {}); // file 2 MiB - 4 KiB: held
    w.b.write(Buffer.alloc(4096), 4096, 1 * MiB, () => {}); // file 2 MiB: past it, goes on
    expect(said(w.ops)).toEqual([`write ${1 * MiB + 1024}+1024`, `write ${2 * MiB}+4096`]);
    expect(w.ops.map((o) => o.fd)).toEqual([DIRECT_FD, FD]);
  });

  it("lets the held writes go when the direct write fails, or the ring throws on it", async () => {
    const failed = lone(0);
    const results: string[] = [];
    failed.b.write(Buffer.alloc(1024), 1024, 1024, (e) => results.push(`first ${e?.code}`));
    await Promise.resolve();
    expect(failed.ops[0]!.fd).toBe(DIRECT_FD);
    failed.b.write(Buffer.alloc(4096), 4096, 8192, (e) => results.push(`second ${e?.code}`));
    failed.ops[0]!.done(Object.assign(new Error("pwritev2: EIO"), { code: "EIO" }));
    expect(said(failed.ops).slice(1)).toEqual(["write 8192+4096"]);
    failed.ops[1]!.done(null);
    // A durable write that failed may have been its sync: group commit fails
    // the export's later writes (group-commit.ts), with no sync of their own.
    await Promise.resolve();
    expect(said(failed.ops)).toHaveLength(2);
    expect(results).toEqual(["first EIO", "second EIO"]);

    const thrown = lone(0);
    const ring = thrown.ops;
    const errors: string[] = [];
    // The next ring.write throws, as a closing ring does.
    const b = thrown.b as unknown as { ring: IoRing };
    const write = b.ring.write;
    let thrownOn = -1;
    b.ring.write = (fd) => {
      b.ring.write = write;
      thrownOn = fd;
      throw Object.assign(new Error("ring closed"), { code: "ECANCELED" });
    };
    thrown.b.write(Buffer.alloc(1024), 1024, 1024, (e) => errors.push(`first ${e?.code}`));
    await Promise.resolve();
    expect(errors).toEqual(["first ECANCELED"]);
    expect(thrownOn).toBe(DIRECT_FD);
    thrown.b.write(Buffer.alloc(4096), 4096, 8192, (e) => errors.push(`second ${e?.code ?? e}`));
    expect(said(ring)).toEqual(["write 8192+4096"]); // not held behind the failed one
    ring[0]!.done(null); // alone in its turn too, after a failure that was the write's own
    expect(errors).toEqual(["first ECANCELED", "second null"]);
  });
});

describe.skipIf(!probeUring().ok || fs.statfsSync("/var/tmp").type !== EXT4_MAGIC)(
  "pages read first, on an ext4 file through io_uring",
  () => {
    let dir: string;
    beforeAll(() => {
      dir = fs.mkdtempSync(path.join("/var/tmp", "aoed-pages-"));
    });
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("is on for a writable disk file, off when read-only or on the thread pool", async () => {
      const file = path.join(dir, "caps.img");
      fs.writeFileSync(file, Buffer.alloc(1 << 20));
      const rw = await openFileBackend(openOptions(file, { io: "io_uring" }));
      const ro = await openFileBackend(openOptions(file, { io: "io_uring", readOnly: true }));
      const threads = await openFileBackend(openOptions(file, { io: "threads" }));
      try {
        expect(rw.caps.pagesReadFirst).toBe(true);
        expect(ro.caps.pagesReadFirst).toBeUndefined();
        expect(threads.caps.pagesReadFirst).toBeUndefined();
      } finally {
        await Promise.all([rw.close(), ro.close(), threads.close()]);
      }
    });

    it.skipIf(!cachestat || process.arch !== "x64")(
      "writes a lone durable write around the page cache, to the file",
      async () => {
        const file = path.join(dir, "lone.img");
        fs.writeFileSync(file, randomBytes(1 << 20));
        const b = await openFileBackend(openOptions(file, { io: "io_uring", writeCache: false }));
        const data = randomBytes(1024);
        try {
          expect(b.caps.uncachedWritesDirect).toBe(true);
          const fd = fs.openSync(file, "r");
          try {
            fs.fdatasyncSync(fd);
            // Drop the file's pages, so the write finds none of them cached.
            execFileSync("dd", [`if=${file}`, "iflag=nocache", "count=0", "status=none"]);
            expect(cachedPages(fd, 0, 1 << 20)).toBe(0);
            // cachestat counts what is cached: a page read in shows.
            fs.readSync(fd, Buffer.alloc(4096), 0, 4096, 65536);
            expect(cachedPages(fd, 65536, 4096)).toBe(1);
            const buf = b.allocBuffer(1024);
            data.copy(buf);
            expect(await new Promise((resolve) => b.write(buf, 1024, 5120, resolve))).toBeNull();
            // A buffered write would have read its page in and left it cached.
            expect(cachedPages(fd, 4096, 4096)).toBe(0);
          } finally {
            fs.closeSync(fd);
          }
        } finally {
          await b.close();
        }
        expect(fs.readFileSync(file).subarray(5120, 6144).equals(data)).toBe(true);
      },
    );

    it.skipIf(!cachestat || process.arch !== "x64")(
      "writes into a hole or an unwritten extent through the page cache",
      async () => {
        const file = path.join(dir, "sparse.img");
        fs.writeFileSync(file, randomBytes(2 << 20)); // 2 MiB written...
        fs.truncateSync(file, 8 << 20); // ...then a hole to 8 MiB
        execFileSync("fallocate", ["-o", String(4 << 20), "-l", String(1 << 20), file]); // unwritten
        const b = await openFileBackend(openOptions(file, { io: "io_uring", writeCache: false }));
        const fd = fs.openSync(file, "r");
        const write = async (at: number) => {
          const buf = b.allocBuffer(1024);
          randomBytes(1024).copy(buf);
          expect(await new Promise((resolve) => b.write(buf, 1024, at, resolve))).toBeNull();
          return cachedPages(fd, at - (at % 4096), 4096);
        };
        try {
          expect(b.caps.uncachedWritesDirect).toBe(true);
          fs.fdatasyncSync(fd);
          execFileSync("dd", [`if=${file}`, "iflag=nocache", "count=0", "status=none"]);
          expect(await write(5120)).toBe(0); // written extent: direct, left uncached
          expect(await write((2 << 20) + 1024)).toBe(1); // hole: buffered, its page cached
          expect(await write((4 << 20) + 1024)).toBe(1); // unwritten: buffered
        } finally {
          fs.closeSync(fd);
          await b.close();
        }
      },
    );

    it("tells written extents from holes, unwritten and delayed ones, across many extents", () => {
      const file = path.join(dir, "extents.img");
      const other = path.join(dir, "extents-other.img");
      const fd = fs.openSync(file, "w+");
      const otherFd = fs.openSync(other, "w+");
      const block = randomBytes(4096);
      try {
        // 40 blocks, each allocated beside one of the other file: 40 extents, more than one FIEMAP call takes.
        for (let i = 0; i < 40; i++) {
          fs.writeSync(fd, block, 0, 4096, i * 4096);
          fs.fdatasyncSync(fd);
          fs.writeSync(otherFd, block, 0, 4096, i * 4096);
          fs.fdatasyncSync(otherFd);
        }
        expect(writtenRange(fd, 0, 40 * 4096)).toBe(1);
        expect(writtenRange(fd, 5000, 1024)).toBe(1);
        fs.ftruncateSync(fd, 1 << 20); // a hole after them
        expect(writtenRange(fd, 39 * 4096, 8192)).toBe(0);
        expect(writtenRange(fd, 0, 1 << 20)).toBe(0);
        fs.writeSync(fd, block, 0, 4096, 48 * 4096); // written, hole, written
        fs.fdatasyncSync(fd);
        expect(writtenRange(fd, 36 * 4096, 16 * 4096)).toBe(0);
        expect(writtenRange(fd, 48 * 4096, 4096)).toBe(1);
        fs.writeSync(fd, block, 0, 4096, 64 * 4096); // not yet written back: delayed
        expect(writtenRange(fd, 64 * 4096, 4096)).toBe(0);
        fs.fdatasyncSync(fd);
        expect(writtenRange(fd, 64 * 4096, 4096)).toBe(1);
        execFileSync("fallocate", ["-o", String(128 * 4096), "-l", "65536", file]); // unwritten
        expect(writtenRange(fd, 128 * 4096, 4096)).toBe(0);
        expect(writtenRange(fd, 2 << 20, 4096)).toBe(0); // past the end
      } finally {
        fs.closeSync(fd);
        fs.closeSync(otherFd);
      }
    });

    it("opens no O_DIRECT descriptor for it with the write cache on, direct-io, or worker threads", async () => {
      const file = path.join(dir, "lone-caps.img");
      fs.writeFileSync(file, Buffer.alloc(1 << 20));
      const durable = { io: "io_uring", writeCache: false } as const;
      const alone = await openFileBackend(openOptions(file, durable));
      const cached = await openFileBackend(openOptions(file, { io: "io_uring" }));
      const direct = await openFileBackend(openOptions(file, { ...durable, directIo: "writes" }));
      const workers = await openFileBackend(openOptions(file, { ...durable, workerThreads: true }));
      try {
        // Where it can be had at all, the plain durable export has it.
        expect(alone.caps.uncachedWritesDirect).toBe(
          cachestat && process.arch === "x64" ? true : undefined,
        );
        expect(cached.caps.uncachedWritesDirect).toBeUndefined();
        expect((cached as unknown as { directFd: number }).directFd).toBe(-1);
        expect(direct.caps.uncachedWritesDirect).toBeUndefined();
        expect(workers.caps.uncachedWritesDirect).toBeUndefined();
        expect((workers as unknown as { directFd: number }).directFd).toBe(-1);
      } finally {
        await Promise.all([alone.close(), cached.close(), direct.close(), workers.close()]);
      }
    });

    it.each([
      ["all cached", false],
      ["part cached", true],
    ])(
      "lands many partial writes in flight at once (%s), the later of two to the same bytes last",
      async (_, dropped) => {
        const file = path.join(dir, "writes.img");
        const size = 16 << 20;
        fs.writeFileSync(file, randomBytes(size));
        const b = await openFileBackend(openOptions(file, { io: "io_uring", writeCache: false }));
        const expected = fs.readFileSync(file);
        if (dropped) {
          const fd = fs.openSync(file, "r");
          try {
            fs.fdatasyncSync(fd);
            execFileSync("dd", [`if=${file}`, "iflag=nocache", "count=0", "status=none"]);
            // A page in every 256 KiB back in (and what readahead brings
            // with it): where the feature is on, writes in one 2 MiB go both
            // ways, direct and buffered.
            for (let at = 0; at < size; at += 256 << 10)
              fs.readSync(fd, Buffer.alloc(4096), 0, 4096, at);
            if (cachestat) {
              expect(cachedPages(fd, 0, size)).toBeGreaterThan(0);
              expect(cachedPages(fd, 0, size)).toBeLessThan(size / 4096 / 2);
            }
          } finally {
            fs.closeSync(fd);
          }
        }
        // Which descriptor each write went through.
        const { ring, directFd } = b as unknown as { ring: IoRing; directFd: number };
        const write = ring.write;
        const ways = { direct: 0, buffered: 0 };
        ring.write = (fd, ...rest) => {
          ways[fd === directFd ? "direct" : "buffered"]++;
          write.call(ring, fd, ...rest);
        };
        const writes: Promise<NodeJS.ErrnoException | null>[] = [];
        try {
          for (let i = 0; i < 256; i++) {
            // 1 KiB at a 512-byte boundary; every fourth rewrites the one before it with other data.
            const pos = i % 4 === 3 ? (i - 1) * 61440 : i * 61440 + 512;
            const data = randomBytes(1024);
            const buf = b.allocBuffer(1024);
            data.copy(buf);
            data.copy(expected, pos);
            writes.push(new Promise((resolve) => b.write(buf, 1024, pos, resolve)));
            // 32 to a turn: later ones meet earlier ones in flight.
            if (i % 32 === 31) await new Promise((resolve) => setImmediate(resolve));
          }
          expect(await Promise.all(writes)).toEqual(writes.map(() => null));
        } finally {
          ring.write = write;
          await b.close();
        }
        expect(ways.direct + ways.buffered).toBe(256);
        if (dropped && b.caps.uncachedWritesDirect) {
          expect(ways.direct).toBeGreaterThan(0);
          expect(ways.buffered).toBeGreaterThan(0);
        } else expect(ways.direct).toBe(0);
        // Through the page cache, then from the disk: a stale cached page shows in the first.
        expect(fs.readFileSync(file).equals(expected)).toBe(true);
        const fd = fs.openSync(file, "r");
        try {
          execFileSync("dd", [`if=${file}`, "iflag=nocache", "count=0", "status=none"]);
          expect(cachedPages(fd, 0, size)).toBe(cachestat ? 0 : -1);
        } finally {
          fs.closeSync(fd);
        }
        expect(fs.readFileSync(file).equals(expected)).toBe(true);
      },
    );
  },
);

describe("direct-io backends of one file (a reload that turns direct-io on or off, windows of one file)", () => {
  const page = (n: number) => Buffer.alloc(4096, n);
  const fds = (ops: Op[]) =>
    ops.map((o) => `${o.fd === DIRECT_FD ? "direct" : "buffered"} ${o.pos}`);

  it("go O_DIRECT only while every writer of the file would; the two ways are never in flight at once", async () => {
    const d = backend({ directIo: "writes" }, 0, false, undefined, "fake:shared-direct-io");
    const results: string[] = [];
    const note = (name: string) => (e: NodeJS.ErrnoException | null) =>
      results.push(`${name} ${e === null ? "ok" : e.code}`);
    d.b.write(page(1), 4096, 0, note("d1"));
    expect(fds(d.ops)).toEqual(["direct 0"]);
    // A buffered backend of the file arrives (the reload's other side) while that write is in flight.
    const a = backend({}, 0, false, undefined, "fake:shared-direct-io");
    a.b.write(page(2), 4096, 65536, note("a1"));
    d.b.write(page(3), 4096, 8192, note("d2")); // the page cache now, after the direct write
    expect(a.ops).toEqual([]);
    expect(fds(d.ops)).toEqual(["direct 0"]);
    d.ops[0]!.done(null);
    expect(fds(a.ops)).toEqual(["buffered 65536"]);
    expect(fds(d.ops)).toEqual(["direct 0", "buffered 8192"]);
    a.ops[0]!.done(null);
    await closeFake(a.b);
    // Alone again, but its own buffered write is in flight: the next direct one waits for it.
    d.b.write(page(4), 4096, 16384, note("d3"));
    expect(fds(d.ops)).toEqual(["direct 0", "buffered 8192"]);
    d.ops[1]!.done(null);
    expect(fds(d.ops)).toEqual(["direct 0", "buffered 8192", "direct 16384"]);
    d.ops[2]!.done(null);
    expect(results.sort()).toEqual(["a1 ok", "d1 ok", "d2 ok", "d3 ok"]);
    await closeFake(d.b);
  });

  /**
   * Two backends of one file, each given one whole-page write before either
   * completes: the way each write went.
   */
  const oneWriteEach = async (
    first: Partial<BackendCapabilities>,
    second: Partial<BackendCapabilities>,
    fileId: string,
  ) => {
    const x = backend(first, 0, false, undefined, fileId);
    const y = backend(second, 0, false, undefined, fileId);
    x.b.write(page(1), 4096, 0, () => {});
    y.b.write(page(2), 4096, 4096, () => {});
    const ways = [fds(x.ops), fds(y.ops)];
    for (const { b, ops } of [x, y]) {
      for (const op of ops) op.done(null);
      await closeFake(b);
    }
    return ways;
  };

  it("two that both go direct do not wait for each other", async () => {
    expect(
      await oneWriteEach({ directIo: "writes" }, { directIo: true }, "fake:both-direct"),
    ).toEqual([["direct 0"], ["direct 4096"]]);
  });

  it("one that needs 4 KiB alignment for O_DIRECT makes the others write through the page cache", async () => {
    expect(
      await oneWriteEach(
        { directIo: "writes" },
        { directIo: "writes", alignment: 4096, writesBuffered: "4Kn" },
        "fake:4kn",
      ),
    ).toEqual([["buffered 0"], ["buffered 4096"]]);
  });
});
