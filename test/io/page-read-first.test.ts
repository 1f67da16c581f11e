/**
 * The io_uring backend reads the page a buffered write partly covers before
 * the write (caps.pagesReadFirst), and keeps writes in arrival order while it
 * holds one. The ring here is a recording stand-in whose operations complete
 * when the test says, so every ordering is forced, not raced; the real ring
 * runs the same writes on a disk file at the end.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackendCapabilities, SharedBackend } from "../../src/io/backend.js";
import { UringBackend } from "../../src/io/engines/uring.js";
import { openFileBackend } from "../../src/io/open.js";
import { EXT4_MAGIC } from "../../src/io/store.js";
import type { IoRing } from "../../src/io/uring.js";
import { probeUring } from "../../src/io/uring.js";
import { openOptions } from "../helpers/open-options.js";

const FD = 10;
const DIRECT_FD = 11;

interface Op {
  kind: "read" | "write";
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
  const ring = { boundedWorkers: 64, read: start("read"), write: start("write") };
  return { ring: ring as unknown as IoRing, ops };
}

/**
 * A backend on a fake ring. `busy`: one whole-page write is already in flight
 * (returned as `other`, left out of `ops`), as pages are read first only
 * beside other writes.
 */
function backend(caps: Partial<BackendCapabilities> = {}, offset = 0, busy = true) {
  const { ring, ops } = fakeRing();
  const on: SharedBackend = {
    path: "/fake/image",
    exportName: "e1.1",
    fd: FD,
    directFd: caps.directIo ? DIRECT_FD : -1,
    size: 1 << 20,
    offset,
    readOnly: false,
    caps: { directIo: false, blockDevice: false, alignment: 512, pagesReadFirst: true, ...caps },
  };
  const b = new UringBackend(on, ring);
  if (!busy) return { b, ops, other: null };
  b.write(Buffer.alloc(4096), 4096, 65536 - offset, () => {}); // a whole page of the file
  return { b, ops, other: ops.shift()! };
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
