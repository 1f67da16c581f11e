/**
 * Disk I/O through io_uring, driven from TypeScript.
 *
 * The native side (native/uring.cc) only sets the ring up, maps it and
 * watches an eventfd. Here we write SQEs straight into the mapped SQE array,
 * submit everything queued during one event-loop callback with a single
 * io_uring_enter (from a microtask), and reap the CQ right after the submit
 * (page-cache hits complete inline) and whenever the eventfd fires.
 *
 * Where the kernel has it (Linux 6.1), the ring is set up with
 * IORING_SETUP_DEFER_TASKRUN: a completion does not interrupt the daemon's
 * thread (an IPI, or a return from epoll_wait with EINTR) nor signal the
 * eventfd by itself, but waits in a list until the next io_uring_enter, which
 * the submit does anyway and the eventfd's wake-up (one per batch) asks for.
 * Measured side by side on the 2-core VM: docs/performance.md, "Deferred
 * completions".
 *
 * No allocation per operation on the hot path: an operation lives in a slot
 * of preallocated tables (its index is the SQE's user_data), buffer addresses
 * are looked up once per Buffer and cached, and callbacks are called with the
 * caller's own function. Operations beyond what the rings can hold wait in an
 * overflow queue. At most cqEntries operations are in the kernel (submitted
 * or completed but not reaped), so the CQ can never overflow.
 *
 * Every io_uring backend of a thread shares one ring (acquireSharedRing),
 * closed when the last of them closes.
 */
import { availableParallelism } from "node:os";
import {
  loadNative,
  type NativeUringHandle,
  type UringConstants,
  type UringProbeResult,
} from "../native/addon.js";
import type { IoCallback } from "./backend.js";
import { errnoError, type IoSite, shortIo } from "./errors.js";

const K_READ = 0;
const K_WRITE = 1;
const K_FSYNC = 2;
/** What each kind is called in errors: the system call it stands for. */
const SYSCALL = ["pread", "pwrite", "fdatasync"] as const;

const TWO32 = 4294967296;
const EINTR = 4;
const EAGAIN = 11;
const EBUSY = 16;

/**
 * Who an operation is for: names it in errors (its path and export) and counts
 * its operations in progress so it can wait for them before closing its fds.
 */
export interface IoOwner extends IoSite {
  /** Operations accepted by the ring and not yet called back; the ring keeps it. */
  pending: number;
  /** Called by the ring when `pending` drops to 0. */
  onIdle: (() => void) | null;
  /**
   * Issue with IOSQE_ASYNC: straight to the kernel's workers, never inline in
   * io_uring_enter (for filesystems that block there instead of returning EAGAIN).
   */
  readonly forceAsync?: boolean;
}

/** IOSQE_ASYNC (1 << IOSQE_ASYNC_BIT), a fixed part of the io_uring ABI since Linux 5.6. */
const IOSQE_ASYNC = 1 << 4;

export interface IoRingOptions {
  /** SQ entries; the kernel rounds up to a power of two. Default 256. */
  entries?: number;
  /** CQ entries (>= entries), the cap on operations in the kernel. Default 2 x entries. */
  cqEntries?: number;
  /**
   * Cap on the kernel's worker threads for operations that cannot complete
   * inline (tmpfs, buffered writes, page-cache misses). 0: the kernel's default.
   */
  maxWorkers?: number;
  /**
   * Ask for IORING_SETUP_DEFER_TASKRUN (default true). Without it, or on a
   * kernel before 6.1, completions are posted as they happen. Tests set it
   * false to cover that path on a newer kernel.
   */
  deferCompletions?: boolean;
}

let probed: UringProbeResult | undefined;

/** Whether io_uring can be used here (probed once per process). Never throws. */
export function probeUring(): UringProbeResult {
  if (probed) return probed;
  try {
    probed = loadNative().uringProbe();
  } catch (err) {
    probed = {
      ok: false,
      errno: 0,
      code: (err as NodeJS.ErrnoException).code ?? "ENOENT",
      step: `native addon: ${(err as Error).message}`,
      read: false,
      write: false,
      fsync: false,
    };
  }
  return probed;
}

