#!/usr/bin/env node
/**
 * aoectl: the admin's AoE tool. Initiator-side commands talk AoE on an
 * interface; admin commands talk to a running aoed over its control socket.
 */
import fs from "node:fs";
import { AoeClient, type TargetInfo } from "../client/client.js";
import { didYouMean } from "../config/diagnostics.js";
import { formatBytes } from "../config/units.js";
import { ControlClient, ControlError, controlRequest, socketPath } from "../control/client.js";
import {
  formatMonitor,
  formatShow,
  formatStats,
  formatStatus,
  monitorRows,
} from "../control/format.js";
import {
  CLEAR_WHAT,
  type ClearResult,
  type ReloadResult,
  SHOW_WHAT,
  type ShowResult,
  type StatsResult,
  type StatusResult,
} from "../control/protocol.js";
import { ConfigCmd, MaskCmd, MaskDcmd, ReserveCmd, SECTOR } from "../protocol/constants.js";
import { macToString, parseMac, readMac, writeMac } from "../protocol/mac.js";
import { globToRegExp, isGlob } from "../util/glob.js";
import { VERSION } from "../version.js";
import { parseCommandLine, usageError } from "./cli.js";

const USAGE = `usage: aoectl COMMAND ...

Admin commands, to the aoed on this machine (root, or a member of aoed's control-group):
  status                                exports (target, path, size, state, queue) and interfaces
  stats [EXPORT]                        counters per export and per interface since start or clear
  monitor [EXPORT] [SECONDS] [--count N]
                                        live table per export: req/s, MB/s, latency, errors (Ctrl-C quits)
  reload                                re-read aoed's config file and apply it
  show config|macmask|reserve EXPORT    what initiators set on EXPORT (a name or a glob: "lv*", "*")
  clear config|macmask|reserve|stats EXPORT
                                        reset it on every export EXPORT matches
  --socket PATH    the control socket (default $AOED_SOCKET or /run/aoed/aoed.sock)
  --json           status, stats, show, clear: print the daemon's answer as JSON;
                   monitor: one JSON object per interval
  --version        print aoectl's version
  EXPORT is a name or a glob: "lv*", "*"; stats and monitor show every export without it

Initiator side (run as root on the interface facing the targets):
  discover IFACE [--timeout MS]         list targets: shelf.slot, MAC, size, queue, max sectors, firmware, config
  identify IFACE eS.L                   ATA IDENTIFY: model, serial, firmware, capacity
  read IFACE eS.L LBA COUNT [--out F]   read COUNT sectors at LBA (to stdout or F)
  write IFACE eS.L LBA FILE             write FILE (a multiple of 512 bytes) at LBA
  flush IFACE eS.L                      FLUSH CACHE EXT
  config IFACE eS.L [read|test|prefix|set|force] [STRING]
  mask IFACE eS.L [read|add MAC...|delete MAC...]
  reserve IFACE eS.L [read|set MAC...|force MAC...|release]`;

function fail(message: string): never {
  usageError("aoectl", message);
}

const ADMIN_COMMANDS = new Set(["status", "stats", "monitor", "reload", "show", "clear"]);
const INITIATOR_COMMANDS = [
  "discover",
  "identify",
  "read",
  "write",
  "flush",
  "config",
  "mask",
  "reserve",
];

/**
 * Keeps the exports `pattern` names (a name or a glob), and every interface: the
 * same answer whatever the daemon's version. No match is a mistake, as in show and clear.
 */
function only(r: StatsResult, pattern: string | undefined): StatsResult {
  if (pattern === undefined) return r;
  const re = globToRegExp(pattern);
  const exports = r.exports.filter((e) => re.test(e.name));
  if (exports.length === 0) {
    const names = r.exports.map((e) => e.name);
    process.stderr.write(
      `aoectl: no export matches "${pattern}"${names.length > 0 ? ` (exports: ${names.join(", ")})` : " (there are no exports)"}\n`,
    );
    process.exit(1);
  }
  return { ...r, exports };
}

