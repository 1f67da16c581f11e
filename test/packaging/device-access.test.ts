/**
 * Least privilege for block devices (src/bin/device-access.ts, run by the unit
 * as root before start and before each reload): the service user may open the
 * block devices the config exports, and no other. Two loop devices made here
 * stand in for disks; the service user is nobody (no `disk` group).
 */
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const HELPER = path.resolve(import.meta.dirname, "../../dist/src/bin/device-access.js");
const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
const usable = has("losetup") && has("setfacl") && fs.existsSync("/dev/loop-control");

/** Opens `node` as nobody:nogroup without supplementary groups: "ok" or the error code. */
function openAs(node: string, flags: "r" | "r+"): string {
  const r = spawnSync(
    "setpriv",
    [
      "--reuid=nobody",
      "--regid=nogroup",
      "--clear-groups",
      process.execPath,
      "-e",
      `try { require("fs").closeSync(require("fs").openSync(${JSON.stringify(node)}, "${flags}")); console.log("ok") } catch (e) { console.log(e.code) }`,
    ],
    { encoding: "utf8" },
  );
  return r.stdout.trim() || r.stderr;
}

describe.skipIf(!usable)("aoed-device-access", () => {
  let dir: string;
  let config: string;
  const loops: string[] = [];

  const writeConfig = (exports: { dev: string; readOnly?: boolean }[]) =>
    fs.writeFileSync(
      config,
      `metrics: false\ncontrol-socket: off\nexports:\n${exports
        .map(
          (e, i) =>
            `  - name: d${i}\n    path: ${e.dev}\n    shelf: 3\n    slot: ${i}\n    interfaces: [lo]\n    read-only: ${e.readOnly === true}\n`,
        )
        .join("")}`,
    );
  const helper = () =>
    spawnSync(process.execPath, [HELPER, "--config", config, "--user", "nobody"], {
      encoding: "utf8",
    });

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-devacl-"));
    config = path.join(dir, "aoed.yaml");
    for (const name of ["a", "b"]) {
      const img = path.join(dir, `${name}.img`);
      fs.writeFileSync(img, "");
      fs.truncateSync(img, 1024 * 1024);
      loops.push(execFileSync("losetup", ["-f", "--show", img], { encoding: "utf8" }).trim());
    }
  });

  afterAll(() => {
    for (const dev of loops) {
      // The nodes outlive the loop devices: leave no entry for nobody behind.
      spawnSync("setfacl", ["-x", "u:nobody", dev]);
      spawnSync("losetup", ["-d", dev]);
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("without it, the service user cannot open either device", () => {
    const [a, b] = loops as [string, string];
    expect(openAs(a, "r")).toBe("EACCES");
    expect(openAs(b, "r")).toBe("EACCES");
  });

  it("grants the exported device, and only that one", () => {
    const [a, b] = loops as [string, string];
    writeConfig([{ dev: a }]);
    const r = helper();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`nobody may open ${a} (rw) for d0`);
    expect(openAs(a, "r+")).toBe("ok");
    expect(openAs(b, "r")).toBe("EACCES");
  });

  it("follows a reload: the removed device is revoked, a read-only one is granted read-only", () => {
    const [a, b] = loops as [string, string];
    writeConfig([{ dev: b, readOnly: true }]);
    const r = helper();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`revoked nobody's access to ${a}`);
    expect(openAs(a, "r")).toBe("EACCES");
    expect(openAs(b, "r")).toBe("ok");
    expect(openAs(b, "r+")).toBe("EACCES");
  });

  it("a config that does not load changes nothing", () => {
    const [a, b] = loops as [string, string];
    fs.writeFileSync(config, "exports: [\n");
    const r = helper();
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/does not load; device access unchanged/);
    expect(openAs(a, "r")).toBe("EACCES");
    expect(openAs(b, "r")).toBe("ok");
  });

  it("rejects a missing --user with exit 2", () => {
    const r = spawnSync(process.execPath, [HELPER, "--config", config], { encoding: "utf8" });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--config and --user are required/);
  });
});
