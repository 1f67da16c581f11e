/**
 * When a port's replies leave: the one place that decides when the transmit
 * ring is kicked (one send() for every reply committed since the last kick).
 *
 * A reply is built in a transmit slot and committed at once, whoever builds it;
 * the kick is what costs a system call. The rules, per port:
 *
 * 1. Replies built while a receive batch is walked (from the first frame the
 *    socket hands over until the batch ends) go out together when it ends.
 *    That includes the replies of a backend that answers synchronously, inside
 *    the frame's handler: the sync and mmap engines (src/io/file-backend.ts)
 *    have no batching of their own and rely on this one.
 * 2. Except the first EARLY_KICK replies of a batch: the EARLY_KICK-th reply
 *    kicks at once, so the initiator can send more while the rest of the batch
 *    is still being worked on. The replies after it wait for the batch's end.
 * 3. Replies built outside a batch (completions of asynchronous I/O: libuv's
 *    pool, an io_uring completion) go out with one kick per event-loop turn,
 *    from setImmediate. io_uring submits from a microtask after the batch's
 *    callback (src/io/uring.ts) and reaps what completed inline right away,
 *    so page-cache hits are answered by that same setImmediate kick, in the
 *    same loop iteration as the batch that asked for them. After that kick
 *    the socket hears the replies are out (busy polling may watch the ring).
 * 4. A batch cut short (the port stops receiving) ends there: its replies go.
 * 5. A kick with nothing committed since the last one does nothing; a port
 *    closing sends whatever its socket still holds.
 *
 * What a kick does not decide: when the kernel takes a frame. A kick the
 * kernel cannot take in full (socket buffer full, link down) is retried by the
 * socket itself on a short timer (PacketSocket.flush in src/net/packet-socket.ts).
 */

/**
 * The first replies of a receive batch go out after this many, the rest at its
 * end: the initiator can send more while the batch is still being worked on,
 * for one extra kick per batch. Measured side by side on the 2-core VM (1 KiB
 * requests, MTU 1500): +20% at queue depth 8, within noise at 32; a kick every
 * 4 replies instead costs 15% at 32.
 */
export const EARLY_KICK = 4;

export class ReplyKick {
  /** Replies committed and not kicked yet. */
  private pending = false;
  /** Between the first frame of a receive batch and its end. */
  private inBatch = false;
  /** Replies built in the current receive batch. */
  private batchReplies = 0;

  constructor(
    /** Sends everything committed: the socket's flush. */
    private readonly send: () => void,
    /** Runs a function once later in this event-loop turn. */
    private readonly defer: (fn: () => void) => void = setImmediate,
    /** After a deferred kick (rule 3): the replies built outside a batch are out. */
    private readonly sentOutsideBatch: () => void = () => {},
  ) {}

  /** A received frame is about to be handled: a batch is under way. */
  frame(): void {
    this.inBatch = true;
  }

  /** A reply was committed to the transmit ring. */
  committed(): void {
    if (!this.pending) {
      this.pending = true;
      if (!this.inBatch) this.defer(this.deferredKick);
    }
    if (this.inBatch && ++this.batchReplies === EARLY_KICK) this.kick();
  }

  /** The receive batch is over, or cut short: what it answered goes now. */
  batchEnd(): void {
    this.inBatch = false;
    this.batchReplies = 0;
    this.kick();
  }

  /** The port closes: whatever the socket holds goes now. */
  close(): void {
    this.pending = false;
    this.send();
  }

  private readonly kick = (): void => {
    if (!this.pending) return;
    this.pending = false;
    this.send();
  };

  private readonly deferredKick = (): void => {
    this.kick();
    this.sentOutsideBatch();
  };
}
