import { pino } from "pino";
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { ExportConfig } from "../../src/config/types.js";
import type { ReplyPort } from "../../src/engine/seams.js";
import { Target } from "../../src/engine/target.js";
import type { IoCallback } from "../../src/io/backend.js";
import { GroupCommit } from "../../src/io/group-commit.js";
import {
  AtaCmd,
  AtaFlag,
  ConfigCmd,
  MaskCmd,
  MaskDcmd,
  ReserveCmd,
} from "../../src/protocol/constants.js";
import { readMac } from "../../src/protocol/mac.js";
import { type Message, parse, serialize } from "../../src/protocol/messages.js";
import { exportConfig } from "../helpers/export-config.js";
import { MemoryBackend } from "../helpers/memory-backend.js";

const PORT_MAC = Buffer.from("020000000001", "hex");
const A = Buffer.from("020000000aaa", "hex");
const B = Buffer.from("020000000bbb", "hex");

class FakePort implements ReplyPort {
  readonly macBytes = PORT_MAC;
  readonly mac = readMac(PORT_MAC, 0);
  readonly sent: Message[] = [];
  full = false;
  constructor(
    readonly mtu = 1500,
    readonly maxSectors = Math.floor((mtu - 36) / 512),
  ) {}
  private slot = Buffer.alloc(10000);
  acquire(): Buffer | null {
    return this.full ? null : this.slot.fill(0xee);
  }
  commit(len: number): void {
    this.sent.push(parse(Buffer.from(this.slot.subarray(0, Math.max(len, 60)))));
  }
}

/** A backend with group commit (write-cache off) whose syncs wait until the test ends them. */
class CommittingBackend extends MemoryBackend {
  readonly heldSyncs: IoCallback[] = [];
  readonly commit = new GroupCommit((cb) => this.heldSyncs.push(cb), {
    path: "memory",
    exportName: "e3.1",
  });
  override write(buf: Buffer, len: number, pos: number, cb: IoCallback): void {
    super.write(buf, len, pos, (err) => (err ? cb(err) : this.commit.completed(cb)));
  }
  limitSyncBatch(writes: number): void {
    this.commit.limit = writes;
  }
}

const log = pino({ level: "silent" });
const tick = () => new Promise((r) => setImmediate(r));
const settle = async () => {
  for (let i = 0; i < 5; i++) await tick();
};

let tagSeq = 1;
function header(src: Buffer, command: number, shelf = 3, slot = 1) {
  return {
    dst: PORT_MAC,
    src,
    response: false,
    isError: false,
    error: 0,
    shelf,
    slot,
    command,
    tag: tagSeq++,
  };
}

function ata(
  src: Buffer,
  cmd: number,
  lba: number,
  count: number,
  opts: { aflags?: number; data?: Buffer } = {},
): Buffer {
  return serialize({
    ...header(src, 0),
    kind: "ata",
    arg: {
      aflags: opts.aflags ?? AtaFlag.lba48,
      errFeature: 0,
      sectorCount: count,
      cmdStatus: cmd,
      lba,
      data: opts.data ?? Buffer.alloc(0),
    },
  });
}

function config(src: Buffer, ccmd: number, value = "", shelf = 3, slot = 1): Buffer {
  return serialize({
    ...header(src, 1, shelf, slot),
    kind: "config",
    arg: {
      bufferCount: 0,
      firmware: 0,
      maxSectors: 0,
      aoeVersion: 1,
      ccmd,
      config: Buffer.from(value),
    },
  });
}

function mask(src: Buffer, mcmd: number, directives: { dcmd: number; mac: Buffer }[] = []): Buffer {
  return serialize({ ...header(src, 2), kind: "macmask", arg: { mcmd, merror: 0, directives } });
}

function reserve(src: Buffer, rcmd: number, macs: Buffer[] = []): Buffer {
  return serialize({ ...header(src, 3), kind: "reserve", arg: { rcmd, macs } });
}

