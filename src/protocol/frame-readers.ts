/**
 * Allocation-free readers of a received AoE frame: each takes the bytes and
 * the offset of the frame's first (Ethernet) byte and returns a number, so the
 * data path parses headers without creating an object per frame. Bounds are
 * the caller's: check the frame's length against ataLength(0),
 * configLength(0), maskLength(0) or reserveLength(0) first.
 * The typed, allocating codec for tools and tests is messages.ts.
 */

import { copyBytes } from "./bytes.js";
import {
  AOE_HEADER,
  ATA_HEADER,
  AtaCmd,
  AtaFlag,
  AtaOff,
  CONFIG_HEADER,
  Command,
  ConfigOff,
  DirectiveOff,
  Flag,
  LBA28_MASK,
  MAC_SIZE,
  MASK_DIRECTIVE_SIZE,
  MaskOff,
  Off,
  ReserveOff,
  SECTOR,
} from "./constants.js";

// Big-endian integers by hand: no bounds check to throw, nothing V8 cannot inline.
const u16 = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!;
const u32 = (b: Uint8Array, o: number): number =>
  ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
/** 48-bit (a MAC): exact in a double. */
const u48 = (b: Uint8Array, o: number): number => u16(b, o) * 0x100000000 + u32(b, o + 2);

// --- Common header -----------------------------------------------------------

export const readEtherType = (b: Uint8Array, off: number): number => u16(b, off + Off.etherType);
/** The version nibble of byte 14. */
export const readVersion = (b: Uint8Array, off: number): number => b[off + Off.verFlags]! >> 4;
/** The R flag: a reply, not a request. */
export const isResponse = (b: Uint8Array, off: number): boolean =>
  (b[off + Off.verFlags]! & Flag.response) !== 0;
/** The E flag: the error code is meaningful. */
export const isErrorReply = (b: Uint8Array, off: number): boolean =>
  (b[off + Off.verFlags]! & Flag.error) !== 0;
export const readError = (b: Uint8Array, off: number): number => b[off + Off.error]!;
/** Source MAC as a 48-bit integer (protocol/mac.ts). */
export const readSrcMac = (b: Uint8Array, off: number): number => u48(b, off + Off.src);
export const readShelf = (b: Uint8Array, off: number): number => u16(b, off + Off.shelf);
export const readSlot = (b: Uint8Array, off: number): number => b[off + Off.slot]!;
export const readCommand = (b: Uint8Array, off: number): number => b[off + Off.command]!;
export const readTag = (b: Uint8Array, off: number): number => u32(b, off + Off.tag);

/** Bytes of header and fixed argument a command carries: what an error reply echoes. */
export function argumentEnd(command: number): number {
  switch (command) {
    case Command.ata:
      return ATA_HEADER;
    case Command.queryConfig:
      return CONFIG_HEADER;
    case Command.macMask:
      return MaskOff.directives;
    case Command.reserve:
      return ReserveOff.macs;
    default:
      return AOE_HEADER;
  }
}

// --- ATA -------------------------------------------------------------------------

export const readAflags = (b: Uint8Array, off: number): number => b[off + AtaOff.aflags]!;
/** Features in a request, the ATA error register in a reply. */
export const readErrFeature = (b: Uint8Array, off: number): number => b[off + AtaOff.errFeature]!;
export const readSectorCount = (b: Uint8Array, off: number): number => b[off + AtaOff.sectorCount]!;
/** ATA command in a request, ATA status in a reply. */
export const readAtaCommand = (b: Uint8Array, off: number): number => b[off + AtaOff.cmdStatus]!;

/**
 * The LBA a request addresses: 48 little-endian bits with the E flag, else
 * 28 (initiators put device-register bits in the top nibble of byte 31).
 */
