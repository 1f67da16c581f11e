/**
 * A FUSE filesystem served from this process that fails I/O on demand: the
 * way to give a daemon real EIO (or any errno) from read(2)/write(2) on a
 * machine without device-mapper (dm-error, dm-flakey) or scsi_debug.
 *
 * It speaks the kernel's FUSE protocol on /dev/fuse directly (no libfuse),
 * and holds a few flat files in memory. Files are opened with
 * FOPEN_DIRECT_IO, so every read and write reaches us (no page cache hides a
 * fault). `fail(name, {...})` makes reads and/or writes overlapping a byte
 * range fail with an errno until `heal(name)`; `stall(name)` makes them wait,
 * `stallSyncs(name)` its fsync/fdatasync.
 *
 * Needs root, /dev/fuse and mount(8). Never touch the mount synchronously
 * from this process (fs.*Sync on a file in it): the answer would have to come
 * from this very event loop.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const FUSE_KERNEL_VERSION = 7;
const FUSE_KERNEL_MINOR = 31;

enum Op {
  lookup = 1,
  forget = 2,
  getattr = 3,
  setattr = 4,
  open = 14,
  read = 15,
  write = 16,
  statfs = 17,
  release = 18,
  fsync = 20,
  flush = 25,
  init = 26,
  opendir = 27,
  readdir = 28,
  releasedir = 29,
  fsyncdir = 30,
  interrupt = 36,
  destroy = 38,
  batchForget = 42,
}

const ENOENT = 2;
const EIO = 5;
const ENOSYS = 38;
const FOPEN_DIRECT_IO = 1;
const IN_HEADER = 40;
const OUT_HEADER = 16;
const ROOT = 1;
const MAX_WRITE = 128 * 1024;

export interface Fault {
  /** Fail reads overlapping [from, to) (bytes). */
  read?: boolean;
  /** Fail writes overlapping [from, to). */
  write?: boolean;
  /** Fail fsync/fdatasync of the file (the range does not apply). */
  sync?: boolean;
  from?: number;
  to?: number;
  /** The errno to answer with (default EIO). */
  errno?: number;
}

interface FileEntry {
  ino: number;
  name: string;
  data: Buffer;
  fault: Required<Fault> | null;
  /** Requests held back while stalled. */
  stalled: (() => void)[] | null;
  /** fsync/fdatasync requests held back while syncs are stalled. */
  syncsStalled: (() => void)[] | null;
  /** Requests failed by the fault so far. */
  failures: number;
  syncs: number;
  syncFailures: number;
}

/** Why a FUSE filesystem cannot be mounted here, or null. */
export function fuseUnavailable(): string | null {
  if (!fs.existsSync("/dev/fuse")) return "no /dev/fuse";
  try {
    if (!/\tfuse$/m.test(fs.readFileSync("/proc/filesystems", "utf8")))
      return "no fuse in /proc/filesystems";
  } catch {
    return "cannot read /proc/filesystems";
  }
  return null;
}

export class FuseFaults {
  private readonly files = new Map<string, FileEntry>();
  private readonly byIno = new Map<number, FileEntry>();
  private readonly buf = Buffer.alloc(MAX_WRITE + 64 * 1024);
  private closed = false;
  private stopped: Promise<void>;
  private stop!: () => void;

  private constructor(
    readonly mountpoint: string,
    private readonly fd: number,
    private readonly directIo: boolean,
  ) {
    this.stopped = new Promise((resolve) => (this.stop = resolve));
  }

  /**
   * Mounts an empty filesystem on a new directory under the temp dir. With
   * `directIo: false` files go through the page cache (cached data then hides
   * read faults).
   */
  static async mount(opts: { directIo?: boolean } = {}): Promise<FuseFaults> {
    const mountpoint = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-fuse-"));
    const fd = fs.openSync("/dev/fuse", "r+");
    const f = new FuseFaults(mountpoint, fd, opts.directIo ?? true);
    f.loop();
    // mount(8) without a helper (-i) passes fd=3 to the kernel: our /dev/fuse, inherited as fd 3.
    const code = await new Promise<number | null>((resolve) => {
      const p = spawn(
        "mount",
        [
          "-i",
          "-t",
          "fuse",
          "-o",
          "fd=3,rootmode=40000,user_id=0,group_id=0,allow_other",
          "aoed-faults",
          mountpoint,
        ],
        { stdio: ["ignore", "ignore", "inherit", fd] },
      );
      p.on("exit", resolve);
    });
    if (code !== 0) {
      fs.closeSync(fd);
      fs.rmdirSync(mountpoint);
      throw new Error(`mount -t fuse failed (${code})`);
    }
    return f;
  }