function closedError(syscall: string, site: IoSite | null): NodeJS.ErrnoException {
  return errnoError(-9, syscall, site, "the io_uring is closed");
}

export function rethrowLater(err: unknown): void {
  process.nextTick(() => {
    throw err;
  });
}

export class IoRing {
  readonly sqEntries: number;
  readonly cqEntries: number;
  /**
   * The kernel's limit on workers for regular file and block device I/O that
   * cannot complete inline (IORING_REGISTER_IOWQ_MAX_WORKERS; before Linux
   * 5.15 it cannot be read or set, and is min(SQ entries, 4 x CPUs)).
   */
  boundedWorkers: number;

  private readonly h: NativeUringHandle;
  private readonly k: UringConstants;
  /** The SQE array as 16 u32 words per SQE. */
  private readonly sqes: Uint32Array;
  private readonly sq: Uint32Array;
  private readonly cq: Uint32Array;
  private readonly cqI32: Int32Array;
  private readonly sqHeadIx: number;
  private readonly sqTailIx: number;
  private readonly sqFlagsIx: number;
  /** IORING_SETUP_DEFER_TASKRUN: completions are posted only in io_uring_enter(GETEVENTS). */
  readonly defersCompletions: boolean;
  /** The io_uring_enter flags of a submit: GETEVENTS on a deferred ring posts what completed. */
  private readonly submitFlags: number;
  private readonly sqMask: number;
  private readonly cqHeadIx: number;
  private readonly cqTailIx: number;
  private readonly cqMask: number;
  private readonly cqesIx: number;
  /**
   * Our copies of the SQ tail (what we have written), of the SQ head (the
   * kernel moves it only inside io_uring_enter: we re-read it after each
   * call) and of the CQ head.
   */
  private sqTail: number;
  private sqHead: number;
  private cqHead: number;
  /** Operations in the kernel: in the SQ, in flight, or completed and not yet reaped. */
  private inKernel = 0;

  // Slot tables, indexed by the SQE's user_data.
  private cap = 0;
  private cbs: (IoCallback | null)[] = [];
  private bufs: (Buffer | null)[] = [];
  private owners: (IoOwner | null)[] = [];
  private kind = new Uint8Array(0);
  private fds = new Int32Array(0);
  private lens = new Uint32Array(0);
  private rwFlags = new Uint32Array(0);
  /** Bytes already transferred (short writes). */
  private dones = new Uint32Array(0);
  private poss = new Float64Array(0);
  private addrs = new Float64Array(0);
  private freeList = new Int32Array(0);
  private freeTop = 0;
  // Operations waiting for room in the rings (FIFO of slots).
  private pend = new Int32Array(64);
  private pendHead = 0;
  private pendCount = 0;
  // Scratch for reaping: CQEs are copied out before any callback runs.
  private readonly reapSlot: Int32Array;
  private readonly reapRes: Int32Array;

  private readonly addrCache = new WeakMap<Buffer, number>();
  /** Operations that got EAGAIN/EINTR, resubmitted on the next loop turn. */
  private retrying: number[] = [];
  private scheduled = false;
  private refd = false;
  private closing = false;
  private closed = false;
  private closeWaiters: (() => void)[] = [];

  private constructor(h: NativeUringHandle, k: UringConstants) {
    this.h = h;
    this.k = k;
    this.sqEntries = h.sqEntries;
    this.boundedWorkers = Math.min(h.sqEntries, 4 * availableParallelism());
    this.cqEntries = h.cqEntries;
    this.sqes = new Uint32Array(h.sqes);
    this.sq = new Uint32Array(h.sqRing);
    this.cq = h.cqRing === h.sqRing ? this.sq : new Uint32Array(h.cqRing);
    this.cqI32 = new Int32Array(h.cqRing);
    this.sqHeadIx = h.sqOff.head >>> 2;
    this.sqTailIx = h.sqOff.tail >>> 2;
    this.sqFlagsIx = h.sqOff.flags >>> 2;
    this.defersCompletions = (h.flags & k.SETUP_DEFER_TASKRUN) !== 0;
    this.submitFlags = this.defersCompletions ? k.ENTER_GETEVENTS : 0;
    this.sqMask = this.sq[h.sqOff.ringMask >>> 2]!;
    this.cqHeadIx = h.cqOff.head >>> 2;
    this.cqTailIx = h.cqOff.tail >>> 2;
    this.cqMask = this.cq[h.cqOff.ringMask >>> 2]!;
    this.cqesIx = h.cqOff.cqes >>> 2;
    this.sqTail = Atomics.load(this.sq, this.sqTailIx);
    this.sqHead = Atomics.load(this.sq, this.sqHeadIx);
    this.cqHead = Atomics.load(this.cq, this.cqHeadIx);
    this.reapSlot = new Int32Array(this.cqEntries);
    this.reapRes = new Int32Array(this.cqEntries);
    this.grow(this.cqEntries);
    // Idle rings do not keep the process alive; ref'd while operations are pending.
    h.unref();
    h.startPoll(this.onWakeup);
  }