interface AdminOptions {
  socket?: string | undefined;
  count?: string | undefined;
  json?: boolean | undefined;
}

function print(json: boolean | undefined, value: unknown, text: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : text());
}

/** `aoectl show|clear WHAT EXPORT`: the two arguments, or the usage line. */
function whatAndExport<W extends string>(
  command: string,
  whats: readonly W[],
  args: string[],
): [W, string] {
  const [what, pattern] = args;
  if (!whats.includes(what as W) || pattern === undefined)
    fail(`usage: aoectl ${command} ${whats.join("|")} EXPORT`);
  return [what as W, pattern];
}

async function admin(command: string, args: string[], opts: AdminOptions): Promise<void> {
  const sock = socketPath(opts.socket);
  switch (command) {
    case "status": {
      const r = await controlRequest<StatusResult>(sock, { cmd: "status" });
      print(opts.json, r, () => formatStatus(r));
      return;
    }
    case "stats": {
      if (args.length > 1) fail("usage: aoectl stats [EXPORT]");
      const r = only(await controlRequest<StatsResult>(sock, { cmd: "stats" }), args[0]);
      print(opts.json, r, () => formatStats(r));
      return;
    }
    case "reload": {
      let r: ReloadResult;
      try {
        r = await controlRequest(sock, { cmd: "reload" });
      } catch (err) {
        if (!(err instanceof ControlError)) throw err;
        process.stderr.write(`aoectl: ${err.message}\n`);
        for (const e of err.errors) process.stderr.write(`${e}\n`);
        process.exit(1);
      }
      const changes = (["added", "removed", "changed"] as const)
        .filter((k) => (r.summary?.[k]?.length ?? 0) > 0)
        .map((k) => `${k} ${r.summary![k]!.join(", ")}`);
      process.stdout.write(
        `aoed reloaded its config${changes.length > 0 ? `: ${changes.join("; ")}` : ", nothing changed"}\n`,
      );
      return;
    }
    case "show": {
      const [what, pattern] = whatAndExport("show", SHOW_WHAT, args);
      const r = await controlRequest<ShowResult>(sock, { cmd: "show", what, export: pattern });
      print(opts.json, r, () => formatShow(r, !isGlob(pattern)));
      return;
    }
    case "clear": {
      const [what, pattern] = whatAndExport("clear", CLEAR_WHAT, args);
      const r = await controlRequest<ClearResult>(sock, { cmd: "clear", what, export: pattern });
      print(opts.json, r, () => `cleared ${r.what} on ${r.matched.join(", ")}\n`);
      return;
    }
    case "monitor": {
      // An interval is a number; anything else names the exports to show.
      const isNumber = (a: string | undefined) => a !== undefined && !Number.isNaN(Number(a));
      const pattern = isNumber(args[0]) ? undefined : args[0];
      const interval = args.find(isNumber);
      if (args.length > (pattern === undefined ? 1 : 2))
        fail("usage: aoectl monitor [EXPORT] [SECONDS] [--count N]");
      await monitor(sock, { pattern, interval, count: opts.count, json: opts.json === true });
      return;
    }
  }
}

interface MonitorOptions {
  pattern: string | undefined;
  interval: string | undefined;
  count: string | undefined;
  /** One JSON object per interval instead of a table. */
  json: boolean;
}

