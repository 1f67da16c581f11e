/**
 * Seeing what a daemon asks of the kernel, without trusting the daemon:
 *
 * - `fdFlags`: the open flags of the daemon's descriptors on a file, from
 *   /proc/PID/fdinfo (O_DSYNC shows there whatever engine does the I/O).
 * - `KernelTrace`: a private tracefs instance (its own buffer and enables,
 *   so it disturbs no one else's tracing) recording ext4_sync_file_enter for
 *   one inode (every fsync/fdatasync and every O_DSYNC write that reaches
 *   ext4, from a syscall or from io_uring alike), ext4's write_end for one
 *   inode (a buffered write's data is in the page cache), iomap's
 *   dio_complete for one inode (an O_DIRECT write is done, after its own sync
 *   if it had RWF_DSYNC) and io_uring_submit_req for one process (which
 *   io_uring opcodes it submits).
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export const O_DSYNC = fs.constants.O_DSYNC;
export const O_DIRECT = fs.constants.O_DIRECT;

/** Open flags (from fdinfo, octal there) of every descriptor `pid` holds on `file`. */
export function fdFlags(pid: number, file: string): number[] {
  const dir = `/proc/${pid}/fd`;
  const flags: number[] = [];
  for (const fd of fs.readdirSync(dir)) {
    let target: string;
    try {
      target = fs.readlinkSync(path.join(dir, fd));
    } catch {
      continue;
    }
    if (target !== file && target !== `${file} (deleted)`) continue;
    const info = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8");
    const m = /^flags:\s+([0-7]+)$/m.exec(info);
    if (m) flags.push(Number.parseInt(m[1]!, 8));
  }
  return flags;
}

/** Whether `pid` holds an io_uring instance. */
export function hasIoUring(pid: number): boolean {
  const dir = `/proc/${pid}/fd`;
  return fs.readdirSync(dir).some((fd) => {
    try {
      return fs.readlinkSync(path.join(dir, fd)) === "anon_inode:[io_uring]";
    } catch {
      return false;
    }
  });
}

/** The filesystem type of the mount holding `file` (from `stat -f`). */
export function fsType(file: string): string {
  return execFileSync("stat", ["-f", "-c", "%T", file], { encoding: "utf8" }).trim();
}

const IORING_OP: Record<number, string> = { 3: "FSYNC", 22: "READ", 23: "WRITE" };

/**
 * Position in the trace: the kernel merges its per-CPU buffers by nanosecond
 * timestamps, but prints only microseconds. An RWF_DSYNC write's sync enters
 * about a microsecond after its write_end, often in the same printed one:
 * order events by `seq`, never by `t`.
 */
interface Ordered {
  seq: number;
}

export interface SyncEvent extends Ordered {
  /** CLOCK_MONOTONIC seconds, to the microsecond: comparable with Number(process.hrtime.bigint()) / 1e9. */
  t: number;
  /** Thread that synced (a libuv worker, an io_uring worker or the daemon itself). */
  pid: number;
  ino: number;
  /** "enter": fsync/fdatasync (or an O_DSYNC write's sync) starts; "exit": it is done. */
  phase: "enter" | "exit";
  /** enter: fdatasync rather than fsync. */
  datasync?: boolean;
  /** exit: the result (0 or -errno). */
  ret?: number;
}

/** A buffered write's bytes copied into the page cache (one per page it touches). */
export interface WriteEndEvent extends Ordered {
  t: number;
  pos: number;
  len: number;
}

/**
 * An O_DIRECT request done (the flags printed do not tell a read from a
 * write): with RWF_DSYNC the kernel ran its sync before this.
 */
export interface DirectWriteEvent extends Ordered {
  t: number;
  pos: number;
  len: number;
  dsync: boolean;
  /** 0, or -errno. */
  error: number;
}

let instances = 0;

export class KernelTrace {
  private constructor(
    private readonly root: string,
    private readonly mountedBy: string | null,
    private readonly dir: string,
  ) {}

  /** Why kernel tracing cannot be used here, or null if it can. */
  static unavailable(): string | null {
    try {
      const t = KernelTrace.open();
      const missing = ["ext4/ext4_sync_file_enter", "io_uring/io_uring_submit_req"].filter(
        (e) => !fs.existsSync(path.join(t.dir, "events", e)),
      );
      t.close();
      return missing.length > 0 ? `no tracepoint ${missing.join(", ")}` : null;
    } catch (e) {
      return (e as Error).message;
    }
  }

  static open(): KernelTrace {
    let root = "/sys/kernel/tracing";
    let mountedBy: string | null = null;
    if (!fs.existsSync(path.join(root, "instances"))) {
      mountedBy = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-tracefs-"));
      try {
        execFileSync("mount", ["-t", "tracefs", "nodev", mountedBy], { stdio: "pipe" });
      } catch (e) {
        fs.rmdirSync(mountedBy);
        throw new Error(`cannot mount tracefs: ${(e as Error).message}`);
      }
      root = mountedBy;
    }
    const dir = path.join(root, "instances", `aoedtest-${process.pid}-${instances++}`);
    fs.mkdirSync(dir);
    const t = new KernelTrace(root, mountedBy, dir);
    // Timestamps in CLOCK_MONOTONIC, the clock of process.hrtime.
    t.set("trace_clock", "mono");
    return t;
  }

