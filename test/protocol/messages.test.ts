import { describe, expect, it } from "vitest";
import { maxSectorsForMtu } from "../../src/protocol/constants.js";
import { type Message, ParseError, parse, serialize } from "../../src/protocol/messages.js";

/** Hex with spaces and line breaks, as written out by hand from the AoE r11 layout. */
function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ""), "hex");
}

const DST = "02 00 00 00 00 01";
const SRC = "02 00 00 00 00 02";

describe("AoE codec, byte for byte", () => {
  it("ATA READ SECTORS EXT request", () => {
    const frame = hex(`${DST} ${SRC} 88a2
      10 00 0007 03 00 deadbeef
      40 00 02 24 010203040506 0000`);
    const m = parse(frame);
    expect(m).toMatchObject({
      kind: "ata",
      response: false,
      isError: false,
      shelf: 7,
      slot: 3,
      command: 0,
      tag: 0xdeadbeef,
      arg: { aflags: 0x40, errFeature: 0, sectorCount: 2, cmdStatus: 0x24, lba: 0x060504030201 },
    });
    expect(m.dst.toString("hex")).toBe("020000000001");
    // Serialized: the same 36 bytes, zero-padded to the 60-byte Ethernet minimum.
    expect(serialize(m).toString("hex")).toBe(
      Buffer.concat([frame, Buffer.alloc(24)]).toString("hex"),
    );
  });

  it("ATA write response with data and error status", () => {
    const data = Buffer.alloc(512, 0xa5);
    const frame = Buffer.concat([
      hex(`${SRC} ${DST} 88a2 18 00 ffff ff 00 00000001 41 04 01 41 000000000000 0000`),
      data,
    ]);
    const m = parse(frame);
    expect(m.response).toBe(true);
    expect(m.shelf).toBe(0xffff);
    expect(m.slot).toBe(0xff);
    if (m.kind !== "ata") throw new Error("kind");
    expect(m.arg.cmdStatus).toBe(0x41);
    expect(m.arg.errFeature).toBe(0x04);
    expect(m.arg.data.equals(data)).toBe(true);
    expect(serialize(m).equals(frame)).toBe(true);
  });

  it("query config response with a config string", () => {
    const frame = hex(`${SRC} ${DST} 88a2 18 00 0001 02 01 00000010
      0040 0010 11 13 0005 68656c6c6f`);
    const m = parse(frame);
    expect(m).toMatchObject({
      kind: "config",
      arg: { bufferCount: 64, firmware: 0x10, maxSectors: 17, aoeVersion: 1, ccmd: 3 },
    });
    if (m.kind !== "config") throw new Error("kind");
    expect(m.arg.config.toString()).toBe("hello");
    expect(serialize(m).subarray(0, frame.length).equals(frame)).toBe(true);
    expect(serialize(m).length).toBe(60);
  });

  it("MAC mask list edit with two directives", () => {
    const frame = hex(`${DST} ${SRC} 88a2 10 00 0000 00 02 00000002
      00 01 00 02
      00 01 001b21aabb01
      00 02 001b21aabb02`);
    const m = parse(frame);
    if (m.kind !== "macmask") throw new Error("kind");
    expect(m.arg.mcmd).toBe(1);
    expect(m.arg.directives.map((d) => [d.dcmd, d.mac.toString("hex")])).toEqual([
      [1, "001b21aabb01"],
      [2, "001b21aabb02"],
    ]);
    expect(serialize(m).subarray(0, frame.length).equals(frame)).toBe(true);
  });

  it("reserve/release set with one MAC", () => {
    const frame = hex(`${DST} ${SRC} 88a2 10 00 0000 00 03 00000003 01 01 001b21aabb01`);
    const m = parse(frame);
    if (m.kind !== "reserve") throw new Error("kind");
    expect(m.arg.rcmd).toBe(1);
    expect(m.arg.macs.map((b) => b.toString("hex"))).toEqual(["001b21aabb01"]);
    expect(serialize(m).subarray(0, frame.length).equals(frame)).toBe(true);
  });

  it("error replies keep the E flag and code", () => {
    const frame = hex(`${SRC} ${DST} 88a2 1c 06 0000 00 00 00000004 40 00 01 24 000000000000 0000`);
    const m = parse(frame);
    expect(m.isError).toBe(true);
    expect(m.error).toBe(6);
    expect(serialize(m).subarray(0, frame.length).equals(frame)).toBe(true);
  });

  it("unknown commands keep their payload", () => {
    const frame = hex(`${DST} ${SRC} 88a2 10 00 0000 00 f1 00000005 0102`);
    const m = parse(frame);
    expect(m.kind).toBe("other");
    if (m.kind !== "other") throw new Error("kind");
    expect(m.payload.toString("hex")).toBe("0102");
  });

  it("rejects truncated and foreign frames", () => {
    expect(() => parse(hex(`${DST} ${SRC} 88a2 10 00`))).toThrow(ParseError);
    expect(() => parse(hex(`${DST} ${SRC} 0800 10 00 0000 00 00 00000000`))).toThrow(/not an AoE/);
    expect(() =>
      parse(hex(`${DST} ${SRC} 88a2 20 00 0000 00 01 00000000 00000000 0000 0000`)),
    ).toThrow(/version 2/);
    // ATA argument cut short.
    expect(() => parse(hex(`${DST} ${SRC} 88a2 10 00 0000 00 00 00000000 40 00`))).toThrow(
      ParseError,
    );
    // Mask list claims more directives than the frame holds.
    expect(() =>
      parse(hex(`${DST} ${SRC} 88a2 10 00 0000 00 02 00000000 00 01 00 05 0001001b21aabb01`)),
    ).toThrow(ParseError);
  });

  it("round-trips every message kind", () => {
    const base = {
      dst: hex(DST),
      src: hex(SRC),
      response: true,
      isError: false,
      error: 0,
      shelf: 65534,
      slot: 254,
      tag: 0xffffffff,
    };
    const messages: Message[] = [
      {
        ...base,
        command: 0,
        kind: "ata",
        arg: {
          aflags: 0x53,
          errFeature: 1,
          sectorCount: 17,
          cmdStatus: 0x40,
          lba: 2 ** 48 - 1,
          data: Buffer.alloc(17 * 512, 7),
        },
      },
      {
        ...base,
        command: 1,
        kind: "config",
        arg: {
          bufferCount: 65535,
          firmware: 0xffff,
          maxSectors: 255,
          aoeVersion: 1,
          ccmd: 4,
          config: Buffer.alloc(1024, 0x41),
        },
      },
      { ...base, command: 2, kind: "macmask", arg: { mcmd: 0, merror: 3, directives: [] } },
      { ...base, command: 3, kind: "reserve", arg: { rcmd: 2, macs: [hex(DST), hex(SRC)] } },
    ];
    for (const m of messages) expect(parse(serialize(m))).toEqual(m);
  });
});

describe("max sectors per MTU", () => {
  it("follows (MTU - 36) / 512 as initiators do", () => {
    expect(maxSectorsForMtu(1500)).toBe(2);
    expect(maxSectorsForMtu(9000)).toBe(17);
    expect(maxSectorsForMtu(576)).toBe(1);
    expect(maxSectorsForMtu(200000)).toBe(255);
  });
});
