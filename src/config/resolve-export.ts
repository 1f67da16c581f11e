/**
 * Phase 3 of loading, per export: one entry of `exports:` -> ExportConfig,
 * with `defaults:` and the schema's defaults filled in, sizes parsed, ACL
 * lists expanded and interface globs matched against this machine.
 */
import { globToRegExp, isGlob } from "../util/glob.js";
import type { AclResolver } from "./acl-lists.js";
import { describeValue, didYouMean, type PathSegment } from "./diagnostics.js";
import type { Report } from "./report.js";
import { configSchema, schemaDefault } from "./schema.js";
import type { AclConfig, ExportConfig } from "./types.js";
import { formatSize, parseSize } from "./units.js";
import { isBool, isInt, isStr, type Values } from "./values.js";

export const SECTOR = 512;

/** What resolution reads and where it reports. */
export interface ResolveContext {
  report: Report;
  values: Values;
  /** The machine's network interfaces, sorted. */
  existing: readonly string[];
}

/** Per-export facts kept for the cross-export and file checks. */
export interface ExportInfo {
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

export function existingHint(existing: readonly string[]): string {
  return existing.length > 0
    ? `existing interfaces: ${existing.join(", ")}`
    : "no network interfaces found";
}

/** Parses a size and checks it is a multiple of 512; undefined if absent or invalid. */
function size(
  ctx: ResolveContext,
  path: readonly PathSegment[],
  allowZero: boolean,
): { bytes?: number; valid: boolean } {
  const raw = ctx.values.get(path, (v): v is string | number => isStr(v) || isInt(v));
  if (raw === undefined) return { valid: !ctx.values.isBad(path) };
  const r = parseSize(raw);
  if (!r.ok) {
    ctx.report.error(path, r.message);
    return { valid: false };
  }
  if (r.bytes === 0 && !allowZero) {
    ctx.report.error(path, "must not be 0", "leave it out to export up to the end of the file");
    return { valid: false };
  }
  if (r.bytes % SECTOR !== 0) {
    const down = r.bytes - (r.bytes % SECTOR);
    const up = down + SECTOR;
    ctx.report.error(
      path,
      `${describeValue(raw)} is not a multiple of 512 bytes`,
      down > 0 ? `use ${formatSize(down)} or ${formatSize(up)}` : `use ${formatSize(up)}`,
    );
    return { valid: false };
  }
  return { bytes: r.bytes, valid: true };
}

function expandInterfaces(ctx: ResolveContext, base: PathSegment[]): string[] {
  const out: string[] = [];
  const listPath = [...base, "interfaces"];
  const entries = ctx.values.list(listPath);
  for (let j = 0; j < entries.length; j++) {
    const p = [...listPath, j];
    const name = ctx.values.get(p, isStr);
    if (name === undefined) continue;
    if (isGlob(name)) {
      const re = globToRegExp(name);
      const matches = ctx.existing.filter((n) => n !== "lo" && re.test(n));
      if (matches.length === 0) {
        ctx.report.warn(p, `\`${name}\` matches no network interface`, existingHint(ctx.existing));
      }
      out.push(...matches);
    } else if (ctx.existing.includes(name)) {
      out.push(name);
    } else {
      // Kept: a bond, VLAN or renamed NIC may come up after aoed starts.
      const near = didYouMean(name, ctx.existing);
      ctx.report.absent(
        p,
        `there is no network interface \`${name}\` on this machine`,
        near
          ? `did you mean \`${near}\`? ${existingHint(ctx.existing)}`
          : existingHint(ctx.existing),
      );
      out.push(name);
    }
  }
  return [...new Set(out)];
}

export function resolveExport(
  ctx: ResolveContext,
  index: number,
  base: PathSegment[],
  acls: AclResolver,
): ExportInfo {
  const at = (k: string): PathSegment[] => [...base, k];
  const shelf = ctx.values.get(at("shelf"), isInt);
  const slot = ctx.values.get(at("slot"), isInt);
  const explicitName = ctx.values.get(at("name"), isStr);
  const name =
    explicitName ??
    (shelf !== undefined && slot !== undefined ? `e${shelf}.${slot}` : `exports[${index}]`);

  const isDirectIo = (v: unknown): v is ExportConfig["directIo"] => isBool(v) || v === "writes";
  const isIoEngine = (v: unknown): v is ExportConfig["io"] =>
    configSchema.properties.defaults.properties.io.enum.some((e) => e === v);
  const inherit = <T>(
    key: keyof typeof configSchema.properties.defaults.properties,
    guard: (v: unknown) => v is T,
  ): T => {
    const v = ctx.values.get(at(key), guard) ?? ctx.values.get(["defaults", key], guard);
    if (v !== undefined) return v;
    const d = schemaDefault(key);
    if (!guard(d)) throw new Error(`schema default for ${key} has the wrong type`);
    return d;
  };

  const path = ctx.values.get(at("path"), isStr);
  const uuid = ctx.values.get(at("uuid"), isStr);
  let backing = "";
  let backingNode: PathSegment[] | null = null;
  if (path !== undefined) {
    backing = path;
    backingNode = at("path");
  } else if (uuid !== undefined) {
    backing = `/dev/disk/by-uuid/${uuid}`;
    backingNode = at("uuid");
  }

  const offset = size(ctx, at("offset"), true);
  const length = size(ctx, at("length"), false);

  const serial = ctx.values.get(at("serial"), isStr) ?? name.replace(/[^ -~]/g, "_").slice(0, 20);
  const model = ctx.values.get(at("model"), isStr) ?? String(schemaDefault("model"));

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
    ctx.report.warn(
      ctx.values.value(at("policy")) !== undefined ? at("policy") : base,
      "policy reject with nothing in `accept:`: no host can use this export",
      "list the allowed hosts under `accept:`",
    );
  } else if (policy === "accept" && acl.accept.length > 0) {
    ctx.report.warn(
      at("accept"),
      "`accept:` has no effect: with policy accept, hosts not listed are accepted too",
      "add `policy: reject` to allow only the listed hosts",
    );
  }

  // A new per-export key: its schema in schema.ts (in inheritedProperties if
  // `defaults:` may set it too, with its default), its field in types.ts, and
  // one line here: `inherit("key", guard)` or `ctx.values.get(at("key"), guard) ?? default`.
  const config: ExportConfig = {
    name,
    path: backing,
    shelf: shelf ?? 0,
    slot: slot ?? 0,
    interfaces: expandInterfaces(ctx, base),
    queueLength: inherit("queue-length", isInt),
    sectors: ctx.values.get(at("sectors"), isInt) ?? 0,
    readOnly: ctx.values.get(at("read-only"), isBool) ?? false,
    writeCache: inherit("write-cache", isBool),
    directIo: inherit("direct-io", isDirectIo),
    io: inherit("io", isIoEngine),
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
