/**
 * Reply writers: each fills a caller's buffer in place (a transmit ring slot)
 * and returns the frame length written, before padding to MIN_FRAME (the
 * packet layer pads). A reply is its common header (writeReplyHeader, or
 * writeAnnounceHeader for an unsolicited one) followed by one body writer.
 * Nothing here allocates; the bodies that carry lists are cut to `room`, the
 * bytes the reply may fill on its port (replyRoom).
 */

import { copyBytes } from "./bytes.js";
import {
  AOE_HEADER,
  AOE_VERSION,
  ATA_HEADER,
  ATA_POWER_ACTIVE,
  AtaOff,
  AtaStatus,
  CONFIG_HEADER,
  Command,
  ConfigOff,
  DirectiveOff,
  ETH_HEADER,
  ETHERTYPE_AOE,
  Flag,
  MAC_SIZE,
  MASK_DIRECTIVE_SIZE,
  MaskDcmd,
  MaskOff,
  Off,
  ReserveOff,
} from "./constants.js";
import { argumentEnd, maskLength, reserveLength } from "./frame-readers.js";
import { writeMac } from "./mac.js";

/** Bytes a reply may fill: its transmit slot, within the port's MTU. */
export function replyRoom(tx: Uint8Array, mtu: number): number {
  return Math.min(tx.length, mtu + ETH_HEADER);
}

/**
 * The common header of a reply to the request at `req[reqOff]`: addressed back
 * to its sender from `mac`, R flag, no error, the export's own shelf/slot
 * (never the wildcards the request may carry); EtherType, command and tag echoed.
 */
export function writeReplyHeader(
  tx: Buffer,
  req: Uint8Array,
  reqOff: number,
  mac: Uint8Array,
  shelf: number,
  slot: number,
): number {
  copyBytes(req, reqOff + Off.src, tx, Off.dst, MAC_SIZE);
  copyBytes(mac, 0, tx, Off.src, MAC_SIZE);
  tx[Off.etherType] = req[reqOff + Off.etherType]!;
  tx[Off.etherType + 1] = req[reqOff + Off.etherType + 1]!;
  tx[Off.verFlags] = (AOE_VERSION << 4) | Flag.response;
  tx[Off.error] = 0;
  tx[Off.shelf] = shelf >> 8;
  tx[Off.shelf + 1] = shelf & 0xff;
  tx[Off.slot] = slot;
  tx[Off.command] = req[reqOff + Off.command]!;
  copyBytes(req, reqOff + Off.tag, tx, Off.tag, 4);
  return AOE_HEADER;
}

/** An unsolicited query-config reply's header (an announcement): tag 0, to `dst`. */
export function writeAnnounceHeader(
  tx: Buffer,
  dst: number,
  mac: Uint8Array,
  shelf: number,
  slot: number,
): number {
  writeMac(tx, Off.dst, dst);
  copyBytes(mac, 0, tx, Off.src, MAC_SIZE);
  tx.writeUInt16BE(ETHERTYPE_AOE, Off.etherType);
  tx[Off.verFlags] = (AOE_VERSION << 4) | Flag.response;
  tx[Off.error] = 0;
  tx.writeUInt16BE(shelf, Off.shelf);
  tx[Off.slot] = slot;
  tx[Off.command] = Command.queryConfig;
  tx.writeUInt32BE(0, Off.tag);
  return AOE_HEADER;
}

/**
 * An AoE error reply (E flag and `code`): the request's fixed argument echoed,
 * as far as the request carried it. After writeReplyHeader.
 */
export function writeErrorReply(
  tx: Buffer,
  req: Uint8Array,
  reqOff: number,
  reqLen: number,
  code: number,
): number {
  const end = Math.min(reqLen, argumentEnd(req[reqOff + Off.command]!));
  copyBytes(req, reqOff + AOE_HEADER, tx, AOE_HEADER, end - AOE_HEADER);
  tx[Off.verFlags] = tx[Off.verFlags]! | Flag.error;
  tx[Off.error] = code;
  return end;
}

/**
 * An ATA reply: the request's argument echoed (flags, sector count, LBA) with
 * the ATA error register and status in place of features and command, the
 * reserved bytes zeroed, then `dataLen` bytes of `data`. After writeReplyHeader.
 */