  private set(rel: string, value: string): void {
    fs.writeFileSync(path.join(this.dir, rel), value);
  }

  /** Records fsync/fdatasync of inode `ino` (and O_DSYNC writes to it) from now on. */
  syncsOf(ino: number): this {
    for (const e of ["ext4_sync_file_enter", "ext4_sync_file_exit"]) {
      this.set(`events/ext4/${e}/filter`, `ino == ${ino}`);
      this.set(`events/ext4/${e}/enable`, "1");
    }
    return this;
  }

  /** Records buffered writes' data reaching the page cache of inode `ino` from now on. */
  writesOf(ino: number): this {
    for (const e of ["ext4_da_write_end", "ext4_write_end"]) {
      this.set(`events/ext4/${e}/filter`, `ino == ${ino}`);
      this.set(`events/ext4/${e}/enable`, "1");
    }
    return this;
  }

  /** Records O_DIRECT requests to inode `ino` completing from now on (where the kernel traces them). */
  directWritesOf(ino: number): this {
    if (!fs.existsSync(path.join(this.dir, "events/iomap/iomap_dio_complete"))) return this;
    this.set("events/iomap/iomap_dio_complete/filter", `ino == ${ino}`);
    this.set("events/iomap/iomap_dio_complete/enable", "1");
    return this;
  }

  /** Records the io_uring SQEs process `pid` submits from now on. */
  uringOf(pid: number): this {
    this.set("events/io_uring/io_uring_submit_req/filter", `common_pid == ${pid}`);
    this.set("events/io_uring/io_uring_submit_req/enable", "1");
    return this;
  }

  /** Forgets what was recorded so far. */
  clear(): void {
    this.set("trace", "");
  }

  /** The trace's event lines, in the kernel's (nanosecond) order. */
  private lines(): string[] {
    return fs
      .readFileSync(path.join(this.dir, "trace"), "utf8")
      .split("\n")
      .filter((l) => l !== "" && !l.startsWith("#"));
  }

  syncs(): SyncEvent[] {
    const out: SyncEvent[] = [];
    for (const [seq, l] of this.lines().entries()) {
      const m =
        /-(\d+)\s+\[\d+\].*?\s(\d+\.\d+): ext4_sync_file_(enter|exit): dev \S+ ino (\d+) (?:parent \d+ datasync (\d+)|ret (-?\d+))/.exec(
          l,
        );
      if (!m) continue;
      const e: SyncEvent = {
        seq,
        t: Number(m[2]),
        pid: Number(m[1]),
        ino: Number(m[4]),
        phase: m[3] as "enter" | "exit",
      };
      if (m[5] !== undefined) e.datasync = m[5] === "1";
      if (m[6] !== undefined) e.ret = Number(m[6]);
      out.push(e);
    }
    return out;
  }

  writes(): WriteEndEvent[] {
    const out: WriteEndEvent[] = [];
    for (const [seq, l] of this.lines().entries()) {
      const m =
        /\s(\d+\.\d+): ext4_(?:da_)?write_end: dev \S+ ino \d+ pos (\d+) len (\d+) copied (\d+)/.exec(
          l,
        );
      if (m) out.push({ seq, t: Number(m[1]), pos: Number(m[2]), len: Number(m[4]) });
    }
    return out;
  }

  directIo(): DirectWriteEvent[] {
    const out: DirectWriteEvent[] = [];
    for (const [seq, l] of this.lines().entries()) {
      // The offset printed is the file position after the write.
      const m =
        /\s(\d+\.\d+): iomap_dio_complete: .* offset 0x([0-9a-f]+) flags (\S+) aio \d+ error (-?\d+) ret (-?\d+)/.exec(
          l,
        );
      if (!m) continue;
      const len = Number(m[5]);
      out.push({
        seq,
        t: Number(m[1]),
        pos: Number.parseInt(m[2]!, 16) - Math.max(len, 0),
        len,
        dsync: m[3]!.split("|").includes("DSYNC"),
        error: Number(m[4]),
      });
    }
    return out;
  }

  /** io_uring opcodes submitted, by name ("READ", "WRITE", "FSYNC"...), with counts. */
  uringOps(): Map<string, number> {
    const out = new Map<string, number>();
    for (const l of this.lines()) {
      const m = /io_uring_submit_req: .* opcode (\S+),/.exec(l);
      if (!m) continue;
      const op = /^\d+$/.test(m[1]!) ? (IORING_OP[Number(m[1])] ?? m[1]!) : m[1]!.toUpperCase();
      out.set(op, (out.get(op) ?? 0) + 1);
    }
    return out;
  }

  close(): void {
    try {
      this.set("events/enable", "0");
    } catch {
      // best effort
    }
    try {
      fs.rmdirSync(this.dir);
    } catch {
      // busy: left for the next run to reuse the name space; harmless
    }
    if (this.mountedBy !== null) {
      try {
        execFileSync("umount", [this.root], { stdio: "pipe" });
        fs.rmdirSync(this.mountedBy);
      } catch {
        // best effort
      }
    }
  }
}
