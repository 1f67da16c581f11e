/**
 * A backend is the store behind one export: a small table of operations in the
 * style of nbdkit's plugins, with capabilities probed once at open.
 * Callbacks, not promises: the data path must not allocate a promise per request.
 */

export type IoCallback = (err: NodeJS.ErrnoException | null) => void;

/** A backend's group commit counters (src/io/group-commit.ts). */
export interface SyncStats {
  /** Syncs (fdatasync) started. */
  syncs: number;
  /** Writes acknowledged after a sync covered them. */
  syncedWrites: number;
  /** The most writes one sync covered. */
  maxBatch: number;
  /** Lone writes written with RWF_DSYNC instead. */
  dsyncWrites: number;
  /** Syncs that failed. */
  syncErrors: number;
}

/** O_DIRECT for aligned requests: all of them (true), writes only ("writes"), none (false). */
export type DirectIo = boolean | "writes";

export interface BackendCapabilities {
  /** O_DIRECT is in effect for aligned requests: all of them, or ("writes") writes only. */
  directIo: DirectIo;
  /** Opened exclusively as a block device. */
  blockDevice: boolean;
  /** Alignment O_DIRECT needs for buffers, offsets and lengths (512 when buffered). */
  alignment: number;
  /**
   * How the I/O is done (src/io/engines/): "io_uring", "threads" (libuv's
   * thread pool), "mmap" (the file mapped: a read or write is a memcpy on the
   * event loop) or "sync" (pread/pwrite on the event loop). Absent for
   * backends that do no system I/O.
   */
  engine?: IoEngine;
  /** Why not the engine asked for (with `io: auto`, why not io_uring); absent otherwise. */
  engineNote?: string;
  /**
   * Why writes go through the page cache although direct-io is on; absent
   * otherwise. Where O_DIRECT needs 4 KiB alignment (4Kn disks), a write of a
   * few 512-byte sectors cannot go direct, and a buffered write beside a
   * direct one to the same page leaves the page cache stale and fails the
   * file's next sync, so none goes direct.
   */
  writesBuffered?: string;
  /**
   * Present when write-cache is off on a store that needs syncing: writes are
   * group-committed (src/io/group-commit.ts). `dsync`: a lone write may be
   * written with RWF_DSYNC instead (the filesystem honours it).
   */
  groupCommit?: { dsync: boolean };
  /**
   * The filesystem, when it is one that can stop answering for good (fuse,
   * nfs, cifs...): its I/O never runs on the event loop, and io_uring hands
   * it straight to the kernel's workers (IOSQE_ASYNC).
   */
  mayHang?: string;
  /**
   * A buffered write that covers part of a page reads that page into the
   * page cache first, unless it is a lone write (io_uring, a file on
   * ext2/3/4): otherwise the filesystem reads it inside the write, under the
   * file's lock, one write at a time (src/io/engines/uring.ts).
   */
  pagesReadFirst?: boolean;
  /**
   * With pagesReadFirst on a durable buffered export: a write that covers
   * part of a page, meets O_DIRECT's alignment, and falls on written extents
   * none of whose pages is in the page cache goes through an O_DIRECT
   * descriptor (`directFd`), so the rest of the page is neither read nor
   * written back; only in the file's sole writer, and never beside a
   * buffered write in the same 2 MiB (src/io/engines/uring.ts).
   */
  uncachedWritesDirect?: boolean;
}

export type IoEngine = "io_uring" | "threads" | "sync" | "mmap";

/** The `io:` setting: an engine, or "auto" (src/io/choose-engine.ts). */
export type IoSetting = "auto" | IoEngine;

export interface Backend {
  readonly path: string;
  /** Exported size in bytes (the window, a multiple of 512). */
  readonly size: number;
  readonly readOnly: boolean;
  readonly caps: BackendCapabilities;
  /**
   * Operations the backend is given at once: its share of a pool of workers
   * shared with other exports (libuv's threads, io_uring's io-wq), so one
   * that hangs holds no more than that, plus the one worker of group
   * commit's sync. The target keeps the rest waiting in its queue slots. A
   * write stops counting once `written` is called, a flush once `waiting` is:
   * it then only waits for that sync, which takes one worker for the whole
   * batch. Absent: no limit (the engine completes inline).
   */
  readonly issueLimit?: number;
  /** A buffer suitable for read/write (aligned when direct I/O is on). */
  allocBuffer(bytes: number): Buffer;
  /** Reads exactly `len` bytes at `pos` (export-relative) into `buf`. */
  read(buf: Buffer, len: number, pos: number, cb: IoCallback): void;
  /**
   * Writes exactly `len` bytes; durable before `cb` unless the write cache is
   * on. `written`, if given, is called when the write has reached the file
   * and only waits for a sync (group commit), before `cb`: from then on it
   * holds nothing of the pool that issueLimit shares. Not called when the
   * write fails or is made durable by the write itself.
   */
  write(buf: Buffer, len: number, pos: number, cb: IoCallback, written?: () => void): void;
  /**
   * Makes every completed write durable. `waiting`, if given, is called once
   * the flush only waits for group commit's sync and so holds nothing of the
   * pool (as `written` for a write): before `cb`, unless the flush fails at
   * once (the backend has failed).
   */
  flush(cb: IoCallback, waiting?: () => void): void;
  /**
   * The failed sync that failed this backend (writes and flushes fail until it
   * is reopened), or null.
   */
  readonly failed?: NodeJS.ErrnoException | null;
  /** Sync counters, when writes are group-committed. */
  readonly syncStats?: Readonly<SyncStats>;
  /**
   * With group commit: the most writes (and flushes) one sync acknowledges,
   * the export's queue length; set by each target built on the backend.
   */
  limitSyncBatch?(writes: number): void;
  close(): Promise<void>;
  /** Takes the exclusive claim on a block device opened with sharedClaim (no-op otherwise). */
  claimExclusive?(): Promise<void>;
  /** How a worker thread can serve this backend on the same descriptors; absent when it cannot. */
  share?(): SharedBackend;
}

/**
 * A backend as a worker thread adopts it (src/io/open.ts adoptFileBackend):
 * the descriptors stay open and owned by the main thread, which closes them
 * only after every worker has let go.
 */
export interface SharedBackend {
  path: string;
  /** The export it backs, named in I/O errors. */
  exportName: string;
  fd: number;
  /** O_DIRECT descriptor (direct-io, or caps.uncachedWritesDirect), -1 if none. */
  directFd: number;
  size: number;
  offset: number;
  readOnly: boolean;
  caps: BackendCapabilities;
  /**
   * A file's identity (st_dev:st_ino, or a block device's number), by which
   * this thread's backends of one file know of each other (file-writers.ts);
   * absent in a worker thread.
   */
  fileId?: string;
  /** With group commit: the word where any thread's failed sync fails them all (group-commit.ts). */
  syncFailure?: SharedArrayBuffer;
  /**
   * A worker thread's own descriptor of the file for fdatasync (src/io/open.ts
   * adoptFileBackend), which the backend closes; absent: syncs go through `fd`.
   * Never shared.
   */
  syncFd?: number;
}
