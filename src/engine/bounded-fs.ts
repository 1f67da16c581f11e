/**
 * Calls that touch a backing store's filesystem outside the data path (a
 * reload's stats and opens), bounded so that a filesystem that stops
 * answering (a dead NFS server, a hung FUSE daemon) cannot hang a reload or a
 * shutdown: after the timeout the caller goes on without the answer. They run
 * on libuv's thread pool, never on the event loop, and at most one stat per
 * path is outstanding, so a hung path holds one pool thread, not one per reload.
 */
import { defaultStat, type StatInfo } from "../config/load.js";

/** How long a reload waits for a backing store's filesystem to answer a stat or an open. */
export const FS_TIMEOUT_MS = 5000;

/** The stat still running for each path (a hung one stays here until it answers). */
const running = new Map<string, Promise<StatInfo>>();

/** `promise`'s value, or `late` if it has not settled within `ms`. */
export function within<T, L>(promise: Promise<T>, ms: number, late: L): Promise<T | L> {
  return new Promise<T | L>((resolve, reject) => {
    const timer = setTimeout(() => resolve(late), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/** fs.stat of `path` as StatInfo, or null when the filesystem has not answered within `ms`. */
export function boundedStat(path: string, ms = FS_TIMEOUT_MS): Promise<StatInfo | null> {
  let stat = running.get(path);
  if (stat === undefined) {
    stat = defaultStat(path);
    running.set(path, stat);
    const done = stat;
    void done.finally(() => {
      if (running.get(path) === done) running.delete(path);
    });
  }
  return within(stat, ms, null);
}
