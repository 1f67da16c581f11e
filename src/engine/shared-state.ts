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
// Int32 header: version, mask length, reserve length; then two Float64 lists (MACs are 48-bit).
const HEADER_BYTES = 16;
const VERSION = 0;
const MASK_LEN = 1;
const RESERVE_LEN = 2;

export class SharedAccessLists {
  readonly buffer: SharedArrayBuffer;
  private readonly header: Int32Array;
  private readonly mask: Float64Array;
  private readonly reserve: Float64Array;

  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(HEADER_BYTES + 2 * MAX_LIST * 8);
    this.header = new Int32Array(this.buffer, 0, 4);
    this.mask = new Float64Array(this.buffer, HEADER_BYTES, MAX_LIST);
    this.reserve = new Float64Array(this.buffer, HEADER_BYTES + MAX_LIST * 8, MAX_LIST);
  }

  /** Changes with every publish(); cheap enough to read per frame. */
  get version(): number {
    return Atomics.load(this.header, VERSION);
  }

  publish(mask: readonly number[], reserve: readonly number[]): void {
    Atomics.add(this.header, VERSION, 1);
    const m = Math.min(mask.length, MAX_LIST);
    const r = Math.min(reserve.length, MAX_LIST);
    for (let i = 0; i < m; i++) this.mask[i] = mask[i]!;
    for (let i = 0; i < r; i++) this.reserve[i] = reserve[i]!;
    Atomics.store(this.header, MASK_LEN, m);
    Atomics.store(this.header, RESERVE_LEN, r);
    Atomics.add(this.header, VERSION, 1);
  }

  /** A consistent copy of both lists and the version they are from. */
  read(): { version: number; mask: number[]; reserve: number[] } {
    for (;;) {
      const version = Atomics.load(this.header, VERSION);
      if (version & 1) continue;
      const mask = Array.from(this.mask.subarray(0, Atomics.load(this.header, MASK_LEN)));
      const reserve = Array.from(this.reserve.subarray(0, Atomics.load(this.header, RESERVE_LEN)));
      if (Atomics.load(this.header, VERSION) === version) return { version, mask, reserve };
    }
  }
}
