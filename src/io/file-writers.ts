/**
 * The writable backends of each file (or block device) open in this thread,
 * and the O_DIRECT writes they have in flight. Linux cannot keep a page
 * coherent that a buffered write dirties while a direct write to it is in
 * flight: the direct write's invalidation of the page fails, and writeback
 * later puts the page's old content over the direct write.
 *
 * - Writes to uncached pages (caps.uncachedWritesDirect): within one backend
 *   its count of each way in flight per 2 MiB keeps the two apart
 *   (src/io/engines/uring.ts); between backends of one file (two exports of
 *   it, or an export and the one a reload is replacing) this does: such a
 *   write goes direct only in a file's sole writer, and the others' writes
 *   wait while one is in flight.
 * - A direct-io backend (caps.directIo) sends its writes O_DIRECT only while
 *   every writer of the file would (alwaysDirect), and through the page cache
 *   otherwise; the two ways are never in flight at once among such backends
 *   (a reload that turns direct-io on or off, windows of one file with
 *   different settings).
 *
 * Worker threads keep no such account (SharedBackend.fileId is absent there).
 */

interface FileEntry {
  writers: Set<FileWriter>;
  /** The writer whose direct writes are in flight, and how many. */
  owner: FileWriter | null;
  direct: number;
  waiting: (() => void)[];
  /** Writes of direct-io backends in flight through the page cache, and those waiting for them. */
  buffered: number;
  waitingBuffered: (() => void)[];
}

/** Runs each of `waiting`; one backend's failure is not the others': theirs still go. */
function release(waiting: (() => void)[]): void {
  for (const go of waiting) {
    try {
      go();
    } catch (err) {
      queueMicrotask(() => {
        throw err;
      });
    }
  }
}

const files = new Map<string, FileEntry>();

export class FileWriter {
  private readonly entry: FileEntry;

  /** `file`: the file's identity (st_dev:st_ino, or a block device's number), the same for every path to it. */
  constructor(private readonly file: string) {
    let entry = files.get(file);
    if (entry === undefined) {
      entry = {
        writers: new Set(),
        owner: null,
        direct: 0,
        waiting: [],
        buffered: 0,
        waitingBuffered: [],
      };
      files.set(file, entry);
    }
    entry.writers.add(this);
    this.entry = entry;
  }

  /** A direct-io backend whose every write can go O_DIRECT (512-byte alignment). */
  alwaysDirect = false;

  /** No other backend of this thread writes the file: a write to uncached pages may go direct. */
  get sole(): boolean {
    return this.entry.writers.size === 1;
  }

  directStarted(): void {
    this.entry.owner = this;
    this.entry.direct++;
  }

  directDone(): void {
    const e = this.entry;
    if (--e.direct > 0) return;
    e.owner = null;
    const waiting = e.waiting;
    e.waiting = [];
    release(waiting);
  }

  /** Every writer of the file is alwaysDirect: a direct-io backend's write may go direct. */
  get allAlwaysDirect(): boolean {
    for (const w of this.entry.writers) if (!w.alwaysDirect) return false;
    return true;
  }

  /** Direct writes in flight, this backend's or another's. */
  get anyDirect(): boolean {
    return this.entry.direct > 0;
  }

  /** Writes of direct-io backends in flight through the page cache. */
  get anyBuffered(): boolean {
    return this.entry.buffered > 0;
  }

  bufferedStarted(): void {
    this.entry.buffered++;
  }

  bufferedDone(): void {
    const e = this.entry;
    if (--e.buffered > 0) return;
    const waiting = e.waitingBuffered;
    e.waitingBuffered = [];
    release(waiting);
  }

  /** Runs `go` once the direct-io backends' writes through the page cache are done. */
  waitBuffered(go: () => void): void {
    this.entry.waitingBuffered.push(go);
  }

  /** Another backend of the file has direct writes in flight: this one's writes wait (wait()). */
  get othersDirect(): boolean {
    return this.entry.direct > 0 && this.entry.owner !== this;
  }

  /** Runs `go` once the direct writes in flight are done. */
  wait(go: () => void): void {
    this.entry.waiting.push(go);
  }

  /** The backend has closed (nothing of it in flight). */
  leave(): void {
    this.entry.writers.delete(this);
    if (this.entry.writers.size === 0) files.delete(this.file);
  }
}
