/**
 * PacketSocket: an AF_PACKET socket bound to one interface and to EtherType
 * 0x88A2, with TPACKET_V2 RX and TX rings shared with the kernel.
 *
 * The native addon only opens the socket, maps the rings and watches the fd;
 * the rings are walked here. Frames are handed out as (ringBuffer, offset,
 * length) without copying or allocating.
 *
 * Receive: start(onFrame, onBatchEnd). onFrame gets ONE Buffer over the whole
 * RX ring; the bytes at [off, off + len) are valid only during the call.
 *
 * Transmit: txAcquire() -> slot Buffer (write the frame at offset 0), then
 * txCommit(len); repeat; then flush() once (one syscall for the batch).
 * Every txAcquire() that returned a Buffer must be followed by txCommit()
 * before the next txAcquire().
 */
import { constants as osConstants } from "node:os";
import {
  type FanoutRequest,
  loadNative,
  type NativePacketHandle,
  POLL_READABLE,
} from "../native/addon.js";
import { ETH_HEADER, MIN_FRAME } from "../protocol/constants.js";
import { BusyPollPolicy } from "./busy-poll.js";

export interface PacketSocketOptions {
  /** RX ring size in bytes (rounded down to whole blocks). Default 8 MiB. */
  rxRingBytes?: number;
  /** TX ring size in bytes (rounded down to whole blocks). Default 4 MiB. */
  txRingBytes?: number;
  /** Largest Ethernet frame (without FCS) to receive or send. Default MTU + 14. */
  maxFrame?: number;
  /** Share the interface's frames with other sockets (worker threads). */
  fanout?: FanoutRequest;
  /** Busy polling after a batch, in microseconds; 0 (the default): off. See start(). */
  busyPollUs?: number;
}

export interface PacketSocketStats {
  /** Frames delivered to onFrame. */
  rxFrames: number;
  /** Frames the kernel dropped because the RX ring was full (accumulated). */
  rxDrops: number;
  /** Frames skipped because they did not fit a ring slot (snaplen < len). */
  rxTruncated: number;
  /** Frames skipped because they were not for this host (PACKET_OTHERHOST / OUTGOING). */
  rxIgnored: number;
  /** Frames committed for transmission. */
  txFrames: number;
  /** txAcquire() calls that found the TX ring full. */
  txFull: number;
  /** flush() calls whose send() failed with an error other than EAGAIN/ENOBUFS. */
  txErrors: number;
  /** Busy polling: watches of the ring that saw a frame arrive (and handled it without a wake-up). */
  busyPollHits: number;
  /** Busy polling: watches that saw nothing and went back to epoll. */
  busyPollMisses: number;
}

export type FrameHandler = (buf: Buffer, off: number, len: number) => void;

const DEFAULT_RX_RING_BYTES = 8 * 1024 * 1024;
const DEFAULT_TX_RING_BYTES = 4 * 1024 * 1024;

// struct tpacket2_hdr: tp_status u32 @0, tp_len u32 @4, tp_snaplen u32 @8,
// tp_mac u16 @12, tp_net u16 @14, ... 32 bytes; struct sockaddr_ll follows at
// TPACKET_ALIGN(32) = 32, with sll_pkttype at +10.
const HDR_LEN = 32;
const PKTTYPE_OFF = HDR_LEN + 10;
/** TX data offset: TPACKET2_HDRLEN - sizeof(struct sockaddr_ll). */
const TX_DATA_OFF = HDR_LEN;
/** RX data offset for SOCK_RAW: TPACKET_ALIGN(TPACKET2_HDRLEN + 16) - 14 = 66. */
const RX_DATA_OFF = 66;

const TP_STATUS_KERNEL = 0;
const TP_STATUS_USER = 1;
// TX slots: TP_STATUS_AVAILABLE is 0 (possibly with timestamp bits);
// TP_STATUS_WRONG_FORMAT (4) cannot happen with PACKET_LOSS set.
const TP_STATUS_SEND_REQUEST = 1;
const TP_STATUS_SENDING = 2;
const TX_BUSY = TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING;

const PACKET_OTHERHOST = 3;
const PACKET_OUTGOING = 4;

