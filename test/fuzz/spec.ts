/**
 * An executable model of what an AoE r11 target must do with one received
 * frame, written from /work/shared/aoe-notes.md and docs/architecture.md
 * (not from src/engine): which frames are ignored, which error each malformed
 * request earns, what each reply carries, and how the initiator-set state
 * (config string, MAC mask list, reservation) changes. The property tests run
 * it side by side with the real Port/Target; the daemon fuzzer uses it to
 * sort a corpus into "must be ignored" and "must be answered like this".
 */

const ETHERTYPE_AOE = 0x88a2;
const R_FLAG = 0x08;
const E_FLAG = 0x04;
const BROADCAST_SHELF = 0xffff;
const BROADCAST_SLOT = 0xff;
const SECTOR = 512;

/** One export as seen from one port. */
export interface ExportSpec {
  name: string;
  shelf: number;
  slot: number;
  /** Capacity in 512-byte sectors. */
  sectors: number;
  /** Sectors per request on this port. */
  maxSectors: number;
  queueLength: number;
  readOnly: boolean;
  /** Answers broadcast discovery. */
  broadcast: boolean;
  /** The config ACL's verdict. */
  allows(mac: number): boolean;
  /** Entries the MAC mask list may hold (an implementation limit: what one reply frame carries on this port). */
  maskCapacity: number;
  firmware: number;
}

export interface SpecState {
  config: Buffer;
  mask: number[];
  reserve: number[];
}

export const emptySpecState = (): SpecState => ({ config: Buffer.alloc(0), mask: [], reserve: [] });

export type Outcome =
  | { reply: "none"; why: string }
  | { reply: "aoe-error"; code: number }
  | {
      reply: "ata";
      status: number;
      error: number;
      /** Bytes of data after the 36-byte header. */
      dataLength: number;
      /** A backend operation runs first: the request may be dropped when the queue is full. */
      io: "read" | "write" | "flush" | null;
      lba: number;
      count: number;
      identify: boolean;
      /** Sector count register in the reply when the command defines it (CHECK POWER MODE). */
      sectorCount: number | null;
    }
  | { reply: "config"; ccmd: number; config: Buffer }
  | {
      reply: "mask";
      mcmd: number;
      merror: number;
      /** The list on success; on an edit error the directives before the failing one, as sent. */
      entries: Buffer[];
    }
  | { reply: "reserve"; rcmd: number; macs: number[] };

export type PortVerdict =
  | { ignore: string }
  | { targets: ExportSpec[]; broadcast: boolean; command: number };

const mac48 = (b: Buffer, off: number): number => b.readUIntBE(off, 6);

/** Is a destination address one this host receives (its own, broadcast or multicast)? */
export function dstAccepted(frame: Buffer, portMac: number): boolean {
  if (frame.length < 6) return false;
  return (frame[0]! & 1) === 1 || mac48(frame, 0) === portMac;
}

/**
 * The port's filter and dispatch. `wire` adds what the kernel does before
 * the daemon sees a frame (unicast for another host never arrives).
 */
export function portVerdict(
  frame: Buffer,
  portMac: number,
  exports: ExportSpec[],
  wire: boolean,
): PortVerdict {
  if (frame.length < 14 || frame.readUInt16BE(12) !== ETHERTYPE_AOE) return { ignore: "not AoE" };
  if (wire && !dstAccepted(frame, portMac)) return { ignore: "for another host" };
  if (frame.length < 24) return { ignore: "shorter than the AoE header" };
  const vf = frame[14]!;
  if (vf & R_FLAG) return { ignore: "response flag" };
  if (vf >> 4 !== 1) return { ignore: "AoE version" };
  if (mac48(frame, 6) === portMac) return { ignore: "our own source MAC" };
  const shelf = frame.readUInt16BE(16);
  const slot = frame[18]!;
  const command = frame[19]!;
  if (shelf === BROADCAST_SHELF || slot === BROADCAST_SLOT) {
    if (command !== 1) return { ignore: "wildcard on a command other than query config" };
    const targets = exports.filter(
      (e) =>
        (shelf === BROADCAST_SHELF || shelf === e.shelf) &&
        (slot === BROADCAST_SLOT || slot === e.slot),
    );
    return targets.length > 0
      ? { targets, broadcast: true, command }
      : { ignore: "no export matches the wildcard" };
  }
  const t = exports.find((e) => e.shelf === shelf && e.slot === slot);
  return t ? { targets: [t], broadcast: false, command } : { ignore: "not our shelf/slot" };
}