  /** Sets up a ring. Throws (with code/errno) when io_uring is unavailable. */
  static open(opts: IoRingOptions = {}): IoRing {
    const native = loadNative();
    const k = native.uringConstants;
    const entries = opts.entries ?? 256;
    const cqEntries = Math.max(opts.cqEntries ?? 2 * entries, entries);
    // Newest flags first; older kernels refuse unknown flags with EINVAL.
    const single = k.SETUP_SUBMIT_ALL | k.SETUP_SINGLE_ISSUER;
    const candidates = [single, k.SETUP_SUBMIT_ALL, 0];
    if (opts.deferCompletions !== false) {
      candidates.unshift(single | k.SETUP_DEFER_TASKRUN | k.SETUP_TASKRUN_FLAG);
    }
    let lastErr: unknown;
    for (const flags of candidates) {
      try {
        const ring = new IoRing(native.uringSetup(entries, flags, cqEntries), k);
        if (opts.maxWorkers) ring.h.setMaxWorkers(opts.maxWorkers, 0);
        const limits = ring.h.setMaxWorkers(0, 0); // reads the limits in effect
        if (Array.isArray(limits) && limits[0]! > 0) ring.boundedWorkers = limits[0]!;
        return ring;
      } catch (err) {
        lastErr = err;
        if ((err as NodeJS.ErrnoException).code !== "EINVAL") break;
      }
    }
    throw lastErr;
  }

  /** Operations accepted and not yet completed. */
  get pending(): number {
    return this.inKernel + this.pendCount + this.retrying.length;
  }

  get isClosed(): boolean {
    return this.closing;
  }

  /** Reads exactly `len` bytes at `pos` into `buf`; a short read is an EIO error. */
  read(fd: number, buf: Buffer, len: number, pos: number, cb: IoCallback, owner?: IoOwner): void {
    this.start(K_READ, fd, buf, len, pos, cb, owner ?? null, 0);
  }

  /**
   * Writes exactly `len` bytes of `buf` at `pos`, continuing after short
   * writes. `rwFlags`: pwritev2(2) flags (RWF_DSYNC), kept for the continuations.
   */
  write(
    fd: number,
    buf: Buffer,
    len: number,
    pos: number,
    cb: IoCallback,
    owner?: IoOwner,
    rwFlags = 0,
  ): void {
    this.start(K_WRITE, fd, buf, len, pos, cb, owner ?? null, rwFlags);
  }

  /** fdatasync(fd) (IORING_FSYNC_DATASYNC). */
  fdatasync(fd: number, cb: IoCallback, owner?: IoOwner): void {
    this.start(K_FSYNC, fd, null, 0, 0, cb, owner ?? null, 0);
  }

