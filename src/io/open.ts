/**
 * A backend for an export: open and probe the store (store.ts), choose the
 * engine (choose-engine.ts), then build that engine's backend (engines/).
 * A worker thread adopts the main thread's descriptors through the same
 * engine dispatch.
 */
import fs from "node:fs";
import type { Backend, BackendCapabilities, SharedBackend } from "./backend.js";
import { chooseIoEngine } from "./choose-engine.js";
import { MappedBackend, mapWindow } from "./engines/mmap.js";
import { SyncBackend } from "./engines/sync.js";
import { ThreadPoolBackend } from "./engines/threads.js";
import { UringBackend } from "./engines/uring.js";
import { BackendError } from "./errors.js";
import type { FileBackend } from "./file-backend.js";
import { dsyncHonoured } from "./group-commit.js";
import { closeStore, type OpenOptions, openStore } from "./store.js";
import { acquireSharedRing } from "./uring.js";

export type { OpenOptions } from "./store.js";

export async function openFileBackend(opts: OpenOptions): Promise<Backend> {
  const want = opts.io ?? "auto";
  const store = await openStore(opts);
  try {
    let choice: ReturnType<typeof chooseIoEngine>;
    try {
      choice = chooseIoEngine(want, {
        inMemory: store.inMemory,
        mayHang: store.mayHang,
        directIo: opts.directIo,
        writeCache: opts.writeCache,
        readOnly: opts.readOnly,
      });
    } catch (err) {
      throw new BackendError(store.path, (err as Error).message);
    }
    const caps: BackendCapabilities = {
      directIo: store.directFd >= 0,
      blockDevice: store.blockDevice,
      alignment: store.alignment,
      engine: choice.engine,
    };
    if (choice.note !== undefined) caps.engineNote = choice.note;
    // A file in memory has nothing to sync to: group commit only where a sync means something.
    if (!opts.writeCache && !opts.readOnly && !store.inMemory)
      caps.groupCommit = { dsync: dsyncHonoured(store.blockDevice, store.fsType) };
    if (store.mayHang !== null) caps.mayHang = store.mayHang;
    const { path, exportName, fd, directFd, size, offset, readOnly } = store;
    const on = { path, exportName, fd, directFd, size, offset, readOnly, caps };
    return backendOn(on, want === "io_uring" ? "required" : "");
  } catch (err) {
    await closeStore(store);
    throw err;
  }
}

/**
 * A worker thread's backend over descriptors the main thread opened (see
 * Backend.share): the same engine, with this thread's own io_uring; close()
 * waits for its operations and leaves the descriptors open.
 */
export function adoptFileBackend(shared: SharedBackend): Backend {
  const ownFd = syncDescriptor(shared);
  const fd = ownFd ?? shared.fd;
  let backend: FileBackend;
  try {
    backend = backendOn({ ...shared, fd, caps: { ...shared.caps } }, " in a worker thread");
  } catch (err) {
    if (ownFd !== null) fs.closeSync(ownFd);
    throw err;
  }
  backend.ownsDescriptors = false;
  backend.ownFd = ownFd ?? -1;
  return backend;
}

/**
 * With group commit a worker thread syncs the file itself, and the kernel
 * reports a write-back error once per open file description: through the
 * main thread's descriptor only the first thread to sync would hear of it. A
 * descriptor of its own (the same file, through /proc/self/fd) hears of every
 * error since it was opened. Not for a store that may hang (FUSE, NFS), where
 * the open could block this thread: there the failure flag the threads share
 * (group-commit.ts) is what tells them.
 */
function syncDescriptor(shared: SharedBackend): number | null {
  if (shared.caps.groupCommit === undefined || shared.readOnly || shared.caps.mayHang !== undefined)
    return null;
  try {
    return fs.openSync(`/proc/self/fd/${shared.fd}`, "r+");
  } catch (err) {
    throw new BackendError(
      shared.path,
      `cannot open it again for a worker thread's syncs: ${(err as Error).message}`,
    );
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
        throw new BackendError(on.path, `cannot set up io_uring: ${(err as Error).message}`);
      caps.engine = "threads";
      caps.engineNote = `io_uring setup failed${uring}: ${(err as Error).message}`;
    }
  }
  if (caps.engine === "mmap") {
    const map = mapWindow(on);
    if (map !== null) return new MappedBackend(on, map);
    caps.engine = "sync";
    caps.engineNote = "not mapped (empty, over 4 GiB, or a block device): pread/pwrite";
  }
  if (caps.engine === "sync") return new SyncBackend(on);
  return new ThreadPoolBackend(on);
}
