/**
 * What an export logs about its backend I/O: errors in bursts (a failing disk
 * fails every request: the first error of a burst in full, then one summary
 * when it is over, not a line per request), and with `trace-io` one line per
 * request.
 */
import type { Logger } from "pino";
import { readSrcMac, readTag } from "../protocol/frame-readers.js";
import { macToString } from "../protocol/mac.js";
import type { Request } from "./request.js";

/** How long a burst of backend errors is summarized before the next one is logged in full. */
const BURST_MS = 10_000;

export class IoLog {
  private burst: { count: number; timer: NodeJS.Timeout } | null = null;

  constructor(
    private readonly exportName: string,
    private readonly log: Logger,
  ) {}

  error(req: Request, err: NodeJS.ErrnoException): void {
    if (this.burst === null) {
      this.log.error(
        {
          export: this.exportName,
          op: req.kind,
          lba: req.lba,
          sectors: req.count,
          err: err.message,
        },
        "backend I/O error: answering ABRT",
      );
      this.burst = { count: 0, timer: setTimeout(this.endBurst, BURST_MS) };
      this.burst.timer.unref();
    }
    this.burst.count++;
  }

  /**
   * Nothing more will be served: a burst of errors is over, and its summary
   * must not wait for a timer that a stopping daemon would never see fire.
   */
  close(): void {
    if (this.burst === null) return;
    clearTimeout(this.burst.timer);
    this.endBurst();
  }

  private readonly endBurst = (): void => {
    const count = this.burst?.count ?? 0;
    this.burst = null;
    if (count > 1)
      this.log.error(
        { export: this.exportName, errors: count, seconds: BURST_MS / 1000 },
        "backend I/O errors",
      );
  };

  trace(req: Request, err: NodeJS.ErrnoException | null, seconds: number): void {
    this.log.info(
      {
        export: this.exportName,
        tag: readTag(req.hdr, 0),
        mac: macToString(readSrcMac(req.hdr, 0)),
        op: req.kind,
        lba: req.lba,
        sectors: req.count,
        result: err ? `error: ${err.message}` : "ok",
        latencyUs: Math.round(seconds * 1e6),
      },
      "io",
    );
  }
}
