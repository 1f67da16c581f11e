/**
 * Phase 2 of loading: the JSON Schema (schema.ts) checked with ajv, each error
 * translated into a sentence at the offending key, with a hint where one helps.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { describeValue, didYouMean, formatPath, orList, type PathSegment } from "./diagnostics.js";
import type { Report } from "./report.js";
import { allKeys, configSchema, expectText, placesForKey, type SchemaNode } from "./schema.js";
import { SIZE_PATTERN } from "./units.js";
import { isBool, isInt, isObj, isStr } from "./values.js";
import { sourceAt } from "./yaml-pos.js";

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

/** An example export for the "no exports" errors, on an interface of this machine. */
function exampleExport(existing: readonly string[]): string {
  const iface = existing.find((n) => n !== "lo") ?? "eth0";
  return `exports: [{ path: /srv/aoe/disk0.img, shelf: 0, slot: 0, interfaces: [${iface}] }]`;
}

/**
 * Reports what the schema rejects; returns the key paths (formatted) whose
 * values failed, which later phases read as absent.
 */
export function checkSchema(
  data: unknown,
  report: Report,
  existing: readonly string[],
): Set<string> {
  const bad = new Set<string>();
  if (data === null || data === undefined) {
    report.documentError(
      "no exports: the config is empty",
      `add at least one, e.g. ${exampleExport(existing)}`,
    );
    return bad;
  }
  const validate = validator();
  if (validate(data)) return bad;
  const ctx: SchemaContext = { data, report, existing, bad };
  for (const e of validate.errors ?? []) schemaError(ctx, e);
  return bad;
}

interface SchemaContext {
  data: unknown;
  report: Report;
  existing: readonly string[];
  /** Key paths (formatted) whose values failed: each is reported once. */
  bad: Set<string>;
}

function toPath(data: unknown, pointer: string): PathSegment[] {
  if (pointer === "") return [];
  const out: PathSegment[] = [];
  let cur: unknown = data;
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

function schemaError(ctx: SchemaContext, e: ErrorObject): void {
  const path = toPath(ctx.data, e.instancePath);
  const ps = (e.parentSchema ?? {}) as SchemaNode;
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case "additionalProperties":
      unknownKey(ctx, path, String(params.additionalProperty), ps);
      return;
    case "required":
      if (e.schemaPath.includes("/oneOf/")) return; // reported by the oneOf error
      missingKey(ctx, path, String(params.missingProperty), ps);
      return;
    case "oneOf":
      pathOrUuid(ctx, path, e.data);
      return;
    case "propertyNames":
      return; // reported by the inner error, which carries the name
    default:
      break;
  }
  const propertyName = (e as ErrorObject & { propertyName?: string }).propertyName;
  if (propertyName !== undefined) {
    const keyPath = [...path, propertyName];
    ctx.report.error(
      keyPath,
      `${JSON.stringify(propertyName)} is not a valid name: must be ${expectText(ps)}`,
      undefined,
      "key",
    );
    return;
  }
  const key = formatPath(path);
  if (ctx.bad.has(key)) return;
  ctx.bad.add(key);
  badValue(ctx, path, e.data, ps, e.keyword);
}

function unknownKey(ctx: SchemaContext, path: PathSegment[], key: string, ps: SchemaNode): void {
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
  ctx.report.error(keyPath, `unknown key \`${key}\``, hint, "key");
}

function missingKey(ctx: SchemaContext, path: PathSegment[], key: string, ps: SchemaNode): void {
  if (path.length === 0 && key === "exports") {
    ctx.report.error(
      path,
      "no exports: the config has no `exports:` list",
      `add at least one, e.g. ${exampleExport(ctx.existing)}`,
    );
    return;
  }
  const props = (ps.properties ?? {}) as Record<string, SchemaNode>;
  const child = props[key];
  const what = child ? expectText(child) : "a value";
  let hint: string | undefined;
  if (key === "interfaces") {
    const first = ctx.existing.find((n) => n !== "lo");
    hint = first ? `e.g. \`interfaces: [${first}]\`` : undefined;
  }
  ctx.report.error(path, `missing \`${key}:\` (${what})`, hint);
}

function pathOrUuid(ctx: SchemaContext, path: PathSegment[], data: unknown): void {
  if (!isObj(data)) return; // not a mapping: the type error says so
  if ("path" in data && "uuid" in data) {
    ctx.report.error(
      [...path, "uuid"],
      "both `path:` and `uuid:` are set",
      "keep only one: the uuid is resolved to a path",
      "key",
    );
  } else {
    ctx.report.error(
      path,
      "missing `path:` or `uuid:`: the export needs a backing file or block device",
      "e.g. `path: /dev/vg0/lv0` or `uuid: <filesystem UUID from blkid>`",
    );
  }
}

function badValue(
  ctx: SchemaContext,
  path: PathSegment[],
  data: unknown,
  ps: SchemaNode,
  keyword: string,
): void {
  const reserved = ps["x-reserved"] as Record<string, string> | undefined;
  if (reserved && (isInt(data) || isStr(data)) && Object.hasOwn(reserved, String(data))) {
    ctx.report.error(path, reserved[String(data)]!, `use ${expectText(ps)}`);
    return;
  }
  if (path.length === 1 && path[0] === "exports" && keyword === "minItems") {
    ctx.report.error(
      path,
      "no exports: the `exports:` list is empty",
      `add one, e.g. ${exampleExport(ctx.existing)}`,
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
    !types.includes("boolean") &&
    (typeof data === "number" || isBool(data))
  ) {
    const src = sourceAt(ctx.report.doc, ctx.report.text, path) ?? String(data);
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
  ctx.report.error(path, message, hint);
}
