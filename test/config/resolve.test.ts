import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEMO_IMAGE_BYTES, DEMO_INTERFACE, DEMO_PEER, prepareDemo } from "../../src/config/demo.js";
import { didYouMean, formatDiagnostic, formatPath } from "../../src/config/diagnostics.js";
import { type LoadResult, loadConfigFile } from "../../src/config/load.js";
import { normalizeMac } from "../../src/config/mac.js";
import type { Config } from "../../src/config/types.js";
import { formatBytes, formatSize, parseSize } from "../../src/config/units.js";
import { GiB, IFACES, load, MiB, OPTS, yaml } from "./fixtures.js";

function ok(r: LoadResult): Config {
  if (!r.ok) throw new Error(r.errors.map((d) => formatDiagnostic(d)).join("\n"));
  return r.config;
}

describe("defaults", () => {
  it("fills in every default of a minimal export", async () => {
    const r = await load(
      yaml(
        "exports:",
        "  - path: /srv/a.img",
        "    shelf: 3",
        "    slot: 7",
        "    interfaces: [eth0]",
      ),
    );
    expect(r.warnings).toEqual([]);
    expect(ok(r)).toEqual({
      source: "aoed.yaml",
      logLevel: "info",
      stateDir: null,
      watchConfig: false,
      workers: 0,
      metrics: { host: "127.0.0.1", port: 9288 },
      control: { socket: "/run/aoed/aoed.sock", group: null, gid: null },
      interfaces: {},
      exports: [
        {
          name: "e3.7",
          path: "/srv/a.img",
          shelf: 3,
          slot: 7,
          interfaces: ["eth0"],
          queueLength: 64,
          sectors: 0,
          readOnly: false,
          writeCache: true,
          directIo: false,
          io: "auto",
          traceIo: false,
          offset: 0,
          length: null,
          serial: "e3.7",
          model: "aoed",
          broadcast: true,
          acl: { policy: "accept", accept: [], deny: [] },
        },
      ],
    });
  });

  it("inherits `defaults:` and lets an export override them", async () => {
    const cfg = ok(
      await load(
        yaml(
          "log-level: debug",
          "state-dir: /var/lib/aoed",
          "defaults:",
          "  queue-length: 16",
          "  write-cache: false",
          "  direct-io: true",
          "  io: threads",
          "  trace-io: true",
          "  broadcast: false",
          "exports:",
          "  - path: /srv/a.img",
          "    shelf: 0",
          "    slot: 0",
          "    interfaces: [eth0]",
          "  - path: /srv/b.img",
          "    shelf: 0",
          "    slot: 1",
          "    interfaces: [eth0]",
          "    queue-length: 256",
          "    direct-io: writes",
          "    io: io_uring",
          "  - path: /srv/c.img",
          "    shelf: 0",
          "    slot: 2",
          "    interfaces: [eth0]",
          "    direct-io: false",
        ),
      ),
    );
    expect(cfg.logLevel).toBe("debug");
    expect(cfg.stateDir).toBe("/var/lib/aoed");
    const [a, b, c] = cfg.exports;
    expect(a).toMatchObject({
      queueLength: 16,
      writeCache: false,
      directIo: true,
      io: "threads",
      traceIo: true,
      broadcast: false,
    });
    expect(b).toMatchObject({
      queueLength: 256,
      writeCache: false,
      directIo: "writes", // O_DIRECT for writes only
      io: "io_uring",
      traceIo: true,
      broadcast: false,
    });
    expect(c?.directIo).toBe(false); // false over a default of true
  });

  it("treats empty sections (all entries commented out) as empty", async () => {
    const cfg = ok(
      await load(
        yaml(
          "defaults:",
          "  # queue-length: 64",
          "interfaces:",
          "acls:",
          "exports:",
          "  - path: /srv/a.img",
          "    shelf: 0",
          "    slot: 0",
          "    interfaces: [eth0]",
          "    accept:",
          "    deny:",
        ),
      ),
    );
    expect(cfg.exports[0]!.acl).toEqual({ policy: "accept", accept: [], deny: [] });
  });

  it("resolves interface settings, uuid, window, serial and model", async () => {
    const r = await load(
      yaml(
        "interfaces:",
        "  eth0: { mtu: 9000, buffers: 32 }",
        "  eth1:",
        "    mtu: auto",
        "    busy-poll: 0",
        "exports:",
        "  - name: a-very-long-export-name-indeed",
        "    uuid: 6f1c2a9e-3b7d-4e8a-9c51-0d2f4a6b8e10",
        "    shelf: 0",
        "    slot: 0",
        "    interfaces: [eth0, eth1]",
        "    sectors: 16",
        "    read-only: true",
        "    offset: 1MiB",
        "    length: 10G",
        "    model: Example Model 1",
      ),
    );
    const cfg = ok(r);
    expect(cfg.interfaces).toEqual({
      eth0: { mtu: 9000, ringBytes: 32 * 64 * 1024, busyPollUs: 50 },
      eth1: { mtu: null, ringBytes: null, busyPollUs: 0 },
    });
    expect(cfg.exports[0]).toMatchObject({
      name: "a-very-long-export-name-indeed",
      path: "/dev/disk/by-uuid/6f1c2a9e-3b7d-4e8a-9c51-0d2f4a6b8e10",
      sectors: 16,
      readOnly: true,
      offset: MiB,
      length: 10 * GiB,
      serial: "a-very-long-export-n",
      model: "Example Model 1",
    });
  });
});

