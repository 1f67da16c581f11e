/**
 * The io_uring backend reads the page a buffered write partly covers before
 * the write (caps.pagesReadFirst), and keeps writes in arrival order while it
 * holds one. The ring here is a recording stand-in whose operations complete
 * when the test says, so every ordering is forced, not raced; the real ring
 * runs the same writes on a disk file at the end.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackendCapabilities, SharedBackend } from "../../src/io/backend.js";
import { cachedPages, cachedPagesAnswer } from "../../src/io/blockdev.js";
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
) {
  const { ring, ops } = fakeRing();
  const on: SharedBackend = {
    path: "/fake/image",
    exportName: "e1.1",
    fd: FD,
    directFd: caps.directIo || caps.loneWritesDirect ? DIRECT_FD : -1,
    size: 1 << 20,
    offset,
    readOnly: false,
    caps: { directIo: false, blockDevice: false, alignment: 512, pagesReadFirst: true, ...caps },
    fileId,
  };
  const b = new UringBackend(on, ring, cached);
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

describe("a lone durable write to pages the cache lacks (caps.loneWritesDirect)", () => {
  const durable = { groupCommit: { dsync: true }, loneWritesDirect: true };
  /** A durable backend with nothing in flight; `cached` answers for the write's range. */
  const lone = (
    cached: number,
    caps: Partial<BackendCapabilities> = {},
    offset = 0,
    fileId?: string,
  ) => {
    const asked: string[] = [];
    const answer = (fd: number, off: number, len: number) => {
      asked.push(`${fd} ${off}+${len}`);
      return cached;
    };
    const r = backend({ ...durable, ...caps }, offset, false, answer, fileId);
    return { ...r, asked };
  };

  it("goes through the O_DIRECT descriptor with RWF_DSYNC, and reads nothing", async () => {
    const { b, ops, asked } = lone(0);
    const results: (NodeJS.ErrnoException | null)[] = [];
    b.write(Buffer.alloc(1024), 1024, 1024, (e) => results.push(e));
    await Promise.resolve();
    expect(said(ops)).toEqual(["write 1024+1024"]);
    expect(ops[0]!.fd).toBe(DIRECT_FD);
    expect(ops[0]!.flags).toBe(2);
    expect(asked).toEqual([`${FD} 1024+1024`]);
    ops[0]!.done(null);
    expect(results).toEqual([null]);
  });

  it("asks about the file's bytes under an export window", async () => {
    const { b, ops, asked } = lone(0, {}, 4096);
    b.write(Buffer.alloc(1024), 1024, 1024, () => {});
    await Promise.resolve();
    expect(asked).toEqual([`${FD} 5120+1024`]);
    expect(said(ops)).toEqual(["write 5120+1024"]);
    expect(ops[0]!.fd).toBe(DIRECT_FD);
  });

  it("stays buffered where a page is cached, the kernel cannot say, O_DIRECT's alignment is not met, or without the capability", async () => {
    for (const { cached, caps, at, len } of [
      { cached: 1, caps: {}, at: 1024, len: 1024 },
      { cached: -1, caps: {}, at: 1024, len: 1024 },
      { cached: 0, caps: { alignment: 1024 }, at: 512, len: 1024 }, // offset off
      { cached: 0, caps: { alignment: 1024 }, at: 1024, len: 512 }, // length off
      { cached: 0, caps: { loneWritesDirect: undefined }, at: 1024, len: 1024 },
    ]) {
      const { b, ops } = lone(cached, caps);
      b.write(Buffer.alloc(len), len, at, () => {});
      await Promise.resolve();
      expect(said(ops)).toEqual([`write ${at}+${len}`]);
      expect(ops[0]!.fd).toBe(FD);
      expect(ops[0]!.flags).toBe(2);
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

  it("is only for a durable write that stays alone for its turn", async () => {
    // write-cache on: no RWF_DSYNC, nothing to gain.
    const cachedWrites = backend({ loneWritesDirect: true }, 0, false, () => 0);
    cachedWrites.b.write(Buffer.alloc(1024), 1024, 1024, () => {});
    await Promise.resolve();
    expect(cachedWrites.ops[0]!.fd).toBe(FD);

    // A second write in the same turn: both read their pages, both buffered.
    const { b, ops } = lone(0);
    b.write(Buffer.alloc(1024), 1024, 1024, () => {});
    b.write(Buffer.alloc(1024), 1024, 9216, () => {});
    await Promise.resolve();
    expect(said(ops)).toEqual(["read 0+4096", "read 8192+4096"]);
    ops[0]!.done(null);
    ops[1]!.done(null);
    expect(ops.slice(2).map((o) => o.fd)).toEqual([FD, FD]);
  });

  it("holds the writes that come meanwhile within its 2 MiB, their page reads too, until it is done; then in order", async () => {
    const { b, ops } = lone(0);
    const results: string[] = [];
    b.write(Buffer.alloc(1024), 1024, 1024, (e) => results.push(`first ${e}`));
    await Promise.resolve();
    // Beyond the largest folio that could hold its page: goes on, its page read first.
    b.write(Buffer.alloc(1024), 1024, 2 * MiB + 1024, () => {});
    expect(said(ops)).toEqual(["write 1024+1024", `read ${2 * MiB}+4096`]);
    ops.splice(1, 1)[0]!.done(null);
    expect(said(ops).at(-1)).toBe(`write ${2 * MiB + 1024}+1024`);
    const far = ops.pop()!; // left in flight to the end
    b.write(Buffer.alloc(1024), 1024, 2048, (e) => results.push(`same page ${e}`));
    b.write(Buffer.alloc(4096), 4096, 2 * MiB - 4096, (e) => results.push(`whole page ${e}`));
    expect(said(ops)).toEqual(["write 1024+1024"]);
    expect(b.pending).toBe(4);
    ops[0]!.done(null);
    expect(results).toEqual(["first null"]);
    // Only now is the page read, so it holds what the direct write put there.
    expect(said(ops).slice(1)).toEqual(["read 0+4096"]);
    ops[1]!.done(null);
    expect(said(ops).slice(2)).toEqual(["write 2048+1024", `write ${2 * MiB - 4096}+4096`]);
    expect(ops.slice(2).map((o) => o.fd)).toEqual([FD, FD]);
    ops[2]!.done(null);
    ops[3]!.done(null);
    // Group commit: they are answered after the sync that covers them.
    await Promise.resolve();
    expect(said(ops).slice(4)).toEqual(["sync 0+0"]);
    expect(results).toEqual(["first null"]);
    ops[4]!.done(null);
    expect(results).toEqual(["first null", "same page null", "whole page null"]);
    far.done(null);
    await Promise.resolve();
    ops.at(-1)!.done(null); // its sync
    expect(b.pending).toBe(0);
  });

  it("holds the 2 MiB around the direct write, rounded both ways, in the file's terms", async () => {
    // No window: the direct write at 8 KiB holds [0, 2 MiB).
    const { b, ops } = lone(0);
    b.write(Buffer.alloc(1024), 1024, 8192, () => {});
    await Promise.resolve();
    b.write(Buffer.alloc(4096), 4096, 0, () => {}); // below it, in its region
    b.write(Buffer.alloc(8192), 8192, 2 * MiB - 4096, () => {}); // reaching into it
    expect(said(ops)).toEqual(["write 8192+1024"]);

    // Window at 1 MiB: the direct write at export 1 KiB is file 1 MiB + 1 KiB, in the file's [0, 2 MiB).
    const w = lone(0, {}, 1 * MiB);
    w.b.write(Buffer.alloc(1024), 1024, 1024, () => {});
    await Promise.resolve();
    w.b.write(Buffer.alloc(4096), 4096, 1 * MiB - 4096, () => {}); // file 2 MiB - 4 KiB: held
    expect(said(w.ops)).toEqual([`write ${1 * MiB + 1024}+1024`]);
    const past = lone(0, {}, 1 * MiB);
    past.b.write(Buffer.alloc(1024), 1024, 1024, () => {});
    await Promise.resolve();
    past.b.write(Buffer.alloc(4096), 4096, 1 * MiB, () => {}); // file 2 MiB: past it, goes on
    past.b.write(Buffer.alloc(4096), 4096, 1 * MiB + 4096, () => {});
    expect(said(past.ops)).toEqual([
      `write ${1 * MiB + 1024}+1024`,
      `write ${2 * MiB}+4096`,
      `write ${2 * MiB + 4096}+4096`,
    ]);
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
          expect(b.caps.loneWritesDirect).toBe(true);
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
        expect(alone.caps.loneWritesDirect).toBe(
          cachestat && process.arch === "x64" ? true : undefined,
        );
        expect(cached.caps.loneWritesDirect).toBeUndefined();
        expect((cached as unknown as { directFd: number }).directFd).toBe(-1);
        expect(direct.caps.loneWritesDirect).toBeUndefined();
        expect(workers.caps.loneWritesDirect).toBeUndefined();
        expect((workers as unknown as { directFd: number }).directFd).toBe(-1);
      } finally {
        await Promise.all([alone.close(), cached.close(), direct.close(), workers.close()]);
      }
    });

    it("lands many partial writes in flight at once, the later of two to the same bytes last", async () => {
      const file = path.join(dir, "writes.img");
      const size = 4 << 20;
      fs.writeFileSync(file, randomBytes(size));
      const b = await openFileBackend(openOptions(file, { io: "io_uring", writeCache: false }));
      const expected = fs.readFileSync(file);
      const writes: Promise<NodeJS.ErrnoException | null>[] = [];
      try {
        for (let i = 0; i < 256; i++) {
          // 1 KiB at a 512-byte boundary; every fourth rewrites the one before it with other data.
          const pos = i % 4 === 3 ? (i - 1) * 7680 : i * 7680 + 512;
          const data = randomBytes(1024);
          const buf = b.allocBuffer(1024);
          data.copy(buf);
          data.copy(expected, pos);
          writes.push(new Promise((resolve) => b.write(buf, 1024, pos, resolve)));
        }
        expect(await Promise.all(writes)).toEqual(writes.map(() => null));
      } finally {
        await b.close();
      }
      expect(fs.readFileSync(file).equals(expected)).toBe(true);
    });
  },
);
