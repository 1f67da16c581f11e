/**
 * The config loader: YAML text -> validated, fully resolved Config (types.ts).
 *
 * Every user mistake becomes a Diagnostic with file:line:column, key path, what is
 * wrong and what would be right; all of them are reported at once. Only programmer
 * errors throw.
 *
 * Phases: YAML syntax (yaml's own positions) -> JSON Schema (schema.ts, ajv, errors
 * translated into sentences) -> cross-field checks and resolution (defaults, ACL
 * lists, interface globs, sizes, uuid) -> file checks (stat, window vs size).
 */

import { readdirSync } from "node:fs";
import { stat as fsStat, readFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { FAILSAFE_SCHEMA, load as loadYamlData, Type as YamlType } from "js-yaml";
import { type Document, isAlias, LineCounter, parseDocument, visit, type YAMLError } from "yaml";
import { groupIdByName } from "../control/groups.js";
import { globToRegExp } from "../util/glob.js";
import { type AclContext, AclResolver } from "./acl-lists.js";
import {
  compareDiagnostics,
  type Diagnostic,
  describeValue,
  didYouMean,
  formatPath,
  orList,
  type PathSegment,
  type Severity,
} from "./diagnostics.js";
import {
  ACL_NAME_PATTERN,
  allKeys,
  configSchema,
  DEFAULT_CONTROL_SOCKET,
  expectText,
  IFNAME_PATTERN,
  metricsSchema,
  placesForKey,
  type SchemaNode,
  schemaDefault,
} from "./schema.js";
import type {
  AclConfig,
  Config,
  ControlConfig,
  ExportConfig,
  InterfaceConfig,
  MetricsConfig,
} from "./types.js";
import { formatSize, parseSize, SIZE_PATTERN } from "./units.js";
import { firstKeyOffset, locate, pathAt, sourceAt } from "./yaml-pos.js";

export type { Diagnostic } from "./diagnostics.js";
export { formatDiagnostic } from "./diagnostics.js";

/** What the loader needs to know about a backing file. */
export type StatInfo =
  | { kind: "file" | "block" | "directory" | "other"; size: number }
  | { kind: "missing" }
  | { kind: "error"; message: string };

export type StatFn = (path: string) => Promise<StatInfo>;

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

/** Receive buffers are configured in units of 64 KiB. */
export const BUFFER_UNIT = 64 * 1024;

const SECTOR = 512;

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
  const loader = new Loader(text.replace(/^\uFEFF/, ""), sourceName, opts);
  return loader.run();
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

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  if (!compiled) {
    const ajv = new Ajv({
      allErrors: true,
      verbose: true,
      strict: true,
      strictRequired: false,
      allowUnionTypes: true,
    });
    ajv.addKeyword({ keyword: "x-expect", schemaType: "string" });
    ajv.addKeyword({ keyword: "x-reserved", schemaType: "object" });
    compiled = ajv.compile(configSchema);
  }
  return compiled;
}

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const isInt = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v);
const isStr = (v: unknown): v is string => typeof v === "string";
const isBool = (v: unknown): v is boolean => typeof v === "boolean";
const isNum = (v: unknown): v is number => typeof v === "number";

const isGlob = (s: string): boolean => /[*?[]/.test(s);

/** What usually causes a YAML syntax error, by the yaml library's code and message. */
function syntaxHint(code: string, message: string): string | undefined {
  if (code === "TAB_AS_INDENT") return "indent with spaces";
  if (code === "MULTIPLE_DOCS") return "put everything in one document";
  if (/^Missing closing|end with a [\]}]/.test(message)) {
    return "a quote or bracket opened earlier is never closed";
  }
  if (code === "BAD_INDENT" || /without - indicator|same column|indented/.test(message)) {
    return "check the indentation of this line against the lines above";
  }
  if (/^Nested mappings/.test(message)) return "quote a value that contains `: `";
  if (/^Implicit map keys need/.test(message))
    return "write `key: value`, with a space after the colon";
  if (/^Comments must be separated/.test(message)) return "put a space before `#`";
  if (/^Plain value cannot start/.test(message)) return "quote the value";
  return undefined;
}

/** A size as truncate(1) takes it: 10G, 5M, 4K or bytes. */
function truncateSize(bytes: number): string {
  for (const [unit, mult] of [
    ["T", 1024 ** 4],
    ["G", 1024 ** 3],
    ["M", 1024 ** 2],
    ["K", 1024],
  ] as const) {
    if (bytes % mult === 0) return `${bytes / mult}${unit}`;
  }
  return String(bytes);
}

function dedupe(list: readonly string[]): string[] {
  return [...new Set(list)];
}

/** Per-export facts kept for the cross-export and file checks. */
interface ExportInfo {
  index: number;
  base: PathSegment[];
  config: ExportConfig;
  nameExplicit: boolean;
  shelfSlotValid: boolean;
  /** Path of the node naming the backing store (path or uuid), if valid. */
  backingNode: PathSegment[] | null;
  viaUuid: boolean;
  offsetValid: boolean;
  lengthValid: boolean;
}

