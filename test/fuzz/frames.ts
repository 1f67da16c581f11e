/**
 * fast-check arbitraries for AoE request frames, valid and not: every command
 * with its fields drawn from the interesting values (boundaries, wrong counts,
 * lengths past the frame, LBA at and past the end, LBA28 with device bits,
 * config strings over 1024 bytes, unknown and vendor commands, R flag, wrong
 * version, our own source MAC, wildcards), then truncated, extended or with a
 * byte overwritten. Frames are built by hand, not with the codec under test.
 */
import fc from "fast-check";

export const ETH_MAX = 1514;

export interface FrameWorld {
  /** The target port's MAC: the usual destination, and a source that must be ignored. */
  portMac: Buffer;
  /** Initiator MACs the frames come from (and name in mask and reserve lists). */
  sources: Buffer[];
  /** Addresses that exist, with their capacity in sectors. */
  targets: { shelf: number; slot: number; sectors: number }[];
  /** Largest frame (MTU + 14). */
  maxFrame: number;
}

export const BROADCAST = Buffer.alloc(6, 0xff);
const MULTICAST = Buffer.from("01005e000001", "hex");
const OTHER_HOST = Buffer.from("02eeeeeeee01", "hex");

const byte = fc.integer({ min: 0, max: 255 });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const w = <T>(weight: number, arbitrary: fc.Arbitrary<T>) => ({ weight, arbitrary });
const anyMac = fc.uint8Array({ minLength: 6, maxLength: 6 }).map((a) => Buffer.from(a));

interface Body {
  command: number;
  arg: Buffer;
}

function ataBody(world: FrameWorld): fc.Arbitrary<Body> {
  const sizes = world.targets.map((t) => t.sectors);
  const lba = fc
    .constantFrom(...sizes)
    .chain((s) =>
      fc.oneof(
        w(6, fc.integer({ min: 0, max: Math.max(0, s - 1) })),
        w(3, fc.constantFrom(0, s - 2, s - 1, s, s + 1, s + 255)),
        w(2, fc.constantFrom(2 ** 28 - 1, 2 ** 28, 2 ** 32 - 1, 2 ** 32, 2 ** 47, 2 ** 48 - 1)),
        w(1, fc.integer({ min: 0, max: 2 ** 48 - 1 })),
      ),
    );
  return fc
    .record({
      aflags: fc.oneof(
        w(8, fc.constantFrom(0x40, 0x41, 0x00, 0x01, 0x50, 0x51, 0x43, 0x10)),
        w(1, byte),
      ),
      feature: fc.oneof(w(4, fc.constant(0)), w(1, byte)),
      count: fc.oneof(
        w(6, fc.constantFrom(1, 2)),
        w(2, fc.constantFrom(0, 3, 17, 255)),
        w(1, byte),
      ),
      cmd: fc.oneof(
        w(10, fc.constantFrom(0x20, 0x24, 0x30, 0x34)),
        w(3, fc.constantFrom(0xec, 0xe5, 0xe7, 0xea, 0xb0, 0x25, 0x35, 0xc8, 0x00)),
        w(1, byte),
      ),
      lba: lba.map((n) => Math.max(0, n)),
      deviceBits: fc.constantFrom(0, 0, 0xe0, 0xa0, 0x40, 0xf0),
      reserved: fc.oneof(w(6, fc.constant(0)), w(1, u16)),
      data: fc.oneof(
        w(5, fc.constant("exact" as const)),
        w(3, fc.constant("none" as const)),
        w(1, fc.constant("short" as const)),
        w(1, fc.constant("long" as const)),
        w(1, fc.constant("random" as const)),
      ),
      extra: fc.integer({ min: 1, max: 600 }),
      fill: byte,
    })
    .map((a) => {
      const arg = Buffer.alloc(12);
      arg[0] = a.aflags;
      arg[1] = a.feature;
      arg[2] = a.count;
      arg[3] = a.cmd;
      if (a.aflags & 0x40) arg.writeUIntLE(a.lba, 4, 6);
      else {
        arg.writeUInt32LE((a.lba & 0x0fffffff) >>> 0, 4);
        arg[7] = (arg[7]! & 0x0f) | a.deviceBits;
      }
      arg.writeUInt16BE(a.reserved, 10);
      const exact = a.count * 512;
      const room = world.maxFrame - 36;
      const n = {
        exact,
        none: 0,
        short: Math.max(0, exact - a.extra),
        long: exact + a.extra,
        random: a.extra * 2,
      }[a.data];
      const data = Buffer.alloc(Math.min(room, n), a.fill);
      return { command: 0, arg: Buffer.concat([arg, data]) };
    });
}

const CONFIG_STRINGS = ["", "a", "ab", "abc", "host-7", "host-7 rack 2", "b"];

