/**
 * Opens a backing store (regular file or block device) and probes, once, what
 * the engines need to know: size, block device, O_DIRECT and its alignment,
 * whether it lives in memory, whether its filesystem can hang.
 */
import fs from "node:fs";
import os from "node:os";
import type { DirectIo, IoSetting, SharedBackend } from "./backend.js";
import { alignedBuffer, blockDeviceSize, logicalBlockSize } from "./blockdev.js";
import { BackendError, errnoError, fromNodeError, type IoSite } from "./errors.js";

export interface OpenOptions {
  path: string;
  /** The export this store backs, named in every I/O error. */
  exportName: string;
  readOnly: boolean;
  directIo: DirectIo;
  /** false: every write is durable before it completes (group commit, src/io/group-commit.ts). */
  writeCache: boolean;
  /** Window into the store, bytes; length null = to the end. */
  offset: number;
  length: number | null;
  /** The `io:` setting; default "auto" (src/io/choose-engine.ts). */
  io?: IoSetting;
  /**
   * The engine also serves the export from worker threads, each with a
   * backend adopting these descriptors: no O_DIRECT descriptor for writes
   * to uncached pages then (caps.uncachedWritesDirect), whose writes a
   * buffered one in another thread could meet on a page.
   */
  workerThreads?: boolean;
  /**
   * A block device another backend of this process holds exclusively (a reload
   * replacing it): open without O_EXCL now and take the claim over with
   * claimExclusive() once the old backend has closed.
   */
  sharedClaim?: boolean;
}

/** An open store (descriptors and window as a backend shares them) and what was probed of it. */
export interface Store extends Omit<SharedBackend, "caps" | "fileId"> {
  /** See SharedBackend.fileId: always known here, in the thread that opened the store. */
  fileId: string;
  blockDevice: boolean;
  /** O_DIRECT alignment (512 when buffered). */
  alignment: number;
  /** On tmpfs or ramfs: reading it never waits for a disk, and a sync means nothing. */
  inMemory: boolean;
  /** The filesystem's name when it can stop answering for good (fuse, nfs...), else null. */
  mayHang: string | null;
  /** statfs(2) f_type of the filesystem holding a file; null for a block device. */
  fsType: number | null;
}

export const SECTOR = 512;

// statfs(2) f_type of filesystems whose files live in memory, and of ext2/3/4.
export const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;
export const EXT4_MAGIC = 0xef53;

/**
 * statfs(2) f_type of filesystems that can stop answering for good: a server
 * or a user-space daemon is behind every request (linux/magic.h, fs/*).
 */
const HANG_PRONE_FS = new Map<number, string>([
  [0x65735546, "fuse"],
  [0x6969, "nfs"],
  [0xff534d42, "cifs"],
  [0xfe534d42, "smb2"],
  [0x517b, "smb"],
  [0x01021997, "9p"],
  [0x00c36400, "ceph"],
  [0x6b414653, "afs"],
  [0x5346414f, "afs"],
  [0x73757245, "coda"],
  [0x7461636f, "ocfs2"],
  [0x01161970, "gfs2"],
]);

/** statfs(2) f_type of the filesystem holding `path`, null if it cannot be had. */
async function statfsType(path: string): Promise<number | null> {
  try {
    return (await fs.promises.statfs(path)).type;
  } catch {
    return null;
  }
}

/** Whether `path` is a file in memory (tmpfs, ramfs): reading it never waits for a disk. */
export async function isMemoryBacked(path: string): Promise<boolean> {
  const type = await statfsType(path);
  return type === TMPFS_MAGIC || type === RAMFS_MAGIC;
}

const { O_RDONLY, O_RDWR, O_EXCL, O_DIRECT, O_NOATIME = 0 } = fs.constants;
const { EINVAL } = os.constants.errno;

export function openFd(path: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) =>
    fs.open(path, flags, (err, fd) => (err ? reject(err) : resolve(fd))),
  );
}

/**
 * Opens with O_NOATIME when allowed (the file's owner, or CAP_FOWNER): reads
 * then skip the access-time bookkeeping. Falls back to a plain open.
 */
async function openFileFd(path: string, flags: number): Promise<number> {
  if (O_NOATIME === 0) return openFd(path, flags);
  try {
    return await openFd(path, flags | O_NOATIME);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") throw err;
    return openFd(path, flags);
  }
}

function fstatFd(fd: number): Promise<fs.Stats> {
  return new Promise((resolve, reject) =>
    fs.fstat(fd, (err, st) => (err ? reject(err) : resolve(st))),
  );
}

export function closeFd(fd: number): Promise<void> {
  return new Promise((resolve) => fs.close(fd, () => resolve()));
}

/** Closes what openStore opened. */
export async function closeStore(s: Store): Promise<void> {
  await closeFd(s.fd);
  if (s.directFd >= 0) await closeFd(s.directFd);
}

/** How the store was being opened, for the advice in an error. */
interface OpenHow {
  readOnly: boolean;
  /** A block device opened O_EXCL: EBUSY means it is in use. */
  exclusive?: boolean;
  /** With O_DIRECT: EINVAL means the filesystem refuses it. */
  direct?: boolean;
}

/**
 * A failed open (or stat) of the store: the call, the file, the export, the
 * error, and what to change where the error says it, e.g.
 * `open /srv/a.img (export e0.1): EACCES (permission denied; aoed needs read access)`.
 */
function openError(
  syscall: string,
  site: IoSite,
  err: unknown,
  how: OpenHow,
): NodeJS.ErrnoException {
  const e = err as NodeJS.ErrnoException;
  return fromNodeError(e, syscall, site, openAdvice(e.code, how));
}

