/** One queue slot of a target: the request's header and its data buffer, reused forever. */
import { ataLength, copyAtaHeader } from "../protocol/frame-readers.js";
import type { ReplyPort } from "./seams.js";

export type OpKind = "read" | "write" | "flush";

export class Request {
  /** The request's header and ATA argument, kept to build the reply after the receive slot is gone. */
  readonly hdr = Buffer.alloc(ataLength(0));
  port: ReplyPort | null = null;
  kind: OpKind = "read";
  lba = 0;
  count = 0;
  startedAt = 0;
  /** Counted among the operations its queue has handed to the backend (AtaQueue's issueLimit). */
  holdsIssue = false;
  /** Bound once so the data path passes no new closure per request. */
  readonly done: (err: NodeJS.ErrnoException | null) => void;
  /** Backend.write's `written` and Backend.flush's `waiting`, bound once like done. */
  readonly waitsForSync: () => void;

  constructor(
    readonly data: Buffer,
    complete: (req: Request, err: NodeJS.ErrnoException | null) => void,
    releaseIssue: (req: Request) => void,
  ) {
    this.done = (err) => complete(this, err);
    this.waitsForSync = () => releaseIssue(this);
  }

  start(port: ReplyPort, buf: Buffer, off: number, kind: OpKind, lba: number, count: number): void {
    copyAtaHeader(buf, off, this.hdr);
    this.port = port;
    this.kind = kind;
    this.lba = lba;
    this.count = count;
    this.startedAt = performance.now();
  }
}