/** Redraws a table of per-export rates every interval until Ctrl-C (or --count redraws). */
async function monitor(sock: string, opts: MonitorOptions) {
  const countText = opts.count;
  const seconds = Number(opts.interval ?? 1);
  if (!Number.isFinite(seconds) || seconds < 0.05 || seconds > 3600)
    fail("monitor: the interval is a number of seconds from 0.05 to 3600");
  const count = countText === undefined ? Number.POSITIVE_INFINITY : Number(countText);
  if (!Number.isSafeInteger(count) && count !== Number.POSITIVE_INFINITY) fail("--count: a number");
  const client = await ControlClient.connect(sock);
  const tty = process.stdout.isTTY === true;
  let stopping = false;
  let wake = (): void => {};
  const stop = (): void => {
    stopping = true;
    wake();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  try {
    const sample = async () =>
      only(await client.request<StatsResult>({ cmd: "stats" }), opts.pattern);
    let prev = await sample();
    if (tty && !opts.json)
      process.stdout.write(`\x1b[H\x1b[2Jaoed monitor: first sample in ${seconds}s...\n`);
    for (let i = 0; i < count && !stopping; i++) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, seconds * 1000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (stopping) break;
      const cur = await sample();
      const rows = monitorRows(prev, cur);
      prev = cur;
      if (opts.json) {
        // One object a line, for jq and log shippers.
        process.stdout.write(
          `${JSON.stringify({ time: new Date().toISOString(), seconds, exports: rows })}\n`,
        );
        continue;
      }
      const header = `aoed monitor  every ${seconds}s  ${new Date().toTimeString().slice(0, 8)}${tty ? "  (Ctrl-C quits)" : ""}`;
      const text = formatMonitor(rows, header);
      // Redraw in place on a terminal; one table after another into a pipe.
      process.stdout.write(tty ? `\x1b[H\x1b[2J${text}` : `${i > 0 ? "\n" : ""}${text}`);
    }
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    client.close();
  }
}

function parseTargetName(text: string | undefined): { shelf: number; slot: number } {
  const m = /^e?(\d+)\.(\d+)$/.exec(text ?? "");
  if (!m) fail(`expected a target like e0.1, got "${text ?? ""}"`);
  return { shelf: Number(m[1]), slot: Number(m[2]) };
}

function macArgs(list: string[]): Buffer[] {
  return list.map((text) => {
    const mac = parseMac(text);
    if (mac === null) fail(`not a MAC address: ${text}`);
    const b = Buffer.alloc(6);
    writeMac(b, 0, mac);
    return b;
  });
}

async function find(
  client: AoeClient,
  iface: string,
  name: string | undefined,
  timeoutMs: number,
): Promise<TargetInfo> {
  const { shelf, slot } = parseTargetName(name);
  const [t] = await client.discover({ shelf, slot, timeoutMs });
  if (!t) fail(`e${shelf}.${slot}: no answer on ${iface}`);
  return t;
}

