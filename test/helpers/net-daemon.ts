/**
 * The usual integration setup: a veth pair whose B end sits in a fresh
 * network namespace, a scratch directory, and the built daemon in that
 * namespace on a config written there; an initiator uses end A.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { AoeClient } from "../../src/client/client.js";
import { type Daemon, startDaemon } from "./daemon.js";
import { createVethPair, type VethOptions, type VethPair } from "./net.js";

export interface NetDaemon {
  net: VethPair;
  dir: string;
  /** dir/aoed.yaml */
  configPath: string;
  daemon: Daemon;
  /** An initiator on end A, opened before the daemon starts (so it sees the announcements). */
  client: AoeClient;
  /** Stops the daemon (resolving with its exit code) and removes everything. */
  close(): Promise<number | null>;
}

export interface NetDaemonOptions {
  veth?: Omit<VethOptions, "netns">;
  /** The initiator's per-try timeout and tries. */
  client?: { timeoutMs: number; tries: number };
  /** Extra environment for the daemon. */
  env?: Record<string, string>;
  /**
   * The config's text, given the scratch directory, the daemon's interface
   * (end B) and the client; called before the daemon starts.
   */
  config(setup: { dir: string; iface: string; client: AoeClient }): string;
}

/** A sparse file of `bytes` at `file`; returns the path. */
export function sparseFile(file: string, bytes: number): string {
  fs.writeFileSync(file, "");
  fs.truncateSync(file, bytes);
  return file;
}

export async function startNetDaemon(opts: NetDaemonOptions): Promise<NetDaemon> {
  const net = createVethPair({ ...opts.veth, netns: true });
  let dir: string | null = null;
  let client: AoeClient | null = null;
  const cleanup = () => {
    client?.close();
    net.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-it-"));
    client = AoeClient.open(net.a, opts.client ?? { timeoutMs: 300, tries: 3 });
    const configPath = path.join(dir, "aoed.yaml");
    fs.writeFileSync(configPath, opts.config({ dir, iface: net.b, client }));
    const daemon = await startDaemon(["--config", configPath], {
      netns: net.netns,
      ...(opts.env ? { env: opts.env } : {}),
    });
    return {
      net,
      dir,
      configPath,
      daemon,
      client,
      async close() {
        client?.close();
        const code = await daemon.stop();
        cleanup();
        return code;
      },
    };
  } catch (e) {
    cleanup();
    throw e;
  }
}
