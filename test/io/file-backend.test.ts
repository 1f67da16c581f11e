/** The file backend's contract, run against every I/O engine, and how the engine is chosen. */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Backend, IoCallback, IoEngine } from "../../src/io/backend.js";
import { bufferAddress, cachedPages } from "../../src/io/blockdev.js";
import { chooseIoEngine, describeUringFailure } from "../../src/io/choose-engine.js";
import { type OpenOptions, openFileBackend } from "../../src/io/open.js";
import { isMemoryBacked } from "../../src/io/store.js";
import { probeUring } from "../../src/io/uring.js";
import { openOptions } from "../helpers/open-options.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const { O_DSYNC, O_DIRECT, O_RDONLY, O_NOATIME } = fs.constants;
const O_ACCMODE = 3;

const engines: { name: IoEngine; available: boolean }[] = [
  { name: "threads", available: true },
  { name: "io_uring", available: probeUring().ok },
  { name: "sync", available: true },
  { name: "mmap", available: true },
];

const op = (start: (cb: IoCallback) => void) =>
  new Promise<NodeJS.ErrnoException | null>((resolve) => start((err) => resolve(err)));

/** open(2) flags of every descriptor this process holds on `file` (from /proc/self/fdinfo). */
function fdFlags(file: string): number[] {
  const real = fs.realpathSync(file);
  const out: number[] = [];
  for (const fd of fs.readdirSync("/proc/self/fd")) {
    let target: string;
    try {
      target = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue;
    }
    if (target !== real) continue;
    const info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, "utf8");
    const m = /^flags:\s+([0-7]+)$/m.exec(info);
    if (m) out.push(Number.parseInt(m[1]!, 8));
  }
  return out;
}

