/**
 * What every engine's backend shares (src/io/engines/): the window, the
 * O_DIRECT descriptor choice, group commit with write-cache off, waiting for
 * operations in progress before closing, the exclusive claim on a block
 * device. An engine supplies read, one raw write and one raw sync.
 */
import type {
  Backend,
  BackendCapabilities,
  IoCallback,
  SharedBackend,
  SyncStats,
} from "./backend.js";
import { alignedBuffer } from "./blockdev.js";
import type { IoSite } from "./errors.js";
import { FileWriter } from "./file-writers.js";
import { GroupCommit, LoneWriteChooser, newSyncFailureFlag } from "./group-commit.js";
import { closeFd, openExclusiveClaim } from "./store.js";
import type { IoOwner } from "./uring.js";

/**
 * How many of a shared pool's workers one export's reads and writes may hold
 * at once: a quarter, so a backend that hangs leaves the other exports (and fs
 * calls) the rest, less the one worker of its group commit's sync.
 */
export function poolShare(workers: number): number {
  return Math.max(1, Math.floor(workers / 4));
}

export abstract class FileBackend implements Backend, IoOwner, IoSite {
  readonly path: string;
  readonly exportName: string;
  readonly size: number;
  readonly readOnly: boolean;
  readonly caps: BackendCapabilities;
  protected readonly fd: number;
  /** O_DIRECT descriptor (direct-io, or caps.uncachedWritesDirect), -1 if none. */
  protected readonly directFd: number;
  protected readonly offset: number;
  /** Operations started and not yet called back (the fds stay open until it is 0). */
  pending = 0;
  onIdle: (() => void) | null = null;
  private closing: Promise<void> | null = null;
  /** False in a worker thread: the main thread closes the descriptors. */
  ownsDescriptors = true;
  /** What fdatasync goes through: `fd`, or a worker thread's own descriptor (SharedBackend.syncFd). */
  protected readonly syncFd: number;
  /** Serializes syncs and fails the backend after a failed one; null when read-only. */
  private readonly commit: GroupCommit | null;
  private readonly lone: LoneWriteChooser;
  private readonly syncFailure: SharedArrayBuffer;
  /** See Backend.issueLimit; set by the engines that run on a shared pool. */
  issueLimit?: number;
  /** See IoOwner.forceAsync: the filesystem can hang, so never issued inline. */
  readonly forceAsync: boolean;
  /** This backend among this thread's writers of its file (file-writers.ts); null if none are counted. */
  protected readonly writer: FileWriter | null;

  constructor(on: SharedBackend) {
    this.path = on.path;
    this.exportName = on.exportName;
    this.fd = on.fd;
    this.directFd = on.directFd;
    this.size = on.size;
    this.offset = on.offset;
    this.readOnly = on.readOnly;
    this.caps = on.caps;
    this.syncFd = on.syncFd ?? on.fd;
    this.syncFailure = on.syncFailure ?? newSyncFailureFlag();
    this.commit = this.readOnly
      ? null
      : new GroupCommit((cb) => this.rawSync(cb), this, this.syncFailure);
    // An RWF_DSYNC write syncs through the write's descriptor: only where that is the sync
    // descriptor, or the O_DIRECT one (caps.uncachedWritesDirect): a write-back error it reports
    // is reported again to the sync descriptor, which keeps its own place.
    this.lone = new LoneWriteChooser(
      this.caps.groupCommit?.dsync === true && this.canDsync() && this.syncFd === this.fd,
    );
    this.forceAsync = this.caps.mayHang !== undefined;
    this.writer = on.fileId !== undefined && !on.readOnly ? new FileWriter(on.fileId) : null;
    if (this.writer !== null)
      this.writer.alwaysDirect =
        this.caps.directIo !== false &&
        this.directFd >= 0 &&
        this.caps.writesBuffered === undefined;
  }

  /** Whether rawWrite can do an RWF_DSYNC write. */
  protected canDsync(): boolean {
    return false;
  }

  allocBuffer(bytes: number): Buffer {
    if (this.directFd < 0) return Buffer.allocUnsafeSlow(bytes);
    const a = this.caps.alignment;
    return alignedBuffer(Math.ceil(bytes / a) * a, Math.max(a, 4096));
  }

  share(): SharedBackend {
    const { path, exportName, fd, directFd, size, offset, readOnly, caps, syncFailure } = this;
    return { path, exportName, fd, directFd, size, offset, readOnly, caps, syncFailure };
  }

  /** Whether a request of `len` bytes at file position `pos` meets O_DIRECT's alignment. */
  protected alignedForDirect(len: number, pos: number): boolean {
    const a = this.caps.alignment;
    return len % a === 0 && pos % a === 0;
  }

  /** For a write: the O_DIRECT fd when direct-io is on, unless caps.writesBuffered; else the buffered one. */
  protected fdFor(len: number, pos: number): number {
    return this.caps.writesBuffered === undefined ? this.directFdFor(len, pos) : this.fd;
  }

