/** A resolved export config for tests that build a Target directly (no YAML, no backing file). */
import type { ExportConfig } from "../../src/config/types.js";

/** Export t0 at e3.1, memory-backed, queue length 4, everyone admitted; `over` replaces fields. */
export function exportConfig(over: Partial<ExportConfig> = {}): ExportConfig {
  return {
    name: "t0",
    path: "memory",
    shelf: 3,
    slot: 1,
    interfaces: ["eth0"],
    queueLength: 4,
    sectors: 0,
    readOnly: false,
    writeCache: true,
    directIo: false,
    io: "auto",
    traceIo: false,
    offset: 0,
    length: null,
    serial: "SER",
    model: "MODEL",
    broadcast: true,
    acl: { policy: "accept", accept: [], deny: [] },
    ...over,
  };
}
