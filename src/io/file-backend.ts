/**
 * Regular files and block devices, through io_uring (one ring shared by every
 * backend in the process) or, where io_uring is unavailable or AOED_IO=threads,
 * libuv's thread pool. AOED_IO=sync (pread/pwrite on the event loop) exists for
 * measurements on memory-backed files. caps.engine says which one is in effect.
 */
import { constants as bufferConstants } from "node:buffer";
import fs from "node:fs";
import { loadNative, type UringProbeResult } from "../native/addon.js";
import type {
  Backend,
  BackendCapabilities,
  IoCallback,
  IoEngine,
  SharedBackend,
} from "./backend.js";
import { alignedBuffer, blockDeviceSize, logicalBlockSize } from "./blockdev.js";
import { dsyncHonoured, GroupCommit, LoneWriteChooser, type SyncStats } from "./group-commit.js";
import { type IoOwner, IoRing, type IoRingStats, probeUring } from "./uring.js";

export interface OpenOptions {
  path: string;
  readOnly: boolean;
  directIo: boolean;
  /** false: every write is durable before it completes (group commit, src/io/group-commit.ts). */
  writeCache: boolean;
  /** Window into the store, bytes; length null = to the end. */
  offset: number;
  length: number | null;
  /** I/O engine; default: $AOED_IO, else "auto" (io_uring when the probe passes). */
  io?: IoEngineRequest;
  /**
   * A block device another backend of this process holds exclusively (a reload
   * replacing it): open without O_EXCL now and take the claim over with
   * claimExclusive() once the old backend has closed.
   */
  sharedClaim?: boolean;
}

/**
 * "auto": files in memory (tmpfs, ramfs) mapped, else io_uring when
 * available, else the thread pool. "uring": io_uring or fail. "threads": the
 * thread pool. "sync": pread/pwrite on the event loop. "mmap": any regular
 * file mapped. With sync and mmap a disk that stalls stalls the whole daemon.
 */
export type IoEngineRequest = "auto" | "uring" | "threads" | "sync" | "mmap";

export interface IoEngineChoice {
  engine: IoEngine;
  /** Why not io_uring, when "auto" picked something else. */
  note?: string;
}

// statfs(2) f_type of filesystems whose files live in memory.
const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;

/**
 * statfs(2) f_type of filesystems that can stop answering for good: a server
 * or a user-space daemon is behind every request (linux/magic.h, fs/*).
 */
const HANG_PRONE_FS = new Map<number, string>([
  [0x65735546, "fuse"],
  [0x6969, "nfs"],
  [0xff534d42, "cifs"],
  [0xfe534d42, "smb2"],
  [0x517b, "smb"],
  [0x01021997, "9p"],
  [0x00c36400, "ceph"],
  [0x6b414653, "afs"],
  [0x5346414f, "afs"],
  [0x73757245, "coda"],
  [0x7461636f, "ocfs2"],
  [0x01161970, "gfs2"],
]);

/** statfs(2) f_type of the filesystem holding `path`, null if it cannot be had. */
async function statfsType(path: string): Promise<number | null> {
  try {
    return (await fs.promises.statfs(path)).type;
  } catch {
    return null;
  }
}

/** Whether `path` is a file in memory (tmpfs, ramfs): reading it never waits for a disk. */
export async function isMemoryBacked(path: string): Promise<boolean> {
  const type = await statfsType(path);
  return type === TMPFS_MAGIC || type === RAMFS_MAGIC;
}

/** The name of the filesystem holding `path` if it is one that can hang (fuse, nfs, cifs...), else null. */
export async function hangProneFilesystem(path: string): Promise<string | null> {
  const type = await statfsType(path);
  return (type !== null && HANG_PRONE_FS.get(type)) || null;
}

/**
 * libuv's thread pool size (the daemon's entry point sets UV_THREADPOOL_SIZE
 * before the pool starts; libuv's default is 4).
 */
function threadPoolSize(): number {
  const n = Number(process.env.UV_THREADPOOL_SIZE);
  return Number.isInteger(n) && n > 0 ? Math.min(n, 1024) : 4;
}

/**
 * How many of a shared pool's workers one export may hold at once: a quarter,
 * so a backend that hangs leaves the other exports (and fs calls) the rest.
 */
export function poolShare(workers: number): number {
  return Math.max(1, Math.floor(workers / 4));
}

/** io-wq workers for regular file and block device I/O the shared ring asks for. */
const URING_WORKERS = 64;

