/**
 * When a packet socket watches its receive ring instead of going back to
 * epoll (src/net/packet-socket.ts, `busy-poll`): the policy, apart from the
 * spinning, so a test can drive it with times of its choosing.
 *
 * The socket is idle once everything that came in has been answered. A watch
 * of `budgetMs` from then catches the next frame only if it comes within the
 * budget, so the policy watches only after a frame that did (one that woke the
 * socket within the budget of its last idle moment, or that a watch caught),
 * and a watch that catches nothing ends the watching until that happens again.
 * A link whose frames come further apart costs no watching; one that goes idle
 * costs one watch.
 */
export class BusyPollPolicy {
  /** When the socket last went idle; -Infinity while it is not. */
  private idleSince = Number.NEGATIVE_INFINITY;
  /** The last frame came within the budget of the idle moment before it. */
  private lastGapShort = false;

  constructor(readonly budgetMs: number) {}

  /** epoll woke the socket for a frame at `now`. */
  woke(now: number): void {
    this.lastGapShort = now - this.idleSince <= this.budgetMs;
    this.idleSince = Number.NEGATIVE_INFINITY;
  }

  /** Everything that came in is answered at `now`: whether to watch. */
  idle(now: number): boolean {
    this.idleSince = now;
    return this.lastGapShort;
  }

  /** A watch caught a frame. */
  caught(): void {
    this.lastGapShort = true;
    this.idleSince = Number.NEGATIVE_INFINITY;
  }

  /** A watch ended with nothing. */
  missed(): void {
    this.lastGapShort = false;
  }
}