describe("named ACLs", () => {
  it("expands nested lists, normalizes and de-duplicates MACs", async () => {
    const cfg = ok(
      await load(
        yaml(
          "acls:",
          "  rack1: [00:1B:21:AA:BB:01, 00-1b-21-aa-bb-02]",
          "  rack2: [00:1b:21:aa:bb:03, rack1]",
          "  everyone: [rack2, rack1, 00:1b:21:aa:bb:04]",
          "  blocked: [00:1b:21:aa:bb:02]",
          "exports:",
          "  - path: /srv/a.img",
          "    shelf: 0",
          "    slot: 0",
          "    interfaces: [eth0]",
          "    policy: reject",
          "    accept: [everyone, 00:1b:21:aa:bb:05]",
          "    deny: [blocked]",
        ),
      ),
    );
    expect(cfg.exports[0]!.acl).toEqual({
      policy: "reject",
      accept: [
        "00:1b:21:aa:bb:03",
        "00:1b:21:aa:bb:01",
        "00:1b:21:aa:bb:02",
        "00:1b:21:aa:bb:04",
        "00:1b:21:aa:bb:05",
      ],
      deny: ["00:1b:21:aa:bb:02"],
    });
  });

  it("a list defined after its use is fine", async () => {
    const cfg = ok(
      await load(
        yaml(
          "acls:",
          "  all: [late]",
          "  late: [00:1b:21:aa:bb:09]",
          "exports:",
          "  - path: /srv/a.img",
          "    shelf: 0",
          "    slot: 0",
          "    interfaces: [eth0]",
          "    deny: [all]",
        ),
      ),
    );
    expect(cfg.exports[0]!.acl.deny).toEqual(["00:1b:21:aa:bb:09"]);
  });

  it("normalizeMac accepts colon and dash forms only", () => {
    expect(normalizeMac("00-1B-21-AA-BB-01")).toBe("00:1b:21:aa:bb:01");
    expect(normalizeMac("00:1b:21:aa:bb:01")).toBe("00:1b:21:aa:bb:01");
    expect(normalizeMac("00:1b-21:aa:bb:01")).toBeNull();
    expect(normalizeMac("001b.21aa.bb01")).toBeNull();
    expect(normalizeMac("0:1b:21:aa:bb:01")).toBeNull();
  });
});