/** Reads $AOED_IO: uring, threads, sync, mmap or auto (the default). */
export function ioEngineFromEnv(env: NodeJS.ProcessEnv = process.env): IoEngineRequest {
  const v = (env.AOED_IO ?? "").trim().toLowerCase();
  if (v === "" || v === "auto") return "auto";
  if (v === "uring" || v === "io_uring") return "uring";
  if (v === "threads" || v === "threadpool") return "threads";
  if (v === "sync") return "sync";
  if (v === "mmap") return "mmap";
  throw new Error(`AOED_IO=${env.AOED_IO}: expected uring, threads, sync, mmap or auto`);
}

function readSysctl(name: string): string | null {
  try {
    return fs.readFileSync(`/proc/sys/${name.replaceAll(".", "/")}`, "utf8").trim();
  } catch {
    return null;
  }
}

/** Why io_uring cannot be used, in words an admin can act on. */
export function describeUringFailure(p: UringProbeResult): string {
  if (p.step.startsWith("native addon")) return `io_uring unavailable: ${p.step}`;
  if (p.step === "io_uring_setup") {
    if (p.code === "EPERM" || p.code === "EACCES") {
      const disabled = readSysctl("kernel.io_uring_disabled");
      if (disabled === "2") return "io_uring is disabled by sysctl kernel.io_uring_disabled=2";
      if (disabled === "1")
        return (
          "io_uring is restricted by sysctl kernel.io_uring_disabled=1 " +
          "(needs CAP_SYS_ADMIN or membership in kernel.io_uring_group)"
        );
      return `io_uring_setup refused (${p.code}): blocked by a seccomp filter (a container's default profile?)`;
    }
    if (p.code === "ENOSYS")
      return "io_uring_setup: ENOSYS (kernel without io_uring, or blocked by a seccomp filter)";
    if (p.code === "ENOMEM")
      return "io_uring_setup: ENOMEM (RLIMIT_MEMLOCK too low for the rings on Linux < 5.12?)";
    return `io_uring_setup failed (${p.code})`;
  }
  if (p.step === "IORING_REGISTER_PROBE") {
    if (p.code === "EOPNOTSUPP") {
      const missing = (["read", "write", "fsync"] as const).filter((op) => !p[op]);
      return `io_uring lacks IORING_OP_${missing.join("/").toUpperCase()} (needs Linux >= 5.6)`;
    }
    return `io_uring probe failed (${p.code}; Linux < 5.6?)`;
  }
  return `io_uring unavailable: ${p.step} (${p.code})`;
}

/**
 * Picks the engine: `requested`, else $AOED_IO, else auto. `inMemory`: the
 * file is on tmpfs/ramfs. Throws if "uring" cannot be had.
 */
export function chooseIoEngine(requested?: IoEngineRequest, inMemory = false): IoEngineChoice {
  const want = requested ?? ioEngineFromEnv();
  if (want === "threads" || want === "sync" || want === "mmap") return { engine: want };
  if (want === "auto" && inMemory)
    return {
      engine: "mmap",
      note:
        "the file is in memory (tmpfs): mapped, a read or write is a copy on the event " +
        "loop, cheaper than any system call and never waiting for a disk " +
        "(AOED_IO=uring to override)",
    };
  const p = probeUring();
  if (p.ok) return { engine: "io_uring" };
  const why = describeUringFailure(p);
  if (want === "uring") throw new Error(`io_uring requested (AOED_IO=uring) but ${why}`);
  return { engine: "threads", note: why };
}

// One ring for every backend in the process, closed when the last one closes.
let sharedRing: IoRing | null = null;
let ringUsers = 0;

/**
 * $AOED_URING_SUBMIT_BATCH (experimental): submit every N queued operations
 * instead of once per event-loop callback (IoRingOptions.submitBatch). 0 or
 * unset: once per callback.
 */
export function submitBatchFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const v = (env.AOED_URING_SUBMIT_BATCH ?? "").trim();
  if (v === "") return 0;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`AOED_URING_SUBMIT_BATCH=${v}: expected a whole number >= 0`);
  return n;
}

function acquireRing(): IoRing {
  if (sharedRing === null)
    sharedRing = IoRing.open({
      entries: 256,
      submitBatch: submitBatchFromEnv(),
      maxWorkers: URING_WORKERS,
    });
  ringUsers++;
  return sharedRing;
}

