/**
 * The config loader's one error reporter: every phase reports through it, by
 * key path, and it turns the path into file:line:column. yaml's Document (for
 * positions) is built only when something is reported: a clean file read by
 * the fast path never needs it.
 */
import { type Document, LineCounter, parseDocument } from "yaml";
import { type Diagnostic, formatPath, type PathSegment, type Severity } from "./diagnostics.js";
import { locate } from "./yaml-pos.js";

export class Report {
  readonly errors: Diagnostic[] = [];
  readonly warnings: Diagnostic[] = [];
  private readonly lc = new LineCounter();
  private document: Document | null = null;

  constructor(
    /** The config text, without a byte-order mark. */
    readonly text: string,
    /** The file name the diagnostics carry. */
    readonly file: string,
  ) {}

  get doc(): Document {
    this.document ??= parseDocument(this.text, { lineCounter: this.lc, prettyErrors: false });
    return this.document;
  }

  /** The 1-based line and column of a source offset. */
  at(offset: number): { line: number; column: number } {
    const { line, col } = this.lc.linePos(offset);
    return { line, column: col };
  }

  /** The line of the node at `path`. */
  lineOf(path: readonly PathSegment[]): number {
    return this.at(locate(this.doc, path)).line;
  }

  /** A diagnostic already placed (syntax problems are about the text, not a key path). */
  add(d: Diagnostic): void {
    (d.severity === "error" ? this.errors : this.warnings).push(d);
  }

  /** An error about the whole document, placed at 1:1. */
  documentError(message: string, hint?: string): void {
    const d: Diagnostic = {
      severity: "error",
      file: this.file,
      line: 1,
      column: 1,
      path: "",
      message,
    };
    if (hint) d.hint = hint;
    this.add(d);
  }

  /** A problem with the value at `path`, or with its key when `want` is "key". */
  report(
    severity: Severity,
    path: readonly PathSegment[],
    message: string,
    hint?: string,
    want: "value" | "key" = "value",
  ): Diagnostic {
    const pos = this.at(locate(this.doc, path, want));
    const d: Diagnostic = { severity, file: this.file, ...pos, path: formatPath(path), message };
    if (hint) d.hint = hint;
    this.add(d);
    return d;
  }

  error(path: readonly PathSegment[], message: string, hint?: string, want?: "key"): void {
    this.report("error", path, message, hint, want);
  }

  warn(path: readonly PathSegment[], message: string, hint?: string, want?: "key"): void {
    this.report("warning", path, message, hint, want);
  }

  /** Something named that does not exist now: a warning, and the export waits for it. */
  absent(path: readonly PathSegment[], message: string, hint?: string): void {
    this.report("warning", path, `${message}; the export waits for it`, hint).absent = true;
  }
}