describe("sizes", () => {
  it.each([
    [0, 0],
    [512, 512],
    ["512", 512],
    ["4KiB", 4096],
    ["4k", 4096],
    ["4 KiB", 4096],
    ["1MiB", MiB],
    ["1M", MiB],
    ["10GiB", 10 * GiB],
    ["1G", GiB],
    ["1g", GiB],
    ["1.5GiB", 1.5 * GiB],
    ["2TiB", 2 * 1024 * GiB],
    ["1GB", 1e9],
    ["1kb", 1000],
    ["100B", 100],
  ] as const)("%s = %d bytes", (input, bytes) => {
    expect(parseSize(input)).toEqual({ ok: true, bytes });
  });

  it.each(["", "G", "1.1.1", "10 gigs", "-5", "1e3"])("rejects %j", (input) => {
    expect(parseSize(input).ok).toBe(false);
  });

  it("rejects fractional bytes and overflow", () => {
    expect(parseSize("0.3K")).toEqual({
      ok: false,
      message: '"0.3K" is not a whole number of bytes',
    });
    expect(parseSize("9000P")).toEqual({ ok: false, message: '"9000P" is too large' });
    expect(parseSize(1.5).ok).toBe(false);
  });

  it("formats sizes for messages", () => {
    expect(formatSize(100)).toBe("100 bytes");
    expect(formatSize(4096)).toBe("4 KiB");
    expect(formatSize(10 * GiB)).toBe("10 GiB");
    expect(formatSize(1536)).toBe("1.5 KiB (1536 bytes)");
    expect(formatSize(1280)).toBe("1.3 KiB (1280 bytes)");
  });

  it("formats sizes for display with one rounding rule", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(64 * MiB)).toBe("64 MiB");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(GiB + 10 * MiB)).toBe("1 GiB");
    expect(formatBytes(1.25 * GiB)).toBe("1.3 GiB");
  });
});

describe("interface globs", () => {
  const base = (ifs: string) =>
    yaml(
      "exports:",
      "  - path: /srv/a.img",
      "    shelf: 0",
      "    slot: 0",
      `    interfaces: ${ifs}`,
    );

  it("expands against existing interfaces, in natural order, never matching lo", async () => {
    const cfg = ok(await load(base("[eth*]")));
    expect(cfg.exports[0]!.interfaces).toEqual(["eth0", "eth1", "eth2", "eth10"]);
    expect(ok(await load(base('["*"]'))).exports[0]!.interfaces).toEqual([
      "enp3s0",
      "eth0",
      "eth1",
      "eth2",
      "eth10",
      "wlan0",
    ]);
  });

  it("supports ? and [...] and de-duplicates", async () => {
    const cfg = ok(await load(base("[eth?, eth1, 'eth[!0-1]*', enp3s0]")));
    expect(cfg.exports[0]!.interfaces).toEqual(["eth0", "eth1", "eth2", "enp3s0"]);
  });

  it("warns (does not fail) when a glob matches nothing", async () => {
    const r = await load(base("[eth0, ib*]"));
    const cfg = ok(r);
    expect(cfg.exports[0]!.interfaces).toEqual(["eth0"]);
    expect(r.warnings.map((d) => formatDiagnostic(d))).toEqual([
      `aoed.yaml:5:24: warning: exports[0].interfaces[1]: \`ib*\` matches no network interface (existing interfaces: ${[...IFACES].sort((a, b) => a.localeCompare(b, "en", { numeric: true })).join(", ")})`,
    ]);
  });
});

