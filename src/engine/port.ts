/**
 * A port is one interface's packet socket, shared by every export on it.
 * It filters and dispatches received frames to targets by shelf/slot, and
 * hands targets transmit slots to build replies in place. When the replies
 * leave is src/engine/reply-kick.ts's decision.
 */
import type { FanoutRequest } from "../native/addon.js";
import { linkState } from "../net/link-monitor.js";
import { PacketSocket } from "../net/packet-socket.js";
import {
  AOE_HEADER,
  AOE_VERSION,
  BROADCAST_SHELF,
  BROADCAST_SLOT,
  Command,
  ETH_HEADER,
  MIN_FRAME,
  maxSectorsForMtu,
} from "../protocol/constants.js";
import {
  ataTransfer,
  isResponse,
  readCommand,
  readShelf,
  readSlot,
  readSrcMac,
  readVersion,
} from "../protocol/frame-readers.js";
import { readMac } from "../protocol/mac.js";
import { noRequestsInFlight } from "./ata-queue.js";
import { ReplyKick } from "./reply-kick.js";
import type { FrameConsumer, PortSocket, ReplyPort } from "./seams.js";
import {
  addPortVector,
  type KernelCounts,
  newPortStats,
  newSocketCounts,
  type PortStats,
} from "./stats.js";

export interface PortOptions {
  /** Override the interface's MTU (must not exceed it). */
  mtu: number | null;
  /** null: sized from the exports' queue lengths. */
  ringBytes: number | null;
  /** Sum of the queue lengths of the exports served here, to size the rings. */
  queueSlots: number;
  /** Busy polling of the receive ring after a batch, in µs; 0: off (src/net/packet-socket.ts start()). */
  busyPollUs: number;
  /** Share the interface with worker threads' sockets (src/engine/steering.ts). */
  fanout?: FanoutRequest;
  /** A worker thread's port: serves ATA reads and writes only, whatever arrives. */
  readsAndWritesOnly?: boolean;
  /** Errors the socket reports (ENETDOWN...); without it they become process warnings. */
  onSocketError?: (err: Error) => void;
}

/** A port over a socket that is open already (Port.fromSocket). */
export interface SocketPortOptions {
  /** Override the socket's MTU (not above it); null: the socket's. */
  mtu: number | null;
  /** Bytes of each ring, for worker threads' sockets on this interface. */
  ringBytes: number;
  /** The socket's busy polling, for worker threads' sockets on this interface (default 0: off). */
  busyPollUs?: number;
  /** A worker thread's port: serves ATA reads and writes only, whatever arrives. */
  readsAndWritesOnly?: boolean;
}

const MiB = 1024 * 1024;

/**
 * The default ring size when the interface sets no `buffers:`: room for every
 * queue slot twice over in frame-sized slots, at least 4 MiB and at most
 * MAX_AUTO_RING. The kernel allocates and maps the whole ring up front, so
 * this is resident memory (twice: RX and TX) and start-up time; with many
 * exports the sum of their queue lengths is far more than one interface can
 * have arriving at once (16 MiB is 8192 frames at MTU 1500).
 */
const MAX_AUTO_RING = 16 * MiB;

function ringBytesFor(queueSlots: number, mtu: number): number {
  const slot = 1 << Math.ceil(Math.log2(mtu + ETH_HEADER + 96));
  return Math.min(MAX_AUTO_RING, Math.max(4 * MiB, queueSlots * 2 * slot));
}

export class Port implements ReplyPort {
  readonly mac: number;
  readonly macBytes: Buffer;
  readonly mtu: number;
  /** Sectors per request this interface can carry. */
  readonly maxSectors: number;
  readonly stats: PortStats = newPortStats();
  /** The link as it was when the socket was bound: a change means the port must be reopened. */
  readonly ifindex: number;
  readonly linkMtu: number;
  private readonly targets = new Map<number, FrameConsumer>();
  private readonly kick: ReplyKick;
  /** Bytes of each ring, for worker threads' sockets on this interface. */
  readonly ringBytes: number;
  /** PortOptions.busyPollUs, for the worker threads' sockets on this interface. */
  readonly busyPollUs: number;
  private readonly readsAndWritesOnly: boolean;
  /** What worker threads' sockets on this interface counted: ring drops, skipped frames, busy polling. */
  private readonly workerKernel = newSocketCounts();

  private constructor(
    readonly name: string,
    private readonly sock: PortSocket,
    opts: SocketPortOptions,
  ) {
    this.macBytes = Buffer.from(sock.mac);
    this.mac = readMac(this.macBytes, 0);
    this.mtu = opts.mtu === null ? sock.mtu : Math.min(opts.mtu, sock.mtu);
    this.maxSectors = maxSectorsForMtu(this.mtu);
    this.ifindex = sock.ifindex;
    this.linkMtu = sock.mtu;
    this.ringBytes = opts.ringBytes;
    this.busyPollUs = opts.busyPollUs ?? 0;
    this.readsAndWritesOnly = opts.readsAndWritesOnly ?? false;
    this.kick = new ReplyKick(
      () => sock.flush(),
      setImmediate,
      () => sock.repliesSent(),
    );
  }

