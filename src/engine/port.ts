/**
 * A port is one interface's packet socket, shared by every export on it.
 * It filters and dispatches received frames to targets by shelf/slot, and
 * hands targets transmit slots to build replies in place. Replies built while
 * a receive batch is walked go out with it (the first few early); the others
 * with one kick per event-loop turn.
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
import type { Target } from "./target.js";

export interface PortStats {
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  /** Frames ignored, by reason. */
  ignoredShort: number;
  ignoredVersion: number;
  /** Frames with the response flag: other targets' replies. */
  ignoredResponse: number;
  /** Our own frames looping back (bridges, lo). */
  ignoredOwn: number;
  /** Wildcard shelf/slot on anything but discovery. */
  ignoredWildcard: number;
  /** Addressed to a shelf/slot nobody here exports. */
  notForUs: number;
  /** Not a read or write, on a worker thread's socket: the steering program sends those to the main thread. */
  ignoredSteering: number;
  /** Replies lost because the transmit ring was full (the initiator retransmits). */
  txRingFull: number;
}

export function newPortStats(): PortStats {
  return {
    rxFrames: 0,
    rxBytes: 0,
    txFrames: 0,
    txBytes: 0,
    ignoredShort: 0,
    ignoredVersion: 0,
    ignoredResponse: 0,
    ignoredOwn: 0,
    ignoredWildcard: 0,
    notForUs: 0,
    ignoredSteering: 0,
    txRingFull: 0,
  };
}

/** What a target needs from a port to answer on it; tests supply a fake. */
export interface ReplyPort {
  readonly mac: number;
  readonly macBytes: Buffer;
  readonly mtu: number;
  readonly maxSectors: number;
  acquire(): Buffer | null;
  commit(len: number): void;
}

export interface PortOptions {
  /** Override the interface's MTU (must not exceed it). */
  mtu: number | null;
  /** null: sized from the exports' queue lengths. */
  ringBytes: number | null;
  /** Sum of the queue lengths of the exports served here, to size the rings. */
  queueSlots: number;
  /** Share the interface with worker threads' sockets (src/engine/steering.ts). */
  fanout?: FanoutRequest;
  /** A worker thread's port: serves ATA reads and writes only, whatever arrives. */
  readsAndWritesOnly?: boolean;
  /** Errors the socket reports (ENETDOWN...); without it they become process warnings. */
  onSocketError?: (err: Error) => void;
}

const MiB = 1024 * 1024;
/**
 * The first replies of a receive batch go out after this many, the rest at its
 * end: the initiator can send more while the batch is still being worked on,
 * for one extra kick per batch. Measured side by side on the 2-core VM (1 KiB
 * requests, MTU 1500): +20% at queue depth 8, within noise at 32; a kick every
 * 4 replies instead costs 15% at 32.
 */
const EARLY_KICK = 4;

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
  const slot = 1 << Math.ceil(Math.log2(mtu + 14 + 96));
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
  private readonly targets = new Map<number, Target>();
  private pendingFlush = false;

  private constructor(
    readonly name: string,
    private readonly sock: PacketSocket,
    mtu: number,
    /** Bytes of each ring, for worker threads' sockets on this interface. */
    readonly ringBytes: number,
    private readonly readsAndWritesOnly: boolean,
  ) {
    this.macBytes = Buffer.from(sock.mac);
    this.mac = readMac(this.macBytes, 0);
    this.mtu = mtu;
    this.maxSectors = maxSectorsForMtu(mtu);
    this.ifindex = sock.ifindex;
    this.linkMtu = sock.mtu;
  }

  static open(name: string, opts: PortOptions): Port {
    const ringBytes = opts.ringBytes ?? ringBytesFor(opts.queueSlots, linkState(name)?.mtu ?? 9000);
    const sock = PacketSocket.open(name, {
      rxRingBytes: ringBytes,
      txRingBytes: ringBytes,
      ...(opts.fanout ? { fanout: opts.fanout } : {}),
    });
    if (opts.onSocketError) sock.onError(opts.onSocketError);
    const mtu = opts.mtu === null ? sock.mtu : Math.min(opts.mtu, sock.mtu);
    const port = new Port(name, sock, mtu, ringBytes, opts.readsAndWritesOnly ?? false);
    sock.start(port.onFrame, port.onBatchEnd);
    return port;
  }

  attach(target: Target): void {
    this.targets.set(target.key, target);
  }

  detach(target: Target): void {
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

  /**
   * Queues the acquired slot for sending. Replies built while a receive batch
   * is walked go out with one kick at its end; others (completions of
   * asynchronous I/O) with one kick per event-loop turn.
   */
  commit(len: number): void {
    this.sock.txCommit(len);
    this.stats.txFrames++;
    this.stats.txBytes += Math.max(len, MIN_FRAME);
    if (!this.pendingFlush) {
      this.pendingFlush = true;
      if (!this.inBatch) setImmediate(this.flush);
    }
    if (this.inBatch && ++this.batchReplies === EARLY_KICK) this.flush();
  }

  /** Replies built in the current receive batch. */
  private batchReplies = 0;

  private readonly flush = (): void => {
    if (!this.pendingFlush) return;
    this.pendingFlush = false;
    this.sock.flush();
  };

  /** Between the first frame of a receive batch and its end. */
  private inBatch = false;

  private readonly onBatchEnd = (): void => {
    this.inBatch = false;
    this.batchReplies = 0;
    this.flush();
  };

  private readonly onFrame = (buf: Buffer, off: number, len: number): void => {
    this.inBatch = true;
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
    this.inBatch = false;
    this.batchReplies = 0;
    this.flush();
  }

  /** What the receive rings of worker threads' sockets on this interface dropped or skipped. */
  readonly workerKernel = { rxDrops: 0, otherHost: 0 };

  kernelStats(): { rxFrames: number; rxDrops: number; otherHost: number } {
    const s = this.sock.stats();
    return {
      rxFrames: s.rxFrames,
      rxDrops: s.rxDrops + this.workerKernel.rxDrops,
      otherHost: s.rxIgnored + this.workerKernel.otherHost,
    };
  }

  close(): void {
    this.sock.flush();
    this.sock.close();
  }
}
