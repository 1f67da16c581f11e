/** One queue slot of a target: the request's header and its data buffer, reused forever. */
import { ATA_HEADER } from "../protocol/constants.js";
import { copySmall } from "./bytes.js";
import type { ReplyPort } from "./seams.js";

export type OpKind = "read" | "write" | "flush";

export class Request {
  /** The request's first 36 bytes, kept to build the reply after the receive slot is gone. */
  readonly hdr = Buffer.alloc(ATA_HEADER);
  port: ReplyPort | null = null;
  kind: OpKind = "read";
  lba = 0;
  count = 0;
  startedAt = 0;
  /** Bound once so the data path passes no new closure per request. */
  readonly done: (err: NodeJS.ErrnoException | null) => void;

  constructor(
    readonly data: Buffer,
    complete: (req: Request, err: NodeJS.ErrnoException | null) => void,
  ) {
    this.done = (err) => complete(this, err);
  }

  start(port: ReplyPort, buf: Buffer, off: number, kind: OpKind, lba: number, count: number): void {
    copySmall(buf, off, this.hdr, 0, ATA_HEADER);
    this.port = port;
    this.kind = kind;
    this.lba = lba;
    this.count = count;
    this.startedAt = performance.now();
  }
}