function configBody(): fc.Arbitrary<Body> {
  return fc
    .record({
      bufferCount: u16,
      firmware: u16,
      maxSectors: byte,
      version: fc.oneof(w(9, fc.constant(1)), w(1, fc.integer({ min: 0, max: 15 }))),
      ccmd: fc.oneof(w(12, fc.constantFrom(0, 1, 2, 3, 4)), w(1, fc.integer({ min: 5, max: 15 }))),
      text: fc.oneof(
        w(
          8,
          fc.constantFrom(...CONFIG_STRINGS).map((s) => Buffer.from(s)),
        ),
        w(
          1,
          fc.constantFrom(1024, 1025, 1100).map((n) => Buffer.alloc(n, 0x78)),
        ),
        w(
          1,
          fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
        ),
      ),
      lengthField: fc.oneof(
        w(8, fc.constant("exact" as const)),
        w(
          1,
          fc.constantFrom("plus1" as const, "minus1" as const, "1025" as const, "ffff" as const),
        ),
        w(1, fc.constant("random" as const)),
      ),
      randomLength: u16,
    })
    .map((c) => {
      const arg = Buffer.alloc(8);
      arg.writeUInt16BE(c.bufferCount, 0);
      arg.writeUInt16BE(c.firmware, 2);
      arg[4] = c.maxSectors;
      arg[5] = (c.version << 4) | c.ccmd;
      const n = c.text.length;
      const field = {
        exact: n,
        plus1: n + 1,
        minus1: Math.max(0, n - 1),
        "1025": 1025,
        ffff: 0xffff,
        random: c.randomLength,
      }[c.lengthField];
      arg.writeUInt16BE(field, 6);
      return { command: 1, arg: Buffer.concat([arg, c.text]) };
    });
}

function macFrom(world: FrameWorld): fc.Arbitrary<Buffer> {
  return fc.oneof(w(8, fc.constantFrom(...world.sources)), w(1, anyMac));
}

function countField(actual: number): fc.Arbitrary<number> {
  return fc.oneof(
    w(8, fc.constant(actual)),
    w(1, fc.constantFrom(Math.min(255, actual + 1), Math.max(0, actual - 1), 255)),
    w(1, byte),
  );
}

function maskBody(world: FrameWorld): fc.Arbitrary<Body> {
  const directive = fc.record({
    reserved: fc.oneof(w(6, fc.constant(0)), w(1, byte)),
    dcmd: fc.oneof(w(8, fc.constantFrom(1, 2)), w(2, fc.constant(0)), w(1, byte)),
    mac: macFrom(world),
  });
  const many = fc
    .integer({ min: 100, max: Math.floor((world.maxFrame - 28) / 8) })
    .chain((n) => fc.array(anyMac, { minLength: n, maxLength: n }))
    .map((macs) => macs.map((mac) => ({ reserved: 0, dcmd: 1, mac })));
  return fc
    .record({
      reserved: fc.oneof(w(6, fc.constant(0)), w(1, byte)),
      mcmd: fc.oneof(w(10, fc.constantFrom(0, 1)), w(1, byte)),
      merror: fc.oneof(w(6, fc.constant(0)), w(1, byte)),
      dirs: fc.oneof(w(12, fc.array(directive, { maxLength: 8 })), w(1, many)),
    })
    .chain((m) => countField(m.dirs.length).map((count) => ({ ...m, count })))
    .map((m) => {
      const arg = Buffer.alloc(4 + m.dirs.length * 8);
      arg[0] = m.reserved;
      arg[1] = m.mcmd;
      arg[2] = m.merror;
      arg[3] = m.count;
      m.dirs.forEach((d, i) => {
        arg[4 + i * 8] = d.reserved;
        arg[5 + i * 8] = d.dcmd;
        d.mac.copy(arg, 6 + i * 8);
      });
      return { command: 2, arg };
    });
}

function reserveBody(world: FrameWorld): fc.Arbitrary<Body> {
  const many = fc
    .integer({ min: 100, max: Math.floor((world.maxFrame - 26) / 6) })
    .chain((n) => fc.array(anyMac, { minLength: n, maxLength: n }));
  return fc
    .record({
      rcmd: fc.oneof(w(10, fc.constantFrom(0, 1, 2)), w(1, byte)),
      macs: fc.oneof(w(12, fc.array(macFrom(world), { maxLength: 6 })), w(1, many)),
    })
    .chain((r) => countField(r.macs.length).map((count) => ({ ...r, count })))
    .map((r) => {
      const arg = Buffer.alloc(2 + r.macs.length * 6);
      arg[0] = r.rcmd;
      arg[1] = r.count;
      r.macs.forEach((m, i) => {
        m.copy(arg, 2 + i * 6);
      });
      return { command: 3, arg };
    });
}

function otherBody(): fc.Arbitrary<Body> {
  return fc.record({
    command: fc.oneof(
      w(3, fc.integer({ min: 4, max: 0xef })),
      w(2, fc.integer({ min: 0xf0, max: 0xff })),
    ),
    arg: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
  });
}

