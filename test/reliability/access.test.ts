/**
 * Access control on real frames, beyond test/integration/acl.test.ts (which
 * covers IDENTIFY, read and the read forms of config/mask/reserve): two
 * initiators with their own MACs (macvlans on one veth end) and a raw sniffer
 * on each that counts every AoE response arriving for it.
 *
 * - A MAC denied by the config (deny list, or policy reject) gets zero frames
 *   back for every command: ATA write, flush, CHECK POWER, unknown ATA
 *   commands, every config subcommand, mask and reserve edits, unknown and
 *   vendor AoE commands, unicast and broadcast discovery; none of them changes
 *   the export (its file, config string, mask, reservation).
 * - A reserved export answers other MACs' reads, writes and flushes with AoE
 *   error 6 (and leaves the data alone) while still answering their
 *   discovery; release and `aoectl clear reserve` let them in again.
 * - A MAC mask that admits only a MAC that is not ours locks everyone out,
 *   discovery included; `aoectl clear macmask EXPORT` lets us in again.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AoeClient,
  AoeErrorReply,
  AtaErrorReply,
  type TargetInfo,
  TimeoutError,
} from "../../src/client/client.js";
import { controlRequest } from "../../src/control/client.js";
import type { StatsResult, StatusResult } from "../../src/control/protocol.js";
import { PacketSocket } from "../../src/net/packet-socket.js";
import {
  AtaCmd,
  AtaFlag,
  ConfigCmd,
  MaskCmd,
  MaskDcmd,
  ReserveCmd,
} from "../../src/protocol/constants.js";
import type { Message } from "../../src/protocol/messages.js";
import { aoectl } from "../helpers/aoectl.js";
import { type Daemon, startDaemon } from "../helpers/daemon.js";
import { createMacvlan, type Macvlan } from "../helpers/macvlan.js";
import { createVethPair, type VethPair } from "../helpers/net.js";
import { discoverUntil, waitFor } from "../helpers/wait.js";

const MiB = 1024 * 1024;
const ME = "02:a1:00:00:00:01";
const OTHER = "02:a2:00:00:00:02";
const NOBODY = "02:00:00:00:00:99";
const mac = (hex: string) => Buffer.from(hex.replace(/:/g, ""), "hex");
/** A discovery collects answers for this long. */
const DISCOVERY_MS = 300;
/** For discoverUntil: the discovery found `slot`. */
const has = (slot: number) => (found: TargetInfo[]) => found.some((x) => x.slot === slot);

/** Counts AoE responses arriving on an interface (every copy, whoever asked). */
class Sniffer {
  private readonly sock: PacketSocket;
  readonly frames: Buffer[] = [];
  constructor(ifname: string) {
    this.sock = PacketSocket.open(ifname, { rxRingBytes: 1 << 20, txRingBytes: 1 << 16 });
    this.sock.start((buf, off, len) => {
      if (len >= 24 && buf[off + 14]! & 0x08)
        this.frames.push(Buffer.from(buf.subarray(off, off + len)));
    });
  }
  /** Responses from shelf.slot since `from`. */
  from(shelf: number, slot: number, from = 0): Buffer[] {
    return this.frames.slice(from).filter((f) => f.readUInt16BE(16) === shelf && f[18] === slot);
  }
  close(): void {
    this.sock.close();
  }
}

