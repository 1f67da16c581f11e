/**
 * An export's backing store as the engine sees it across reloads: which
 * settings need it reopened, opening it with a deadline, and the two reasons
 * a running one is reopened or handed over (a file that grew, a block device
 * claimed exclusively by the target being replaced).
 */
import fs from "node:fs";
import type { ExportConfig } from "../config/types.js";
import type { Backend } from "../io/backend.js";
import { openFileBackend } from "../io/open.js";
import { boundedStat, FS_TIMEOUT_MS, within } from "./bounded-fs.js";
import type { Target } from "./target.js";

/** Settings that need the backing store reopened when they change. */
export function backendKey(e: ExportConfig): unknown[] {
  return [e.path, e.readOnly, e.directIo, e.writeCache, e.io, e.offset, e.length];
}

/**
 * Opens an export's backend, giving up after FS_TIMEOUT_MS: the stat, statfs
 * and opens run on the thread pool, and a filesystem that does not answer
 * must not hang the reload (or every reload after it). A backend that opens
 * after all is closed again. `aoed check` opens stores this way too.
 */
export async function openBackend(
  e: ExportConfig,
  sharedClaim = false,
  workerThreads = false,
): Promise<Backend> {
  const opening = openFileBackend({
    path: e.path,
    exportName: e.name,
    readOnly: e.readOnly,
    directIo: e.directIo,
    writeCache: e.writeCache,
    io: e.io,
    offset: e.offset,
    length: e.length,
    sharedClaim,
    workerThreads,
  });
  const backend = await within(opening, FS_TIMEOUT_MS, null);
  if (backend !== null) return backend;
  void opening.then(
    (late) => late.close(),
    () => {},
  );
  throw Object.assign(
    new Error(
      `stat, statfs, open ${e.path} (export ${e.name}): the filesystem did not answer within ${FS_TIMEOUT_MS / 1000} s: not opened`,
    ),
    { exportName: e.name },
  );
}

/**
 * A replaced export's new backend on the block device its old one holds
 * exclusively: O_EXCL would fail with EBUSY, so the new one opens shared and
 * takes the claim over once the old one has drained and closed.
 */
export function inheritsClaim(old: Target | null, next: ExportConfig): boolean {
  if (old === null || !old.backend.caps.blockDevice) return false;
  try {
    return fs.realpathSync(old.cfg.path) === fs.realpathSync(next.path);
  } catch {
    return false;
  }
}

/**
 * True when the file behind a running export has grown since it was opened.
 * Not asked of a stuck backend, and a filesystem that does not answer within
 * FS_TIMEOUT_MS counts as no growth: the reload goes on without it.
 */
export async function grew(target: Target): Promise<boolean> {
  const e = target.cfg;
  if (e.length !== null || target.backend.caps.blockDevice || target.stuck) return false;
  const st = await boundedStat(e.path);
  return st !== null && "size" in st && st.size - e.offset >= target.backend.size + 512;
}