export function bodyArb(world: FrameWorld): fc.Arbitrary<Body> {
  return fc.oneof(
    w(10, ataBody(world)),
    w(6, configBody()),
    w(3, maskBody(world)),
    w(3, reserveBody(world)),
    w(1, otherBody()),
  );
}

function addressArb(world: FrameWorld): fc.Arbitrary<{ shelf: number; slot: number }> {
  const t = fc.constantFrom(...world.targets);
  return fc.oneof(
    w(
      20,
      t.map(({ shelf, slot }) => ({ shelf, slot })),
    ),
    w(3, fc.constant({ shelf: 0xffff, slot: 0xff })),
    w(
      2,
      t.map(({ shelf }) => ({ shelf, slot: 0xff })),
    ),
    w(
      2,
      t.map(({ slot }) => ({ shelf: 0xffff, slot })),
    ),
    w(1, fc.record({ shelf: u16, slot: byte })),
  );
}

export interface HeaderChoice {
  dst: Buffer;
  src: Buffer;
  verFlags: number;
  error: number;
  shelf: number;
  slot: number;
  tag: number;
}

export function headerArb(world: FrameWorld): fc.Arbitrary<HeaderChoice> {
  return fc
    .record({
      dst: fc.oneof(
        w(12, fc.constant(world.portMac)),
        w(3, fc.constant(BROADCAST)),
        w(1, fc.constantFrom(MULTICAST, OTHER_HOST)),
      ),
      src: fc.oneof(w(30, fc.constantFrom(...world.sources)), w(1, fc.constant(world.portMac))),
      verFlags: fc.oneof(
        w(24, fc.constant(0x10)),
        w(2, fc.constant(0x18)),
        w(1, fc.constantFrom(0x14, 0x1c, 0x11, 0x12)),
        w(2, fc.constantFrom(0x00, 0x20, 0xf0, 0x28)),
        w(1, byte),
      ),
      error: fc.oneof(w(6, fc.constant(0)), w(1, byte)),
      shelfSlot: addressArb(world),
      tag: u32,
    })
    .map(({ shelfSlot, ...h }) => ({ ...h, ...shelfSlot }));
}

export function buildFrame(h: HeaderChoice, body: Body): Buffer {
  const hdr = Buffer.alloc(24);
  h.dst.copy(hdr, 0);
  h.src.copy(hdr, 6);
  hdr.writeUInt16BE(0x88a2, 12);
  hdr[14] = h.verFlags;
  hdr[15] = h.error;
  hdr.writeUInt16BE(h.shelf, 16);
  hdr[18] = h.slot;
  hdr[19] = body.command;
  hdr.writeUInt32BE(h.tag >>> 0, 20);
  return Buffer.concat([hdr, body.arg]);
}

type Mutation =
  | { kind: "none" }
  | { kind: "truncate"; at: number }
  | { kind: "poke"; at: number; value: number }
  | { kind: "extend"; bytes: number; fill: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  w(14, fc.constant({ kind: "none" as const })),
  w(
    2,
    fc.record({ kind: fc.constant("truncate" as const), at: fc.integer({ min: 0, max: 9999 }) }),
  ),
  w(
    1,
    fc.record({
      kind: fc.constant("poke" as const),
      at: fc.integer({ min: 14, max: 600 }),
      value: byte,
    }),
  ),
  w(
    1,
    fc.record({
      kind: fc.constant("extend" as const),
      bytes: fc.integer({ min: 1, max: 1500 }),
      fill: byte,
    }),
  ),
);

/** Applies a mutation; the result keeps the Ethernet header (>= 14 bytes) and fits maxFrame. */
export function mutate(frame: Buffer, m: Mutation, maxFrame: number): Buffer {
  switch (m.kind) {
    case "none":
      return frame.subarray(0, maxFrame);
    case "truncate": {
      // m.at is a fraction in ten-thousandths: anywhere from just the Ethernet header to one byte short.
      const at = 14 + Math.floor((m.at / 10000) * (Math.min(frame.length, maxFrame) - 14));
      return frame.subarray(0, at);
    }
    case "poke": {
      const out = Buffer.from(frame.subarray(0, maxFrame));
      if (m.at < out.length) out[m.at] = m.value;
      return out;
    }
    case "extend":
      return Buffer.concat([frame, Buffer.alloc(m.bytes, m.fill)]).subarray(0, maxFrame);
  }
}

/** Any request frame, valid or malformed, as it could arrive at the port. */
export function frameArb(world: FrameWorld): fc.Arbitrary<Buffer> {
  return fc
    .tuple(headerArb(world), bodyArb(world), mutationArb)
    .map(([h, body, m]) => Buffer.from(mutate(buildFrame(h, body), m, world.maxFrame)));
}

/** A valid broadcast discovery (query config read to every shelf and slot). */
export function broadcastDiscovery(src: Buffer, tag: number): Buffer {
  return buildFrame(
    { dst: BROADCAST, src, verFlags: 0x10, error: 0, shelf: 0xffff, slot: 0xff, tag },
    { command: 1, arg: Buffer.alloc(8) },
  );
}
