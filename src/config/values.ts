/**
 * The document as plain data, read by key path after the schema check: a value
 * whose path failed validation reads as absent, so later phases never report
 * the same mistake twice.
 */
import { formatPath, type PathSegment } from "./diagnostics.js";

export type Obj = Record<string, unknown>;

export const isObj = (v: unknown): v is Obj =>
  typeof v === "object" && v !== null && !Array.isArray(v);
export const isInt = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v);
export const isStr = (v: unknown): v is string => typeof v === "string";
export const isBool = (v: unknown): v is boolean => typeof v === "boolean";
export const isNum = (v: unknown): v is number => typeof v === "number";

export class Values {
  constructor(
    readonly data: unknown,
    /** Key paths (formatted) whose values failed validation. */
    private readonly bad: ReadonlySet<string>,
  ) {}

  /** The value at `path` failed validation (formatting the path is skipped when nothing did). */
  isBad(path: readonly PathSegment[]): boolean {
    return this.bad.size > 0 && this.bad.has(formatPath(path));
  }

  /** The raw value at `path`, valid or not. */
  value(path: readonly PathSegment[]): unknown {
    let cur: unknown = this.data;
    for (const seg of path) {
      if (Array.isArray(cur) && typeof seg === "number") cur = cur[seg];
      else if (isObj(cur) && typeof seg === "string" && Object.hasOwn(cur, seg)) cur = cur[seg];
      else return undefined;
    }
    return cur;
  }

  /** The value at `path` if it passed validation and has the guarded type. */
  get<T>(path: readonly PathSegment[], guard: (v: unknown) => v is T): T | undefined {
    if (this.isBad(path)) return undefined;
    const v = this.value(path);
    return guard(v) ? v : undefined;
  }

  entries(path: readonly PathSegment[]): [string, unknown][] {
    const v = this.get(path, isObj);
    return v ? Object.entries(v) : [];
  }

  list(path: readonly PathSegment[]): unknown[] {
    return this.get(path, Array.isArray) ?? [];
  }
}
