/** IoRing: io_uring driven from TypeScript, against temp files. */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { IoCallback } from "../../src/io/backend.js";
import { errnoError } from "../../src/io/errors.js";
import { type IoOwner, IoRing, probeUring } from "../../src/io/uring.js";
import { loadNative } from "../../src/native/addon.js";
import { waitFor } from "../helpers/wait.js";

const probe = probeUring();
const KiB = 1024;

/** Promise wrapper for tests only (the ring itself is callback based). */
function op(start: (cb: IoCallback) => void): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolve) => start((err) => resolve(err)));
}

describe("io_uring probe", () => {
  it("reports support or a reason", () => {
    if (probe.ok) {
      expect(probe).toMatchObject({ read: true, write: true, fsync: true, errno: 0 });
    } else {
      expect(probe.code).not.toBe("");
      expect(probe.step).not.toBe("");
    }
  });
});

/** Linux >= 6.1 has IORING_SETUP_DEFER_TASKRUN. */
function kernelDefers(): boolean {
  const [major = 0, minor = 0] = os.release().split(/[.-]/).map(Number);
  return major > 6 || (major === 6 && minor >= 1);
}

// Every test runs on a ring that defers completions to io_uring_enter (what
// the daemon uses on Linux >= 6.1) and on one that posts them as they happen
// (what it falls back to on older kernels).
describe.skipIf(!probe.ok).each([true, false])("IoRing, deferCompletions %s", (defer) => {
  let dir: string;
  let ring: IoRing;
  const fds: number[] = [];
  const openTmp = (name: string, flags = "w+", size = 0) => {
    const p = path.join(dir, name);
    const fd = fs.openSync(p, flags);
    if (size > 0) fs.ftruncateSync(fd, size);
    fds.push(fd);
    return { p, fd };
  };

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-uring-"));
    ring = IoRing.open({ entries: 8, cqEntries: 16, deferCompletions: defer });
  });
  afterEach(() => {
    for (const fd of fds.splice(0)) fs.closeSync(fd);
  });
  afterAll(async () => {
    await ring.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("sets up the rings it was asked for", () => {
    expect(ring.sqEntries).toBe(8);
    expect(ring.cqEntries).toBe(16);
    expect(ring.defersCompletions).toBe(defer && kernelDefers());
  });

  it("calls back every operation that completed while the event loop was busy", async () => {
    // Syncs and writes run on the kernel's workers and complete while this
    // thread spins, so a deferring ring holds them until it enters the kernel
    // again; the spins end at varying points of that. An operation whose
    // wake-up is lost is never called back, and the wait times out.
    const { fd } = openTmp("busy", "w+", 64 * KiB);
    const called: number[] = [];
    for (let round = 0; round < 60; round++) {
      const before = called.length;
      for (let i = 0; i < 6; i++) {
        const cb = (err: NodeJS.ErrnoException | null) => called.push(err ? -1 : round);
        if (i % 2 === 0) ring.fdatasync(fd, cb);
        else ring.write(fd, Buffer.alloc(512, i), 512, i * 512, cb);
      }
      const until = performance.now() + (round % 7) * 0.3;
      while (performance.now() < until) {
        // spin: completions arrive while JavaScript runs
      }
      await waitFor(
        `round ${round}'s 6 operations to be called back`,
        () => called.length === before + 6,
      );
    }
    expect(called.filter((r) => r < 0)).toEqual([]);
    expect(ring.pending).toBe(0);
  });

  it("calls back more completions than the kernel posts in one call, from one wake-up", async () => {
    // Recent kernels (6.18 here) post at most 20 deferred completions per
    // io_uring_enter and leave the rest flagged. Only the eventfd signal that
    // posting raises, or entering again at once, brings the rest: a wake-up
    // that drained the eventfd after its enter and stopped there would leave
    // them waiting (it did, when tried).
    const big = IoRing.open({ entries: 64, cqEntries: 128, deferCompletions: defer });
    try {
      const { fd } = openTmp("many", "w+", 64 * KiB);
      let called = 0;
      for (let i = 0; i < 48; i++) big.fdatasync(fd, () => called++);
      await waitFor("the 48 syncs to reach the kernel", () => big.pending === 48 && called === 0);
      const until = performance.now() + 50;
      while (performance.now() < until) {
        // spin: all of them complete before the event loop looks
      }
      await waitFor("all 48 syncs to be called back", () => called === 48);
    } finally {
      await big.close();
    }
  });

  it("stops entering the kernel when the flag stays set with nothing to post", async (ctx) => {
    // A completion can set IORING_SQ_TASKRUN after the enter that posted it,
    // and the flag then stays set until the next completion runs. Here it is
    // set by hand while nothing waits, and each read (a page-cache hit,
    // posted inline by its submit, which signals the eventfd) wakes the ring
    // with the flag set: a wake-up that looped on the flag alone would spin
    // with the event loop blocked.
    if (!ring.defersCompletions) return ctx.skip("this ring posts completions as they happen");
    const inside = ring as unknown as {
      h: { runDeferred: () => boolean };
      sq: Int32Array;
      sqFlagsIx: number;
    };
    const h = inside.h;
    const real = h.runDeferred;
    let calls = 0;
    // The addon's methods are read-only on its prototype: shadow it on the handle.
    Object.defineProperty(h, "runDeferred", {
      configurable: true,
      value: () => {
        if (++calls > 10_000) throw new Error("the wake-up keeps entering the kernel");
        return real.call(h);
      },
    });
    try {
      const { fd } = openTmp("stale", "w+", 64 * KiB);
      fs.writeSync(fd, Buffer.alloc(4096, 7), 0, 4096, 0);
      const back = Buffer.alloc(512);
      for (let i = 0; i < 20; i++) {
        Atomics.or(inside.sq, inside.sqFlagsIx, loadNative().uringConstants.SQ_TASKRUN);
        expect(await op((cb) => ring.read(fd, back, 512, 0, cb))).toBeNull();
        await new Promise((resolve) => setImmediate(resolve));
      }
      expect(back.every((b) => b === 7)).toBe(true);
      expect(calls).toBeGreaterThan(0);
      expect(calls).toBeLessThan(200);
    } finally {
      Reflect.deleteProperty(h, "runDeferred");
    }
  });

  it("writes, reads back and fdatasyncs", async () => {
    const { p, fd } = openTmp("basic");
    const data = randomBytes(64 * KiB);
    expect(await op((cb) => ring.write(fd, data, data.length, 4096, cb))).toBeNull();
    const back = Buffer.alloc(64 * KiB);
    expect(await op((cb) => ring.read(fd, back, back.length, 4096, cb))).toBeNull();
    expect(back.equals(data)).toBe(true);
    expect(await op((cb) => ring.fdatasync(fd, cb))).toBeNull();
    const onDisk = fs.readFileSync(p);
    expect(onDisk.length).toBe(4096 + 64 * KiB);
    expect(onDisk.subarray(4096).equals(data)).toBe(true);
    expect(ring.pending).toBe(0);
  });

  it("reads and writes only the first len bytes of the buffer", async () => {
    const { fd } = openTmp("partial-buffer", "w+", 8192);
    const buf = Buffer.alloc(4096, 0xab);
    expect(await op((cb) => ring.write(fd, buf, 100, 10, cb))).toBeNull();
    const back = Buffer.alloc(4096, 0xcd);
    expect(await op((cb) => ring.read(fd, back, 200, 0, cb))).toBeNull();
    expect(back.subarray(0, 10).every((b) => b === 0)).toBe(true);
    expect(back.subarray(10, 110).every((b) => b === 0xab)).toBe(true);
    expect(back.subarray(110, 200).every((b) => b === 0)).toBe(true);
    expect(back.subarray(200).every((b) => b === 0xcd)).toBe(true);
  });

  it("handles offsets above 4 GiB (sparse file)", async () => {
    const { fd } = openTmp("big", "w+");
    const at = 5 * 1024 * 1024 * 1024 + 512;
    const data = randomBytes(512);
    expect(await op((cb) => ring.write(fd, data, 512, at, cb))).toBeNull();
    const back = Buffer.alloc(512);
    fs.readSync(fd, back, 0, 512, at);
    expect(back.equals(data)).toBe(true);
    back.fill(0);
    expect(await op((cb) => ring.read(fd, back, 512, at, cb))).toBeNull();
    expect(back.equals(data)).toBe(true);
  });

  it("keeps data intact under thousands of concurrent random ops (beyond the SQ)", async () => {
    const BLOCK = 4096;
    const BLOCKS = 1024;
    const { fd } = openTmp("stress", "w+", BLOCK * BLOCKS);
    const model = Buffer.alloc(BLOCK * BLOCKS);
    // All are issued in one turn, more than the kernel may hold (the CQ's
    // entries): the rest must wait in the ring's overflow queue and go in as
    // completions make room.
    expect(BLOCKS).toBeGreaterThan(ring.cqEntries);
    // Round 1: every block written once, all at the same time, in random order.
    const order = [...Array(BLOCKS).keys()].sort(() => Math.random() - 0.5);
    const bufs = order.map(() => randomBytes(BLOCK));
    let errors = 0;
    await new Promise<void>((resolve) => {
      let left = BLOCKS;
      order.forEach((b, i) => {
        bufs[i]!.copy(model, b * BLOCK);
        ring.write(fd, bufs[i]!, BLOCK, b * BLOCK, (err) => {
          if (err) errors++;
          if (--left === 0) resolve();
        });
      });
    });
    expect(errors).toBe(0);
    expect(fs.readFileSync(path.join(dir, "stress")).equals(model)).toBe(true);
    // Round 2: 4000 reads of random lengths at random sector offsets, all at once.
    const N = 4000;
    const reads = Array.from({ length: N }, () => {
      const len = 512 * (1 + Math.floor(Math.random() * 16));
      const pos = 512 * Math.floor(Math.random() * ((BLOCK * BLOCKS - len) / 512 + 1));
      return { len, pos, buf: Buffer.alloc(len) };
    });
    await new Promise<void>((resolve) => {
      let left = N;
      for (const r of reads)
        ring.read(fd, r.buf, r.len, r.pos, (err) => {
          if (err) errors++;
          if (--left === 0) resolve();
        });
    });
    expect(errors).toBe(0);
    for (const r of reads) expect(r.buf.equals(model.subarray(r.pos, r.pos + r.len))).toBe(true);
    expect(ring.pending).toBe(0);
  });

  it("interleaves reads, writes and flushes of many buffers in one batch", async () => {
    const { fd } = openTmp("mixed", "w+", 1024 * KiB);
    const bufs = Array.from({ length: 200 }, (_, i) => Buffer.alloc(1024, i & 0xff));
    const results: (NodeJS.ErrnoException | null)[] = [];
    await new Promise<void>((resolve) => {
      let left = bufs.length * 2;
      const done = (err: NodeJS.ErrnoException | null) => {
        results.push(err);
        if (--left === 0) resolve();
      };
      bufs.forEach((b, i) => {
        ring.write(fd, b, 1024, i * 1024, done);
        ring.fdatasync(fd, done);
      });
    });
    expect(results.every((e) => e === null)).toBe(true);
    const back = Buffer.alloc(1024);
    for (let i = 0; i < bufs.length; i += 37) {
      expect(await op((cb) => ring.read(fd, back, 1024, i * 1024, cb))).toBeNull();
      expect(back.equals(bufs[i]!)).toBe(true);
    }
  });

  it("maps errors to Node-style system errors naming the call, the file and the export", async () => {
    const { p, fd: rfd } = openTmp("ro", "w+", 4096);
    const ro = fs.openSync(p, "r");
    fds.push(ro);
    const owner: IoOwner = { path: p, exportName: "e0.1", pending: 0, onIdle: null };
    const err = await op((cb) => ring.write(ro, Buffer.alloc(512), 512, 0, cb, owner));
    expect(err).toMatchObject({ code: "EBADF", errno: -9, syscall: "pwrite", path: p });
    expect(err?.message).toBe(`pwrite ${p} (export e0.1): EBADF (bad file descriptor)`);
    expect(owner.pending).toBe(0);

    const bad = await op((cb) => ring.read(987654, Buffer.alloc(512), 512, 0, cb));
    expect(bad).toMatchObject({ code: "EBADF", syscall: "pread" });
    expect(bad).not.toHaveProperty("path");

    const dfd = fs.openSync(dir, "r");
    fds.push(dfd);
    expect(await op((cb) => ring.read(dfd, Buffer.alloc(512), 512, 0, cb))).toMatchObject({
      code: "EISDIR",
    });
    expect(await op((cb) => ring.fdatasync(987654, cb))).toMatchObject({
      code: "EBADF",
      syscall: "fdatasync",
    });
    // The ring is fine afterwards.
    expect(await op((cb) => ring.read(rfd, Buffer.alloc(512), 512, 0, cb))).toBeNull();
  });

  it("errnoError names the call, the file and the export", () => {
    const e = errnoError(-28, "pwrite", { path: "/x", exportName: "e0.1" });
    expect(e).toMatchObject({ code: "ENOSPC", errno: -28, syscall: "pwrite", path: "/x" });
    expect(e.message).toBe("pwrite /x (export e0.1): ENOSPC (no space left on device)");
    expect(errnoError(-28, "pwrite", null).message).toBe(
      "pwrite: ENOSPC (no space left on device)",
    );
  });

  it("reports a short read at end of file as EIO", async () => {
    const { fd } = openTmp("short", "w+");
    fs.writeSync(fd, Buffer.alloc(1000, 1), 0, 1000, 0);
    const owner: IoOwner = { path: "short-file", exportName: null, pending: 0, onIdle: null };
    const partial = await op((cb) => ring.read(fd, Buffer.alloc(4096), 4096, 0, cb, owner));
    expect(partial).toMatchObject({ code: "EIO", syscall: "pread" });
    expect(partial?.message).toContain("short read at 0: 1000 of 4096 bytes");
    const past = await op((cb) => ring.read(fd, Buffer.alloc(512), 512, 8192, cb));
    expect(past?.message).toContain("0 of 512 bytes");
  });

  it("continues a short write with the rest (a FIFO takes 64 KiB at a time)", async (ctx) => {
    const fifo = path.join(dir, "fifo");
    try {
      execFileSync("mkfifo", [fifo]);
    } catch {
      return ctx.skip("mkfifo failed");
    }
    const rfd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const wfd = fs.openSync(fifo, fs.constants.O_WRONLY);
    fds.push(rfd, wfd);
    const data = randomBytes(512 * KiB);
    const got: Buffer[] = [];
    let received = 0;
    const drain = setInterval(() => {
      const b = Buffer.alloc(256 * KiB);
      for (;;) {
        let n = 0;
        try {
          n = fs.readSync(rfd, b, 0, b.length, null);
        } catch {
          break; // EAGAIN: empty for now
        }
        if (n <= 0) break;
        got.push(Buffer.from(b.subarray(0, n)));
        received += n;
      }
    }, 1);
    try {
      const err = await op((cb) => ring.write(wfd, data, data.length, 0, cb));
      // A pipe ignores the offset: io_uring may refuse it (ESPIPE) on old kernels.
      if (err?.code === "ESPIPE") return ctx.skip("this kernel refuses offsets on pipes");
      expect(err).toBeNull();
      await waitFor("the reader to drain every byte written", () => received === data.length);
    } finally {
      clearInterval(drain);
    }
    // Whether the kernel hands back partial pipe writes (and the ring writes
    // the rest) depends on its version; either way every byte arrives, in order.
    expect(Buffer.concat(got).equals(data)).toBe(true);
  });

  it("validates lengths and positions synchronously", () => {
    const buf = Buffer.alloc(512);
    const noop = () => {};
    expect(() => ring.read(0, buf, 513, 0, noop)).toThrow(RangeError);
    expect(() => ring.read(0, buf, 1.5, 0, noop)).toThrow(RangeError);
    expect(() => ring.write(0, buf, 512, -1, noop)).toThrow(RangeError);
    expect(() => ring.write(0, buf, 512, 0.5, noop)).toThrow(RangeError);
    expect(ring.pending).toBe(0);
  });

  it("keeps buffers referenced while in flight and counts owner operations", async () => {
    const { fd } = openTmp("owner", "w+", 64 * KiB);
    let idle = 0;
    const owner: IoOwner = { path: "o", exportName: null, pending: 0, onIdle: () => idle++ };
    const all: Promise<unknown>[] = [];
    for (let i = 0; i < 40; i++)
      all.push(op((cb) => ring.write(fd, Buffer.alloc(1024, i), 1024, i * 1024, cb, owner)));
    expect(owner.pending).toBe(40);
    await Promise.all(all);
    expect(owner.pending).toBe(0);
    expect(idle).toBeGreaterThanOrEqual(1);
  });
});

