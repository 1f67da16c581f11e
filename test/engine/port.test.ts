/**
 * Port on a fake socket, built through its public factory: frames reach the
 * export they address, and replies leave with the kicks src/engine/reply-kick.ts
 * decides (checked here end to end; the rules themselves in reply-kick.test.ts).
 */
import { describe, expect, it } from "vitest";
import { Port } from "../../src/engine/port.js";
import { EARLY_KICK } from "../../src/engine/reply-kick.js";
import type { FrameConsumer, FrameHandler, PortSocket, ReplyPort } from "../../src/engine/seams.js";
import { PORT_COUNTERS, portIndex } from "../../src/engine/stats.js";

const PORT_MAC = Buffer.from("020000000001", "hex");
const PEER_MAC = Buffer.from("020000000aaa", "hex");

class FakeSocket implements PortSocket {
  readonly mac = PORT_MAC;
  readonly ifindex = 3;
  readonly mtu = 1500;
  readonly fanoutId = 0;
  /** Frames committed, and how many each kick sent. */
  committed = 0;
  readonly kicks: number[] = [];
  private unsent = 0;
  private readonly slot = Buffer.alloc(1514);
  private onFrame: FrameHandler | null = null;
  private onBatchEnd: (() => void) | null = null;
  /** What the port tells a busy-polling socket: nothing left but to wait for frames. */
  quiet: () => boolean = () => false;

  start(onFrame: FrameHandler, onBatchEnd: () => void, quiet: () => boolean): void {
    this.onFrame = onFrame;
    this.onBatchEnd = onBatchEnd;
    this.quiet = quiet;
  }
  /** Kicks after which the port said the replies built outside a batch were out. */
  readonly repliesSentAfter: number[] = [];
  repliesSent(): void {
    this.repliesSentAfter.push(this.kicks.length);
  }
  /** One receive batch, as the ring delivers it. */
  batch(frames: Buffer[], cutShort?: () => void): void {
    for (const f of frames) {
      this.onFrame!(f, 0, f.length);
      if (cutShort) {
        cutShort();
        return;
      }
    }
    this.onBatchEnd!();
  }
  stop(): void {
    this.onFrame = null;
  }
  txAcquire(): Buffer | null {
    return this.slot;
  }
  txCommit(): void {
    this.committed++;
    this.unsent++;
  }
  flush(): void {
    this.kicks.push(this.unsent);
    this.unsent = 0;
  }
  setSteering(): void {}
  /** What the socket counts itself (src/net/packet-socket.ts). */
  counts = { rxFrames: 0, rxDrops: 0, rxIgnored: 0, busyPollHits: 0, busyPollMisses: 0 };
  stats() {
    return { ...this.counts };
  }
  close(): void {}
}

/** An export that answers at once (as with a synchronous backend) or later, when told. */
class Export implements FrameConsumer {
  readonly key: number;
  readonly later: ReplyPort[] = [];
  handled = 0;
  constructor(
    readonly shelf: number,
    readonly slot: number,
    private readonly inline: boolean,
  ) {
    this.key = shelf * 256 + slot;
  }
  handle(port: ReplyPort): void {
    this.handled++;
    if (this.inline) reply(port);
    else this.later.push(port);
  }
}

function reply(port: ReplyPort): void {
  port.acquire();
  port.commit(60);
}

function frame(shelf: number, slot: number): Buffer {
  const f = Buffer.alloc(60);
  PORT_MAC.copy(f, 0);
  PEER_MAC.copy(f, 6);
  f.writeUInt16BE(0x88a2, 12);
  f[14] = 0x10; // version 1, a request
  f.writeUInt16BE(shelf, 16);
  f[18] = slot;
  return f;
}

function setup(inline: boolean) {
  const sock = new FakeSocket();
  const port = Port.fromSocket("fake0", sock, { mtu: null, ringBytes: 0 });
  const target = new Export(1, 2, inline);
  port.attach(target);
  return { sock, port, target };
}

