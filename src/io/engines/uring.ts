/** io_uring: SQEs written in place on the process's shared ring, one io_uring_enter per event-loop batch. */
import type { IoCallback, SharedBackend } from "../backend.js";
import { FileBackend, poolShare } from "../file-backend.js";
import { type IoRing, releaseSharedRing } from "../uring.js";

/** pwritev2(2) flag: this write is durable (as with O_DSYNC) before it completes. */
const RWF_DSYNC = 0x2;

export class UringBackend extends FileBackend {
  constructor(
    on: SharedBackend,
    /** The shared ring (acquireSharedRing), released when this backend closes. */
    private readonly ring: IoRing,
  ) {
    super(on);
    this.issueLimit = poolShare(ring.boundedWorkers);
  }

  read(buf: Buffer, len: number, pos: number, cb: IoCallback): void {
    const at = pos + this.offset;
    this.ring.read(this.fdForRead(len, at), buf, len, at, cb, this);
  }

  protected override canDsync(): boolean {
    return true;
  }

  protected rawWrite(buf: Buffer, len: number, pos: number, dsync: boolean, cb: IoCallback): void {
    const at = pos + this.offset;
    this.ring.write(this.fdFor(len, at), buf, len, at, cb, this, dsync ? RWF_DSYNC : 0);
  }

  protected rawSync(cb: IoCallback): void {
    this.ring.fdatasync(this.syncFd, cb, this);
  }

  protected override release(): Promise<void> {
    return releaseSharedRing(this.ring);
  }
}
