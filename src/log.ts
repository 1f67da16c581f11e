import { type Logger, pino } from "pino";

export type { Logger };

/** JSON lines to stdout: journald and log shippers take them as they are. */
export function createLogger(level = "info"): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}