describe("warnings", () => {
  it("flags unused lists, useless accept lists, locked-out exports, overlaps, unknown interface blocks", async () => {
    const r = await load(
      yaml(
        "interfaces:", //                         1
        "  eth9: { mtu: 9000 }", //               2
        "acls:", //                               3
        "  spare: [00:1b:21:aa:bb:01]", //        4
        "exports:", //                            5
        "  - name: a", //                         6
        "    path: /srv/a.img", //                7
        "    shelf: 0", //                        8
        "    slot: 0", //                         9
        "    interfaces: [eth0]", //              10
        "    accept: [00:1b:21:aa:bb:02]", //     11
        "  - name: b", //                         12
        "    path: /srv/a.img", //                13
        "    shelf: 0", //                        14
        "    slot: 1", //                         15
        "    interfaces: [eth0]", //              16
        "    offset: 512MiB", //                  17
        "    policy: reject", //                  18
      ),
    );
    ok(r);
    expect(r.warnings.map((d) => `${d.line}:${d.column} ${d.path}: ${d.message}`)).toEqual([
      "2:3 interfaces.eth9: there is no network interface `eth9` on this machine; these settings are unused",
      "4:3 acls.spare: ACL list `spare` is not used by any export",
      "11:13 exports[0].accept: `accept:` has no effect: with policy accept, hosts not listed are accepted too",
      "13:11 exports[1].path: overlaps exports[0] (`a`, line 6) on /srv/a.img and one of them is writable: writes through one corrupt the other",
      "18:13 exports[1].policy: policy reject with nothing in `accept:`: no host can use this export",
    ]);
    expect(r.warnings.every((d) => d.severity === "warning")).toBe(true);
  });

  it("flags writable windows of one file that differ in direct-io, whichever comes first", async () => {
    const windows = (first: string, second: string) =>
      load(
        yaml(
          "exports:", //                          1
          "  - name: a", //                       2
          "    path: /srv/a.img", //              3
          "    shelf: 0", //                      4
          "    slot: 0", //                       5
          "    interfaces: [eth0]", //            6
          "    length: 512MiB", //                7
          `    direct-io: ${first}`, //           8
          "  - name: b", //                       9
          "    path: /srv/a.img", //              10
          "    shelf: 0", //                      11
          "    slot: 1", //                       12
          "    interfaces: [eth0]", //            13
          "    offset: 512MiB", //                14
          `    direct-io: ${second}`, //          15
          "  - name: c", //                       16
          "    path: /srv/a.img", //              17
          "    shelf: 0", //                      18
          "    slot: 2", //                       19
          "    interfaces: [eth0]", //            20
          "    offset: 512MiB", //                21
          "    read-only: true", //      22
          `    direct-io: ${first}`, //           23
        ),
      );
    const said = async (r: Awaited<ReturnType<typeof load>>) => {
      ok(r);
      return r.warnings
        .filter((d) => /direct-io/.test(d.message))
        .map((d) => `${d.line}:${d.column} ${d.message} (${d.hint})`);
    };
    const tail =
      "go through the page cache too (with `workers:`, nothing keeps the two ways apart) (give both the same direct-io)";
    expect(await said(await windows("false", "writes"))).toEqual([
      `10:11 writes /srv/a.img as exports[0] (\`a\`, line 2) does, one with direct-io and one without: while both are open, this export's ${tail}`,
    ]);
    expect(await said(await windows("true", "false"))).toEqual([
      `10:11 writes /srv/a.img as exports[0] (\`a\`, line 2) does, one with direct-io and one without: while both are open, those of exports[0] (\`a\`, line 2) ${tail}`,
    ]);
    // The same setting, or a read-only window (no writer): nothing to say.
    expect(await said(await windows("writes", "true"))).toEqual([]);
    const readOnlyFirst = await load(
      yaml(
        "exports:",
        "  - name: ro",
        "    path: /srv/a.img",
        "    shelf: 0",
        "    slot: 0",
        "    interfaces: [eth0]",
        "    read-only: true",
        "    direct-io: true",
        "  - name: rw",
        "    path: /srv/a.img",
        "    shelf: 0",
        "    slot: 1",
        "    interfaces: [eth0]",
        "    direct-io: false",
      ),
    );
    expect(await said(readOnlyFirst)).toEqual([]);
  });

  it("settings for a missing interface an export names are not called unused: the export waits for it", async () => {
    const r = await load(
      yaml(
        "interfaces:",
        "  bond0: { mtu: 9000 }",
        "exports:",
        "  - path: /srv/a.img",
        "    shelf: 0",
        "    slot: 0",
        "    interfaces: [bond0]",
      ),
    );
    expect(ok(r).interfaces.bond0).toEqual({ mtu: 9000, ringBytes: null, busyPollUs: 50 });
    expect(r.warnings.map((d) => `${d.line}:${d.column} ${d.path}: ${d.message}`)).toEqual([
      "7:18 exports[0].interfaces[0]: there is no network interface `bond0` on this machine; the export waits for it",
    ]);
  });

  it("read-only and disjoint windows do not overlap-warn", async () => {
    const r = await load(
      yaml(
        "exports:",
        "  - { name: a, path: /srv/a.img, shelf: 0, slot: 0, interfaces: [eth0], length: 512MiB }",
        "  - { name: b, path: /srv/a.img, shelf: 0, slot: 1, interfaces: [eth0], offset: 512MiB }",
        "  - { name: c, path: /dev/vg0/lv0, shelf: 0, slot: 2, interfaces: [eth0], read-only: true }",
        "  - { name: d, path: /dev/vg0/lv0, shelf: 0, slot: 3, interfaces: [eth0], read-only: true }",
      ),
    );
    ok(r);
    expect(r.warnings).toEqual([]);
  });
});

