/**
 * An export's ATA I/O queue: at most `queue-length` request slots (made on
 * demand, reused forever), at most the backend's `issueLimit` of them handed
 * to the backend and neither done nor only waiting for a sync (the others
 * wait in their slots, oldest first), and the completion of each: counters,
 * latency, error log, the answer, the slot back. Also what is in flight on
 * the other threads serving the export, as they last reported it, and
 * whether the backend is stuck.
 */
import type { Logger } from "pino";
import type { Backend } from "../io/backend.js";
import { SECTOR } from "../protocol/constants.js";
import { copyAtaData } from "../protocol/frame-readers.js";
import { IoLog } from "./io-log.js";
import { type OpKind, Request } from "./request.js";
import type { ReplyPort } from "./seams.js";
import type { TargetStats } from "./stats.js";

/** A request in flight this long means the backend is stuck (logged, shown, exported). */
export const STUCK_AFTER_MS = 3000;

/** Requests of every export on this thread (an isolate: the main thread or one worker) taken and not yet answered. */
let onThisThread = 0;

/** No export on this thread has a request waiting for its backend: every reply is built (busy polling). */
export function noRequestsInFlight(): boolean {
  return onThisThread === 0;
}

/** Answers a completed request on `req.port`; err null: it succeeded. */
export type Answer = (req: Request, err: NodeJS.ErrnoException | null) => void;

export class AtaQueue {
  /** Idle request slots; more are made on demand up to the queue length, so idle exports cost little memory. */
  private readonly free: Request[] = [];
  /** Every request slot made: the ones with a port are in flight. */
  private readonly all: Request[] = [];
  private slots = 0;
  /**
   * Requests handed to the backend and not completed (nor, for a write or a
   * flush, only waiting for a sync): at most its issueLimit.
   */
  private issued = 0;
  private readonly issueLimit: number;
  /** Requests in their slots waiting for the backend to take them, oldest first. */
  private readonly waiting: Request[] = [];
  /** When (performance.now()) the oldest request of the current stall started; null while none is stuck. */
  private stuckSince: number | null = null;
  private inflight = 0;
  private drained: (() => void) | null = null;
  private readonly ioLog: IoLog;
  /** Requests of this export in flight in each worker thread (worker i at i - 1), as last reported. */
  private readonly inFlightElsewhere: number[] = [];
  /**
   * When each worker thread's oldest request of this export started, as last
   * reported (epoch milliseconds, performance.timeOrigin-based; 0 when none).
   */
  private readonly oldestElsewhere: number[] = [];

  constructor(
    private readonly cfg: { name: string; queueLength: number; traceIo: boolean },
    private readonly backend: Backend,
    /** Bytes of each slot's data buffer: the most sectors a request may carry. */
    private readonly slotBytes: number,
    private readonly stats: TargetStats,
    private readonly log: Logger,
    private readonly answer: Answer,
  ) {
    this.issueLimit = backend.issueLimit ?? Number.POSITIVE_INFINITY;
    this.ioLog = new IoLog(cfg.name, log);
  }

  /** Takes a queue slot and starts the backend operation; drops the request if none is free. */
  submit(
    port: ReplyPort,
    buf: Buffer,
    off: number,
    kind: OpKind,
    lba: number,
    count: number,
  ): void {
    let req = this.free.pop();
    if (req === undefined) {
      if (this.slots >= this.cfg.queueLength) {
        this.stats.queueDrops++;
        return;
      }
      req = new Request(this.backend.allocBuffer(this.slotBytes), this.complete, this.releaseIssue);
      this.all.push(req);
      this.slots++;
    }
    this.inflight++;
    onThisThread++;
    req.start(port, buf, off, kind, lba, count);
    // Copied now: the receive slot goes back to the kernel when this returns.
    if (kind === "write") copyAtaData(buf, off, req.data, count * SECTOR);
    if (this.issued < this.issueLimit) this.issue(req);
    else this.waiting.push(req);
  }

  private issue(req: Request): void {
    this.issued++;
    req.holdsIssue = true;
    const bytes = req.count * SECTOR;
    switch (req.kind) {
      case "read":
        this.backend.read(req.data, bytes, req.lba * SECTOR, req.done);
        return;
      case "write":
        this.backend.write(req.data, bytes, req.lba * SECTOR, req.done, req.waitsForSync);
        return;
      case "flush":
        this.backend.flush(req.done, req.waitsForSync);
        return;
    }
  }

