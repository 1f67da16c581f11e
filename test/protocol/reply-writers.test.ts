/**
 * The in-place reply writers against replies written out by hand from the
 * AoE r11 layout. The transmit slot starts full of stale bytes (0xee), as a
 * reused ring slot would: a writer must set every byte up to the length it
 * returns and none after it. Requests sit at an odd offset in a receive buffer.
 */
import { describe, expect, it } from "vitest";
import {
  replyRoom,
  writeAnnounceHeader,
  writeAtaReply,
  writeConfigReply,
  writeErrorReply,
  writeMaskErrorReply,
  writeMaskReply,
  writePowerModeReply,
  writeReplyHeader,
  writeReserveReply,
} from "../../src/protocol/reply-writers.js";
import { hex, inRing, OFF } from "./hex-frames.js";

const slot = (size = 1024) => Buffer.alloc(size, 0xee);

/** The reply is exactly `expected`, and the slot is untouched after it. */
function expectFrame(tx: Buffer, len: number, expected: string): void {
  const want = hex(expected);
  expect(len).toBe(want.length);
  expect(tx.subarray(0, len).toString("hex")).toBe(want.toString("hex"));
  expect(tx.subarray(len).every((b) => b === 0xee)).toBe(true);
}

const THEM = "0a 1b 2c 3d 4e 5f";
const US = "02 00 00 00 00 01";
const US_BYTES = hex(US);
const SHELF = 7;
const SLOT = 3;

/** Header of a request from THEM, and of our reply to it (R flag, our shelf/slot). */
const request = (command: string, tag: string, shelf = "0007", slot = "03") =>
  `${US} ${THEM} 88a2 10 00 ${shelf} ${slot} ${command} ${tag}`;
const reply = (command: string, tag: string) =>
  `${THEM} ${US} 88a2 18 00 0007 03 ${command} ${tag}`;

/** writeReplyHeader, then `body`; returns the committed length. */
function answer(req: Buffer, body: (tx: Buffer) => number, tx = slot()): [Buffer, number] {
  expect(writeReplyHeader(tx, req, OFF, US_BYTES, SHELF, SLOT)).toBe(24);
  return [tx, body(tx)];
}

describe("reply header", () => {
  it("addresses the reply back, sets R, our shelf/slot, echoes command and tag", () => {
    // A wildcard request (and stale error bits) still gets our own address and a clean header.
    const req = inRing(`ffffffffffff ${THEM} 88a2 1c 05 ffff ff 01 cafef00d`);
    const tx = slot();
    const len = writeReplyHeader(tx, req, OFF, US_BYTES, SHELF, SLOT);
    expectFrame(tx, len, `${THEM} ${US} 88a2 18 00 0007 03 01 cafef00d`);
  });

  it("announcement: to the given MAC, query config, tag 0", () => {
    const tx = slot();
    const len = writeAnnounceHeader(tx, 0xffffffffffff, US_BYTES, 0x0102, 0x0a);
    expectFrame(tx, len, `ffffffffffff ${US} 88a2 18 00 0102 0a 01 00000000`);
  });
});