  /**
   * Stops taking operations (new ones fail with EBADF), lets those already
   * accepted complete, then closes the ring.
   */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closing = true;
    const done = new Promise<void>((resolve) => this.closeWaiters.push(resolve));
    this.maybeFinishClose();
    return done;
  }

  // --- submission ---------------------------------------------------------

  private start(
    kind: number,
    fd: number,
    buf: Buffer | null,
    len: number,
    pos: number,
    cb: IoCallback,
    owner: IoOwner | null,
    rwFlags: number,
  ): void {
    if (buf !== null && !(len >= 0 && len <= buf.length && len === len >>> 0))
      throw new RangeError(`len ${len} must be an integer in 0..${buf.length}`);
    if (!(pos >= 0 && Number.isSafeInteger(pos)))
      throw new RangeError(`pos ${pos} must be a non-negative integer`);
    if (this.closing) {
      process.nextTick(cb, closedError(SYSCALL[kind]!, owner));
      return;
    }
    if (owner !== null) owner.pending++;
    if (this.freeTop === 0) this.grow(this.cap * 2);
    const slot = this.freeList[--this.freeTop]!;
    this.kind[slot] = kind;
    this.fds[slot] = fd;
    this.lens[slot] = len;
    this.rwFlags[slot] = rwFlags;
    this.dones[slot] = 0;
    this.poss[slot] = pos;
    this.cbs[slot] = cb;
    this.owners[slot] = owner;
    if (buf !== null) {
      this.bufs[slot] = buf;
      let addr = this.addrCache.get(buf);
      if (addr === undefined) {
        addr = Number(loadNative().addressOf(buf));
        this.addrCache.set(buf, addr);
      }
      this.addrs[slot] = addr;
    } else {
      this.addrs[slot] = 0;
    }
    this.enqueue(slot);
  }

  /** Into the SQ if there is room (and nothing is waiting ahead of it), else the overflow queue. */
  private enqueue(slot: number): void {
    if (
      this.pendCount === 0 &&
      this.inKernel < this.cqEntries &&
      (this.sqTail - this.sqHead) >>> 0 < this.sqEntries
    ) {
      this.writeSqe(slot);
    } else {
      if (this.pendCount === this.pend.length) {
        const bigger = new Int32Array(this.pend.length * 2);
        for (let i = 0; i < this.pendCount; i++)
          bigger[i] = this.pend[(this.pendHead + i) % this.pend.length]!;
        this.pend = bigger;
        this.pendHead = 0;
      }
      this.pend[(this.pendHead + this.pendCount) % this.pend.length] = slot;
      this.pendCount++;
    }
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.pump);
    }
  }

  private writeSqe(slot: number): void {
    const s = this.sqes;
    const i = (this.sqTail & this.sqMask) << 4;
    const kind = this.kind[slot]!;
    const k = this.k;
    const done = this.dones[slot]!;
    const pos = this.poss[slot]! + done;
    const addr = this.addrs[slot]! + done;
    const posLo = pos >>> 0;
    const addrLo = addr >>> 0;
    const owner = this.owners[slot];
    const flags = owner?.forceAsync === true ? IOSQE_ASYNC : 0;
    // opcode, flags, ioprio 0
    s[i] =
      (kind === K_READ ? k.OP_READ : kind === K_WRITE ? k.OP_WRITE : k.OP_FSYNC) | (flags << 8);
    s[i + 1] = this.fds[slot]!;
    s[i + 2] = posLo;
    s[i + 3] = (pos - posLo) / TWO32;
    s[i + 4] = addrLo;
    s[i + 5] = (addr - addrLo) / TWO32;
    s[i + 6] = this.lens[slot]! - done;
    s[i + 7] = kind === K_FSYNC ? k.FSYNC_DATASYNC : this.rwFlags[slot]!; // fsync_flags / rw_flags
    s[i + 8] = slot; // user_data
    s[i + 9] = 0;
    s[i + 10] = 0; // buf_index, personality
    s[i + 11] = 0; // splice_fd_in / file_index
    s[i + 12] = 0; // addr3
    s[i + 13] = 0;
    s[i + 14] = 0;
    s[i + 15] = 0;
    this.sqTail = (this.sqTail + 1) >>> 0;
    this.inKernel++;
  }

  /** Moves waiting operations into the SQ while there is room. */
  private fillFromPending(): void {
    const head = this.sqHead;
    while (
      this.pendCount > 0 &&
      this.inKernel < this.cqEntries &&
      (this.sqTail - head) >>> 0 < this.sqEntries
    ) {
      const slot = this.pend[this.pendHead]!;
      this.pendHead = (this.pendHead + 1) % this.pend.length;
      this.pendCount--;
      this.writeSqe(slot);
    }
  }

  /** Submits what is queued (one io_uring_enter), reaps, repeats while the overflow queue drains. */
  private readonly pump = (): void => {
    this.scheduled = false;
    if (this.closed) return;
    for (;;) {
      if (this.pendCount > 0) this.fillFromPending();
      const toSubmit = (this.sqTail - this.sqHead) >>> 0;
      let r = 0;
      if (toSubmit > 0) {
        Atomics.store(this.sq, this.sqTailIx, this.sqTail);
        r = this.h.enter(toSubmit, 0, this.submitFlags);
        this.sqHead = Atomics.load(this.sq, this.sqHeadIx);
        if (r < 0 && r !== -EINTR && r !== -EAGAIN && r !== -EBUSY) {
          this.failQueued(r);
          return;
        }
      } else if (
        this.defersCompletions &&
        (Atomics.load(this.sq, this.sqFlagsIx) & this.k.SQ_TASKRUN) !== 0
      ) {
        this.h.enter(0, 0, this.submitFlags);
      }
      const n = this.reap();
      if (this.closed) return; // the last completion finished a close()
      const unsubmitted = (this.sqTail - this.sqHead) >>> 0;
      if (unsubmitted === 0 && (this.pendCount === 0 || this.inKernel >= this.cqEntries)) break;
      if (r <= 0 && n === 0) {
        // The kernel took nothing and nothing completed (out of resources): retry later.
        this.retryLater();
        break;
      }
    }
    this.updateRef();
  };

  private retryLater(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.pump);
  }

  /** The kernel refused the SQ outright (e.g. the ring fd is gone): fail what is queued. */
  private failQueued(negErrno: number): void {
    const head = this.sqHead;
    const stuck: number[] = [];
    for (let t = head; t !== this.sqTail; t = (t + 1) >>> 0) {
      stuck.push(this.sqes[((t & this.sqMask) << 4) + 8]!);
    }
    // Take the SQEs back: rewind our tail to the kernel's head.
    this.sqTail = head;
    Atomics.store(this.sq, this.sqTailIx, head);
    this.inKernel -= stuck.length;
    while (this.pendCount > 0) {
      stuck.push(this.pend[this.pendHead]!);
      this.pendHead = (this.pendHead + 1) % this.pend.length;
      this.pendCount--;
    }
    for (const slot of stuck)
      this.finish(slot, errnoError(negErrno, "io_uring_enter", this.owners[slot] ?? null));
    this.updateRef();
    this.maybeFinishClose();
  }

  // --- completion ---------------------------------------------------------

  private readonly onWakeup = (): void => {
    if (this.closed) return;
    // A deferring ring posts first, and again while runDeferred says so
    // (native/uring.cc: the kernel posts at most 20 per call, and a signal
    // its drain took must not be lost).
    let more: boolean;
    do {
      more = this.defersCompletions && this.h.runDeferred();
      this.reap();
      if (this.closed) return;
    } while (more);
    if (this.pendCount > 0) this.pump();
    else this.updateRef();
  };

  /** Copies out every posted CQE, releases the CQ, then completes them. Returns the count. */
  private reap(): number {
    let head = this.cqHead;
    const tail = Atomics.load(this.cq, this.cqTailIx);
    if (head === tail) return 0;
    let n = 0;
    const cq = this.cq;
    while (head !== tail) {
      const i = this.cqesIx + ((head & this.cqMask) << 2);
      this.reapSlot[n] = cq[i]!; // user_data, low word
      this.reapRes[n] = this.cqI32[i + 2]!;
      n++;
      head = (head + 1) >>> 0;
    }
    this.cqHead = head;
    Atomics.store(cq, this.cqHeadIx, head);
    this.inKernel -= n;
    for (let j = 0; j < n; j++) this.complete(this.reapSlot[j]!, this.reapRes[j]!);
    if (this.closing) this.maybeFinishClose();
    return n;
  }

  private complete(slot: number, res: number): void {
    const kind = this.kind[slot]!;
    if (res < 0) {
      if (res === -EINTR || res === -EAGAIN) {
        // Only for O_NONBLOCK files or an interrupted worker: try again on the
        // next loop turn (never from a microtask: that could starve the loop).
        this.retrying.push(slot);
        if (this.retrying.length === 1) setImmediate(this.retryNow);
        return;
      }
      this.finish(slot, errnoError(res, SYSCALL[kind]!, this.owners[slot] ?? null));
      return;
    }
    if (kind === K_FSYNC) {
      this.finish(slot, null);
      return;
    }
    const len = this.lens[slot]!;
    const done = this.dones[slot]! + res;
    if (done === len) {
      this.finish(slot, null);
    } else if (kind === K_WRITE && res > 0) {
      this.dones[slot] = done;
      this.enqueue(slot);
    } else {
      const site = this.owners[slot] ?? null;
      this.finish(slot, shortIo(SYSCALL[kind]!, site, this.poss[slot]!, done, len));
    }
  }

  private readonly retryNow = (): void => {
    const slots = this.retrying;
    this.retrying = [];
    for (const slot of slots) this.enqueue(slot);
  };

  private finish(slot: number, err: NodeJS.ErrnoException | null): void {
    const cb = this.cbs[slot]!;
    const owner = this.owners[slot]!;
    this.cbs[slot] = null;
    this.bufs[slot] = null;
    this.owners[slot] = null;
    this.freeList[this.freeTop++] = slot;
    if (owner !== null) {
      owner.pending--;
      try {
        if (owner.pending === 0 && owner.onIdle !== null) owner.onIdle();
      } catch (e) {
        rethrowLater(e);
      }
    }
    try {
      cb(err);
    } catch (e) {
      rethrowLater(e);
    }
  }

  /** The poll handle keeps the process alive exactly while operations are pending. */
  private updateRef(): void {
    const busy = this.pending > 0;
    if (busy !== this.refd && !this.closed) {
      this.refd = busy;
      if (busy) this.h.ref();
      else this.h.unref();
    }
  }

  private maybeFinishClose(): void {
    if (!this.closing || this.closed || this.pending > 0) return;
    this.closed = true;
    this.h.close();
    const waiters = this.closeWaiters;
    this.closeWaiters = [];
    for (const w of waiters) w();
  }

  private grow(cap: number): void {
    const old = this.cap;
    const copy = <T extends Uint8Array | Int32Array | Uint32Array | Float64Array>(
      a: T,
      make: (n: number) => T,
    ): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.kind = copy(this.kind, (n) => new Uint8Array(n));
    this.fds = copy(this.fds, (n) => new Int32Array(n));
    this.lens = copy(this.lens, (n) => new Uint32Array(n));
    this.rwFlags = copy(this.rwFlags, (n) => new Uint32Array(n));
    this.dones = copy(this.dones, (n) => new Uint32Array(n));
    this.poss = copy(this.poss, (n) => new Float64Array(n));
    this.addrs = copy(this.addrs, (n) => new Float64Array(n));
    const free = new Int32Array(cap);
    free.set(this.freeList.subarray(0, this.freeTop));
    // Push the new slots so the lowest index is handed out first.
    for (let s = cap - 1; s >= old; s--) free[this.freeTop++] = s;
    this.freeList = free;
    for (let s = old; s < cap; s++) {
      this.cbs.push(null);
      this.bufs.push(null);
      this.owners.push(null);
    }
    this.cap = cap;
  }
}

/** io-wq workers for regular file and block device I/O the shared ring asks for. */
const URING_WORKERS = 64;

// One ring for every backend of this thread (each worker thread has its own:
// the ring's flags tie it to the thread that set it up), closed when the last
// one closes.
let sharedRing: IoRing | null = null;
let ringUsers = 0;

/** The process's shared ring, set up by its first user. Throws when it cannot be set up. */
export function acquireSharedRing(): IoRing {
  sharedRing ??= IoRing.open({ entries: 256, maxWorkers: URING_WORKERS });
  ringUsers++;
  return sharedRing;
}

/** One user lets go of the shared ring; the last one closes it. */
export function releaseSharedRing(ring: IoRing): Promise<void> {
  if (ring !== sharedRing || --ringUsers > 0) return Promise.resolve();
  sharedRing = null;
  return ring.close();
}
