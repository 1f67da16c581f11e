/**
 * The small interfaces between the engine's pieces, in a module that imports
 * nothing, so Port, Target and Request depend on these and not on each other.
 * Tests build their fakes against them.
 *
 *   packet socket ──PortSocket──► Port ──FrameConsumer──► Target
 *                                 Port ◄──ReplyPort────── Target, Request
 */

/** A frame in the receive ring: valid at buf[off, off + len) only during the call. */
export type FrameHandler = (buf: Buffer, off: number, len: number) => void;

/** What Port uses of its packet socket (src/net/packet-socket.ts); tests pass a fake. */
export interface PortSocket {
  readonly mac: Buffer;
  readonly ifindex: number;
  readonly mtu: number;
  /** The PACKET_FANOUT group the socket belongs to; 0 when none. */
  readonly fanoutId: number;
  /** `quiet`: every reply sent, nothing to do but wait for a frame (busy polling may watch the ring). */
  start(onFrame: FrameHandler, onBatchEnd: () => void, quiet: () => boolean): void;
  /** Replies built outside a receive batch have been sent (busy polling may yield the CPU, then watch the ring). */
  repliesSent(): void;
  stop(): void;
  /** A transmit slot to write a frame into at offset 0, or null when the ring is full. */
  txAcquire(): Buffer | null;
  txCommit(len: number): void;
  /** Sends everything committed since the last flush (one system call). */
  flush(): void;
  setSteering(program: Buffer): void;
  stats(): {
    rxFrames: number;
    rxDrops: number;
    rxIgnored: number;
    busyPollHits: number;
    busyPollMisses: number;
  };
  close(): void;
}

/** What a target needs from a port to answer on it. */
export interface ReplyPort {
  readonly macBytes: Buffer;
  readonly mtu: number;
  /** Sectors per request the port's frames carry. */
  readonly maxSectors: number;
  /** A transmit slot to build a reply in, or null when the ring is full. */
  acquire(): Buffer | null;
  /** Queues the reply built in the acquired slot (`len` bytes from the Ethernet header on). */
  commit(len: number): void;
}

/** An export as a port dispatches to it. */
export interface FrameConsumer {
  readonly shelf: number;
  readonly slot: number;
  /** shelf * 256 + slot: the port's dispatch key. */
  readonly key: number;
  /**
   * One received AoE frame at buf[off, off + len) from MAC `src`, already
   * checked by the port (version, not a response, not our own). `broadcast`:
   * it reached this export through a wildcard shelf or slot.
   */
  handle(
    port: ReplyPort,
    buf: Buffer,
    off: number,
    len: number,
    src: number,
    broadcast: boolean,
  ): void;
}