  /** Binds a packet socket to interface `name` and serves it. */
  static open(name: string, opts: PortOptions): Port {
    const ringBytes = opts.ringBytes ?? ringBytesFor(opts.queueSlots, linkState(name)?.mtu ?? 9000);
    const sock = PacketSocket.open(name, {
      rxRingBytes: ringBytes,
      txRingBytes: ringBytes,
      busyPollUs: opts.busyPollUs,
      ...(opts.fanout ? { fanout: opts.fanout } : {}),
    });
    if (opts.onSocketError) sock.onError(opts.onSocketError);
    return Port.fromSocket(name, sock, {
      mtu: opts.mtu,
      ringBytes,
      busyPollUs: opts.busyPollUs,
      readsAndWritesOnly: opts.readsAndWritesOnly,
    });
  }

  /** A port serving `sock`, an open socket on interface `name`: it starts receiving now. */
  static fromSocket(name: string, sock: PortSocket, opts: SocketPortOptions): Port {
    const port = new Port(name, sock, opts);
    sock.start(port.onFrame, port.onBatchEnd, noRequestsInFlight);
    return port;
  }

  attach(target: FrameConsumer): void {
    this.targets.set(target.key, target);
  }

  detach(target: FrameConsumer): void {
    if (this.targets.get(target.key) === target) this.targets.delete(target.key);
  }

  /**
   * Steers this port's fanout group: every frame to this (main-thread) socket,
   * or back to `program`. A port about to be replaced stops feeding its workers
   * first, so no frame is served by the old group's workers and the new group.
   */
  steer(program: Buffer): void {
    if (this.sock.fanoutId !== 0) this.sock.setSteering(program);
  }

  /** The PACKET_FANOUT group worker threads join to share this interface; 0 when none. */
  get fanoutId(): number {
    return this.sock.fanoutId;
  }

  get exportCount(): number {
    return this.targets.size;
  }

  /** A transmit slot to build a reply in, or null when the ring is full. */
  acquire(): Buffer | null {
    const tx = this.sock.txAcquire();
    if (tx === null) this.stats.txRingFull++;
    return tx;
  }

  /** Queues the acquired slot for sending; src/engine/reply-kick.ts says when it leaves. */
  commit(len: number): void {
    this.sock.txCommit(len);
    this.stats.txFrames++;
    this.stats.txBytes += Math.max(len, MIN_FRAME);
    this.kick.committed();
  }

  private readonly onBatchEnd = (): void => {
    this.kick.batchEnd();
  };

  private readonly onFrame = (buf: Buffer, off: number, len: number): void => {
    this.kick.frame();
    const stats = this.stats;
    stats.rxFrames++;
    stats.rxBytes += len;
    if (len < AOE_HEADER) {
      stats.ignoredShort++;
      return;
    }
    if (isResponse(buf, off)) {
      stats.ignoredResponse++;
      return;
    }
    if (readVersion(buf, off) !== AOE_VERSION) {
      stats.ignoredVersion++;
      return;
    }
    const src = readSrcMac(buf, off);
    if (src === this.mac) {
      stats.ignoredOwn++;
      return;
    }
    // The steering program gives worker threads ATA reads and writes only.
    if (this.readsAndWritesOnly && ataTransfer(buf, off) === null) {
      stats.ignoredSteering++;
      return;
    }
    const shelf = readShelf(buf, off);
    const slot = readSlot(buf, off);
    if (shelf === BROADCAST_SHELF || slot === BROADCAST_SLOT) {
      // Wildcards address discovery only: never fan a write or a reservation out.
      if (readCommand(buf, off) !== Command.queryConfig) {
        stats.ignoredWildcard++;
        return;
      }
      for (const t of this.targets.values()) {
        if (
          (shelf === BROADCAST_SHELF || shelf === t.shelf) &&
          (slot === BROADCAST_SLOT || slot === t.slot)
        )
          t.handle(this, buf, off, len, src, true);
      }
      return;
    }
    const target = this.targets.get(shelf * 256 + slot);
    if (target === undefined) stats.notForUs++;
    else target.handle(this, buf, off, len, src, false);
  };

  /** Stops delivering received frames (the port is being replaced); replies still go out. */
  stopReceiving(): void {
    this.sock.stop();
    // A batch cut short ends here: what it answered still goes out.
    this.kick.batchEnd();
  }

  /** A worker thread's socket on this interface reports: a portVector() difference (src/engine/stats.ts). */
  workerReport(counts: readonly number[]): void {
    addPortVector(this.stats, this.workerKernel, counts);
  }

  kernelStats(): KernelCounts {
    const s = this.sock.stats();
    return {
      rxFrames: s.rxFrames,
      rxDrops: s.rxDrops + this.workerKernel.rxDrops,
      otherHost: s.rxIgnored + this.workerKernel.otherHost,
      busyPollHits: s.busyPollHits + this.workerKernel.busyPollHits,
      busyPollMisses: s.busyPollMisses + this.workerKernel.busyPollMisses,
    };
  }

  close(): void {
    this.kick.close();
    this.sock.close();
  }
}