describe("Target", () => {
  let backend: MemoryBackend;
  let port: FakePort;
  let target: Target;
  const make = (over: Partial<ExportConfig> = {}, size = 1 << 20, readOnly = false) => {
    backend = new MemoryBackend(size, readOnly);
    port = new FakePort();
    target = new Target(exportConfig(over), backend, port.maxSectors, log);
  };
  const send = (frame: Buffer, src: Buffer = A, broadcast = false) =>
    target.handle(port, frame, 0, frame.length, readMac(src, 0), broadcast);
  const last = () => port.sent.at(-1)!;
  const lastAta = () => {
    const m = last();
    if (m.kind !== "ata") throw new Error(`expected an ATA reply, got ${m.kind}`);
    return m.arg;
  };

  beforeEach(() => make());

  describe("ATA", () => {
    it("reads LBA48 data and answers from the export's own address", async () => {
      backend.store.fill(0x5a, 512 * 7, 512 * 9);
      send(ata(A, AtaCmd.readSectorsExt, 7, 2));
      await settle();
      const m = last();
      expect(m).toMatchObject({ response: true, isError: false, shelf: 3, slot: 1, kind: "ata" });
      expect(m.dst.equals(A)).toBe(true);
      expect(m.src.equals(PORT_MAC)).toBe(true);
      expect(lastAta().cmdStatus).toBe(0x40);
      expect(
        lastAta()
          .data.subarray(0, 1024)
          .every((b) => b === 0x5a),
      ).toBe(true);
      expect(target.stats.reads).toBe(1);
    });

    it("writes data to the backend", async () => {
      const data = Buffer.alloc(1024, 0x33);
      send(ata(A, AtaCmd.writeSectorsExt, 10, 2, { aflags: AtaFlag.lba48 | AtaFlag.write, data }));
      await settle();
      expect(lastAta().cmdStatus).toBe(0x40);
      expect(backend.store.subarray(5120, 6144).equals(data)).toBe(true);
      expect(backend.store[5119]).toBe(0);
      expect(backend.store[6144]).toBe(0);
    });

    it("masks the device-register bits of an LBA28 address", async () => {
      backend.store.fill(0x11, 512 * 5, 512 * 6);
      // LBA 5 with 0xE0 in the top byte, as Linux sends it.
      send(ata(A, AtaCmd.readSectors, 0xe0000005, 1, { aflags: 0 }));
      await settle();
      expect(lastAta().cmdStatus).toBe(0x40);
      expect(lastAta().data[0]).toBe(0x11);
    });

    it.each([
      ["past the end", () => ata(A, AtaCmd.readSectorsExt, 2047, 2)],
      ["more sectors than advertised", () => ata(A, AtaCmd.readSectorsExt, 0, 3)],
      ["zero sectors", () => ata(A, AtaCmd.readSectorsExt, 0, 0)],
      [
        "a write without its data",
        () => ata(A, AtaCmd.writeSectorsExt, 0, 2, { data: Buffer.alloc(512) }),
      ],
      ["an unsupported ATA command", () => ata(A, 0xb0, 0, 1)],
    ])("answers %s with ABRT, not the AoE error flag", async (_what, frame) => {
      send(frame());
      await settle();
      expect(last().isError).toBe(false);
      expect(lastAta().cmdStatus).toBe(0x41);
      expect(lastAta().errFeature).toBe(0x04);
      expect(target.stats.ataErrors).toBe(1);
    });

    it("refuses writes to a read-only export", async () => {
      make({}, 1 << 20, true);
      send(ata(A, AtaCmd.writeSectorsExt, 0, 1, { data: Buffer.alloc(512, 1) }));
      await settle();
      expect(lastAta().cmdStatus).toBe(0x41);
      expect(backend.store[0]).toBe(0);
    });

    it("answers a backend error with ABRT", async () => {
      backend.failWith = "EIO";
      send(ata(A, AtaCmd.readSectorsExt, 0, 1));
      await settle();
      expect(lastAta().cmdStatus).toBe(0x41);
      expect(lastAta().errFeature).toBe(0x04);
      expect(lastAta().data.length).toBe(24); // padding only: no sector data on error
    });

    it("logs a burst of backend errors once, then a summary", async () => {
      const lines: { msg: string; errors?: number }[] = [];
      const capture = pino({ level: "info" }, { write: (l: string) => lines.push(JSON.parse(l)) });
      vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
      try {
        target = new Target(exportConfig(), backend, port.maxSectors, capture);
        backend.failWith = "EIO";
        for (let i = 0; i < 4; i++) send(ata(A, AtaCmd.readSectorsExt, i, 1));
        await settle();
        expect(lines.filter((l) => l.msg.startsWith("backend I/O error"))).toHaveLength(1);
        expect(port.sent.filter((m) => m.kind === "ata" && m.arg.cmdStatus === 0x41)).toHaveLength(
          4,
        );
        vi.advanceTimersByTime(10_000);
        expect(lines.at(-1)).toMatchObject({ msg: "backend I/O errors", errors: 4 });
      } finally {
        vi.useRealTimers();
      }
    });

    it("summarizes an open burst of backend errors when drained, without waiting for its timer", async () => {
      const lines: { msg: string; errors?: number }[] = [];
      const capture = pino({ level: "info" }, { write: (l: string) => lines.push(JSON.parse(l)) });
      target = new Target(exportConfig(), backend, port.maxSectors, capture);
      backend.failWith = "EIO";
      for (let i = 0; i < 3; i++) send(ata(A, AtaCmd.readSectorsExt, i, 1));
      await settle();
      expect(lines.map((l) => l.msg)).toEqual(["backend I/O error: answering ABRT"]);
      await target.drain();
      expect(lines.at(-1)).toMatchObject({ msg: "backend I/O errors", errors: 3 });
      expect(lines).toHaveLength(2);
    });

    it("caps sectors per request at the export's setting", async () => {
      make({ sectors: 1 });
      send(ata(A, AtaCmd.readSectorsExt, 0, 2));
      await settle();
      expect(lastAta().cmdStatus).toBe(0x41);
    });

    it("IDENTIFY returns the export's page", async () => {
      make({}, 4096 * 512);
      send(ata(A, AtaCmd.identifyDevice, 0, 1, { aflags: 0 }));
      await settle();
      const page = lastAta().data;
      expect(page.readBigUInt64LE(200)).toBe(4096n);
    });

    it("CHECK POWER MODE says active", () => {
      send(ata(A, AtaCmd.checkPowerMode, 0, 0, { aflags: 0 }));
      expect(lastAta().sectorCount).toBe(0xff);
      expect(lastAta().cmdStatus).toBe(0x40);
    });

    it("FLUSH CACHE EXT really flushes the backend", async () => {
      send(ata(A, AtaCmd.flushCacheExt, 0, 0, { aflags: 0 }));
      await settle();
      expect(backend.flushes).toBe(1);
      expect(lastAta().cmdStatus).toBe(0x40);
    });

    it("bounds in-flight requests by the queue length and counts the excess", async () => {
      backend.hold = true;
      for (let i = 0; i < 6; i++) send(ata(A, AtaCmd.readSectorsExt, i, 1));
      expect(target.inFlight).toBe(4);
      expect(target.stats.queueDrops).toBe(2);
      backend.release();
      await settle();
      expect(port.sent.length).toBe(4);
      expect(target.inFlight).toBe(0);
    });

    it("drain answers what is in flight, then takes nothing new", async () => {
      backend.hold = true;
      send(ata(A, AtaCmd.readSectorsExt, 0, 1));
      const drained = target.drain();
      send(ata(A, AtaCmd.readSectorsExt, 1, 1));
      backend.release();
      await drained;
      expect(port.sent.length).toBe(1);
      expect(target.inFlight).toBe(0);
    });
  });

  describe("group commit", () => {
    it("while a reload's replacement target drains the old one on the same backend, no sync covers more than the queue length", async () => {
      const b = new CommittingBackend(1 << 20);
      const write = (t: Target, lba: number) => {
        const frame = ata(A, AtaCmd.writeSectorsExt, lba, 1, {
          aflags: AtaFlag.lba48 | AtaFlag.write,
          data: Buffer.alloc(512, lba),
        });
        t.handle(port, frame, 0, frame.length, readMac(A, 0), false);
      };
      const old = new Target(exportConfig({ queueLength: 4 }), b, port.maxSectors, log);
      for (let i = 0; i < 4; i++) write(old, i);
      await settle();
      expect(b.heldSyncs).toHaveLength(1); // the first write's; three wait for the next
      const replacement = new Target(exportConfig({ queueLength: 4 }), b, port.maxSectors, log);
      for (let i = 0; i < 4; i++) write(replacement, 10 + i);
      await settle();
      expect(port.sent).toHaveLength(0); // nothing acknowledged before a sync covered it
      while (b.heldSyncs.length > 0) {
        b.heldSyncs.shift()!(null);
        await settle();
      }
      const replies = port.sent.map((m) => (m.kind === "ata" ? m.arg.cmdStatus : -1));
      expect(replies).toEqual(Array(8).fill(0x40));
      expect(b.commit.stats).toMatchObject({ syncs: 3, syncedWrites: 8, maxBatch: 4 });
    });
  });

  describe("query config", () => {
    it("reports buffer count, max sectors for the port, firmware and string", () => {
      send(config(A, ConfigCmd.read));
      const m = last();
      if (m.kind !== "config") throw new Error("kind");
      expect(m.arg).toMatchObject({ bufferCount: 4, maxSectors: 2, aoeVersion: 1 });
      expect(m.arg.firmware).toBeGreaterThan(0);
    });

    it("set, test, test prefix and force set follow r11", () => {
      send(config(A, ConfigCmd.set, "node1"));
      expect(last().isError).toBe(false);
      send(config(A, ConfigCmd.set, "node1")); // identical: allowed
      expect(last().isError).toBe(false);
      send(config(A, ConfigCmd.set, "node2"));
      expect(last()).toMatchObject({ isError: true, error: 4 });
      const before = port.sent.length;
      send(config(A, ConfigCmd.test, "node"));
      expect(port.sent.length).toBe(before); // failed test: silence
      send(config(A, ConfigCmd.testPrefix, "node"));
      expect(port.sent.length).toBe(before + 1);
      send(config(A, ConfigCmd.testPrefix, "node12"));
      expect(port.sent.length).toBe(before + 1);
      send(config(A, ConfigCmd.test, "node1"));
      expect(port.sent.length).toBe(before + 2);
      send(config(A, ConfigCmd.forceSet, "node2"));
      const m = last();
      if (m.kind !== "config") throw new Error("kind");
      expect(m.arg.config.toString()).toBe("node2");
    });

    it("rejects a config string over 1024 bytes", () => {
      send(config(A, ConfigCmd.set, "x".repeat(1025)));
      expect(last()).toMatchObject({ isError: true, error: 2 });
    });

    it("answers broadcasts with its own shelf/slot unless broadcast is off", () => {
      send(config(A, ConfigCmd.read, "", 0xffff, 0xff), A, true);
      expect(last()).toMatchObject({ shelf: 3, slot: 1 });
      make({ broadcast: false });
      send(config(A, ConfigCmd.read, "", 0xffff, 0xff), A, true);
      expect(port.sent.length).toBe(0);
      send(config(A, ConfigCmd.read));
      expect(port.sent.length).toBe(1);
    });
  });

  describe("MAC mask list", () => {
    it("edits and reads the list; other MACs are then ignored", () => {
      send(
        mask(A, MaskCmd.edit, [
          { dcmd: MaskDcmd.add, mac: A },
          { dcmd: MaskDcmd.add, mac: B },
        ]),
      );
      send(mask(A, MaskCmd.edit, [{ dcmd: MaskDcmd.delete, mac: B }]));
      send(mask(A, MaskCmd.read));
      const m = last();
      if (m.kind !== "macmask") throw new Error("kind");
      expect(m.arg.merror).toBe(0);
      expect(m.arg.directives.map((d) => d.mac.toString("hex"))).toEqual([A.toString("hex")]);
      const before = port.sent.length;
      send(config(B, ConfigCmd.read), B);
      expect(port.sent.length).toBe(before);
      expect(target.stats.maskDenied).toBe(1);
    });

    it("reports a bad directive with its index", () => {
      send(
        mask(A, MaskCmd.edit, [
          { dcmd: MaskDcmd.add, mac: B },
          { dcmd: 9, mac: A },
        ]),
      );
      const m = last();
      if (m.kind !== "macmask") throw new Error("kind");
      expect(m.arg.merror).toBe(2);
      expect(m.arg.directives.length).toBe(1);
    });
  });

  describe("reserve/release", () => {
    it("keeps other MACs from reading and writing but not from discovery", async () => {
      send(reserve(A, ReserveCmd.set, [A]));
      expect(last().isError).toBe(false);
      send(ata(B, AtaCmd.readSectorsExt, 0, 1), B);
      expect(last()).toMatchObject({ isError: true, error: 6 });
      send(reserve(B, ReserveCmd.set, [B]), B);
      expect(last()).toMatchObject({ isError: true, error: 6 });
      send(config(B, ConfigCmd.read), B);
      expect(last()).toMatchObject({ isError: false, kind: "config" });
      send(ata(A, AtaCmd.readSectorsExt, 0, 1));
      await settle();
      expect(lastAta().cmdStatus).toBe(0x40);
      send(reserve(B, ReserveCmd.forceSet, [B]), B);
      const m = last();
      if (m.kind !== "reserve") throw new Error("kind");
      expect(m.arg.macs.map((b) => b.toString("hex"))).toEqual([B.toString("hex")]);
      send(reserve(B, ReserveCmd.set, []), B); // release
      send(ata(A, AtaCmd.readSectorsExt, 0, 1));
      await settle();
      expect(lastAta().cmdStatus).toBe(0x40);
    });
  });

  describe("access and unknown commands", () => {
    it("never answers a denied MAC", () => {
      make({ acl: { policy: "accept", accept: [], deny: ["02:00:00:00:0b:bb"] } });
      send(config(B, ConfigCmd.read), B);
      send(ata(B, AtaCmd.identifyDevice, 0, 1), B);
      expect(port.sent.length).toBe(0);
      expect(target.stats.aclDenied).toBe(2);
      send(config(A, ConfigCmd.read));
      expect(port.sent.length).toBe(1);
    });

    it("policy reject admits only the accept list", () => {
      make({ acl: { policy: "reject", accept: ["02:00:00:00:0a:aa"], deny: [] } });
      send(config(B, ConfigCmd.read), B);
      expect(port.sent.length).toBe(0);
      send(config(A, ConfigCmd.read));
      expect(port.sent.length).toBe(1);
    });

    it("answers unknown commands with AoE error 1 and ignores vendor commands", () => {
      const unknown = serialize({ ...header(A, 5), kind: "other", payload: Buffer.alloc(0) });
      send(unknown);
      expect(last()).toMatchObject({ isError: true, error: 1, command: 5 });
      const before = port.sent.length;
      send(serialize({ ...header(A, 0xf1), kind: "other", payload: Buffer.alloc(0) }));
      expect(port.sent.length).toBe(before);
    });

    it("announces by broadcast, or by unicast to accepted MACs under policy reject", () => {
      target.announce(port);
      expect(last().dst.toString("hex")).toBe("ffffffffffff");
      expect(last()).toMatchObject({ kind: "config", tag: 0, response: true, shelf: 3, slot: 1 });
      make({ acl: { policy: "reject", accept: ["02:00:00:00:0a:aa"], deny: [] } });
      target.announce(port);
      expect(port.sent.map((m) => m.dst.toString("hex"))).toEqual([A.toString("hex")]);
      make({ broadcast: false });
      target.announce(port);
      expect(port.sent).toHaveLength(0);
    });
  });
});
