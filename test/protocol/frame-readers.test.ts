/**
 * The allocation-free frame readers against frames written out by hand from
 * the AoE r11 layout (docs: /work/shared/aoe-notes.md). Each frame is placed at
 * an odd offset in a larger buffer filled with 0xee, as in a receive ring slot,
 * so a reader that ignores its offset or reads past its field fails.
 */
import { describe, expect, it } from "vitest";
import { AtaCmd, maxMaskEntriesForMtu } from "../../src/protocol/constants.js";
import {
  argumentEnd,
  ataLength,
  ataTransfer,
  configLength,
  configString,
  copyAtaData,
  copyAtaHeader,
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
  readDirectiveMac,
  readErrFeature,
  readError,
  readEtherType,
  readFirmware,
  readLba,
  readMaskCount,
  readMaxSectors,
  readMcmd,
  readMerror,
  readRcmd,
  readReserveCount,
  readReserveMac,
  readSectorCount,
  readShelf,
  readSlot,
  readSrcMac,
  readTag,
  readVersion,
  reserveLength,
} from "../../src/protocol/frame-readers.js";
import { inRing, OFF } from "./hex-frames.js";

const DST = "02 00 00 00 00 01";
const SRC = "0a 1b 2c 3d 4e 5f";

describe("common header readers", () => {
  it("read every field of a request", () => {
    const b = inRing(`${DST} ${SRC} 88a2 10 00 0007 03 00 deadbeef`);
    expect(readSrcMac(b, OFF)).toBe(0x0a1b2c3d4e5f);
    expect(readEtherType(b, OFF)).toBe(0x88a2);
    expect(readVersion(b, OFF)).toBe(1);
    expect(isResponse(b, OFF)).toBe(false);
    expect(isErrorReply(b, OFF)).toBe(false);
    expect(readError(b, OFF)).toBe(0);
    expect(readShelf(b, OFF)).toBe(7);
    expect(readSlot(b, OFF)).toBe(3);
    expect(readCommand(b, OFF)).toBe(0);
    expect(readTag(b, OFF)).toBe(0xdeadbeef);
  });

  it("read flags, error, wildcards and the full unsigned ranges", () => {
    const b = inRing(`ffffffffffff ffffffffffff 88a2 1c 06 ffff ff f0 ffffffff`);
    expect(isResponse(b, OFF)).toBe(true);
    expect(isErrorReply(b, OFF)).toBe(true);
    expect(readError(b, OFF)).toBe(6);
    expect(readShelf(b, OFF)).toBe(0xffff);
    expect(readSlot(b, OFF)).toBe(0xff);
    expect(readCommand(b, OFF)).toBe(0xf0);
    expect(readTag(b, OFF)).toBe(0xffffffff);
    expect(readSrcMac(b, OFF)).toBe(2 ** 48 - 1);
  });

  it("read the version nibble apart from the flags", () => {
    expect(readVersion(inRing(`${DST} ${SRC} 88a2 28 00 0000 00 00 00000000`), OFF)).toBe(2);
    expect(isResponse(inRing(`${DST} ${SRC} 88a2 08 00 0000 00 00 00000000`), OFF)).toBe(true);
    expect(readVersion(inRing(`${DST} ${SRC} 88a2 08 00 0000 00 00 00000000`), OFF)).toBe(0);
  });

  it("argumentEnd: the fixed argument each command carries", () => {
    expect(argumentEnd(0)).toBe(36);
    expect(argumentEnd(1)).toBe(32);
    expect(argumentEnd(2)).toBe(28);
    expect(argumentEnd(3)).toBe(26);
    expect(argumentEnd(4)).toBe(24);
    expect(argumentEnd(0xf0)).toBe(24);
  });
});

const ATA = (arg: string, command = "00") =>
  inRing(`${DST} ${SRC} 88a2 10 00 0001 02 ${command} 00000001 ${arg}`);

