/**
 * Every engine's I/O errors name the call, the file and the export, from real
 * failures: a write on a read-only descriptor (EBADF), a full tmpfs (ENOSPC,
 * root only) and a FUSE file that fails reads, writes and syncs (EIO, root
 * and /dev/fuse only).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Backend, IoCallback, IoEngine } from "../../src/io/backend.js";
import { openFileBackend } from "../../src/io/open.js";
import { probeUring } from "../../src/io/uring.js";
import { FuseFaults, fuseUnavailable } from "../helpers/fuse-faults.js";
import { mountTmpfs } from "../helpers/scratch-mounts.js";

const KiB = 1024;
const isRoot = process.getuid?.() === 0;
const noFuse = isRoot ? fuseUnavailable() : "needs root";

const ENGINES: IoEngine[] = probeUring().ok
  ? ["threads", "sync", "io_uring", "mmap"]
  : ["threads", "sync", "mmap"];

const op = (start: (cb: IoCallback) => void) =>
  new Promise<NodeJS.ErrnoException | null>((resolve) => start((err) => resolve(err)));

function open(file: string, io: IoEngine, over: { readOnly?: boolean; exportName?: string } = {}) {
  return openFileBackend({
    path: file,
    exportName: over.exportName ?? "e0.1",
    readOnly: over.readOnly ?? false,
    directIo: false,
    writeCache: true,
    offset: 0,
    length: null,
    io,
  });
}

/** What an engine calls a read and a write in its errors: the system call, or the copy of a mapping. */
const calls = (engine: IoEngine) =>
  engine === "mmap" ? ["mapped read", "mapped write"] : ["pread", "pwrite"];

describe.each(ENGINES)("%s engine errors", (engine) => {
  let dir: string;
  const [readCall, writeCall] = calls(engine);

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-engine-errors-"));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("a write on a read-only export: EBADF, naming the call, the file and the export", async () => {
    const file = path.join(dir, "ro.img");
    fs.writeFileSync(file, Buffer.alloc(64 * KiB));
    const b = await open(file, engine, { readOnly: true, exportName: "ro0" });
    expect(b.caps.engine).toBe(engine);
    const err = await op((cb) => b.write(b.allocBuffer(512), 512, 0, cb));
    expect(err).toMatchObject({ code: "EBADF", syscall: writeCall, path: file });
    expect(err?.message).toBe(`${writeCall} ${file} (export ro0): EBADF (bad file descriptor)`);
    await b.close();
  });

  it.skipIf(engine === "mmap")("a short read names the call, the file and the export", async () => {
    const file = path.join(dir, "short.img");
    fs.writeFileSync(file, Buffer.alloc(64 * KiB));
    const b = await open(file, engine, { exportName: "short0" });
    fs.truncateSync(file, 4 * KiB);
    const err = await op((cb) => b.read(b.allocBuffer(4 * KiB), 4 * KiB, 8 * KiB, cb));
    expect(err).toMatchObject({ code: "EIO", syscall: readCall, path: file });
    expect(err?.message).toBe(
      `${readCall} ${file} (export short0): EIO (short read at 8192: 0 of 4096 bytes; the backing store shrank?)`,
    );
    await b.close();
  });

  it.skipIf(!isRoot)("a write on a full tmpfs: ENOSPC (a fault in the mapping: EIO)", async () => {
    const mnt = mountTmpfs(path.join(dir, `full-${engine}`), 64 * KiB);
    // Sparse: the blocks are taken when written, and only 64 KiB exist.
    const file = path.join(mnt.dir, "img");
    fs.writeFileSync(file, "");
    fs.truncateSync(file, 1024 * KiB);
    const b = await open(file, engine, { exportName: "full0" });
    const buf = b.allocBuffer(256 * KiB).fill(7);
    const err = await op((cb) => b.write(buf, 256 * KiB, 512 * KiB, cb));
    if (engine === "mmap") {
      expect(err).toMatchObject({ code: "EIO", syscall: writeCall, path: file });
      expect(err?.message).toMatch(
        new RegExp(
          `^mapped write ${file} \\(export full0\\): EIO \\(i/o error; faulted at \\d+: the file is shorter than the export \\(truncated\\?\\)\\)$`,
        ),
      );
    } else {
      expect(err).toMatchObject({ code: "ENOSPC", syscall: writeCall, path: file });
      expect(err?.message).toBe(
        `${writeCall} ${file} (export full0): ENOSPC (no space left on device)`,
      );
    }
    await b.close();
    mnt.release();
  });
});

describe.skipIf(noFuse !== null)("EIO from a FUSE file", () => {
  let fuse: FuseFaults;
  let file: string;
  let b: Backend;

  beforeAll(async () => {
    fuse = await FuseFaults.mount();
    file = fuse.addFile("eio.img", 256 * KiB);
  });
  afterAll(async () => {
    await b?.close();
    await fuse?.unmount();
  });

  it("sync on a filesystem that can hang is served by the thread pool, and says so", async () => {
    const s = await open(file, "sync");
    expect(s.caps).toMatchObject({ engine: "threads", mayHang: "fuse" });
    expect(s.caps.engineNote).toMatch(/fuse, which can stop answering/);
    await s.close();
  });

  it("threads: pread, pwrite and fdatasync name the file and the export", async () => {
    b = await open(file, "threads", { exportName: "fuse0" });
    expect(b.caps.engine).toBe("threads");
    fuse.fail("eio.img", { read: true, write: true, sync: true, from: 0, to: 256 * KiB });
    const buf = b.allocBuffer(4 * KiB);
    const read = await op((cb) => b.read(buf, 4 * KiB, 0, cb));
    expect(read).toMatchObject({ code: "EIO", syscall: "pread", path: file });
    expect(read?.message).toBe(`pread ${file} (export fuse0): EIO (i/o error)`);
    const write = await op((cb) => b.write(buf, 4 * KiB, 0, cb));
    expect(write?.message).toBe(`pwrite ${file} (export fuse0): EIO (i/o error)`);
    const sync = await op((cb) => b.flush(cb));
    expect(sync).toMatchObject({ code: "EIO", syscall: "fdatasync", path: file });
    expect(sync?.message).toBe(`fdatasync ${file} (export fuse0): EIO (i/o error)`);
  });

  it.skipIf(!probeUring().ok)("io_uring: the same words", async () => {
    fuse.heal("eio.img");
    const u = await open(file, "io_uring", { exportName: "fuse1" });
    try {
      fuse.fail("eio.img", { read: true, from: 0, to: 256 * KiB });
      const read = await op((cb) => u.read(u.allocBuffer(4 * KiB), 4 * KiB, 0, cb));
      expect(read?.message).toBe(`pread ${file} (export fuse1): EIO (i/o error)`);
    } finally {
      await u.close();
    }
  });
});
