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
 * write anywhere in one dirties the whole of it for the kernel.
 */
const FOLIO_MAX = 2 * 1024 * 1024;

/** A write held until the pages it partly covers are in the page cache. */
interface HeldWrite {
  fd: number;
  buf: Buffer;
  len: number;
  at: number;
  flags: number;
  cb: IoCallback;
  /** Its page reads still in flight. */
  reads: number;
}

export class UringBackend extends FileBackend {
  /**
   * Writes held for their page reads, in arrival order (see rawWrite); while
   * any is held, later writes queue behind it, so writes reach the file in the
   * order they came, as without the reads.
   */
  private readonly held: HeldWrite[] = [];
  /** 4 KiB buffers the page reads land in, reused. */
  private readonly scratch: Buffer[] = [];
  /** Writes given to the ring and not yet completed. */
  private writing = 0;
  /** A partial write that came with nothing else in flight: read first only if another comes this turn. */
  private maybeLone: HeldWrite | null = null;
  /**
   * While a lone write goes through the O_DIRECT descriptor: the file's bytes
   * of the largest folios that could hold its pages, and the writes to them
   * that came since, held until it is done.
   */
  private direct: { from: number; to: number; behind: HeldWrite[] } | null = null;

  constructor(
    on: SharedBackend,
    /** The shared ring (acquireSharedRing), released when this backend closes. */
    private readonly ring: IoRing,
    /** Pages of a range in the page cache, -1 if unknown (blockdev.ts cachedPages). */
    private readonly cached: (fd: number, offset: number, length: number) => number = cachedPages,
  ) {
    super(on);
    this.issueLimit = poolShare(ring.boundedWorkers);
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
   * so on ext4 such writes go to the disk one at a time. With
   * caps.pagesReadFirst the page is read first, by an ordinary read that
   * runs beside the others, and the write follows once it is in. The read's
   * data is not used, and its error is not the write's (the write reports
   * its own). Not for a lone write (nothing else in flight, and no other
   * write by the end of this event-loop turn), which has nothing to wait
   * beside and would only gain a round trip.
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
    const end = at + len;
    const partial = fd === this.fd && (at % PAGE !== 0 || end % PAGE !== 0);
    const d = this.direct;
    if (d !== null && at < d.to && end > d.from) {
      // A buffered write to a folio that holds the direct write's page, while
      // it is in flight, would leave the page's old content in the cache, to
      // be read and written back over it (file-writers.ts); a read brought in
      // for this write could make such a folio. Writes after it queue behind
      // it, in arrival order.
      const w: HeldWrite = { fd, buf, len, at, flags, cb, reads: 1 };
      this.held.push(w);
      this.pending++;
      d.behind.push(w);
      return;
    }
    const lone = this.maybeLone;
    if (lone !== null) {
      // Not alone after all: its pages are read too.
      this.maybeLone = null;
      this.readPages(lone);
      lone.reads--; // the turn it waited for
    }
    if (!partial && this.held.length === 0) {
      this.writeNow(fd, buf, len, at, cb, flags);
      return;
    }
    const w: HeldWrite = { fd, buf, len, at, flags, cb, reads: 0 };
    this.held.push(w);
    // Counted as in progress, so close() waits for it too.
    this.pending++;
    if (partial && this.writing === 0 && this.held.length === 1) {
      // Alone so far: held for the rest of this turn.
      w.reads++;
      this.maybeLone = w;
      // Only for this write: a later lone write has its own turn.
      queueMicrotask(() => {
        if (this.maybeLone === w) this.endOfTurn();
      });
      return;
    }
    if (partial) this.readPages(w);
    this.writeOutHeld();
  }

  /**
   * No other write came this turn: the lone write goes out without a read.
   * A durable one to pages the page cache lacks goes through the O_DIRECT
   * descriptor (caps.loneWritesDirect): only its own sectors are written,
   * where a buffered one would read the rest of the page, then write the
   * whole page back. Writes near it that come meanwhile wait for it
   * (rawWrite).
   */
  private endOfTurn(): void {
    const w = this.maybeLone!;
    this.maybeLone = null;
    w.reads--;
    if (this.goesDirect(w)) {
      w.fd = this.directFd;
      const cb = w.cb;
      const writer = this.writer!;
      writer.directStarted();
      const end = w.at + w.len;
      this.direct = {
        from: w.at - (w.at % FOLIO_MAX),
        to: end % FOLIO_MAX === 0 ? end : end + FOLIO_MAX - (end % FOLIO_MAX),
        behind: [],
      };
      w.cb = (err) => {
        writer.directDone();
        this.releaseBehindDirect();
        cb(err);
      };
    }
    this.writeOutHeld();
  }

  /** Only in the file's sole writer here (file-writers.ts). */
  private goesDirect(w: HeldWrite): boolean {
    return (
      this.caps.loneWritesDirect === true &&
      this.writer?.sole === true &&
      (w.flags & RWF_DSYNC) !== 0 &&
      w.len > 0 &&
      this.alignedForDirect(w.len, w.at) &&
      this.cached(this.fd, w.at, w.len) === 0
    );
  }

  /** The direct write is done: the writes behind it read their pages and go out, in order. */
  private releaseBehindDirect(): void {
    const { behind } = this.direct!;
    this.direct = null;
    for (const w of behind) {
      if (w.fd === this.fd) this.readPages(w); // none for whole pages
      w.reads--;
    }
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

  /** Writes out the held writes at the head whose pages are in. */
  private writeOutHeld(): void {
    while (this.held.length > 0 && this.held[0]!.reads === 0) {
      const w = this.held.shift()!;
      let thrown: NodeJS.ErrnoException | null = null;
      try {
        this.writeNow(w.fd, w.buf, w.len, w.at, w.cb, w.flags);
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

  private writeNow(
    fd: number,
    buf: Buffer,
    len: number,
    at: number,
    cb: IoCallback,
    flags: number,
  ): void {
    this.writing++;
    this.ring.write(
      fd,
      buf,
      len,
      at,
      (err) => {
        this.writing--;
        cb(err);
      },
      this,
      flags,
    );
  }

  protected rawSync(cb: IoCallback): void {
    this.ring.fdatasync(this.syncFd, cb, this);
  }

  protected override release(): Promise<void> {
    return releaseSharedRing(this.ring);
  }
}
