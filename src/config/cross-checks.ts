/**
 * Phase 4 of loading: checks across exports (addresses, names, serials) and
 * against the backing files (existence, kind, the offset/length window,
 * overlapping writable windows).
 */
import type { PathSegment } from "./diagnostics.js";
import type { Report } from "./report.js";
import { type ExportInfo, SECTOR } from "./resolve-export.js";
import type { ExportConfig } from "./types.js";
import { formatSize } from "./units.js";
import type { Values } from "./values.js";

/** What the loader needs to know about a backing file. */
export type StatInfo =
  | { kind: "file" | "block" | "directory" | "other"; size: number }
  | { kind: "missing" }
  | { kind: "error"; message: string };

export type StatFn = (path: string) => Promise<StatInfo>;

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

function describeExport(report: Report, x: ExportInfo): string {
  return `exports[${x.index}] (\`${x.config.name}\`, line ${report.lineOf(x.base)})`;
}

export function crossChecks(report: Report, values: Values, infos: ExportInfo[]): void {
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
        report.error(
          [...x.base, "shelf"],
          `shelf ${c.shelf} slot ${c.slot} is already exported on ${ifaces.join(", ")} by ${describeExport(report, prev)}`,
          "each export on an interface needs its own shelf/slot pair",
        );
      }
    }

    const prevName = names.get(c.name);
    if (prevName) {
      if (clashes.has(prevName) && !x.nameExplicit) {
        // same shelf/slot as prevName, already reported: the default names follow
      } else if (x.nameExplicit) {
        report.error(
          [...x.base, "name"],
          `duplicate export name \`${c.name}\`: ${describeExport(report, prevName)} has it too`,
          "export names must be unique",
        );
      } else {
        report.error(
          x.base,
          `this export's default name \`${c.name}\` is already used by ${describeExport(report, prevName)}`,
          "add a unique `name:`",
        );
      }
    } else {
      names.set(c.name, x);
    }

    const prevSerial = serials.get(c.serial);
    if (prevSerial && prevSerial.config.name !== c.name) {
      const explicit = values.value([...x.base, "serial"]) !== undefined;
      report.warn(
        explicit ? [...x.base, "serial"] : x.base,
        `serial number \`${c.serial}\` is also used by ${describeExport(report, prevSerial)}: initiators (multipath) may take them for the same disk`,
        "set a distinct `serial:`",
      );
    } else if (!prevSerial) {
      serials.set(c.serial, x);
    }
  }
}

export async function fileChecks(report: Report, stat: StatFn, infos: ExportInfo[]): Promise<void> {
  const checked = infos.filter((x) => x.backingNode !== null);
  const stats = await Promise.all(checked.map((x) => stat(x.config.path)));
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
          report.absent(
            node,
            `no disk with this UUID: ${c.path} does not exist`,
            "list the UUIDs with `blkid` or `ls -l /dev/disk/by-uuid`",
          );
        } else {
          report.absent(
            node,
            `the backing file ${c.path} does not exist`,
            c.path.startsWith("/dev/")
              ? "check the device name with `lsblk`"
              : `create a sparse image with \`truncate -s 10G ${c.path}\`, or fix the path`,
          );
        }
        break;
      case "error":
        report.error(node, `cannot access ${c.path}: ${info.message}`);
        break;
      case "directory":
        report.error(node, `${c.path} is a directory`, "export a regular file or a block device");
        break;
      case "other":
        report.error(node, `${c.path} is neither a regular file nor a block device`);
        break;
      case "file":
        checkWindow(report, x, info.size);
        break;
      case "block":
        break; // the engine learns the size when it opens the device
    }
    const samePath = seen.get(c.path);
    if (samePath === undefined) seen.set(c.path, [x]);
    else {
      checkOverlap(report, x, samePath);
      checkDirectIoPeers(report, x, samePath);
      samePath.push(x);
    }
  }
}

function checkWindow(report: Report, x: ExportInfo, size: number): void {
  if (!x.offsetValid || !x.lengthValid) return;
  const c = x.config;
  const at = (k: string): PathSegment[] => [...x.base, k];
  if (size === 0) {
    report.error(
      x.backingNode!,
      `the backing file ${c.path} is empty (0 bytes)`,
      `give it a size, e.g. \`truncate -s 10G ${c.path}\``,
    );
    return;
  }
  if (c.offset >= size) {
    report.error(
      at("offset"),
      `offset ${formatSize(c.offset)} is at or past the end of ${c.path} (${formatSize(size)})`,
      `use an offset below ${formatSize(size)}`,
    );
    return;
  }
  if (c.length !== null && c.offset + c.length > size) {
    const room = size - c.offset - ((size - c.offset) % SECTOR);
    report.error(
      at("length"),
      `the window (offset ${formatSize(c.offset)} + length ${formatSize(c.length)}) ends past the end of ${c.path} (${formatSize(size)})`,
      room > 0
        ? `use a length of at most ${formatSize(room)}, or grow the file with \`truncate -s ${truncateSize(c.offset + c.length)} ${c.path}\``
        : `grow the file with \`truncate -s ${truncateSize(c.offset + c.length)} ${c.path}\``,
    );
  }
}

/**
 * Writable exports of one file, one with direct-io and one without: the
 * engine keeps their O_DIRECT and buffered writes apart by writing both
 * through the page cache (src/io/file-writers.ts), which the admin who set
 * direct-io should know; worker threads keep no such account.
 */
function checkDirectIoPeers(report: Report, x: ExportInfo, samePath: readonly ExportInfo[]): void {
  const c = x.config;
  if (c.readOnly) return;
  const peer = samePath.find(
    (p) => !p.config.readOnly && (p.config.directIo === false) !== (c.directIo === false),
  );
  if (peer === undefined) return;
  const whose = c.directIo === false ? `those of ${describeExport(report, peer)}` : "this export's";
  report.warn(
    x.backingNode!,
    `writes ${c.path} as ${describeExport(report, peer)} does, one with direct-io and one without: ` +
      `while both are open, ${whose} go through the page cache too ` +
      "(with `workers:`, nothing keeps the two ways apart)",
    "give both the same direct-io",
  );
}

/** `samePath`: the earlier exports of the same backing path. */
function checkOverlap(report: Report, x: ExportInfo, samePath: readonly ExportInfo[]): void {
  const c = x.config;
  const end = (e: ExportConfig): number =>
    e.length === null ? Number.POSITIVE_INFINITY : e.offset + e.length;
  for (const prev of samePath) {
    const p = prev.config;
    if (p.readOnly && c.readOnly) continue;
    if (c.offset < end(p) && p.offset < end(c)) {
      report.warn(
        x.backingNode!,
        `overlaps ${describeExport(report, prev)} on ${c.path} and one of them is writable: writes through one corrupt the other`,
        "use non-overlapping offset/length windows, or make both read-only",
      );
      return;
    }
  }
}