export function readLba(b: Uint8Array, off: number): number {
  const o = off + AtaOff.lba;
  const low = (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
  if ((b[off + AtaOff.aflags]! & AtaFlag.lba48) === 0) return low & LBA28_MASK;
  return (b[o + 4]! | (b[o + 5]! << 8)) * 0x100000000 + low;
}

/** Frame length that holds `sectors` of ATA data. */
export const ataLength = (sectors: number): number => ATA_HEADER + sectors * SECTOR;

/** Copies a request's header and ATA argument (ataLength(0) bytes) to the start of `dst`. */
export function copyAtaHeader(b: Uint8Array, off: number, dst: Uint8Array): void {
  copyBytes(b, off, dst, 0, ATA_HEADER);
}

/** Copies the first `bytes` of a WRITE's data into `dst`. */
export function copyAtaData(b: Buffer, off: number, dst: Buffer, bytes: number): void {
  b.copy(dst, 0, off + AtaOff.data, off + AtaOff.data + bytes);
}

/** What an ATA request moves: READ or WRITE SECTORS (EXT); null for anything else. */
export type AtaTransfer = "read" | "write";

/** The ATA commands that read sectors, and those that write them. */
export const ATA_READ_COMMANDS: readonly number[] = [AtaCmd.readSectors, AtaCmd.readSectorsExt];
export const ATA_WRITE_COMMANDS: readonly number[] = [AtaCmd.writeSectors, AtaCmd.writeSectorsExt];

/** Indexed by ATA command: the one table the data path, the steering program and its model use. */
const TRANSFER: readonly (AtaTransfer | null)[] = Array.from({ length: 256 }, (_, cmd) =>
  ATA_READ_COMMANDS.includes(cmd) ? "read" : ATA_WRITE_COMMANDS.includes(cmd) ? "write" : null,
);

/** Whether a request is an ATA read or write, and which; null for any other command. */
export function ataTransfer(b: Uint8Array, off: number): AtaTransfer | null {
  if (b[off + Off.command] !== Command.ata) return null;
  return TRANSFER[b[off + AtaOff.cmdStatus]!]!;
}

// --- Query config ------------------------------------------------------------------

export const readBufferCount = (b: Uint8Array, off: number): number =>
  u16(b, off + ConfigOff.bufferCount);
export const readFirmware = (b: Uint8Array, off: number): number =>
  u16(b, off + ConfigOff.firmware);
export const readMaxSectors = (b: Uint8Array, off: number): number =>
  b[off + ConfigOff.maxSectors]!;
/** The AoE version in the high nibble of byte 29. */
export const readConfigVersion = (b: Uint8Array, off: number): number =>
  b[off + ConfigOff.verCcmd]! >> 4;
export const readCcmd = (b: Uint8Array, off: number): number => b[off + ConfigOff.verCcmd]! & 0x0f;
/** Length the request claims for its config string (may exceed the frame). */
export const readConfigLength = (b: Uint8Array, off: number): number =>
  u16(b, off + ConfigOff.stringLength);
/** Frame length that holds a config string of `n` bytes. */
export const configLength = (n: number): number => CONFIG_HEADER + n;
/** The request's config string of `n` bytes, a view into `b` (valid while `b` is). */
export const configString = (b: Buffer, off: number, n: number): Buffer =>
  b.subarray(off + ConfigOff.string, off + ConfigOff.string + n);

// --- MAC mask list -------------------------------------------------------------------

export const readMcmd = (b: Uint8Array, off: number): number => b[off + MaskOff.mcmd]!;
export const readMerror = (b: Uint8Array, off: number): number => b[off + MaskOff.merror]!;
export const readMaskCount = (b: Uint8Array, off: number): number => b[off + MaskOff.count]!;
/** Frame length that holds `count` directives. */
export const maskLength = (count: number): number =>
  MaskOff.directives + count * MASK_DIRECTIVE_SIZE;
export const readDirectiveCmd = (b: Uint8Array, off: number, i: number): number =>
  b[off + maskLength(i) + DirectiveOff.dcmd]!;
export const readDirectiveMac = (b: Uint8Array, off: number, i: number): number =>
  u48(b, off + maskLength(i) + DirectiveOff.mac);

// --- Reserve / release ---------------------------------------------------------------

export const readRcmd = (b: Uint8Array, off: number): number => b[off + ReserveOff.rcmd]!;
export const readReserveCount = (b: Uint8Array, off: number): number => b[off + ReserveOff.count]!;
/** Frame length that holds `count` MACs. */
export const reserveLength = (count: number): number => ReserveOff.macs + count * MAC_SIZE;
export const readReserveMac = (b: Uint8Array, off: number, i: number): number =>
  u48(b, off + reserveLength(i));
