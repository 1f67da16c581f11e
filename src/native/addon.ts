/**
 * Loader and types for the native addon (build/Release/aoed_native.node,
 * built from native/*.cc by node-gyp). The addon is loaded lazily, on first
 * use, so modules that merely import the packet layer work without it.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The readable bit of the `events` argument of the poll callback (libuv's value). */
export const POLL_READABLE = 1;

/**
 * PACKET_FANOUT_CBPF membership: id 0 creates a group (the kernel picks a
 * unique id) steered by `program` (struct sock_filter[], see
 * src/engine/steering.ts); another id joins that group, and `program` is ignored.
 */
export interface FanoutRequest {
  id: number;
  program: Buffer;
}

/** What openPacket() returns: an AF_PACKET socket with mmapped TPACKET_V2 rings. */
export interface NativePacketHandle {
  readonly fd: number;
  readonly ifindex: number;
  readonly ifname: string;
  /** Interface MAC address (a 6-byte copy). */
  readonly mac: Buffer;
  /** MTU at open time. */
  readonly mtu: number;
  /** The PACKET_FANOUT group this socket is in; 0 when it fans out with nobody. */
  readonly fanoutId: number;
  /** The RX ring, an external ArrayBuffer over the mmap; detached by close(). */
  readonly rxRing: ArrayBuffer;
  readonly rxFrameSize: number;
  readonly rxFrameCount: number;
  /** The TX ring, an external ArrayBuffer over the mmap; detached by close(). */
  readonly txRing: ArrayBuffer;
  readonly txFrameSize: number;
  readonly txFrameCount: number;
  /** send(fd, NULL, 0, MSG_DONTWAIT): returns 0 or a (positive) errno. */
  kick(): number;
  /** Replaces the fanout group's steering program (PACKET_FANOUT_DATA): 0 or an errno. */
  setSteering(program: Buffer): number;
  /** PACKET_STATISTICS; reading resets the kernel counters. packets includes drops. */
  stats(): { packets: number; drops: number };
  /**
   * Start the readiness watcher (uv_poll on the fd). cb gets status 0, or a
   * negative errno for a socket error (e.g. -ENETDOWN when the link went down;
   * polling continues), and the ready events (POLL_READABLE).
   */
  startPoll(cb: (status: number, events: number) => void, readable: boolean): void;
  setPollEvents(readable: boolean): void;
  /** Stop the watcher, detach the ring ArrayBuffers, munmap, close the fd. Idempotent. */
  close(): void;
}

/** One RTM_NEWLINK or RTM_DELLINK message (native/netlink.cc). */
export interface NativeLinkEvent {
  readonly ifindex: number;
  readonly name: string;
  readonly mtu: number;
  /** IFF_UP and IFF_RUNNING: set up, and the carrier is on. */
  readonly up: boolean;
  /** RTM_DELLINK: the link is gone (or left this network namespace). */
  readonly deleted: boolean;
}

/** What watchLinks() returns: a NETLINK_ROUTE socket subscribed to RTMGRP_LINK. */
export interface NativeLinkWatch {
  /** Whether the watcher keeps the event loop alive (default: it does). */
  ref(): void;
  unref(): void;
  /** Stops the watcher and closes the socket. Idempotent. */
  close(): void;
}

/** Byte offsets of the SQ ring fields (struct io_sqring_offsets). */
export interface UringSqOffsets {
  head: number;
  tail: number;
  ringMask: number;
  ringEntries: number;
  flags: number;
  dropped: number;
  array: number;
}

/** Byte offsets of the CQ ring fields (struct io_cqring_offsets). */
export interface UringCqOffsets {
  head: number;
  tail: number;
  ringMask: number;
  ringEntries: number;
  overflow: number;
  cqes: number;
  flags: number;
}

/** What uringSetup() returns: an io_uring instance with its rings mapped (native/uring.cc). */
export interface NativeUringHandle {
  readonly fd: number;
  readonly sqEntries: number;
  readonly cqEntries: number;
  /** Setup flags in effect (IORING_SETUP_*). */
  readonly flags: number;
  /** IORING_FEAT_* the kernel reported. */
  readonly features: number;
  /** SQ ring mapping; the same ArrayBuffer as cqRing with IORING_FEAT_SINGLE_MMAP. Detached by close(). */
  readonly sqRing: ArrayBuffer;
  readonly cqRing: ArrayBuffer;
  /** The SQE array (64 bytes each). The SQ index array is preset to the identity. */
  readonly sqes: ArrayBuffer;
  readonly sqOff: UringSqOffsets;
  readonly cqOff: UringCqOffsets;
  /** io_uring_enter(toSubmit, minComplete, flags): the result (>= 0) or -errno. */
  enter(toSubmit: number, minComplete: number, flags: number): number;
  /**
   * IORING_REGISTER_IOWQ_MAX_WORKERS: caps the kernel worker threads that run
   * operations which cannot complete inline (0 leaves a limit unchanged).
   * Returns the previous [bounded, unbounded] limits, or -errno.
   */
  setMaxWorkers(bounded: number, unbounded: number): [number, number] | number;
  /**
   * Registers an eventfd and watches it; cb runs on the event loop after
   * completions are posted, or (IORING_SETUP_DEFER_TASKRUN) once some wait to
   * be posted by runDeferred().
   */
  startPoll(cb: () => void): void;
  /**
   * DEFER_TASKRUN rings: posts the completions waiting for this thread, then
   * drains the eventfd. True when it must be called again: the kernel still
   * flags some waiting (recent kernels post at most 20 per call) and the
   * drain found a signal.
   */
  runDeferred(): boolean;
  /** Whether the watcher keeps the event loop alive (default: it does). */
  ref(): void;
  unref(): void;
  /** Stops the watcher, detaches the ArrayBuffers, unmaps, closes the ring. Idempotent. */
  close(): void;
}

