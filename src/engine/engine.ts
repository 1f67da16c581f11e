/**
 * The engine turns a Config into running ports and targets: it opens every
 * backend and interface, attaches each export to the ports it is served on,
 * announces it, and tears it all down with in-flight I/O answered first.
 */
import type { Logger } from "pino";
import type { Config, ExportConfig } from "../config/types.js";
import type { Backend } from "../io/backend.js";
import { openFileBackend } from "../io/file-backend.js";
import { maxSectorsForMtu } from "../protocol/constants.js";
import { Port } from "./port.js";
import { Target } from "./target.js";

export class Engine {
  readonly ports = new Map<string, Port>();
  readonly targets = new Map<string, Target>();

  constructor(private readonly log: Logger) {}

  /** Opens everything the config names; on any failure closes what was opened and throws. */
  async start(config: Config): Promise<void> {
    const backends = await openAll(config.exports);
    try {
      for (const name of new Set(config.exports.flatMap((e) => e.interfaces))) {
        const iface = config.interfaces[name] ?? { mtu: null, ringBytes: null };
        const queueSlots = config.exports
          .filter((e) => e.interfaces.includes(name))
          .reduce((n, e) => n + e.queueLength, 0);
        const port = Port.open(name, { mtu: iface.mtu, ringBytes: iface.ringBytes, queueSlots });
        this.ports.set(name, port);
      }
      config.exports.forEach((e, i) => {
        const ports = e.interfaces.map((n) => this.ports.get(n)!);
        const maxSectors = Math.max(...ports.map((p) => maxSectorsForMtu(p.mtu)));
        const target = new Target(e, backends[i]!, maxSectors, this.log);
        this.targets.set(e.name, target);
        for (const p of ports) p.attach(target);
      });
    } catch (err) {
      for (const port of this.ports.values()) port.close();
      this.ports.clear();
      this.targets.clear();
      await Promise.all(backends.map((b) => b.close()));
      throw err;
    }
    for (const target of this.targets.values()) {
      for (const name of target.cfg.interfaces) target.announce(this.ports.get(name)!);
    }
  }

  /** Stops accepting, answers what is in flight, flushes and closes everything. */
  async stop(): Promise<void> {
    await Promise.all(
      [...this.targets.values()].map(async (t) => {
        await t.drain();
        await new Promise<void>((resolve) =>
          t.backend.flush((err) => {
            if (err)
              this.log.error({ export: t.name, err: err.message }, "flush at shutdown failed");
            resolve();
          }),
        );
        await t.backend.close();
      }),
    );
    for (const port of this.ports.values()) port.close();
    this.ports.clear();
    this.targets.clear();
  }
}

async function openAll(exports: ExportConfig[]): Promise<Backend[]> {
  const results = await Promise.allSettled(
    exports.map((e) =>
      openFileBackend({
        path: e.path,
        readOnly: e.readOnly,
        directIo: e.directIo,
        writeCache: e.writeCache,
        offset: e.offset,
        length: e.length,
      }),
    ),
  );
  const failed = results.flatMap((r, i) =>
    r.status === "rejected" ? [`${exports[i]!.name}: ${(r.reason as Error).message}`] : [],
  );
  if (failed.length > 0) {
    await Promise.all(results.map((r) => (r.status === "fulfilled" ? r.value.close() : undefined)));
    throw new Error(`cannot open exports:\n  ${failed.join("\n  ")}`);
  }
  return results.map((r) => (r as PromiseFulfilledResult<Backend>).value);
}
