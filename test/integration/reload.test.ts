/**
 * Hot reload and persisted state against the real daemon: the config file is
 * rewritten while an initiator keeps verified I/O going on an export that
 * does not change.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AoeClient, AtaErrorReply, type TargetInfo } from "../../src/client/client.js";
import { ConfigCmd, ReserveCmd } from "../../src/protocol/constants.js";
import { type Daemon, startDaemon } from "../helpers/daemon.js";
import { createVethPair, type VethPair } from "../helpers/net.js";
import { waitFor } from "../helpers/wait.js";

const MiB = 1024 * 1024;

describe("config reload and persisted state", () => {
  let net: VethPair;
  let dir: string;
  let configPath: string;
  let daemon: Daemon;
  let client: AoeClient;

  const exportYaml = (name: string, shelf: number, slot: number, extra = "") => `  - name: ${name}
    path: ${path.join(dir, `${name}.img`)}
    shelf: ${shelf}
    slot: ${slot}
    interfaces: [${net.b}]
${extra}`;
  const writeConfig = (...exports: string[]) => {
    // Write-and-rename, as most editors save.
    const tmp = `${configPath}.tmp`;
    fs.writeFileSync(
      tmp,
      `watch-config: true\nstate-dir: ${path.join(dir, "state")}\nexports:\n${exports.join("")}`,
    );
    fs.renameSync(tmp, configPath);
  };
  const find = async (shelf: number, slot: number): Promise<TargetInfo | undefined> =>
    (await client.discover({ shelf, slot, timeoutMs: 250 }))[0];
  const reloaded = (count: number) =>
    waitFor(
      `reload ${count} to be logged`,
      () => daemon.logs.filter((l) => /config (not )?reloaded/.test(String(l.msg))).length >= count,
    );

  beforeAll(async () => {
    net = createVethPair({ netns: true });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-reload-"));
    for (const name of ["steady", "extra", "other"]) {
      fs.writeFileSync(path.join(dir, `${name}.img`), "");
      fs.truncateSync(path.join(dir, `${name}.img`), 4 * MiB);
    }
    configPath = path.join(dir, "aoed.yaml");
    writeConfig(exportYaml("steady", 0, 0));
    client = AoeClient.open(net.a, { timeoutMs: 300, tries: 4 });
    daemon = await startDaemon(["--config", configPath], { netns: net.netns });
  });

  afterAll(async () => {
    client?.close();
    await daemon?.stop();
    net?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("adds, changes and removes exports while an unchanged one keeps serving", async () => {
    const steady = (await find(0, 0))!;
    expect(steady).toBeDefined();
    let stop = false;
    let ios = 0;
    let failed: Error | null = null;
    // Verified I/O on the unchanged export for the whole sequence of edits.
    const worker = (async () => {
      let n = 0;
      while (!stop) {
        const lba = (n * 8) % 8000;
        const data = Buffer.alloc(4096, n & 0xff);
        await client.write(steady, lba, data);
        const back = await client.read(steady, lba, 8);
        if (!back.equals(data)) throw new Error(`mismatch at lba ${lba}`);
        n++;
        ios++;
      }
    })().catch((e: Error) => {
      failed = e;
    });
    /** The unchanged export completes more verified I/O after each edit. */
    const keepsServing = async () => {
      const from = ios;
      await waitFor("more verified I/O on the unchanged export", () => {
        if (failed) throw failed;
        return ios > from;
      });
    };

    writeConfig(exportYaml("steady", 0, 0), exportYaml("extra", 0, 1));
    await reloaded(1);
    await keepsServing();
    expect(await find(0, 1)).toBeDefined();

    // An invalid edit: every error is logged and the running config stays.
    fs.writeFileSync(
      configPath,
      `exports:\n  - name: steady\n    shelf: 0\n    slot: 0\n    pth: /nope\n`,
    );
    await reloaded(2);
    await keepsServing();
    expect(daemon.logs.some((l) => /config not reloaded/.test(String(l.msg)))).toBe(true);
    expect(await find(0, 1)).toBeDefined();

    // Change: extra becomes read-only; writes are now refused.
    writeConfig(exportYaml("steady", 0, 0), exportYaml("extra", 0, 1, "    read-only: true\n"));
    await reloaded(3);
    await keepsServing();
    const extra = (await find(0, 1))!;
    await expect(client.write(extra, 0, Buffer.alloc(512, 1))).rejects.toBeInstanceOf(
      AtaErrorReply,
    );

    // Remove extra, add other at a new address.
    writeConfig(exportYaml("steady", 0, 0), exportYaml("other", 2, 0));
    await reloaded(4);
    await keepsServing();
    expect(await find(0, 1)).toBeUndefined();
    expect(await find(2, 0)).toBeDefined();

    stop = true;
    await worker;
    expect(failed).toBeNull();
    const last = daemon.logs.filter((l) => l.msg === "config reloaded").at(-1)!;
    expect(last).toMatchObject({ removed: ["extra"], added: ["other"], unchanged: ["steady"] });
    // write-cache is on by default: its risk is logged at start-up for steady, then once for each
    // export a reload put at risk (extra added, other added), never for one that stayed at risk.
    const risks = daemon.logs.filter(
      (l) => Number(l.level) === 40 && /page cache.*power cut or crash/.test(String(l.msg)),
    );
    expect(risks.map((l) => l.export)).toEqual(["steady", "extra", "other"]);
  });

  it("reloads on SIGHUP", async () => {
    const before = daemon.logs.length;
    daemon.proc.kill("SIGHUP");
    await daemon.waitForLog(/config reloaded/, { from: before });
    expect(daemon.logs.slice(before).find((l) => l.msg === "config reloaded")).toMatchObject({
      reason: "SIGHUP",
    });
  });

  it("keeps config strings and reservations across a restart", async () => {
    const t = (await find(0, 0))!;
    await client.config(t, ConfigCmd.set, "owner=node2");
    await client.reserve(t, ReserveCmd.set, [client.mac]);
    expect(await daemon.stop()).toBe(0);
    daemon = await startDaemon(["--config", configPath], { netns: net.netns });
    const again = (await find(0, 0))!;
    expect(again.config).toBe("owner=node2");
    const r = await client.reserve(again, ReserveCmd.read);
    expect(r.kind === "reserve" && r.arg.macs.map((m) => m.toString("hex"))).toEqual([
      client.mac.toString("hex"),
    ]);
    const saved = JSON.parse(fs.readFileSync(path.join(dir, "state", "steady.json"), "utf8"));
    expect(saved.config).toBe("owner=node2");
    await client.reserve(again, ReserveCmd.set, []);
  });
});
