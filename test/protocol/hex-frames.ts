/** Frames written out by hand for the byte-level protocol tests. */

/** Hex with spaces and line breaks, as written out by hand from the AoE r11 layout. */
export const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ""), "hex");

/** Where inRing places a frame: odd, so a reader or writer that ignores its offset fails. */
export const OFF = 77;

/** The frame at OFF in a buffer of stale bytes (0xee), as in a receive ring slot. */
export function inRing(text: string): Buffer {
  const ring = Buffer.alloc(OFF + 2048, 0xee);
  hex(text).copy(ring, OFF);
  return ring;
}
