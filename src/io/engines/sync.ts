/**
 * Synchronous pread/pwrite on the event loop, the callback called before
 * read/write/flush returns: the reply is built while the receive batch is
 * still being walked and goes out with it, with no microtask or extra
 * event-loop turn per batch. Only sensible when the store is memory (tmpfs).
 */
import fs from "node:fs";
import type { IoCallback } from "../backend.js";
import { fromNodeError, type IoSite, shortIo } from "../errors.js";
import { FileBackend } from "../file-backend.js";

/** fdatasync on the event loop: the error, or null. */
export function fdatasyncNow(fd: number, site: IoSite): NodeJS.ErrnoException | null {
  try {
    fs.fdatasyncSync(fd);
    return null;
  } catch (e) {
    return fromNodeError(e as NodeJS.ErrnoException, "fdatasync", site);
  }
}

export class SyncBackend extends FileBackend {
  read(buf: Buffer, len: number, pos: number, cb: IoCallback): void {
    const at = pos + this.offset;
    let err: NodeJS.ErrnoException | null = null;
    try {
      const n = fs.readSync(this.fdForRead(len, at), buf, 0, len, at);
      if (n !== len) err = shortIo("pread", this, at, n, len);
    } catch (e) {
      err = fromNodeError(e as NodeJS.ErrnoException, "pread", this);
    }
    cb(err);
  }

  protected rawWrite(
    fd: number,
    buf: Buffer,
    len: number,
    pos: number,
    _dsync: boolean,
    cb: IoCallback,
  ): void {
    const at = pos + this.offset;
    let err: NodeJS.ErrnoException | null = null;
    try {
      for (let done = 0; done < len; ) {
        const n = fs.writeSync(fd, buf, done, len - done, at + done);
        if (n === 0) {
          err = shortIo("pwrite", this, at, done, len);
          break;
        }
        done += n;
      }
    } catch (e) {
      err = fromNodeError(e as NodeJS.ErrnoException, "pwrite", this);
    }
    cb(err);
  }

  protected rawSync(cb: IoCallback): void {
    cb(fdatasyncNow(this.syncFd, this));
  }
}
