#!/usr/bin/env node
import { parseArgs } from "node:util";
import { prepareDemo } from "../config/demo.js";
import { describeConfig, writeCacheRisk } from "../config/describe.js";
import { formatDiagnostic, loadConfigFile } from "../config/load.js";
import type { Config } from "../config/types.js";
import { watchConfig } from "../config/watch.js";
import { type AdminServices, startAdminServices } from "../control/services.js";
import { Engine } from "../engine/engine.js";
import { Reloader } from "../engine/reload.js";
import { createLogger } from "../log.js";
import { VERSION } from "../version.js";
import { createNotifier, notifyReloads } from "./sd-notify.js";

const USAGE = `usage: aoed [--config FILE] [--log-level LEVEL] [--log-format json|pretty]
       aoed --demo        export a sparse demo image on a veth pair it creates
       aoed check [--config FILE]
                          validate the config and print the resolved exports

Serves block devices and image files to ATA-over-Ethernet initiators.
The default config file is /etc/aoed.yaml (example: etc/aoed.yaml).`;

const DEFAULT_CONFIG = "/etc/aoed.yaml";

async function load(path: string): Promise<Config> {
  const result = await loadConfigFile(path);
  for (const w of result.warnings) process.stderr.write(`${formatDiagnostic(w)}\n`);
  if (!result.ok) {
    for (const e of result.errors) process.stderr.write(`${formatDiagnostic(e)}\n`);
    process.stderr.write(`aoed: ${path}: ${result.errors.length} error(s); nothing started\n`);
    process.exit(2);
  }
  return result.config;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      config: { type: "string", short: "c" },
      demo: { type: "boolean" },
      "log-level": { type: "string", short: "l" },
      "log-format": { type: "string" },
      help: { type: "boolean", short: "h" },
      version: { type: "boolean", short: "V" },
    },
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
  if (command !== "run" && command !== "check") {
    process.stderr.write(`aoed: unknown command "${command}"\n${USAGE}\n`);
    process.exit(2);
  }
  if (values.demo && values.config) {
    process.stderr.write("aoed: --demo and --config exclude each other\n");
    process.exit(2);
  }
  const config = values.demo ? await prepareDemo() : await load(values.config ?? DEFAULT_CONFIG);
  if (command === "check") {
    process.stdout.write(describeConfig(config));
    return;
  }

  const format = values["log-format"];
  if (format !== undefined && format !== "json" && format !== "pretty") {
    process.stderr.write(`aoed: --log-format must be json or pretty, not "${format}"\n`);
    process.exit(2);
  }
  const pretty = format === undefined ? process.stdout.isTTY === true : format === "pretty";
  const log = createLogger(values["log-level"] ?? config.logLevel, pretty);
  const systemd = createNotifier({ onError: (message) => log.warn(message) });
  const engine = new Engine(log, { prettyLogs: pretty });
  try {
    await engine.start(config);
  } catch (err) {
    log.fatal({ err: (err as Error).message }, "cannot start");
    process.exit(1);
  }
  const configPath = values.demo ? null : (values.config ?? DEFAULT_CONFIG);
  const reloader =
    configPath === null
      ? null
      : new Reloader(engine, configPath, log, values["log-level"] !== undefined);

  // --- Metrics endpoint and control socket (src/metrics, src/control) ---
  let services: AdminServices;
  try {
    services = await startAdminServices({
      config,
      engine,
      log,
      reload: reloader
        ? () => reloader.reload("aoectl reload")
        : async () => ({ ok: false, errors: ["the demo config is embedded: no file to reload"] }),
    });
  } catch (err) {
    log.fatal({ err: (err as Error).message }, "cannot start");
    await engine.stop();
    process.exit(1);
  }
  // --- end of metrics and control socket ---

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
        directIo: t.backend.caps.directIo,
        io: t.backend.caps.engine,
        ioNote: t.backend.caps.engineNote,
        writeCache: t.cfg.writeCache,
      })),
    },
    `aoed ready, serving ${engine.targets.size} export(s)`,
  );
  for (const t of engine.targets.values()) {
    const risk = writeCacheRisk({ readOnly: t.backend.readOnly, writeCache: t.cfg.writeCache });
    if (risk !== null) log.warn({ export: t.name, target: `e${t.shelf}.${t.slot}` }, risk);
  }
  // In a terminal, the exports as a table too (the JSON line above has them for machines).
  if (pretty) process.stdout.write(describeConfig(config));
  if (values.demo) {
    process.stderr.write(
      `\nDemo export e0.0 is on aoed-demo0. See it from the other end of the veth pair:\n  npx aoectl discover aoed-demo1\n\n`,
    );
  }

  const onShutdown: (() => Promise<void>)[] = [() => services.close()];
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    systemd.stopping("stopping: answering in-flight requests");
    log.info({ signal }, "shutting down: answering in-flight requests");
    await Promise.all(onShutdown.map((f) => f()));
    await engine.stop();
    log.info("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));

  // Reload on SIGHUP and whenever the file changes; the embedded demo has no file to watch.
  if (configPath !== null && reloader !== null) {
    process.on("SIGHUP", () => void reloader.reload("SIGHUP"));
    const watcher = watchConfig(configPath, () => void reloader.reload("file changed"));
    onShutdown.push(() => watcher.close());
  } else {
    process.on("SIGHUP", () =>
      log.warn("SIGHUP ignored: the demo config is embedded, there is no file to reload"),
    );
  }

  // --- systemd (Type=notify, src/bin/sd-notify.ts): keep this last in main() ---
  // Every export is open and announced, the admin services run and SIGHUP is handled.
  const serving = () => `serving ${engine.targets.size} export(s)`;
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
