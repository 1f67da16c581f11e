/**
 * The mmap engine's first touches: the mapping populated off the event loop
 * without allocating a tmpfs file's holes, and reads that see the file's bytes
 * while and after it is populated.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Backend, IoCallback } from "../../src/io/backend.js";
import { openFileBackend } from "../../src/io/open.js";
import { isMemoryBacked } from "../../src/io/store.js";
import { loadNative } from "../../src/native/addon.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const PAGE = 4096;
const native = loadNative();
const shm = fs.existsSync("/dev/shm") ? "/dev/shm" : null;

const op = (start: (cb: IoCallback) => void) =>
  new Promise<NodeJS.ErrnoException | null>((resolve) => start((err) => resolve(err)));

/** Maps `file` and waits until its background populate has finished. */
async function mapPopulated(fd: number, size: number): Promise<ArrayBuffer> {
  const map = native.mapFile(fd, size, true);
  await vi.waitFor(() => expect(native.mapPopulated(map)).toBe(true), {
    timeout: 30_000,
    interval: 5,
  });
  return map;
}

/**
 * This thread's minor page faults so far (/proc/thread-self/stat, field 10):
 * the process's count (getrusage) also has every other thread's, the garbage
 * collector's and the thread pool's, which made the count below vary with load.
 */
function threadMinorFaults(): number {
  const stat = fs.readFileSync("/proc/thread-self/stat", "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[7]);
}

/** Minor page faults this thread took while reading one byte of every page of `map`. */
function faultsTouching(map: ArrayBuffer): number {
  const bytes = new Uint8Array(map);
  const before = threadMinorFaults();
  let sum = 0;
  for (let i = 0; i < bytes.length; i += PAGE) sum += bytes[i] ?? 0;
  expect(sum).toBeGreaterThanOrEqual(0);
  return threadMinorFaults() - before;
}

describe.skipIf(shm === null)("mmap engine on tmpfs", () => {
  let dir: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(shm ?? "", "aoed-mmap-"));
    expect(await isMemoryBacked(dir)).toBe(true);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("maps every page of a fallocated file before the first touch", async () => {
    const file = path.join(dir, "full.img");
    // fallocated, never written: pages mincore() does not report, but memory all the same
    execFileSync("fallocate", ["-l", String(64 * MiB), file]);
    const fd = fs.openSync(file, "r+");
    try {
      // A fresh mapping not populated takes faults as it is touched: one per 16
      // pages with fault-around, one per large folio where tmpfs uses them.
      const plain = native.mapFile(fd, 64 * MiB, false);
      const unpopulated = faultsTouching(plain);
      native.unmapFile(plain);
      const map = await mapPopulated(fd, 64 * MiB);
      const populated = faultsTouching(map);
      expect(populated).toBeLessThan(16);
      expect(populated).toBeLessThan(unpopulated);
      native.unmapFile(map);
    } finally {
      fs.closeSync(fd);
    }
  });

  it("leaves a sparse file's holes unallocated", async () => {
    const file = path.join(dir, "sparse.img");
    fs.writeFileSync(file, "");
    fs.truncateSync(file, 64 * MiB);
    const fd = fs.openSync(file, "r+");
    try {
      fs.writeSync(fd, randomBytes(1 * MiB), 0, 1 * MiB, 8 * MiB);
      const blocks = fs.fstatSync(fd).blocks;
      const map = await mapPopulated(fd, 64 * MiB);
      expect(fs.fstatSync(fd).blocks).toBe(blocks);
      native.unmapFile(map);
    } finally {
      fs.closeSync(fd);
    }
  });

  it("unmaps while the populate is still running", () => {
    const file = path.join(dir, "big.img");
    fs.writeFileSync(file, Buffer.alloc(64 * MiB, 1));
    const fd = fs.openSync(file, "r+");
    try {
      for (let i = 0; i < 10; i++) {
        const map = native.mapFile(fd, 64 * MiB, true);
        native.unmapFile(map);
        expect(map.byteLength).toBe(0);
        expect(native.mapPopulated(map)).toBe(true);
      }
    } finally {
      fs.closeSync(fd);
    }
  });

  describe("reads through a fresh mapping", () => {
    const size = 1 * MiB;
    let file: string;
    let data: Buffer;
    let b: Backend;

    beforeAll(async () => {
      file = path.join(dir, "rw.img");
      data = randomBytes(size);
      fs.writeFileSync(file, data);
      b = await openFileBackend({
        path: file,
        exportName: "mm0",
        readOnly: false,
        directIo: false,
        writeCache: true,
        offset: 0,
        length: null,
        io: "mmap",
      });
      expect(b.caps.engine).toBe("mmap");
    });
    afterAll(() => b.close());

    it("returns the file's bytes on every use of a page, and a write's bytes after it", async () => {
      const buf = b.allocBuffer(3 * KiB);
      // 40 uses of the same pages, from the first touch on
      for (let use = 0; use < 40; use++) {
        const pos = 5 * KiB + use * 16;
        expect(await op((cb) => b.read(buf, 3 * KiB, pos, cb))).toBeNull();
        expect(buf.equals(data.subarray(pos, pos + 3 * KiB))).toBe(true);
      }
      // a write through the mapping, read back (now warm) and as the file
      const w = randomBytes(2 * KiB);
      expect(await op((cb) => b.write(w, 2 * KiB, 100 * KiB, cb))).toBeNull();
      expect(await op((cb) => b.read(buf, 2 * KiB, 100 * KiB, cb))).toBeNull();
      expect(buf.subarray(0, 2 * KiB).equals(w)).toBe(true);
      const onDisk = Buffer.alloc(2 * KiB);
      const fd = fs.openSync(file, "r");
      fs.readSync(fd, onDisk, 0, 2 * KiB, 100 * KiB);
      fs.closeSync(fd);
      expect(onDisk.equals(w)).toBe(true);
    });

    it("sees a write made to the file outside the mapping, on a page touched or not", async () => {
      const buf = b.allocBuffer(PAGE);
      for (const pos of [200 * KiB, 5 * KiB]) {
        const w = randomBytes(PAGE);
        const fd = fs.openSync(file, "r+");
        fs.writeSync(fd, w, 0, PAGE, pos);
        fs.closeSync(fd);
        expect(await op((cb) => b.read(buf, PAGE, pos, cb))).toBeNull();
        expect(buf.equals(w)).toBe(true);
      }
    });
  });
});