const { EAGAIN, ENOBUFS, ENODEV } = osConstants.errno;
/** The longest interface name, in bytes (IFNAMSIZ - 1). */
const MAX_IFNAME = 15;

/** Busy polling stops watching after this long, however busy the link (timers, other sockets). */
const BUSY_POLL_MAX_MS = 2;

/** Ring slot size for a given largest frame: a power of two (the kernel allocates blocks in powers of two pages). */
function frameSizeFor(maxFrame: number): number {
  let size = 128;
  while (size < RX_DATA_OFF + maxFrame) size *= 2;
  return size;
}

/**
 * The largest frame `ifname`'s MTU allows. An interface that is not there is
 * said here, before openPacket would ask for CAP_NET_RAW; a name no interface
 * can have is left for openPacket, which refuses it before anything else.
 */
function mtuFrame(ifname: string): number {
  const link = loadNative().interfaceLink(ifname);
  if (link !== null) return link.mtu + ETH_HEADER;
  if (ifname.length === 0 || Buffer.byteLength(ifname) > MAX_IFNAME) return MIN_FRAME;
  throw Object.assign(new Error(`${ifname}: no such interface`), {
    code: "ENODEV",
    errno: -ENODEV,
  });
}

function checkSize(name: string, v: number | undefined, dflt: number, min: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < min) {
    throw new RangeError(`${name} must be an integer >= ${min}, got ${v}`);
  }
  return v;
}

export class PacketSocket {
  readonly ifname: string;
  readonly ifindex: number;
  /** The interface's MAC address (6 bytes). */
  readonly mac: Buffer;
  /** Largest frame that can be sent or received (bytes, without FCS). */
  readonly maxFrame: number;
  readonly rxFrameSize: number;
  readonly rxFrameCount: number;
  readonly txFrameSize: number;
  readonly txFrameCount: number;

  private readonly h: NativePacketHandle;
  private closedFlag = false;

  // RX ring views, created once.
  private readonly rxBuf: Buffer;
  private readonly rxI32: Int32Array;
  private readonly rxU16: Uint16Array;
  private readonly rxWords: number; // frame size in 32-bit words
  private rxHead = 0;
  private onFrame: FrameHandler | null = null;
  private onBatchEnd: (() => void) | null = null;
  private rxActive = false;

  // TX ring views, created once.
  private readonly txI32: Int32Array;
  private readonly txViews: Buffer[];
  private readonly txWords: number;
  private txHead = 0;
  private txPending = 0;
  private txStalled = false;
  private txRetry: NodeJS.Timeout | null = null;

  private polling = false;
  private errorHandler: ((err: Error) => void) | null = null;
  /** Busy polling: when to watch the ring (null: off), and whether there is nothing else to do. */
  private readonly policy: BusyPollPolicy | null;
  private quiet: (() => boolean) | null = null;

  private counters: PacketSocketStats = {
    rxFrames: 0,
    rxDrops: 0,
    rxTruncated: 0,
    rxIgnored: 0,
    txFrames: 0,
    txFull: 0,
    txErrors: 0,
    busyPollHits: 0,
    busyPollMisses: 0,
  };

  /**
   * Open `ifname`. Needs CAP_NET_RAW. Throws a clear Error (with .code) if the
   * interface does not exist, is not Ethernet, or the rings cannot be set up.
   */
  static open(ifname: string, opts: PacketSocketOptions = {}): PacketSocket {
    const native = loadNative();
    const rxBytes = checkSize("rxRingBytes", opts.rxRingBytes, DEFAULT_RX_RING_BYTES, 1);
    const txBytes = checkSize("txRingBytes", opts.txRingBytes, DEFAULT_TX_RING_BYTES, 1);
    const maxFrame = checkSize("maxFrame", opts.maxFrame ?? mtuFrame(ifname), 0, MIN_FRAME);
    const h = native.openPacket(ifname, rxBytes, txBytes, frameSizeFor(maxFrame), opts.fanout);
    const busyPollUs = checkSize("busyPollUs", opts.busyPollUs, 0, 0);
    return new PacketSocket(h, maxFrame, busyPollUs);
  }

