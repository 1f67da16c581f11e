/**
 * Group commit for `write-cache: false`: writes go to the file without
 * O_DSYNC, and one fdatasync covers every write completed since the previous
 * one started.
 *
 * - A write's callback runs only after a sync that started after the write
 *   completed has itself completed (writes completing while a sync runs wait
 *   for the next one).
 * - One sync in flight per backend: under load the batch grows by itself, up
 *   to the writes the export lets be in flight (its queue length).
 * - A lone write (nothing else outstanding) may instead be written with
 *   RWF_DSYNC, one operation instead of two: `LoneWriteChooser` keeps to
 *   the faster of the two ways, trying the other now and then.
 * - A failed sync fails every write it covered and every write and flush after
 *   it ("fsyncgate": after a failed fsync the kernel may have dropped the dirty
 *   pages and marked them clean, so a later sync succeeding proves nothing).
 *   The backend stays failed until it is reopened.
 * - With worker threads each thread commits its own writes, and a failure in
 *   one fails them all: the threads of one store share a word of memory that
 *   holds the first failed sync's errno. A sync that succeeds after another
 *   thread's failed does not count either (the kernel may have reported the
 *   error to that thread only).
 */
import type { IoCallback, SyncStats } from "./backend.js";
import { errnoError, type IoSite, ioError } from "./errors.js";
import { EXT4_MAGIC } from "./store.js";

function newSyncStats(): SyncStats {
  return { syncs: 0, syncedWrites: 0, maxBatch: 0, dsyncWrites: 0, syncErrors: 0 };
}

/**
 * statfs(2) f_type of filesystems whose write path syncs an RWF_DSYNC write
 * as fdatasync would (generic_write_sync). Others (FUSE, network filesystems)
 * get write + fdatasync.
 */
const DSYNC_HONOURED = new Set([EXT4_MAGIC, 0x58465342 /* xfs */, 0x9123683e /* btrfs */]);

/** Whether a lone write may be an RWF_DSYNC write: on a block device, or a file on one of those. */
export function dsyncHonoured(blockDevice: boolean, fsType: number | null): boolean {
  return blockDevice || (fsType !== null && DSYNC_HONOURED.has(fsType));
}

/** How a lone write is made durable. */
export type LoneWay = "dsync" | "sync";

/** Lone writes made the way in use between two trials of the other. */
const TRIAL_EVERY = 2048;
/** Lone writes in a trial, and in-use ones (those just before it) a trial is compared with. */
const TRIAL_LENGTH = 16;
/** How much faster than the way in use a trial must be to count as a win. */
const WIN_MARGIN = 0.1;
/** Wins in a row that make the other way the one in use. */
const WINS_TO_SWITCH = 2;

const otherWay = (w: LoneWay): LoneWay => (w === "dsync" ? "sync" : "dsync");
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * Picks how to make a lone write durable: one RWF_DSYNC write, or a write then
 * fdatasync. Which is faster depends on the filesystem and the device (on
 * ext4 the DSYNC write skips one io_uring round trip; on some devices the
 * separate flush overlaps better), so RWF_DSYNC starts, and now and then a
 * trial makes a few lone writes the other way. A trial is compared with the
 * lone writes just before it (at q 1, the last few milliseconds), so a disk
 * that changes speed over time does not decide it; by their medians, and
 * only wins in a row switch: these times have long tails (one write in a few
 * hundred takes 2-40 times the typical one), and a choice that followed
 * single samples, or means of a few, went the slower way for a sixth to a
 * half of the lone writes.
 */
export class LoneWriteChooser {
  private inUse: LoneWay;
  /** The way in use: its latest TRIAL_LENGTH times in ms, oldest first. */
  private recent: number[] = [];
  /** Picks of the way in use since the last trial; the first trial comes once `recent` is full. */
  private sinceTrial = TRIAL_EVERY - TRIAL_LENGTH;
  /** The trial under way: its picks still to make, its times, and the median it is compared with. */
  private trial: { left: number; times: number[]; baseline: number } | null = null;
  private wins = 0;

  constructor(private readonly dsyncAllowed: boolean) {
    this.inUse = dsyncAllowed ? "dsync" : "sync";
  }

  next(): LoneWay {
    if (!this.dsyncAllowed) return "sync";
    if (this.trial !== null) {
      if (this.trial.left > 0) {
        this.trial.left--;
        return otherWay(this.inUse);
      }
      this.judge(this.trial);
    }
    if (++this.sinceTrial > TRIAL_EVERY && this.recent.length === TRIAL_LENGTH) {
      this.sinceTrial = 0;
      this.trial = { left: TRIAL_LENGTH - 1, times: [], baseline: median(this.recent) };
      return otherWay(this.inUse);
    }
    return this.inUse;
  }

  /** A lone write made `way` is durable after `ms` (failed ones are not reported). */
  observe(way: LoneWay, ms: number): void {
    if (way === this.inUse) {
      this.recent.push(ms);
      if (this.recent.length > TRIAL_LENGTH) this.recent.shift();
    } else {
      this.trial?.times.push(ms);
    }
  }

  private judge(t: { times: number[]; baseline: number }): void {
    this.trial = null;
    // Most of its writes failed (they are not reported): it decides nothing.
    if (t.times.length < TRIAL_LENGTH / 2) return;
    this.wins = median(t.times) < t.baseline * (1 - WIN_MARGIN) ? this.wins + 1 : 0;
    if (this.wins < WINS_TO_SWITCH) return;
    this.inUse = otherWay(this.inUse);
    this.recent = []; // the old way's times
    this.wins = 0;
  }
}

/** The word threads of one store share: 0, or the errno of the first failed sync in any of them. */
export function newSyncFailureFlag(): SharedArrayBuffer {
  return new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT);
}