describe("the example config", () => {
  it("etc/aoed.yaml loads without errors or warnings", async () => {
    const path = new URL("../../etc/aoed.yaml", import.meta.url).pathname;
    const r = await loadConfigFile(path, {
      interfaces: ["lo", "eth0", "eth1"],
      stat: async () => ({ kind: "block", size: 0 }),
      groups: (name) => (name === "aoed" ? 990 : null),
    });
    const cfg = ok(r);
    expect(r.warnings.map((d) => formatDiagnostic(d))).toEqual([]);
    expect(cfg.source).toBe(path);
    expect(cfg.exports.map((e) => [e.name, e.shelf, e.slot, e.interfaces])).toEqual([
      ["lvnode1.0", 0, 0, ["eth0"]],
      ["backup", 1, 0, ["eth0", "eth1"]],
    ]);
    expect(cfg.exports[0]!.acl.accept).toEqual(["00:1b:21:aa:bb:01", "00:1b:21:aa:bb:02"]);
    expect(cfg.exports[1]!.acl.accept).toHaveLength(3);
    expect(cfg.exports[0]!.length).toBe(10 * GiB);
  });

  it("documents every key the schema knows", async () => {
    const { allKeys } = await import("../../src/config/schema.js");
    const text = await readFile(new URL("../../etc/aoed.yaml", import.meta.url), "utf8");
    for (const key of allKeys()) expect(text, key).toMatch(new RegExp(`^\\s*(- )?${key}:`, "m"));
  });
});