describe("ATA readers", () => {
  it("read a READ SECTORS EXT request", () => {
    const b = ATA("40 07 02 24 010203040506 0000");
    expect(readAflags(b, OFF)).toBe(0x40);
    expect(readErrFeature(b, OFF)).toBe(7);
    expect(readSectorCount(b, OFF)).toBe(2);
    expect(readAtaCommand(b, OFF)).toBe(0x24);
    // Little-endian: byte 28 holds bits 0-7, byte 33 bits 40-47.
    expect(readLba(b, OFF)).toBe(0x060504030201);
  });

  it("read all 48 LBA bits with the E flag", () => {
    expect(readLba(ATA("53 00 01 34 ffffffffffff 0000"), OFF)).toBe(2 ** 48 - 1);
    expect(readLba(ATA("40 00 01 24 00000080 0000 0000"), OFF)).toBe(0x80000000);
  });

  it("read 28 LBA bits without it: device-register bits in byte 31 and bytes 32-33 ignored", () => {
    expect(readLba(ATA("00 00 01 20 785634e2 abcd 0000"), OFF)).toBe(0x02345678);
    expect(readLba(ATA("01 00 01 30 ffffffff ffff 0000"), OFF)).toBe(0x0fffffff);
  });

  it("copy a WRITE's header and its data, nothing of the ring around them", () => {
    const b = inRing(`${DST} ${SRC} 88a2 10 00 0007 03 00 deadbeef
      41 00 01 34 010000000000 0000 ${"5a".repeat(510)}a5c3`);
    expect(ataLength(0)).toBe(36);
    expect(ataLength(1)).toBe(36 + 512);
    const hdr = Buffer.alloc(40, 0x11);
    copyAtaHeader(b, OFF, hdr);
    expect(hdr.toString("hex")).toBe(
      `020000000001 0a1b2c3d4e5f 88a2 10 00 0007 03 00 deadbeef 41 00 01 34 010000000000 0000 11111111`.replace(
        / /g,
        "",
      ),
    );
    const data = Buffer.alloc(514, 0x11);
    copyAtaData(b, OFF, data, 512);
    expect(data.subarray(0, 510).every((x) => x === 0x5a)).toBe(true);
    expect(data.subarray(510).toString("hex")).toBe("a5c31111");
  });

  it("ataTransfer: READ/WRITE SECTORS (EXT) and nothing else", () => {
    const of = (cmd: number, command = "00") =>
      ataTransfer(
        ATA(`40 00 01 ${cmd.toString(16).padStart(2, "0")} 000000000000 0000`, command),
        OFF,
      );
    expect(of(0x20)).toBe("read");
    expect(of(0x24)).toBe("read");
    expect(of(0x30)).toBe("write");
    expect(of(0x34)).toBe("write");
    for (const cmd of [
      AtaCmd.identifyDevice,
      AtaCmd.flushCache,
      AtaCmd.flushCacheExt,
      AtaCmd.checkPowerMode,
      0xb0,
      0x00,
      0x25,
      0x35,
      0xc8,
      0xca,
    ])
      expect(of(cmd)).toBeNull();
    // The same byte 27 in a non-ATA command is not a transfer.
    expect(of(0x24, "01")).toBeNull();
    expect(of(0x34, "f0")).toBeNull();
  });
});

describe("query config readers", () => {
  it("read the argument of a set request", () => {
    const b = inRing(`${DST} ${SRC} 88a2 10 00 0001 02 01 00000010
      0040 4001 11 13 0005 68656c6c6f`);
    expect(readBufferCount(b, OFF)).toBe(64);
    expect(readFirmware(b, OFF)).toBe(0x4001);
    expect(readMaxSectors(b, OFF)).toBe(17);
    expect(readConfigVersion(b, OFF)).toBe(1);
    expect(readCcmd(b, OFF)).toBe(3);
    expect(readConfigLength(b, OFF)).toBe(5);
    expect(configLength(5)).toBe(37);
    expect(configString(b, OFF, 5).toString("latin1")).toBe("hello");
    expect(configString(b, OFF, 0).length).toBe(0);
  });

  it("read a string length beyond the frame as claimed (the caller checks it)", () => {
    const b = inRing(`${DST} ${SRC} 88a2 10 00 0001 02 01 00000010 ffff ffff ff f4 0401`);
    expect(readBufferCount(b, OFF)).toBe(0xffff);
    expect(readFirmware(b, OFF)).toBe(0xffff);
    expect(readConfigVersion(b, OFF)).toBe(15);
    expect(readCcmd(b, OFF)).toBe(4);
    expect(readConfigLength(b, OFF)).toBe(1025);
  });
});

describe("MAC mask readers", () => {
  it("read an edit with two directives", () => {
    const b = inRing(`${DST} ${SRC} 88a2 10 00 0001 02 02 00000020
      00 01 00 02
      00 01 001b21aabb01
      00 02 ffeeddccbbaa`);
    expect(readMcmd(b, OFF)).toBe(1);
    expect(readMerror(b, OFF)).toBe(0);
    expect(readMaskCount(b, OFF)).toBe(2);
    expect(readDirectiveCmd(b, OFF, 0)).toBe(1);
    expect(readDirectiveMac(b, OFF, 0)).toBe(0x001b21aabb01);
    expect(readDirectiveCmd(b, OFF, 1)).toBe(2);
    expect(readDirectiveMac(b, OFF, 1)).toBe(0xffeeddccbbaa);
    expect(maskLength(0)).toBe(28);
    expect(maskLength(2)).toBe(44);
  });

  it("a list fits (MTU + 14 - 28) / 8 entries, at most 255", () => {
    expect(maxMaskEntriesForMtu(1500)).toBe(185);
    expect(maxMaskEntriesForMtu(9000)).toBe(255);
    expect(maxMaskEntriesForMtu(14)).toBe(0);
  });

  it("read a reply's merror", () => {
    const b = inRing(`${SRC} ${DST} 88a2 18 00 0001 02 02 00000020 00 01 03 05`);
    expect(readMerror(b, OFF)).toBe(3);
    expect(readMaskCount(b, OFF)).toBe(5);
  });
});

describe("reserve/release readers", () => {
  it("read a set with two MACs", () => {
    const b = inRing(`${DST} ${SRC} 88a2 10 00 0001 02 03 00000030
      01 02 001b21aabb01 ffeeddccbbaa`);
    expect(readRcmd(b, OFF)).toBe(1);
    expect(readReserveCount(b, OFF)).toBe(2);
    expect(readReserveMac(b, OFF, 0)).toBe(0x001b21aabb01);
    expect(readReserveMac(b, OFF, 1)).toBe(0xffeeddccbbaa);
    expect(reserveLength(0)).toBe(26);
    expect(reserveLength(2)).toBe(38);
  });
});