/** Counters of the shared io_uring (null while no io_uring backend is open), for metrics. */
export function sharedRingStats(): Readonly<IoRingStats> | null {
  return sharedRing === null ? null : sharedRing.stats;
}

function releaseRing(ring: IoRing): Promise<void> {
  if (ring !== sharedRing || --ringUsers > 0) return Promise.resolve();
  sharedRing = null;
  return ring.close();
}

/** An error the admin can act on: names the path and what to change. */
export class BackendError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
  }
}

const SECTOR = 512;
const MAX_LENGTH = bufferConstants.MAX_LENGTH;
const { O_RDONLY, O_RDWR, O_EXCL, O_DIRECT, O_NOATIME = 0 } = fs.constants;

function openFd(path: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) =>
    fs.open(path, flags, (err, fd) => (err ? reject(err) : resolve(fd))),
  );
}

/**
 * Opens with O_NOATIME when allowed (the file's owner, or CAP_FOWNER): reads
 * then skip the access-time bookkeeping. Falls back to a plain open.
 */
async function openFileFd(path: string, flags: number): Promise<number> {
  if (O_NOATIME === 0) return openFd(path, flags);
  try {
    return await openFd(path, flags | O_NOATIME);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") throw err;
    return openFd(path, flags);
  }
}

function closeFd(fd: number): Promise<void> {
  return new Promise((resolve) => fs.close(fd, () => resolve()));
}

function describeOpenError(
  path: string,
  err: NodeJS.ErrnoException,
  exclusive: boolean,
  readOnly = false,
): BackendError {
  switch (err.code) {
    case "ENOENT":
      return new BackendError(path, "no such file or device");
    case "EACCES":
    case "EPERM":
      return new BackendError(
        path,
        readOnly
          ? "permission denied (aoed needs read access)"
          : "permission denied (aoed needs read/write access; set read-only: true to export it read-only)",
      );
    case "EBUSY":
      return new BackendError(
        path,
        exclusive
          ? "device is in use (mounted, or opened exclusively by another program)"
          : "device is busy",
      );
    case "EROFS":
      return new BackendError(path, "read-only filesystem (set read-only: true)");
    default:
      return new BackendError(path, `cannot open: ${err.message}`);
  }
}

/**
 * Finds the smallest alignment O_DIRECT accepts on this fd (512 or 4096).
 * On the thread pool: the store may not answer, and the event loop must not wait for it.
 */
async function probeDirectAlignment(fd: number): Promise<number> {
  const buf = alignedBuffer(4096, 4096);
  for (const align of [SECTOR, 4096]) {
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) =>
      fs.read(fd, buf, 0, align, 0, (e) => resolve(e)),
    );
    if (err === null) return align;
    if (err.code !== "EINVAL") throw err;
  }
  return 0;
}

