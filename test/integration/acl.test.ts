/**
 * ACLs on real frames: a denied initiator gets nothing back for any command,
 * discovery included, while an accepted one on the same wire is served.
 */
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AoeClient, TimeoutError } from "../../src/client/client.js";
import { AtaCmd, ConfigCmd, MaskCmd, ReserveCmd } from "../../src/protocol/constants.js";
import { macToString, readMac } from "../../src/protocol/mac.js";
import type { Message } from "../../src/protocol/messages.js";
import { type NetDaemon, sparseFile, startNetDaemon } from "../helpers/net-daemon.js";

describe("ACLs over veth", () => {
  let fx: NetDaemon;
  let client: AoeClient;
  const frames: Message[] = [];

  beforeAll(async () => {
    fx = await startNetDaemon({
      client: { timeoutMs: 200, tries: 2 },
      config: ({ dir, iface, client }) => {
        client.onUnsolicited((m) => frames.push(m));
        const me = macToString(readMac(client.mac, 0));
        const img = sparseFile(path.join(dir, "d.img"), 1024 * 1024);
        const exp = (slot: number, acl: string) =>
          `  - name: x${slot}\n    path: ${img}\n    read-only: true\n    shelf: 5\n    slot: ${slot}\n    interfaces: [${iface}]\n${acl}`;
        return `acls:\n  me: [${me}]\nexports:\n${exp(0, "    deny: [me]\n")}${exp(1, "    policy: reject\n    accept: [02:00:00:00:00:99]\n")}${exp(2, "    policy: reject\n    accept: [me]\n    deny: [me]\n")}${exp(3, "    policy: reject\n    accept: [me]\n")}`;
      },
    });
    client = fx.client;
  });

  afterAll(async () => {
    await fx?.close();
  });

  it("discovery shows only the export that accepts us", async () => {
    const found = await client.discover({ shelf: 5, timeoutMs: 400 });
    expect(found.map((t) => t.slot)).toEqual([3]);
    // Start-up announcements: policy reject exports announce by unicast to accepted MACs
    // only (x3 to us, x1 to someone else, x2 to nobody since deny wins); x0's policy
    // accepts everyone not denied, which only a broadcast can reach.
    const announced = frames.filter((m) => m.kind === "config" && m.shelf === 5 && m.tag === 0);
    expect(announced.map((m) => m.slot).sort()).toEqual([0, 3]);
    expect(announced.find((m) => m.slot === 3)!.dst.equals(client.mac)).toBe(true);
  });

  it.each([0, 1, 2])("a denied MAC gets zero frames for every command (slot %i)", async (slot) => {
    const [target] = await client.discover({ shelf: 5, slot: 3, timeoutMs: 300 });
    const t = { ...target!, slot };
    const before = frames.length;
    const attempts = [
      client.ata(t, {
        aflags: 0,
        sectorCount: 1,
        cmdStatus: AtaCmd.identifyDevice,
        lba: 0,
        data: Buffer.alloc(0),
      }),
      client.ata(t, {
        aflags: 0x40,
        sectorCount: 1,
        cmdStatus: AtaCmd.readSectorsExt,
        lba: 0,
        data: Buffer.alloc(0),
      }),
      client.config(t, ConfigCmd.read),
      client.macMask(t, MaskCmd.read),
      client.reserve(t, ReserveCmd.read),
    ];
    for (const r of await Promise.allSettled(attempts)) {
      expect(r.status).toBe("rejected");
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(TimeoutError);
    }
    expect(frames.length).toBe(before);
  });
});
