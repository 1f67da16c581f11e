/**
 * Copies a few bytes (a header, a MAC) between buffers. Buffer#copy with
 * offsets creates a typed-array view per call, which showed up at ~6% of the
 * per-request CPU; a plain loop allocates nothing for copies this small.
 */
export function copySmall(
  src: Buffer,
  srcOff: number,
  dst: Buffer,
  dstOff: number,
  n: number,
): void {
  for (let i = 0; i < n; i++) dst[dstOff + i] = src[srcOff + i]!;
}