/** What uringProbe() found; ok when a ring can be set up and READ, WRITE and FSYNC exist. */
export interface UringProbeResult {
  ok: boolean;
  /** The errno that refused (0 when ok), e.g. EPERM when disabled by sysctl or seccomp. */
  errno: number;
  code: string;
  /** Which step failed: io_uring_setup, IORING_REGISTER_PROBE... */
  step: string;
  features?: number;
  read: boolean;
  write: boolean;
  fsync: boolean;
}

/** io_uring constants from <linux/io_uring.h>, as compiled into the addon. */
export interface UringConstants {
  OP_READ: number;
  OP_WRITE: number;
  OP_FSYNC: number;
  FSYNC_DATASYNC: number;
  SETUP_SUBMIT_ALL: number;
  SETUP_SINGLE_ISSUER: number;
  SETUP_DEFER_TASKRUN: number;
  SETUP_TASKRUN_FLAG: number;
  ENTER_GETEVENTS: number;
  /** In the SQ ring's flags: completions wait to be posted by io_uring_enter. */
  SQ_TASKRUN: number;
}

export interface NativeAddon {
  openPacket(
    ifname: string,
    rxRingBytes: number,
    txRingBytes: number,
    frameSize: number,
    fanout?: FanoutRequest,
  ): NativePacketHandle;
  /**
   * Index, MTU and whether it is up and running (IFF_UP and IFF_RUNNING) of an
   * interface in this network namespace (ioctls, not sysfs); null if there is none.
   */
  interfaceLink(ifname: string): { ifindex: number; mtu: number; up: boolean } | null;
  /**
   * Link events of this network namespace, as they happen: cb(0, events) in
   * the kernel's order, or cb(-ENOBUFS, [...]) when the kernel had to drop
   * some (a full socket buffer): then every link of interest must be asked
   * again. Another negative status: the watch has stopped.
   */
  watchLinks(cb: (status: number, events: NativeLinkEvent[]) => void): NativeLinkWatch;
  blockDeviceSize(fd: number): number;
  logicalBlockSize(fd: number): number;
  alignedBuffer(size: number, align: number): ArrayBuffer;
  addressOf(buf: ArrayBuffer | ArrayBufferView): bigint;
  /** Pages of the range in the page cache (cachestat(2), Linux 6.5); -1 when it cannot be had. */
  cachedPages(fd: number, offset: number, length: number): number;
  /** 1 if the range is all in written extents (FIEMAP), 0 if not, -1 when it cannot be had. */
  writtenRange(fd: number, offset: number, length: number): number;
  /**
   * mmap(MAP_SHARED) of the first `length` bytes of `fd`, unmapped by unmapFile() or the GC.
   * A thread then maps the pages already in memory (MADV_POPULATE_READ), off the event loop.
   */
  mapFile(fd: number, length: number, writable: boolean): ArrayBuffer;
  /** Detaches a mapFile() buffer and unmaps it now; a no-op for anything else. */
  unmapFile(map: ArrayBuffer): void;
  /** Whether mapFile()'s background thread has finished mapping the file's resident pages. */
  mapPopulated(map: ArrayBuffer): boolean;
  /** memcpy that answers EIO (5) instead of crashing when a mapping faults (file truncated); else 0. */
  copyGuarded(
    src: ArrayBuffer | ArrayBufferView,
    srcOffset: number,
    dst: ArrayBuffer | ArrayBufferView,
    dstOffset: number,
    length: number,
  ): number;
  /** Sets up a tiny ring once and checks the opcodes aoed needs. Never throws. */
  uringProbe(): UringProbeResult;
  /** io_uring_setup + mmaps. cqEntries 0: the kernel's default (2 x entries). Throws on failure. */
  uringSetup(entries: number, flags: number, cqEntries: number): NativeUringHandle;
  readonly uringConstants: UringConstants;
  /**
   * Sends one AF_UNIX datagram to $NOTIFY_SOCKET (a path, or "@name" for an abstract
   * socket) for sd_notify(3): 0 or a (positive) errno. See src/bin/sd-notify.ts.
   */
  sdNotify(socketPath: string, message: string): number;
  /** sched_yield(2): lets a task waiting for this CPU run first (src/net/packet-socket.ts, busy polling). */
  schedYield(): void;
}

const ADDON_FILE = "aoed_native.node";

let cached: NativeAddon | undefined;

/** Where the addon is looked for: $AOED_NATIVE, then build/{Release,Debug} of the package. */
export function nativeAddonCandidates(): string[] {
  const out: string[] = [];
  const env = process.env.AOED_NATIVE;
  if (env) out.push(env);
  // This file is src/native/addon.ts (tests) or dist/src/native/addon.js (built).
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    dir = dirname(dir);
    out.push(join(dir, "build", "Release", ADDON_FILE), join(dir, "build", "Debug", ADDON_FILE));
  }
  return out;
}

/** Load (once) and return the native addon; throws a clear error if it is not built. */
export function loadNative(): NativeAddon {
  if (cached) return cached;
  const candidates = nativeAddonCandidates();
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      `aoed native addon not found (looked for ${candidates.join(", ")}); ` +
        "build it with `npm run build` or `node-gyp rebuild`",
    );
  }
  const require = createRequire(import.meta.url);
  cached = require(found) as NativeAddon;
  return cached;
}