  private constructor(h: NativePacketHandle, maxFrame: number, busyPollUs: number) {
    this.h = h;
    this.policy = busyPollUs > 0 ? new BusyPollPolicy(busyPollUs / 1000) : null;
    this.ifname = h.ifname;
    this.ifindex = h.ifindex;
    this.mac = Buffer.from(h.mac);
    this.rxFrameSize = h.rxFrameSize;
    this.rxFrameCount = h.rxFrameCount;
    this.txFrameSize = h.txFrameSize;
    this.txFrameCount = h.txFrameCount;
    this.maxFrame = Math.min(maxFrame, h.txFrameSize - TX_DATA_OFF);

    this.rxBuf = Buffer.from(h.rxRing);
    this.rxI32 = new Int32Array(h.rxRing);
    this.rxU16 = new Uint16Array(h.rxRing);
    this.rxWords = h.rxFrameSize >>> 2;

    this.txI32 = new Int32Array(h.txRing);
    this.txWords = h.txFrameSize >>> 2;
    this.txViews = [];
    for (let i = 0; i < h.txFrameCount; i++) {
      this.txViews.push(Buffer.from(h.txRing, i * h.txFrameSize + TX_DATA_OFF, this.maxFrame));
    }
  }

  /** The interface's MTU when the socket was opened. */
  get mtu(): number {
    return this.h.mtu;
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Replaces the steering program of this socket's fanout group: 0 or an errno. */
  setSteering(program: Buffer): number {
    return this.h.setSteering(program);
  }

  /** The PACKET_FANOUT group this socket is in; 0 when none. */
  get fanoutId(): number {
    return this.h.fanoutId;
  }

  /** The socket's file descriptor (for diagnostics). */
  get fd(): number {
    return this.h.fd;
  }

  /**
   * Start receiving. For each received frame onFrame(ringBuffer, offset, len)
   * is called (ringBuffer is the same Buffer every time; the frame is valid
   * only during the call); after each drained batch onBatchEnd() is called
   * once (a good place to flush()). Exceptions thrown by the handlers do not
   * stall the ring: the batch completes, then the first one is rethrown.
   *
   * With busy polling (busyPollUs), when a batch has ended, or the owner
   * says it has sent the replies it built outside one (repliesSent()), and
   * `quiet()` says nothing is left to do on this thread but wait for frames,
   * the socket watches the ring for up to busyPollUs before going back to
   * epoll: a frame that arrives meanwhile is handled without the wake-up.
   * When it watches is BusyPollPolicy's (src/net/busy-poll.ts). It stops
   * watching after BUSY_POLL_MAX_MS however busy the link, so timers and
   * other sockets get their turn. After replies built outside a batch it
   * first yields its CPU once (see repliesSent()).
   */
  start(onFrame: FrameHandler, onBatchEnd?: () => void, quiet?: () => boolean): void {
    this.assertOpen();
    if (this.rxActive) throw new Error(`${this.ifname}: already started`);
    this.onFrame = onFrame;
    this.onBatchEnd = onBatchEnd ?? null;
    this.quiet = quiet ?? null;
    this.rxActive = true;
    this.updatePoll();
  }

  /** Stop delivering frames (they queue in the ring, then get dropped by the kernel). */
  stop(): void {
    if (!this.rxActive) return;
    this.rxActive = false;
    this.onFrame = null;
    this.onBatchEnd = null;
    this.quiet = null;
    if (!this.closedFlag) this.updatePoll();
  }

  /**
   * A Buffer over the data area of the next TX slot (length maxFrame), or null
   * when the ring is full. Write the frame at offset 0, then txCommit(len).
   */
  txAcquire(): Buffer | null {
    if (this.closedFlag) return null;
    const head = this.txHead;
    if ((Atomics.load(this.txI32, head * this.txWords) & TX_BUSY) !== 0) {
      this.counters.txFull++;
      return null;
    }
    return this.txViews[head]!;
  }

  /** Queue the frame written into the slot from txAcquire(); zero-pads it to 60 bytes. */
  txCommit(len: number): void {
    this.assertOpen();
    const head = this.txHead;
    const w = head * this.txWords;
    if ((Atomics.load(this.txI32, w) & TX_BUSY) !== 0) {
      throw new Error(`${this.ifname}: txCommit() without a successful txAcquire()`);
    }
    if (!(len >= ETH_HEADER && len <= this.maxFrame)) {
      throw new RangeError(
        `${this.ifname}: frame length ${len} not in [${ETH_HEADER}, ${this.maxFrame}]`,
      );
    }
    // Shorter frames are zero-padded: nothing below us pads veth, tap or lo.
    if (len < MIN_FRAME) {
      this.txViews[head]!.fill(0, len, MIN_FRAME);
      len = MIN_FRAME;
    }
    this.txI32[w + 1] = len; // tp_len, before the status
    Atomics.store(this.txI32, w, TP_STATUS_SEND_REQUEST);
    this.txHead = head + 1 === this.txFrameCount ? 0 : head + 1;
    this.txPending++;
    this.counters.txFrames++;
  }

  /**
   * Transmit everything committed since the last flush: one send() syscall.
   * No-op when nothing is pending. Returns 0 or the errno of send(); EAGAIN and
   * ENOBUFS (queue full) are retried automatically, as is a partial send.
   */
  flush(): number {
    if (this.closedFlag || (this.txPending === 0 && !this.txStalled)) return 0;
    this.txPending = 0;
    const err = this.h.kick();
    if (err !== 0 && err !== EAGAIN && err !== ENOBUFS) this.counters.txErrors++;
    // The kernel sends slots in order and stops at the first one it cannot
    // take (socket buffer full, qdisc drop, link down); that slot stays
    // SEND_REQUEST. If the last committed slot is still waiting, retry.
    const last = this.txHead === 0 ? this.txFrameCount - 1 : this.txHead - 1;
    const waiting = (Atomics.load(this.txI32, last * this.txWords) & TP_STATUS_SEND_REQUEST) !== 0;
    this.txStalled = waiting;
    if (waiting && this.txRetry === null) {
      const delay = err === 0 || err === EAGAIN || err === ENOBUFS ? 1 : 100;
      this.txRetry = setTimeout(() => {
        this.txRetry = null;
        this.flush();
      }, delay);
      this.txRetry.unref();
    }
    return err;
  }

  /** Copy a frame into the TX ring and commit it (no flush). False if the ring is full. */
  send(frame: Uint8Array, len: number = frame.length): boolean {
    if (!(len <= frame.length && len <= this.maxFrame)) {
      throw new RangeError(`${this.ifname}: frame length ${len} exceeds ${this.maxFrame}`);
    }
    const slot = this.txAcquire();
    if (slot === null) return false;
    slot.set(len === frame.length ? frame : frame.subarray(0, len));
    this.txCommit(len);
    return true;
  }

  /**
   * Socket errors reported by the kernel (e.g. ENETDOWN when the link goes
   * down; the socket keeps working when it comes back). Without a handler they
   * become process warnings.
   */
  onError(cb: ((err: Error) => void) | null): void {
    this.errorHandler = cb;
  }

  stats(): PacketSocketStats {
    if (!this.closedFlag) this.counters.rxDrops += this.h.stats().drops;
    return { ...this.counters };
  }

  /** Stop everything and release the rings and the fd. Idempotent. */
  close(): void {
    if (this.closedFlag) return;
    try {
      this.counters.rxDrops += this.h.stats().drops;
    } catch {
      // the interface may be gone; keep what we have
    }
    this.closedFlag = true;
    this.rxActive = false;
    this.onFrame = null;
    this.onBatchEnd = null;
    this.quiet = null;
    if (this.txRetry !== null) clearTimeout(this.txRetry);
    this.txRetry = null;
    this.h.close();
  }

  // ---------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closedFlag) throw new Error(`${this.ifname}: socket is closed`);
  }