export class GroupCommit {
  readonly stats = newSyncStats();
  /** This thread's first failed sync. */
  private ownFailure: NodeJS.ErrnoException | null = null;
  private readonly sharedFailure: Int32Array;
  /** Completed writes (and flushes) waiting for a sync to start. */
  private waiting: IoCallback[] = [];
  /** Those covered by the sync in flight. */
  private covered: IoCallback[] = [];
  private syncing = false;
  private kickQueued = false;
  /** Writes issued and not yet handed to completed() (plain or DSYNC). */
  outstanding = 0;
  /** RWF_DSYNC writes in flight: each is a sync of its own, so no fdatasync starts meanwhile. */
  private dsyncing = 0;
  /**
   * The most writes (and flushes) one sync covers: the export's queue length.
   * Its queue bounds them already, except while a reload's replacement target
   * shares this backend with the one it replaces, and both have writes in flight.
   */
  limit = Number.POSITIVE_INFINITY;

  constructor(
    /** Starts one fdatasync of the backing store. */
    private readonly sync: (cb: IoCallback) => void,
    /** The file and export, named in the error writes get after a failed sync. */
    private readonly site: IoSite,
    /** See newSyncFailureFlag: shared with the other threads serving the store. */
    failureFlag: SharedArrayBuffer = newSyncFailureFlag(),
  ) {
    this.sharedFailure = new Int32Array(failureFlag);
  }

  /** The first failed sync's error, in this thread or another; writes and flushes fail from then on. */
  get failed(): NodeJS.ErrnoException | null {
    if (this.ownFailure !== null) return this.ownFailure;
    const errno = Atomics.load(this.sharedFailure, 0);
    if (errno === 0) return null;
    this.ownFailure = errnoError(-errno, "fdatasync", this.site, "it failed in another thread");
    return this.ownFailure;
  }

  private fail(err: NodeJS.ErrnoException): void {
    if (this.failed !== null) return;
    this.ownFailure = err;
    Atomics.compareExchange(this.sharedFailure, 0, 0, Math.abs(err.errno ?? 0) || 5);
  }

  /** Nothing written and not yet durable: a new write would be alone. */
  get idle(): boolean {
    return this.outstanding === 0 && !this.syncing && this.waiting.length === 0;
  }

  /**
   * A write (or a FLUSH, which needs every completed write durable) that has
   * completed: `cb` runs once a sync started after now has completed.
   */
  completed(cb: IoCallback): void {
    if (this.failed !== null) {
      cb(this.failedError());
      return;
    }
    this.waiting.push(cb);
    // Started after the current batch of completions has been handed over,
    // so writes completed together share the sync.
    if (!this.syncing && !this.kickQueued) {
      this.kickQueued = true;
      queueMicrotask(this.kick);
    }
  }

  /** A lone write goes out with RWF_DSYNC. */
  dsyncStarted(): void {
    this.outstanding++;
    this.dsyncing++;
    this.stats.dsyncWrites++;
  }

  /**
   * The RWF_DSYNC write is done. If it failed with EIO, or while other writes
   * were outstanding, its sync may have reported (and cleared) the write-back
   * error of other writes, this thread's or another's on the same file: the
   * backend fails as after a failed fdatasync. A lone ENOSPC is the write's own.
   * Returns what the write gets: its error, or, like a synced batch, the
   * failure of another thread's sync that this one may not have heard of.
   */
  dsyncDone(err: NodeJS.ErrnoException | null): NodeJS.ErrnoException | null {
    this.outstanding--;
    this.dsyncing--;
    const others = this.outstanding > 0 || this.syncing || this.waiting.length > 0;
    if (err !== null && (err.code === "EIO" || others)) this.fail(err);
    if (this.dsyncing === 0 && this.waiting.length > 0) this.kick();
    return err ?? (this.failed !== null ? this.failedError() : null);
  }

  /** The error every write and flush gets once a sync has failed. */
  failedError(): NodeJS.ErrnoException {
    const first = this.failed!;
    return ioError(
      "fdatasync",
      this.site,
      "EIO",
      -5,
      `an earlier fdatasync failed (${first.code ?? first.message}); writes since then may be lost, ` +
        "so writes and flushes fail until the export is reopened (aoectl reload or a restart)",
    );
  }

  private readonly kick = (): void => {
    this.kickQueued = false;
    if (this.syncing || this.dsyncing > 0 || this.waiting.length === 0) return;
    if (this.failed !== null) {
      const all = this.waiting;
      this.waiting = [];
      this.finish(all, this.failedError());
      return;
    }
    let batch = this.waiting;
    if (batch.length <= this.limit) this.waiting = [];
    else batch = this.waiting.splice(0, this.limit); // the rest, oldest first, for the next sync
    this.syncing = true;
    this.covered = batch;
    this.stats.syncs++;
    if (batch.length > this.stats.maxBatch) this.stats.maxBatch = batch.length;
    this.sync(this.synced);
  };

  private readonly synced = (err: NodeJS.ErrnoException | null): void => {
    this.syncing = false;
    const batch = this.covered;
    this.covered = [];
    if (err !== null) {
      this.stats.syncErrors++;
      this.fail(err);
    } else if (this.failed !== null) {
      // Another thread's sync failed meanwhile: this one may not have heard of it.
      err = this.failedError();
    } else this.stats.syncedWrites += batch.length;
    this.finish(batch, err);
    // Writes that completed during this sync have waited long enough.
    if (this.waiting.length > 0) this.kick();
  };

  private finish(batch: IoCallback[], err: NodeJS.ErrnoException | null): void {
    for (const cb of batch) cb(err);
  }
}
