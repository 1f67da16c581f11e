/** libuv's thread pool: one fs request (and thread hand-off) per operation. */
import fs from "node:fs";
import type { IoCallback } from "../backend.js";
import { fromNodeError, shortIo } from "../errors.js";
import { FileBackend, poolShare } from "../file-backend.js";

/**
 * libuv's thread pool size (the daemon's entry point sets UV_THREADPOOL_SIZE
 * before the pool starts; libuv's default is 4).
 */
function threadPoolSize(): number {
  const n = Number(process.env.UV_THREADPOOL_SIZE);
  return Number.isInteger(n) && n > 0 ? Math.min(n, 1024) : 4;
}

export class ThreadPoolBackend extends FileBackend {
  override issueLimit = poolShare(threadPoolSize());

  private done(): void {
    if (--this.pending === 0 && this.onIdle !== null) this.onIdle();
  }

  read(buf: Buffer, len: number, pos: number, cb: IoCallback): void {
    const at = pos + this.offset;
    this.pending++;
    fs.read(this.fdForRead(len, at), buf, 0, len, at, (err, n) => {
      this.done();
      if (err) cb(fromNodeError(err, "pread", this));
      else if (n !== len) cb(shortIo("pread", this, at, n, len));
      else cb(null);
    });
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
    this.pending++;
    const step = (done: number) =>
      fs.write(fd, buf, done, len - done, at + done, (err, n) => {
        if (err) {
          this.done();
          cb(fromNodeError(err, "pwrite", this));
        } else if (n === 0) {
          this.done();
          cb(shortIo("pwrite", this, at, done, len));
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
    fs.fdatasync(this.syncFd, (err) => {
      this.done();
      cb(err ? fromNodeError(err, "fdatasync", this) : null);
    });
  }
}
