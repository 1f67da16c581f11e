/** The config keys of the admin side: `metrics:`, `control-socket:`, `control-group:`. */
import { describe, expect, it } from "vitest";
import { formatDiagnostic } from "../../src/config/diagnostics.js";
import type { LoadResult } from "../../src/config/load.js";
import type { Config } from "../../src/config/types.js";
import { load, OPTS, yaml } from "./fixtures.js";

const EXPORT = ["exports:", "  - { path: /srv/a.img, shelf: 0, slot: 0, interfaces: [eth0] }"];
const GROUPS = { ...OPTS, groups: (name: string) => (name === "aoe" ? 990 : null) };

function ok(r: LoadResult): Config {
  if (!r.ok) throw new Error(r.errors.map((d) => formatDiagnostic(d)).join("\n"));
  expect(r.warnings.map((d) => formatDiagnostic(d))).toEqual([]);
  return r.config;
}

async function withLines(...lines: string[]): Promise<Config> {
  return ok(await load(yaml(...lines, ...EXPORT), GROUPS));
}

async function errorsOf(...lines: string[]) {
  const r = await load(yaml(...lines, ...EXPORT), GROUPS);
  if (r.ok) throw new Error("expected errors");
  return r.errors.map((d) => ({ line: d.line, path: d.path, message: d.message, hint: d.hint }));
}

describe("metrics:", () => {
  it("defaults to 127.0.0.1:9288", async () => {
    expect((await withLines()).metrics).toEqual({ host: "127.0.0.1", port: 9288 });
    expect((await withLines("metrics:")).metrics).toEqual({ host: "127.0.0.1", port: 9288 });
    expect((await withLines("metrics: {}")).metrics).toEqual({ host: "127.0.0.1", port: 9288 });
    expect((await withLines("metrics: true")).metrics).toEqual({ host: "127.0.0.1", port: 9288 });
  });

  it("is turned off by false or off, at either level", async () => {
    for (const line of [
      "metrics: false",
      "metrics: off",
      "metrics: { listen: off }",
      "metrics: { listen: false }",
    ])
      expect((await withLines(line)).metrics, line).toBeNull();
  });

  it("listens where told: IPv4, [IPv6], a name, or every address", async () => {
    const listen = async (v: string) => (await withLines("metrics:", `  listen: "${v}"`)).metrics;
    expect(await listen("0.0.0.0:9100")).toEqual({ host: "0.0.0.0", port: 9100 });
    expect(await listen("[::1]:9288")).toEqual({ host: "::1", port: 9288 });
    expect(await listen("localhost:9288")).toEqual({ host: "localhost", port: 9288 });
    expect(await listen(":9288")).toEqual({ host: null, port: 9288 });
    expect(await listen("*:9288")).toEqual({ host: null, port: 9288 });
  });

  it("reports a listen address without a port, and a port out of range", async () => {
    expect(await errorsOf("metrics:", "  listen: localhost")).toEqual([
      {
        line: 2,
        path: "metrics.listen",
        message: expect.stringMatching(/^must be HOST:PORT to serve \/metrics on, e\.g\. /),
        hint: undefined,
      },
    ]);
    expect(await errorsOf("metrics:", "  listen: 127.0.0.1:70000")).toEqual([
      {
        line: 2,
        path: "metrics.listen",
        message: "port 70000 is out of range",
        hint: "use a port from 1 to 65535, e.g. 127.0.0.1:9288",
      },
    ]);
  });

  it("says where a misplaced or misspelt key belongs", async () => {
    expect(await errorsOf("listen: 127.0.0.1:9288")).toMatchObject([
      {
        path: "listen",
        message: "unknown key `listen`",
        hint: "`listen` belongs under `metrics:`",
      },
    ]);
    expect(await errorsOf("metrics:", "  port: 9288")).toMatchObject([
      { path: "metrics.port", message: "unknown key `port`", hint: "valid keys here: listen" },
    ]);
    expect(await errorsOf("metrics: no")).toMatchObject([
      { path: "metrics", hint: 'write false: in YAML 1.2 "no" is text, not a boolean' },
    ]);
  });
});

describe("control-socket: and control-group:", () => {
  it("defaults to /run/aoed/aoed.sock, owned by the daemon's group", async () => {
    expect((await withLines()).control).toEqual({
      socket: "/run/aoed/aoed.sock",
      group: null,
      gid: null,
    });
  });

  it("takes a path, a group name or number, and off", async () => {
    expect((await withLines("control-socket: /tmp/x/aoed.sock")).control).toEqual({
      socket: "/tmp/x/aoed.sock",
      group: null,
      gid: null,
    });
    expect((await withLines("control-group: aoe")).control).toMatchObject({
      group: "aoe",
      gid: 990,
    });
    expect((await withLines("control-group: 1234")).control).toMatchObject({
      group: "1234",
      gid: 1234,
    });
    expect((await withLines("control-socket: off")).control).toBeNull();
    expect((await withLines("control-socket: false")).control).toBeNull();
  });

  it("reports a relative or too long path and an unknown group", async () => {
    expect(await errorsOf("control-socket: run/aoed.sock")).toMatchObject([
      {
        line: 1,
        path: "control-socket",
        message: expect.stringContaining("must be an absolute path for aoectl's control socket"),
      },
    ]);
    expect(await errorsOf(`control-socket: /tmp/${"x".repeat(120)}`)).toMatchObject([
      {
        line: 1,
        path: "control-socket",
        message: "the path is 125 bytes long; a unix socket path can have at most 107",
      },
    ]);
    expect(await errorsOf("control-group: wheelz")).toEqual([
      {
        line: 1,
        path: "control-group",
        message: "there is no group `wheelz` on this machine",
        hint: "create it with `groupadd wheelz`, give a group number, or leave `control-group:` out: then only root can use aoectl's admin commands",
      },
    ]);
  });

  it("warns about a group for a socket that is off", async () => {
    const r = await load(yaml("control-socket: off", "control-group: aoe", ...EXPORT), GROUPS);
    expect(r.ok).toBe(true);
    expect(r.warnings.map((d) => [d.line, d.path, d.message])).toEqual([
      [2, "control-group", "`control-group:` has no effect: the control socket is off"],
    ]);
  });

  it("defaults to $AOED_SOCKET when set, as aoectl does", async () => {
    const saved = process.env.AOED_SOCKET;
    process.env.AOED_SOCKET = "/tmp/elsewhere/aoed.sock";
    try {
      const opts = { ...GROUPS, defaultControlSocket: undefined };
      let r = await load(yaml(...EXPORT), opts);
      expect(r.ok && r.config.control?.socket).toBe("/tmp/elsewhere/aoed.sock");
      r = await load(yaml("control-socket: /run/x.sock", ...EXPORT), opts);
      expect(r.ok && r.config.control?.socket).toBe("/run/x.sock");
      process.env.AOED_SOCKET = "";
      r = await load(yaml(...EXPORT), opts);
      expect(r.ok && r.config.control?.socket).toBe("/run/aoed/aoed.sock");
    } finally {
      if (saved === undefined) delete process.env.AOED_SOCKET;
      else process.env.AOED_SOCKET = saved;
    }
  });

  it("looks group names up on the machine by default", async () => {
    const r = await load(yaml("control-group: root", ...EXPORT));
    expect(r.ok && r.config.control).toMatchObject({ group: "root", gid: 0 });
  });
});
