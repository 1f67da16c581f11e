/** Regular files and block devices, through libuv's thread pool. */
import fs from "node:fs";
import type { Backend, BackendCapabilities, IoCallback } from "./backend.js";
import { alignedBuffer, blockDeviceSize, logicalBlockSize } from "./blockdev.js";

export interface OpenOptions {
  path: string;
  readOnly: boolean;
  directIo: boolean;
  /** false: open O_DSYNC so every write is durable before it completes. */
  writeCache: boolean;
  /** Window into the store, bytes; length null = to the end. */
  offset: number;
  length: number | null;
}

/** An error the admin can act on: names the path and what to change. */
export class BackendError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
  }
}

const SECTOR = 512;
const { O_RDONLY, O_RDWR, O_DSYNC, O_EXCL, O_DIRECT } = fs.constants;

function openFd(path: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) =>
    fs.open(path, flags, (err, fd) => (err ? reject(err) : resolve(fd))),
  );
}

function closeFd(fd: number): Promise<void> {
  return new Promise((resolve) => fs.close(fd, () => resolve()));
}

function describeOpenError(
  path: string,
  err: NodeJS.ErrnoException,
  exclusive: boolean,
): BackendError {
  switch (err.code) {
    case "ENOENT":
      return new BackendError(path, "no such file or device");
    case "EACCES":
    case "EPERM":
      return new BackendError(
        path,
        "permission denied (aoed needs read/write access; set read-only: true to export it read-only)",
      );
    case "EBUSY":
      return new BackendError(
        path,
        exclusive
          ? "device is in use (mounted, or opened exclusively by another program)"
          : "device is busy",
      );
    case "EROFS":
      return new BackendError(path, "read-only filesystem (set read-only: true)");
    default:
      return new BackendError(path, `cannot open: ${err.message}`);
  }
}

/** Finds the smallest alignment O_DIRECT accepts on this fd (512 or 4096). */
function probeDirectAlignment(fd: number): number {
  const buf = alignedBuffer(4096, 4096);
  for (const align of [SECTOR, 4096]) {
    try {
      fs.readSync(fd, buf, 0, align, 0);
      return align;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EINVAL") throw err;
    }
  }
  return 0;
}

export async function openFileBackend(opts: OpenOptions): Promise<Backend> {
  const { path } = opts;
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(path);
  } catch (err) {
    throw describeOpenError(path, err as NodeJS.ErrnoException, false);
  }
  const isBlock = st.isBlockDevice();
  if (!isBlock && !st.isFile()) throw new BackendError(path, "not a regular file or block device");

  // O_EXCL on a block device makes the open exclusive: it fails while mounted or in use.
  const baseFlags =
    (opts.readOnly ? O_RDONLY : O_RDWR) | (opts.writeCache ? 0 : O_DSYNC) | (isBlock ? O_EXCL : 0);
  let fd: number;
  try {
    fd = await openFd(path, baseFlags);
  } catch (err) {
    throw describeOpenError(path, err as NodeJS.ErrnoException, isBlock);
  }

  let directFd = -1;
  let alignment = SECTOR;
  try {
    if (opts.directIo) {
      try {
        directFd = await openFd(path, (baseFlags & ~O_EXCL) | O_DIRECT);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EINVAL")
          throw new BackendError(
            path,
            "the filesystem refuses O_DIRECT; set direct-io: false (buffered-io)",
          );
        throw describeOpenError(path, err as NodeJS.ErrnoException, false);
      }
      alignment = isBlock
        ? Math.max(SECTOR, logicalBlockSize(directFd))
        : probeDirectAlignment(directFd);
      if (alignment === 0)
        throw new BackendError(
          path,
          "O_DIRECT reads fail at 512 and 4096-byte alignment; set direct-io: false",
        );
    }
    const total = isBlock ? blockDeviceSize(fd) : st.size;
    const size = windowSize(path, total, opts.offset, opts.length);
    return new FileBackend(path, fd, directFd, size, opts.offset, opts.readOnly, {
      directIo: directFd >= 0,
      blockDevice: isBlock,
      alignment,
    });
  } catch (err) {
    await closeFd(fd);
    if (directFd >= 0) await closeFd(directFd);
    throw err;
  }
}

function windowSize(path: string, total: number, offset: number, length: number | null): number {
  if (offset > total)
    throw new BackendError(path, `offset ${offset} is past the end (${total} bytes)`);
  const size = length ?? total - offset;
  if (offset + size > total)
    throw new BackendError(path, `window ${offset}+${size} runs past the end (${total} bytes)`);
  return size - (size % SECTOR);
}

class FileBackend implements Backend {
  constructor(
    readonly path: string,
    private readonly fd: number,
    /** O_DIRECT descriptor for aligned requests, -1 when direct I/O is off. */
    private readonly directFd: number,
    readonly size: number,
    private readonly offset: number,
    readonly readOnly: boolean,
    readonly caps: BackendCapabilities,
  ) {}

  allocBuffer(bytes: number): Buffer {
    if (!this.caps.directIo) return Buffer.allocUnsafeSlow(bytes);
    const a = this.caps.alignment;
    return alignedBuffer(Math.ceil(bytes / a) * a, Math.max(a, 4096));
  }

  /** The O_DIRECT fd when the request is aligned for it, else the buffered one. */
  private fdFor(len: number, pos: number): number {
    const a = this.caps.alignment;
    return this.directFd >= 0 && len % a === 0 && pos % a === 0 ? this.directFd : this.fd;
  }

  read(buf: Buffer, len: number, pos: number, cb: IoCallback): void {
    const at = pos + this.offset;
    fs.read(this.fdFor(len, at), buf, 0, len, at, (err, n) => {
      if (err) cb(err);
      else if (n !== len) cb(shortIo("read", this.path, at, n, len));
      else cb(null);
    });
  }

  write(buf: Buffer, len: number, pos: number, cb: IoCallback): void {
    const at = pos + this.offset;
    const fd = this.fdFor(len, at);
    const step = (done: number) =>
      fs.write(fd, buf, done, len - done, at + done, (err, n) => {
        if (err) cb(err);
        else if (n === 0) cb(shortIo("write", this.path, at, done, len));
        else if (done + n < len) step(done + n);
        else cb(null);
      });
    step(0);
  }

  flush(cb: IoCallback): void {
    fs.fdatasync(this.fd, cb);
  }

  async close(): Promise<void> {
    await closeFd(this.fd);
    if (this.directFd >= 0) await closeFd(this.directFd);
  }
}

function shortIo(
  op: string,
  path: string,
  at: number,
  n: number,
  len: number,
): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(
    `${path}: short ${op} at ${at}: ${n} of ${len} bytes (the backing store shrank?)`,
  );
  err.code = "EIO";
  return err;
}
