/**
 * The config loader: YAML text -> validated, fully resolved Config (types.ts).
 *
 * Every user mistake becomes a Diagnostic with file:line:column, key path, what is
 * wrong and what would be right; all of them are reported at once. Only programmer
 * errors throw.
 *
 * Phases, one module each, all reporting through one Report (report.ts):
 * 1. read-yaml.ts: YAML text -> plain data (fast-yaml.ts for a clean file);
 * 2. schema-errors.ts: the JSON Schema (schema.ts), errors translated into sentences;
 * 3. resolve.ts, resolve-export.ts: defaults, ACL lists, interface globs, sizes, uuid;
 * 4. cross-checks.ts: across exports, and against the backing files.
 */

import { readdirSync } from "node:fs";
import { stat as fsStat, readFile } from "node:fs/promises";
import { groupIdByName } from "../util/groups.js";
import { crossChecks, fileChecks, type StatFn, type StatInfo } from "./cross-checks.js";
import { compareDiagnostics, type Diagnostic } from "./diagnostics.js";
import { readYaml } from "./read-yaml.js";
import { Report } from "./report.js";
import { resolveConfig } from "./resolve.js";
import { DEFAULT_CONTROL_SOCKET } from "./schema.js";
import { checkSchema } from "./schema-errors.js";
import type { Config } from "./types.js";
import { Values } from "./values.js";

export type { StatFn, StatInfo } from "./cross-checks.js";
export type { Diagnostic } from "./diagnostics.js";
export { formatDiagnostic } from "./diagnostics.js";

export interface LoadOptions {
  /** Existing network interfaces (default: the entries of /sys/class/net). */
  interfaces?: readonly string[];
  /** How to look at backing files (default: fs.stat, following symlinks). */
  stat?: StatFn;
  /** A group name's id, null if there is no such group (default: /etc/group, then getent). */
  groups?: (name: string) => number | null;
  /** The control socket when the file names none (default: $AOED_SOCKET, else /run/aoed/aoed.sock). */
  defaultControlSocket?: string;
}

export type LoadResult =
  | { ok: true; config: Config; warnings: Diagnostic[] }
  | { ok: false; errors: Diagnostic[]; warnings: Diagnostic[] };

export async function loadConfigFile(path: string, opts: LoadOptions = {}): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "no such file"
        : code === "EACCES"
          ? "permission denied"
          : code === "EISDIR"
            ? "it is a directory"
            : (err as Error).message;
    const hint =
      code === "ENOENT"
        ? "start from the documented example etc/aoed.yaml shipped with aoed, or try `aoed --demo`"
        : code === "EACCES"
          ? "run aoed as root or make the file readable"
          : undefined;
    const d: Diagnostic = {
      severity: "error",
      file: path,
      line: 0,
      column: 0,
      path: "",
      message: `cannot read the config file: ${why}`,
    };
    if (hint) d.hint = hint;
    return { ok: false, errors: [d], warnings: [] };
  }
  return loadConfigText(text, path, opts);
}

export async function loadConfigText(
  text: string,
  sourceName: string,
  opts: LoadOptions = {},
): Promise<LoadResult> {
  return load(text.replace(/^\uFEFF/, ""), sourceName, opts);
}

/** fs.stat mapped onto StatInfo. */
export async function defaultStat(path: string): Promise<StatInfo> {
  try {
    const s = await fsStat(path);
    const kind = s.isFile()
      ? "file"
      : s.isBlockDevice()
        ? "block"
        : s.isDirectory()
          ? "directory"
          : "other";
    return { kind, size: s.size };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return { kind: "missing" };
    return {
      kind: "error",
      message: code === "EACCES" ? "permission denied" : (err as Error).message,
    };
  }
}

/** The machine's network interfaces, from /sys/class/net ([] if unreadable). */
export function systemInterfaces(): string[] {
  try {
    return readdirSync("/sys/class/net");
  } catch {
    return [];
  }
}

/** The phases in order; each later one runs only if the earlier ones leave something to check. */
async function load(text: string, file: string, opts: LoadOptions): Promise<LoadResult> {
  const report = new Report(text, file);
  const existing = [...(opts.interfaces ?? systemInterfaces())].sort((a, b) =>
    a.localeCompare(b, "en", { numeric: true }),
  );
  let config: Config | undefined;
  const read = readYaml(report);
  if (read !== undefined) {
    const bad = checkSchema(read.data, report, existing);
    const values = new Values(read.data, bad);
    const resolved = resolveConfig(
      { report, values, existing },
      {
        source: file,
        groups: opts.groups ?? groupIdByName,
        defaultControlSocket:
          opts.defaultControlSocket ?? (process.env.AOED_SOCKET || DEFAULT_CONTROL_SOCKET),
      },
    );
    if (resolved) {
      config = resolved.config;
      crossChecks(report, values, resolved.infos);
      await fileChecks(report, opts.stat ?? defaultStat, resolved.infos);
    }
  }
  const { errors, warnings } = report;
  errors.sort(compareDiagnostics);
  warnings.sort(compareDiagnostics);
  if (errors.length > 0 || !config) return { ok: false, errors, warnings };
  return { ok: true, config, warnings };
}
