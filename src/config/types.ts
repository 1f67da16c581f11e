/**
 * The validated, fully resolved configuration the engine consumes.
 * The loader (src/config/load.ts) turns YAML into this; nothing downstream
 * re-validates or applies defaults.
 */

export interface ExportConfig {
  /** Unique name, used in logs, the default serial number and metrics. */
  name: string;
  /** Backing file or block device (absolute path; a uuid is resolved to a path by the loader). */
  path: string;
  shelf: number;
  slot: number;
  /** Interface names (globs already expanded). */
  interfaces: string[];
  /** In-flight requests accepted per export; advertised as the AoE buffer count (>= 2). */
  queueLength: number;
  /** Cap on sectors per ATA request; the effective value is min(this, (MTU - 36) / 512). 0 = no cap. */
  sectors: number;
  readOnly: boolean;
  /** false: every write is durable before it is acknowledged. */
  writeCache: boolean;
  /** O_DIRECT for aligned requests: all of them (true), writes only ("writes"), none (false). */
  directIo: boolean | "writes";
  /** The `io:` setting: the I/O engine, or auto (src/io/choose-engine.ts). */
  io: "auto" | "mmap" | "io_uring" | "threads" | "sync";
  traceIo: boolean;
  /** Window into the backing store, bytes. length null = to the end. */
  offset: number;
  length: number | null;
  /** IDENTIFY serial number (at most 20 ASCII characters). */
  serial: string;
  /** IDENTIFY model string (at most 40 ASCII characters). */
  model: string;
  /** Answer broadcast discovery (false: only unicast queries). */
  broadcast: boolean;
  acl: AclConfig;
}

export interface AclConfig {
  policy: "accept" | "reject";
  /** Lower-case colon-separated MACs, named lists already expanded. */
  accept: string[];
  deny: string[];
}

export interface InterfaceConfig {
  /** null: use the interface's own MTU. */
  mtu: number | null;
  /** Receive ring size in bytes (null: sized from the exports' queue lengths). */
  ringBytes: number | null;
  /** `busy-poll`: how long to watch the receive ring after a batch, in µs; 0: off. */
  busyPollUs: number;
}

/** The Prometheus endpoint (`metrics:`). */
export interface MetricsConfig {
  /** Address to bind; null: every address. */
  host: string | null;
  port: number;
}

/** aoectl's control socket (`control-socket:`, `control-group:`). */
export interface ControlConfig {
  /** Absolute path of the unix socket (created mode 0660). */
  socket: string;
  /** Group given the socket, as configured (name or number) for messages; null: the daemon's own. */
  group: string | null;
  /** That group's id; null: leave the group alone. */
  gid: number | null;
}

export interface Config {
  /** Where the config came from (file path or "embedded:demo"), for messages. */
  source: string;
  exports: ExportConfig[];
  interfaces: Record<string, InterfaceConfig>;
  stateDir: string | null;
  /** Reload whenever the file is saved (`watch-config:`). */
  watchConfig: boolean;
  logLevel: string;
  /** Data-path worker threads besides the main thread (`auto` resolved); 0: none. */
  workers: number;
  /** null: no metrics endpoint. */
  metrics: MetricsConfig | null;
  /** null: no control socket. */
  control: ControlConfig | null;
}
