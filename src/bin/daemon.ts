#!/usr/bin/env node
/**
 * `aoed`: the daemon's life from the command line to exit. Loads the config
 * (or the embedded demo), starts the admin services and then the engine,
 * tells systemd it is ready, reloads on SIGHUP, a changed file or `aoectl
 * reload`, and on SIGTERM/SIGINT answers what is in flight and exits (by the
 * signal itself when a stuck backend's requests had to be left).
 */
import type { EventEmitter } from "node:events";
import { symbols } from "pino";
import { prepareDemo } from "../config/demo.js";
import { describeConfig, writeCacheRisk } from "../config/describe.js";
import type { Diagnostic } from "../config/diagnostics.js";
import { formatDiagnostic, loadConfigFile } from "../config/load.js";
import { configSchema } from "../config/schema.js";
import type { Config } from "../config/types.js";
import { watchConfig } from "../config/watch.js";
import { type AdminServices, startAdminServices } from "../control/services.js";
import { Engine } from "../engine/engine.js";
import { Reloader } from "../engine/reload.js";
import { createLogger, isJournalStream, logFormatDefault } from "../log.js";
import { VERSION } from "../version.js";
import { check, probeBacking } from "./check.js";
import { parseCommandLine, usageError } from "./cli.js";
import { createNotifier, notifyReloads } from "./sd-notify.js";

const USAGE = `usage: aoed [--config FILE] [--log-level LEVEL] [--log-format json|pretty]
       aoed --demo        export a sparse demo image on a veth pair it creates
       aoed check [--config FILE]
                          validate the config and print the resolved exports

Serves block devices and image files to ATA-over-Ethernet initiators.
The default config file is /etc/aoed.yaml (example: etc/aoed.yaml).`;

const DEFAULT_CONFIG = "/etc/aoed.yaml";
const LOG_LEVELS: readonly string[] = configSchema.properties["log-level"].enum;

async function load(path: string): Promise<{ config: Config; warnings: Diagnostic[] }> {
  const result = await loadConfigFile(path);
  for (const w of result.warnings) process.stderr.write(`${formatDiagnostic(w)}\n`);
  if (!result.ok) {
    // Under systemd these are the reason the unit failed: priority err (<3>) in the journal.
    const err = isJournalStream(2) ? "<3>" : "";
    for (const e of result.errors) process.stderr.write(`${err}${formatDiagnostic(e)}\n`);
    process.stderr.write(
      `${err}aoed: ${path}: ${result.errors.length} error(s); nothing started\n`,
    );
    process.exit(2);
  }
  return result;
}