async function main(): Promise<void> {
  const { values, positionals } = parseCommandLine("aoectl", {
    timeout: { type: "string" },
    out: { type: "string", short: "o" },
    socket: { type: "string", short: "s" },
    count: { type: "string", short: "n" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
    version: { type: "boolean", short: "V" },
  });
  if (values.version) {
    process.stdout.write(`aoectl ${VERSION}\n`);
    return;
  }
  const [command, iface, target, ...rest] = positionals;
  if (values.help || command === undefined || command === "help") {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (ADMIN_COMMANDS.has(command)) {
    await admin(command, positionals.slice(1), values);
    return;
  }
  if (!INITIATOR_COMMANDS.includes(command)) {
    const near = didYouMean(command, [...ADMIN_COMMANDS, ...INITIATOR_COMMANDS]);
    fail(
      `unknown command "${command}"${near ? `; did you mean "${near}"?` : ""} (see aoectl --help)`,
    );
  }
  if (iface === undefined) fail(`${command}: which interface?\n${USAGE}`);
  const timeoutMs = Number(values.timeout ?? 1000);
  let client: AoeClient;
  try {
    client = AoeClient.open(iface);
  } catch (err) {
    fail((err as Error).message);
  }
  try {
    switch (command) {
      case "discover": {
        const targets = await client.discover({ timeoutMs });
        if (targets.length === 0) {
          process.stderr.write(`no AoE targets answered on ${iface}\n`);
          process.exitCode = 1;
        }
        for (const t of targets) {
          let size = "?";
          try {
            size = formatBytes((await client.identify(t)).sectors * SECTOR);
          } catch (err) {
            size = `(identify failed: ${(err as Error).message})`;
          }
          process.stdout.write(
            `e${t.shelf}.${t.slot}\t${t.mac}\t${size}\tqueue ${t.bufferCount}\tsectors ${t.maxSectors}\tfirmware 0x${t.firmware.toString(16).padStart(4, "0")}\tconfig "${t.config}"\n`,
          );
        }
        break;
      }
      case "identify": {
        const id = await client.identify(await find(client, iface, target, timeoutMs));
        process.stdout.write(
          `model:    ${id.model}\nserial:   ${id.serial}\nfirmware: ${id.firmware}\nsectors:  ${id.sectors} (${formatBytes(id.sectors * SECTOR)})\nlba48:    ${id.lba48}\n`,
        );
        break;
      }
      case "read": {
        const [lba, count] = rest.map(Number);
        if (!Number.isSafeInteger(lba) || !Number.isSafeInteger(count))
          fail("read: LBA and COUNT must be integers");
        const data = await client.read(await find(client, iface, target, timeoutMs), lba!, count!);
        if (values.out) fs.writeFileSync(values.out, data);
        else process.stdout.write(data);
        break;
      }
      case "write": {
        const [lbaText, file] = rest;
        const lba = Number(lbaText);
        if (!Number.isSafeInteger(lba) || file === undefined) fail("write: needs LBA and FILE");
        const data = fs.readFileSync(file);
        await client.write(await find(client, iface, target, timeoutMs), lba, data);
        break;
      }
      case "flush":
        await client.flush(await find(client, iface, target, timeoutMs));
        break;
      case "config": {
        const ccmds: Record<string, number> = {
          read: ConfigCmd.read,
          test: ConfigCmd.test,
          prefix: ConfigCmd.testPrefix,
          set: ConfigCmd.set,
          force: ConfigCmd.forceSet,
        };
        const ccmd = ccmds[rest[0] ?? "read"];
        if (ccmd === undefined) fail(`config: unknown action ${rest[0]}`);
        const reply = await client.config(
          await find(client, iface, target, timeoutMs),
          ccmd,
          rest[1] ?? "",
        );
        if (reply.kind === "config")
          process.stdout.write(`${reply.arg.config.toString("latin1")}\n`);
        break;
      }
      case "mask": {
        const action = rest[0] ?? "read";
        const dcmd = action === "add" ? MaskDcmd.add : action === "delete" ? MaskDcmd.delete : null;
        if (action !== "read" && dcmd === null) fail(`mask: unknown action ${action}`);
        const t = await find(client, iface, target, timeoutMs);
        const reply =
          dcmd === null
            ? await client.macMask(t, MaskCmd.read)
            : await client.macMask(
                t,
                MaskCmd.edit,
                macArgs(rest.slice(1)).map((mac) => ({ dcmd, mac })),
              );
        if (reply.kind === "macmask") {
          if (reply.arg.merror)
            fail(`mask: error ${reply.arg.merror} at directive ${reply.arg.directives.length}`);
          for (const d of reply.arg.directives)
            process.stdout.write(`${macToString(readMac(d.mac, 0))}\n`);
        }
        break;
      }
      case "reserve": {
        const action = rest[0] ?? "read";
        const rcmds: Record<string, number> = {
          read: ReserveCmd.read,
          set: ReserveCmd.set,
          force: ReserveCmd.forceSet,
          release: ReserveCmd.set,
        };
        const rcmd = rcmds[action];
        if (rcmd === undefined) fail(`reserve: unknown action ${action}`);
        const macs = action === "release" ? [] : macArgs(rest.slice(1));
        const reply = await client.reserve(
          await find(client, iface, target, timeoutMs),
          rcmd,
          macs,
        );
        if (reply.kind === "reserve")
          for (const m of reply.arg.macs) process.stdout.write(`${macToString(readMac(m, 0))}\n`);
        break;
      }
    }
  } finally {
    client.close();
  }
}

main().catch((err) => {
  process.stderr.write(`aoectl: ${(err as Error).message}\n`);
  process.exit(1);
});