export async function openFileBackend(opts: OpenOptions): Promise<Backend> {
  const { path } = opts;
  const want = opts.io ?? ioEngineFromEnv();
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(path);
  } catch (err) {
    throw describeOpenError(path, err as NodeJS.ErrnoException, false);
  }
  const isBlock = st.isBlockDevice();
  if (!isBlock && !st.isFile()) throw new BackendError(path, "not a regular file or block device");
  const fsType = isBlock ? null : await statfsType(path);
  const inMemory = fsType === TMPFS_MAGIC || fsType === RAMFS_MAGIC;
  const mayHang = (fsType !== null && HANG_PRONE_FS.get(fsType)) || null;
  // direct-io asks for O_DIRECT (tmpfs takes it since Linux 6.6): not a mapping.
  const choice = chooseIoEngine(
    want === "mmap" && opts.directIo ? "auto" : want,
    inMemory && !opts.directIo,
  );
  if (choice.engine === "mmap" && !inMemory && !opts.writeCache && !opts.readOnly) {
    // Writes must be group-committed with fdatasync: pwrite, not stores into a mapping.
    choice.engine = "sync";
    choice.note = "write-cache is off: pwrite and fdatasync instead of a mapping";
  }
  // A file in memory has nothing to sync to: group commit only where a sync means something.
  const groupCommit =
    !opts.writeCache && !opts.readOnly && !inMemory
      ? { dsync: dsyncHonoured(isBlock, fsType) }
      : undefined;
  if (mayHang !== null && (choice.engine === "sync" || choice.engine === "mmap")) {
    // A copy from a mapping or a pread on the event loop would stop the whole daemon with it.
    choice.engine = "threads";
    choice.note = `the file is on ${mayHang}, which can stop answering: the thread pool, never the event loop`;
  }

  // O_EXCL on a block device makes the open exclusive: it fails while mounted or in use.
  // No O_DSYNC even with the write cache off: one fdatasync covers a group of writes.
  const baseFlags =
    (opts.readOnly ? O_RDONLY : O_RDWR) | (isBlock && !opts.sharedClaim ? O_EXCL : 0);
  let fd: number;
  try {
    fd = isBlock ? await openFd(path, baseFlags) : await openFileFd(path, baseFlags);
  } catch (err) {
    throw describeOpenError(path, err as NodeJS.ErrnoException, isBlock, opts.readOnly);
  }

  let directFd = -1;
  let alignment = SECTOR;
  try {
    if (opts.directIo) {
      try {
        const directFlags = (baseFlags & ~O_EXCL) | O_DIRECT;
        directFd = isBlock ? await openFd(path, directFlags) : await openFileFd(path, directFlags);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EINVAL")
          throw new BackendError(
            path,
            "the filesystem refuses O_DIRECT; set direct-io: false (buffered-io)",
          );
        throw describeOpenError(path, err as NodeJS.ErrnoException, false);
      }
      alignment = isBlock
        ? Math.max(SECTOR, logicalBlockSize(directFd))
        : await probeDirectAlignment(directFd);
      if (alignment === 0)
        throw new BackendError(
          path,
          "O_DIRECT reads fail at 512 and 4096-byte alignment; set direct-io: false",
        );
    }
    const total = isBlock ? blockDeviceSize(fd) : st.size;
    const size = windowSize(path, total, opts.offset, opts.length);
    const caps: BackendCapabilities = {
      directIo: directFd >= 0,
      blockDevice: isBlock,
      alignment,
      engine: choice.engine,
    };
    if (choice.note !== undefined) caps.engineNote = choice.note;
    if (groupCommit !== undefined) caps.groupCommit = groupCommit;
    if (mayHang !== null) caps.mayHang = mayHang;
    const on = { path, fd, directFd, size, offset: opts.offset, readOnly: opts.readOnly, caps };
    return backendOn(on, want === "uring" ? "required" : "");
  } catch (err) {
    await closeFd(fd);
    if (directFd >= 0) await closeFd(directFd);
    throw err;
  }
}

/**
 * A worker thread's backend over descriptors the main thread opened (see
 * Backend.share): the same engine, with this thread's own io_uring; close()
 * waits for its operations and leaves the descriptors open.
 */
export function adoptFileBackend(shared: SharedBackend): Backend {
  const backend = backendOn({ ...shared, caps: { ...shared.caps } }, " in a worker thread");
  backend.ownsDescriptors = false;
  return backend;
}

function windowSize(path: string, total: number, offset: number, length: number | null): number {
  if (offset > total)
    throw new BackendError(path, `offset ${offset} is past the end (${total} bytes)`);
  const size = length ?? total - offset;
  if (offset + size > total)
    throw new BackendError(path, `window ${offset}+${size} runs past the end (${total} bytes)`);
  return size - (size % SECTOR);
}

abstract class FileBackend implements Backend, IoOwner {
  /** Operations started and not yet called back (the fds stay open until it is 0). */
  pending = 0;
  onIdle: (() => void) | null = null;
  private closing: Promise<void> | null = null;
  /** False in a worker thread: the main thread closes the descriptors. */
  ownsDescriptors = true;
  /** Serializes syncs and fails the backend after a failed one; null when read-only. */
  private readonly commit: GroupCommit | null;
  private readonly lone: LoneWriteChooser;
  /** See Backend.issueLimit; set by the engines that run on a shared pool. */
  issueLimit?: number;
  /** See IoOwner.forceAsync: the filesystem can hang, so never issued inline. */
  readonly forceAsync: boolean;

  constructor(
    readonly path: string,
    protected readonly fd: number,
    /** O_DIRECT descriptor for aligned requests, -1 when direct I/O is off. */
    protected readonly directFd: number,
    readonly size: number,
    protected readonly offset: number,
    readonly readOnly: boolean,
    readonly caps: BackendCapabilities,
  ) {
    this.commit = readOnly ? null : new GroupCommit((cb) => this.rawSync(cb), path);
    this.lone = new LoneWriteChooser(caps.groupCommit?.dsync === true && this.canDsync());
    this.forceAsync = caps.mayHang !== undefined;
  }

