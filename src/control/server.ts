/**
 * The control socket: aoectl's admin commands (status, stats, reload, show,
 * clear) over newline-delimited JSON on a unix socket (see protocol.ts).
 * Access is the socket file's permissions: mode 0660, owned by the daemon's
 * user and optionally a configured group. This module owns the socket (its
 * life, its permissions, the line framing); commands.ts answers the requests.
 */

import type fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import type { Logger } from "pino";
import { CommandHandler, type CommandOptions } from "./commands.js";
import { MAX_LINE, PROTOCOL_VERSION } from "./protocol.js";

const SOCKET_MODE = 0o660;

export interface ControlServerOptions extends CommandOptions {
  /** Where to create the socket. */
  path: string;
  /** Group to give the socket (null: the daemon's own). */
  gid?: number | null;
}

export interface ControlServer {
  readonly path: string;
  /** Stops listening, drops open connections and removes the socket file. */
  close(): Promise<void>;
}

/** Connects to `p`; resolves true if something accepts, false if nothing listens (stale). */
function probe(p: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const s = net.connect(p);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", (err: NodeJS.ErrnoException) => {
      s.destroy();
      if (err.code === "ECONNREFUSED" || err.code === "ENOENT") resolve(false);
      else reject(err);
    });
  });
}

/** Another daemon holds the socket path. */
class AlreadyRunningError extends Error {
  constructor(p: string) {
    super(
      `another aoed is already running: something answers on the control socket ${p}; stop it first, or give this one another \`control-socket:\``,
    );
    this.name = "AlreadyRunningError";
  }
}

/** Makes way for the socket: removes a stale one, refuses if a live daemon holds it. */
async function clearStale(p: string, log?: Logger): Promise<void> {
  let st: fs.Stats;
  try {
    st = await fsp.lstat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  if (!st.isSocket())
    throw new Error(
      `${p} exists and is not a socket; remove it or choose another \`control-socket:\``,
    );
  if (await probe(p)) throw new AlreadyRunningError(p);
  await fsp.unlink(p).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "ENOENT") throw err;
  });
  log?.info({ socket: p }, "removed a stale control socket (nothing listened on it)");
}

/** Listens with mode 0660 from the start: the umask covers the moment between bind and chmod. */
function listen(server: net.Server, p: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => reject(err);
    server.once("error", onError);
    const old = process.umask(0o117);
    try {
      server.listen(p, () => {
        server.off("error", onError);
        resolve();
      });
    } finally {
      process.umask(old);
    }
  });
}

export async function startControlServer(opts: ControlServerOptions): Promise<ControlServer> {
  const p = path.resolve(opts.path);
  const log = opts.log;
  await fsp.mkdir(path.dirname(p), { recursive: true, mode: 0o755 });
  await clearStale(p, log);

  const conns = new Set<net.Socket>();
  const handler = new CommandHandler(opts);
  const server = net.createServer((sock) => {
    conns.add(sock);
    sock.on("close", () => conns.delete(sock));
    serve(sock, handler);
  });
  // Bound under a private name, given its mode and group, then linked into place: the
  // socket appears complete, link() refuses to replace one another daemon just made,
  // and libuv, which unlinks the name it bound when the server closes, never removes
  // the real path from under a successor.
  const tmp = path.join(
    path.dirname(p),
    `.${path.basename(p)}.${process.pid}.${Math.random().toString(36).slice(2, 10)}`,
  );
  let ino: number;
  try {
    await listen(server, tmp);
    await fsp.chmod(tmp, SOCKET_MODE);
    if (opts.gid !== null && opts.gid !== undefined) await fsp.chown(tmp, -1, opts.gid);
    ino = (await fsp.stat(tmp)).ino;
    await fsp.link(tmp, p).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code === "EEXIST") throw new AlreadyRunningError(p);
      if (err.code !== "EPERM" && err.code !== "ENOTSUP" && err.code !== "EOPNOTSUPP") throw err;
      // No hard links on this filesystem: rename, which would replace, after one more look.
      await clearStale(p, log);
      await fsp.rename(tmp, p);
    });
  } catch (err) {
    await new Promise((resolve) => server.close(resolve));
    await fsp.unlink(tmp).catch(() => {});
    if (err instanceof AlreadyRunningError) throw err;
    throw new Error(`cannot set up the control socket ${p}: ${(err as Error).message}`);
  } finally {
    await fsp.unlink(tmp).catch(() => {});
  }

  let closed: Promise<void> | null = null;
  return {
    path: p,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const c of conns) c.destroy();
      }).then(async () => {
        // Only our own socket: a successor may already have replaced it.
        const st = await fsp.stat(p).catch(() => null);
        if (st?.ino === ino) await fsp.unlink(p).catch(() => {});
      });
      return closed;
    },
  };
}

/** Reads request lines from one connection and answers each, in order. */
function serve(sock: net.Socket, handler: CommandHandler): void {
  let buffered = "";
  let queue = Promise.resolve();
  sock.setEncoding("utf8");
  sock.on("error", () => sock.destroy()); // the client went away mid-answer: nothing to do
  sock.on("data", (chunk: string) => {
    buffered += chunk;
    let nl = buffered.indexOf("\n");
    while (nl >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line !== "")
        queue = queue.then(async () => {
          const reply = await handler.handleLine(line);
          if (!sock.destroyed) sock.write(`${JSON.stringify(reply)}\n`);
        });
      nl = buffered.indexOf("\n");
    }
    if (buffered.length > MAX_LINE) {
      queue = queue.then(() => {
        sock.end(
          `${JSON.stringify({ v: PROTOCOL_VERSION, ok: false, error: `request longer than ${MAX_LINE} bytes` })}\n`,
        );
      });
      buffered = "";
      sock.pause();
    }
  });
}