const none = (why: string): Outcome => ({ reply: "none", why });
const aoeError = (code: number): Outcome => ({ reply: "aoe-error", code });
const ata = (o: Partial<Extract<Outcome, { reply: "ata" }>> = {}): Outcome => ({
  reply: "ata",
  status: 0x40,
  error: 0,
  dataLength: 0,
  io: null,
  lba: 0,
  count: 0,
  identify: false,
  sectorCount: null,
  ...o,
});
const ataAbort = (): Outcome => ata({ status: 0x41, error: 0x04 });

/** What one export does with a frame the port handed it; `state` is not modified. */
export function targetOutcome(
  frame: Buffer,
  src: number,
  broadcast: boolean,
  e: ExportSpec,
  state: SpecState,
): { outcome: Outcome; next: SpecState } {
  const len = frame.length;
  const same = (outcome: Outcome) => ({ outcome, next: state });
  if (!e.allows(src)) return same(none("denied by the ACL"));
  if (state.mask.length > 0 && !state.mask.includes(src)) return same(none("not on the MAC mask"));
  const reservedAgainst = state.reserve.length > 0 && !state.reserve.includes(src);
  const command = frame[19]!;
  switch (command) {
    case 0: {
      if (len < 36) return same(aoeError(2));
      const aflags = frame[24]!;
      const count = frame[26]!;
      const cmd = frame[27]!;
      const lba = aflags & 0x40 ? frame.readUIntLE(28, 6) : frame.readUInt32LE(28) & 0x0fffffff;
      switch (cmd) {
        case 0x20:
        case 0x24:
        case 0x30:
        case 0x34: {
          if (reservedAgainst) return same(aoeError(6));
          const write = cmd === 0x30 || cmd === 0x34;
          if (
            count === 0 ||
            count > e.maxSectors ||
            lba + count > e.sectors ||
            (write && (e.readOnly || len < 36 + count * SECTOR))
          )
            return same(ataAbort());
          return same(
            ata({
              io: write ? "write" : "read",
              lba,
              count,
              dataLength: write ? 0 : count * SECTOR,
            }),
          );
        }
        case 0xe7:
        case 0xea:
          if (reservedAgainst) return same(aoeError(6));
          return same(ata({ io: "flush" }));
        case 0xec:
          return same(ata({ dataLength: 512, identify: true }));
        case 0xe5:
          return same(ata({ sectorCount: 0xff }));
        default:
          return same(ataAbort());
      }
    }
    case 1: {
      if (broadcast && !e.broadcast) return same(none("broadcast discovery is off"));
      if (len < 32) return same(aoeError(2));
      const ccmd = frame[29]! & 0x0f;
      const ours = state.config;
      if (ccmd === 0) return same({ reply: "config", ccmd, config: ours });
      const slen = frame.readUInt16BE(30);
      if (slen > 1024 || 32 + slen > len) return same(aoeError(2));
      const theirs = Buffer.from(frame.subarray(32, 32 + slen));
      switch (ccmd) {
        case 1:
          return same(
            theirs.equals(ours) ? { reply: "config", ccmd, config: ours } : none("test failed"),
          );
        case 2:
          return same(
            slen <= ours.length && theirs.equals(ours.subarray(0, slen))
              ? { reply: "config", ccmd, config: ours }
              : none("prefix test failed"),
          );
        case 3:
          if (ours.length > 0 && !theirs.equals(ours)) return same(aoeError(4));
          return {
            outcome: { reply: "config", ccmd, config: theirs },
            next: { ...state, config: theirs },
          };
        case 4:
          return {
            outcome: { reply: "config", ccmd, config: theirs },
            next: { ...state, config: theirs },
          };
        default:
          return same(aoeError(2));
      }
    }
    case 2: {
      if (len < 28) return same(aoeError(2));
      const mcmd = frame[25]!;
      const listEntries = (list: number[]) =>
        list.map((m) => {
          const b = Buffer.alloc(8);
          b.writeUIntBE(m, 2, 6);
          return b;
        });
      if (mcmd === 0)
        return same({ reply: "mask", mcmd, merror: 0, entries: listEntries(state.mask) });
      const n = frame[27]!;
      if (mcmd !== 1 || 28 + n * 8 > len) return same(aoeError(2));
      const list = [...state.mask];
      for (let i = 0; i < n; i++) {
        const d = 28 + i * 8;
        const dcmd = frame[d + 1]!;
        const mac = mac48(frame, d + 2);
        let merror = 0;
        if (dcmd === 1) {
          if (!list.includes(mac)) {
            if (list.length >= e.maskCapacity) merror = 3;
            else list.push(mac);
          }
        } else if (dcmd === 2) {
          const at = list.indexOf(mac);
          if (at >= 0) list.splice(at, 1);
        } else if (dcmd !== 0) merror = 2;
        if (merror !== 0) {
          // The count names the failing directive; those before it stay applied.
          const entries: Buffer[] = [];
          for (let j = 0; j < i; j++) {
            const entry = Buffer.from(frame.subarray(28 + j * 8, 36 + j * 8));
            entry[0] = 0; // reserved
            entries.push(entry);
          }
          return {
            outcome: { reply: "mask", mcmd, merror, entries },
            next: { ...state, mask: list },
          };
        }
      }
      return {
        outcome: { reply: "mask", mcmd, merror: 0, entries: listEntries(list) },
        next: { ...state, mask: list },
      };
    }
    case 3: {
      if (len < 26) return same(aoeError(2));
      const rcmd = frame[24]!;
      if (rcmd === 0) return same({ reply: "reserve", rcmd, macs: state.reserve });
      const n = frame[25]!;
      if ((rcmd !== 1 && rcmd !== 2) || 26 + n * 6 > len) return same(aoeError(2));
      if (rcmd === 1 && reservedAgainst) return same(aoeError(6));
      const macs: number[] = [];
      for (let i = 0; i < n; i++) {
        const m = mac48(frame, 26 + i * 6);
        if (!macs.includes(m)) macs.push(m);
      }
      return { outcome: { reply: "reserve", rcmd, macs }, next: { ...state, reserve: macs } };
    }
    default:
      return same(command >= 0xf0 ? none("vendor command") : aoeError(1));
  }
}

