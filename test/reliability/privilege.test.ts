/**
 * Least privilege: aoed started as user nobody with CAP_NET_RAW as its only
 * capability (setpriv: effective, permitted, inheritable, ambient and bounding
 * sets all just net_raw), on a veth pair, exporting a file nobody owns.
 *
 * - It runs with exactly that (checked in /proc), serves discovery, IDENTIFY
 *   and verified reads and writes, and its writes land in the file.
 * - Its control socket is nobody:nogroup mode 0660: nobody's aoectl works; a
 *   user outside the group gets aoectl's "permission denied" explanation.
 * - A backing file nobody cannot open stops the start with a message naming
 *   the path and the permission; so does a missing CAP_NET_RAW.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AoeClient, type TargetInfo } from "../../src/client/client.js";
import type { StatusResult } from "../../src/control/protocol.js";
import { aoectl } from "../helpers/aoectl.js";
import { type Daemon, startDaemon } from "../helpers/daemon.js";
import { runDaemonAs, setprivAs } from "../helpers/daemon-as.js";
import { createVethPair, type VethPair } from "../helpers/net.js";

const MiB = 1024 * 1024;
const NOBODY = 65534;
const AS_NOBODY = setprivAs("nobody", "nogroup", ["net_raw"]);
/** Bits of /proc/PID/status capability masks: CAP_NET_RAW is 13. */
const NET_RAW = (1n << 13n).toString(16).padStart(16, "0");

describe("aoed as nobody with only CAP_NET_RAW", () => {
  let net: VethPair;
  let dir: string;
  let sock: string;
  let image: string;
  let daemon: Daemon;
  let client: AoeClient;
  let target: TargetInfo;
  const config = (name: string, exportPath: string, extra = "") => {
    const file = path.join(dir, `${name}.yaml`);
    fs.writeFileSync(
      file,
      `control-socket: ${sock}\nmetrics: false\nexports:\n  - name: d\n    path: ${exportPath}\n    shelf: 2\n    slot: 7\n    interfaces: [${net.b}]\n${extra}`,
    );
    return file;
  };

  beforeAll(async () => {
    net = createVethPair({ netns: true, prefix: "pv" });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-priv-"));
    fs.chmodSync(dir, 0o755);
    for (const sub of ["data", "run"]) {
      fs.mkdirSync(path.join(dir, sub), { mode: 0o755 });
      fs.chownSync(path.join(dir, sub), NOBODY, NOBODY);
    }
    sock = path.join(dir, "run", "aoed.sock");
    image = path.join(dir, "data", "disk.img");
    fs.writeFileSync(image, "");
    fs.truncateSync(image, 4 * MiB);
    fs.chownSync(image, NOBODY, NOBODY);
    fs.chmodSync(image, 0o600);
    daemon = await startDaemon(["--config", config("ok", image)], {
      netns: net.netns,
      as: AS_NOBODY,
    });
    client = AoeClient.open(net.a, { timeoutMs: 300, tries: 3 });
    [target] = (await client.discover({ shelf: 2, slot: 7, timeoutMs: 500 })) as [TargetInfo];
  });

  afterAll(async () => {
    client?.close();
    const code = await daemon?.stop();
    net?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    expect(code).toBe(0);
  });

  it("runs as nobody with CAP_NET_RAW alone", async () => {
    const status = fs.readFileSync(`/proc/${daemon.proc.pid}/status`, "utf8");
    const field = (name: string) => new RegExp(`^${name}:[ \\t]*(.*)$`, "m").exec(status)?.[1];
    expect(field("Name")).toBe("node");
    expect(field("Uid")?.split(/\s+/)).toEqual(Array(4).fill(String(NOBODY)));
    expect(field("Gid")?.split(/\s+/)).toEqual(Array(4).fill(String(NOBODY)));
    expect(field("Groups")).toBe("");
    for (const set of ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"])
      expect(`${set} ${field(set)}`).toBe(`${set} ${NET_RAW}`);
  });

  it("serves discovery, IDENTIFY and verified reads and writes", async () => {
    expect(target).toMatchObject({ shelf: 2, slot: 7, bufferCount: 64 });
    expect((await client.identify(target)).sectors).toBe((4 * MiB) / 512);
    const data = Buffer.alloc(64 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 0xff;
    await client.write(target, 100, data);
    expect((await client.read(target, 100, data.length / 512)).equals(data)).toBe(true);
    const fd = fs.openSync(image, "r");
    const onDisk = Buffer.alloc(data.length);
    fs.readSync(fd, onDisk, 0, onDisk.length, 100 * 512);
    fs.closeSync(fd);
    expect(onDisk.equals(data)).toBe(true);
    expect(fs.statSync(image).uid).toBe(NOBODY);
  });

  it("its control socket admits its own user and refuses others with EACCES", async () => {
    const st = fs.statSync(sock);
    expect(st.isSocket()).toBe(true);
    expect([st.uid, st.gid, st.mode & 0o777]).toEqual([NOBODY, NOBODY, 0o660]);
    const own = await aoectl(sock, ["status", "--json"], setprivAs("nobody", "nogroup", []));
    expect(own.code).toBe(0);
    expect((JSON.parse(own.stdout) as StatusResult).daemon.pid).toBe(daemon.proc.pid);
    const stranger = await aoectl(sock, ["status"], setprivAs("1234", "1234", []));
    expect(stranger.code).not.toBe(0);
    expect(stranger.stdout).toBe("");
    expect(stranger.stderr).toMatch(
      new RegExp(
        `^aoectl: permission denied on ${sock.replace(/\./g, "\\.")} \\(srw-rw----, owner uid ${NOBODY}, group nogroup\\)`,
      ),
    );
  });

  it.each([
    ["read-write", ""],
    ["read-only", "    read-only: true\n"],
  ])(
    "refuses to start with a %s backing file it cannot open, naming the path and the permission",
    (_, extra) => {
      const locked = path.join(dir, "data", `root-only-${extra ? "ro" : "rw"}.img`);
      fs.writeFileSync(locked, Buffer.alloc(MiB));
      fs.chmodSync(locked, 0o600); // root's
      const other = `${sock}.2`; // the first daemon holds the configured socket
      const file = config(`locked${extra ? "-ro" : ""}`, locked, extra);
      fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace(sock, other));
      const r = runDaemonAs(AS_NOBODY, ["--config", file], net.netns);
      expect(r.code).toBe(1);
      const fatal = r.logs.find((l) => l.msg === "cannot start");
      expect(String(fatal?.err)).toContain(
        `cannot open exports:\n  open ${locked} (export d): EACCES (permission denied; aoed needs ${extra ? "read" : "read/write"} access`,
      );
      expect(fs.existsSync(other)).toBe(false);
    },
  );

  it("refuses to start without CAP_NET_RAW, saying so", () => {
    const file = config("nocap", image);
    fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace(sock, `${sock}.3`));
    const r = runDaemonAs(setprivAs("nobody", "nogroup", []), ["--config", file], net.netns);
    expect(r.code).toBe(1);
    expect(r.logs.find((l) => l.msg === "cannot start")?.err).toBe(
      `${net.b}: permission denied: AF_PACKET needs CAP_NET_RAW`,
    );
  });
});
