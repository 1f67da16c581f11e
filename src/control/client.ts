/** aoectl's side of the control socket (protocol.ts): one connection, requests answered in order. */
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { groupById } from "../util/groups.js";
import { PROTOCOL_VERSION, type Request, type Response } from "./protocol.js";

const DEFAULT_SOCKET = "/run/aoed/aoed.sock";

/** The socket aoectl uses: --socket, else $AOED_SOCKET, else the default. */
export function socketPath(option: string | undefined): string {
  return option ?? (process.env.AOED_SOCKET || DEFAULT_SOCKET);
}

/** The daemon answered ok:false. */
export class ControlError extends Error {
  constructor(
    message: string,
    readonly errors: string[] = [],
  ) {
    super(message);
    this.name = "ControlError";
  }
}

/** "srw-rw----" */
function modeString(mode: number): string {
  const bits = "rwxrwxrwx";
  let s = "";
  for (let i = 0; i < 9; i++) s += mode & (1 << (8 - i)) ? bits[i] : "-";
  return s;
}

/** Why aoectl cannot use the socket at `p`, for a human. */
function describeConnectError(p: string, err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case "ENOENT":
      return `aoed is not running (no socket at ${p}); if it runs with another \`control-socket:\`, give --socket PATH or set AOED_SOCKET`;
    case "ECONNREFUSED":
      return `aoed is not running (no socket at ${p}: the file is left over and nothing listens on it)`;
    case "ENOTSOCK":
      return `${p} is not a socket`;
    case "EACCES":
    case "EPERM":
      return accessMessage(p);
    default:
      return `cannot connect to aoed at ${p}: ${err.message}`;
  }
}

function accessMessage(p: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    return `permission denied on ${path.dirname(p)}: this user cannot reach ${p}; run aoectl as root`;
  }
  const group = groupById(st.gid);
  const groupName = group?.name ?? String(st.gid);
  const uid = process.getuid?.();
  let user = "";
  try {
    user = os.userInfo().username;
  } catch {
    // no passwd entry
  }
  const listed = group?.members.includes(user) ?? false;
  const what = `permission denied on ${p} (s${modeString(st.mode)}, owner uid ${st.uid}, group ${groupName})`;
  if (st.gid === 0 || (st.mode & 0o060) !== 0o060)
    return `${what}: only root can use it${uid === 0 ? "" : "; run aoectl as root (sudo)"}, or set \`control-group:\` in aoed's config to let a group in`;
  if (listed && !process.getgroups?.().includes(st.gid))
    return `${what}: you were added to group ${groupName} but this session predates it; log in again (or \`newgrp ${groupName}\`)`;
  return `${what}: run aoectl as root or as a member of group ${groupName} (\`usermod -aG ${groupName} USER\`, then log in again)`;
}

export class ControlClient {
  private buffered = "";
  private nextId = 1;
  private readonly waiting = new Map<
    number,
    { resolve: (r: Response) => void; reject: (e: Error) => void }
  >();
  private failure: Error | null = null;

  private constructor(
    readonly path: string,
    private readonly sock: net.Socket,
  ) {
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => this.onData(chunk));
    sock.on("error", (err) => this.fail(new Error(`connection to aoed lost: ${err.message}`)));
    sock.on("close", () => this.fail(new Error("aoed closed the connection")));
  }

  /** Connects, or rejects with a message saying why not (not running, permissions). */
  static connect(p: string): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(p);
      const onError = (err: NodeJS.ErrnoException): void => {
        sock.destroy();
        reject(new Error(describeConnectError(p, err)));
      };
      sock.once("error", onError);
      sock.once("connect", () => {
        sock.off("error", onError);
        resolve(new ControlClient(p, sock));
      });
    });
  }

  /** Sends a request; resolves with its result, rejects with ControlError if the daemon refused. */
  async request<T>(req: Request): Promise<T> {
    if (this.failure) throw this.failure;
    const id = this.nextId++;
    const res = await new Promise<Response>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.sock.write(`${JSON.stringify({ v: PROTOCOL_VERSION, id, ...req })}\n`);
    });
    if (!res.ok) throw new ControlError(res.error, res.errors ?? []);
    return res.result as T;
  }

  close(): void {
    this.failure ??= new Error("closed");
    this.sock.end();
    this.sock.destroy();
  }

  private onData(chunk: string): void {
    this.buffered += chunk;
    let nl = this.buffered.indexOf("\n");
    while (nl >= 0) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      nl = this.buffered.indexOf("\n");
      let res: Response;
      try {
        res = JSON.parse(line) as Response;
      } catch {
        this.fail(new Error("aoed sent something that is not JSON"));
        return;
      }
      const w = typeof res.id === "number" ? this.waiting.get(res.id) : undefined;
      if (w) {
        this.waiting.delete(res.id as number);
        w.resolve(res);
      } else if (!res.ok) {
        // An answer to no request: the daemon refused the connection as a whole.
        this.fail(new ControlError(res.error));
      }
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiting.values()) w.reject(this.failure);
    this.waiting.clear();
  }
}

/** One request on a fresh connection. */
export async function controlRequest<T>(p: string, req: Request): Promise<T> {
  const c = await ControlClient.connect(p);
  try {
    return await c.request<T>(req);
  } finally {
    c.close();
  }
}
