/** The mask and reservation lists worker threads read: what is published is what is read. */
import { describe, expect, it } from "vitest";
import { SharedAccessLists } from "../../src/engine/shared-state.js";

describe("shared access lists", () => {
  it("round-trips 48-bit MACs through a second view of the same memory, with a new version", () => {
    const writer = new SharedAccessLists();
    const reader = new SharedAccessLists(writer.buffer);
    const before = reader.version;
    const mask = [0, 1, 0xffffffffffff, 0x020000000099, 0x8000_0000_0000];
    const reserve = Array.from({ length: 255 }, (_, i) => 0x0200_0000_0000 + i * 0x1_0000_0001);
    writer.publish(mask, reserve);
    const got = reader.read();
    expect(got.version).not.toBe(before);
    expect(got.version % 2).toBe(0);
    expect(got.mask).toEqual(mask);
    expect(got.reserve).toEqual(reserve);
    writer.publish([], []);
    expect(reader.read()).toMatchObject({ mask: [], reserve: [] });
  });
});
