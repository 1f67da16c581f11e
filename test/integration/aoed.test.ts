/**
 * aoed against real frames: the daemon runs in its own network namespace on
 * one end of a veth pair; the TypeScript initiator uses the other end.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AoeClient,
  AoeErrorReply,
  AtaErrorReply,
  type TargetInfo,
  TimeoutError,
} from "../../src/client/client.js";
import {
  AtaCmd,
  AtaFlag,
  ConfigCmd,
  MaskCmd,
  MaskDcmd,
  ReserveCmd,
} from "../../src/protocol/constants.js";
import { type NetDaemon, sparseFile, startNetDaemon } from "../helpers/net-daemon.js";

const MiB = 1024 * 1024;

describe("aoed on a veth pair", () => {
  let fx: NetDaemon;
  let dir: string;
  let client: AoeClient;
  const announced: string[] = [];
  let targets: TargetInfo[];
  const byName = (name: string) => {
    const t = targets.find((x) => `e${x.shelf}.${x.slot}` === name);
    if (!t) throw new Error(`${name} not discovered`);
    return t;
  };

  beforeAll(async () => {
    fx = await startNetDaemon({
      config: ({ dir, iface, client }) => {
        client.onUnsolicited((m) => {
          if (m.kind === "config" && m.tag === 0) announced.push(`e${m.shelf}.${m.slot}`);
        });
        const img = (name: string, size: number) => sparseFile(path.join(dir, name), size);
        return `exports:
  - name: big
    path: ${img("big.img", 64 * MiB)}
    shelf: 1
    slot: 0
    interfaces: [${iface}]
  - name: small
    path: ${img("small.img", 8 * MiB)}
    shelf: 1
    slot: 1
    interfaces: [${iface}]
    serial: SMALL-1
  - name: ro
    path: ${img("ro.img", 1 * MiB)}
    shelf: 2
    slot: 0
    interfaces: [${iface}]
    read-only: true
`;
      },
    });
    ({ client, dir } = fx);
    targets = await client.discover({ timeoutMs: 500 });
  });

  afterAll(async () => {
    expect(await fx?.close()).toBe(0);
  });

  it("announces every export at start", () => {
    expect(announced.sort()).toEqual(["e1.0", "e1.1", "e2.0"]);
  });

  it("answers broadcast discovery once per export with its parameters", () => {
    expect(targets.map((t) => `e${t.shelf}.${t.slot}`)).toEqual(["e1.0", "e1.1", "e2.0"]);
    for (const t of targets) {
      expect(t.bufferCount).toBe(64);
      expect(t.maxSectors).toBe(2); // MTU 1500
      expect(t.mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    }
  });

  it("answers partial wildcards with just the matching exports", async () => {
    const shelf1 = await client.discover({ shelf: 1, timeoutMs: 300 });
    expect(shelf1.map((t) => t.slot)).toEqual([0, 1]);
    const slot0 = await client.discover({ slot: 0, timeoutMs: 300 });
    expect(slot0.map((t) => `e${t.shelf}.${t.slot}`)).toEqual(["e1.0", "e2.0"]);
    expect(await client.discover({ shelf: 9, slot: 9, timeoutMs: 300 })).toEqual([]);
  });

  it("IDENTIFY reports each export's size and serial", async () => {
    expect((await client.identify(byName("e1.0"))).sectors).toBe((64 * MiB) / 512);
    const small = await client.identify(byName("e1.1"));
    expect(small.sectors).toBe((8 * MiB) / 512);
    expect(small.serial).toBe("SMALL-1");
    expect(small.lba48).toBe(true);
  });

  it("writes land in the backing file and read back identically", async () => {
    const data = Buffer.alloc(256 * 1024);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    await client.write(byName("e1.0"), 1000, data);
    const onDisk = Buffer.alloc(data.length);
    const fd = fs.openSync(path.join(dir, "big.img"), "r");
    fs.readSync(fd, onDisk, 0, onDisk.length, 1000 * 512);
    fs.closeSync(fd);
    expect(onDisk.equals(data)).toBe(true);
    expect((await client.read(byName("e1.0"), 1000, data.length / 512)).equals(data)).toBe(true);
    // The neighbouring export is untouched.
    expect((await client.read(byName("e1.1"), 1000, 8)).every((b) => b === 0)).toBe(true);
  });

  it("reads the last sectors and refuses one past the end", async () => {
    const t = byName("e1.1");
    const last = (8 * MiB) / 512 - 2;
    expect((await client.read(t, last, 2)).length).toBe(1024);
    await expect(client.read(t, last + 1, 2)).rejects.toBeInstanceOf(AtaErrorReply);
  });

  it("masks LBA28 device bits the way Linux sends them", async () => {
    const t = byName("e1.1");
    const pattern = Buffer.alloc(512, 0x7e);
    await client.write(t, 77, pattern);
    const r = await client.ata(t, {
      aflags: 0,
      sectorCount: 1,
      cmdStatus: AtaCmd.readSectors,
      lba: 0xe0000000 + 77,
      data: Buffer.alloc(0),
    });
    expect(r.data.subarray(0, 512).equals(pattern)).toBe(true);
  });

  it("refuses writes to a read-only export with ABRT", async () => {
    const err = await client.write(byName("e2.0"), 0, Buffer.alloc(512, 1)).catch((e) => e);
    expect(err).toBeInstanceOf(AtaErrorReply);
    expect((err as AtaErrorReply).error).toBe(0x04);
    expect(fs.readFileSync(path.join(dir, "ro.img")).every((b) => b === 0)).toBe(true);
  });

  it("FLUSH CACHE EXT and CHECK POWER MODE succeed", async () => {
    await client.flush(byName("e1.0"));
    const r = await client.ata(byName("e1.0"), {
      aflags: 0,
      sectorCount: 0,
      cmdStatus: AtaCmd.checkPowerMode,
      lba: 0,
      data: Buffer.alloc(0),
    });
    expect(r.sectorCount).toBe(0xff);
  });

  it("rejects more sectors than advertised", async () => {
    const t = byName("e1.0");
    await expect(
      client.ata(t, {
        aflags: AtaFlag.lba48,
        sectorCount: 3,
        cmdStatus: AtaCmd.readSectorsExt,
        lba: 0,
        data: Buffer.alloc(0),
      }),
    ).rejects.toBeInstanceOf(AtaErrorReply);
  });

  it("keeps a config string and applies test/set semantics", async () => {
    const t = byName("e1.1");
    await client.config(t, ConfigCmd.set, "rack4");
    await expect(client.config(t, ConfigCmd.set, "other")).rejects.toMatchObject({ code: 4 });
    await expect(client.config(t, ConfigCmd.test, "rack")).rejects.toBeInstanceOf(TimeoutError);
    const prefix = await client.config(t, ConfigCmd.testPrefix, "rack");
    expect(prefix.kind === "config" && prefix.arg.config.toString()).toBe("rack4");
    const again = await client.discover({ shelf: 1, slot: 1, timeoutMs: 300 });
    expect(again[0]?.config).toBe("rack4");
  });

  it("edits the MAC mask list and reserves the export", async () => {
    const t = byName("e1.0");
    const other = Buffer.from("020000000bbb", "hex");
    const edit = await client.macMask(t, MaskCmd.edit, [
      { dcmd: MaskDcmd.add, mac: client.mac },
      { dcmd: MaskDcmd.add, mac: other },
    ]);
    expect(edit.kind === "macmask" && edit.arg.directives.length).toBe(2);
    await client.macMask(t, MaskCmd.edit, [
      { dcmd: MaskDcmd.delete, mac: client.mac },
      { dcmd: MaskDcmd.delete, mac: other },
    ]);
    // Reserved for someone else: our reads fail with AoE error 6 ...
    await client.reserve(t, ReserveCmd.forceSet, [other]);
    await expect(client.read(t, 0, 1)).rejects.toEqual(new AoeErrorReply(6));
    // ... and discovery still works; force set takes it back.
    expect((await client.discover({ shelf: 1, slot: 0, timeoutMs: 300 })).length).toBe(1);
    await client.reserve(t, ReserveCmd.forceSet, []);
    expect((await client.read(t, 0, 1)).length).toBe(512);
  });

  it("answers unknown commands with AoE error 1", async () => {
    const t = byName("e1.0");
    await expect(
      client.send((tag) => ({
        dst: t.macBytes,
        src: client.mac,
        response: false,
        isError: false,
        error: 0,
        shelf: t.shelf,
        slot: t.slot,
        command: 7,
        tag,
        kind: "other",
        payload: Buffer.alloc(0),
      })),
    ).rejects.toEqual(new AoeErrorReply(1));
  });
});
