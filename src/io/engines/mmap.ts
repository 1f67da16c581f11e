/**
 * The file mapped into memory: a read or write is one copy between the mapping
 * and the request's buffer, no system call. For files in memory (tmpfs), where
 * pread/pwrite cost several times the copy itself. A file truncated under the
 * mapping fails the request with EIO instead of killing the process
 * (native/mapped.cc).
 *
 * The first touch of each page of a fresh mapping is expensive: a page fault,
 * and on a paravirtualised VM a shadow page-table fill besides (measured here:
 * 33-50 µs per page even after MADV_POPULATE_READ mapped it, against ~1.6 µs
 * more for a pread than a copy). So a page is read with pread until it has
 * been used COLD_USES times, and only then through the mapping: a page read
 * once (a random read over a large disk) never pays for a first touch, a hot
 * one pays once. Writes always go through the mapping, which keeps a write
 * past a truncated end an EIO instead of growing the file.
 */
import { constants as bufferConstants } from "node:buffer";
import fs from "node:fs";
import { loadNative } from "../../native/addon.js";
import type { IoCallback, SharedBackend } from "../backend.js";
import { errnoError, fromNodeError, shortIo } from "../errors.js";
import { FileBackend } from "../file-backend.js";
import { fdatasyncNow } from "./sync.js";

const EIO = -5;
const EBADF = -9;
/** The unit of the cold-page count: the page size on x86-64 and most arm64. */
const PAGE = 4096;
/** Uses of a page read with pread before it is copied from the mapping (see above). */
const COLD_USES = 16;

/** The file mapped up to the end of the export's window; null when there is nothing to map. */
export function mapWindow(on: SharedBackend): ArrayBuffer | null {
  const end = on.offset + on.size;
  // A mapping is one ArrayBuffer, at most 4 GiB (buffer.constants.MAX_LENGTH).
  if (on.caps.blockDevice || end === 0 || end > bufferConstants.MAX_LENGTH) return null;
  return loadNative().mapFile(on.fd, end, !on.readOnly);
}

export class MappedBackend extends FileBackend {
  private readonly native = loadNative();
  /** Per page of the mapping: the uses so far, up to COLD_USES (then it is warm). */
  private readonly uses: Uint8Array;

  constructor(
    on: SharedBackend,
    private readonly map: ArrayBuffer,
  ) {
    super(on);
    this.uses = new Uint8Array(Math.ceil(map.byteLength / PAGE));
  }

  /** Counts a use of each page of [at, at + len); whether all of them were warm already. */
  private warm(at: number, len: number): boolean {
    let all = true;
    const end = Math.ceil((at + len) / PAGE);
    for (let p = Math.floor(at / PAGE); p < end; p++) {
      const n = this.uses[p] ?? COLD_USES;
      if (n < COLD_USES) {
        this.uses[p] = n + 1;
        all = false;
      }
    }
    return all;
  }

  /** A read of cold pages: pread, named as such in errors. */
  private pread(buf: Buffer, len: number, at: number, cb: IoCallback): void {
    let err: NodeJS.ErrnoException | null = null;
    try {
      const n = fs.readSync(this.fd, buf, 0, len, at);
      if (n !== len) err = shortIo("pread", this, at, n, len);
    } catch (e) {
      err = fromNodeError(e as NodeJS.ErrnoException, "pread", this);
    }
    cb(err);
  }

  // The operations are copies, not system calls: named as such in errors.

  /** The copy's result (0, or EIO when the mapping faulted), as the callback's error. */
  private copied(err: number, op: string, at: number, cb: IoCallback): void {
    if (err === 0) cb(null);
    else
      cb(
        errnoError(
          EIO,
          op,
          this,
          `faulted at ${at}: the file is shorter than the export (truncated?)`,
        ),
      );
  }

  /** What a pread/pwrite would have failed with, before touching the mapping; null if none. */
  private refused(op: string, at: number, len: number): NodeJS.ErrnoException | null {
    const mapped = this.map.byteLength; // 0 once closed
    if (mapped === 0 || (op === "mapped write" && this.readOnly))
      return errnoError(EBADF, op, this);
    if (at + len > mapped) return shortIo(op, this, at, Math.max(0, mapped - at), len);
    return null;
  }

  read(buf: Buffer, len: number, pos: number, cb: IoCallback): void {
    const at = pos + this.offset;
    const no = this.refused("mapped read", at, len);
    if (no !== null) cb(no);
    else if (!this.warm(at, len)) this.pread(buf, len, at, cb);
    else this.copied(this.native.copyGuarded(this.map, at, buf, 0, len), "mapped read", at, cb);
  }

  protected rawWrite(buf: Buffer, len: number, pos: number, _dsync: boolean, cb: IoCallback): void {
    const at = pos + this.offset;
    const no = this.refused("mapped write", at, len);
    if (no !== null) cb(no);
    else {
      // The write touches the pages through the mapping: they are warm from now on.
      this.uses.fill(COLD_USES, Math.floor(at / PAGE), Math.ceil((at + len) / PAGE));
      this.copied(this.native.copyGuarded(buf, 0, this.map, at, len), "mapped write", at, cb);
    }
  }

  protected rawSync(cb: IoCallback): void {
    cb(fdatasyncNow(this.fd, this));
  }

  protected override release(): Promise<void> {
    this.native.unmapFile(this.map);
    return Promise.resolve();
  }
}
