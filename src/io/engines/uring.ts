/** io_uring: SQEs written in place on the process's shared ring, one io_uring_enter per event-loop batch. */
import type { IoCallback, SharedBackend } from "../backend.js";
import { cachedPages, writtenRange } from "../blockdev.js";
import { FileBackend, poolShare } from "../file-backend.js";
import { type IoRing, releaseSharedRing, rethrowLater } from "../uring.js";

/** pwritev2(2) flag: this write is durable (as with O_DSYNC) before it completes. */
const RWF_DSYNC = 0x2;
/** The unit a page-cache read brings in; a larger kernel page holds whole ones. */
const PAGE = 4096;
/**
 * The largest folio the page cache makes on x86-64 (PMD size): a buffered
 * write anywhere in one dirties the whole of it for the kernel. The file is
 * cut into regions of this size, aligned, to keep direct and buffered writes
 * apart (caps.uncachedWritesDirect), and held writes in order.
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
  /** The first and the last region it touches (a request is far smaller than a region: no third). */
  first: number;
  last: number;
  /** Its page reads still in flight (one more while it waits for the end of a lone turn). */
  reads: number;
  /** Its way chosen (direct or buffered), its page reads issued if it needs them. */
  started: boolean;
  /** False once it was found to stay buffered whatever else is in flight (see goesDirect). */
  mayGoDirect: boolean;
}

/** Writes in flight in one region (caps.uncachedWritesDirect). */
interface RegionWrites {
  direct: Set<HeldWrite>;
  /** Buffered ones, from their page reads on. */
  buffered: number;
}

/** Pages of a range in the page cache (cachedPages), and whether a range is all written extents (writtenRange). */
export interface FileProbes {
  cached(fd: number, offset: number, length: number): number;
  written(fd: number, offset: number, length: number): number;
}

const kernelProbes: FileProbes = { cached: cachedPages, written: writtenRange };

export class UringBackend extends FileBackend {
  /**
   * Writes not yet given to the ring, in arrival order: those waiting for
   * their page reads, and those that may not start yet. A write waits behind
   * every earlier one held in its regions, so writes to the same bytes reach
   * the file in the order they came, as without the reads; writes elsewhere
   * pass.
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
  private readonly spareRegions: RegionWrites[] = [];
  /** Regions found all in written extents: a region stays so (aoed never punches holes). */
  private readonly writtenRegions: RegionKnowledge;
  /**
   * Regions found with no page cached, and read nothing from since (nor from
   * the region before, whose readahead may reach in), nor written buffered:
   * one system call per region, not per write, where only direct writes go.
   * Also regions found almost all cached, or where cachestat cannot say
   * ("none"), whose writes go buffered without asking.
   */
  private readonly uncachedRegions: RegionKnowledge;
  /** writeOutHeld is running: a call from inside it (a write that failed at once) asks for another pass. */
  private scanning = false;
  private rescan = false;
  /** scanHeld's sets of regions, reused. */
  private readonly regionsHeld = new Set<number>();
  private readonly regionsWaiting = new Set<number>();

  constructor(
    on: SharedBackend,
    /** The shared ring (acquireSharedRing), released when this backend closes. */
    private readonly ring: IoRing,
    private readonly probes: FileProbes = kernelProbes,
  ) {
    super(on);
    this.issueLimit = poolShare(ring.boundedWorkers);
    const direct = this.caps.uncachedWritesDirect === true;
    this.regions = direct ? new Map() : null;
    const first = regionOf(this.offset);
    const regions = direct ? lastRegionOf(this.offset, this.size) - first + 1 : 0;
    this.writtenRegions = new RegionKnowledge(first, regions);
    this.uncachedRegions = new RegionKnowledge(first, regions);
  }

