/**
 * A backend for an export: open and probe the store (store.ts), choose the
 * engine (choose-engine.ts), then build that engine's backend (engines/).
 * A worker thread adopts the main thread's descriptors through the same
 * engine dispatch.
 */
import fs from "node:fs";
import type { Backend, BackendCapabilities, SharedBackend } from "./backend.js";
import { cachedPagesAnswer, writtenRangeAnswer } from "./blockdev.js";
import { chooseIoEngine } from "./choose-engine.js";
import { MappedBackend, mapWindow } from "./engines/mmap.js";
import { SyncBackend } from "./engines/sync.js";
import { ThreadPoolBackend } from "./engines/threads.js";
import { UringBackend } from "./engines/uring.js";
import { BackendError, fromNodeError } from "./errors.js";
import type { FileBackend } from "./file-backend.js";
import { dsyncHonoured } from "./group-commit.js";
import {
  closeStore,
  EXT4_MAGIC,
  type OpenOptions,
  openDirectForUncachedWrites,
  openStore,
  SECTOR,
} from "./store.js";
import { acquireSharedRing } from "./uring.js";

export type { OpenOptions } from "./store.js";

export async function openFileBackend(opts: OpenOptions): Promise<Backend> {
  const want = opts.io ?? "auto";
  const store = await openStore(opts);
  // What is in effect: `writes` on a read-only export opens no O_DIRECT descriptor.
  const directIo = store.directFd >= 0 && opts.directIo;
  try {
    let choice: ReturnType<typeof chooseIoEngine>;
    try {
      choice = chooseIoEngine(want, {
        inMemory: store.inMemory,
        mayHang: store.mayHang,
        directIo,
        writeCache: opts.writeCache,
        readOnly: opts.readOnly,
      });
    } catch (err) {
      throw new BackendError(store, (err as Error).message);
    }
    const caps: BackendCapabilities = {
      directIo,
      blockDevice: store.blockDevice,
      alignment: store.alignment,
      engine: choice.engine,
    };
    if (choice.note !== undefined) caps.engineNote = choice.note;
    if (directIo !== false && store.alignment > SECTOR)
      caps.writesBuffered =
        `O_DIRECT needs ${store.alignment}-byte alignment here: a write of fewer sectors could not ` +
        "go direct, and one through the page cache beside a direct one to the same page leaves " +
        "the cache stale, so writes go through the page cache" +
        (directIo === true ? " (aligned reads still go direct)" : "");
    // A file in memory has nothing to sync to: group commit only where a sync means something.
    if (!opts.writeCache && !opts.readOnly && !store.inMemory)
      caps.groupCommit = { dsync: dsyncHonoured(store.blockDevice, store.fsType) };
    if (store.mayHang !== null) caps.mayHang = store.mayHang;
    // Files on ext2/3/4, where it was measured (docs/performance.md, "Pages
    // read before a partial write"); a block device's cache may keep 512-byte
    // blocks that need no read, and other filesystems were not measured.
    if (choice.engine === "io_uring" && !opts.readOnly && store.fsType === EXT4_MAGIC)
      caps.pagesReadFirst = true;
    // A durable 1 KiB write to an uncached page, buffered, costs a 4 KiB read and
    // a 4 KiB write-back; through O_DIRECT only its own sectors (docs/performance.md,
    // "Durable writes to uncached pages through O_DIRECT").
    // x86-64 only: its pages are 4 KiB and its folios at most 2 MiB, which
    // the engine's keeping of direct and buffered writes apart relies on.
    if (
      caps.pagesReadFirst &&
      caps.groupCommit !== undefined &&
      directIo === false &&
      !opts.workerThreads &&
      process.arch === "x64" &&
      cachedPagesAnswer(store.fd) &&
      writtenRangeAnswer(store.fd)
    ) {
      const direct = await openDirectForUncachedWrites(store);
      if (direct !== null) {
        store.directFd = direct.fd;
        caps.alignment = direct.alignment;
        caps.uncachedWritesDirect = true;
      }
    }
    const { path, exportName, fileId, fd, directFd, size, offset, readOnly } = store;
    const on: SharedBackend = {
      path,
      exportName,
      fileId,
      fd,
      directFd,
      size,
      offset,
      readOnly,
      caps,
    };
    return backendOn(on, want === "io_uring" ? "required" : "");
  } catch (err) {
    await closeStore(store);
    throw err;
  }
}