  private updatePoll(): void {
    if (!this.polling) {
      if (!this.rxActive) return;
      this.h.startPoll(this.onPoll, true);
      this.polling = true;
    } else {
      this.h.setPollEvents(this.rxActive);
    }
  }

  private readonly onPoll = (status: number, events: number): void => {
    if (this.closedFlag) return;
    if (status < 0) {
      this.reportError(status);
      return;
    }
    if ((events & POLL_READABLE) === 0 || !this.rxActive) return;
    this.policy?.woke(performance.now());
    this.drainRx();
    this.watch(false);
  };

  /**
   * The owner has sent the replies it built outside a receive batch (those
   * of requests its I/O engine completed asynchronously: io_uring, threads):
   * with busy polling, while quiet, watch the ring (see start()), after
   * yielding the CPU once. The reply just went through the veth or driver
   * inside our send and may have woken its initiator on this CPU (a guest or
   * a test rig on this machine), which the watch would keep waiting. One
   * system call per such watch, whose time counts against the watch's
   * budget. After a batch answered inline (the mapping) it gained nothing
   * (docs/performance.md, "One yield before a watch").
   */
  repliesSent(): void {
    this.watch(true);
  }

  /**
   * The watching of start() and repliesSent(). Frames a watch catches are
   * handled here, their batch ended as usual. Not while a reply waits to be
   * retried: the retry timer must run.
   */
  private watch(yieldFirst: boolean): void {
    const policy = this.policy;
    const quiet = this.quiet;
    if (policy === null || quiet === null) return;
    const i32 = this.rxI32;
    const until = performance.now() + BUSY_POLL_MAX_MS;
    let yielding = yieldFirst;
    while (this.rxActive && !this.closedFlag && !this.txStalled && quiet()) {
      const now = performance.now();
      if (!policy.idle(now) || now >= until) return;
      if (yielding) {
        yielding = false;
        loadNative().schedYield();
      }
      const w = this.rxHead * this.rxWords;
      const deadline = Math.min(now + policy.budgetMs, until);
      while ((Atomics.load(i32, w) & TP_STATUS_USER) === 0)
        if (performance.now() >= deadline) {
          policy.missed();
          this.counters.busyPollMisses++;
          return;
        }
      policy.caught();
      this.counters.busyPollHits++;
      this.drainRx();
    }
  }