  read(buf: Buffer, len: number, pos: number, cb: IoCallback): void {
    const at = pos + this.offset;
    if (this.regions !== null) {
      const last = lastRegionOf(at, len) + 1;
      for (let r = regionOf(at); r <= last; r++) this.uncachedRegions.doubt(r);
    }
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
   * - caps.uncachedWritesDirect (durable exports): such a write goes through
   *   the O_DIRECT descriptor where it can (goesDirect), which writes only its
   *   own sectors: no read, and no write-back of the rest of the page. The
   *   group commit's sync covers it as it does a buffered one.
   * - caps.pagesReadFirst: otherwise the page is read first, by an ordinary
   *   read that runs beside the others, and the write follows once it is in.
   *   The read's data is not used, and its error is not the write's (the
   *   write reports its own). Not for a lone write (nothing else in flight,
   *   and no other write by the end of this event-loop turn), which has
   *   nothing to wait beside and would only gain a round trip.
   */
  protected rawWrite(
    fd: number,
    buf: Buffer,
    len: number,
    pos: number,
    dsync: boolean,
    cb: IoCallback,
  ): void {
    const at = pos + this.offset;
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
    const w: HeldWrite = {
      fd,
      buf,
      len,
      at,
      flags,
      cb,
      first: regionOf(at),
      last: lastRegionOf(at, len),
      reads: 0,
      started: false,
      mayGoDirect: true,
    };
    if (this.held.length === 0) {
      // Nothing held ahead of it: straight to the ring if it may.
      if (this.start(w) && w.reads === 0) {
        try {
          this.writeNow(w);
        } catch (e) {
          // Through its callback, which undoes what starting it counted.
          this.writing--;
          w.cb(e as NodeJS.ErrnoException);
        }
        return;
      }
      this.held.push(w);
      // Counted as in progress until given to the ring, so close() waits for it too.
      this.pending++;
      return;
    }
    this.held.push(w);
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
    const held = this.regionsHeld;
    /** Regions with an earlier write not yet started: no later write in them starts before it. */
    const waiting = this.regionsWaiting;
    held.clear();
    waiting.clear();
    /** Writes the ring refused (it throws only on an argument or memory it cannot have), told once the scan is done: a callback must not cut it short. */
    let failed: [HeldWrite, NodeJS.ErrnoException][] | null = null;
    for (let i = 0; i < this.held.length; ) {
      const w = this.held[i]!;
      if (!w.started && (waiting.has(w.first) || waiting.has(w.last) || !this.start(w))) {
        waiting.add(w.first);
        waiting.add(w.last);
      }
      if (!w.started || w.reads > 0 || held.has(w.first) || held.has(w.last)) {
        held.add(w.first);
        held.add(w.last);
        i++;
        continue;
      }
      this.held.splice(i, 1);
      try {
        this.writeNow(w);
      } catch (e) {
        // Not the caller's stack any more: the write gets the error.
        this.writing--;
        failed ??= [];
        failed.push([w, e as NodeJS.ErrnoException]);
      }
      // The ring counts the write now (unless it is closing and fails it).
      if (--this.pending === 0) this.onIdle?.();
    }
    if (failed === null) return;
    for (const [w, err] of failed) {
      try {
        w.cb(err);
      } catch (e) {
        rethrowLater(e);
      }
    }
  }

  /**
   * Chooses how `w` goes, and starts its page reads if it needs them; false
   * if it must wait: a buffered write while direct ones are in flight in its
   * regions, or any write while a direct one to the same bytes is (two
   * direct writes in flight may reach the disk in either order).
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
      // Its pages come in, and its page reads' readahead may reach the next region.
      for (let r = w.first; r <= w.last + 1; r++) this.uncachedRegions.doubt(r);
      const cb = w.cb;
      w.cb = (err) => {
        // Nothing waits for a buffered write: where one is in flight, others go buffered too.
        this.countBuffered(w, -1);
        cb(err);
      };
    }
    w.started = true;
    if (w.fd !== this.fd || !partOfPage(w)) return true;
    const held = this.held.length;
    if (this.writing === 0 && (held === 0 || (held === 1 && this.held[0] === w))) {
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
   * Through the O_DIRECT descriptor: a write that covers part of a page,
   * meets O_DIRECT's alignment, none of whose pages is cached (a cached one
   * was read or written lately and may be read again; a buffered write to it
   * needs no read), and that overwrites written extents (on ext4 a direct
   * write into a hole or an unwritten extent that covers part of a block
   * zeroes the rest under the file's exclusive lock, waiting for every direct
   * write in flight). Only in the file's sole writer here (file-writers.ts),
   * and not where buffered writes are in flight in its regions.
   */
  private goesDirect(w: HeldWrite): boolean {
    if (!w.mayGoDirect || this.writer?.sole !== true || this.bufferedInFlight(w)) return false;
    w.mayGoDirect =
      w.fd === this.fd &&
      partOfPage(w) &&
      this.alignedForDirect(w.len, w.at) &&
      this.ofRegions(w, this.writtenRegions, this.writtenRegion, null) &&
      this.ofRegions(w, this.uncachedRegions, this.uncachedRegion, this.uncached);
    return w.mayGoDirect;
  }

  private readonly uncached = (at: number, len: number) =>
    this.probes.cached(this.fd, at, len) === 0;
  /**
   * "none" where at least 7 in 8 of the region's pages are cached (a write
   * there nearly always finds its page cached, so asking costs a system call
   * each for nothing), or where the kernel cannot say.
   */
  private readonly uncachedRegion = (at: number, len: number): RegionAnswer => {
    const cached = this.probes.cached(this.fd, at, len);
    if (cached === 0) return "all";
    return cached < 0 || cached * 8 >= Math.ceil(len / PAGE) * 7 ? "none" : "some";
  };
  private readonly writtenRegion = (at: number, len: number): RegionAnswer =>
    this.probes.written(this.fd, at, len) === 1 ? "all" : "some";

  /**
   * Whether a property holds of the regions `w` touches, as far as the
   * window reaches into them (RegionKnowledge), or else, where a region's
   * answer is "some", of `w`'s own bytes (`ownBytes`). Written extents have
   * no `ownBytes`: on a sparse image asking FIEMAP about each write cost more
   * than going direct gained (0.84x the build before at q 32,
   * docs/performance.md), so a region with a hole stays buffered until it is
   * asked about again.
   */
  private ofRegions(
    w: HeldWrite,
    known: RegionKnowledge,
    region: (at: number, len: number) => RegionAnswer,
    ownBytes: ((at: number, len: number) => boolean) | null,
  ): boolean {
    for (let r = w.first; r <= w.last; r++) {
      const from = Math.max(r * FOLIO_MAX, this.offset);
      const to = Math.min((r + 1) * FOLIO_MAX, this.offset + this.size);
      const answer = known.answer(r, region, from, to - from);
      if (answer !== "all") return answer === "some" && ownBytes !== null && ownBytes(w.at, w.len);
    }
    return true;
  }

  private startDirect(w: HeldWrite): void {
    w.started = true;
    w.fd = this.directFd;
    const writer = this.writer!;
    writer.directStarted();
    for (let r = w.first; r <= w.last; r++) this.region(r).direct.add(w);
    const cb = w.cb;
    w.cb = (err) => {
      writer.directDone();
      for (let r = w.first; r <= w.last; r++) {
        const c = this.regions!.get(r)!;
        c.direct.delete(w);
        this.dropIfEmpty(r, c);
      }
      try {
        // Writes held for it, or for its bytes, may go.
        if (this.held.length > 0) this.writeOutHeld();
      } finally {
        cb(err);
      }
    };
  }

  /** Direct writes in flight in the regions `w` touches: none, some, or one to the same bytes. */
  private directInFlight(w: HeldWrite): "none" | "beside" | "overlapping" {
    let found: "none" | "beside" = "none";
    for (let r = w.first; r <= w.last; r++) {
      const c = this.regions!.get(r);
      if (c === undefined) continue;
      for (const d of c.direct) {
        if (d.at < w.at + w.len && w.at < d.at + d.len) return "overlapping";
        found = "beside";
      }
    }
    return found;
  }

  private bufferedInFlight(w: HeldWrite): boolean {
    for (let r = w.first; r <= w.last; r++)
      if ((this.regions!.get(r)?.buffered ?? 0) > 0) return true;
    return false;
  }

  private countBuffered(w: HeldWrite, by: number): void {
    for (let r = w.first; r <= w.last; r++) {
      const c = this.region(r);
      c.buffered += by;
      this.dropIfEmpty(r, c);
    }
  }

  private region(r: number): RegionWrites {
    let c = this.regions!.get(r);
    if (c === undefined) {
      c = this.spareRegions.pop() ?? { direct: new Set(), buffered: 0 };
      this.regions!.set(r, c);
    }
    return c;
  }

  private dropIfEmpty(r: number, c: RegionWrites): void {
    if (c.direct.size > 0 || c.buffered > 0) return;
    this.regions!.delete(r);
    this.spareRegions.push(c);
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
    const b = this.scratch.pop() ?? Buffer.allocUnsafeSlow(PAGE);
    w.reads++;
    try {
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
    } catch {
      // Refused, as a failed read would be: the write goes without it, only slower.
      this.scratch.push(b);
      w.reads--;
    }
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

/**
 * What a probe found of a whole region: the property holds everywhere, in
 * part (each write's own bytes are asked about), or almost nowhere (they are
 * not: the answer would nearly always be no).
 */
type RegionAnswer = "all" | "some" | "none";

/** A region's state in RegionKnowledge: known to hold everywhere. */
const HOLDS = 255;
/**
 * Writes that get as far as asking about a region found not to hold
 * everywhere; the last of them asks the region again.
 */
const ASK_AGAIN_AFTER = 64;

/**
 * What is known of each region of an export's window about one property
 * (all written extents, no page cached), so that the kernel is asked once
 * per region rather than once per write: a byte each, HOLDS, 0 (never
 * asked), or the writes left before the region is asked again after it was
 * found not to hold everywhere; meanwhile each write's own bytes are asked
 * about, unless the region's answer was "none".
 */
class RegionKnowledge {
  private readonly state: Uint8Array;
  /** 1 where the region's last answer was "none". */
  private readonly none: Uint8Array;

  constructor(
    /** The window's first region. */
    private readonly first: number,
    regions: number,
  ) {
    this.state = new Uint8Array(regions);
    this.none = new Uint8Array(regions);
  }

  /** What holds of region `r`: `len` bytes at `at`, asked of `ask` when due. */
  answer(
    r: number,
    ask: (at: number, len: number) => RegionAnswer,
    at: number,
    len: number,
  ): RegionAnswer {
    const i = r - this.first;
    const state = this.state[i];
    if (state === undefined) return "some";
    if (state === HOLDS) return "all";
    if (state > 1) {
      this.state[i] = state - 1;
      return this.none[i] === 1 ? "none" : "some";
    }
    const answer = ask(at, len);
    this.state[i] = answer === "all" ? HOLDS : ASK_AGAIN_AFTER;
    this.none[i] = answer === "none" ? 1 : 0;
    return answer;
  }

  /**
   * Region `r` may no longer hold everywhere: once found to (HOLDS), or never
   * asked about, since a read in flight now would not show in an answer. A
   * region already in doubt keeps its count: where every write puts it in
   * doubt again (buffered writes, each read), a fresh count would never run
   * out, and its writes would ask about their own bytes for good. So a region
   * due to be asked may be asked with a read still in flight there; as
   * before at the count's second-last write, that costs speed only.
   */
  doubt(r: number): void {
    const i = r - this.first;
    const state = this.state[i];
    if (state === HOLDS || state === 0) this.state[i] = ASK_AGAIN_AFTER;
  }
}

function regionOf(at: number): number {
  return Math.floor(at / FOLIO_MAX);
}

/** The region of the last byte of `len` bytes at `at` (of `at` itself when `len` is 0). */
function lastRegionOf(at: number, len: number): number {
  return regionOf(at + Math.max(len, 1) - 1);
}

/** Whether `w` covers only part of its first or its last page. */
function partOfPage(w: HeldWrite): boolean {
  return w.at % PAGE !== 0 || (w.at + w.len) % PAGE !== 0;
}
