/**
 * The queue's share of a pool shared with other exports (Backend.issueLimit):
 * a request holds its place while the backend works on it, and a write or a
 * flush gives it back once it only waits for a sync (group commit), so the
 * writes a sync covers are not capped at the share.
 */
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { AtaQueue } from "../../src/engine/ata-queue.js";
import type { ReplyPort } from "../../src/engine/seams.js";
import { newTargetStats } from "../../src/engine/stats.js";
import type { Backend, IoCallback } from "../../src/io/backend.js";
import { SECTOR } from "../../src/protocol/constants.js";

const SHARE = 2;
const QUEUE_LENGTH = 8;

/** Holds every operation until the test moves it on: written (writes only), then done; a flush waits for a sync. */
class PoolBackend implements Backend {
  readonly path = "pool";
  readonly size = 1024 * SECTOR;
  readonly readOnly = false;
  readonly caps = { directIo: false, blockDevice: false, alignment: SECTOR };
  readonly issueLimit = SHARE;
  /** Operations the backend has been given, in order. */
  readonly started: string[] = [];
  private inProgress: { cb: IoCallback; written?: () => void }[] = [];
  private waitingForSync: IoCallback[] = [];

  constructor(private readonly saysWritten: boolean) {}

  allocBuffer(bytes: number): Buffer {
    return Buffer.alloc(bytes);
  }
  read(_buf: Buffer, _len: number, pos: number, cb: IoCallback): void {
    this.started.push(`read ${pos / SECTOR}`);
    this.inProgress.push({ cb });
  }
  write(_buf: Buffer, _len: number, pos: number, cb: IoCallback, written?: () => void): void {
    this.started.push(`write ${pos / SECTOR}`);
    this.inProgress.push({ cb, written: this.saysWritten ? written : undefined });
  }
  /** Like a write that reached the file: waits for the next sync (saying so, if this backend does). */
  flush(cb: IoCallback, waiting?: () => void): void {
    this.started.push("flush");
    this.waitingForSync.push(cb);
    if (this.saysWritten) waiting?.();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }

  /** The operations in progress reach the file: writes that say so wait for a sync, the rest are done. */
  reachFile(): void {
    const ops = this.inProgress;
    this.inProgress = [];
    for (const op of ops) {
      if (op.written === undefined) op.cb(null);
      else {
        this.waitingForSync.push(op.cb);
        op.written();
      }
    }
  }

  /** A sync covers every write waiting for one. */
  sync(): void {
    const cbs = this.waitingForSync;
    this.waitingForSync = [];
    for (const cb of cbs) cb(null);
  }
}

function queueOn(backend: PoolBackend) {
  const answered: number[] = [];
  const q = new AtaQueue(
    { name: "e1.1", queueLength: QUEUE_LENGTH, traceIo: false },
    backend,
    SECTOR,
    newTargetStats(),
    pino({ level: "silent" }),
    (req) => answered.push(req.lba),
  );
  const frame = Buffer.alloc(64 + SECTOR);
  const port = {} as ReplyPort;
  const submit = (kind: "read" | "write" | "flush", lba: number) =>
    q.submit(port, frame, 0, kind, lba, kind === "flush" ? 0 : 1);
  return { q, answered, submit };
}

describe("an export's share of a shared pool", () => {
  it("lets a write waiting only for a sync give its place to the next", () => {
    const backend = new PoolBackend(true);
    const { q, answered, submit } = queueOn(backend);
    for (let lba = 0; lba < 6; lba++) submit("write", lba);
    expect(backend.started).toEqual(["write 0", "write 1"]);
    backend.reachFile();
    expect(backend.started).toEqual(["write 0", "write 1", "write 2", "write 3"]);
    backend.reachFile();
    backend.reachFile();
    // Every write reached the file; none is answered before the sync.
    expect(backend.started).toHaveLength(6);
    expect(answered).toEqual([]);
    expect(q.inFlight).toBe(6);
    backend.sync();
    expect(answered).toEqual([0, 1, 2, 3, 4, 5]);
    expect(q.inFlight).toBe(0);
    // Each write gave its place back once (written, not again when done): the share is whole again.
    for (let lba = 10; lba < 14; lba++) submit("read", lba);
    expect(backend.started.slice(6)).toEqual(["read 10", "read 11"]);
  });

  it("keeps the share for reads and for writes a backend does not report written", () => {
    for (const kind of ["read", "write"] as const) {
      const backend = new PoolBackend(false);
      const { answered, submit } = queueOn(backend);
      for (let lba = 0; lba < 5; lba++) submit(kind, lba);
      expect(backend.started).toEqual([`${kind} 0`, `${kind} 1`]);
      backend.reachFile(); // done: the next two go in
      expect(answered).toEqual([0, 1]);
      expect(backend.started).toEqual([0, 1, 2, 3].map((n) => `${kind} ${n}`));
      backend.reachFile();
      backend.reachFile();
      expect(answered).toEqual([0, 1, 2, 3, 4]);
    }
  });

  it("lets a flush waiting only for a sync give its place to the next", () => {
    const backend = new PoolBackend(true);
    const { answered, submit } = queueOn(backend);
    submit("flush", 50);
    submit("flush", 51);
    submit("write", 1);
    submit("read", 100);
    expect(backend.started).toEqual(["flush", "flush", "write 1", "read 100"]);
    backend.reachFile();
    expect(answered).toEqual([100]);
    backend.sync();
    expect(answered).toEqual([100, 50, 51, 1]);
  });

  it("keeps the share for a flush a backend does not report waiting", () => {
    const backend = new PoolBackend(false);
    const { answered, submit } = queueOn(backend);
    submit("flush", 50);
    submit("flush", 51);
    submit("write", 1);
    expect(backend.started).toEqual(["flush", "flush"]);
    backend.sync(); // both flushes done: the write goes in
    expect(answered).toEqual([50, 51]);
    expect(backend.started).toEqual(["flush", "flush", "write 1"]);
  });

  it("issues the waiting writes while the reads that hold the share go on", () => {
    const backend = new PoolBackend(true);
    const { answered, submit } = queueOn(backend);
    submit("read", 100);
    submit("write", 1);
    submit("write", 2);
    submit("write", 3);
    expect(backend.started).toEqual(["read 100", "write 1"]);
    backend.reachFile(); // the read is done, write 1 waits for a sync: two places free
    expect(answered).toEqual([100]);
    expect(backend.started).toEqual(["read 100", "write 1", "write 2", "write 3"]);
    backend.reachFile();
    backend.sync();
    expect(answered).toEqual([100, 1, 2, 3]);
  });
});