function openAdvice(code: string | undefined, how: OpenHow): string | undefined {
  switch (code) {
    case "EACCES":
    case "EPERM":
      return how.readOnly
        ? "aoed needs read access"
        : "aoed needs read/write access; set read-only: true to export it read-only";
    case "EBUSY":
      return how.exclusive
        ? "the device is in use: mounted, or opened exclusively by another program"
        : undefined;
    case "EROFS":
      return "set read-only: true, or make the filesystem writable for aoed";
    case "EINVAL":
      return how.direct ? "the filesystem refuses O_DIRECT; set direct-io: false" : undefined;
    default:
      return undefined;
  }
}

/** Takes the exclusive claim on a block device: a descriptor opened O_EXCL. */
export async function openExclusiveClaim(site: IoSite): Promise<number> {
  try {
    return await openFd(site.path, O_RDONLY | O_EXCL);
  } catch (err) {
    throw openError("open", site, err, { readOnly: true, exclusive: true });
  }
}

/**
 * An O_DIRECT descriptor of a buffered export's file for its durable writes
 * to uncached pages (caps.uncachedWritesDirect), and the alignment it needs; null where the
 * open or the probe fails (a filesystem that refuses O_DIRECT): those writes
 * then stay buffered.
 */
export async function openDirectForUncachedWrites(
  s: Store,
): Promise<{ fd: number; alignment: number } | null> {
  let fd: number;
  try {
    // Through the descriptor, not the path: the same file even if the path was renamed over since.
    fd = await openFileFd(`/proc/self/fd/${s.fd}`, O_RDWR | O_DIRECT);
  } catch {
    return null;
  }
  try {
    return { fd, alignment: await probeDirectAlignment(fd, s) };
  } catch {
    await closeFd(fd);
    return null;
  }
}

/**
 * Finds the smallest alignment O_DIRECT accepts on this fd (512 or 4096).
 * On the thread pool: the store may not answer, and the event loop must not wait for it.
 */
async function probeDirectAlignment(fd: number, site: IoSite): Promise<number> {
  const buf = alignedBuffer(4096, 4096);
  for (const align of [SECTOR, 4096]) {
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) =>
      fs.read(fd, buf, 0, align, 0, (e) => resolve(e)),
    );
    if (err === null) return align;
    if (err.code !== "EINVAL")
      throw fromNodeError(err, "pread", site, "probing the O_DIRECT alignment");
  }
  throw errnoError(
    -EINVAL,
    "pread",
    site,
    "O_DIRECT reads fail at 512 and 4096-byte alignment; set direct-io: false",
  );
}

function windowSize(site: IoSite, total: number, offset: number, length: number | null): number {
  if (offset > total)
    throw new BackendError(site, `offset ${offset} is past the end (${total} bytes)`);
  const size = length ?? total - offset;
  if (offset + size > total)
    throw new BackendError(site, `window ${offset}+${size} runs past the end (${total} bytes)`);
  return size - (size % SECTOR);
}

/**
 * Opens the store's descriptors and probes it; throws an error that names the
 * call, the file and the export, and says what to change where it can.
 */
export async function openStore(opts: OpenOptions): Promise<Store> {
  const { path } = opts;
  const site: IoSite = { path, exportName: opts.exportName };
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(path);
  } catch (err) {
    throw openError("stat", site, err, { readOnly: opts.readOnly });
  }
  const isBlock = st.isBlockDevice();
  if (!isBlock && !st.isFile()) throw new BackendError(site, "not a regular file or block device");
  const fsType = isBlock ? null : await statfsType(path);

  // O_EXCL on a block device makes the open exclusive: it fails while mounted or in use.
  // No O_DSYNC even with the write cache off: one fdatasync covers a group of writes.
  const baseFlags =
    (opts.readOnly ? O_RDONLY : O_RDWR) | (isBlock && !opts.sharedClaim ? O_EXCL : 0);
  let fd: number;
  try {
    fd = isBlock ? await openFd(path, baseFlags) : await openFileFd(path, baseFlags);
  } catch (err) {
    throw openError("open", site, err, { readOnly: opts.readOnly, exclusive: isBlock });
  }

  let directFd = -1;
  let alignment = SECTOR;
  try {
    // O_DIRECT for writes only has nothing to do on a read-only export.
    if (opts.directIo === true || (opts.directIo === "writes" && !opts.readOnly)) {
      try {
        const directFlags = (baseFlags & ~O_EXCL) | O_DIRECT;
        directFd = isBlock ? await openFd(path, directFlags) : await openFileFd(path, directFlags);
      } catch (err) {
        throw openError("open", site, err, { readOnly: opts.readOnly, direct: true });
      }
      alignment = isBlock
        ? Math.max(SECTOR, logicalBlockSize(directFd, site))
        : await probeDirectAlignment(directFd, site);
    }
    const total = isBlock ? blockDeviceSize(fd, site) : st.size;
    // The file or device opened, whatever the path names by now.
    const opened = await fstatFd(fd).catch((err: unknown) => {
      throw openError("fstat", site, err, { readOnly: opts.readOnly });
    });
    return {
      path,
      exportName: opts.exportName,
      fileId: isBlock ? `rdev:${opened.rdev}` : `${opened.dev}:${opened.ino}`,
      fd,
      directFd,
      size: windowSize(site, total, opts.offset, opts.length),
      offset: opts.offset,
      readOnly: opts.readOnly,
      blockDevice: isBlock,
      alignment,
      inMemory: fsType === TMPFS_MAGIC || fsType === RAMFS_MAGIC,
      mayHang: (fsType !== null && HANG_PRONE_FS.get(fsType)) || null,
      fsType,
    };
  } catch (err) {
    await closeFd(fd);
    if (directFd >= 0) await closeFd(directFd);
    throw err;
  }
}