/**
 * YAML 1.2's core schema exactly as the `yaml` package resolves it (js-yaml's
 * own core schema also takes 0b101, +0x10 and friends as numbers), so both
 * paths read a file the same way.
 */
const coreScalar = (tag: string, re: RegExp, construct: (s: string) => unknown) =>
  new YamlType(`tag:yaml.org,2002:${tag}`, {
    kind: "scalar",
    resolve: (s: string | null) => s !== null && re.test(s),
    construct: (s: string | null) => construct(s ?? ""),
  });
const YAML_CORE = FAILSAFE_SCHEMA.extend({
  implicit: [
    coreScalar("null", /^(?:~|null|Null|NULL|)$/, () => null),
    coreScalar(
      "bool",
      /^(?:true|True|TRUE|false|False|FALSE)$/,
      (s) => s[0] === "t" || s[0] === "T",
    ),
    coreScalar("int", /^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$/, (s) =>
      s.startsWith("0o") ? Number.parseInt(s.slice(2), 8) : Number(s),
    ),
    coreScalar(
      "float",
      /^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/,
      (s) => {
        const v = s.replace(/^([-+]?)\.(inf|Inf|INF)$/, "$1Infinity");
        return /nan$/i.test(v) ? Number.NaN : Number(v);
      },
    ),
  ],
});

/**
 * A directive (`%YAML 1.1` changes how scalars resolve) or a line starting
 * inside a flow collection (js-yaml accepts indentation yaml refuses).
 */
const DIRECTIVE_OR_FLOW_LINE = /^(%|\s*[[\]{}])/m;

