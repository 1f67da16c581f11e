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

/** `syscall path (export name): code (detail)`, with Node's error fields. */
export function ioError(
  syscall: string,
  site: IoSite | null,
  code: string,
  errno: number,
  detail: string,
): NodeJS.ErrnoException {
  const where =
    site === null
      ? ""
      : ` ${site.path}${site.exportName === null ? "" : ` (export ${site.exportName})`}`;
  const err: NodeJS.ErrnoException = new Error(`${syscall}${where}: ${code} (${detail})`);
  err.code = code;
  err.errno = errno;
  err.syscall = syscall;
  if (site !== null) err.path = site.path;
  return err;
}

let errnoNames: Map<number, [string, string]> | undefined;

/** From a negative errno, as io_uring completes with. */
export function errnoError(
  negErrno: number,
  syscall: string,
  site: IoSite | null,
  extra?: string,
): NodeJS.ErrnoException {
  errnoNames ??= getSystemErrorMap();
  const [code, desc] = errnoNames.get(negErrno) ?? [`Unknown system error ${-negErrno}`, ""];
  const detail = desc || "unknown error";
  return ioError(
    syscall,
    site,
    code,
    negErrno,
    extra === undefined ? detail : `${detail}; ${extra}`,
  );
}

/** Node's own fs error (code "EIO: i/o error, read") restated with the call, the file and the export. */
export function fromNodeError(
  err: NodeJS.ErrnoException,
  syscall: string,
  site: IoSite,
): NodeJS.ErrnoException {
  if (typeof err.errno === "number" && err.errno < 0) return errnoError(err.errno, syscall, site);
  return ioError(syscall, site, err.code ?? "EIO", err.errno ?? -5, err.message);
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

/** An error opening a backing store that the admin can act on: names the path and what to change. */
export class BackendError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
  }
}
