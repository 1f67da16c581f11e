/**
 * Typed AoE messages and their byte-exact parse/serialize, for the client and
 * tests: one object per frame, any field settable. Pure: no I/O. The daemon's
 * data path uses the allocation-free frame-readers.ts and reply-writers.ts;
 * parsing here goes through the same readers.
 */
import {
  AOE_HEADER,
  AOE_VERSION,
  AtaOff,
  Command,
  ConfigOff,
  DirectiveOff,
  ETHERTYPE_AOE,
  Flag,
  MAC_SIZE,
  MASK_DIRECTIVE_SIZE,
  MaskOff,
  MIN_FRAME,
  Off,
  ReserveOff,
} from "./constants.js";
import {
  isErrorReply,
  isResponse,
  maskLength,
  readAflags,
  readAtaCommand,
  readBufferCount,
  readCcmd,
  readCommand,
  readConfigLength,
  readConfigVersion,
  readDirectiveCmd,
  readErrFeature,
  readError,
  readEtherType,
  readFirmware,
  readMaskCount,
  readMaxSectors,
  readMcmd,
  readMerror,
  readRcmd,
  readReserveCount,
  readSectorCount,
  readShelf,
  readSlot,
  readTag,
  readVersion,
  reserveLength,
} from "./frame-readers.js";

export interface Header {
  dst: Buffer;
  src: Buffer;
  /** The R flag. */
  response: boolean;
  /** The E flag; `error` is meaningful only when set. */
  isError: boolean;
  error: number;
  shelf: number;
  slot: number;
  command: number;
  tag: number;
}

export interface AtaArg {
  aflags: number;
  /** Features in a request, the ATA error register in a response. */
  errFeature: number;
  sectorCount: number;
  /** ATA command in a request, ATA status in a response. */
  cmdStatus: number;
  /** The 48 LBA bits as sent (no masking). */
  lba: number;
  data: Buffer;
}

export interface ConfigArg {
  bufferCount: number;
  firmware: number;
  maxSectors: number;
  /** High nibble of byte 29. */
  aoeVersion: number;
  ccmd: number;
  config: Buffer;
}

export interface MaskDirective {
  dcmd: number;
  mac: Buffer;
}

export interface MacMaskArg {
  mcmd: number;
  merror: number;
  directives: MaskDirective[];
}

export interface ReserveArg {
  rcmd: number;
  macs: Buffer[];
}

export type Message =
  | (Header & { kind: "ata"; arg: AtaArg })
  | (Header & { kind: "config"; arg: ConfigArg })
  | (Header & { kind: "macmask"; arg: MacMaskArg })
  | (Header & { kind: "reserve"; arg: ReserveArg })
  | (Header & { kind: "other"; payload: Buffer });

export class ParseError extends Error {}

/** Reads the 48-bit little-endian LBA at `off`. */
function readLba48(buf: Buffer, off: number): number {
  return buf.readUIntLE(off, 6);
}

function writeLba48(buf: Buffer, off: number, lba: number): void {
  buf.writeUIntLE(lba, off, 6);
}

function parseHeader(buf: Buffer): Header {
  if (buf.length < AOE_HEADER)
    throw new ParseError(`frame of ${buf.length} bytes is shorter than the AoE header`);
  if (readEtherType(buf, 0) !== ETHERTYPE_AOE) throw new ParseError("not an AoE frame");
  const version = readVersion(buf, 0);
  if (version !== AOE_VERSION) throw new ParseError(`unsupported AoE version ${version}`);
  return {
    dst: Buffer.from(buf.subarray(Off.dst, Off.dst + MAC_SIZE)),
    src: Buffer.from(buf.subarray(Off.src, Off.src + MAC_SIZE)),
    response: isResponse(buf, 0),
    isError: isErrorReply(buf, 0),
    error: readError(buf, 0),
    shelf: readShelf(buf, 0),
    slot: readSlot(buf, 0),
    command: readCommand(buf, 0),
    tag: readTag(buf, 0),
  };
}

/** Writes the 24-byte common header. */
function writeHeader(buf: Buffer, h: Header): void {
  h.dst.copy(buf, Off.dst, 0, 6);
  h.src.copy(buf, Off.src, 0, 6);
  buf.writeUInt16BE(ETHERTYPE_AOE, Off.etherType);
  buf[Off.verFlags] =
    (AOE_VERSION << 4) | (h.response ? Flag.response : 0) | (h.isError ? Flag.error : 0);
  buf[Off.error] = h.isError ? h.error : 0;
  buf.writeUInt16BE(h.shelf, Off.shelf);
  buf[Off.slot] = h.slot;
  buf[Off.command] = h.command;
  buf.writeUInt32BE(h.tag >>> 0, Off.tag);
}

function need(buf: Buffer, n: number, what: string): void {
  if (buf.length < n) throw new ParseError(`${what}: frame of ${buf.length} bytes, need ${n}`);
}

function parseAtaArg(buf: Buffer): AtaArg {
  need(buf, AtaOff.data, "ATA");
  return {
    aflags: readAflags(buf, 0),
    errFeature: readErrFeature(buf, 0),
    sectorCount: readSectorCount(buf, 0),
    cmdStatus: readAtaCommand(buf, 0),
    lba: readLba48(buf, AtaOff.lba),
    data: Buffer.from(buf.subarray(AtaOff.data)),
  };
}

/** Writes the ATA argument and data; returns the frame length. */
function writeAtaArg(buf: Buffer, a: AtaArg): number {
  buf[AtaOff.aflags] = a.aflags;
  buf[AtaOff.errFeature] = a.errFeature;
  buf[AtaOff.sectorCount] = a.sectorCount;
  buf[AtaOff.cmdStatus] = a.cmdStatus;
  writeLba48(buf, AtaOff.lba, a.lba);
  buf.writeUInt16BE(0, AtaOff.lba + 6);
  a.data.copy(buf, AtaOff.data);
  return AtaOff.data + a.data.length;
}