  /** Adds a zero-filled file of `size` bytes; returns its path. */
  addFile(name: string, size: number): string {
    const ino = this.files.size + 2;
    const e: FileEntry = {
      ino,
      name,
      data: Buffer.alloc(size),
      fault: null,
      stalled: null,
      syncsStalled: null,
      failures: 0,
      syncs: 0,
      syncFailures: 0,
    };
    this.files.set(name, e);
    this.byIno.set(ino, e);
    return path.join(this.mountpoint, name);
  }

  /** The file's contents as this filesystem holds them. */
  data(name: string): Buffer {
    return this.entry(name).data;
  }

  /** Requests failed by faults on `name` so far. */
  failures(name: string): number {
    return this.entry(name).failures;
  }

  /** fsync/fdatasync requests for `name` so far, and how many of them failed. */
  syncs(name: string): { total: number; failed: number } {
    const e = this.entry(name);
    return { total: e.syncs, failed: e.syncFailures };
  }

  fail(name: string, fault: Fault): void {
    this.entry(name).fault = {
      read: fault.read ?? false,
      write: fault.write ?? false,
      sync: fault.sync ?? false,
      from: fault.from ?? 0,
      to: fault.to ?? Number.MAX_SAFE_INTEGER,
      errno: fault.errno ?? EIO,
    };
  }

  heal(name: string): void {
    const e = this.entry(name);
    e.fault = null;
    const held = [...(e.stalled ?? []), ...(e.syncsStalled ?? [])];
    e.stalled = null;
    e.syncsStalled = null;
    for (const go of held) go();
  }

  /** Holds every fsync/fdatasync of `name` until heal() (its reads and writes go on). */
  stallSyncs(name: string): void {
    this.entry(name).syncsStalled ??= [];
  }

  /** fsync/fdatasync requests of `name` held by stallSyncs() now. */
  heldSyncs(name: string): number {
    return this.entry(name).syncsStalled?.length ?? 0;
  }

  /** Holds every read and write of `name` until heal(). */
  stall(name: string): void {
    this.entry(name).stalled ??= [];
  }

  /** Reads and writes of `name` held by stall() now. */
  held(name: string): number {
    return this.entry(name).stalled?.length ?? 0;
  }

  private entry(name: string): FileEntry {
    const e = this.files.get(name);
    if (!e) throw new Error(`no file ${name}`);
    return e;
  }