function uringFds(): number {
  let n = 0;
  for (const fd of fs.readdirSync("/proc/self/fd")) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`) === "anon_inode:[io_uring]") n++;
    } catch {
      // gone meanwhile
    }
  }
  return n;
}

function tryExec(cmd: string, args: string[]): string | null {
  try {
    return execFileSync(cmd, args, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return null;
  }
}

/** A directory on a filesystem that accepts O_DIRECT (not tmpfs), or null. */
/**
 * `content` in a file under /var/tmp behind a loop device (`losetup` arguments
 * `args` first), or null where none can be attached. `detach` runs once: a
 * second detach could hit a loop device another test file has attached under
 * the same number meanwhile. `remove` detaches, then deletes the file.
 */
function loopOver(
  content: Buffer,
  args: string[] = [],
): { dev: string; file: string; detach: () => void; remove: () => void } | null {
  const ldir = fs.mkdtempSync(path.join("/var/tmp", "aoed-loop-"));
  const file = path.join(ldir, "img");
  fs.writeFileSync(file, content);
  const dev = tryExec("losetup", ["--find", "--show", ...args, file]);
  if (dev === null) {
    fs.rmSync(ldir, { recursive: true, force: true });
    return null;
  }
  let attached = true;
  const detach = () => {
    if (attached) tryExec("losetup", ["--detach", dev]);
    attached = false;
  };
  const remove = () => {
    detach();
    fs.rmSync(ldir, { recursive: true, force: true });
  };
  return { dev, file, detach, remove };
}

function directIoDir(): string | null {
  for (const base of ["/var/tmp", os.tmpdir(), process.cwd()]) {
    let dir: string | undefined;
    try {
      dir = fs.mkdtempSync(path.join(base, "aoed-direct-"));
      const fd = fs.openSync(path.join(dir, "probe"), fs.constants.O_CREAT | O_DIRECT | 2);
      fs.closeSync(fd);
      return dir;
    } catch {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  return null;
}

describe("I/O engine selection", () => {
  it("picks io_uring when the probe passes, and the thread pool on request", () => {
    expect(chooseIoEngine("threads")).toEqual({ engine: "threads" });
    const auto = chooseIoEngine("auto");
    if (probeUring().ok) expect(auto).toEqual({ engine: "io_uring" });
    else {
      expect(auto.engine).toBe("threads");
      expect(auto.note).toMatch(/io_uring/);
      expect(() => chooseIoEngine("io_uring")).toThrow(/io: io_uring is set, but/);
    }
  });

  it("maps memory-backed files unless told otherwise", async (ctx) => {
    const inMemory = { inMemory: true };
    expect(chooseIoEngine("auto", inMemory)).toMatchObject({ engine: "mmap", note: /tmpfs/ });
    expect(chooseIoEngine("threads", inMemory)).toEqual({ engine: "threads" });
    if (probeUring().ok)
      expect(chooseIoEngine("io_uring", inMemory)).toEqual({ engine: "io_uring" });
    if (!(await isMemoryBacked("/dev/shm"))) return ctx.skip("no tmpfs at /dev/shm");
    const dir = fs.mkdtempSync("/dev/shm/aoed-auto-");
    try {
      const file = path.join(dir, "img");
      fs.writeFileSync(file, Buffer.alloc(64 * KiB));
      const base = openOptions(file);
      const auto = await openFileBackend({ ...base, io: "auto" });
      expect(auto.caps.engine).toBe("mmap");
      expect(auto.caps.engineNote).toMatch(/tmpfs/);
      await auto.close();
      // O_DIRECT for writes only does nothing read-only: still mapped.
      const ro = await openFileBackend({ ...base, io: "auto", directIo: "writes", readOnly: true });
      expect(ro.caps).toMatchObject({ engine: "mmap", directIo: false });
      await ro.close();
      if (probeUring().ok) {
        const forced = await openFileBackend({ ...base, io: "io_uring" });
        expect(forced.caps.engine).toBe("io_uring");
        await forced.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("tells disk files from memory-backed ones", async () => {
    const ddir = directIoDir();
    if (ddir !== null) {
      expect(await isMemoryBacked(ddir)).toBe(false);
      fs.rmSync(ddir, { recursive: true, force: true });
    }
    expect(await isMemoryBacked("/nonexistent/aoed")).toBe(false);
  });

  it("explains why io_uring is unavailable", () => {
    const base = { read: false, write: false, fsync: false, errno: 1 };
    const eperm = describeUringFailure({
      ...base,
      ok: false,
      code: "EPERM",
      step: "io_uring_setup",
    });
    expect(eperm).toMatch(/io_uring_disabled|seccomp/);
    expect(
      describeUringFailure({ ...base, ok: false, code: "ENOSYS", step: "io_uring_setup" }),
    ).toMatch(/ENOSYS/);
    expect(
      describeUringFailure({
        ...base,
        read: true,
        ok: false,
        code: "EOPNOTSUPP",
        step: "IORING_REGISTER_PROBE",
      }),
    ).toBe("io_uring lacks IORING_OP_WRITE/FSYNC (needs Linux >= 5.6)");
  });

  it("adjusts an engine that cannot apply, and says why", () => {
    // direct-io is never a mapping.
    const auto = probeUring().ok ? "io_uring" : "threads";
    expect(chooseIoEngine("mmap", { directIo: true }).engine).toBe(auto);
    // Writes that must be synced: pwrite + fdatasync, not stores into a mapping.
    expect(chooseIoEngine("mmap", { writeCache: false })).toMatchObject({
      engine: "sync",
      note: /write-cache is off/,
    });
    expect(chooseIoEngine("mmap", { writeCache: false, readOnly: true })).toEqual({
      engine: "mmap",
    });
    expect(chooseIoEngine("mmap", { writeCache: false, inMemory: true })).toEqual({
      engine: "mmap",
    });
    // Never the event loop on a filesystem that can hang.
    for (const want of ["sync", "mmap"] as const)
      expect(chooseIoEngine(want, { mayHang: "fuse" })).toMatchObject({
        engine: "threads",
        note: /fuse, which can stop answering/,
      });
    expect(chooseIoEngine("threads", { mayHang: "nfs" })).toEqual({ engine: "threads" });
  });

  it("is auto when the caller does not choose", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-auto-"));
    const file = path.join(dir, "img");
    fs.writeFileSync(file, Buffer.alloc(64 * KiB));
    try {
      const b = await openFileBackend(openOptions(file));
      expect(b.caps.engine).toBe(
        chooseIoEngine("auto", { inMemory: await isMemoryBacked(file) }).engine,
      );
      await b.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.each(engines)("file backend on $name", ({ name, available }) => {
  let dir: string;
  const open = (file: string, over: Partial<OpenOptions> = {}) =>
    openFileBackend(openOptions(file, { io: name, ...over }));
  const image = (name: string, bytes: number, fill?: Buffer) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, fill ?? Buffer.alloc(bytes));
    return file;
  };

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-backend-"));
  });
  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(!available)("reports its engine", async () => {
    const b = await open(image("engine", 64 * KiB));
    expect(b.caps.engine).toBe(name);
    expect(b.caps.engineNote).toBeUndefined();
    await b.close();
  });

  it.skipIf(!available)("reads and writes through the window", async () => {
    const content = randomBytes(1 * MiB);
    const file = image("window", content.length, content);
    const b = await open(file, { offset: 64 * KiB, length: 256 * KiB + 100 });
    expect(b.size).toBe(256 * KiB); // rounded down to whole sectors
    const buf = b.allocBuffer(8 * KiB);
    expect(await op((cb) => b.read(buf, 4 * KiB, 512, cb))).toBeNull();
    expect(buf.subarray(0, 4 * KiB).equals(content.subarray(64 * KiB + 512, 68 * KiB + 512))).toBe(
      true,
    );
    const data = randomBytes(8 * KiB);
    data.copy(buf);
    expect(await op((cb) => b.write(buf, 8 * KiB, 1024, cb))).toBeNull();
    expect(await op((cb) => b.flush(cb))).toBeNull();
    await b.close();
    const after = fs.readFileSync(file);
    expect(after.subarray(65 * KiB, 73 * KiB).equals(data)).toBe(true);
    expect(after.subarray(0, 65 * KiB).equals(content.subarray(0, 65 * KiB))).toBe(true);
    expect(after.subarray(73 * KiB).equals(content.subarray(73 * KiB))).toBe(true);
  });

  it.skipIf(!available)(
    "fails writes to a read-only export with EBADF; its FLUSH holds its place",
    async () => {
      const file = image("ro", 64 * KiB);
      const b = await open(file, { readOnly: true });
      expect(b.readOnly).toBe(true);
      const err = await op((cb) => b.write(b.allocBuffer(512), 512, 0, cb));
      expect(err?.code).toBe("EBADF");
      expect(await op((cb) => b.read(b.allocBuffer(512), 512, 0, cb))).toBeNull();
      expect(fdFlags(file).every((f) => (f & O_ACCMODE) === O_RDONLY)).toBe(true);
      // Its FLUSH is a plain sync on the pool, not one that only waits for group commit.
      let waited = false;
      expect(await op((cb) => b.flush(cb, () => (waited = true)))).toBeNull();
      expect(waited).toBe(false);
      await b.close();
    },
  );

  it.skipIf(!available)(
    "never opens O_DSYNC: with the write cache off, writes are group-committed",
    async () => {
      const file = image("dsync", 64 * KiB);
      const safe = await open(file, { writeCache: false });
      // One fdatasync covers a group of writes (src/io/group-commit.ts), not O_DSYNC per
      // write; on ext4 through io_uring a second, O_DIRECT descriptor is for writes to uncached pages.
      const descriptors = safe.caps.uncachedWritesDirect ? [0, 0] : [0];
      expect(fdFlags(file).map((f) => f & O_DSYNC)).toEqual(descriptors);
      // A file in memory (tmpfs) has nothing to sync to.
      expect(safe.caps.groupCommit !== undefined).toBe(!(await isMemoryBacked(file)));
      // Our own file: opened O_NOATIME (reads skip the access-time update).
      if (fs.statSync(file).uid === process.getuid?.())
        expect(fdFlags(file).map((f) => f & O_NOATIME)).toEqual(descriptors.map(() => O_NOATIME));
      const data = randomBytes(4 * KiB);
      const buf = safe.allocBuffer(4 * KiB);
      data.copy(buf);
      expect(await op((cb) => safe.write(buf, 4 * KiB, 0, cb))).toBeNull();
      await safe.close();
      expect(
        fs
          .readFileSync(file)
          .subarray(0, 4 * KiB)
          .equals(data),
      ).toBe(true);
      const cached = await open(file, { writeCache: true });
      expect(fdFlags(file).map((f) => f & O_DSYNC)).toEqual([0]);
      expect(cached.caps.groupCommit).toBeUndefined();
      await cached.close();
      expect(fdFlags(file)).toEqual([]);
    },
  );

  it.skipIf(!available)(
    "with the write cache off, says a write is written (a flush waiting) before the sync that makes it durable",
    async (ctx) => {
      const file = image("written", 64 * KiB);
      const b = await open(file, { writeCache: false });
      if (b.caps.groupCommit === undefined) {
        await b.close();
        return ctx.skip("a file in memory has nothing to sync to");
      }
      // Eight at once: all but a write made durable by itself (RWF_DSYNC, when
      // it finds the backend idle) wait for a sync, and say so first.
      const events: string[][] = [];
      await Promise.all(
        Array.from({ length: 8 }, (_, i) => {
          const seen: string[] = [];
          events.push(seen);
          const buf = b.allocBuffer(4 * KiB).fill(i);
          return op((cb) =>
            b.write(
              buf,
              4 * KiB,
              i * 4 * KiB,
              (err) => {
                seen.push(err === null ? "durable" : `error ${err.code}`);
                cb(err);
              },
              () => seen.push("written"),
            ),
          );
        }),
      );
      const dsync = b.syncStats?.dsyncWrites ?? 0;
      expect(events.filter((e) => e.join() === "written,durable")).toHaveLength(8 - dsync);
      expect(events.filter((e) => e.join() === "durable")).toHaveLength(dsync);
      // A FLUSH only waits for a sync too, and says so first.
      const flushed: string[] = [];
      await op((cb) =>
        b.flush(
          (err) => {
            flushed.push(err === null ? "durable" : `error ${err.code}`);
            cb(err);
          },
          () => flushed.push("waiting"),
        ),
      );
      expect(flushed).toEqual(["waiting", "durable"]);
      await b.close();
      const after = fs.readFileSync(file);
      for (let i = 0; i < 8; i++) expect(after[i * 4 * KiB]).toBe(i);
    },
  );

  // A mapping reads the rest of the last page past the new end as zeros; only whole
  // pages past it fault (EIO, tested in test/reliability/faults.test.ts).
  it.skipIf(!available || name === "mmap")(
    "reports a short read as EIO when the file shrank",
    async () => {
      const file = image("shrink", 64 * KiB);
      const b = await open(file);
      fs.truncateSync(file, 16 * KiB + 100);
      const buf = b.allocBuffer(4 * KiB);
      expect(await op((cb) => b.read(buf, 4 * KiB, 8 * KiB, cb))).toBeNull();
      const err = await op((cb) => b.read(buf, 4 * KiB, 16 * KiB, cb));
      expect(err?.code).toBe("EIO");
      expect(err?.message).toContain(file);
      expect(err?.message).toContain("short read at 16384: 100 of 4096 bytes");
      await b.close();
    },
  );

  it.skipIf(!available)("keeps data intact under 2000 concurrent random operations", async () => {
    const SECTORS = 2048;
    const file = image("stress", SECTORS * 512);
    const b = await open(file);
    const model = Buffer.alloc(SECTORS * 512);
    // Distinct sectors per round so concurrent writes never overlap.
    const order = [...Array(SECTORS).keys()].sort(() => Math.random() - 0.5).slice(0, 1000);
    const bufs = order.map(() => b.allocBuffer(512));
    let errors = 0;
    await new Promise<void>((resolve) => {
      let left = order.length;
      order.forEach((s, i) => {
        randomBytes(512).copy(bufs[i]!);
        bufs[i]!.copy(model, s * 512);
        b.write(bufs[i]!, 512, s * 512, (err) => {
          if (err) errors++;
          if (--left === 0) resolve();
        });
      });
    });
    const reads = Array.from({ length: 1000 }, () => {
      const n = 1 + Math.floor(Math.random() * 8);
      return { n, s: Math.floor(Math.random() * (SECTORS - n)), buf: b.allocBuffer(n * 512) };
    });
    await new Promise<void>((resolve) => {
      let left = reads.length;
      for (const r of reads)
        b.read(r.buf, r.n * 512, r.s * 512, (err) => {
          if (err) errors++;
          if (--left === 0) resolve();
        });
    });
    expect(errors).toBe(0);
    for (const r of reads)
      expect(
        r.buf.subarray(0, r.n * 512).equals(model.subarray(r.s * 512, (r.s + r.n) * 512)),
      ).toBe(true);
    await b.close();
  });

  it.skipIf(!available)("close waits for operations in progress", async () => {
    const file = image("close", 256 * KiB);
    const b = await open(file);
    const results: (NodeJS.ErrnoException | null)[] = [];
    for (let i = 0; i < 64; i++) {
      const buf = b.allocBuffer(4 * KiB).fill(i);
      b.write(buf, 4 * KiB, i * 4 * KiB, (err) => results.push(err));
    }
    await b.close();
    expect(results).toHaveLength(64);
    expect(results.every((e) => e === null)).toBe(true);
    const after = fs.readFileSync(file);
    for (let i = 0; i < 64; i++) expect(after[i * 4 * KiB]).toBe(i);
  });

  it.skipIf(!available)("uses O_DIRECT for aligned requests on a disk filesystem", async (ctx) => {
    const ddir = directIoDir();
    if (ddir === null) return ctx.skip("no filesystem here accepts O_DIRECT");
    try {
      const content = randomBytes(1 * MiB);
      const file = path.join(ddir, "img");
      fs.writeFileSync(file, content);
      const b = await open(file, { directIo: true, writeCache: false });
      expect(b.caps.directIo).toBe(true);
      expect([512, 4096]).toContain(b.caps.alignment);
      const flags = fdFlags(file);
      expect(flags.filter((f) => f & O_DIRECT)).toHaveLength(1);
      expect(flags.some((f) => f & O_DSYNC)).toBe(false);
      expect(b.caps.groupCommit).toBeDefined();
      const a = b.caps.alignment;
      const buf = b.allocBuffer(8 * KiB);
      expect(bufferAddress(buf) % BigInt(a)).toBe(0n);
      expect(buf.length % a).toBe(0);
      // Aligned: through the O_DIRECT descriptor.
      expect(await op((cb) => b.read(buf, 8 * KiB, 16 * KiB, cb))).toBeNull();
      expect(buf.equals(content.subarray(16 * KiB, 24 * KiB))).toBe(true);
      const data = randomBytes(8 * KiB);
      data.copy(buf);
      expect(await op((cb) => b.write(buf, 8 * KiB, 32 * KiB, cb))).toBeNull();
      // Unaligned for 4 KiB sectors (or 512-byte ones at an odd offset): the buffered descriptor.
      const small = b.allocBuffer(512);
      expect(await op((cb) => b.read(small, 512, 32 * KiB + 512, cb))).toBeNull();
      expect(small.subarray(0, 512).equals(data.subarray(512, 1024))).toBe(true);
      expect(await op((cb) => b.flush(cb))).toBeNull();
      await b.close();
      expect(
        fs
          .readFileSync(file)
          .subarray(32 * KiB, 40 * KiB)
          .equals(data),
      ).toBe(true);
    } finally {
      fs.rmSync(ddir, { recursive: true, force: true });
    }
  });

  it.skipIf(!available)(
    "with direct-io: writes, reads go through the page cache and aligned writes around it",
    async (ctx) => {
      const ddir = directIoDir();
      if (ddir === null) return ctx.skip("no filesystem here accepts O_DIRECT");
      /** Bytes of the file in the page cache (fincore, util-linux), null without fincore. */
      const cached = (file: string): number | null => {
        const out = tryExec("fincore", ["--bytes", "--noheadings", "--raw", "-o", "RES", file]);
        return out === null ? null : Number(out);
      };
      try {
        const file = path.join(ddir, "img");
        // Written with O_DIRECT: none of it is in the page cache.
        execFileSync("dd", [
          "if=/dev/urandom",
          `of=${file}`,
          "bs=64k",
          "count=16",
          "oflag=direct",
          "status=none",
        ]);
        const before = cached(file);
        if (before === null) return ctx.skip("fincore (util-linux) is not installed");
        // tmpfs (Linux 6.6) and some filesystems take O_DIRECT and still cache.
        if (before !== 0) return ctx.skip(`${ddir} caches O_DIRECT writes`);
        const b = await open(file, { directIo: "writes", writeCache: false });
        expect(b.caps.directIo).toBe("writes");
        const buf = b.allocBuffer(64 * KiB);
        const data = randomBytes(64 * KiB);
        data.copy(buf);
        expect(await op((cb) => b.write(buf, 64 * KiB, 512 * KiB, cb))).toBeNull();
        expect(cached(file)).toBe(0);
        buf.fill(0);
        expect(await op((cb) => b.read(buf, 64 * KiB, 512 * KiB, cb))).toBeNull();
        expect(buf.subarray(0, 64 * KiB).equals(data)).toBe(true);
        const afterRead = cached(file)!;
        expect(afterRead).toBeGreaterThanOrEqual(64 * KiB);
        // A write over cached pages: the next read sees it, not the cached copy.
        const next = randomBytes(64 * KiB);
        next.copy(buf);
        expect(await op((cb) => b.write(buf, 64 * KiB, 512 * KiB, cb))).toBeNull();
        buf.fill(0);
        expect(await op((cb) => b.read(buf, 64 * KiB, 512 * KiB, cb))).toBeNull();
        expect(buf.subarray(0, 64 * KiB).equals(next)).toBe(true);
        await b.close();
        // direct-io: true reads around the page cache as well: 64 KiB not cached
        // before are read without adding them to it.
        const d = await open(file, { directIo: true, writeCache: false });
        const inCache = cached(file)!;
        expect(await op((cb) => d.read(buf, 64 * KiB, 0, cb))).toBeNull();
        expect(cached(file)).toBeLessThan(inCache + 64 * KiB);
        await d.close();
        // Read-only, `writes` has nothing to do: no O_DIRECT descriptor at all.
        const r = await open(file, { directIo: "writes", readOnly: true });
        expect(r.caps.directIo).toBe(false);
        expect(fdFlags(file).some((f) => f & O_DIRECT)).toBe(false);
        await r.close();
      } finally {
        fs.rmSync(ddir, { recursive: true, force: true });
      }
    },
  );

  it.skipIf(!available || process.getuid?.() !== 0)(
    "serves a loop block device with O_DIRECT",
    async (ctx) => {
      const content = randomBytes(4 * MiB);
      const loop = loopOver(content);
      if (loop === null) return ctx.skip("losetup failed (no loop devices here)");
      const { dev, file, detach } = loop;
      try {
        const b = await open(dev, { directIo: true, writeCache: false });
        // direct-io is never a mapping: the mmap engine defers to the automatic choice.
        const auto = probeUring().ok ? "io_uring" : "threads";
        expect(b.caps).toMatchObject({
          blockDevice: true,
          directIo: true,
          engine: name === "mmap" ? auto : name,
        });
        expect(b.size).toBe(4 * MiB);
        const buf = b.allocBuffer(64 * KiB);
        expect(await op((cb) => b.read(buf, 64 * KiB, 1 * MiB, cb))).toBeNull();
        expect(buf.equals(content.subarray(1 * MiB, 1 * MiB + 64 * KiB))).toBe(true);
        const data = randomBytes(64 * KiB);
        data.copy(buf);
        expect(await op((cb) => b.write(buf, 64 * KiB, 2 * MiB, cb))).toBeNull();
        expect(await op((cb) => b.flush(cb))).toBeNull();
        buf.fill(0);
        expect(await op((cb) => b.read(buf, 64 * KiB, 2 * MiB, cb))).toBeNull();
        expect(buf.equals(data)).toBe(true);
        await b.close();
        detach();
        expect(
          fs
            .readFileSync(file)
            .subarray(2 * MiB, 2 * MiB + 64 * KiB)
            .equals(data),
        ).toBe(true);
      } finally {
        loop.remove();
      }
    },
  );

  it.skipIf(!available || process.getuid?.() !== 0)(
    "with 4 KiB O_DIRECT alignment (4Kn), direct-io sends no write around the page cache",
    async (ctx) => {
      const loop = loopOver(randomBytes(4 * MiB), ["--sector-size", "4096"]);
      if (loop === null) return ctx.skip("losetup failed (no loop devices here)");
      const { dev, file, detach } = loop;
      try {
        for (const directIo of ["writes", true] as const) {
          const b = await open(dev, { directIo, writeCache: true });
          expect(b.caps.alignment).toBe(4096);
          expect(b.caps.writesBuffered).toMatch(/^O_DIRECT needs 4096-byte alignment here/);
          const probe = fs.openSync(dev, "r");
          try {
            const at = directIo === true ? 2 * MiB : 1 * MiB;
            expect(cachedPages(probe, at, 64 * KiB)).toBe(0);
            // Aligned for O_DIRECT, and still into the page cache: a 1 KiB write
            // beside it could not go direct.
            const buf = b.allocBuffer(64 * KiB).fill(7);
            expect(await op((cb) => b.write(buf, 64 * KiB, at, cb))).toBeNull();
            expect(cachedPages(probe, at, 64 * KiB)).toBe(16);
            const small = b.allocBuffer(1 * KiB).fill(9);
            expect(await op((cb) => b.write(small, 1 * KiB, at + 4 * KiB, cb))).toBeNull();
            expect(await op((cb) => b.flush(cb))).toBeNull();
          } finally {
            fs.closeSync(probe);
          }
          await b.close();
        }
        detach();
        const after = fs.readFileSync(file);
        for (const at of [1 * MiB, 2 * MiB]) {
          expect(after.subarray(at, at + 4 * KiB).every((x) => x === 7)).toBe(true);
          expect(after.subarray(at + 4 * KiB, at + 5 * KiB).every((x) => x === 9)).toBe(true);
        }
      } finally {
        loop.remove();
      }
    },
  );

  it.skipIf(!available || process.getuid?.() !== 0)(
    "a direct-io export of a block device writes through the page cache while another export of it does",
    async (ctx) => {
      const loop = loopOver(randomBytes(4 * MiB));
      if (loop === null) return ctx.skip("losetup failed (no loop devices here)");
      const { dev } = loop;
      const probe = fs.openSync(dev, "r");
      try {
        // As at a reload that turns direct-io on: the old backend still open beside the new.
        const old = await open(dev, { directIo: false, writeCache: true });
        const d = await open(dev, { directIo: "writes", writeCache: true, sharedClaim: true });
        const buf = d.allocBuffer(64 * KiB).fill(3);
        expect(cachedPages(probe, 1 * MiB, 64 * KiB)).toBe(0);
        expect(await op((cb) => d.write(buf, 64 * KiB, 1 * MiB, cb))).toBeNull();
        expect(cachedPages(probe, 1 * MiB, 64 * KiB)).toBe(16);
        await old.close();
        // Alone now: O_DIRECT, around the page cache.
        expect(await op((cb) => d.write(buf, 64 * KiB, 2 * MiB, cb))).toBeNull();
        expect(cachedPages(probe, 2 * MiB, 64 * KiB)).toBe(0);
        await d.close();
      } finally {
        fs.closeSync(probe);
        loop.remove();
      }
    },
  );
});

describe.skipIf(!probeUring().ok)("io_uring file backends", () => {
  it("share one ring, closed with the last backend", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-shared-"));
    const opts = (name: string): OpenOptions => {
      const file = path.join(dir, name);
      fs.writeFileSync(file, Buffer.alloc(64 * KiB));
      return openOptions(file, { exportName: name, io: "io_uring" });
    };
    const before = uringFds();
    const backends: Backend[] = [
      await openFileBackend(opts("a")),
      await openFileBackend(opts("b")),
    ];
    expect(uringFds()).toBe(before + 1);
    await backends[0]!.close();
    expect(uringFds()).toBe(before + 1);
    await backends[1]!.close();
    expect(uringFds()).toBe(before);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