const turn = () => new Promise((r) => setImmediate(r));

describe("Port", () => {
  it("dispatches by shelf/slot and counts frames for nobody", () => {
    const { sock, port, target } = setup(true);
    sock.batch([frame(1, 2), frame(1, 3), frame(1, 2)]);
    expect(target.handled).toBe(2);
    expect(port.stats.notForUs).toBe(1);
    expect(port.mtu).toBe(1500);
    expect(port.maxSectors).toBe(2);
  });

  it(`sends a batch's inline replies with an early kick after ${EARLY_KICK} and the rest at its end`, async () => {
    const { sock } = setup(true);
    sock.batch(Array.from({ length: EARLY_KICK + 2 }, () => frame(1, 2)));
    expect(sock.kicks).toEqual([EARLY_KICK, 2]);
    await turn();
    expect(sock.kicks).toEqual([EARLY_KICK, 2]);
  });

  it("sends replies built outside a batch with one kick in the same event-loop turn", async () => {
    const { sock, target } = setup(false);
    sock.batch([frame(1, 2), frame(1, 2), frame(1, 2)]);
    expect(sock.kicks).toEqual([]);
    for (const p of target.later.splice(0)) reply(p);
    expect(sock.kicks).toEqual([]);
    await turn();
    expect(sock.kicks).toEqual([3]);
  });

  it("tells the socket when replies built outside a batch are out (busy polling may watch then)", async () => {
    const { sock, target } = setup(false);
    sock.batch([frame(1, 2), frame(1, 2)]);
    expect(sock.repliesSentAfter).toEqual([]);
    for (const p of target.later.splice(0)) reply(p);
    await turn();
    expect(sock.kicks).toEqual([2]);
    expect(sock.repliesSentAfter).toEqual([1]); // right after that kick
    // A batch answered inline ends with its own kick; the socket watches after it by itself.
    const inline = setup(true);
    inline.sock.batch([frame(1, 2)]);
    await turn();
    expect(inline.sock.repliesSentAfter).toEqual([]);
  });

  it("sends what a batch answered when the port stops receiving in the middle of it", () => {
    const { sock, port } = setup(true);
    sock.batch([frame(1, 2), frame(1, 2)], () => port.stopReceiving());
    expect(sock.kicks).toEqual([1]);
    expect(port.stats.txFrames).toBe(1);
  });

  it("adds a worker thread's counts through workerReport", () => {
    const { port } = setup(true);
    const counts = new Array<number>(PORT_COUNTERS.length + 4).fill(0);
    counts[portIndex("rxFrames")] = 5;
    counts[portIndex("kernelDrops")] = 2;
    counts[PORT_COUNTERS.length + 1] = 3; // other-host frames
    counts[portIndex("busyPollHits")] = 4;
    counts[portIndex("busyPollMisses")] = 6;
    port.workerReport(counts);
    expect(port.stats.rxFrames).toBe(5);
    expect(port.kernelStats()).toEqual({
      rxFrames: 0,
      rxDrops: 2,
      otherHost: 3,
      busyPollHits: 4,
      busyPollMisses: 6,
    });
  });

  it("adds its own socket's counts, busy polling's included, to the workers'", () => {
    const { sock, port } = setup(true);
    sock.counts = { rxFrames: 9, rxDrops: 1, rxIgnored: 2, busyPollHits: 7, busyPollMisses: 3 };
    const counts = new Array<number>(PORT_COUNTERS.length + 4).fill(0);
    counts[portIndex("busyPollHits")] = 10;
    counts[portIndex("busyPollMisses")] = 20;
    port.workerReport(counts);
    port.workerReport(counts);
    expect(port.kernelStats()).toEqual({
      rxFrames: 9,
      rxDrops: 1,
      otherHost: 2,
      busyPollHits: 27,
      busyPollMisses: 43,
    });
  });
});
