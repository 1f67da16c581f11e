/**
 * sd_notify(3) for aoed under systemd (Type=notify, packaging/aoed.service).
 *
 * When systemd starts the daemon it sets $NOTIFY_SOCKET to an AF_UNIX datagram
 * socket (a path, or "@name" for an abstract one). We send:
 *   READY=1                          once every export is open and announced
 *   RELOADING=1 + MONOTONIC_USEC=... when a reload starts, READY=1 when it is done
 *   STOPPING=1                       when shutdown begins
 *   WATCHDOG=1                       every half $WATCHDOG_USEC, from a timer
 * each with a STATUS= line for `systemctl status`. Without $NOTIFY_SOCKET every
 * call does nothing. Node's dgram has no unix datagram sockets, so the one
 * sendto() is the native addon's sdNotify(); the addon is loaded only when
 * there is a socket to talk to.
 */
import { loadNative } from "../native/addon.js";

/** Sends one datagram: 0 or a (positive) errno. */
export type NotifySend = (socketPath: string, message: string) => number;

export interface Notifier {
  /** Whether $NOTIFY_SOCKET was set (to something we can use). */
  readonly enabled: boolean;
  ready(status?: string): void;
  /** RELOADING=1 with MONOTONIC_USEC, as systemd >= 253 wants; older versions ignore the extra field. */
  reloading(status?: string): void;
  stopping(status?: string): void;
  status(status: string): void;
  /**
   * With $WATCHDOG_USEC (WatchdogSec=) meant for this process, sends
   * WATCHDOG=1 from an event-loop timer every half period, so a loop wedged
   * for longer than WatchdogSec= misses it and systemd kills and restarts the
   * daemon. Returns the period in ms (null: no watchdog) and a stop function.
   */
  startWatchdog(): { periodMs: number | null; stop: () => void };
}

export interface NotifierOptions {
  env?: NodeJS.ProcessEnv;
  send?: NotifySend;
  /** Called when a message cannot be sent (once per distinct problem). */
  onError?: (message: string) => void;
}

/** CLOCK_MONOTONIC in microseconds: libuv's hrtime reads CLOCK_MONOTONIC on Linux. */
function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

/** One line per field; values must not contain newlines (STATUS text is flattened). */
export function formatMessage(fields: Record<string, string | number | bigint>): string {
  return Object.entries(fields)
    .map(([k, v]) => `${k}=${String(v).replace(/[\r\n]+/g, " ")}`)
    .join("\n");
}

const nativeSend: NotifySend = (socketPath, message) => loadNative().sdNotify(socketPath, message);

export function createNotifier(opts: NotifierOptions = {}): Notifier {
  const env = opts.env ?? process.env;
  const send = opts.send ?? nativeSend;
  const reported = new Set<string>();
  const report = (message: string) => {
    if (reported.has(message)) return;
    reported.add(message);
    opts.onError?.(message);
  };

  const raw = env.NOTIFY_SOCKET ?? "";
  let socketPath: string | null = null;
  if (raw !== "") {
    if ((raw.startsWith("/") || raw.startsWith("@")) && raw.length > 1) socketPath = raw;
    else
      report(
        `NOTIFY_SOCKET=${raw}: not a unix socket path or @abstract name; not notifying systemd`,
      );
  }

  const notify = (fields: Record<string, string | number | bigint>) => {
    if (socketPath === null) return;
    let err: number;
    try {
      err = send(socketPath, formatMessage(fields));
    } catch (e) {
      report(`cannot notify systemd: ${(e as Error).message}`);
      return;
    }
    if (err !== 0) report(`cannot notify systemd at ${socketPath}: errno ${err}`);
  };

  const withStatus = (fields: Record<string, string | number | bigint>, status?: string) =>
    status === undefined ? fields : { ...fields, STATUS: status };

  return {
    enabled: socketPath !== null,
    ready: (status) => notify(withStatus({ READY: 1 }, status)),
    reloading: (status) =>
      notify(withStatus({ RELOADING: 1, MONOTONIC_USEC: monotonicUsec() }, status)),
    stopping: (status) => notify(withStatus({ STOPPING: 1 }, status)),
    status: (status) => notify({ STATUS: status }),
    startWatchdog: () => {
      const usec = Number(env.WATCHDOG_USEC ?? "");
      const pid = env.WATCHDOG_PID;
      // WATCHDOG_PID names the process systemd watches; a child that inherited it must not answer.
      if (socketPath === null || !(usec > 0) || (pid !== undefined && pid !== String(process.pid)))
        return { periodMs: null, stop: () => {} };
      const periodMs = Math.max(1, Math.floor(usec / 2000));
      const timer = setInterval(() => notify({ WATCHDOG: 1 }), periodMs);
      timer.unref();
      notify({ WATCHDOG: 1 });
      return { periodMs, stop: () => clearInterval(timer) };
    },
  };
}

/** What notifyReloads() needs of the Reloader (src/engine/reload.ts). */
export interface Reloadable {
  reload(reason: string): Promise<{ ok: boolean }>;
}

/**
 * Wraps reloader.reload so that every reload, whoever asks for it (SIGHUP, a
 * config file change, the control socket), is bracketed by RELOADING=1 and
 * READY=1. Overlapping reloads send READY=1 once the last one has finished.
 * A failed reload still ends with READY=1: the previous config keeps serving.
 */
export function notifyReloads(
  reloader: Reloadable,
  notifier: Notifier,
  status: (ok: boolean) => string,
): void {
  if (!notifier.enabled) return;
  const reload = reloader.reload.bind(reloader);
  let pending = 0;
  let allOk = true;
  reloader.reload = (reason: string) => {
    if (pending++ === 0) {
      allOk = true;
      notifier.reloading(`reloading config (${reason})`);
    }
    const run = reload(reason);
    const done = (ok: boolean) => {
      allOk &&= ok;
      if (--pending === 0) notifier.ready(status(allOk));
    };
    run.then(
      (r) => done(r.ok),
      () => done(false),
    );
    return run;
  };
}
