/**
 * Errors a port's packet socket reports (ENETDOWN when its link goes down, or
 * was down when it was bound) go to the log with the interface name: the
 * first of a burst at once, then one line per SOCKET_ERROR_BURST_MS counting
 * the rest, so a flapping link cannot flood the log.
 */
import type { Logger } from "pino";

export const SOCKET_ERROR_BURST_MS = 10_000;

export function logSocketErrors(log: Logger, iface: string): (err: Error) => void {
  let quietUntil = 0;
  let repeated = 0;
  let last = "";
  let timer: NodeJS.Timeout | null = null;
  const summarize = (): void => {
    timer = null;
    log.warn({ interface: iface, err: last, repeated }, "socket errors repeated");
    repeated = 0;
  };
  return (err) => {
    const now = performance.now();
    if (now < quietUntil) {
      repeated++;
      last = err.message;
      if (timer === null) {
        timer = setTimeout(summarize, quietUntil - now);
        timer.unref();
      }
      return;
    }
    quietUntil = now + SOCKET_ERROR_BURST_MS;
    log.warn(
      { interface: iface, err: err.message, code: (err as NodeJS.ErrnoException).code },
      "socket error",
    );
  };
}
