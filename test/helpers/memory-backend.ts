/** An in-memory Backend for engine tests: completes asynchronously, can fail or hold requests on demand. */
import type { Backend, IoCallback } from "../../src/io/backend.js";

export class MemoryBackend implements Backend {
  readonly store: Buffer;
  readonly caps = { directIo: false, blockDevice: false, alignment: 512 };
  readonly path = "memory";
  flushes = 0;
  /** When set, the next operations fail with this code. */
  failWith: string | null = null;
  /** When true, operations wait until release() is called. */
  hold = false;
  private held: (() => void)[] = [];

  constructor(
    readonly size: number,
    readonly readOnly = false,
  ) {
    this.store = Buffer.alloc(size);
  }

  allocBuffer(bytes: number): Buffer {
    return Buffer.alloc(bytes);
  }

  private run(cb: IoCallback, op: () => void): void {
    const go = () =>
      setImmediate(() => {
        if (this.failWith) {
          const err: NodeJS.ErrnoException = new Error(`injected ${this.failWith}`);
          err.code = this.failWith;
          cb(err);
          return;
        }
        op();
        cb(null);
      });
    if (this.hold) this.held.push(go);
    else go();
  }

  release(): void {
    this.hold = false;
    for (const go of this.held.splice(0)) go();
  }

  read(buf: Buffer, len: number, pos: number, cb: IoCallback): void {
    this.run(cb, () => this.store.copy(buf, 0, pos, pos + len));
  }

  write(buf: Buffer, len: number, pos: number, cb: IoCallback): void {
    this.run(cb, () => buf.copy(this.store, pos, 0, len));
  }

  flush(cb: IoCallback): void {
    this.run(cb, () => this.flushes++);
  }

  async close(): Promise<void> {}
}