  /** The backend no longer holds `req` (done, or only waiting for a sync): the next waiting request goes in. */
  private readonly releaseIssue = (req: Request): void => {
    if (!req.holdsIssue) return;
    req.holdsIssue = false;
    this.issued--;
    const next = this.waiting.shift();
    if (next !== undefined) this.issue(next);
  };

  private readonly complete = (req: Request, err: NodeJS.ErrnoException | null): void => {
    this.releaseIssue(req);
    const bytes = req.count * SECTOR;
    if (err) {
      this.stats.ataErrors++;
      this.ioLog.error(req, err);
    } else if (req.kind === "read") this.stats.bytesRead += bytes;
    else if (req.kind === "write") this.stats.bytesWritten += bytes;
    const seconds = (performance.now() - req.startedAt) / 1000;
    this.stats.latency.observe(seconds);
    this.stats.opLatency[req.kind].observe(seconds);
    if (this.cfg.traceIo) this.ioLog.trace(req, err, seconds);
    this.answer(req, err);
    req.port = null;
    this.free.push(req);
    this.inflight--;
    onThisThread--;
    if (this.inflight === 0 && this.drained) this.drained();
  };

  /** Requests in flight on this thread and, as last reported, on the worker threads. */
  get inFlight(): number {
    let n = this.inflight;
    for (const w of this.inFlightElsewhere) n += w;
    return n;
  }

  /** Worker thread `worker` (1-based) reports its requests in flight and when the oldest started (epoch ms, 0: none). */
  reportElsewhere(worker: number, inFlight: number, oldest: number): void {
    this.inFlightElsewhere[worker - 1] = inFlight;
    this.oldestElsewhere[worker - 1] = oldest;
  }

  /** When the oldest request in flight on this thread started (epoch ms), 0 when none. */
  get oldestStart(): number {
    let oldest = Number.POSITIVE_INFINITY;
    for (const r of this.all) if (r.port !== null && r.startedAt < oldest) oldest = r.startedAt;
    return oldest === Number.POSITIVE_INFINITY ? 0 : performance.timeOrigin + oldest;
  }

  /** Seconds since the oldest request in flight on any thread started; 0 when none. */
  get oldestRequestSeconds(): number {
    let oldest = this.oldestStart;
    for (const w of this.oldestElsewhere) if (w > 0 && (oldest === 0 || w < oldest)) oldest = w;
    return oldest === 0 ? 0 : (performance.timeOrigin + performance.now() - oldest) / 1000;
  }

  /** The backend has not completed a request for STUCK_AFTER_MS or longer. */
  get stuck(): boolean {
    return this.stuckSince !== null;
  }

  /**
   * Called periodically: logs once when a request has been in flight for
   * STUCK_AFTER_MS (the backend hangs) and once when that is over.
   */
  checkStuck(): void {
    const age = this.oldestRequestSeconds;
    if (this.stuckSince === null && age * 1000 >= STUCK_AFTER_MS) {
      this.stuckSince = performance.now() - age * 1000;
      this.log.warn(
        {
          export: this.cfg.name,
          path: this.backend.path,
          oldestSeconds: Math.round(age * 10) / 10,
          inFlight: this.inFlight,
          queueLength: this.cfg.queueLength,
        },
        "backend stuck: requests are not completing; new ones beyond the queue length are dropped",
      );
    } else if (this.stuckSince !== null && age * 1000 < STUCK_AFTER_MS) {
      const seconds = (performance.now() - this.stuckSince) / 1000;
      this.stuckSince = null;
      this.log.info(
        {
          export: this.cfg.name,
          path: this.backend.path,
          stuckSeconds: Math.round(seconds * 10) / 10,
        },
        "backend recovered: requests are completing again",
      );
    }
  }

  /** Resolves once every request in flight on this thread has been answered and an open error burst summarized. */
  drain(): Promise<void> {
    const answered =
      this.inflight === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            this.drained = resolve;
          });
    return answered.then(() => this.ioLog.close());
  }
}