  /** Whether rawWrite can do an RWF_DSYNC write. */
  protected canDsync(): boolean {
    return false;
  }

  get label(): string {
    return this.path;
  }

  allocBuffer(bytes: number): Buffer {
    if (!this.caps.directIo) return Buffer.allocUnsafeSlow(bytes);
    const a = this.caps.alignment;
    return alignedBuffer(Math.ceil(bytes / a) * a, Math.max(a, 4096));
  }

  share(): SharedBackend {
    const { path, fd, directFd, size, offset, readOnly, caps } = this;
    return { path, fd, directFd, size, offset, readOnly, caps };
  }

  /** The O_DIRECT fd when the request is aligned for it, else the buffered one. */
  protected fdFor(len: number, pos: number): number {
    const a = this.caps.alignment;
    return this.directFd >= 0 && len % a === 0 && pos % a === 0 ? this.directFd : this.fd;
  }

  abstract read(buf: Buffer, len: number, pos: number, cb: IoCallback): void;
  /** One write as it is; `dsync`: with RWF_DSYNC (only when canDsync()). */
  protected abstract rawWrite(
    buf: Buffer,
    len: number,
    pos: number,
    dsync: boolean,
    cb: IoCallback,
  ): void;
  /** One fdatasync of the store. */
  protected abstract rawSync(cb: IoCallback): void;

  get failed(): NodeJS.ErrnoException | null {
    return this.commit?.failed ?? null;
  }

  get syncStats(): Readonly<SyncStats> | undefined {
    return this.caps.groupCommit && this.commit ? this.commit.stats : undefined;
  }

  write(buf: Buffer, len: number, pos: number, cb: IoCallback): void {
    const gc = this.commit;
    if (gc !== null && gc.failed !== null) {
      cb(gc.failedError());
      return;
    }
    if (gc === null || this.caps.groupCommit === undefined) {
      this.rawWrite(buf, len, pos, false, cb);
      return;
    }
    // Alone (nothing else written and not yet durable): the faster of the two ways.
    const lone = gc.idle ? this.lone.next() : null;
    const t0 = lone === null ? 0 : performance.now();
    if (lone === "dsync") {
      gc.dsyncStarted();
      this.rawWrite(buf, len, pos, true, (err) => {
        if (err === null) this.lone.observe("dsync", performance.now() - t0);
        gc.dsyncDone(err);
        cb(err);
      });
      return;
    }
    gc.outstanding++;
    this.rawWrite(buf, len, pos, false, (err) => {
      gc.outstanding--;
      if (err) cb(err);
      else if (lone === null) gc.completed(cb);
      else
        gc.completed((e) => {
          if (e === null) this.lone.observe("sync", performance.now() - t0);
          cb(e);
        });
    });
  }

  /** A FLUSH: a sync that starts after every write completed so far; fails once a sync has failed. */
  flush(cb: IoCallback): void {
    if (this.commit === null) this.rawSync(cb);
    else this.commit.completed(cb);
  }

  /** Waits for operations in progress (their fds must not be reused under them), then closes. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.pending > 0) await new Promise<void>((resolve) => (this.onIdle = resolve));
      this.onIdle = null;
      if (this.ownsDescriptors) {
        await closeFd(this.fd);
        if (this.directFd >= 0) await closeFd(this.directFd);
        if (this.claimFd >= 0) await closeFd(this.claimFd);
      }
      await this.release();
    })();
    return this.closing;
  }

  protected release(): Promise<void> {
    return Promise.resolve();
  }

  /** Descriptor holding the exclusive claim taken over from a replaced backend, -1 if none. */
  private claimFd = -1;

  async claimExclusive(): Promise<void> {
    if (!this.caps.blockDevice || this.claimFd >= 0 || this.closing !== null) return;
    try {
      this.claimFd = await openFd(this.path, O_RDONLY | O_EXCL);
    } catch (err) {
      throw describeOpenError(this.path, err as NodeJS.ErrnoException, true);
    }
  }
}

/** libuv's thread pool: one fs request (and thread hand-off) per operation. */
class ThreadPoolFileBackend extends FileBackend {
  override issueLimit = poolShare(threadPoolSize());

  private done(): void {
    if (--this.pending === 0 && this.onIdle !== null) this.onIdle();
  }

