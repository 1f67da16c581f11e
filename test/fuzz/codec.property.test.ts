/**
 * Property tests of the pure codec (src/protocol/messages.ts): parse throws
 * nothing but ParseError whatever the bytes, serialize puts every field at the
 * offset the AoE r11 tables (aoe-notes.md) give, writers touch exactly the
 * frame's bytes, and parse/serialize are inverses on canonical frames.
 */
import { isDeepStrictEqual } from "node:util";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type Message,
  messageLength,
  ParseError,
  parse,
  serialize,
  writeMessage,
} from "../../src/protocol/messages.js";
import { type FrameWorld, frameArb } from "./frames.js";

const RUNS = Number(process.env.AOED_FUZZ_RUNS ?? 2000);
const byte = fc.integer({ min: 0, max: 255 });
const mac = fc.uint8Array({ minLength: 6, maxLength: 6 }).map((a) => Buffer.from(a));
const bytes = (maxLength: number) => fc.uint8Array({ maxLength }).map((a) => Buffer.from(a));

const headerArb = fc
  .record({
    dst: mac,
    src: mac,
    response: fc.boolean(),
    isError: fc.boolean(),
    errorCode: byte,
    shelf: fc.integer({ min: 0, max: 0xffff }),
    slot: byte,
    tag: fc.integer({ min: 0, max: 0xffffffff }),
  })
  .map(({ errorCode, ...h }) => ({ ...h, error: h.isError ? errorCode : 0 }));

const messageArb: fc.Arbitrary<Message> = fc.oneof(
  fc
    .record({
      h: headerArb,
      aflags: byte,
      errFeature: byte,
      sectorCount: byte,
      cmdStatus: byte,
      lba: fc.integer({ min: 0, max: 2 ** 48 - 1 }),
      data: bytes(1478),
    })
    .map(({ h, ...arg }) => ({ ...h, command: 0, kind: "ata" as const, arg })),
  fc
    .record({
      h: headerArb,
      bufferCount: fc.integer({ min: 0, max: 0xffff }),
      firmware: fc.integer({ min: 0, max: 0xffff }),
      maxSectors: byte,
      aoeVersion: fc.integer({ min: 0, max: 15 }),
      ccmd: fc.integer({ min: 0, max: 15 }),
      config: bytes(1024),
    })
    .map(({ h, ...arg }) => ({ ...h, command: 1, kind: "config" as const, arg })),
  fc
    .record({
      h: headerArb,
      mcmd: byte,
      merror: byte,
      directives: fc.array(fc.record({ dcmd: byte, mac }), { maxLength: 255 }),
    })
    .map(({ h, ...arg }) => ({ ...h, command: 2, kind: "macmask" as const, arg })),
  fc
    .record({ h: headerArb, rcmd: byte, macs: fc.array(mac, { maxLength: 255 }) })
    .map(({ h, ...arg }) => ({ ...h, command: 3, kind: "reserve" as const, arg })),
  fc
    .record({ h: headerArb, command: fc.integer({ min: 4, max: 255 }), payload: bytes(200) })
    .map(({ h, command, payload }) => ({ ...h, command, kind: "other" as const, payload })),
);

/** What parse() must give back for a serialized message: trailing data and payload absorb the padding. */
/**
 * expect(actual).toEqual(expected), in a fraction of the time: vitest's
 * equality walks a Buffer element by element (tens of ms for a frame), which
 * made these properties CPU-bound. A mismatch still gets expect's diff.
 */
function expectEqual<T>(actual: T, expected: T): void {
  if (!isDeepStrictEqual(actual, expected)) expect(actual).toEqual(expected);
}

function padded(m: Message): Message {
  const pad = (b: Buffer, headerLen: number) =>
    b.length + headerLen >= 60 ? b : Buffer.concat([b, Buffer.alloc(60 - headerLen - b.length)]);
  if (m.kind === "ata") return { ...m, arg: { ...m.arg, data: pad(m.arg.data, 36) } };
  if (m.kind === "other") return { ...m, payload: pad(m.payload, 24) };
  return m;
}

const world: FrameWorld = {
  portMac: Buffer.from("020000000001", "hex"),
  sources: [Buffer.from("020000000aaa", "hex"), Buffer.from("020000000bbb", "hex")],
  targets: [{ shelf: 3, slot: 1, sectors: 2048 }],
  maxFrame: 9014,
};

function onlyParseErrors(frame: Buffer): void {
  try {
    parse(frame);
  } catch (e) {
    if (!(e instanceof ParseError))
      throw new Error(`parse threw ${String(e)} for ${frame.toString("hex")}`);
  }
}

