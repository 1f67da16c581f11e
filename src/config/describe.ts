/** `aoed check`: the resolved exports as the engine will see them, for a human. */
import type { Config, ExportConfig } from "./types.js";
import { formatBytes } from "./units.js";

/**
 * What backs a path now: its kind and whole size (a block device's from the
 * device). Throws when it cannot be read; given by the caller, so config/
 * does not depend on io/.
 */
export type BackingProbe = (path: string) => { kind: "file" | "block device"; bytes: number };

/** The exported size and what backs it, or why it cannot be read right now. */
function backing(e: ExportConfig, probe: BackingProbe): string {
  try {
    const { kind, bytes } = probe(e.path);
    const size = e.length ?? bytes - e.offset;
    const window = e.offset > 0 || e.length !== null ? ` (window at ${formatBytes(e.offset)})` : "";
    return `${formatBytes(size)} ${kind}${window}`;
  } catch (err) {
    return `unreadable: ${(err as Error).message}`;
  }
}

/**
 * The risk of `write-cache: true`, said per export wherever admins look
 * (aoed check, aoectl status, the start-up log); null when it does not apply.
 */
export function writeCacheRisk(e: { readOnly: boolean; writeCache: boolean }): string | null {
  if (e.readOnly || !e.writeCache) return null;
  return (
    "write-cache is on: writes are acknowledged once they are in this machine's page cache, " +
    "and a power cut or crash of this machine can lose them (set write-cache: false unless " +
    "the storage is battery-backed or UPS-protected)"
  );
}

/** `problems`: by export name, why it would not serve now (from `aoed check`). */
export function describeConfig(
  config: Config,
  probe: BackingProbe,
  problems: ReadonlyMap<string, string> = new Map(),
): string {
  const n = config.exports.length;
  const lines = [
    problems.size === 0
      ? `${config.source}: OK, ${n} export(s)`
      : `${config.source}: ${n} export(s), ${problems.size} would not serve now`,
  ];
  for (const e of config.exports) {
    const flags = [
      e.readOnly ? "read-only" : "read-write",
      e.writeCache ? "write-cache" : "no write-cache (writes durable before ack)",
      e.directIo === "writes" ? "direct-io writes" : e.directIo ? "direct-io" : "buffered-io",
      `io ${e.io}`,
      e.traceIo ? "trace-io" : null,
      e.broadcast ? null : "no broadcast discovery",
    ].filter((f) => f !== null);
    const acl =
      e.acl.policy === "accept" && e.acl.deny.length === 0
        ? "everyone"
        : `policy ${e.acl.policy}, accept ${e.acl.accept.length} MAC(s), deny ${e.acl.deny.length}`;
    lines.push(
      `  e${e.shelf}.${e.slot}  ${e.name}`,
      `      ${e.path}: ${backing(e, probe)}`,
      `      interfaces ${e.interfaces.join(", ")}; queue ${e.queueLength}; sectors ${e.sectors || "per MTU"}`,
      `      ${flags.join(", ")}; serial "${e.serial}"; access: ${acl}`,
    );
    const problem = problems.get(e.name);
    if (problem !== undefined) lines.push(`      NOT SERVING: ${problem}`);
    const risk = writeCacheRisk(e);
    if (risk !== null) lines.push(`      WARNING: ${risk}`);
  }
  if (config.stateDir) lines.push(`  state kept in ${config.stateDir}`);
  return `${lines.join("\n")}\n`;
}
