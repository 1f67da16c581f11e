import fs from "node:fs";
import { destination, type Logger, pino } from "pino";

export type { Logger };

const LEVELS: Record<number, string> = {
  10: "TRACE",
  20: "DEBUG",
  30: "INFO",
  40: "WARN",
  50: "ERROR",
  60: "FATAL",
};

/** sd-daemon(3) priorities for pino levels: what `journalctl -p` filters on. */
const PRIORITIES: Record<number, number> = { 10: 7, 20: 7, 30: 6, 40: 4, 50: 3, 60: 2 };

/** The `<N>` prefix journald reads for a pino level (unknown levels: info). */
export function journalPrefix(level: number): string {
  return `<${PRIORITIES[level] ?? 6}>`;
}

/**
 * Whether file descriptor `fd` is the journal's stream: systemd sets
 * JOURNAL_STREAM=DEV:INODE for the socket it connects stdout/stderr to, and a
 * descriptor redirected elsewhere (a pipe, a file) no longer matches.
 */
export function isJournalStream(fd: number, env: NodeJS.ProcessEnv = process.env): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? "");
  if (m === null) return false;
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1] as string) && st.ino === BigInt(m[2] as string);
  } catch {
    return false;
  }
}

/** One value on a text line: a string as it is unless it would break the line or read ambiguously. */
const textValue = (v: unknown) =>
  typeof v === "string" && !/[\s"]/.test(v) && v !== "" ? v : JSON.stringify(v);

/**
 * One pino JSON line as a readable line: time, level, message, then key=value
 * fields. For the journal (`journal`), no clock (journald stamps each entry),
 * the `<N>` priority prefix, and no line breaks inside an entry.
 */
export function prettyLine(json: string, journal = false): string {
  const { level, time, msg, pid: _pid, ...fields } = JSON.parse(json) as Record<string, unknown>;
  const rest = Object.entries(fields)
    .map(
      ([k, v]) => `${k}=${journal ? textValue(v) : typeof v === "string" ? v : JSON.stringify(v)}`,
    )
    .join(" ");
  const name = (LEVELS[level as number] ?? String(level)).padEnd(5);
  const text = `${msg ?? ""}${rest ? `  ${rest}` : ""}`;
  if (journal) return `${journalPrefix(level as number)}${name} ${text.replace(/[\r\n]+/g, " ")}\n`;
  const clock = typeof time === "string" ? time.slice(11, 23) : "";
  return `${clock} ${name} ${text}\n`;
}

/**
 * Log lines on stdout: JSON (which log shippers take as it is) or readable
 * lines (`pretty`; the default in a terminal). When stdout is the journal,
 * every line starts with its `<N>` priority, so `journalctl -p err` and
 * `systemctl status` see the level; see logFormatDefault().
 * Writes are synchronous, so a fatal line is not lost to process.exit().
 */
export function createLogger(
  level = "info",
  pretty = logFormatDefault() === "pretty",
  journal = isJournalStream(1),
): Logger {
  const options = { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (!pretty && !journal) return pino(options);
  const out = destination({ fd: 1, sync: true });
  const format = pretty
    ? (line: string) => prettyLine(line, journal)
    : (line: string) => `${journalPrefix((JSON.parse(line) as { level: number }).level)}${line}`;
  return pino(options, { write: (line: string) => out.write(format(line)) });
}

/** Readable lines in a terminal and in the journal, JSON into pipes and files. */
export function logFormatDefault(): "json" | "pretty" {
  return process.stdout.isTTY === true || isJournalStream(1) ? "pretty" : "json";
}