  /** Unmounts (lazily, so an open file does not hold it) and stops serving. */
  async unmount(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const name of this.files.keys()) this.heal(name);
    await new Promise<void>((resolve) => {
      const p = spawn("umount", ["-l", this.mountpoint], { stdio: "ignore" });
      p.on("exit", () => resolve());
    });
    // The kernel ends the connection: our pending read returns ENODEV.
    await Promise.race([this.stopped, new Promise((r) => setTimeout(r, 2000))]);
    try {
      fs.closeSync(this.fd);
    } catch {
      // already closed
    }
    try {
      fs.rmdirSync(this.mountpoint);
    } catch {
      // still busy; the lazy unmount finishes when the last user goes
    }
  }

  // --- the protocol -----------------------------------------------------

  private loop(): void {
    fs.read(this.fd, this.buf, 0, this.buf.length, null, (err, n) => {
      if (err) {
        const code = err.code;
        if (code === "EINTR" || code === "EAGAIN" || code === "ENOENT") {
          this.loop();
          return;
        }
        if (code === "EPERM" && !this.closed) {
          // Not mounted yet: /dev/fuse has no connection until mount(2) is done.
          setTimeout(() => this.loop(), 5);
          return;
        }
        this.stop(); // ENODEV: unmounted
        return;
      }
      try {
        this.dispatch(Buffer.from(this.buf.subarray(0, n)));
      } catch (e) {
        console.error("fuse-faults:", e);
      }
      this.loop();
    });
  }

  private reply(unique: bigint, error: number, body?: Buffer): void {
    const len = OUT_HEADER + (body?.length ?? 0);
    const out = Buffer.alloc(len);
    out.writeUInt32LE(len, 0);
    out.writeInt32LE(error === 0 ? 0 : -error, 4);
    out.writeBigUInt64LE(unique, 8);
    body?.copy(out, OUT_HEADER);
    try {
      fs.writeSync(this.fd, out);
    } catch {
      // the request was interrupted (ENOENT) or the connection is gone
    }
  }

  private attr(out: Buffer, at: number, ino: number): void {
    const f = this.byIno.get(ino);
    const size = f ? f.data.length : 0;
    out.writeBigUInt64LE(BigInt(ino), at); // ino
    out.writeBigUInt64LE(BigInt(size), at + 8); // size
    out.writeBigUInt64LE(BigInt(Math.ceil(size / 512)), at + 16); // blocks
    // atime, mtime, ctime and their nsec stay 0
    out.writeUInt32LE(f ? 0o100644 : 0o40755, at + 60); // mode
    out.writeUInt32LE(f ? 1 : 2, at + 64); // nlink
    out.writeUInt32LE(0, at + 68); // uid
    out.writeUInt32LE(0, at + 72); // gid
    out.writeUInt32LE(0, at + 76); // rdev
    out.writeUInt32LE(4096, at + 80); // blksize
  }

  private dispatch(req: Buffer): void {
    const opcode = req.readUInt32LE(4);
    const unique = req.readBigUInt64LE(8);
    const nodeid = Number(req.readBigUInt64LE(16));
    const arg = req.subarray(IN_HEADER);
    switch (opcode) {
      case Op.init: {
        const out = Buffer.alloc(64);
        out.writeUInt32LE(FUSE_KERNEL_VERSION, 0);
        out.writeUInt32LE(FUSE_KERNEL_MINOR, 4);
        out.writeUInt32LE(0, 8); // max_readahead
        out.writeUInt32LE(1 << 5, 12); // FUSE_BIG_WRITES (older kernels)
        out.writeUInt16LE(16, 16); // max_background
        out.writeUInt16LE(12, 18); // congestion_threshold
        out.writeUInt32LE(MAX_WRITE, 20); // max_write
        out.writeUInt32LE(1, 24); // time_gran
        this.reply(unique, 0, out);
        return;
      }
      case Op.lookup: {
        const name = arg.toString("utf8", 0, arg.indexOf(0));
        const f = nodeid === ROOT ? this.files.get(name) : undefined;
        if (!f) {
          this.reply(unique, ENOENT);
          return;
        }
        const out = Buffer.alloc(128);
        out.writeBigUInt64LE(BigInt(f.ino), 0); // nodeid
        // generation 0; entry_valid and attr_valid 0 s: always ask again
        this.attr(out, 40, f.ino);
        this.reply(unique, 0, out);
        return;
      }
      case Op.getattr:
      case Op.setattr: {
        if (nodeid !== ROOT && !this.byIno.has(nodeid)) {
          this.reply(unique, ENOENT);
          return;
        }
        const out = Buffer.alloc(104);
        this.attr(out, 16, nodeid);
        this.reply(unique, 0, out);
        return;
      }
      case Op.open:
      case Op.opendir: {
        const out = Buffer.alloc(16);
        out.writeUInt32LE(opcode === Op.open && this.directIo ? FOPEN_DIRECT_IO : 0, 8);
        this.reply(unique, 0, out);
        return;
      }
      case Op.read:
      case Op.write: {
        const f = this.byIno.get(nodeid);
        if (!f) {
          this.reply(unique, EIO);
          return;
        }
        const offset = Number(arg.readBigUInt64LE(8));
        const size = arg.readUInt32LE(16);
        const run = () => this.readWrite(f, opcode, unique, offset, size, arg);
        if (f.stalled) f.stalled.push(run);
        else run();
        return;
      }
      case Op.statfs: {
        const out = Buffer.alloc(80);
        out.writeBigUInt64LE(1n << 20n, 0);
        out.writeUInt32LE(4096, 40); // bsize
        out.writeUInt32LE(255, 44); // namelen
        out.writeUInt32LE(4096, 48); // frsize
        this.reply(unique, 0, out);
        return;
      }
      case Op.readdir:
        this.reply(unique, 0, Buffer.alloc(0));
        return;
      case Op.fsync: {
        const f = this.byIno.get(nodeid);
        const run = () => {
          if (f) {
            f.syncs++;
            if (f.fault?.sync) {
              f.syncFailures++;
              this.reply(unique, f.fault.errno);
              return;
            }
          }
          this.reply(unique, 0);
        };
        if (f?.syncsStalled) f.syncsStalled.push(run);
        else run();
        return;
      }
      case Op.release:
      case Op.releasedir:
      case Op.flush:
      case Op.fsyncdir:
      case Op.destroy:
        this.reply(unique, 0);
        return;
      case Op.forget:
      case Op.batchForget:
      case Op.interrupt:
        return; // no reply
      default:
        this.reply(unique, ENOSYS);
    }
  }

  private readWrite(
    f: FileEntry,
    opcode: number,
    unique: bigint,
    offset: number,
    size: number,
    arg: Buffer,
  ): void {
    const write = opcode === Op.write;
    const fault = f.fault;
    if (
      fault &&
      (write ? fault.write : fault.read) &&
      offset < fault.to &&
      offset + size > fault.from
    ) {
      f.failures++;
      this.reply(unique, fault.errno);
      return;
    }
    if (write) {
      const n = Math.max(0, Math.min(size, f.data.length - offset));
      arg.copy(f.data, offset, 40, 40 + n);
      const out = Buffer.alloc(8);
      out.writeUInt32LE(n, 0);
      this.reply(unique, 0, out);
    } else {
      const end = Math.min(f.data.length, offset + size);
      this.reply(unique, 0, f.data.subarray(Math.min(offset, end), end));
    }
  }
}
