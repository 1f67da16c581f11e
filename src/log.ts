import { type Logger, pino } from "pino";

export type { Logger };

const LEVELS: Record<number, string> = {
  10: "TRACE",
  20: "DEBUG",
  30: "INFO",
  40: "WARN",
  50: "ERROR",
  60: "FATAL",
};

/** One pino JSON line as a terminal line: time, level, message, then key=value fields. */
export function prettyLine(json: string): string {
  const { level, time, msg, pid: _pid, ...fields } = JSON.parse(json) as Record<string, unknown>;
  const rest = Object.entries(fields)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
  const clock = typeof time === "string" ? time.slice(11, 23) : "";
  return `${clock} ${(LEVELS[level as number] ?? String(level)).padEnd(5)} ${msg ?? ""}${rest ? `  ${rest}` : ""}\n`;
}

/**
 * JSON lines on stdout, which journald and log shippers take as they are;
 * readable lines instead when stdout is a terminal (or `pretty` says so).
 */
export function createLogger(level = "info", pretty = process.stdout.isTTY === true): Logger {
  const options = { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (!pretty) return pino(options);
  return pino(options, { write: (line: string) => process.stdout.write(prettyLine(line)) });
}
