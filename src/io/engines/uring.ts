/** io_uring: SQEs written in place on the process's shared ring, one io_uring_enter per event-loop batch. */
import type { IoCallback, SharedBackend } from "../backend.js";
import { cachedPages } from "../blockdev.js";
import { FileBackend, poolShare } from "../file-backend.js";
import { type IoRing, releaseSharedRing } from "../uring.js";

/** pwritev2(2) flag: this write is durable (as with O_DSYNC) before it completes. */
const RWF_DSYNC = 0x2;
/** The unit a page-cache read brings in; a larger kernel page holds whole ones. */
const PAGE = 4096;
/**
 * The largest folio the page cache makes on x86-64 (PMD size): a buffered
 * write anywhere in one dirties the whole of it for the kernel. The file is
 * cut into regions of this size, aligned, to keep direct and buffered writes
 * apart (caps.uncachedWritesDirect).
 */
const FOLIO_MAX = 2 * 1024 * 1024;

/** A write not yet given to the ring. */
interface HeldWrite {
  fd: number;
  buf: Buffer;
  len: number;
  at: number;
  flags: number;
  cb: IoCallback;
  /** Its page reads still in flight (one more while it waits for the end of a lone turn). */
  reads: number;
  /** Its way chosen (direct or buffered), its page reads issued if it needs them. */
  started: boolean;
}

/** Writes in flight in one region (caps.uncachedWritesDirect). */
interface RegionWrites {
  direct: Set<HeldWrite>;
  /** Buffered ones, from their page reads on. */
  buffered: number;
}

export class UringBackend extends FileBackend {
  /**
   * Writes not yet given to the ring, in arrival order: those waiting for
   * their page reads, and those that may not start yet. A write waits behind
   * every earlier one held in its regions (all writes in one region when
   * caps.uncachedWritesDirect is off), so writes to the same bytes reach the
   * file in the order they came, as without the reads.
   */
  private readonly held: HeldWrite[] = [];
  /** 4 KiB buffers the page reads land in, reused. */
  private readonly scratch: Buffer[] = [];
  /** Writes given to the ring and not yet completed. */
  private writing = 0;
  /** A partial write that came with nothing else in flight: read first only if another comes this turn. */
  private maybeLone: HeldWrite | null = null;
  /**
   * With caps.uncachedWritesDirect: the writes started in each region, by
   * way, from their page reads until they complete. A buffered write to a
   * folio while a direct write to it is in flight leaves the direct write's
   * page stale in the cache (file-writers.ts), so in one region the two ways
   * never run at once.
   */
  private readonly regions: Map<number, RegionWrites> | null;
  /** writeOutHeld is running: a call from inside it (a write that failed at once) asks for another pass. */
  private scanning = false;
  private rescan = false;

  constructor(
    on: SharedBackend,
    /** The shared ring (acquireSharedRing), released when this backend closes. */
    private readonly ring: IoRing,
    /** Pages of a range in the page cache, -1 if unknown (blockdev.ts cachedPages). */
    private readonly cached: (fd: number, offset: number, length: number) => number = cachedPages,
  ) {
    super(on);
    this.issueLimit = poolShare(ring.boundedWorkers);
    this.regions = this.caps.uncachedWritesDirect === true ? new Map() : null;
  }

  read(buf: Buffer, len: number, pos: number, cb: IoCallback): void {
    const at = pos + this.offset;
    this.ring.read(this.fdForRead(len, at), buf, len, at, cb, this);
  }

  protected override canDsync(): boolean {
    return true;
  }

