/**
 * An export's MAC mask list and reservation in shared memory, so worker
 * threads serving its reads and writes enforce exactly what the main thread
 * (the only writer: the steering program sends it every mask and reserve
 * command) last answered. The version is a seqlock: odd while the writer is
 * filling the lists. The writer replies to the initiator only after the
 * version is even again, so any frame the initiator sends afterwards is
 * checked against the new lists.
 */

/** The MAC mask list holds at most 255 entries (its count is one byte); so does a reservation. */
const MAX_LIST = 255;
// Int32 words, every one read and written with Atomics (so the seqlock also holds on
// weakly ordered CPUs): version, mask length, reserve length, pad; then the two lists,
// each MAC (48 bits) as a high and a low word.
const VERSION = 0;
const MASK_LEN = 1;
const RESERVE_LEN = 2;
const MASK_AT = 4;
const RESERVE_AT = MASK_AT + 2 * MAX_LIST;
const WORDS = RESERVE_AT + 2 * MAX_LIST;
const TWO_32 = 2 ** 32;

export class SharedAccessLists {
  readonly buffer: SharedArrayBuffer;
  private readonly words: Int32Array;

  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(WORDS * 4);
    this.words = new Int32Array(this.buffer);
  }

  private store(at: number, macs: readonly number[], n: number): void {
    for (let i = 0; i < n; i++) {
      const mac = macs[i]!;
      Atomics.store(this.words, at + 2 * i, Math.floor(mac / TWO_32));
      Atomics.store(this.words, at + 2 * i + 1, mac | 0);
    }
  }

  private load(at: number, n: number): number[] {
    const out = new Array<number>(n);
    for (let i = 0; i < n; i++)
      out[i] =
        Atomics.load(this.words, at + 2 * i) * TWO_32 +
        (Atomics.load(this.words, at + 2 * i + 1) >>> 0);
    return out;
  }

  /** Changes with every publish(); cheap enough to read per frame. */
  get version(): number {
    return Atomics.load(this.words, VERSION);
  }

  publish(mask: readonly number[], reserve: readonly number[]): void {
    Atomics.add(this.words, VERSION, 1);
    const m = Math.min(mask.length, MAX_LIST);
    const r = Math.min(reserve.length, MAX_LIST);
    this.store(MASK_AT, mask, m);
    this.store(RESERVE_AT, reserve, r);
    Atomics.store(this.words, MASK_LEN, m);
    Atomics.store(this.words, RESERVE_LEN, r);
    Atomics.add(this.words, VERSION, 1);
  }

  /** A consistent copy of both lists and the version they are from. */
  read(): { version: number; mask: number[]; reserve: number[] } {
    for (;;) {
      const version = Atomics.load(this.words, VERSION);
      if (version & 1) continue;
      const mask = this.load(MASK_AT, Atomics.load(this.words, MASK_LEN));
      const reserve = this.load(RESERVE_AT, Atomics.load(this.words, RESERVE_LEN));
      if (Atomics.load(this.words, VERSION) === version) return { version, mask, reserve };
    }
  }
}