export function writeAtaReply(
  tx: Buffer,
  req: Uint8Array,
  reqOff: number,
  status: number,
  error: number,
  data: Buffer | null,
  dataLen: number,
): number {
  copyBytes(req, reqOff + AtaOff.aflags, tx, AtaOff.aflags, AtaOff.reserved - AtaOff.aflags);
  tx[AtaOff.reserved] = 0;
  tx[AtaOff.reserved + 1] = 0;
  tx[AtaOff.errFeature] = error;
  tx[AtaOff.cmdStatus] = status;
  if (data === null || dataLen === 0) return ATA_HEADER;
  data.copy(tx, ATA_HEADER, 0, dataLen);
  return ATA_HEADER + dataLen;
}

/** CHECK POWER MODE's reply: success, sector count 0xFF (active or idle). After writeReplyHeader. */
export function writePowerModeReply(tx: Buffer, req: Uint8Array, reqOff: number): number {
  const len = writeAtaReply(tx, req, reqOff, AtaStatus.ok, 0, null, 0);
  tx[AtaOff.sectorCount] = ATA_POWER_ACTIVE;
  return len;
}

/**
 * A query-config reply's argument: our buffer count, firmware, max sectors,
 * AoE version with the request's ccmd, and the config string, cut to `room`.
 */
export function writeConfigReply(
  tx: Buffer,
  room: number,
  bufferCount: number,
  firmware: number,
  maxSectors: number,
  ccmd: number,
  config: Buffer,
): number {
  const n = Math.max(0, Math.min(config.length, room - CONFIG_HEADER));
  tx.writeUInt16BE(bufferCount, ConfigOff.bufferCount);
  tx.writeUInt16BE(firmware, ConfigOff.firmware);
  tx[ConfigOff.maxSectors] = maxSectors;
  tx[ConfigOff.verCcmd] = (AOE_VERSION << 4) | (ccmd & 0x0f);
  tx.writeUInt16BE(n, ConfigOff.stringLength);
  config.copy(tx, CONFIG_HEADER, 0, n);
  return CONFIG_HEADER + n;
}

/** A MAC mask reply: mcmd, merror and the list (as dcmd-none directives), cut to `room`. */
export function writeMaskReply(
  tx: Buffer,
  room: number,
  mcmd: number,
  merror: number,
  list: readonly number[],
): number {
  const n = Math.max(
    0,
    Math.min(list.length, Math.floor((room - MaskOff.directives) / MASK_DIRECTIVE_SIZE)),
  );
  tx[MaskOff.reserved] = 0;
  tx[MaskOff.mcmd] = mcmd;
  tx[MaskOff.merror] = merror;
  tx[MaskOff.count] = n;
  for (let i = 0; i < n; i++) {
    const o = maskLength(i);
    tx[o] = 0;
    tx[o + DirectiveOff.dcmd] = MaskDcmd.none;
    writeMac(tx, o + DirectiveOff.mac, list[i]!);
  }
  return maskLength(n);
}

/**
 * A mask edit that failed at directive `index`: the request's mcmd, `merror`,
 * the count naming the failing directive, and the directives before it as sent.
 */
export function writeMaskErrorReply(
  tx: Buffer,
  req: Uint8Array,
  reqOff: number,
  merror: number,
  index: number,
): number {
  const end = maskLength(index);
  copyBytes(req, reqOff + MaskOff.reserved, tx, MaskOff.reserved, end - MaskOff.reserved);
  tx[MaskOff.reserved] = 0;
  tx[MaskOff.merror] = merror;
  tx[MaskOff.count] = index;
  for (let o = MaskOff.directives; o < end; o += MASK_DIRECTIVE_SIZE) tx[o] = 0;
  return end;
}

/** A reserve/release reply: rcmd and the reservation list, cut to `room`. */
export function writeReserveReply(
  tx: Buffer,
  room: number,
  rcmd: number,
  list: readonly number[],
): number {
  const n = Math.max(0, Math.min(list.length, Math.floor((room - ReserveOff.macs) / MAC_SIZE)));
  tx[ReserveOff.rcmd] = rcmd;
  tx[ReserveOff.count] = n;
  for (let i = 0; i < n; i++) writeMac(tx, reserveLength(i), list[i]!);
  return reserveLength(n);
}
