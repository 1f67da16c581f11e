/**
 * Diagnostics produced by the config loader, and the helpers that make them
 * readable: key-path formatting, did-you-mean suggestions, value rendering.
 */

export type Severity = "error" | "warning";

export interface Diagnostic {
  severity: Severity;
  /** The config file (or source name such as "embedded:demo"). */
  file: string;
  /** 1-based; 0 when the problem concerns the whole file (e.g. it cannot be read). */
  line: number;
  /** 1-based; 0 when line is 0. */
  column: number;
  /** Key path of the offending node, like "exports[1].shelf"; "" for the whole document. */
  path: string;
  /** What is wrong (and, where possible, what would be right). */
  message: string;
  /** A suggestion, e.g. "did you mean `write-cache`?". */
  hint?: string;
  /**
   * A warning about something the config names that does not exist now (a
   * backing file or device, an interface): the daemon starts the export when it
   * appears, `aoed check` fails. Absent things are often typos, so they are said.
   */
  absent?: true;
}

export interface FormatOptions {
  /** The config text: when given, the offending line is quoted with a caret under the column. */
  source?: string;
}

/**
 * `file:line:column: error: exports[1].shelf: message (hint)`.
 * With `opts.source`, two more lines show the offending source line and a caret.
 */
export function formatDiagnostic(d: Diagnostic, opts: FormatOptions = {}): string {
  const where = d.line > 0 ? `${d.file}:${d.line}:${d.column}` : d.file;
  const path = d.path ? `${d.path}: ` : "";
  const hint = d.hint ? ` (${d.hint})` : "";
  let out = `${where}: ${d.severity}: ${path}${d.message}${hint}`;
  if (opts.source !== undefined && d.line > 0) {
    const text = opts.source.split(/\r?\n/)[d.line - 1];
    if (text !== undefined) {
      const gutter = String(d.line);
      const shown = text.replace(/\t/g, " ");
      out += `\n  ${gutter} | ${shown}\n  ${" ".repeat(gutter.length)} | ${" ".repeat(Math.max(0, d.column - 1))}^`;
    }
  }
  return out;
}

export type PathSegment = string | number;

const SIMPLE_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** ["exports", 1, "shelf"] -> "exports[1].shelf"; odd keys are quoted: interfaces["eth0.100"]. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (SIMPLE_KEY.test(seg)) out += out === "" ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** Optimal-string-alignment distance (Levenshtein plus adjacent transpositions). */
function editDistance(a: string, b: string): number {
  const m = a.length;
  const n = b.length;
  let prev2: number[] = [];
  let prev: number[] = Array.from({ length: n + 1 }, (_, j) => j);
  for (let i = 1; i <= m; i++) {
    const cur: number[] = [i];
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        v = Math.min(v, prev2[j - 2]! + 1);
      }
      cur.push(v);
    }
    prev2 = prev;
    prev = cur;
  }
  return prev[n]!;
}

const squash = (s: string): string => s.toLowerCase().replace(/[-_ .]/g, "");

/**
 * The candidate the user most likely meant, or undefined.
 * Case and separators are ignored first (writeCache, write_cache -> write-cache),
 * then one word being a prefix of the other (warning -> warn), then the closest
 * candidate within a third of the word's length wins.
 */
export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  const list = [...candidates];
  const sq = squash(word);
  const same = list.find((c) => squash(c) === sq);
  if (same !== undefined) return same;
  if (sq.length >= 3) {
    const prefix = list.find((c) => {
      const sc = squash(c);
      return sc.length >= 3 && (sc.startsWith(sq) || sq.startsWith(sc));
    });
    if (prefix !== undefined) return prefix;
  }
  let best: string | undefined;
  let bestDist = Number.POSITIVE_INFINITY;
  const lw = word.toLowerCase();
  for (const c of list) {
    const d = editDistance(lw, c.toLowerCase());
    if (d < bestDist) {
      best = c;
      bestDist = d;
    }
  }
  const limit = Math.max(1, Math.floor(Math.max(word.length, 3) / 3));
  return bestDist <= limit ? best : undefined;
}

/**
 * A value as the user would recognise it in a message: "eth0", 42, true, a list, a mapping.
 * With `typed`, scalars say what they are ("the number 12"), for type mismatches.
 */
export function describeValue(v: unknown, typed = false): string {
  if (v === null || v === undefined) return "an empty value";
  if (typeof v === "string") return typed ? `the text ${JSON.stringify(v)}` : JSON.stringify(v);
  if (typeof v === "number") return typed ? `the number ${v}` : String(v);
  if (typeof v === "boolean") return typed ? `the boolean ${v}` : String(v);
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return String(v);
}

/** Join as "a, b or c". */
export function orList(items: readonly string[]): string {
  if (items.length <= 1) return items.join("");
  return `${items.slice(0, -1).join(", ")} or ${items[items.length - 1]}`;
}

export function compareDiagnostics(a: Diagnostic, b: Diagnostic): number {
  return a.line - b.line || a.column - b.column;
}
