/**
 * Copies a few bytes (a header, a MAC) between buffers. Buffer#copy with
 * offsets creates a typed-array view per call, which showed up at ~6% of the
 * per-request CPU; a plain loop allocates nothing for copies this small.
 */
export function copyBytes(
  src: Uint8Array,
  from: number,
  dst: Uint8Array,
  to: number,
  n: number,
): void {
  for (let i = 0; i < n; i++) dst[to + i] = src[from + i]!;
}