describe.skipIf(!probe.ok)("IoRing lifecycle", () => {
  it("close waits for accepted operations, then refuses new ones with EBADF", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-uring-close-"));
    const fd = fs.openSync(path.join(dir, "f"), "w+");
    const ring = IoRing.open({ entries: 4 });
    const results: (NodeJS.ErrnoException | null)[] = [];
    for (let i = 0; i < 20; i++)
      ring.write(fd, Buffer.alloc(4096, i), 4096, i * 4096, (e) => results.push(e));
    const closed = ring.close();
    expect(ring.isClosed).toBe(true);
    const late = await op((cb) => ring.read(fd, Buffer.alloc(512), 512, 0, cb));
    expect(late).toMatchObject({ code: "EBADF" });
    await closed;
    expect(results).toHaveLength(20);
    expect(results.every((e) => e === null)).toBe(true);
    await ring.close(); // idempotent
    expect(fs.statSync(path.join(dir, "f")).size).toBe(20 * 4096);
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("does not keep the process alive when idle or closed", () => {
    // The compiled twin in dist/ (the global setup builds it).
    const dist = new URL("../../dist/src/io/uring.js", import.meta.url).pathname;
    const script = `
      import { IoRing } from ${JSON.stringify(dist)};
      import fs from "node:fs";
      const idle = IoRing.open({ entries: 4 });
      const ring = IoRing.open({ entries: 4 });
      const fd = fs.openSync(${JSON.stringify(os.tmpdir())}, "r");
      ring.fdatasync(fd, () => { console.log("flushed"); void ring.close(); });
    `;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
      timeout: 10_000,
      encoding: "utf8",
    });
    expect(out.trim()).toBe("flushed");
  });
});