// Once with the main thread serving everything, once with reads and writes on two worker threads.
describe.each([0, 2])("access: denied MACs, reservations, MAC masks (workers: %i)", (workers) => {
  let net: VethPair;
  let mvMe: Macvlan;
  let mvOther: Macvlan;
  let dir: string;
  let sock: string;
  let daemon: Daemon;
  let me: AoeClient;
  let meOnce: AoeClient;
  let other: AoeClient;
  let sniffMe: Sniffer;
  const img = (name: string) => path.join(dir, `${name}.img`);
  let e61: TargetInfo; // denies ME
  let e62: TargetInfo; // policy reject, accepts OTHER only
  let e63: TargetInfo; // reservations
  let e64: TargetInfo; // MAC mask

  beforeAll(async () => {
    net = createVethPair({ netns: true, prefix: "ac" });
    mvMe = createMacvlan(net.a, ME);
    mvOther = createMacvlan(net.a, OTHER);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-access-"));
    sock = path.join(dir, "aoed.sock");
    const exp = (name: string, slot: number, extra = "") => {
      fs.writeFileSync(img(name), Buffer.alloc(1 * MiB, slot));
      return `  - name: ${name}\n    path: ${img(name)}\n    shelf: 6\n    slot: ${slot}\n    interfaces: [${net.b}]\n${extra}`;
    };
    fs.writeFileSync(
      path.join(dir, "aoed.yaml"),
      `workers: ${workers}\ncontrol-socket: ${sock}\nmetrics: false\nexports:\n${exp("denied", 1, `    deny: [${ME}]\n`)}${exp(
        "rejected",
        2,
        `    policy: reject\n    accept: [${OTHER}]\n`,
      )}${exp("reserved", 3)}${exp("masked", 4)}`,
    );
    sniffMe = new Sniffer(mvMe.name);
    daemon = await startDaemon(["--config", path.join(dir, "aoed.yaml")], { netns: net.netns });
    // Patient clients for what must be answered, however loaded the machine;
    // one that tries once, briefly, for what must not be (one frame per command).
    me = AoeClient.open(mvMe.name, { timeoutMs: 500, tries: 6 });
    meOnce = AoeClient.open(mvMe.name, { timeoutMs: 150, tries: 1 });
    other = AoeClient.open(mvOther.name, { timeoutMs: 500, tries: 6 });
    const found = await other.discover({ shelf: 6, timeoutMs: 400 });
    expect(found.map((x) => x.slot)).toEqual([1, 2, 3, 4]);
    [e61, e62, e63, e64] = found as [TargetInfo, TargetInfo, TargetInfo, TargetInfo];
  });

  afterAll(async () => {
    me?.close();
    meOnce?.close();
    other?.close();
    sniffMe?.close();
    const code = await daemon?.stop();
    mvMe?.destroy();
    mvOther?.destroy();
    net?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    expect(code).toBe(0);
  });

  const exportState = async (name: string) =>
    (await controlRequest<StatusResult>(sock, { cmd: "status" })).exports.find(
      (x) => x.name === name,
    )!.state;

  /** A counter of the export in `aoectl stats` (workers' counts included). */
  const counter = async (name: string, key: "aclDenied" | "maskDenied") =>
    (await controlRequest<StatsResult>(sock, { cmd: "stats" })).exports.find(
      (x) => x.name === name,
    )![key];

  /**
   * Every command an initiator can send, by name, each started on demand: a
   * promise that settles with the reply or an error. Each sends one frame
   * that reaches the export when the client tries once.
   */
  function everyCommand(c: AoeClient, target: TargetInfo): [string, () => Promise<unknown>][] {
    const ata = (cmdStatus: number, aflags = 0, sectorCount = 1, data = Buffer.alloc(0)) =>
      c.ata(target, { aflags, sectorCount, cmdStatus, lba: 0, data });
    const raw = (command: number) =>
      c.send(
        (tag): Message => ({
          dst: target.macBytes,
          src: c.mac,
          response: false,
          isError: false,
          error: 0,
          shelf: target.shelf,
          slot: target.slot,
          command,
          tag,
          kind: "other",
          payload: Buffer.alloc(8),
        }),
      );
    return [
      ["identify", () => ata(AtaCmd.identifyDevice)],
      ["read ext", () => ata(AtaCmd.readSectorsExt, AtaFlag.lba48, 2)],
      ["read", () => ata(AtaCmd.readSectors, 0, 1)],
      [
        "write ext",
        () =>
          ata(AtaCmd.writeSectorsExt, AtaFlag.lba48 | AtaFlag.write, 2, Buffer.alloc(1024, 0xee)),
      ],
      ["write", () => ata(AtaCmd.writeSectors, AtaFlag.write, 1, Buffer.alloc(512, 0xee))],
      ["flush ext", () => ata(AtaCmd.flushCacheExt, 0, 0)],
      ["flush", () => ata(AtaCmd.flushCache, 0, 0)],
      ["check power", () => ata(AtaCmd.checkPowerMode, 0, 0)],
      ["smart", () => ata(0xb0)], // unsupported: ABRT
      ["config read", () => c.config(target, ConfigCmd.read)],
      ["config test", () => c.config(target, ConfigCmd.test, "")],
      ["config test prefix", () => c.config(target, ConfigCmd.testPrefix, "")],
      ["config set", () => c.config(target, ConfigCmd.set, "mine")],
      ["config force set", () => c.config(target, ConfigCmd.forceSet, "mine")],
      ["mask read", () => c.macMask(target, MaskCmd.read)],
      ["mask edit", () => c.macMask(target, MaskCmd.edit, [{ dcmd: MaskDcmd.add, mac: c.mac }])],
      ["reserve read", () => c.reserve(target, ReserveCmd.read)],
      ["reserve set", () => c.reserve(target, ReserveCmd.set, [c.mac])],
      ["reserve force set", () => c.reserve(target, ReserveCmd.forceSet, [c.mac])],
      ["unknown command", () => raw(4)], // AoE error 1
      ["vendor command", () => raw(0xf0)], // never answered
      [
        "discovery",
        () => c.discover({ shelf: target.shelf, slot: target.slot, timeoutMs: DISCOVERY_MS }),
      ],
      ["wildcard discovery", () => c.discover({ timeoutMs: DISCOVERY_MS })],
      [
        "unicast discovery",
        () => c.discover({ shelf: target.shelf, timeoutMs: DISCOVERY_MS, dst: target.macBytes }),
      ],
    ];
  }

  /**
   * Nothing came back for frames the daemon has refused: a reply to them
   * would have been sent before they were counted, so before the reply to a
   * frame sent afterwards that must be answered (IDENTIFY of the reserved
   * export, which admits everyone), and the sniffer sees frames in order.
   */
  async function nothingBefore(sniffer: Sniffer, c: AoeClient, slot: number, seen: number) {
    await c.identify(e63);
    const marker = await waitFor("the sniffer's copy of the IDENTIFY reply", () => {
      const i = sniffer.frames.findIndex(
        (f, i) => i >= seen && f.readUInt16BE(16) === 6 && f[18] === 3 && f[19] === 0,
      );
      return i >= 0 ? i : null;
    });
    const before = sniffer.frames.slice(seen, marker);
    expect(
      before
        .filter((f) => f.readUInt16BE(16) === 6 && f[18] === slot)
        .map((f) => f.toString("hex").slice(0, 80)),
    ).toEqual([]);
  }

  it.each([
    ["deny list", "denied", 1],
    ["policy reject", "rejected", 2],
  ])("a MAC refused by the %s gets zero frames for every command", async (_, name, slot) => {
    const target = slot === 1 ? e61 : e62;
    const file = fs.readFileSync(img(name));
    const seen = sniffMe.frames.length;
    const denied = await counter(name, "aclDenied");
    const commands = everyCommand(meOnce, target);
    const results = Promise.allSettled(commands.map(([, start]) => start()));
    // Every frame reached the export and was refused...
    const refused = await waitFor(`${name} to refuse ${commands.length} frames`, async () => {
      const n = (await counter(name, "aclDenied")) - denied;
      return n >= commands.length ? n : null;
    });
    expect(refused).toBe(commands.length);
    // ... and got nothing back.
    await nothingBefore(sniffMe, me, slot, seen);
    for (const [i, r] of (await results).entries()) {
      const what = commands[i]![0];
      if (r.status === "fulfilled") {
        // Only the discoveries fulfil: with nothing from this export.
        expect(Array.isArray(r.value), `${what} was answered`).toBe(true);
        expect((r.value as TargetInfo[]).filter((x) => x.shelf === 6 && x.slot === slot)).toEqual(
          [],
        );
      } else expect(r.reason, what).toBeInstanceOf(TimeoutError);
    }
    // Nothing changed.
    expect(fs.readFileSync(img(name)).equals(file)).toBe(true);
    expect(await exportState(name)).toEqual({ config: "", macmask: [], reserve: [] });
    // The same commands from an admitted MAC are answered (the vendor command never is),
    // in the order sent: the config test comes before the set that would fail it.
    const admitted = everyCommand(other, target).filter(([what]) => what !== "vendor command");
    const answered = await Promise.allSettled(admitted.map(([, start]) => start()));
    for (const [i, r] of answered.entries()) {
      const what = admitted[i]![0];
      if (r.status === "rejected")
        expect([AoeErrorReply, AtaErrorReply], `${what}: ${r.reason}`).toContain(
          (r.reason as object).constructor,
        );
      else if (what.endsWith("discovery")) {
        // A window that closed before the answer came is opened again until it comes.
        const names = (found: unknown) =>
          (found as TargetInfo[]).map((x) => `${x.shelf}.${x.slot}`);
        const again = async () => {
          const found = names(await admitted[i]![1]());
          return found.includes(`6.${slot}`) ? found : null;
        };
        const found = names(r.value).includes(`6.${slot}`)
          ? names(r.value)
          : await waitFor(what, again);
        expect(found, what).toContain(`6.${slot}`);
      }
    }
    for (const what of ["reserve", "macmask", "config"] as const)
      await controlRequest(sock, { cmd: "clear", what, export: name });
  });

  it("a reserved export refuses other MACs' reads and writes with error 6 but answers their discovery", async () => {
    const reply = await other.reserve(e63, ReserveCmd.set, [mac(OTHER)]);
    expect(reply.kind === "reserve" && reply.arg.macs.map((m) => m.toString("hex"))).toEqual([
      mac(OTHER).toString("hex"),
    ]);
    expect(await exportState("reserved")).toEqual({ config: "", macmask: [], reserve: [OTHER] });
    const file = fs.readFileSync(img("reserved"));
    const code = (p: Promise<unknown>) =>
      p.then(
        () => "served",
        (e) =>
          e instanceof AoeErrorReply ? e.code : e instanceof AtaErrorReply ? "ata" : String(e),
      );
    expect(await code(me.read(e63, 0, 2))).toBe(6);
    expect(await code(me.read(e63, 100, 1))).toBe(6);
    expect(await code(me.write(e63, 0, Buffer.alloc(1024, 0x11)))).toBe(6);
    expect(await code(me.write(e63, 8, Buffer.alloc(512, 0x11)))).toBe(6);
    expect(await code(me.flush(e63))).toBe(6);
    expect(await code(me.reserve(e63, ReserveCmd.set, [mac(ME)]))).toBe(6);
    expect(fs.readFileSync(img("reserved")).equals(file)).toBe(true);
    // Discovery and IDENTIFY still answer, so the initiator sees the disk and why it cannot use it.
    expect((await discoverUntil(me, { shelf: 6, slot: 3 }, has(3))).map((x) => x.slot)).toEqual([
      3,
    ]);
    expect((await discoverUntil(me, {}, has(3))).map((x) => x.slot)).toContain(3);
    expect((await me.identify(e63)).sectors).toBe(2048);
    const read = await me.reserve(e63, ReserveCmd.read);
    expect(read.kind === "reserve" && read.arg.macs.length).toBe(1);
    // The holder is served.
    await other.write(e63, 0, Buffer.alloc(1024, 0x22));
    expect((await other.read(e63, 0, 2)).equals(Buffer.alloc(1024, 0x22))).toBe(true);
    // Released: served again.
    await other.reserve(e63, ReserveCmd.set, []);
    expect((await me.read(e63, 0, 2)).equals(Buffer.alloc(1024, 0x22))).toBe(true);
    // Reserved again, then cleared by the admin.
    await other.reserve(e63, ReserveCmd.set, [mac(OTHER)]);
    expect(await code(me.read(e63, 0, 2))).toBe(6);
    const clear = await aoectl(sock, ["clear", "reserve", "reserved"]);
    expect(clear).toMatchObject({ code: 0, stdout: "cleared reserve on reserved\n" });
    await me.write(e63, 0, Buffer.alloc(1024, 0x33));
    expect((await me.read(e63, 0, 2)).equals(Buffer.alloc(1024, 0x33))).toBe(true);
  });

  it("a MAC mask admitting only a stranger locks everyone out until `aoectl clear macmask`", async () => {
    const seen = sniffMe.frames.length;
    const edit = await me.macMask(e64, MaskCmd.edit, [{ dcmd: MaskDcmd.add, mac: mac(NOBODY) }]);
    expect(
      edit.kind === "macmask" && edit.arg.directives.map((d) => d.mac.toString("hex")),
    ).toEqual([mac(NOBODY).toString("hex")]);
    // Past the sniffer's copy of the edit's reply.
    const locked = await waitFor("the sniffer's copy of the mask edit's reply", () => {
      const n = sniffMe.from(6, 4, seen).length;
      return n > 0 ? sniffMe.frames.length : null;
    });
    const masked = await counter("masked", "maskDenied");
    const pending: Promise<unknown>[] = [];
    // Clients that try once: one frame per command.
    const otherOnce = AoeClient.open(mvOther.name, { timeoutMs: 150, tries: 1 });
    for (const c of [meOnce, otherOnce]) {
      pending.push(
        expect(c.read(e64, 0, 1)).rejects.toBeInstanceOf(TimeoutError),
        expect(c.write(e64, 0, Buffer.alloc(512))).rejects.toBeInstanceOf(TimeoutError),
        expect(
          c.macMask(e64, MaskCmd.edit, [{ dcmd: MaskDcmd.delete, mac: mac(NOBODY) }]),
        ).rejects.toBeInstanceOf(TimeoutError),
        c
          .discover({ shelf: 6, timeoutMs: DISCOVERY_MS })
          .then((found) => expect(found.map((x) => x.slot)).not.toContain(4)),
      );
    }
    // Each refused frame is counted.
    const frames = 8;
    await waitFor(`the masked export to refuse ${frames} frames`, async () => {
      const n = (await counter("masked", "maskDenied")) - masked;
      if (n > frames) throw new Error(`${n} frames refused, more than the ${frames} sent`);
      return n === frames;
    });
    await nothingBefore(sniffMe, me, 4, locked);
    try {
      await Promise.all(pending);
    } finally {
      otherOnce.close();
    }
    expect((await aoectl(sock, ["show", "macmask", "masked"])).stdout).toContain(NOBODY);
    expect(await aoectl(sock, ["clear", "macmask", "masked"])).toMatchObject({
      code: 0,
      stdout: "cleared macmask on masked\n",
    });
    expect(await exportState("masked")).toEqual({ config: "", macmask: [], reserve: [] });
    await me.write(e64, 0, Buffer.alloc(1024, 0x44));
    expect((await me.read(e64, 0, 2)).equals(Buffer.alloc(1024, 0x44))).toBe(true);
    expect((await discoverUntil(me, { shelf: 6, slot: 4 }, has(4))).map((x) => x.slot)).toEqual([
      4,
    ]);
  });
});