describe("AoE error reply", () => {
  it("echoes the whole ATA argument with E and the code", () => {
    const req = inRing(`${request("00", "00000001")} 40 00 02 24 010203040506 0000`);
    const [tx, len] = answer(req, (tx) => writeErrorReply(tx, req, OFF, 60, 6));
    expectFrame(
      tx,
      len,
      `${THEM} ${US} 88a2 1c 06 0007 03 00 00000001 40 00 02 24 010203040506 0000`,
    );
  });

  it("echoes only what a short request carried", () => {
    const req = inRing(`${request("00", "00000002")} 40 00 02 24 0102`);
    const [tx, len] = answer(req, (tx) => writeErrorReply(tx, req, OFF, 30, 2));
    expectFrame(tx, len, `${THEM} ${US} 88a2 1c 02 0007 03 00 00000002 40 00 02 24 0102`);
  });

  it("echoes the query config argument but not the string", () => {
    const req = inRing(`${request("01", "00000003")} 0000 0000 00 13 0003 616263`);
    const [tx, len] = answer(req, (tx) => writeErrorReply(tx, req, OFF, 35, 4));
    expectFrame(tx, len, `${THEM} ${US} 88a2 1c 04 0007 03 01 00000003 0000 0000 00 13 0003`);
  });

  it("mask and reserve arguments; an unknown command echoes the header only", () => {
    const mask = inRing(`${request("02", "00000004")} 00 07 00 01 00 01 001b21aabb01`);
    let [tx, len] = answer(mask, (tx) => writeErrorReply(tx, mask, OFF, 60, 2));
    expectFrame(tx, len, `${THEM} ${US} 88a2 1c 02 0007 03 02 00000004 00 07 00 01`);
    const res = inRing(`${request("03", "00000005")} 05 01 001b21aabb01`);
    [tx, len] = answer(res, (tx) => writeErrorReply(tx, res, OFF, 60, 2));
    expectFrame(tx, len, `${THEM} ${US} 88a2 1c 02 0007 03 03 00000005 05 01`);
    const other = inRing(`${request("04", "00000006")} 01 02 03 04`);
    [tx, len] = answer(other, (tx) => writeErrorReply(tx, other, OFF, 60, 1));
    expectFrame(tx, len, `${THEM} ${US} 88a2 1c 01 0007 03 04 00000006`);
  });
});

describe("ATA reply", () => {
  it("a read: argument echoed, status DRDY, error 0, reserved zeroed, then the data", () => {
    const req = inRing(`${request("00", "00000010")} 40 00 02 24 010203040506 abcd`);
    const data = Buffer.alloc(2048);
    for (let i = 0; i < 1024; i++) data[i] = i & 0xff;
    const [tx, len] = answer(
      req,
      (tx) => writeAtaReply(tx, req, OFF, 0x40, 0, data, 1024),
      slot(1600),
    );
    expectFrame(
      tx,
      len,
      `${reply("00", "00000010")} 40 00 02 40 010203040506 0000 ${data.subarray(0, 1024).toString("hex")}`,
    );
  });

  it("an abort: status DRDY|ERR, error ABRT, no data", () => {
    const req = inRing(`${request("00", "00000011")} 41 00 03 34 785634e20000 0000`);
    const [tx, len] = answer(req, (tx) => writeAtaReply(tx, req, OFF, 0x41, 0x04, null, 0));
    expectFrame(tx, len, `${reply("00", "00000011")} 41 04 03 41 785634e20000 0000`);
  });

  it("IDENTIFY: 512 bytes of page after the header", () => {
    const req = inRing(`${request("00", "00000012")} 00 00 01 ec 000000000000 0000`);
    const page = Buffer.alloc(512, 0x5a);
    const [tx, len] = answer(req, (tx) => writeAtaReply(tx, req, OFF, 0x40, 0, page, 512));
    expectFrame(
      tx,
      len,
      `${reply("00", "00000012")} 00 00 01 40 000000000000 0000 ${page.toString("hex")}`,
    );
  });

  it("CHECK POWER MODE: success with sector count 0xFF", () => {
    const req = inRing(`${request("00", "00000013")} 00 00 00 e5 000000000000 0000`);
    const [tx, len] = answer(req, (tx) => writePowerModeReply(tx, req, OFF));
    expectFrame(tx, len, `${reply("00", "00000013")} 00 00 ff 40 000000000000 0000`);
  });

  it("from a request kept in a 36-byte slot (offset 0)", () => {
    const hdr = hex(`${request("00", "00000014")} 40 00 01 34 000100000000 0000`);
    const tx = slot();
    writeReplyHeader(tx, hdr, 0, US_BYTES, SHELF, SLOT);
    const len = writeAtaReply(tx, hdr, 0, 0x40, 0, null, 0);
    expectFrame(tx, len, `${reply("00", "00000014")} 40 00 01 40 000100000000 0000`);
  });
});

