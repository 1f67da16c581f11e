/** aoectl's rendering of control socket answers: status, stats, show and the monitor table. */
import { writeCacheRisk } from "../config/describe.js";
import { formatBytes } from "../config/units.js";
import type {
  ExportCounters,
  InterfaceCounters,
  ShowResult,
  StatsResult,
  StatusResult,
} from "./protocol.js";

function duration(seconds: number): string {
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const parts = [d > 0 ? `${d}d` : "", d > 0 || h > 0 ? `${h}h` : "", `${m}m`, `${s % 60}s`];
  return parts.filter(Boolean).join(" ");
}

/** Columns padded to their widest cell; `right` marks right-aligned (numeric) columns. */
export function table(header: string[], rows: string[][], right: readonly number[] = []): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (right.includes(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

function stateText(e: StatusResult["exports"][number]): string {
  const s = e.state;
  const parts: string[] = [];
  // Older daemons send no waitingFor.
  if ((e.waitingFor?.length ?? 0) > 0)
    parts.push(`${e.up ? "missing" : "WAITING for"} ${e.waitingFor.join(", ")}`);
  if (s.config !== "") parts.push(`config ${JSON.stringify(s.config)}`);
  if (s.reserve.length > 0) parts.push(`reserved for ${s.reserve.join(",")}`);
  if (s.macmask.length > 0) parts.push(`mask ${s.macmask.join(",")}`);
  return parts.length > 0 ? parts.join("; ") : "-";
}

export function formatStatus(s: StatusResult): string {
  const d = s.daemon;
  const exports = table(
    ["EXPORT", "TARGET", "SIZE", "MODE", "IO", "IN-FLIGHT", "QUEUE", "INTERFACES", "PATH", "STATE"],
    s.exports.map((e) => [
      e.name,
      e.target,
      formatBytes(e.sizeBytes),
      e.readOnly ? "ro" : "rw",
      e.io ?? "-", // older daemons send no io
      String(e.inFlight),
      String(e.queueLength),
      e.interfaces.join(","),
      e.path,
      stateText(e),
    ]),
    [2, 5, 6],
  );
  // Per export, below the table: what an admin must know about its durability.
  const notes: string[] = [];
  for (const e of s.exports) {
    if (e.failed !== null) notes.push(`${e.name} (${e.target}): FAILED: ${e.failed}`);
    const risk = writeCacheRisk(e);
    if (risk !== null) notes.push(`${e.name} (${e.target}): ${risk}`);
    if (e.writesBuffered) notes.push(`${e.name} (${e.target}): direct-io: ${e.writesBuffered}`);
  }
  const noteText = notes.length > 0 ? `\n\n${notes.join("\n")}` : "";
  const ifaces = table(
    ["INTERFACE", "MTU", "MAC", "EXPORTS"],
    s.interfaces.map((i) =>
      i.up === false
        ? [i.name, "-", "(does not exist)", String(i.exports)]
        : [i.name, String(i.mtu), i.mac, String(i.exports)],
    ),
    [1, 3],
  );
  // Under the table, where an admin's eye lands: exports whose backend hangs.
  const stuck = s.exports
    .filter((e) => e.stuck)
    .map(
      (e) =>
        `${e.name} (${e.target}): backend stuck: oldest request ${duration(e.oldestRequestSeconds)} old, ${e.inFlight} of ${e.queueLength} queue slots held, more requests dropped\n`,
    )
    .join("");
  return `aoed ${d.version} (pid ${d.pid}), up ${duration(d.uptimeSeconds)}, ${s.exports.length} export(s)\n\n${exports}${noteText}\n\n${stuck === "" ? "" : `${stuck}\n`}${ifaces}\n`;
}

function avgLatencyMs(sum: number, count: number): string {
  return count > 0 ? ((sum / count) * 1000).toFixed(3) : "-";
}

function kv(pairs: [string, string | number][]): string {
  return pairs.map(([k, v]) => `${k} ${v}`).join("  ");
}

/** Group commit's line, when the export has synced anything (write-cache: false). */
function syncLine(s: ExportCounters["sync"]): string[] {
  if (s.syncs + s.dsyncWrites + s.errors === 0) return [];
  return [
    `  syncs      ${kv([
      ["fdatasync", s.syncs],
      ["writes-per-sync", s.syncs > 0 ? (s.syncedWrites / s.syncs).toFixed(1) : "-"],
      ["dsync-writes", s.dsyncWrites],
      ["errors", s.errors],
    ])}`,
  ];
}

/** Busy polling's line, when the interface's socket has watched its ring (busy-poll not 0). */
function busyPollLine(i: InterfaceCounters): string[] {
  if (i.busyPollHits + i.busyPollMisses === 0) return [];
  return [
    `  busy-poll  ${kv([
      ["hits", i.busyPollHits],
      ["misses", i.busyPollMisses],
    ])}`,
  ];
}

export function formatStats(s: StatsResult): string {
  const out: string[] = [];
  for (const e of s.exports) {
    out.push(
      `${e.name} (${e.target})`,
      `  requests   ${kv(Object.entries(e.requests))}`,
      `  bytes      ${kv([
        ["read", formatBytes(e.bytesRead)],
        ["written", formatBytes(e.bytesWritten)],
      ])}`,
      `  latency    ${kv([
        ["avg ms", avgLatencyMs(e.latency.sum, e.latency.count)],
        ["requests", e.latency.count],
      ])}`,
      `  errors     ${kv([
        ["ata", e.ataErrors],
        ["aoe", e.aoeErrors],
        ["queue-drops", e.queueDrops],
        ["acl-denied", e.aclDenied],
        ["mask-denied", e.maskDenied],
      ])}`,
      ...syncLine(e.sync),
      `  in-flight  ${e.inFlight}`,
      "",
    );
  }
  for (const i of s.interfaces) {
    out.push(
      `interface ${i.name}`,
      `  received   ${kv([
        ["frames", i.rxFrames],
        ["bytes", formatBytes(i.rxBytes)],
      ])}`,
      `  sent       ${kv([
        ["frames", i.txFrames],
        ["bytes", formatBytes(i.txBytes)],
      ])}`,
      `  ignored    ${kv(Object.entries(i.ignored))}`,
      `  dropped    ${kv([
        ["kernel-ring", i.kernelDrops],
        ["tx-ring-full", i.txRingFull],
      ])}`,
      ...busyPollLine(i),
      "",
    );
  }
  return out.join("\n");
}

/** `show` output: just the values for a plain name, `name: values` lines for a glob. */
export function formatShow(r: ShowResult, plain: boolean): string {
  const lines: string[] = [];
  for (const e of r.exports) {
    const values =
      r.what === "config"
        ? [JSON.stringify(e.config ?? "")]
        : ((r.what === "macmask" ? e.macmask : e.reserve) ?? []);
    if (plain) {
      if (r.what === "config") lines.push(e.config ?? "");
      else lines.push(...values);
    } else lines.push(`${e.name}: ${values.length > 0 ? values.join(" ") : "(none)"}`);
  }
  return lines.length > 0 ? `${lines.join("\n")}\n` : "";
}

export interface MonitorRow {
  name: string;
  target: string;
  reqPerSec: number;
  readMBps: number;
  writeMBps: number;
  /** null: no request completed in the interval. */
  avgLatencyMs: number | null;
  errors: number;
  drops: number;
  inFlight: number;
}

/** A counter's growth; a counter that went down was cleared in between: count from zero. */
function delta(before: number | undefined, now: number): number {
  return before === undefined || now < before ? now : now - before;
}

function requestTotal(e: ExportCounters): number {
  return Object.values(e.requests).reduce((a, b) => a + b, 0);
}

/** Rates per export between two stats samples. */
export function monitorRows(prev: StatsResult, cur: StatsResult): MonitorRow[] {
  const dt = Math.max(cur.time - prev.time, 1e-6);
  const before = new Map(prev.exports.map((e) => [e.name, e]));
  return cur.exports.map((e) => {
    const p = before.get(e.name);
    const lat = delta(p?.latency.count, e.latency.count);
    const latSum =
      p && e.latency.count >= p.latency.count ? e.latency.sum - p.latency.sum : e.latency.sum;
    return {
      name: e.name,
      target: e.target,
      reqPerSec: delta(p && requestTotal(p), requestTotal(e)) / dt,
      readMBps: delta(p?.bytesRead, e.bytesRead) / dt / 1e6,
      writeMBps: delta(p?.bytesWritten, e.bytesWritten) / dt / 1e6,
      avgLatencyMs: lat > 0 ? (latSum / lat) * 1000 : null,
      errors: delta(p && p.ataErrors + p.aoeErrors, e.ataErrors + e.aoeErrors),
      drops: delta(p?.queueDrops, e.queueDrops),
      inFlight: e.inFlight,
    };
  });
}

export function formatMonitor(rows: MonitorRow[], header: string): string {
  const n = (v: number, digits = 1): string => v.toFixed(digits);
  const totals = rows.reduce(
    (t, r) => ({
      req: t.req + r.reqPerSec,
      rd: t.rd + r.readMBps,
      wr: t.wr + r.writeMBps,
      err: t.err + r.errors,
      drops: t.drops + r.drops,
      infl: t.infl + r.inFlight,
    }),
    { req: 0, rd: 0, wr: 0, err: 0, drops: 0, infl: 0 },
  );
  const body = rows.map((r) => [
    r.name,
    r.target,
    n(r.reqPerSec),
    n(r.readMBps, 2),
    n(r.writeMBps, 2),
    r.avgLatencyMs === null ? "-" : n(r.avgLatencyMs, 3),
    String(r.errors),
    String(r.drops),
    String(r.inFlight),
  ]);
  if (rows.length > 1)
    body.push([
      "TOTAL",
      "",
      n(totals.req),
      n(totals.rd, 2),
      n(totals.wr, 2),
      "",
      String(totals.err),
      String(totals.drops),
      String(totals.infl),
    ]);
  return `${header}\n\n${table(
    [
      "EXPORT",
      "TARGET",
      "REQ/S",
      "READ MB/S",
      "WRITE MB/S",
      "AVG LAT MS",
      "ERRORS",
      "DROPS",
      "IN-FLIGHT",
    ],
    body,
    [2, 3, 4, 5, 6, 7, 8],
  )}\n`;
}