  /**
   * A buffered write that covers part of a page the page cache lacks makes
   * the filesystem read that page inside the write, under the file's lock,
   * so on ext4 such writes go to the disk one at a time. Two ways around it:
   *
   * - caps.uncachedWritesDirect (durable exports): a write none of whose
   *   pages is cached goes through the O_DIRECT descriptor, which writes only
   *   its own sectors: no read, and no write-back of the rest of the page.
   *   The group commit's sync covers it as it does a buffered one.
   * - caps.pagesReadFirst: otherwise the page is read first, by an ordinary
   *   read that runs beside the others, and the write follows once it is in.
   *   The read's data is not used, and its error is not the write's (the
   *   write reports its own). Not for a lone write (nothing else in flight,
   *   and no other write by the end of this event-loop turn), which has
   *   nothing to wait beside and would only gain a round trip.
   */
  protected rawWrite(buf: Buffer, len: number, pos: number, dsync: boolean, cb: IoCallback): void {
    const at = pos + this.offset;
    const fd = this.fdFor(len, at);
    const flags = dsync ? RWF_DSYNC : 0;
    if (this.caps.pagesReadFirst !== true) {
      // Nothing is ever held: no count of writes in flight to keep either.
      this.ring.write(fd, buf, len, at, cb, this, flags);
      return;
    }
    const lone = this.maybeLone;
    if (lone !== null) {
      // Not alone after all: its pages are read too.
      this.maybeLone = null;
      this.readPages(lone);
      lone.reads--; // the turn it waited for
    }
    this.held.push({ fd, buf, len, at, flags, cb, reads: 0, started: false });
    // Counted as in progress until given to the ring, so close() waits for it too.
    this.pending++;
    this.writeOutHeld();
  }

  /**
   * Starts the held writes that may start, and gives the ring those that may
   * go: started, with their pages in, and no earlier write held in their
   * regions. A write starts once every earlier one held in its regions has,
   * so its page reads run beside theirs.
   */
  private writeOutHeld(): void {
    if (this.scanning) {
      this.rescan = true;
      return;
    }
    this.scanning = true;
    try {
      do {
        this.rescan = false;
        this.scanHeld();
      } while (this.rescan);
    } finally {
      this.scanning = false;
    }
  }

  private scanHeld(): void {
    /** Regions with an earlier write still held: no later write in them goes to the ring before it. */
    const held = new Set<number>();
    /** Regions with an earlier write not yet started: no later write in them starts before it. */
    const waiting = new Set<number>();
    for (let i = 0; i < this.held.length; ) {
      const w = this.held[i]!;
      const [first, last] = regionsOf(w);
      if (!w.started && !waiting.has(first) && !waiting.has(last) && !this.start(w)) {
        waiting.add(first);
        waiting.add(last);
      }
      if (!w.started || w.reads > 0 || held.has(first) || held.has(last)) {
        held.add(first);
        held.add(last);
        i++;
        continue;
      }
      this.held.splice(i, 1);
      let thrown: NodeJS.ErrnoException | null = null;
      try {
        this.writeNow(w);
      } catch (e) {
        // Not the caller's stack any more: the write gets the error.
        this.writing--;
        thrown = e as NodeJS.ErrnoException;
      }
      // The ring counts the write now (unless it is closing and fails it).
      if (--this.pending === 0) this.onIdle?.();
      if (thrown !== null) w.cb(thrown);
    }
  }

  /**
   * Chooses how `w` goes, and starts its page reads if it needs them; false
   * if it must wait: a buffered write while direct ones are in flight in its
   * regions, or any write while a direct one to the same bytes is (two
   * direct writes in flight may reach the disk in either order). A write
   * that could go direct goes buffered instead where buffered ones are in
   * flight in its regions.
   */
  private start(w: HeldWrite): boolean {
    if (this.regions !== null) {
      const direct = this.directInFlight(w);
      if (direct === "overlapping") return false;
      if (this.goesDirect(w)) {
        this.startDirect(w);
        return true;
      }
      if (direct === "beside") return false;
      this.countBuffered(w, 1);
      const cb = w.cb;
      w.cb = (err) => {
        this.countBuffered(w, -1);
        cb(err);
      };
    }
    w.started = true;
    const partial = w.fd === this.fd && (w.at % PAGE !== 0 || (w.at + w.len) % PAGE !== 0);
    if (!partial) return true;
    if (this.writing === 0 && this.held.length === 1) {
      // Alone so far: held for the rest of this turn.
      w.reads++;
      this.maybeLone = w;
      // Only for this write: a later lone write has its own turn.
      queueMicrotask(() => {
        if (this.maybeLone === w) this.endOfTurn();
      });
      return true;
    }
    this.readPages(w);
    return true;
  }

  /**
   * Through the O_DIRECT descriptor: only in the file's sole writer here
   * (file-writers.ts), with no buffered write in flight in its regions, and
   * none of its pages cached (a cached one was read or written lately, and
   * may be read again).
   */
  private goesDirect(w: HeldWrite): boolean {
    return (
      this.writer?.sole === true &&
      w.fd === this.fd &&
      w.len > 0 &&
      this.alignedForDirect(w.len, w.at) &&
      !this.bufferedInFlight(w) &&
      this.cached(this.fd, w.at, w.len) === 0
    );
  }