  /** For a read: the O_DIRECT fd when direct-io is `true` and the request is aligned for it. */
  protected fdForRead(len: number, pos: number): number {
    return this.caps.directIo === "writes" ? this.fd : this.directFdFor(len, pos);
  }

  private directFdFor(len: number, pos: number): number {
    return this.caps.directIo !== false && this.directFd >= 0 && this.alignedForDirect(len, pos)
      ? this.directFd
      : this.fd;
  }

  abstract read(buf: Buffer, len: number, pos: number, cb: IoCallback): void;
  /** One write as it is, through `fd` (fdFor's choice); `dsync`: with RWF_DSYNC (only when canDsync()). */
  protected abstract rawWrite(
    fd: number,
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

  limitSyncBatch(writes: number): void {
    if (this.commit !== null) this.commit.limit = writes;
  }

  write(buf: Buffer, len: number, pos: number, cb: IoCallback, written?: () => void): void {
    const w = this.writer;
    // A direct-io backend of a file keeps its way apart from the other backends' (file-writers.ts).
    const way = w !== null && this.caps.directIo !== false ? this.directIoWay(len, pos) : null;
    if (
      w !== null &&
      (way === null ? w.othersDirect : way === "direct" ? w.anyBuffered : w.anyDirect)
    ) {
      this.pending++; // close() waits for it too
      const retry = () => {
        this.write(buf, len, pos, cb, written); // counted again if it goes on
        if (--this.pending === 0) this.onIdle?.();
      };
      if (way === "direct") w.waitBuffered(retry);
      else w.wait(retry);
      return;
    }
    const fd =
      way === null
        ? this.fdFor(len, pos + this.offset)
        : way === "direct"
          ? this.directFd
          : this.fd;
    const gc = this.commit;
    if (gc !== null && gc.failed !== null) {
      cb(gc.failedError());
      return;
    }
    if (gc === null || this.caps.groupCommit === undefined) {
      this.issue(way, fd, buf, len, pos, false, cb);
      return;
    }
    // Alone (nothing else written and not yet durable): the faster of the two ways.
    const lone = gc.idle ? this.lone.next() : null;
    const t0 = lone === null ? 0 : performance.now();
    if (lone === "dsync") {
      gc.dsyncStarted();
      this.issue(way, fd, buf, len, pos, true, (err) => {
        if (err === null) this.lone.observe("dsync", performance.now() - t0);
        cb(gc.dsyncDone(err));
      });
      return;
    }
    gc.outstanding++;
    this.issue(way, fd, buf, len, pos, false, (err) => {
      // Before outstanding drops, so a write issued from written() is not alone.
      if (err === null) written?.();
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

  /**
   * A direct-io backend's way for a write: O_DIRECT where the request takes it
   * and every writer of the file would go direct too, else the page cache.
   */
  private directIoWay(len: number, pos: number): "direct" | "buffered" {
    return this.writer!.allAlwaysDirect && this.fdFor(len, pos + this.offset) === this.directFd
      ? "direct"
      : "buffered";
  }

  /** rawWrite, with a direct-io backend's write counted in its way while in flight. */
  private issue(
    way: "direct" | "buffered" | null,
    fd: number,
    buf: Buffer,
    len: number,
    pos: number,
    dsync: boolean,
    done: IoCallback,
  ): void {
    if (way === null) {
      this.rawWrite(fd, buf, len, pos, dsync, done);
      return;
    }
    const w = this.writer!;
    if (way === "direct") w.directStarted();
    else w.bufferedStarted();
    this.rawWrite(fd, buf, len, pos, dsync, (err) => {
      if (way === "direct") w.directDone();
      else w.bufferedDone();
      done(err);
    });
  }

  /** A FLUSH: a sync that starts after every write completed so far; fails once a sync has failed. */
  flush(cb: IoCallback, waiting?: () => void): void {
    if (this.commit === null) {
      this.rawSync(cb);
      return;
    }
    this.commit.completed(cb);
    // It only waits for group commit's sync now, like a written write. After
    // completed(), so a write issued from waiting() is not taken for a lone one.
    waiting?.();
  }

  /** Waits for operations in progress (their fds must not be reused under them), then closes. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.pending > 0) await new Promise<void>((resolve) => (this.onIdle = resolve));
      this.onIdle = null;
      this.writer?.leave();
      if (this.ownsDescriptors) {
        await closeFd(this.fd);
        if (this.directFd >= 0) await closeFd(this.directFd);
        if (this.claimFd >= 0) await closeFd(this.claimFd);
      }
      if (this.syncFd !== this.fd) await closeFd(this.syncFd);
      await this.release();
    })();
    return this.closing;
  }

  /** What the engine holds besides the descriptors (a ring, a mapping), let go after them. */
  protected release(): Promise<void> {
    return Promise.resolve();
  }

  /** Descriptor holding the exclusive claim taken over from a replaced backend, -1 if none. */
  private claimFd = -1;

  async claimExclusive(): Promise<void> {
    if (!this.caps.blockDevice || this.claimFd >= 0 || this.closing !== null) return;
    this.claimFd = await openExclusiveClaim(this);
  }
}
