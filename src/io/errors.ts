/**
 * I/O errors that say where they happened: the system call, the file and the
 * export, e.g. `pread /var/lib/x.img (export e0.1): EIO (i/o error)`, whatever
 * the engine. They keep Node's fields (code, errno, syscall, path).
 */
import { getSystemErrorMap } from "node:util";

/** The file an operation is on and the export it backs (null: no export, e.g. a bare ring in tests). */
export interface IoSite {
  readonly path: string;
  readonly exportName: string | null;
}

/** `path (export name)`. */
function where(site: IoSite): string {
  return `${site.path}${site.exportName === null ? "" : ` (export ${site.exportName})`}`;
}

/** `syscall path (export name): code (detail)`, with Node's error fields. */
export function ioError(
  syscall: string,
  site: IoSite | null,
  code: string,
  errno: number,
  detail: string,
): NodeJS.ErrnoException {
  const at = site === null ? "" : ` ${where(site)}`;
  const err: NodeJS.ErrnoException = new Error(`${syscall}${at}: ${code} (${detail})`);
  err.code = code;
  err.errno = errno;
  err.syscall = syscall;
  if (site !== null) Object.assign(err, { path: site.path, exportName: site.exportName });
  return err;
}

/** The error names export `name` in its message (ioError, BackendError, and errors marked so). */
export function namesExport(err: unknown, name: string): boolean {
  return err instanceof Error && (err as { exportName?: unknown }).exportName === name;
}

let errnoNames: Map<number, [string, string]> | undefined;

/** Node's name and description of a negative errno; libuv knows a few by neither (ENOTBLK). */
function errnoParts(negErrno: number): [code: string | null, desc: string | null] {
  errnoNames ??= getSystemErrorMap();
  return errnoNames.get(negErrno) ?? [null, null];
}

const withExtra = (detail: string, extra?: string) =>
  extra === undefined ? detail : `${detail}; ${extra}`;

/** From a negative errno, as io_uring completes with; `extra` (what happened, what to do) after its description. */
export function errnoError(
  negErrno: number,
  syscall: string,
  site: IoSite | null,
  extra?: string,
): NodeJS.ErrnoException {
  const [code, desc] = errnoParts(negErrno);
  const name = code ?? `Unknown system error ${-negErrno}`;
  return ioError(syscall, site, name, negErrno, withExtra(desc ?? "unknown error", extra));
}

/**
 * Node's own fs error (code "EIO: i/o error, read"), or the addon's, restated
 * with the call, the file and the export, and `extra` (what to do) after the
 * error's description.
 */
export function fromNodeError(
  err: NodeJS.ErrnoException,
  syscall: string,
  site: IoSite,
  extra?: string,
): NodeJS.ErrnoException {
  if (typeof err.errno === "number" && err.errno < 0) {
    // Where Node knows it not, the addon's name and message say more than "unknown error".
    const [code, desc] = errnoParts(err.errno);
    const name = code ?? err.code ?? `Unknown system error ${-err.errno}`;
    return ioError(syscall, site, name, err.errno, withExtra(desc ?? err.message, extra));
  }
  return ioError(syscall, site, err.code ?? "EIO", err.errno ?? -5, withExtra(err.message, extra));
}

/** A read or write that moved fewer bytes than asked: the backing store shrank. EIO. */
export function shortIo(
  syscall: string,
  site: IoSite | null,
  at: number,
  n: number,
  len: number,
): NodeJS.ErrnoException {
  const op = syscall.endsWith("read") ? "read" : "write";
  return ioError(
    syscall,
    site,
    "EIO",
    -5,
    `short ${op} at ${at}: ${n} of ${len} bytes; the backing store shrank?`,
  );
}

/**
 * A backing store that cannot be served, though no system call failed (not a
 * file, a window past its end): names the file, the export and what to change.
 */
export class BackendError extends Error {
  readonly path: string;
  readonly exportName: string | null;

  constructor(site: IoSite, message: string) {
    super(`${where(site)}: ${message}`);
    this.path = site.path;
    this.exportName = site.exportName;
  }
}
