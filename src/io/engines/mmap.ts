/**
 * The file mapped into memory: a read or write is one copy between the mapping
 * and the request's buffer, no system call. For files in memory (tmpfs), where
 * pread/pwrite cost several times the copy itself. A file truncated under the
 * mapping fails the request with EIO instead of killing the process
 * (native/mapped.cc), which also maps the file's pages in memory on a thread
 * of its own so that first touches do not fault on the event loop.
 */
import { constants as bufferConstants } from "node:buffer";
import { loadNative } from "../../native/addon.js";
import type { IoCallback, SharedBackend } from "../backend.js";
import { errnoError, shortIo } from "../errors.js";
import { FileBackend } from "../file-backend.js";
import { fdatasyncNow } from "./sync.js";

const EIO = -5;
const EBADF = -9;

/** The file mapped up to the end of the export's window; null when there is nothing to map. */
export function mapWindow(on: SharedBackend): ArrayBuffer | null {
  const end = on.offset + on.size;
  // A mapping is one ArrayBuffer, at most 4 GiB (buffer.constants.MAX_LENGTH).
  if (on.caps.blockDevice || end === 0 || end > bufferConstants.MAX_LENGTH) return null;
  return loadNative().mapFile(on.fd, end, !on.readOnly);
}

export class MappedBackend extends FileBackend {
  private readonly native = loadNative();

  constructor(
    on: SharedBackend,
    private readonly map: ArrayBuffer,
  ) {
    super(on);
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
    else this.copied(this.native.copyGuarded(this.map, at, buf, 0, len), "mapped read", at, cb);
  }

  protected rawWrite(
    _fd: number,
    buf: Buffer,
    len: number,
    pos: number,
    _dsync: boolean,
    cb: IoCallback,
  ): void {
    const at = pos + this.offset;
    const no = this.refused("mapped write", at, len);
    if (no !== null) cb(no);
    else this.copied(this.native.copyGuarded(buf, 0, this.map, at, len), "mapped write", at, cb);
  }

  protected rawSync(cb: IoCallback): void {
    cb(fdatasyncNow(this.syncFd, this));
  }

  protected override release(): Promise<void> {
    this.native.unmapFile(this.map);
    return Promise.resolve();
  }
}