  read(buf: Buffer, len: number, pos: number, cb: IoCallback): void {
    const at = pos + this.offset;
    this.pending++;
    fs.read(this.fdFor(len, at), buf, 0, len, at, (err, n) => {
      this.done();
      if (err) cb(err);
      else if (n !== len) cb(shortIo("read", this.path, at, n, len));
      else cb(null);
    });
  }

  protected rawWrite(buf: Buffer, len: number, pos: number, _dsync: boolean, cb: IoCallback): void {
    const at = pos + this.offset;
    const fd = this.fdFor(len, at);
    this.pending++;
    const step = (done: number) =>
      fs.write(fd, buf, done, len - done, at + done, (err, n) => {
        if (err) {
          this.done();
          cb(err);
        } else if (n === 0) {
          this.done();
          cb(shortIo("write", this.path, at, done, len));
        } else if (done + n < len) step(done + n);
        else {
          this.done();
          cb(null);
        }
      });
    step(0);
  }

  protected rawSync(cb: IoCallback): void {
    this.pending++;
    fs.fdatasync(this.fd, (err) => {
      this.done();
      cb(err);
    });
  }
}

/**
 * Synchronous pread/pwrite on the event loop, the callback called before
 * read/write/flush returns: the reply is built while the receive batch is
 * still being walked and goes out with it, with no microtask or extra
 * event-loop turn per batch. Only sensible when the store is memory (tmpfs).
 */
class SyncFileBackend extends FileBackend {
  read(buf: Buffer, len: number, pos: number, cb: IoCallback): void {
    const at = pos + this.offset;
    let err: NodeJS.ErrnoException | null = null;
    try {
      const n = fs.readSync(this.fdFor(len, at), buf, 0, len, at);
      if (n !== len) err = shortIo("read", this.path, at, n, len);
    } catch (e) {
      err = e as NodeJS.ErrnoException;
    }
    cb(err);
  }

  protected rawWrite(buf: Buffer, len: number, pos: number, _dsync: boolean, cb: IoCallback): void {
    const at = pos + this.offset;
    const fd = this.fdFor(len, at);
    let err: NodeJS.ErrnoException | null = null;
    try {
      for (let done = 0; done < len; ) {
        const n = fs.writeSync(fd, buf, done, len - done, at + done);
        if (n === 0) {
          err = shortIo("write", this.path, at, done, len);
          break;
        }
        done += n;
      }
    } catch (e) {
      err = e as NodeJS.ErrnoException;
    }
    cb(err);
  }

  protected rawSync(cb: IoCallback): void {
    cb(fdatasyncNow(this.fd));
  }
}

/** fdatasync on the event loop: the error, or null. */
function fdatasyncNow(fd: number): NodeJS.ErrnoException | null {
  try {
    fs.fdatasyncSync(fd);
    return null;
  } catch (e) {
    return e as NodeJS.ErrnoException;
  }
}

/** The file mapped up to the end of the export's window; null when there is nothing to map. */
function mapWindow(
  fd: number,
  end: number,
  readOnly: boolean,
  isBlock: boolean,
): ArrayBuffer | null {
  // A mapping is one ArrayBuffer, at most 4 GiB (buffer.constants.MAX_LENGTH).
  if (isBlock || end === 0 || end > MAX_LENGTH) return null;
  return loadNative().mapFile(fd, end, !readOnly);
}

/**
 * The file mapped into memory: a read or write is one copy between the mapping
 * and the request's buffer, no system call. For files in memory (tmpfs), where
 * pread/pwrite cost several times the copy itself. A file truncated under the
 * mapping fails the request with EIO instead of killing the process.
 */
class MappedFileBackend extends FileBackend {
  private readonly native = loadNative();

  constructor(
    path: string,
    fd: number,
    size: number,
    offset: number,
    readOnly: boolean,
    caps: BackendCapabilities,
    private readonly map: ArrayBuffer,
  ) {
    super(path, fd, -1, size, offset, readOnly, caps);
  }

  private copied(err: number, op: string, at: number, cb: IoCallback): void {
    if (err === 0) {
      cb(null);
      return;
    }
    const e: NodeJS.ErrnoException = new Error(
      `${this.path}: ${op} at ${at} faulted: the file is shorter than the export (truncated?)`,
    );
    e.code = "EIO";
    cb(e);
  }