  private startDirect(w: HeldWrite): void {
    w.started = true;
    w.fd = this.directFd;
    const writer = this.writer!;
    writer.directStarted();
    const regions = this.regions!;
    const [first, last] = regionsOf(w);
    for (let r = first; r <= last; r++) this.region(r).direct.add(w);
    const cb = w.cb;
    w.cb = (err) => {
      writer.directDone();
      for (let r = first; r <= last; r++) {
        const c = regions.get(r)!;
        c.direct.delete(w);
        if (c.direct.size === 0 && c.buffered === 0) regions.delete(r);
      }
      // Writes held for it, or for its bytes, may go.
      if (this.held.length > 0) this.writeOutHeld();
      cb(err);
    };
  }

  /** Direct writes in flight in the regions `w` touches: none, some, or one to the same bytes. */
  private directInFlight(w: HeldWrite): "none" | "beside" | "overlapping" {
    const [first, last] = regionsOf(w);
    let found: "none" | "beside" = "none";
    for (let r = first; r <= last; r++) {
      for (const d of this.regions!.get(r)?.direct ?? []) {
        if (d.at < w.at + w.len && w.at < d.at + d.len) return "overlapping";
        found = "beside";
      }
    }
    return found;
  }

  private bufferedInFlight(w: HeldWrite): boolean {
    const [first, last] = regionsOf(w);
    for (let r = first; r <= last; r++) if ((this.regions!.get(r)?.buffered ?? 0) > 0) return true;
    return false;
  }

  /** Adds `by` to the buffered writes in flight in each region `w` touches; none left lets held writes go. */
  private countBuffered(w: HeldWrite, by: number): void {
    const regions = this.regions!;
    let freed = false;
    const [first, last] = regionsOf(w);
    for (let r = first; r <= last; r++) {
      const c = this.region(r);
      c.buffered += by;
      if (c.buffered === 0) freed = true;
      if (c.direct.size === 0 && c.buffered === 0) regions.delete(r);
    }
    if (freed && this.held.length > 0) this.writeOutHeld();
  }

  private region(r: number): RegionWrites {
    let c = this.regions!.get(r);
    if (c === undefined) {
      c = { direct: new Set(), buffered: 0 };
      this.regions!.set(r, c);
    }
    return c;
  }

  /** No other write came this turn: the lone write goes out without a read. */
  private endOfTurn(): void {
    const w = this.maybeLone!;
    this.maybeLone = null;
    w.reads--;
    this.writeOutHeld();
  }

  /** Reads the first and the last page of `w` where it covers only part of them. */
  private readPages(w: HeldWrite): void {
    const end = w.at + w.len;
    const first = w.at - (w.at % PAGE);
    const last = end - 1 - ((end - 1) % PAGE);
    if (w.at % PAGE !== 0) this.readPage(w, first);
    if (end % PAGE !== 0 && (last !== first || w.at % PAGE === 0)) this.readPage(w, last);
  }

  /**
   * A page read is not counted in issueLimit: on ext4 a buffered read that
   * misses the cache waits for the page without holding an io-wq worker.
   */
  private readPage(w: HeldWrite, page: number): void {
    w.reads++;
    const b = this.scratch.pop() ?? Buffer.allocUnsafeSlow(PAGE);
    this.ring.read(
      w.fd,
      b,
      PAGE,
      page,
      () => {
        this.scratch.push(b);
        w.reads--;
        this.writeOutHeld();
      },
      this,
    );
  }

  private writeNow(w: HeldWrite): void {
    this.writing++;
    const cb = w.cb;
    this.ring.write(
      w.fd,
      w.buf,
      w.len,
      w.at,
      (err) => {
        this.writing--;
        cb(err);
      },
      this,
      w.flags,
    );
  }

  protected rawSync(cb: IoCallback): void {
    this.ring.fdatasync(this.syncFd, cb, this);
  }

  protected override release(): Promise<void> {
    return releaseSharedRing(this.ring);
  }
}

/** The first and the last region a write touches. */
function regionsOf(w: HeldWrite): [number, number] {
  return [Math.floor(w.at / FOLIO_MAX), Math.floor((w.at + Math.max(w.len, 1) - 1) / FOLIO_MAX)];
}