describe("loadConfigFile", () => {
  it("reads a real file and uses the real stat", async () => {
    const dir = await mkdtemp(join(tmpdir(), "aoed-config-"));
    try {
      const img = join(dir, "disk.img");
      await writeFile(img, Buffer.alloc(MiB));
      const cfgPath = join(dir, "aoed.yaml");
      await writeFile(
        cfgPath,
        yaml(
          "exports:",
          `  - path: ${img}`,
          "    shelf: 0",
          "    slot: 0",
          "    interfaces: [eth0]",
          "    length: 2MiB",
        ),
      );
      const r = await loadConfigFile(cfgPath, { interfaces: ["eth0"] });
      expect(r.ok).toBe(false);
      if (r.ok) return;
      expect(r.errors.map((d) => `${d.file}:${d.line}:${d.column}`)).toEqual([`${cfgPath}:6:13`]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a missing config file is a diagnostic, not an exception", async () => {
    const r = await loadConfigFile("/nonexistent/aoed.yaml", OPTS);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(formatDiagnostic(r.errors[0]!)).toMatch(
      /^\/nonexistent\/aoed\.yaml: error: cannot read the config file: no such file \(start from/,
    );
  });
});

describe("diagnostic formatting", () => {
  it("formats file:line:column, path, message, hint and an optional source excerpt", () => {
    const d = {
      severity: "error" as const,
      file: "/etc/aoed.yaml",
      line: 2,
      column: 12,
      path: "exports[1].shelf",
      message: "must be a whole number from 0 to 65534, got 70000",
      hint: "did you mean 7000?",
    };
    expect(formatDiagnostic(d)).toBe(
      "/etc/aoed.yaml:2:12: error: exports[1].shelf: must be a whole number from 0 to 65534, got 70000 (did you mean 7000?)",
    );
    expect(formatDiagnostic(d, { source: "exports:\n    shelf: 70000\n" })).toBe(
      [
        "/etc/aoed.yaml:2:12: error: exports[1].shelf: must be a whole number from 0 to 65534, got 70000 (did you mean 7000?)",
        "  2 |     shelf: 70000",
        "    |            ^",
      ].join("\n"),
    );
  });

  it("quotes odd keys in paths", () => {
    expect(formatPath(["interfaces", "eth0.100", "mtu"])).toBe('interfaces["eth0.100"].mtu');
    expect(formatPath(["exports", 1, "shelf"])).toBe("exports[1].shelf");
  });

  it("suggests names", () => {
    expect(didYouMean("writeCache", ["write-cache", "read-only"])).toBe("write-cache");
    expect(didYouMean("sholf", ["shelf", "slot"])).toBe("shelf");
    expect(didYouMean("warning", ["warn", "error"])).toBe("warn");
    expect(didYouMean("banana", ["shelf", "slot"])).toBeUndefined();
  });
});

describe("demo", () => {
  it("creates the image and the veth pair, and returns a valid config", async () => {
    const dir = await mkdtemp(join(tmpdir(), "aoed-demo-"));
    try {
      const ifaces = ["lo", "eth0"];
      const calls: string[] = [];
      const run = async (cmd: string, args: string[]) => {
        calls.push([cmd, ...args].join(" "));
        if (args[1] === "add") ifaces.push(DEMO_INTERFACE, DEMO_PEER);
      };
      const cfg = await prepareDemo({ dir, run, interfaces: () => ifaces });
      expect(calls).toEqual([
        "ip link add aoed-demo0 mtu 9000 type veth peer name aoed-demo1 mtu 9000",
        "ip link set aoed-demo0 up",
        "ip link set aoed-demo1 up",
      ]);
      const image = join(dir, "demo.img");
      const st = await stat(image);
      expect(st.size).toBe(DEMO_IMAGE_BYTES);
      expect(st.blocks * 512).toBeLessThan(DEMO_IMAGE_BYTES); // sparse
      expect(cfg.source).toBe("embedded:demo");
      expect(cfg.stateDir).toBe(join(dir, "state"));
      expect(cfg.exports).toHaveLength(1);
      expect(cfg.exports[0]).toMatchObject({
        name: "demo",
        path: image,
        shelf: 0,
        slot: 0,
        interfaces: [DEMO_INTERFACE],
        length: null,
      });

      // second run: nothing to create, the data is kept
      calls.length = 0;
      await writeFile(image, "hello", { flag: "r+" });
      await prepareDemo({ dir, run, interfaces: () => ifaces });
      expect(calls).toEqual(["ip link set aoed-demo0 up", "ip link set aoed-demo1 up"]);
      expect((await readFile(image)).subarray(0, 5).toString()).toBe("hello");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses a demo directory that is not private (symlink attacks in /tmp)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "aoed-demo-"));
    try {
      const link = join(dir, "link");
      await mkdir(join(dir, "target"));
      await symlink(join(dir, "target"), link);
      const run = async () => {};
      await expect(prepareDemo({ dir: link, run, interfaces: () => ["lo"] })).rejects.toThrow(
        /is not a directory that only this user can write/,
      );
      await chmod(join(dir, "target"), 0o777);
      await expect(
        prepareDemo({ dir: join(dir, "target"), run, interfaces: () => ["lo"] }),
      ).rejects.toThrow(/is not a directory that only this user can write/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("explains what to do when the veth pair cannot be created", async () => {
    const dir = await mkdtemp(join(tmpdir(), "aoed-demo-"));
    try {
      const run = async () => {
        throw Object.assign(new Error("Command failed"), {
          stderr: "RTNETLINK answers: Operation not permitted\n",
        });
      };
      await expect(prepareDemo({ dir, run, interfaces: () => ["lo"] })).rejects.toThrow(
        /RTNETLINK answers: Operation not permitted\n.*try `sudo aoed --demo`/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