/** An anchor, alias or tag at the start of a token: such files take the careful path. */
const ANCHOR_ALIAS_OR_TAG = /(^|[\s[{,:-])[&*!]/;

/**
 * The plain data of a well-formed file, fast (js-yaml is several times faster
 * than building yaml's Document, which a reload of a thousand exports feels);
 * undefined when the text has any problem, anchors, aliases or tags, so the
 * Document path reports it with positions and guards against alias bombs.
 */
export function fastData(text: string): { data: unknown } | undefined {
  if (ANCHOR_ALIAS_OR_TAG.test(text) || DIRECTIVE_OR_FLOW_LINE.test(text)) return undefined;
  try {
    return { data: loadYamlData(text, { schema: YAML_CORE }) ?? null };
  } catch {
    return undefined;
  }
}

class Loader {
  private readonly lc = new LineCounter();
  /** Built on first use: for positions in diagnostics, or to report a problem in the YAML. */
  private document: Document | null = null;
  private readonly errors: Diagnostic[] = [];
  private readonly warnings: Diagnostic[] = [];
  /** Key paths (formatted) whose values failed validation: later checks skip them. */
  private readonly bad = new Set<string>();
  /** The document as plain JS (yaml's toJS), what the schema validates. */
  private data: unknown;
  /** Set by resolve(); returned only if there are no errors. */
  private config: Config | undefined;
  private readonly existing: string[];
  private readonly stat: StatFn;
  private readonly groups: (name: string) => number | null;
  private readonly defaultControlSocket: string;

  constructor(
    private readonly text: string,
    private readonly file: string,
    opts: LoadOptions,
  ) {
    this.existing = [...(opts.interfaces ?? systemInterfaces())].sort((a, b) =>
      a.localeCompare(b, "en", { numeric: true }),
    );
    this.stat = opts.stat ?? defaultStat;
    this.groups = opts.groups ?? groupIdByName;
    this.defaultControlSocket =
      opts.defaultControlSocket ?? (process.env.AOED_SOCKET || DEFAULT_CONTROL_SOCKET);
  }

  async run(): Promise<LoadResult> {
    if (this.syntax()) {
      this.schema();
      const infos = this.resolve();
      if (infos) {
        this.crossChecks(infos);
        await this.fileChecks(infos);
      }
    }
    this.errors.sort(compareDiagnostics);
    this.warnings.sort(compareDiagnostics);
    if (this.errors.length > 0 || !this.config) {
      return { ok: false, errors: this.errors, warnings: this.warnings };
    }
    return { ok: true, config: this.config, warnings: this.warnings };
  }

  private get doc(): Document {
    this.document ??= parseDocument(this.text, { lineCounter: this.lc, prettyErrors: false });
    return this.document;
  }

  // ---------------------------------------------------------------- reporting

  private at(offset: number): { line: number; column: number } {
    const { line, col } = this.lc.linePos(offset);
    return { line, column: col };
  }

  private report(
    severity: Severity,
    path: readonly PathSegment[],
    message: string,
    hint?: string,
    want: "value" | "key" = "value",
  ): void {
    const pos = this.at(locate(this.doc, path, want));
    const d: Diagnostic = { severity, file: this.file, ...pos, path: formatPath(path), message };
    if (hint) d.hint = hint;
    (severity === "error" ? this.errors : this.warnings).push(d);
  }

  private error(path: readonly PathSegment[], message: string, hint?: string, want?: "key"): void {
    this.report("error", path, message, hint, want);
  }

  private warn(path: readonly PathSegment[], message: string, hint?: string, want?: "key"): void {
    this.report("warning", path, message, hint, want);
  }

  /** Something named that does not exist now: a warning, and the export waits for it. */
  private absent(path: readonly PathSegment[], message: string, hint?: string): void {
    this.warn(path, `${message}; the export waits for it`, hint);
    this.warnings[this.warnings.length - 1]!.absent = true;
  }

  private lineOf(path: readonly PathSegment[]): number {
    return this.at(locate(this.doc, path)).line;
  }

  // ---------------------------------------------------------------- phase 1: YAML

  /** Reports YAML problems; false if the document cannot be trusted for further checks. */
  private syntax(): boolean {
    const fast = fastData(this.text);
    if (fast !== undefined) {
      this.data = fast.data;
      return true;
    }
    let fatal = false;
    const deeper = new Set<number>();
    for (const e of this.doc.errors) {
      if (e.code !== "DUPLICATE_KEY") fatal = true;
      const d = this.deeperKey(e);
      if (d === undefined) this.yamlProblem("error", e);
      else if (!deeper.has(d.line)) {
        deeper.add(d.line);
        this.errors.push(d);
      }
    }
    for (const w of this.doc.warnings) this.yamlProblem("warning", w);
    if (fatal) return false;

    let unresolved = false;
    visit(this.doc, {
      Alias: (_key, node) => {
        if (isAlias(node) && node.resolve(this.doc) === undefined) {
          unresolved = true;
          const d: Diagnostic = {
            severity: "error",
            file: this.file,
            ...this.at(node.range?.[0] ?? 0),
            path: "",
            message: `unknown alias *${node.source}`,
            hint: `define the anchor &${node.source} before using it`,
          };
          this.errors.push(d);
        }
      },
    });
    if (unresolved) return false;

    try {
      this.data = this.doc.toJS({ maxAliasCount: 10000 });
    } catch (err) {
      this.errors.push({
        severity: "error",
        file: this.file,
        line: 1,
        column: 1,
        path: "",
        message: `cannot read the YAML document: ${(err as Error).message}`,
      });
      return false;
    }
    return true;
  }

  /**
   * A key indented deeper than the key on the line above. yaml takes it for part of
   * that key's value and reports a "compact mapping" on the line above; the mistake
   * is on the deeper line, so that is where it is reported.
   */
  private deeperKey(e: YAMLError): Diagnostic | undefined {
    if (!/^(Nested mappings are not allowed|Implicit keys need to be)/.test(e.message)) return;
    const lines = this.text.split(/\r?\n/);
    const at = this.at(e.pos[0]).line - 1;
    const above = /^( *(?:- +)?)([^\s#:][^:]*?):( |$)/.exec(lines[at] ?? "");
    if (!above) return;
    let next = at + 1;
    while (next < lines.length && /^\s*(#.*)?$/.test(lines[next]!)) next++;
    const key = /^( *)([^\s#:-][^:]*?):( |$)/.exec(lines[next] ?? "");
    const want = above[1]!.length;
    if (!key || key[1]!.length <= want) return;
    return {
      severity: "error",
      file: this.file,
      line: next + 1,
      column: key[1]!.length + 1,
      path: "",
      message: `YAML syntax: \`${key[2]}:\` is indented ${key[1]!.length} spaces, deeper than \`${above[2]}:\` on the line above (${want})`,
      hint: `keys of one mapping line up: give \`${key[2]}:\` the indentation of \`${above[2]}:\` (${want > 0 ? `${want} spaces` : "none"}); to nest it under \`${above[2]}:\`, that key must have no value of its own`,
    };
  }

  private yamlProblem(severity: Severity, e: YAMLError): void {
    const offset = e.pos[0];
    const raw = (e.message.split("\n")[0] ?? e.message).replace(/ at line \d+, column \d+:?$/, "");
    // Syntax errors are about the text, not keys: a key path would often name the line
    // where the parser noticed, not the one at fault. Duplicate keys are the exception.
    let path: PathSegment[] = [];
    let message = `YAML syntax: ${raw}`;
    let hint = syntaxHint(e.code, raw);
    if (e.code === "DUPLICATE_KEY") {
      path = pathAt(this.doc, offset);
      message = `duplicate key \`${String(path[path.length - 1])}\``;
      const first = firstKeyOffset(this.doc, path);
      hint =
        first !== undefined && first !== offset
          ? `it is already set on line ${this.at(first).line}; keep only one`
          : "keep only one";
    } else if (e.code === "TAB_AS_INDENT") {
      message = "YAML syntax: a tab is used for indentation";
    } else if (e.code === "MULTIPLE_DOCS") {
      message = "YAML syntax: the file holds more than one YAML document (a second `---`)";
    }
    const d: Diagnostic = {
      severity,
      file: this.file,
      ...this.at(offset),
      path: formatPath(path),
      message,
    };
    if (hint) d.hint = hint;
    (severity === "error" ? this.errors : this.warnings).push(d);
  }

  // ---------------------------------------------------------------- phase 2: schema

  private exampleExport(): string {
    const iface = this.existing.find((n) => n !== "lo") ?? "eth0";
    return `exports: [{ path: /srv/aoe/disk0.img, shelf: 0, slot: 0, interfaces: [${iface}] }]`;
  }

  private schema(): void {
    if (this.data === null || this.data === undefined) {
      this.errors.push({
        severity: "error",
        file: this.file,
        line: 1,
        column: 1,
        path: "",
        message: "no exports: the config is empty",
        hint: `add at least one, e.g. ${this.exampleExport()}`,
      });
      return;
    }
    const validate = validator();
    if (validate(this.data)) return;
    const done = new Set<string>();
    for (const e of validate.errors ?? []) this.schemaError(e, done);
  }

  private toPath(pointer: string): PathSegment[] {
    if (pointer === "") return [];
    const out: PathSegment[] = [];
    let cur: unknown = this.data;
    for (const raw of pointer.slice(1).split("/")) {
      const seg = raw.replace(/~1/g, "/").replace(/~0/g, "~");
      if (Array.isArray(cur)) {
        const i = Number(seg);
        out.push(i);
        cur = cur[i];
      } else {
        out.push(seg);
        cur = isObj(cur) ? cur[seg] : undefined;
      }
    }
    return out;
  }

  private schemaError(e: ErrorObject, done: Set<string>): void {
    const path = this.toPath(e.instancePath);
    const ps = (e.parentSchema ?? {}) as SchemaNode;
    const params = e.params as Record<string, unknown>;
    switch (e.keyword) {
      case "additionalProperties":
        this.unknownKey(path, String(params.additionalProperty), ps);
        return;
      case "required":
        if (e.schemaPath.includes("/oneOf/")) return; // reported by the oneOf error
        this.missingKey(path, String(params.missingProperty), ps);
        return;
      case "oneOf":
        this.pathOrUuid(path, e.data);
        return;
      case "propertyNames":
        return; // reported by the inner error, which carries the name
      default:
        break;
    }
    const propertyName = (e as ErrorObject & { propertyName?: string }).propertyName;
    if (propertyName !== undefined) {
      const keyPath = [...path, propertyName];
      this.error(
        keyPath,
        `${JSON.stringify(propertyName)} is not a valid name: must be ${expectText(ps)}`,
        undefined,
        "key",
      );
      return;
    }
    const key = formatPath(path);
    if (done.has(key)) return;
    done.add(key);
    this.bad.add(key);
    this.badValue(path, e.data, ps, e.keyword);
  }

  private unknownKey(path: PathSegment[], key: string, ps: SchemaNode): void {
    const allowed = Object.keys((ps.properties ?? {}) as object);
    const keyPath = [...path, key];
    const near = didYouMean(key, allowed);
    let hint: string;
    if (near !== undefined) {
      hint = `did you mean \`${near}\`?`;
    } else {
      const elsewhere = placesForKey(key).length > 0 ? key : didYouMean(key, allKeys());
      const places = elsewhere === undefined ? [] : placesForKey(elsewhere);
      hint =
        elsewhere !== undefined && places.length > 0
          ? `\`${elsewhere}\` belongs ${orList(places)}`
          : `valid keys here: ${allowed.join(", ")}`;
    }
    this.error(keyPath, `unknown key \`${key}\``, hint, "key");
  }

  private missingKey(path: PathSegment[], key: string, ps: SchemaNode): void {
    if (path.length === 0 && key === "exports") {
      this.error(
        path,
        "no exports: the config has no `exports:` list",
        `add at least one, e.g. ${this.exampleExport()}`,
      );
      return;
    }
    const props = (ps.properties ?? {}) as Record<string, SchemaNode>;
    const child = props[key];
    const what = child ? expectText(child) : "a value";
    let hint: string | undefined;
    if (key === "interfaces") {
      const first = this.existing.find((n) => n !== "lo");
      hint = first ? `e.g. \`interfaces: [${first}]\`` : undefined;
    }
    this.error(path, `missing \`${key}:\` (${what})`, hint);
  }

  private pathOrUuid(path: PathSegment[], data: unknown): void {
    if (!isObj(data)) return; // not a mapping: the type error says so
    if ("path" in data && "uuid" in data) {
      this.error(
        [...path, "uuid"],
        "both `path:` and `uuid:` are set",
        "keep only one: the uuid is resolved to a path",
        "key",
      );
    } else {
      this.error(
        path,
        "missing `path:` or `uuid:`: the export needs a backing file or block device",
        "e.g. `path: /dev/vg0/lv0` or `uuid: <filesystem UUID from blkid>`",
      );
    }
  }

  private badValue(path: PathSegment[], data: unknown, ps: SchemaNode, keyword: string): void {
    const reserved = ps["x-reserved"] as Record<string, string> | undefined;
    if (reserved && (isInt(data) || isStr(data)) && Object.hasOwn(reserved, String(data))) {
      this.error(path, reserved[String(data)]!, `use ${expectText(ps)}`);
      return;
    }
    if (path.length === 1 && path[0] === "exports" && keyword === "minItems") {
      this.error(
        path,
        "no exports: the `exports:` list is empty",
        `add one, e.g. ${this.exampleExport()}`,
      );
      return;
    }
    const expected = expectText(ps);
    let got = describeValue(data, keyword === "type");
    if (isStr(data) && keyword === "maxLength") got += ` (${data.length} characters)`;
    let message = `must be ${expected}, got ${got}`;
    if (keyword === "minItems" && Array.isArray(data))
      message = `must be ${expected}, got an empty list`;
    const types = ([] as unknown[]).concat(ps.type ?? []);
    let hint: string | undefined;
    if (types.includes("boolean") && isStr(data)) {
      const yes = /^(y|yes|on|true)$/i.test(data);
      const no = /^(n|no|off|false)$/i.test(data);
      if (yes || no)
        hint = `write ${yes}: in YAML 1.2 ${JSON.stringify(data)} is text, not a boolean`;
    } else if (
      types.includes("string") &&
      !types.includes("integer") &&
      (typeof data === "number" || isBool(data))
    ) {
      const src = sourceAt(this.doc, this.text, path) ?? String(data);
      const key = path[path.length - 1];
      hint =
        typeof key === "string"
          ? `quote it to keep it as text: \`${key}: "${src}"\``
          : `quote it to keep it as text: "${src}"`;
    } else if (types.includes("array") && isStr(data)) {
      hint = `write a list: \`[${data}]\``;
    } else if (types.includes("array") && isObj(data) && path[path.length - 1] === "exports") {
      hint = "start each export with `- `";
    } else if (path.length === 2 && path[0] === "exports" && isStr(data) && data.startsWith("/")) {
      hint = `write \`- path: ${data}\` and add shelf, slot and interfaces below it`;
    } else if (Array.isArray(ps.enum) && isStr(data)) {
      const near = didYouMean(data, ps.enum.map(String));
      if (near) hint = `did you mean \`${near}\`?`;
    } else if (ps.pattern === SIZE_PATTERN && isStr(data)) {
      hint =
        "units: K, M, G, T or KiB, MiB, GiB, TiB (powers of 1024); KB, MB, GB, TB (powers of 1000)";
    }
    this.error(path, message, hint);
  }

  // ---------------------------------------------------------------- phase 3: resolve

  /** The value at `path` failed validation (formatting the path is skipped when nothing did). */
  private isBad(path: readonly PathSegment[]): boolean {
    return this.bad.size > 0 && this.bad.has(formatPath(path));
  }

  private value(path: readonly PathSegment[]): unknown {
    let cur: unknown = this.data;
    for (const seg of path) {
      if (Array.isArray(cur) && typeof seg === "number") cur = cur[seg];
      else if (isObj(cur) && typeof seg === "string" && Object.hasOwn(cur, seg)) cur = cur[seg];
      else return undefined;
    }
    return cur;
  }

  /** The value at `path` if it passed validation and has the guarded type. */
  private get<T>(path: readonly PathSegment[], guard: (v: unknown) => v is T): T | undefined {
    if (this.isBad(path)) return undefined;
    const v = this.value(path);
    return guard(v) ? v : undefined;
  }

  private entries(path: readonly PathSegment[]): [string, unknown][] {
    const v = this.get(path, isObj);
    return v ? Object.entries(v) : [];
  }

  private list(path: readonly PathSegment[]): unknown[] {
    return this.get(path, Array.isArray) ?? [];
  }

  /** Parses a size and checks it is a multiple of 512; undefined if absent or invalid. */
  private size(
    path: readonly PathSegment[],
    allowZero: boolean,
  ): { bytes?: number; valid: boolean } {
    const raw = this.get(path, (v): v is string | number => isStr(v) || isInt(v));
    if (raw === undefined) return { valid: !this.isBad(path) };
    const r = parseSize(raw);
    if (!r.ok) {
      this.error(path, r.message);
      return { valid: false };
    }
    if (r.bytes === 0 && !allowZero) {
      this.error(path, "must not be 0", "leave it out to export up to the end of the file");
      return { valid: false };
    }
    if (r.bytes % SECTOR !== 0) {
      const down = r.bytes - (r.bytes % SECTOR);
      const up = down + SECTOR;
      this.error(
        path,
        `${describeValue(raw)} is not a multiple of 512 bytes`,
        down > 0 ? `use ${formatSize(down)} or ${formatSize(up)}` : `use ${formatSize(up)}`,
      );
      return { valid: false };
    }
    return { bytes: r.bytes, valid: true };
  }

  private resolve(): ExportInfo[] | undefined {
    if (!isObj(this.data)) return undefined;
    const interfaces = this.resolveInterfaceSettings();
    // Keys with invalid names were reported by the schema: leave them out of later checks.
    const aclName = new RegExp(ACL_NAME_PATTERN, "u");
    const lists = this.entries(["acls"]).filter(([n]) => aclName.test(n));
    const acls = new AclResolver(this.aclContext(), lists);
    acls.checkAll();

    const infos: ExportInfo[] = [];
    const exports = this.list(["exports"]);
    for (let i = 0; i < exports.length; i++) {
      const base: PathSegment[] = ["exports", i];
      if (!this.get(base, isObj)) continue;
      infos.push(this.resolveExport(i, base, acls));
    }
    acls.warnUnused();

    const logLevel =
      this.get(["log-level"], isStr) ?? String(configSchema.properties["log-level"].default);
    const stateDir = this.get(["state-dir"], isStr) ?? null;
    const workers = this.get(["workers"], (x): x is string | number => isStr(x) || isNum(x)) ?? 0;
    this.config = {
      source: this.file,
      exports: infos.map((x) => x.config),
      interfaces,
      stateDir,
      watchConfig: this.get(["watch-config"], isBool) ?? false,
      logLevel,
      workers: workers === "auto" ? Math.min(availableParallelism(), 64) : Number(workers),
      metrics: this.resolveMetrics(),
      control: this.resolveControl(),
    };
    return infos;
  }

  /** `metrics:` -> where to listen, or null when turned off. */
  private resolveMetrics(): MetricsConfig | null {
    const v = this.value(["metrics"]);
    if (v === false || v === "off") return null;
    const raw = isObj(v)
      ? this.get(["metrics", "listen"], (x): x is string | boolean => isStr(x) || isBool(x))
      : undefined;
    if (raw === false || raw === "off") return null;
    const listen = isStr(raw) ? raw : String(metricsSchema.properties.listen.default);
    const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen);
    if (!m) return null; // reported by the schema
    const host = m[1] ?? m[2] ?? "";
    const port = Number(m[3]);
    if (port < 1 || port > 65535) {
      this.error(
        ["metrics", "listen"],
        `port ${port} is out of range`,
        "use a port from 1 to 65535, e.g. 127.0.0.1:9288",
      );
      return null;
    }
    return { host: host === "" || host === "*" ? null : host, port };
  }

  /** `control-socket:` and `control-group:` -> the socket to create, or null when turned off. */
  private resolveControl(): ControlConfig | null {
    const raw = this.get(["control-socket"], (x): x is string | boolean => isStr(x) || isBool(x));
    const group = this.get(["control-group"], (x): x is string | number => isStr(x) || isInt(x));
    if (raw === false || raw === "off") {
      if (group !== undefined)
        this.warn(
          ["control-group"],
          "`control-group:` has no effect: the control socket is off",
          "remove it, or set `control-socket:` to a path",
          "key",
        );
      return null;
    }
    const socket = isStr(raw) ? raw : this.defaultControlSocket;
    // sun_path holds 108 bytes including the terminating NUL.
    if (Buffer.byteLength(socket) > 107) {
      this.error(
        ["control-socket"],
        `the path is ${Buffer.byteLength(socket)} bytes long; a unix socket path can have at most 107`,
        "use a shorter path, e.g. /run/aoed/aoed.sock",
      );
      return null;
    }
    if (group === undefined) return { socket, group: null, gid: null };
    if (isInt(group)) return { socket, group: String(group), gid: group };
    const gid = this.groups(group);
    if (gid === null) {
      this.error(
        ["control-group"],
        `there is no group \`${group}\` on this machine`,
        `create it with \`groupadd ${group}\`, give a group number, or leave \`control-group:\` out: then only root can use aoectl's admin commands`,
      );
      return null;
    }
    return { socket, group, gid };
  }

  private resolveInterfaceSettings(): Record<string, InterfaceConfig> {
    const out: Record<string, InterfaceConfig> = {};
    const ifName = new RegExp(IFNAME_PATTERN, "u");
    for (const [name] of this.entries(["interfaces"])) {
      if (!ifName.test(name)) continue;
      const base = ["interfaces", name];
      const mtu = this.get([...base, "mtu"], isInt) ?? null;
      const buffers = this.get([...base, "buffers"], isInt);
      out[name] = { mtu, ringBytes: buffers === undefined ? null : buffers * BUFFER_UNIT };
      // An interface an export names is reported there: the export waits for it.
      if (!this.existing.includes(name) && !this.namedByExport(name)) {
        const near = didYouMean(name, this.existing);
        this.warn(
          base,
          `there is no network interface \`${name}\` on this machine; these settings are unused`,
          near ? `did you mean \`${near}\`?` : this.existingHint(),
          "key",
        );
      }
    }
    return out;
  }

  /** True when an export lists `name` itself (not through a glob). */
  private namedByExport(name: string): boolean {
    return this.list(["exports"]).some(
      (e) => isObj(e) && Array.isArray(e.interfaces) && e.interfaces.includes(name),
    );
  }

  private existingHint(): string {
    return this.existing.length > 0
      ? `existing interfaces: ${this.existing.join(", ")}`
      : "no network interfaces found";
  }

  private aclContext(): AclContext {
    return {
      get: (p) => this.get(p, isStr),
      list: (p) => this.list(p),
      error: (p, m, h) => this.error(p, m, h),
      warn: (p, m, h, w) => this.warn(p, m, h, w),
    };
  }

  private expandInterfaces(base: PathSegment[]): string[] {
    const out: string[] = [];
    const listPath = [...base, "interfaces"];
    const entries = this.list(listPath);
    for (let j = 0; j < entries.length; j++) {
      const p = [...listPath, j];
      const name = this.get(p, isStr);
      if (name === undefined) continue;
      if (isGlob(name)) {
        const re = globToRegExp(name);
        const matches = this.existing.filter((n) => n !== "lo" && re.test(n));
        if (matches.length === 0) {
          this.warn(p, `\`${name}\` matches no network interface`, this.existingHint());
        }
        out.push(...matches);
      } else if (this.existing.includes(name)) {
        out.push(name);
      } else {
        // Kept: a bond, VLAN or renamed NIC may come up after aoed starts.
        const near = didYouMean(name, this.existing);
        this.absent(
          p,
          `there is no network interface \`${name}\` on this machine`,
          near ? `did you mean \`${near}\`? ${this.existingHint()}` : this.existingHint(),
        );
        out.push(name);
      }
    }
    return dedupe(out);
  }

  private resolveExport(index: number, base: PathSegment[], acls: AclResolver): ExportInfo {
    const at = (k: string): PathSegment[] => [...base, k];
    const shelf = this.get(at("shelf"), isInt);
    const slot = this.get(at("slot"), isInt);
    const explicitName = this.get(at("name"), isStr);
    const name =
      explicitName ??
      (shelf !== undefined && slot !== undefined ? `e${shelf}.${slot}` : `exports[${index}]`);

    const inherit = <T>(
      key: keyof typeof configSchema.properties.defaults.properties,
      guard: (v: unknown) => v is T,
    ): T => {
      const v = this.get(at(key), guard) ?? this.get(["defaults", key], guard);
      if (v !== undefined) return v;
      const d = schemaDefault(key);
      if (!guard(d)) throw new Error(`schema default for ${key} has the wrong type`);
      return d;
    };

    const path = this.get(at("path"), isStr);
    const uuid = this.get(at("uuid"), isStr);
    let backing = "";
    let backingNode: PathSegment[] | null = null;
    if (path !== undefined) {
      backing = path;
      backingNode = at("path");
    } else if (uuid !== undefined) {
      backing = `/dev/disk/by-uuid/${uuid}`;
      backingNode = at("uuid");
    }

    const offset = this.size(at("offset"), true);
    const length = this.size(at("length"), false);

    const serial = this.get(at("serial"), isStr) ?? name.replace(/[^ -~]/g, "_").slice(0, 20);
    const model = this.get(at("model"), isStr) ?? String(schemaDefault("model"));

    const policy = inherit(
      "policy",
      (v): v is AclConfig["policy"] => v === "accept" || v === "reject",
    );
    const acl: AclConfig = {
      policy,
      accept: acls.expand(at("accept")),
      deny: acls.expand(at("deny")),
    };
    if (policy === "reject" && acl.accept.length === 0) {
      this.warn(
        this.value(at("policy")) !== undefined ? at("policy") : base,
        "policy reject with nothing in `accept:`: no host can use this export",
        "list the allowed hosts under `accept:`",
      );
    } else if (policy === "accept" && acl.accept.length > 0) {
      this.warn(
        at("accept"),
        "`accept:` has no effect: with policy accept, hosts not listed are accepted too",
        "add `policy: reject` to allow only the listed hosts",
      );
    }

    const config: ExportConfig = {
      name,
      path: backing,
      shelf: shelf ?? 0,
      slot: slot ?? 0,
      interfaces: this.expandInterfaces(base),
      queueLength: inherit("queue-length", isInt),
      sectors: this.get(at("sectors"), isInt) ?? 0,
      readOnly: this.get(at("read-only"), isBool) ?? false,
      writeCache: inherit("write-cache", isBool),
      directIo: inherit("direct-io", isBool),
      io: inherit("io", (v): v is ExportConfig["io"] =>
        configSchema.properties.defaults.properties.io.enum.some((e) => e === v),
      ),
      traceIo: inherit("trace-io", isBool),
      offset: offset.bytes ?? 0,
      length: length.bytes ?? null,
      serial,
      model,
      broadcast: inherit("broadcast", isBool),
      acl,
    };
    return {
      index,
      base,
      config,
      nameExplicit: explicitName !== undefined,
      shelfSlotValid: shelf !== undefined && slot !== undefined,
      backingNode,
      viaUuid: path === undefined && uuid !== undefined,
      offsetValid: offset.valid,
      lengthValid: length.valid,
    };
  }

  // ---------------------------------------------------------------- cross-export checks

  private describeExport(x: ExportInfo): string {
    return `exports[${x.index}] (\`${x.config.name}\`, line ${this.lineOf(x.base)})`;
  }

  private crossChecks(infos: ExportInfo[]): void {
    const names = new Map<string, ExportInfo>();
    const serials = new Map<string, ExportInfo>();
    const addresses = new Map<string, ExportInfo>();
    for (const x of infos) {
      const c = x.config;

      let clashes = new Map<ExportInfo, string[]>();
      if (x.shelfSlotValid) {
        clashes = new Map<ExportInfo, string[]>();
        for (const iface of c.interfaces) {
          const key = `${iface}\u0000${c.shelf}\u0000${c.slot}`;
          const prev = addresses.get(key);
          if (prev) clashes.set(prev, [...(clashes.get(prev) ?? []), iface]);
          else addresses.set(key, x);
        }
        for (const [prev, ifaces] of clashes) {
          this.error(
            [...x.base, "shelf"],
            `shelf ${c.shelf} slot ${c.slot} is already exported on ${ifaces.join(", ")} by ${this.describeExport(prev)}`,
            "each export on an interface needs its own shelf/slot pair",
          );
        }
      }

      const prevName = names.get(c.name);
      if (prevName) {
        if (clashes.has(prevName) && !x.nameExplicit) {
          // same shelf/slot as prevName, already reported: the default names follow
        } else if (x.nameExplicit) {
          this.error(
            [...x.base, "name"],
            `duplicate export name \`${c.name}\`: ${this.describeExport(prevName)} has it too`,
            "export names must be unique",
          );
        } else {
          this.error(
            x.base,
            `this export's default name \`${c.name}\` is already used by ${this.describeExport(prevName)}`,
            "add a unique `name:`",
          );
        }
      } else {
        names.set(c.name, x);
      }

      const prevSerial = serials.get(c.serial);
      if (prevSerial && prevSerial.config.name !== c.name) {
        const explicit = this.value([...x.base, "serial"]) !== undefined;
        this.warn(
          explicit ? [...x.base, "serial"] : x.base,
          `serial number \`${c.serial}\` is also used by ${this.describeExport(prevSerial)}: initiators (multipath) may take them for the same disk`,
          "set a distinct `serial:`",
        );
      } else if (!prevSerial) {
        serials.set(c.serial, x);
      }
    }
  }

  // ---------------------------------------------------------------- phase 4: files

  private async fileChecks(infos: ExportInfo[]): Promise<void> {
    const checked = infos.filter((x) => x.backingNode !== null);
    const stats = await Promise.all(checked.map((x) => this.stat(x.config.path)));
    // Earlier exports by backing path: only those can overlap (a scan of all of
    // them for every export is quadratic, ~25 ms per load with 1000 exports).
    const seen = new Map<string, ExportInfo[]>();
    for (let k = 0; k < checked.length; k++) {
      const x = checked[k]!;
      const info = stats[k]!;
      const node = x.backingNode!;
      const c = x.config;
      switch (info.kind) {
        case "missing":
          // An LV or disk activated after aoed starts: the export waits for it.
          if (x.viaUuid) {
            this.absent(
              node,
              `no disk with this UUID: ${c.path} does not exist`,
              "list the UUIDs with `blkid` or `ls -l /dev/disk/by-uuid`",
            );
          } else {
            this.absent(
              node,
              `the backing file ${c.path} does not exist`,
              c.path.startsWith("/dev/")
                ? "check the device name with `lsblk`"
                : `create a sparse image with \`truncate -s 10G ${c.path}\`, or fix the path`,
            );
          }
          break;
        case "error":
          this.error(node, `cannot access ${c.path}: ${info.message}`);
          break;
        case "directory":
          this.error(node, `${c.path} is a directory`, "export a regular file or a block device");
          break;
        case "other":
          this.error(node, `${c.path} is neither a regular file nor a block device`);
          break;
        case "file":
          this.checkWindow(x, info.size);
          break;
        case "block":
          break; // the engine learns the size when it opens the device
      }
      const samePath = seen.get(c.path);
      if (samePath === undefined) seen.set(c.path, [x]);
      else {
        this.checkOverlap(x, samePath);
        samePath.push(x);
      }
    }
  }

  private checkWindow(x: ExportInfo, size: number): void {
    if (!x.offsetValid || !x.lengthValid) return;
    const c = x.config;
    const at = (k: string): PathSegment[] => [...x.base, k];
    if (size === 0) {
      this.error(
        x.backingNode!,
        `the backing file ${c.path} is empty (0 bytes)`,
        `give it a size, e.g. \`truncate -s 10G ${c.path}\``,
      );
      return;
    }
    if (c.offset >= size) {
      this.error(
        at("offset"),
        `offset ${formatSize(c.offset)} is at or past the end of ${c.path} (${formatSize(size)})`,
        `use an offset below ${formatSize(size)}`,
      );
      return;
    }
    if (c.length !== null && c.offset + c.length > size) {
      const room = size - c.offset - ((size - c.offset) % SECTOR);
      this.error(
        at("length"),
        `the window (offset ${formatSize(c.offset)} + length ${formatSize(c.length)}) ends past the end of ${c.path} (${formatSize(size)})`,
        room > 0
          ? `use a length of at most ${formatSize(room)}, or grow the file with \`truncate -s ${truncateSize(c.offset + c.length)} ${c.path}\``
          : `grow the file with \`truncate -s ${truncateSize(c.offset + c.length)} ${c.path}\``,
      );
    }
  }

  /** `samePath`: the earlier exports of the same backing path. */
  private checkOverlap(x: ExportInfo, samePath: readonly ExportInfo[]): void {
    const c = x.config;
    const end = (e: ExportConfig): number =>
      e.length === null ? Number.POSITIVE_INFINITY : e.offset + e.length;
    for (const prev of samePath) {
      const p = prev.config;
      if (p.readOnly && c.readOnly) continue;
      if (c.offset < end(p) && p.offset < end(c)) {
        this.warn(
          x.backingNode!,
          `overlaps ${this.describeExport(prev)} on ${c.path} and one of them is writable: writes through one corrupt the other`,
          "use non-overlapping offset/length windows, or make both read-only",
        );
        return;
      }
    }
  }
}
