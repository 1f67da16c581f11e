/**
 * Block device and O_DIRECT helpers (thin wrappers over the native addon).
 * All of them take an open file descriptor; given the `site` it is open on,
 * an error names the ioctl, the file and the export.
 */
import { loadNative } from "../native/addon.js";
import { fromNodeError, type IoSite } from "./errors.js";

function blockIoctl(request: string, site: IoSite | undefined, get: () => number): number {
  try {
    return get();
  } catch (err) {
    if (site === undefined) throw err;
    throw fromNodeError(err as NodeJS.ErrnoException, `ioctl(${request})`, site);
  }
}

/** Size of a block device in bytes (BLKGETSIZE64). Throws (code ENOTBLK) for anything else. */
export function blockDeviceSize(fd: number, site?: IoSite): number {
  return blockIoctl("BLKGETSIZE64", site, () => loadNative().blockDeviceSize(fd));
}

/** Logical sector size of a block device (BLKSSZGET): the O_DIRECT alignment unit. */
export function logicalBlockSize(fd: number, site?: IoSite): number {
  return blockIoctl("BLKSSZGET", site, () => loadNative().logicalBlockSize(fd));
}

/**
 * A zero-filled Buffer of `size` bytes whose memory starts at a multiple of
 * `align` (default 4096), as O_DIRECT needs. The memory comes from
 * posix_memalign and is freed when the Buffer is garbage collected.
 * Views at offsets that are multiples of `align` stay aligned.
 */
export function alignedBuffer(size: number, align = 4096): Buffer {
  return Buffer.from(loadNative().alignedBuffer(size, align));
}

/**
 * How many pages of `length` bytes at `offset` of the file are in the page
 * cache (cachestat(2)); -1 when the kernel cannot say (before Linux 6.5).
 */
export function cachedPages(fd: number, offset: number, length: number): number {
  return loadNative().cachedPages(fd, offset, length);
}

/** Whether cachedPages answers on `fd` (Linux 6.5, and no system-call filter refusing it). */
export function cachedPagesAnswer(fd: number): boolean {
  return answers(cachedPages, fd);
}

/**
 * Whether `length` bytes at `offset` of the file are all in written extents
 * (FIEMAP): 1 if so, 0 where there is a hole or an unwritten or delayed
 * extent, -1 when the filesystem cannot say.
 */
export function writtenRange(fd: number, offset: number, length: number): number {
  return loadNative().writtenRange(fd, offset, length);
}

/** Whether writtenRange answers on `fd` (a filesystem with FIEMAP). */
export function writtenRangeAnswer(fd: number): boolean {
  return answers(writtenRange, fd);
}

/** Whether a probe that answers -1 when the kernel cannot say says something about `fd`'s first page. */
function answers(
  probe: (fd: number, offset: number, length: number) => number,
  fd: number,
): boolean {
  try {
    return probe(fd, 0, 4096) >= 0;
  } catch {
    return false; // an addon built before it
  }
}

/** The memory address of a buffer (for alignment checks in tests and diagnostics). */
export function bufferAddress(buf: ArrayBuffer | ArrayBufferView): bigint {
  return loadNative().addressOf(buf);
}
