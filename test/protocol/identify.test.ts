import { describe, expect, it } from "vitest";
import { buildIdentify, parseIdentify } from "../../src/protocol/identify.js";

const word = (page: Buffer, w: number) => page.readUInt16LE(w * 2);

/** Decodes an ATA string field (bytes of each word swapped). */
function ataString(page: Buffer, w: number, words: number): string {
  const out = Buffer.alloc(words * 2);
  for (let i = 0; i < words * 2; i += 2) {
    out[i] = page[w * 2 + i + 1]!;
    out[i + 1] = page[w * 2 + i]!;
  }
  return out.toString("latin1");
}

describe("IDENTIFY DEVICE page", () => {
  const info = {
    sectors: 2 ** 33 + 5,
    serial: "LV0-NODE1",
    model: "aoed lv0",
    firmware: "0.1.0",
    writeCache: false,
  };
  const page = buildIdentify(info);

  it("is 512 bytes with a valid integrity word", () => {
    expect(page.length).toBe(512);
    expect(page[510]).toBe(0xa5);
    expect(page.reduce((sum, b) => (sum + b) & 0xff, 0)).toBe(0);
  });

  it("carries the strings byte-swapped and space padded", () => {
    expect(ataString(page, 10, 10)).toBe("LV0-NODE1".padEnd(20));
    expect(ataString(page, 23, 4)).toBe("0.1.0".padEnd(8));
    expect(ataString(page, 27, 20)).toBe("aoed lv0".padEnd(40));
    // The raw bytes really are swapped: "LV" is stored as "VL".
    expect(page.subarray(20, 22).toString("latin1")).toBe("VL");
  });

  it("reports LBA48 capacity and clamps LBA28", () => {
    expect(page.readBigUInt64LE(100 * 2)).toBe(BigInt(info.sectors));
    expect(page.readUInt32LE(60 * 2)).toBe(0x0fffffff);
    expect(word(page, 49) & (1 << 9)).not.toBe(0); // LBA
    expect(word(page, 83) & (1 << 10)).not.toBe(0); // LBA48 supported
    expect(word(page, 86) & (1 << 10)).not.toBe(0); // and enabled
    expect(word(page, 83) & 0xc000).toBe(0x4000); // word valid
  });

  it("advertises FLUSH CACHE (EXT) and the write cache state", () => {
    expect(word(page, 83) & (1 << 12)).not.toBe(0);
    expect(word(page, 83) & (1 << 13)).not.toBe(0);
    expect(word(page, 86) & (3 << 12)).toBe(3 << 12);
    expect(word(page, 85) & (1 << 5)).toBe(0);
    expect(word(buildIdentify({ ...info, writeCache: true }), 85) & (1 << 5)).not.toBe(0);
  });

  it("reports small devices exactly in both capacity fields", () => {
    const small = buildIdentify({ ...info, sectors: 131072 });
    expect(small.readUInt32LE(120)).toBe(131072);
    expect(small.readBigUInt64LE(200)).toBe(131072n);
  });

  it("replaces non-ASCII characters and truncates long strings", () => {
    const p = buildIdentify({ ...info, serial: "é".repeat(3) + "x".repeat(30) });
    expect(ataString(p, 10, 10)).toBe(`???${"x".repeat(17)}`);
  });
});

describe("parseIdentify, as an initiator reads the page", () => {
  it("reads a hand-made LBA48 page: words 100-103, strings unswapped and trimmed", () => {
    const page = Buffer.alloc(512, 0x20); // strings are space padded
    page.write("ab", 20, "latin1"); // word 10 holds "ba"
    page.write("1.", 46, "latin1"); // word 23: ".1"
    page.write("om", 54, "latin1"); // word 27: "mo"
    page.writeUInt16LE(1 << 10, 83 * 2);
    page.writeUInt32LE(0x0fffffff, 60 * 2);
    page.writeBigUInt64LE(2n ** 40n + 3n, 100 * 2);
    expect(parseIdentify(page)).toEqual({
      sectors: 2 ** 40 + 3,
      lba48: true,
      serial: "ba",
      firmware: ".1",
      model: "mo",
    });
  });

  it("reads words 60-61 when LBA48 is not supported", () => {
    const page = Buffer.alloc(512);
    page.writeUInt32LE(123456, 60 * 2);
    page.writeBigUInt64LE(999n, 100 * 2);
    expect(parseIdentify(page)).toMatchObject({ sectors: 123456, lba48: false });
  });

  it("reads back what buildIdentify wrote", () => {
    const info = {
      sectors: 2 ** 33 + 5,
      serial: "S1",
      model: "M",
      firmware: "0.1",
      writeCache: true,
    };
    expect(parseIdentify(buildIdentify(info))).toEqual({
      sectors: info.sectors,
      lba48: true,
      serial: "S1",
      firmware: "0.1",
      model: "M",
    });
  });
});