describe("codec properties", () => {
  it("parse throws nothing but ParseError on arbitrary bytes", () => {
    fc.assert(
      fc.property(bytes(1600), (b) => onlyParseErrors(b)),
      { numRuns: RUNS },
    );
  });

  it("parse throws nothing but ParseError on AoE-looking bytes", () => {
    const aoe = fc.tuple(fc.integer({ min: 0, max: 1600 }), bytes(1600)).map(([n, tail]) => {
      const b = Buffer.concat([Buffer.alloc(12), Buffer.from([0x88, 0xa2, 0x10]), tail]);
      return b.subarray(0, Math.min(b.length, n));
    });
    fc.assert(
      fc.property(aoe, (b) => onlyParseErrors(b)),
      { numRuns: RUNS },
    );
  });

  it("parse throws nothing but ParseError on mutated request frames", () => {
    fc.assert(
      fc.property(frameArb(world), (b) => onlyParseErrors(b)),
      { numRuns: RUNS },
    );
  });

  it("serialize writes every field at its r11 offset", () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        const b = serialize(m);
        expect(b.length).toBe(Math.max(60, messageLength(m)));
        expect(b.subarray(0, 6).equals(m.dst)).toBe(true);
        expect(b.subarray(6, 12).equals(m.src)).toBe(true);
        expect(b.readUInt16BE(12)).toBe(0x88a2);
        expect(b[14]).toBe(0x10 | (m.response ? 0x08 : 0) | (m.isError ? 0x04 : 0));
        expect(b[15]).toBe(m.isError ? m.error : 0);
        expect(b.readUInt16BE(16)).toBe(m.shelf);
        expect(b[18]).toBe(m.slot);
        expect(b[19]).toBe(m.command);
        expect(b.readUInt32BE(20)).toBe(m.tag);
        switch (m.kind) {
          case "ata":
            expect([b[24], b[25], b[26], b[27]]).toEqual([
              m.arg.aflags,
              m.arg.errFeature,
              m.arg.sectorCount,
              m.arg.cmdStatus,
            ]);
            // LBA little-endian: byte 28 holds bits 0-7 ... byte 33 bits 40-47.
            for (let i = 0; i < 6; i++)
              expect(b[28 + i]).toBe(Math.floor(m.arg.lba / 2 ** (8 * i)) % 256);
            expect([b[34], b[35]]).toEqual([0, 0]);
            expect(b.subarray(36, 36 + m.arg.data.length).equals(m.arg.data)).toBe(true);
            break;
          case "config":
            expect(b.readUInt16BE(24)).toBe(m.arg.bufferCount);
            expect(b.readUInt16BE(26)).toBe(m.arg.firmware);
            expect(b[28]).toBe(m.arg.maxSectors);
            expect(b[29]).toBe((m.arg.aoeVersion << 4) | m.arg.ccmd);
            expect(b.readUInt16BE(30)).toBe(m.arg.config.length);
            expect(b.subarray(32, 32 + m.arg.config.length).equals(m.arg.config)).toBe(true);
            break;
          case "macmask":
            expect([b[24], b[25], b[26], b[27]]).toEqual([
              0,
              m.arg.mcmd,
              m.arg.merror,
              m.arg.directives.length,
            ]);
            m.arg.directives.forEach((d, i) => {
              const o = 28 + 8 * i;
              expect([b[o], b[o + 1]]).toEqual([0, d.dcmd]);
              expect(b.subarray(o + 2, o + 8).equals(d.mac)).toBe(true);
            });
            break;
          case "reserve":
            expect([b[24], b[25]]).toEqual([m.arg.rcmd, m.arg.macs.length]);
            m.arg.macs.forEach((x, i) => {
              expect(b.subarray(26 + 6 * i, 32 + 6 * i).equals(x)).toBe(true);
            });
            break;
          case "other":
            expect(b.subarray(24, 24 + m.payload.length).equals(m.payload)).toBe(true);
            break;
        }
        // Padding is zeros.
        expect(b.subarray(messageLength(m)).every((x) => x === 0)).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it("writeMessage touches exactly the frame's bytes of a larger buffer", () => {
    fc.assert(
      fc.property(messageArb, byte, (m, canary) => {
        const out = Buffer.alloc(messageLength(m) + 200, canary);
        const n = writeMessage(out, m);
        expect(n).toBe(Math.max(60, messageLength(m)));
        expect(out.subarray(0, n).equals(serialize(m))).toBe(true);
        expect(out.subarray(n).every((x) => x === canary)).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it("parse(serialize(m)) gives m back, padding aside", () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        expectEqual(parse(serialize(m)), padded(m));
      }),
      { numRuns: RUNS },
    );
  });

  it("serialize(parse(b)) gives canonical frames back byte for byte", () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        const b = serialize(m);
        expect(serialize(parse(b)).equals(b)).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it("whatever parses, parses the same after a serialize round trip", () => {
    fc.assert(
      fc.property(frameArb(world), (b) => {
        let m: Message;
        try {
          m = parse(b);
        } catch {
          return;
        }
        // The error byte is meaningful only with the E flag: a request's stray byte is not kept.
        expectEqual(parse(serialize(m)), padded({ ...m, error: m.isError ? m.error : 0 }));
      }),
      { numRuns: RUNS },
    );
  });
});