/**
 * A worker thread's backend over descriptors the main thread opened (see
 * Backend.share): the same engine, with this thread's own io_uring; close()
 * waits for its operations and leaves those descriptors open. `warn` hears
 * what the thread had to do without.
 */
export function adoptFileBackend(shared: SharedBackend, warn: (message: string) => void): Backend {
  const syncFd = syncDescriptor(shared, warn);
  let backend: FileBackend;
  try {
    const on = { ...shared, caps: { ...shared.caps } };
    backend = backendOn(syncFd === null ? on : { ...on, syncFd }, " in a worker thread");
  } catch (err) {
    if (syncFd !== null) fs.closeSync(syncFd);
    throw err;
  }
  backend.ownsDescriptors = false;
  return backend;
}

/**
 * With group commit a worker thread syncs the file itself, and the kernel
 * reports a write-back error once per open file description: through the
 * main thread's descriptor only the first thread to sync would hear of it. A
 * descriptor of its own (the same file, through /proc/self/fd), used for
 * fdatasync only, hears of every error that comes after it was opened or that
 * nobody had seen yet. Not for a store that may hang (FUSE, NFS), where the
 * open could block this thread; there, and if the open fails, the failure
 * word the threads share (group-commit.ts) is what tells them.
 */
function syncDescriptor(shared: SharedBackend, warn: (message: string) => void): number | null {
  if (shared.caps.groupCommit === undefined || shared.readOnly || shared.caps.mayHang !== undefined)
    return null;
  try {
    return fs.openSync(`/proc/self/fd/${shared.fd}`, "r");
  } catch (err) {
    warn(
      `${shared.path} (export ${shared.exportName}): cannot open it again for this worker thread's ` +
        `syncs (${(err as Error).message}); it syncs through the main thread's descriptor, and ` +
        "hears of a failed sync in another thread only once that thread has told the others",
    );
    return null;
  }
}

/**
 * The backend for `on.caps.engine` on descriptors already open; where that
 * engine cannot be had here (no io_uring ring, nothing to map) the next best,
 * said in caps. `uring` "required": no io_uring ring is an error; otherwise it
 * is noted, with this text after "io_uring setup failed".
 */
function backendOn(on: SharedBackend, uring: string): FileBackend {
  const { caps } = on;
  if (caps.engine === "io_uring") {
    try {
      return new UringBackend(on, acquireSharedRing());
    } catch (err) {
      // The probe passed but this ring could not be set up (e.g. out of memory).
      if (uring === "required")
        throw new BackendError(on, `cannot set up io_uring: ${(err as Error).message}`);
      caps.engine = "threads";
      caps.engineNote = `io_uring setup failed${uring}: ${(err as Error).message}`;
      delete caps.pagesReadFirst;
      delete caps.uncachedWritesDirect;
    }
  }
  if (caps.engine === "mmap") {
    let map: ArrayBuffer | null;
    try {
      map = mapWindow(on);
    } catch (err) {
      throw fromNodeError(err as NodeJS.ErrnoException, "mmap", on);
    }
    if (map !== null) return new MappedBackend(on, map);
    caps.engine = "sync";
    caps.engineNote = "not mapped (empty, over 4 GiB, or a block device): pread/pwrite";
  }
  if (caps.engine === "sync") return new SyncBackend(on);
  return new ThreadPoolBackend(on);
}
