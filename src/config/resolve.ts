/**
 * Phase 3 of loading: the validated data -> Config. The top-level keys are
 * resolved here (interfaces, ACL lists, metrics, control socket); each export
 * in resolve-export.ts.
 */
import { availableParallelism } from "node:os";
import { type AclContext, AclResolver } from "./acl-lists.js";
import { didYouMean, type PathSegment } from "./diagnostics.js";
import {
  type ExportInfo,
  existingHint,
  type ResolveContext,
  resolveExport,
} from "./resolve-export.js";
import {
  ACL_NAME_PATTERN,
  configSchema,
  IFNAME_PATTERN,
  interfaceSchema,
  metricsSchema,
} from "./schema.js";
import type { Config, ControlConfig, InterfaceConfig, MetricsConfig } from "./types.js";
import { isBool, isInt, isNum, isObj, isStr } from "./values.js";

/** Receive buffers are configured in units of 64 KiB. */
const BUFFER_UNIT = 64 * 1024;

export interface ResolveOptions {
  /** The file name the Config carries. */
  source: string;
  /** A group name's id, null if there is no such group. */
  groups: (name: string) => number | null;
  /** The control socket when the file names none. */
  defaultControlSocket: string;
}

/** The Config (used only if nothing reported an error) and per-export facts for the checks. */
export function resolveConfig(
  ctx: ResolveContext,
  opts: ResolveOptions,
): { config: Config; infos: ExportInfo[] } | undefined {
  const { values } = ctx;
  if (!isObj(values.data)) return undefined;
  const interfaces = resolveInterfaceSettings(ctx);
  // Keys with invalid names were reported by the schema: leave them out of later checks.
  const aclName = new RegExp(ACL_NAME_PATTERN, "u");
  const lists = values.entries(["acls"]).filter(([n]) => aclName.test(n));
  const acls = new AclResolver(aclContext(ctx), lists);
  acls.checkAll();

  const infos: ExportInfo[] = [];
  const exports = values.list(["exports"]);
  for (let i = 0; i < exports.length; i++) {
    const base: PathSegment[] = ["exports", i];
    if (!values.get(base, isObj)) continue;
    infos.push(resolveExport(ctx, i, base, acls));
  }
  acls.warnUnused();

  const logLevel =
    values.get(["log-level"], isStr) ?? String(configSchema.properties["log-level"].default);
  const stateDir = values.get(["state-dir"], isStr) ?? null;
  const workers = values.get(["workers"], (x): x is string | number => isStr(x) || isNum(x)) ?? 0;
  const config: Config = {
    source: opts.source,
    exports: infos.map((x) => x.config),
    interfaces,
    stateDir,
    watchConfig: values.get(["watch-config"], isBool) ?? false,
    logLevel,
    workers: workers === "auto" ? Math.min(availableParallelism(), 64) : Number(workers),
    metrics: resolveMetrics(ctx),
    control: resolveControl(ctx, opts),
  };
  return { config, infos };
}

/** `metrics:` -> where to listen, or null when turned off. */
function resolveMetrics(ctx: ResolveContext): MetricsConfig | null {
  const v = ctx.values.value(["metrics"]);
  if (v === false || v === "off") return null;
  const raw = isObj(v)
    ? ctx.values.get(["metrics", "listen"], (x): x is string | boolean => isStr(x) || isBool(x))
    : undefined;
  if (raw === false || raw === "off") return null;
  const listen = isStr(raw) ? raw : String(metricsSchema.properties.listen.default);
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen);
  if (!m) return null; // reported by the schema
  const host = m[1] ?? m[2] ?? "";
  const port = Number(m[3]);
  if (port < 1 || port > 65535) {
    ctx.report.error(
      ["metrics", "listen"],
      `port ${port} is out of range`,
      "use a port from 1 to 65535, e.g. 127.0.0.1:9288",
    );
    return null;
  }
  return { host: host === "" || host === "*" ? null : host, port };
}

/** `control-socket:` and `control-group:` -> the socket to create, or null when turned off. */
function resolveControl(ctx: ResolveContext, opts: ResolveOptions): ControlConfig | null {
  const raw = ctx.values.get(
    ["control-socket"],
    (x): x is string | boolean => isStr(x) || isBool(x),
  );
  const group = ctx.values.get(
    ["control-group"],
    (x): x is string | number => isStr(x) || isInt(x),
  );
  if (raw === false || raw === "off") {
    if (group !== undefined)
      ctx.report.warn(
        ["control-group"],
        "`control-group:` has no effect: the control socket is off",
        "remove it, or set `control-socket:` to a path",
        "key",
      );
    return null;
  }
  const socket = isStr(raw) ? raw : opts.defaultControlSocket;
  // sun_path holds 108 bytes including the terminating NUL.
  if (Buffer.byteLength(socket) > 107) {
    ctx.report.error(
      ["control-socket"],
      `the path is ${Buffer.byteLength(socket)} bytes long; a unix socket path can have at most 107`,
      "use a shorter path, e.g. /run/aoed/aoed.sock",
    );
    return null;
  }
  if (group === undefined) return { socket, group: null, gid: null };
  if (isInt(group)) return { socket, group: String(group), gid: group };
  const gid = opts.groups(group);
  if (gid === null) {
    ctx.report.error(
      ["control-group"],
      `there is no group \`${group}\` on this machine`,
      `create it with \`groupadd ${group}\`, give a group number, or leave \`control-group:\` out: then only root can use aoectl's admin commands`,
    );
    return null;
  }
  return { socket, group, gid };
}

/** An interface with no block under `interfaces:`, or an empty one. */
export const INTERFACE_DEFAULTS: Readonly<InterfaceConfig> = {
  mtu: null,
  ringBytes: null,
  busyPollUs: interfaceSchema.properties["busy-poll"].default,
};

function resolveInterfaceSettings(ctx: ResolveContext): Record<string, InterfaceConfig> {
  const out: Record<string, InterfaceConfig> = {};
  const ifName = new RegExp(IFNAME_PATTERN, "u");
  for (const [name] of ctx.values.entries(["interfaces"])) {
    if (!ifName.test(name)) continue;
    const base = ["interfaces", name];
    const mtu = ctx.values.get([...base, "mtu"], isInt) ?? null;
    const buffers = ctx.values.get([...base, "buffers"], isInt);
    out[name] = {
      mtu,
      ringBytes: buffers === undefined ? null : buffers * BUFFER_UNIT,
      busyPollUs: ctx.values.get([...base, "busy-poll"], isInt) ?? INTERFACE_DEFAULTS.busyPollUs,
    };
    // An interface an export names is reported there: the export waits for it.
    if (!ctx.existing.includes(name) && !namedByExport(ctx, name)) {
      const near = didYouMean(name, ctx.existing);
      ctx.report.warn(
        base,
        `there is no network interface \`${name}\` on this machine; these settings are unused`,
        near ? `did you mean \`${near}\`?` : existingHint(ctx.existing),
        "key",
      );
    }
  }
  return out;
}

/** True when an export lists `name` itself (not through a glob). */
function namedByExport(ctx: ResolveContext, name: string): boolean {
  return ctx.values
    .list(["exports"])
    .some((e) => isObj(e) && Array.isArray(e.interfaces) && e.interfaces.includes(name));
}

function aclContext(ctx: ResolveContext): AclContext {
  return {
    get: (p) => ctx.values.get(p, isStr),
    list: (p) => ctx.values.list(p),
    error: (p, m, h) => ctx.report.error(p, m, h),
    warn: (p, m, h, w) => ctx.report.warn(p, m, h, w),
  };
}