function parseConfigArg(buf: Buffer): ConfigArg {
  need(buf, ConfigOff.string, "query config");
  const len = readConfigLength(buf, 0);
  return {
    bufferCount: readBufferCount(buf, 0),
    firmware: readFirmware(buf, 0),
    maxSectors: readMaxSectors(buf, 0),
    aoeVersion: readConfigVersion(buf, 0),
    ccmd: readCcmd(buf, 0),
    // A short frame carries what it has; the engine decides whether that is an error.
    config: Buffer.from(buf.subarray(ConfigOff.string, ConfigOff.string + len)),
  };
}

function writeConfigArg(buf: Buffer, c: ConfigArg): number {
  buf.writeUInt16BE(c.bufferCount, ConfigOff.bufferCount);
  buf.writeUInt16BE(c.firmware, ConfigOff.firmware);
  buf[ConfigOff.maxSectors] = c.maxSectors;
  buf[ConfigOff.verCcmd] = ((c.aoeVersion & 0x0f) << 4) | (c.ccmd & 0x0f);
  buf.writeUInt16BE(c.config.length, ConfigOff.stringLength);
  c.config.copy(buf, ConfigOff.string);
  return ConfigOff.string + c.config.length;
}

function parseMacMaskArg(buf: Buffer): MacMaskArg {
  need(buf, MaskOff.directives, "MAC mask list");
  const count = readMaskCount(buf, 0);
  need(buf, maskLength(count), "MAC mask list");
  const directives: MaskDirective[] = [];
  for (let i = 0; i < count; i++) {
    const mac = maskLength(i) + DirectiveOff.mac;
    directives.push({
      dcmd: readDirectiveCmd(buf, 0, i),
      mac: Buffer.from(buf.subarray(mac, mac + MAC_SIZE)),
    });
  }
  return { mcmd: readMcmd(buf, 0), merror: readMerror(buf, 0), directives };
}

function writeMacMaskArg(buf: Buffer, m: MacMaskArg): number {
  buf[Off.arg] = 0;
  buf[MaskOff.mcmd] = m.mcmd;
  buf[MaskOff.merror] = m.merror;
  buf[MaskOff.count] = m.directives.length;
  let o = MaskOff.directives;
  for (const d of m.directives) {
    buf[o] = 0;
    buf[o + 1] = d.dcmd;
    d.mac.copy(buf, o + 2, 0, 6);
    o += MASK_DIRECTIVE_SIZE;
  }
  return o;
}

function parseReserveArg(buf: Buffer): ReserveArg {
  need(buf, ReserveOff.macs, "reserve/release");
  const count = readReserveCount(buf, 0);
  need(buf, reserveLength(count), "reserve/release");
  const macs: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const o = reserveLength(i);
    macs.push(Buffer.from(buf.subarray(o, o + MAC_SIZE)));
  }
  return { rcmd: readRcmd(buf, 0), macs };
}

function writeReserveArg(buf: Buffer, r: ReserveArg): number {
  buf[ReserveOff.rcmd] = r.rcmd;
  buf[ReserveOff.count] = r.macs.length;
  let o = ReserveOff.macs;
  for (const mac of r.macs) {
    mac.copy(buf, o, 0, 6);
    o += 6;
  }
  return o;
}

/** Parses a whole frame into a typed message. Throws ParseError on malformed input. */
export function parse(buf: Buffer): Message {
  const h = parseHeader(buf);
  switch (h.command) {
    case Command.ata:
      return { ...h, kind: "ata", arg: parseAtaArg(buf) };
    case Command.queryConfig:
      return { ...h, kind: "config", arg: parseConfigArg(buf) };
    case Command.macMask:
      return { ...h, kind: "macmask", arg: parseMacMaskArg(buf) };
    case Command.reserve:
      return { ...h, kind: "reserve", arg: parseReserveArg(buf) };
    default:
      return { ...h, kind: "other", payload: Buffer.from(buf.subarray(AOE_HEADER)) };
  }
}

/** Writes a message into `buf` (large enough) and returns the padded frame length. */
export function writeMessage(buf: Buffer, m: Message): number {
  writeHeader(buf, m);
  switch (m.kind) {
    case "ata":
      writeAtaArg(buf, m.arg);
      break;
    case "config":
      writeConfigArg(buf, m.arg);
      break;
    case "macmask":
      writeMacMaskArg(buf, m.arg);
      break;
    case "reserve":
      writeReserveArg(buf, m.arg);
      break;
    case "other":
      m.payload.copy(buf, AOE_HEADER);
      break;
  }
  const len = messageLength(m);
  if (len < MIN_FRAME) buf.fill(0, len, MIN_FRAME);
  return Math.max(len, MIN_FRAME);
}

/** Unpadded length of a message on the wire. */
export function messageLength(m: Message): number {
  switch (m.kind) {
    case "ata":
      return AtaOff.data + m.arg.data.length;
    case "config":
      return ConfigOff.string + m.arg.config.length;
    case "macmask":
      return MaskOff.directives + m.arg.directives.length * MASK_DIRECTIVE_SIZE;
    case "reserve":
      return ReserveOff.macs + m.arg.macs.length * 6;
    case "other":
      return AOE_HEADER + m.payload.length;
  }
}

/** Serializes a message into a new, padded Buffer. */
export function serialize(m: Message): Buffer {
  const buf = Buffer.alloc(Math.max(MIN_FRAME, messageLength(m)));
  writeMessage(buf, m);
  return buf;
}