  private reportError(status: number): void {
    const code = Object.entries(osConstants.errno).find(([, v]) => v === -status)?.[0];
    const err = Object.assign(
      new Error(`${this.ifname}: socket error: ${code ?? `errno ${-status}`}`),
      { code, errno: status },
    );
    // After a socket error the addon keeps polling; after any other poll error
    // libuv has stopped the watcher: re-arm it, but not in a tight loop.
    setTimeout(() => {
      if (!this.closedFlag) this.updatePoll();
    }, 100).unref();
    if (this.errorHandler) this.errorHandler(err);
    else process.emitWarning(err);
  }

  private drainRx(): void {
    const i32 = this.rxI32;
    const u16 = this.rxU16;
    const buf = this.rxBuf;
    const words = this.rxWords;
    const count = this.rxFrameCount;
    const onFrame = this.onFrame!;
    const c = this.counters;
    let head = this.rxHead;
    let error: unknown = null;
    let failed = false;
    // At most one lap per batch so a busy ring cannot starve the event loop.
    for (let n = 0; n < count; n++) {
      const w = head * words;
      if ((Atomics.load(i32, w) & TP_STATUS_USER) === 0) break;
      const base = w << 2;
      const len = i32[w + 1]!;
      const pkttype = buf[base + PKTTYPE_OFF]!;
      if (pkttype === PACKET_OUTGOING || pkttype === PACKET_OTHERHOST) {
        c.rxIgnored++;
      } else if (i32[w + 2]! < len) {
        c.rxTruncated++;
      } else {
        c.rxFrames++;
        try {
          onFrame(buf, base + u16[(base + 12) >>> 1]!, len);
        } catch (e) {
          if (!failed) {
            failed = true;
            error = e;
          }
        }
        if (this.closedFlag) return; // closed from the handler: the ring is gone
      }
      Atomics.store(i32, w, TP_STATUS_KERNEL);
      head = head + 1 === count ? 0 : head + 1;
      if (!this.rxActive) break; // stop() from the handler
    }
    this.rxHead = head;
    if (this.onBatchEnd !== null) this.onBatchEnd();
    if (failed) throw error;
  }
}