describe("query config reply", () => {
  const req = inRing(`${request("01", "00000020", "ffff", "ff")} 0000 0000 00 10 0000`);

  it("buffer count, firmware, max sectors, version 1 with the ccmd, the string", () => {
    const config = Buffer.from("hello");
    const [tx, len] = answer(req, (tx) => writeConfigReply(tx, 1514, 16, 0x4001, 2, 0, config));
    expectFrame(tx, len, `${reply("01", "00000020")} 0010 4001 02 10 0005 68656c6c6f`);
  });

  it("cuts the string to the room on this port", () => {
    const config = Buffer.from("hello");
    const [tx, len] = answer(req, (tx) => writeConfigReply(tx, 34, 64, 1, 17, 3, config));
    expectFrame(tx, len, `${reply("01", "00000020")} 0040 0001 11 13 0002 6865`);
  });

  it("announcement: header and body", () => {
    const tx = slot();
    writeAnnounceHeader(tx, 0x0a1b2c3d4e5f, US_BYTES, SHELF, SLOT);
    const len = writeConfigReply(tx, 1514, 32, 0x0100, 17, 0, Buffer.alloc(0));
    expectFrame(tx, len, `${THEM} ${US} 88a2 18 00 0007 03 01 00000000 0020 0100 11 10 0000`);
  });
});

describe("MAC mask reply", () => {
  const req = inRing(`${request("02", "00000030")} 55 01 00 02
    07 01 001b21aabb01
    00 09 001b21aabb02
    00 01 001b21aabb03`);
  const list = [0x001b21aabb01, 0xffeeddccbbaa];

  it("the list as dcmd-none directives; the reserved bytes zeroed", () => {
    const [tx, len] = answer(req, (tx) => writeMaskReply(tx, 1514, 1, 0, list));
    expectFrame(
      tx,
      len,
      `${reply("02", "00000030")} 00 01 00 02 00 00 001b21aabb01 00 00 ffeeddccbbaa`,
    );
  });

  it("an empty list; a list cut to the room", () => {
    let [tx, len] = answer(req, (tx) => writeMaskReply(tx, 1514, 0, 0, []));
    expectFrame(tx, len, `${reply("02", "00000030")} 00 00 00 00`);
    [tx, len] = answer(req, (tx) => writeMaskReply(tx, 43, 1, 0, list));
    expectFrame(tx, len, `${reply("02", "00000030")} 00 01 00 01 00 00 001b21aabb01`);
  });

  it("an edit failing at directive 1: merror, count 1, directive 0 echoed as sent", () => {
    const [tx, len] = answer(req, (tx) => writeMaskErrorReply(tx, req, OFF, 2, 1));
    expectFrame(tx, len, `${reply("02", "00000030")} 00 01 02 01 00 01 001b21aabb01`);
  });

  it("an edit failing at directive 0: nothing echoed", () => {
    const [tx, len] = answer(req, (tx) => writeMaskErrorReply(tx, req, OFF, 3, 0));
    expectFrame(tx, len, `${reply("02", "00000030")} 00 01 03 00`);
  });
});

describe("reserve/release reply", () => {
  const req = inRing(`${request("03", "00000040")} 01 01 001b21aabb01`);

  it("rcmd and the list", () => {
    const [tx, len] = answer(req, (tx) =>
      writeReserveReply(tx, 1514, 1, [0x001b21aabb01, 0x0a1b2c3d4e5f]),
    );
    expectFrame(tx, len, `${reply("03", "00000040")} 01 02 001b21aabb01 0a1b2c3d4e5f`);
  });

  it("an empty list; a list cut to the room", () => {
    let [tx, len] = answer(req, (tx) => writeReserveReply(tx, 1514, 0, []));
    expectFrame(tx, len, `${reply("03", "00000040")} 00 00`);
    [tx, len] = answer(req, (tx) => writeReserveReply(tx, 37, 2, [1, 2]));
    expectFrame(tx, len, `${reply("03", "00000040")} 02 01 000000000001`);
  });
});

describe("replyRoom", () => {
  it("is the slot, within the MTU plus the Ethernet header", () => {
    expect(replyRoom(slot(2048), 1500)).toBe(1514);
    expect(replyRoom(slot(1024), 9000)).toBe(1024);
  });
});
