/**
 * The parts every reply frame shares, written by hand into a transmit slot.
 * Target's command handlers (src/engine/target.ts) fill in the rest. Moved
 * here as they were; src/protocol/reply-writers.ts has the writers that are
 * to replace them and the hand-written frames in target.ts.
 */
import { AtaOff, Flag, Off } from "../protocol/constants.js";
import { copySmall } from "./bytes.js";
import type { ReplyPort } from "./seams.js";

/** Reserved bytes 34-35 of the ATA argument. */
export const ATA_RESERVED = AtaOff.lba + 6;

/** Bytes a reply may fill on this port: its transmit slot, within the port's MTU. */
export function replyRoom(tx: Buffer, port: ReplyPort): number {
  return Math.min(tx.length, port.mtu + 14);
}

/**
 * Starts a reply in `tx` from a request at `req[off]`: copies `echo` bytes of
 * header and argument, addresses it back to the sender from this port, sets
 * the response flag and the export's own shelf/slot (never the wildcards).
 */
export function writeReplyHeader(
  tx: Buffer,
  req: Buffer,
  off: number,
  port: ReplyPort,
  target: { readonly shelf: number; readonly slot: number },
  echo: number,
): void {
  copySmall(req, off, tx, 0, echo);
  copySmall(req, off + Off.src, tx, Off.dst, 6);
  copySmall(port.macBytes, 0, tx, Off.src, 6);
  tx[Off.verFlags] = (1 << 4) | Flag.response;
  tx[Off.error] = 0;
  tx.writeUInt16BE(target.shelf, Off.shelf);
  tx[Off.slot] = target.slot;
}