  /** What a pread/pwrite would have failed with, before touching the mapping; null if none. */
  private refused(op: "read" | "write", at: number, len: number): NodeJS.ErrnoException | null {
    const mapped = this.map.byteLength; // 0 once closed
    if (mapped === 0 || (op === "write" && this.readOnly)) {
      const e: NodeJS.ErrnoException = new Error(`${this.path}: ${op}: bad file descriptor`);
      e.code = "EBADF";
      return e;
    }
    if (at + len > mapped) return shortIo(op, this.path, at, Math.max(0, mapped - at), len);
    return null;
  }

  read(buf: Buffer, len: number, pos: number, cb: IoCallback): void {
    const at = pos + this.offset;
    const no = this.refused("read", at, len);
    if (no !== null) cb(no);
    else this.copied(this.native.copyGuarded(this.map, at, buf, 0, len), "read", at, cb);
  }

  protected rawWrite(buf: Buffer, len: number, pos: number, _dsync: boolean, cb: IoCallback): void {
    const at = pos + this.offset;
    const no = this.refused("write", at, len);
    if (no !== null) cb(no);
    else this.copied(this.native.copyGuarded(buf, 0, this.map, at, len), "write", at, cb);
  }

  protected rawSync(cb: IoCallback): void {
    cb(fdatasyncNow(this.fd));
  }

  protected override release(): Promise<void> {
    this.native.unmapFile(this.map);
    return Promise.resolve();
  }
}

/** pwritev2(2) flag: this write is durable (as with O_DSYNC) before it completes. */
const RWF_DSYNC = 0x2;

/** io_uring: SQEs written in place, one io_uring_enter per event-loop batch. */
class UringFileBackend extends FileBackend {
  constructor(
    path: string,
    fd: number,
    directFd: number,
    size: number,
    offset: number,
    readOnly: boolean,
    caps: BackendCapabilities,
    private readonly ring: IoRing,
  ) {
    super(path, fd, directFd, size, offset, readOnly, caps);
    this.issueLimit = poolShare(ring.boundedWorkers);
  }

  read(buf: Buffer, len: number, pos: number, cb: IoCallback): void {
    const at = pos + this.offset;
    this.ring.read(this.fdFor(len, at), buf, len, at, cb, this);
  }

  protected override canDsync(): boolean {
    return true;
  }

  protected rawWrite(buf: Buffer, len: number, pos: number, dsync: boolean, cb: IoCallback): void {
    const at = pos + this.offset;
    this.ring.write(this.fdFor(len, at), buf, len, at, cb, this, dsync ? RWF_DSYNC : 0);
  }

  protected rawSync(cb: IoCallback): void {
    this.ring.fdatasync(this.fd, cb, this);
  }

  protected override release(): Promise<void> {
    return releaseRing(this.ring);
  }
}

/**
 * The backend for `on.caps.engine` on descriptors already open; where that
 * engine cannot be had here (no io_uring ring, nothing to map) the next best,
 * said in caps. `uring` "required": no io_uring ring is an error; otherwise it
 * is noted, with this text after "io_uring setup failed".
 */
function backendOn(on: SharedBackend, uring: string): FileBackend {
  const { path, fd, directFd, size, offset, readOnly, caps } = on;
  if (caps.engine === "io_uring") {
    try {
      return new UringFileBackend(path, fd, directFd, size, offset, readOnly, caps, acquireRing());
    } catch (err) {
      // The probe passed but this ring could not be set up (e.g. out of memory).
      if (uring === "required")
        throw new BackendError(path, `cannot set up io_uring: ${(err as Error).message}`);
      caps.engine = "threads";
      caps.engineNote = `io_uring setup failed${uring}: ${(err as Error).message}`;
    }
  }
  if (caps.engine === "mmap") {
    const map = mapWindow(fd, offset + size, readOnly, caps.blockDevice);
    if (map !== null) return new MappedFileBackend(path, fd, size, offset, readOnly, caps, map);
    caps.engine = "sync";
    caps.engineNote = "not mapped (empty, over 4 GiB, or a block device): pread/pwrite";
  }
  if (caps.engine === "sync")
    return new SyncFileBackend(path, fd, directFd, size, offset, readOnly, caps);
  return new ThreadPoolFileBackend(path, fd, directFd, size, offset, readOnly, caps);
}

function shortIo(
  op: string,
  path: string,
  at: number,
  n: number,
  len: number,
): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(
    `${path}: short ${op} at ${at}: ${n} of ${len} bytes (the backing store shrank?)`,
  );
  err.code = "EIO";
  return err;
}