async function main(): Promise<void> {
  const { values, positionals } = parseCommandLine("aoed", {
    config: { type: "string", short: "c" },
    demo: { type: "boolean" },
    "log-level": { type: "string", short: "l" },
    "log-format": { type: "string" },
    help: { type: "boolean", short: "h" },
    version: { type: "boolean", short: "V" },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (values.version) {
    process.stdout.write(`aoed ${VERSION}\n`);
    return;
  }
  const command = positionals[0] ?? "run";
  if (command !== "run" && command !== "check")
    usageError("aoed", `unknown command "${command}": run or check (see aoed --help)`);
  if (positionals.length > 1)
    usageError("aoed", `unexpected argument "${positionals[1]}" (see aoed --help)`);
  if (values.demo && values.config) usageError("aoed", "--demo and --config exclude each other");
  const format = values["log-format"];
  if (format !== undefined && format !== "json" && format !== "pretty")
    usageError("aoed", `--log-format must be json or pretty, not "${format}"`);
  const level = values["log-level"];
  if (level !== undefined && !LOG_LEVELS.includes(level))
    usageError("aoed", `--log-level must be one of ${LOG_LEVELS.join(", ")}, not "${level}"`);
  const { config, warnings } = values.demo
    ? { config: await prepareDemo(), warnings: [] }
    : await load(values.config ?? DEFAULT_CONFIG);
  if (command === "check") {
    process.exitCode = await check(config, warnings);
    return;
  }

  const pretty = (format ?? logFormatDefault()) === "pretty";
  const log = createLogger(values["log-level"] ?? config.logLevel, pretty);
  const systemd = createNotifier({ onError: (message) => log.warn(message) });
  // From here on: opening many exports can take a while, and a wedged loop is what it catches.
  const watchdog = systemd.startWatchdog();
  if (watchdog.periodMs !== null) log.debug({ periodMs: watchdog.periodMs }, "systemd watchdog on");
  const engine = new Engine(log, { prettyLogs: pretty });
  const configPath = values.demo ? null : (values.config ?? DEFAULT_CONFIG);
  const reloader =
    configPath === null
      ? null
      : new Reloader(engine, configPath, log, values["log-level"] !== undefined);
  let engineStarted: Promise<void> | null = null;

  // --- Metrics endpoint and control socket (src/metrics, src/control) ---
  // Before the engine: the control socket is what makes this the only aoed, and a
  // second one must refuse before it opens an interface and announces itself.
  let services: AdminServices;
  try {
    services = await startAdminServices({
      config,
      engine,
      log,
      ...(reloader ? { reloads: reloader } : {}),
      reload: reloader
        ? async () => {
            await engineStarted;
            return reloader.reload("aoectl reload");
          }
        : async () => ({ ok: false, errors: ["the demo config is embedded: no file to reload"] }),
    });
  } catch (err) {
    log.fatal({ err: (err as Error).message }, "cannot start");
    process.exit(1);
  }
  try {
    engineStarted = engine.start(config);
    await engineStarted;
  } catch (err) {
    log.fatal({ err: (err as Error).message }, "cannot start");
    await services.close();
    process.exit(1);
  }
  // --- end of metrics and control socket ---

  const waitingNote = () =>
    engine.waiting.size > 0 ? `, ${engine.waiting.size} waiting for their device or interface` : "";
  const serving = () => `serving ${engine.targets.size} export(s)${waitingNote()}`;
  log.info(
    {
      version: VERSION,
      config: config.source,
      workers: engine.workers,
      exports: [...engine.targets.values()].map((t) => ({
        name: t.name,
        target: `e${t.shelf}.${t.slot}`,
        path: t.backend.path,
        bytes: t.sizeBytes,
        interfaces: t.cfg.interfaces,
        queueLength: t.cfg.queueLength,
        readOnly: t.backend.readOnly,
        ...t.ioFacts,
        writeCache: t.cfg.writeCache,
      })),
      waiting: [...engine.waiting.values()].map((w) => ({
        name: w.cfg.name,
        target: `e${w.cfg.shelf}.${w.cfg.slot}`,
        waitingFor: w.missing,
      })),
    },
    `aoed ready, serving ${engine.targets.size} export(s)${waitingNote()}`,
  );
  for (const t of engine.targets.values()) {
    const risk = writeCacheRisk({ readOnly: t.backend.readOnly, writeCache: t.cfg.writeCache });
    if (risk !== null) log.warn({ export: t.name, target: `e${t.shelf}.${t.slot}` }, risk);
  }
  // In a terminal, the exports as a table too (the JSON line above has them for machines).
  // The journal gets the log line only: a table's lines would be separate, unprioritised entries.
  if (pretty && !isJournalStream(1)) process.stdout.write(describeConfig(config, probeBacking));
  if (values.demo) {
    process.stderr.write(
      `\nDemo export e0.0 is on aoed-demo0. See it from the other end of the veth pair:\n  npx aoectl discover aoed-demo1\n\n`,
    );
  }

  const onShutdown: (() => Promise<void>)[] = [() => services.close()];
  let stopping = false;
  const shutdown = async (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    systemd.stopping("stopping: answering in-flight requests");
    log.info({ signal }, "shutting down: answering in-flight requests");
    await Promise.all(onShutdown.map((f) => f()));
    const left = await engine.stop();
    if (left.length > 0) {
      // exit(3) would join libuv's threads, and one stuck in the backend never
      // returns: end by the signal itself (a clean stop for systemd) instead.
      log.warn(
        { exports: left, signal },
        "stopped, leaving requests to a stuck backend unanswered",
      );
      process.removeAllListeners(signal);
      // pino writes asynchronously: let that last line out first.
      const out = (log as unknown as Record<symbol, Partial<EventEmitter>>)[symbols.streamSym];
      const end = () => process.kill(process.pid, signal);
      out?.once?.("drain", end);
      setTimeout(end, 1000);
      return;
    }
    log.info("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));

  // Reload on SIGHUP, and whenever the file changes if `watch-config:` asks for it (read at
  // start); the embedded demo has no file to reload.
  if (configPath !== null && reloader !== null) {
    process.on("SIGHUP", () => void reloader.reload("SIGHUP"));
    if (config.watchConfig) {
      const watcher = watchConfig(configPath, () => void reloader.reload("file changed"));
      onShutdown.push(() => watcher.close());
    }
  } else {
    process.on("SIGHUP", () =>
      log.warn("SIGHUP ignored: the demo config is embedded, there is no file to reload"),
    );
  }

  // --- systemd (Type=notify, src/bin/sd-notify.ts): keep this last in main() ---
  // Every export is open and announced, the admin services run and SIGHUP is handled.
  if (reloader !== null)
    notifyReloads(reloader, systemd, (ok) =>
      ok ? serving() : `${serving()}; the last reload failed (see the log)`,
    );
  systemd.ready(serving());
  // --- end of systemd ---
}

main().catch((err) => {
  process.stderr.write(`aoed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
