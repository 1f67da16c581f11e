/**
 * Packet layer tests on veth pairs (need root: CAP_NET_RAW and CAP_NET_ADMIN).
 * Frames only ever go over the veth pairs these tests create.
 */
import { execFileSync, spawnSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  constants as fsConstants,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  alignedBuffer,
  blockDeviceSize,
  bufferAddress,
  logicalBlockSize,
} from "../../src/io/blockdev.js";
import { loadNative, nativeAddonCandidates } from "../../src/native/addon.js";
import { PacketSocket } from "../../src/net/packet-socket.js";
import {
  createVethPair,
  execInNetns,
  linkInfo,
  runInNetns,
  setLinkUp,
  type VethPair,
} from "../helpers/net.js";
import { waitFor } from "../helpers/wait.js";

const ETH_P_AOE = 0x88a2;
const BROADCAST = Buffer.alloc(6, 0xff);

function macString(mac: Buffer): string {
  return [...mac].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/** An Ethernet frame of `len` bytes whose payload encodes `seq`. */
function makeFrame(dst: Buffer, src: Buffer, type: number, len: number, seq: number): Buffer {
  const f = Buffer.alloc(len);
  dst.copy(f, 0);
  src.copy(f, 6);
  f.writeUInt16BE(type, 12);
  for (let i = 14; i < len; i++) f[i] = (i * 131 + seq * 17) & 0xff;
  if (len >= 18) f.writeUInt32BE(seq, 14);
  return f;
}

/** Start `sock` and copy every frame it receives into the returned array. `quiet`: see start(). */
function collect(sock: PacketSocket, quiet?: () => boolean): Buffer[] {
  const got: Buffer[] = [];
  sock.start(
    (buf, off, len) => {
      got.push(Buffer.from(buf.subarray(off, off + len)));
    },
    undefined,
    quiet,
  );
  return got;
}

/**
 * Sends a frame from `from` to `to` and waits until `at` (collecting on `to`) has it. A
 * receive ring is walked in order, so once it is there, every frame the ring took before it has
 * been delivered or skipped: "nothing else arrived" can then be asserted, without sleeping.
 */
async function roundTrip(from: PacketSocket, to: PacketSocket, at: Buffer[], seq: number) {
  const marker = makeFrame(to.mac, from.mac, ETH_P_AOE, 60, seq);
  expect(from.send(marker)).toBe(true);
  from.flush();
  await waitFor(`marker frame ${seq} at ${to.ifname}`, () => at.some((f) => f.equals(marker)));
  return marker;
}

describe("PacketSocket on a veth pair (MTU 1500)", () => {
  let pair: VethPair;
  const open: PacketSocket[] = [];
  const openSock = (ifname: string, opts?: Parameters<typeof PacketSocket.open>[1]) => {
    const s = PacketSocket.open(ifname, opts);
    open.push(s);
    return s;
  };

  beforeAll(() => {
    pair = createVethPair();
  });
  afterAll(() => {
    for (const s of open) s.close();
    pair?.destroy();
  });

  it("reports the interface's ifindex, MAC and MTU as `ip link` does", () => {
    const s = openSock(pair.a);
    const info = linkInfo(pair.a);
    expect(s.ifname).toBe(pair.a);
    expect(s.ifindex).toBe(info.ifindex);
    expect(s.mac.length).toBe(6);
    expect(macString(s.mac)).toBe(info.mac);
    expect(s.mtu).toBe(1500);
    expect(s.maxFrame).toBe(1514);
    expect(s.rxFrameSize).toBe(2048);
    expect(s.txFrameSize).toBe(2048);
    expect(s.rxFrameCount).toBe((8 * 1024 * 1024) / 2048);
    expect(s.txFrameCount).toBe((4 * 1024 * 1024) / 2048);
  });

  it("delivers 1000 frames sent in batches intact and in order, and not to the sender", async () => {
    const sa = openSock(pair.a);
    const sb = openSock(pair.b);
    const atA = collect(sa);
    const atB = collect(sb);
    const sent: Buffer[] = [];
    let seq = 0;
    for (let batch = 0; batch < 20; batch++) {
      for (let i = 0; i < 50; i++, seq++) {
        const len = 60 + ((seq * 97) % (1514 - 60 + 1));
        const f = makeFrame(sb.mac, sa.mac, ETH_P_AOE, len, seq);
        const slot = sa.txAcquire();
        expect(slot).not.toBeNull();
        f.copy(slot!);
        sa.txCommit(len);
        sent.push(f);
      }
      expect(sa.flush()).toBe(0);
    }
    // A marker after the 1000 (B's ring is in wire order), and one back to A after its own frames.
    const toB = await roundTrip(sa, sb, atB, 1000);
    const toA = await roundTrip(sb, sa, atA, 1001);
    expect(atB.length).toBe(sent.length + 1);
    for (let i = 0; i < sent.length; i++) {
      if (!atB[i]!.equals(sent[i]!)) throw new Error(`frame ${i} differs`);
    }
    expect(atB[sent.length]!.equals(toB)).toBe(true);
    expect(atA).toEqual([toA]);
    const st = sb.stats();
    expect(st.rxFrames).toBe(1001);
    expect(st.rxDrops).toBe(0);
    expect(sa.stats().txFrames).toBe(1001);
    sa.stop();
    sb.stop();
  });

  it("pads short frames to 60 bytes with zeros", async () => {
    const sa = openSock(pair.a);
    const sb = openSock(pair.b);
    const atB = collect(sb);
    const short = makeFrame(sb.mac, sa.mac, ETH_P_AOE, 20, 7);
    expect(sa.send(short)).toBe(true);
    const viaSlot = makeFrame(sb.mac, sa.mac, ETH_P_AOE, 14, 8);
    const slot = sa.txAcquire()!;
    slot.fill(0xee); // stale bytes must not leak into the padding
    viaSlot.copy(slot);
    sa.txCommit(14);
    sa.flush();
    await waitFor("both short frames at B", () => atB.length >= 2);
    expect(atB[0]!.length).toBe(60);
    expect(atB[0]!.subarray(0, 20).equals(short)).toBe(true);
    expect(atB[0]!.subarray(20).every((b) => b === 0)).toBe(true);
    expect(atB[1]!.length).toBe(60);
    expect(atB[1]!.subarray(0, 14).equals(viaSlot)).toBe(true);
    expect(atB[1]!.subarray(14).every((b) => b === 0)).toBe(true);
    sb.stop();
  });

  it("does not deliver a socket's own frames, even to another socket on the same interface", async () => {
    const sender = openSock(pair.a);
    const sameIf = openSock(pair.a);
    const sb = openSock(pair.b);
    const atSender = collect(sender);
    const atSameIf = collect(sameIf);
    const atB = collect(sb);
    for (let i = 0; i < 10; i++) sender.send(makeFrame(BROADCAST, sender.mac, ETH_P_AOE, 64, i));
    sender.flush();
    await waitFor("the 10 broadcasts at B", () => atB.length >= 10);
    // B answers both sockets on A; their rings took any copy of the broadcasts before that.
    const back = await roundTrip(sb, sender, atSender, 10);
    await waitFor("the answer at the other socket on A", () => atSameIf.length > 0);
    expect(atSender).toEqual([back]);
    expect(atSameIf).toEqual([back]);
    expect(atB.length).toBe(10);
    sender.stop();
    sameIf.stop();
    sb.stop();
  });

  it("does not deliver other EtherTypes, or unicast frames for another MAC", async () => {
    const sa = openSock(pair.a);
    const sb = openSock(pair.b);
    const atB = collect(sb);
    const before = sb.stats();
    sa.send(makeFrame(sb.mac, sa.mac, 0x88b5, 100, 1)); // IEEE local experimental
    sa.send(makeFrame(sb.mac, sa.mac, 0x0800, 100, 2));
    sa.send(makeFrame(Buffer.from([2, 0, 0, 0, 0, 0x99]), sa.mac, ETH_P_AOE, 100, 3));
    const marker = makeFrame(BROADCAST, sa.mac, ETH_P_AOE, 100, 4);
    sa.send(marker);
    sa.flush();
    // The marker went last on the same wire: the ring walked the others before it.
    await waitFor("the marker at B", () => atB.length >= 1);
    expect(atB.length).toBe(1);
    expect(atB[0]!.equals(marker)).toBe(true);
    const after = sb.stats();
    expect(after.rxIgnored - before.rxIgnored).toBe(1); // the PACKET_OTHERHOST one
    sb.stop();
  });

  it("reports a full TX ring, and frees its slots once flushed", async () => {
    const sa = PacketSocket.open(pair.a, { txRingBytes: 8192, rxRingBytes: 4096 });
    open.push(sa);
    expect(sa.txFrameCount).toBe(4);
    for (let i = 0; i < 4; i++) {
      expect(sa.send(makeFrame(BROADCAST, sa.mac, ETH_P_AOE, 60, i))).toBe(true);
    }
    expect(sa.txAcquire()).toBeNull();
    expect(sa.send(makeFrame(BROADCAST, sa.mac, ETH_P_AOE, 60, 5))).toBe(false);
    expect(sa.stats().txFull).toBe(2);
    const slotFree = () => {
      sa.flush();
      return waitFor("a free TX slot", () => sa.txAcquire() !== null);
    };
    await slotFree();
    expect(sa.txAcquire()).not.toBeNull();
    // Lapping the ring several times works.
    for (let i = 0; i < 40; i++) {
      if (!sa.send(makeFrame(BROADCAST, sa.mac, ETH_P_AOE, 60, i))) {
        await slotFree();
        i--;
      }
      if (i % 3 === 0) sa.flush();
    }
    sa.flush();
    expect(sa.stats().txFrames).toBe(44);
  });

  it("counts kernel RX ring drops (accumulated across stats() calls)", async () => {
    const sa = openSock(pair.a);
    const sb = PacketSocket.open(pair.b, { rxRingBytes: 8192 }); // 4 slots, not started
    open.push(sb);
    expect(sb.rxFrameCount).toBe(4);
    // 10 frames on a ring of 4 that nobody reads: 4 kept, 6 dropped, and no more, once all arrived.
    const dropsAtLeast = (n: number) => () => {
      const d = sb.stats().rxDrops;
      return d >= n && d;
    };
    for (let i = 0; i < 10; i++) sa.send(makeFrame(sb.mac, sa.mac, ETH_P_AOE, 100, i));
    sa.flush();
    expect(await waitFor("6 drops on the full ring", dropsAtLeast(6))).toBe(6);
    for (let i = 0; i < 3; i++) sa.send(makeFrame(sb.mac, sa.mac, ETH_P_AOE, 100, 100 + i));
    sa.flush();
    expect(await waitFor("3 more drops", dropsAtLeast(9))).toBe(9);
    const atB = collect(sb);
    await waitFor("the 4 frames the ring kept", () => atB.length >= 4);
    expect(atB.map((f) => f.readUInt32BE(14))).toEqual([0, 1, 2, 3]);
    // After draining, the ring takes frames again.
    sa.send(makeFrame(sb.mac, sa.mac, ETH_P_AOE, 100, 200));
    sa.flush();
    await waitFor("a frame after draining", () => atB.length >= 5);
    expect(atB[4]!.readUInt32BE(14)).toBe(200);
    sb.close();
  });

  it("keeps working across a link down/up, reporting ENETDOWN", async () => {
    const sa = openSock(pair.a);
    const sb = openSock(pair.b);
    const errors: string[] = [];
    sb.onError((e) => errors.push((e as NodeJS.ErrnoException).code ?? e.message));
    const atB = collect(sb);
    setLinkUp(pair.b, false);
    await waitFor("an error for the downed link", () => errors.length >= 1);
    expect(errors[0]).toBe("ENETDOWN");
    setLinkUp(pair.b, true);
    await waitFor("both ends up", () => linkInfo(pair.a).up && linkInfo(pair.b).up);
    // Carrier may take a moment after up; resend until one arrives.
    await waitFor("a frame through the link brought back up", () => {
      sa.send(makeFrame(sb.mac, sa.mac, ETH_P_AOE, 60, 42));
      sa.flush();
      return atB.length >= 1;
    });
    expect(atB[0]!.readUInt32BE(14)).toBe(42);
    sb.stop();
  });

  it("busy polling: never watches while not quiet, nor after a lone frame; every frame arrives once, in order", async () => {
    const sa = openSock(pair.a);
    // Not quiet (replies still to come): never watches.
    const loud = openSock(pair.b, { busyPollUs: 1000 });
    const atLoud = collect(loud, () => false);
    for (let seq = 0; seq < 20; seq++) sa.send(makeFrame(loud.mac, sa.mac, ETH_P_AOE, 60, seq));
    sa.flush();
    await roundTrip(sa, loud, atLoud, 20);
    expect(loud.stats()).toMatchObject({ rxFrames: 21, busyPollHits: 0, busyPollMisses: 0 });
    loud.close();

    const sb = openSock(pair.b, { busyPollUs: 1000 });
    const atB = collect(sb, () => true);
    // One frame after a long quiet: a watch would not have caught it, so none follows.
    await roundTrip(sa, sb, atB, 100);
    expect(sb.stats()).toMatchObject({ busyPollHits: 0, busyPollMisses: 0 });
    // Frames in batches: whoever hands them over (a wake-up or a watch), each arrives once.
    const sent: Buffer[] = [];
    for (let batch = 0; batch < 10; batch++) {
      for (let i = 0; i < 20; i++) {
        const f = makeFrame(sb.mac, sa.mac, ETH_P_AOE, 60 + i, 101 + sent.length);
        sa.send(f);
        sent.push(f);
      }
      sa.flush();
    }
    await roundTrip(sa, sb, atB, 999);
    expect(atB.slice(1, -1)).toEqual(sent);
    const st = sb.stats();
    expect(st.rxFrames).toBe(sent.length + 2);
    expect(st.busyPollHits).toBeLessThanOrEqual(st.rxFrames);
    sb.stop();
  });

  it("busy polling: yields the CPU once before a watch after replies built outside a batch, never after a batch", async () => {
    // The initiator such a reply woke may be waiting for this CPU; whether it
    // then runs is the scheduler's choice, so what is checked is that each of
    // those watches offers the CPU first, once, and no other watch does.
    const yields = vi.spyOn(loadNative(), "schedYield");
    const sa = openSock(pair.a);
    const sb = openSock(pair.b, { busyPollUs: 1000 });
    // Declared out here so that a failed expectation still ends the exchange.
    let mode: "in batch" | "outside" | "stopped" = "in batch";
    try {
      const watches = () => sb.stats().busyPollHits + sb.stats().busyPollMisses;
      // One frame at a time, the next sent once the last is answered: one
      // that comes within the budget of the idle moment before it starts a
      // watch (which misses: nothing sends while this thread watches).
      let seq = 0;
      let pending = false;
      const next = () => {
        if (mode === "stopped") return;
        sa.send(makeFrame(sb.mac, sa.mac, ETH_P_AOE, 60, seq++));
        sa.flush();
      };
      sb.start(
        () => {
          if (mode === "in batch") {
            setImmediate(next); // answered in its batch, as from memory
            return;
          }
          pending = true; // answered later, outside the batch, as after a disk read
          setImmediate(() => {
            pending = false;
            sb.repliesSent();
            next();
          });
        },
        undefined,
        () => !pending,
      );
      next();
      await waitFor("three watches after batches", () => watches() >= 3);
      expect(yields).not.toHaveBeenCalled();
      mode = "outside";
      const before = watches();
      await waitFor(
        "three watches after replies built outside a batch",
        () => watches() >= before + 3,
      );
      mode = "stopped";
      await waitFor("the last reply", () => !pending);
      expect(yields).toHaveBeenCalledTimes(watches() - before);
    } finally {
      mode = "stopped";
      sb.stop();
      yields.mockRestore();
    }
  });

  it("close() is idempotent and leaves no usable views behind", () => {
    const s = PacketSocket.open(pair.a);
    const slot = s.txAcquire()!;
    expect(slot.length).toBe(1514);
    s.close();
    s.close();
    expect(s.closed).toBe(true);
    expect(slot.length).toBe(0); // the ring ArrayBuffer was detached before munmap
    expect(s.txAcquire()).toBeNull();
    expect(s.flush()).toBe(0);
    expect(() => s.start(() => {})).toThrow(/closed/);
    expect(s.stats().txFrames).toBe(0);
  });
});

describe("PacketSocket errors", () => {
  it("opening a missing interface throws a clear error", () => {
    expect(() => PacketSocket.open("aoednosuch0")).toThrow("aoednosuch0: no such interface");
    // Same message from the socket path itself (maxFrame given, no MTU lookup).
    let err: NodeJS.ErrnoException | undefined;
    try {
      PacketSocket.open("aoednosuch0", { maxFrame: 1514 });
    } catch (e) {
      err = e as NodeJS.ErrnoException;
    }
    expect(err?.message).toBe("aoednosuch0: no such interface");
    expect(err?.code).toBe("ENODEV");
  });

  it("rejects invalid names and options", () => {
    expect(() => PacketSocket.open("x".repeat(16))).toThrow(/invalid interface name/);
    expect(() => PacketSocket.open("lo", { maxFrame: 10 })).toThrow(RangeError);
    expect(() => PacketSocket.open("lo", { rxRingBytes: 0 })).toThrow(RangeError);
  });

  it("the poll handle does not keep the process alive after close() or with polling off", () => {
    const pair = createVethPair();
    try {
      const addon = nativeAddonCandidates().find((p) => existsSync(p));
      expect(addon).toBeDefined();
      const script = (last: string) => `
        const a = require(${JSON.stringify(addon)});
        const h = a.openPacket(${JSON.stringify(pair.a)}, 65536, 65536, 2048);
        h.startPoll(() => {}, true);
        ${last}
      `;
      for (const last of ["h.close(); h.close();", "h.setPollEvents(false);"]) {
        const r = spawnSync(process.execPath, ["-e", script(last)], { timeout: 5000 });
        expect(r.error).toBeUndefined();
        expect(r.status).toBe(0);
      }
      // And it does keep it alive while polling (killed by the timeout).
      const alive = spawnSync(process.execPath, ["-e", script("")], { timeout: 500 });
      expect(alive.signal).toBe("SIGTERM");
    } finally {
      pair.destroy();
    }
  });
});

describe("PacketSocket with MTU 9000", () => {
  let pair: VethPair;
  beforeAll(() => {
    pair = createVethPair({ mtu: 9000 });
  });
  afterAll(() => pair?.destroy());

  it("passes 9014-byte frames intact", async () => {
    const sa = PacketSocket.open(pair.a);
    const sb = PacketSocket.open(pair.b);
    try {
      expect(sa.mtu).toBe(9000);
      expect(sa.maxFrame).toBe(9014);
      expect(sa.rxFrameSize).toBe(16384);
      const atB = collect(sb);
      const frames = [9014, 9013, 4000, 60].map((len, i) =>
        makeFrame(sb.mac, sa.mac, ETH_P_AOE, len, i),
      );
      for (const f of frames) expect(sa.send(f)).toBe(true);
      sa.flush();
      await waitFor("the 4 jumbo-MTU frames", () => atB.length >= frames.length);
      for (let i = 0; i < frames.length; i++) expect(atB[i]!.equals(frames[i]!)).toBe(true);
      expect(() => sa.send(Buffer.alloc(9015))).toThrow(RangeError);
    } finally {
      sa.close();
      sb.close();
    }
  });
});

describe("block helpers", () => {
  it("alignedBuffer returns zeroed memory at the requested alignment", () => {
    for (const [size, align] of [
      [8192, 4096],
      [512, 512],
      [100, 65536],
      [0, 4096],
    ] as const) {
      const b = alignedBuffer(size, align);
      expect(b.length).toBe(size);
      expect(bufferAddress(b) % BigInt(align)).toBe(0n);
      expect(b.every((x) => x === 0)).toBe(true);
    }
    expect(() => alignedBuffer(4096, 3000)).toThrow(RangeError);
    expect(() => alignedBuffer(-1, 4096)).toThrow(RangeError);
  });

  it("blockDeviceSize on a regular file is a clear error", () => {
    const dir = mkdtempSync(join(tmpdir(), "aoed-blk-"));
    try {
      const file = join(dir, "img");
      writeFileSync(file, Buffer.alloc(4096));
      const fd = openSync(file, "r");
      try {
        expect(() => blockDeviceSize(fd)).toThrow(
          `fd ${fd} is not a block device (a regular file)`,
        );
        expect(() => logicalBlockSize(fd)).toThrow(/not a block device/);
      } finally {
        closeSync(fd);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const haveLosetup = spawnSync("losetup", ["--version"]).status === 0;
  it.skipIf(!haveLosetup)("blockDeviceSize and O_DIRECT on a loop device", (ctx) => {
    const dir = mkdtempSync(join(tmpdir(), "aoed-blk-"));
    let loop: string | null = null;
    try {
      const file = join(dir, "img");
      const img = Buffer.alloc(4 * 1024 * 1024);
      for (let i = 0; i < img.length; i += 512) img.writeUInt32BE(i / 512, i);
      writeFileSync(file, img);
      try {
        loop = execFileSync("losetup", ["--find", "--show", file], { encoding: "utf8" }).trim();
      } catch {
        ctx.skip(); // no loop devices in this environment
        return;
      }
      const fd = openSync(loop, fsConstants.O_RDONLY | fsConstants.O_DIRECT);
      try {
        expect(blockDeviceSize(fd)).toBe(4 * 1024 * 1024);
        const lbs = logicalBlockSize(fd);
        expect(lbs).toBe(512);
        const buf = alignedBuffer(4096, 4096);
        expect(readSync(fd, buf, 0, 4096, 8192)).toBe(4096);
        expect(buf.readUInt32BE(0)).toBe(16);
        expect(buf.readUInt32BE(512)).toBe(17);
      } finally {
        closeSync(fd);
      }
    } finally {
      if (loop) spawnSync("losetup", ["-d", loop]);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("test helpers", () => {
  it("createVethPair({ netns: true }) puts B in a namespace that runInNetns reaches", async () => {
    const pair = createVethPair({ netns: true, mtu: 4000 });
    const ns = pair.netns!;
    let sock: PacketSocket | null = null;
    try {
      expect(ns).toMatch(/^aoedt-/);
      expect(existsSync(`/sys/class/net/${pair.b}`)).toBe(false);
      const info = linkInfo(pair.b, ns);
      expect(info.mtu).toBe(4000);
      expect(info.up).toBe(true);
      expect(linkInfo(pair.a).mtu).toBe(4000);
      const v6 = `/proc/sys/net/ipv6/conf/${pair.b}/disable_ipv6`;
      if (existsSync("/proc/sys/net/ipv6")) {
        expect(execInNetns(ns, ["cat", v6]).trim()).toBe("1");
      }

      // A receiver inside the namespace, using the addon directly.
      const addon = nativeAddonCandidates().find((p) => existsSync(p));
      const script = `
        const a = require(${JSON.stringify(addon)});
        const h = a.openPacket(${JSON.stringify(pair.b)}, 65536, 65536, 8192);
        const i32 = new Int32Array(h.rxRing), u16 = new Uint16Array(h.rxRing);
        h.startPoll(() => {
          if ((Atomics.load(i32, 0) & 1) === 0) return;
          const len = i32[1], off = u16[6];
          process.stdout.write(Buffer.from(h.rxRing, off, len).toString("hex") + "\\n");
          h.close();
        }, true);
        process.stdout.write("ready\\n");
        setTimeout(() => process.exit(3), 5000).unref();
      `;
      const child = runInNetns(ns, [process.execPath, "-e", script]);
      let out = "";
      child.stdout?.on("data", (d: Buffer) => {
        out += d.toString();
      });
      const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
      await waitFor("the receiver in the namespace", () => out.startsWith("ready\n"));
      sock = PacketSocket.open(pair.a);
      const f = makeFrame(BROADCAST, sock.mac, ETH_P_AOE, 3000, 9);
      await waitFor("the frame in the namespace", () => {
        sock!.send(f);
        sock!.flush();
        return out.split("\n").length > 2;
      });
      expect(await exited).toBe(0);
      expect(out.split("\n")[1]).toBe(f.toString("hex"));
    } finally {
      sock?.close();
      pair.destroy();
    }
    expect(existsSync(`/sys/class/net/${pair.a}`)).toBe(false);
    expect(execFileSync("ip", ["netns", "list"], { encoding: "utf8" })).not.toContain(ns);
  });
});
