/** IDENTIFY advertises a volatile write cache exactly when write-cache is on; FLUSH CACHE always. */
import { describe, expect, it } from "vitest";
import { buildIdentify } from "../../src/protocol/identify.js";

const word = (page: Buffer, n: number) => page.readUInt16LE(n * 2);
const info = { sectors: 1 << 20, serial: "S", model: "M", firmware: "1" };

describe("IDENTIFY and the write cache", () => {
  it.each([true, false])("write-cache: %s", (writeCache) => {
    const page = buildIdentify({ ...info, writeCache });
    const bit5 = 1 << 5;
    // Word 82/85 bit 5: write cache supported / enabled, both exactly when it is on.
    expect((word(page, 82) & bit5) !== 0).toBe(writeCache);
    expect((word(page, 85) & bit5) !== 0).toBe(writeCache);
    // Words 83/86 bits 12-13: FLUSH CACHE (EXT) supported and enabled in every mode:
    // aoed syncs then replies whatever the setting.
    const flush = (1 << 12) | (1 << 13);
    expect(word(page, 83) & flush).toBe(flush);
    expect(word(page, 86) & flush).toBe(flush);
  });
});