/** The smallest frame an outcome's reply can be, before padding. */
export function replyLength(o: Outcome): number {
  switch (o.reply) {
    case "none":
      return 0;
    case "aoe-error":
      return 24;
    case "ata":
      return 36 + o.dataLength;
    case "config":
      return 32 + o.config.length;
    case "mask":
      return 28 + o.entries.length * 8;
    case "reserve":
      return 26 + o.macs.length * 6;
  }
}

export interface ReplyCheck {
  /** The request. */
  frame: Buffer;
  export: ExportSpec;
  portMac: number;
  outcome: Outcome;
  /** Expected data for a read (null: do not compare the bytes). */
  readData?: Buffer | null;
  /** Only this many leading bytes of the reply were kept (the wire fuzzer samples). */
  truncatedTo?: number;
  /** The reply's real length on the wire, when `reply` was truncated. */
  wireLength?: number;
}

/**
 * Returns what is wrong with `reply` as an answer to `frame` (empty: nothing).
 * Checks the common header (R flag, version 1, E flag and code, our
 * shelf/slot and MAC, back to the sender, tag) and the body of each kind.
 */
export function replyProblems(reply: Buffer, c: ReplyCheck): string[] {
  const p: string[] = [];
  const o = c.outcome;
  const len = c.wireLength ?? reply.length;
  const have = (n: number) => reply.length >= n;
  if (o.reply === "none") return ["a reply to a frame that must get none"];
  if (len < 60) p.push(`reply of ${len} bytes is not padded to 60`);
  if (!have(24)) return [...p, "reply shorter than the AoE header"];
  if (!reply.subarray(0, 6).equals(c.frame.subarray(6, 12))) p.push("not addressed to the sender");
  if (mac48(reply, 6) !== c.portMac) p.push("source is not the port's MAC");
  if (reply.readUInt16BE(12) !== ETHERTYPE_AOE) p.push("EtherType");
  const vf = reply[14]!;
  if (vf >> 4 !== 1) p.push(`version ${vf >> 4}`);
  if (!(vf & R_FLAG)) p.push("no response flag");
  if (reply.readUInt16BE(16) !== c.export.shelf || reply[18] !== c.export.slot)
    p.push(
      `shelf/slot ${reply.readUInt16BE(16)}.${reply[18]} instead of ${c.export.shelf}.${c.export.slot}`,
    );
  if (reply[19] !== c.frame[19]) p.push(`command ${reply[19]} instead of ${c.frame[19]}`);
  if (reply.readUInt32BE(20) !== c.frame.readUInt32BE(20)) p.push("tag not echoed");
  const isError = (vf & E_FLAG) !== 0;
  if (o.reply === "aoe-error") {
    if (!isError) p.push(`expected AoE error ${o.code}, got a normal reply`);
    else if (reply[15] !== o.code) p.push(`AoE error ${reply[15]} instead of ${o.code}`);
    return p;
  }
  if (isError) {
    p.push(`unexpected AoE error ${reply[15]} (expected a ${o.reply} reply)`);
    return p;
  }
  if (len < replyLength(o)) p.push(`reply of ${len} bytes, expected at least ${replyLength(o)}`);
  switch (o.reply) {
    case "ata": {
      if (!have(36)) break;
      if (reply[27] !== o.status)
        p.push(`ATA status 0x${reply[27]!.toString(16)} instead of 0x${o.status.toString(16)}`);
      if (reply[25] !== o.error)
        p.push(`ATA error 0x${reply[25]!.toString(16)} instead of 0x${o.error.toString(16)}`);
      if (reply[34] !== 0 || reply[35] !== 0) p.push("reserved ATA bytes 34-35 not zero");
      if (o.sectorCount !== null && reply[26] !== o.sectorCount)
        p.push(`sector count ${reply[26]} instead of ${o.sectorCount}`);
      if (o.identify && have(36 + 512)) {
        const page = reply.subarray(36, 36 + 512);
        if (Number(page.readBigUInt64LE(200)) !== c.export.sectors) p.push("IDENTIFY capacity");
        if (!(page.readUInt16LE(166) & (1 << 10))) p.push("IDENTIFY without LBA48");
      }
      if (c.readData && o.dataLength > 0 && have(36 + o.dataLength)) {
        if (!reply.subarray(36, 36 + o.dataLength).equals(c.readData)) p.push("read data differs");
      }
      break;
    }
    case "config": {
      if (!have(32)) break;
      if (reply.readUInt16BE(24) !== c.export.queueLength) p.push("buffer count");
      if (reply.readUInt16BE(26) !== c.export.firmware) p.push("firmware version");
      if (reply[28] !== c.export.maxSectors) p.push(`max sectors ${reply[28]}`);
      if (reply[29] !== (0x10 | o.ccmd)) p.push(`version/ccmd byte 0x${reply[29]!.toString(16)}`);
      const slen = reply.readUInt16BE(30);
      if (slen !== o.config.length)
        p.push(`config string length ${slen} instead of ${o.config.length}`);
      const n = Math.min(slen, reply.length - 32);
      if (!reply.subarray(32, 32 + n).equals(o.config.subarray(0, n))) p.push("config string");
      break;
    }
    case "mask": {
      if (!have(28)) break;
      if (reply[24] !== 0) p.push("mask reserved byte");
      if (reply[25] !== o.mcmd) p.push("mcmd");
      if (reply[26] !== o.merror) p.push(`merror ${reply[26]} instead of ${o.merror}`);
      if (reply[27] !== o.entries.length)
        p.push(`directive count ${reply[27]} instead of ${o.entries.length}`);
      o.entries.forEach((d, i) => {
        const at = 28 + i * 8;
        if (have(at + 8) && !reply.subarray(at, at + 8).equals(d)) p.push(`directive ${i}`);
      });
      break;
    }
    case "reserve": {
      if (!have(26)) break;
      if (reply[24] !== o.rcmd) p.push("rcmd");
      if (reply[25] !== o.macs.length) p.push(`MAC count ${reply[25]} instead of ${o.macs.length}`);
      o.macs.forEach((m, i) => {
        const at = 26 + i * 6;
        if (have(at + 6) && mac48(reply, at) !== m) p.push(`reserved MAC ${i}`);
      });
      break;
    }
  }
  return p;
}
