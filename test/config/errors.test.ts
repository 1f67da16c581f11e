import { describe, expect, it } from "vitest";
import { formatDiagnostic } from "../../src/config/diagnostics.js";
import { load, yaml } from "./fixtures.js";

interface Case {
  name: string;
  text: string;
  /** 1-based line and column of the offending node. */
  at: [number, number];
  path: string;
  message: string | RegExp;
  /** The hint expected; null: none at all. */
  hint?: string | RegExp | null;
}

const E = (...rest: string[]) =>
  yaml("exports:", "  - path: /srv/a.img", "    shelf: 0", "    slot: 0", ...rest);

/** `setting` (one line, indented) under `interfaces: eth0:`, then one export on eth0. */
const I = (setting: string) =>
  yaml("interfaces:", "  eth0:", setting, ...E("    interfaces: [eth0]").trimEnd().split("\n"));

const cases: Case[] = [
  // ---- YAML syntax (positions from the yaml library)
  {
    name: "YAML: inconsistent indentation",
    text: yaml("exports:", "  - path: /srv/a.img", "    shelf: 0", "   slot: 0"),
    at: [4, 1],
    path: "",
    message: "YAML syntax: Sequence item without - indicator",
    hint: "check the indentation of this line against the lines above",
  },
  {
    name: "YAML: a key indented deeper than the one above it (reported on its own line)",
    text: yaml("exports:", "  - path: /srv/a.img", "    shelf: 0", "      slot: 0"),
    at: [4, 7],
    path: "",
    message:
      "YAML syntax: `slot:` is indented 6 spaces, deeper than `shelf:` on the line above (4)",
    hint: "keys of one mapping line up: give `slot:` the indentation of `shelf:` (4 spaces); to nest it under `shelf:`, that key must have no value of its own",
  },
  {
    name: "YAML: a top-level key indented",
    text: yaml("log-level: info", "  state-dir: /var/lib/aoed", "exports: []"),
    at: [2, 3],
    path: "",
    message:
      "YAML syntax: `state-dir:` is indented 2 spaces, deeper than `log-level:` on the line above (0)",
    hint: "keys of one mapping line up: give `state-dir:` the indentation of `log-level:` (none); to nest it under `log-level:`, that key must have no value of its own",
  },
  {
    name: "YAML: tab used for indentation",
    text: yaml("exports:", "\t- path: /srv/a.img"),
    at: [2, 1],
    path: "",
    message: "YAML syntax: a tab is used for indentation",
    hint: "indent with spaces",
  },
  {
    name: "YAML: unclosed flow sequence",
    text: E("    interfaces: [eth0", "log-level: info"),
    at: [6, 1],
    path: "",
    message: /^YAML syntax: Flow sequence/,
    hint: "a quote or bracket opened earlier is never closed",
  },
  {
    name: "YAML: duplicate key",
    text: E("    interfaces: [eth0]", "    slot: 1"),
    at: [6, 5],
    path: "exports[0].slot",
    message: "duplicate key `slot`",
    hint: "it is already set on line 4; keep only one",
  },
  {
    name: "YAML: two documents",
    text: E("    interfaces: [eth0]", "---", "log-level: info"),
    at: [6, 1],
    path: "",
    message: /more than one YAML document/,
  },
  {
    name: "YAML: alias without anchor",
    text: E("    interfaces: *ifs"),
    at: [5, 17],
    path: "",
    message: "unknown alias *ifs",
    hint: "define the anchor &ifs before using it",
  },

  // ---- unknown keys
  {
    name: "unknown key, did you mean",
    text: E("    interfaces: [eth0]", "    wirte-cache: false"),
    at: [6, 5],
    path: "exports[0].wirte-cache",
    message: "unknown key `wirte-cache`",
    hint: "did you mean `write-cache`?",
  },
  {
    name: "unknown key, camelCase",
    text: yaml("logLevel: debug", ...E("    interfaces: [eth0]").trimEnd().split("\n")),
    at: [1, 1],
    path: "logLevel",
    message: "unknown key `logLevel`",
    hint: "did you mean `log-level`?",
  },
  {
    name: "unknown key that belongs elsewhere",
    text: yaml(
      "defaults:",
      "  read-only: true",
      ...E("    interfaces: [eth0]").trimEnd().split("\n"),
    ),
    at: [2, 3],
    path: "defaults.read-only",
    message: "unknown key `read-only`",
    hint: "`read-only` belongs in an export (an item under `exports:`)",
  },
  {
    name: "unknown key, nothing close",
    text: I("    colour: blue"),
    at: [3, 5],
    path: "interfaces.eth0.colour",
    message: "unknown key `colour`",
    hint: "valid keys here: mtu, buffers, busy-poll",
  },

  // ---- types and ranges
  {
    name: "wrong type: text for a number",
    text: yaml(
      "exports:",
      "  - path: /srv/a.img",
      "    shelf: one",
      "    slot: 0",
      "    interfaces: [eth0]",
    ),
    at: [3, 12],
    path: "exports[0].shelf",
    message: 'must be a whole number from 0 to 65534, except 4095, got the text "one"',
  },
  {
    name: "out of range",
    text: E("    interfaces: [eth0]", "    queue-length: 1"),
    at: [6, 19],
    path: "exports[0].queue-length",
    message: "must be a whole number from 2 to 16384, got 1",
  },
  {
    name: "out of range: busy-poll",
    text: I("    busy-poll: 5000"),
    at: [3, 16],
    path: "interfaces.eth0.busy-poll",
    message: "must be microseconds from 0 to 1000, got 5000",
  },
  {
    name: "out of range: sectors",
    text: E("    interfaces: [eth0]", "    sectors: 256"),
    at: [6, 14],
    path: "exports[0].sectors",
    message: "must be a whole number from 1 to 255, got 256",
  },
  {
    name: "enum with did-you-mean",
    text: yaml("log-level: warning", ...E("    interfaces: [eth0]").trimEnd().split("\n")),
    at: [1, 12],
    path: "log-level",
    message: 'must be one of trace, debug, info, warn, error, got "warning"',
    hint: "did you mean `warn`?",
  },
  {
    name: "io engine",
    text: E("    interfaces: [eth0]", "    io: uring"),
    at: [6, 9],
    path: "exports[0].io",
    message: 'must be one of auto, mmap, io_uring, threads, sync, got "uring"',
  },
  {
    name: "direct-io value",
    text: E("    interfaces: [eth0]", "    direct-io: reads"),
    at: [6, 16],
    path: "exports[0].direct-io",
    message: 'must be true, false or writes, got "reads"',
  },
  {
    name: "direct-io number: no hint to quote it",
    text: E("    interfaces: [eth0]", "    direct-io: 1"),
    at: [6, 16],
    path: "exports[0].direct-io",
    message: "must be true, false or writes, got the number 1",
    hint: null,
  },
  {
    name: "YAML 1.1 boolean",
    text: yaml(
      "defaults:",
      "  write-cache: no",
      ...E("    interfaces: [eth0]").trimEnd().split("\n"),
    ),
    at: [2, 16],
    path: "defaults.write-cache",
    message: 'must be true or false, got the text "no"',
    hint: 'write false: in YAML 1.2 "no" is text, not a boolean',
  },
  {
    name: "list expected",
    text: E("    interfaces: eth0"),
    at: [5, 17],
    path: "exports[0].interfaces",
    message: /^must be a list of network interface names or globs.*, got the text "eth0"$/,
    hint: "write a list: `[eth0]`",
  },
  {
    name: "number where text is expected",
    text: E("    interfaces: [eth0]", "    serial: 0012"),
    at: [6, 13],
    path: "exports[0].serial",
    message: "must be at most 20 printable ASCII characters, got the number 12",
    hint: 'quote it to keep it as text: `serial: "0012"`',
  },
  {
    name: "serial too long",
    text: E("    interfaces: [eth0]", "    serial: ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    at: [6, 13],
    path: "exports[0].serial",
    message:
      'must be at most 20 printable ASCII characters, got "ABCDEFGHIJKLMNOPQRSTUVWXYZ" (26 characters)',
  },
  {
    name: "model not ASCII",
    text: E("    interfaces: [eth0]", "    model: Stöckchen"),
    at: [6, 12],
    path: "exports[0].model",
    message: 'must be at most 40 printable ASCII characters, got "Stöckchen"',
  },
  {
    name: "mtu neither auto nor a number in range",
    text: yaml(
      "interfaces:",
      "  eth0: { mtu: 100 }",
      ...E("    interfaces: [eth0]").trimEnd().split("\n"),
    ),
    at: [2, 16],
    path: "interfaces.eth0.mtu",
    message: "must be auto or a number from 576 to 65535, got 100",
  },
  {
    name: "relative path",
    text: yaml(
      "exports:",
      "  - path: srv/a.img",
      "    shelf: 0",
      "    slot: 0",
      "    interfaces: [eth0]",
    ),
    at: [2, 11],
    path: "exports[0].path",
    message: /^must be an absolute path/,
  },
  {
    name: "bad interface name as a key",
    text: yaml("interfaces:", "  eth0/1: {}", ...E("    interfaces: [eth0]").trimEnd().split("\n")),
    at: [2, 3],
    path: 'interfaces["eth0/1"]',
    message: '"eth0/1" is not a valid name: must be a network interface name',
  },
  {
    name: "bad ACL list name",
    text: yaml(
      "acls:",
      "  1st-floor: [00:1b:21:aa:bb:01]",
      ...E("    interfaces: [eth0]").trimEnd().split("\n"),
    ),
    at: [2, 3],
    path: 'acls["1st-floor"]',
    message: /^"1st-floor" is not a valid name: must be a list name/,
  },
  {
    name: "exports written as a mapping",
    text: yaml("exports:", "  disk0:", "    path: /srv/a.img"),
    at: [2, 3],
    path: "exports",
    message: "must be a list of exports (each item starts with `- `), got a mapping",
    hint: "start each export with `- `",
  },

  {
    name: "export written as a bare path",
    text: yaml("exports:", "  - /dev/sdb"),
    at: [2, 5],
    path: "exports[0]",
    message:
      'must be a mapping with path (or uuid), shelf, slot and interfaces, got the text "/dev/sdb"',
    hint: "write `- path: /dev/sdb` and add shelf, slot and interfaces below it",
  },
  {
    name: "empty value",
    text: yaml(
      "exports:",
      "  - path: /srv/a.img",
      "    shelf:",
      "    slot: 0",
      "    interfaces: [eth0]",
    ),
    at: [3, 5],
    path: "exports[0].shelf",
    message: "must be a whole number from 0 to 65534, except 4095, got an empty value",
  },

  // ---- missing keys
  {
    name: "missing key",
    text: yaml("exports:", "  - path: /srv/a.img", "    slot: 0", "    interfaces: [eth0]"),
    at: [2, 5],
    path: "exports[0]",
    message: "missing `shelf:` (a whole number from 0 to 65534, except 4095)",
  },
  {
    name: "missing interfaces, with an example from the machine",
    text: yaml("exports:", "  - path: /srv/a.img", "    shelf: 0", "    slot: 0"),
    at: [2, 5],
    path: "exports[0]",
    message: /^missing `interfaces:`/,
    hint: "e.g. `interfaces: [enp3s0]`",
  },

  // ---- reserved addresses
  {
    name: "shelf 0xFFFF",
    text: yaml(
      "exports:",
      "  - path: /srv/a.img",
      "    shelf: 0xFFFF",
      "    slot: 0",
      "    interfaces: [eth0]",
    ),
    at: [3, 12],
    path: "exports[0].shelf",
    message: "shelf 65535 (0xFFFF) is the broadcast shelf and cannot be exported",
    hint: "use a whole number from 0 to 65534, except 4095",
  },
  {
    name: "shelf 0x0FFF",
    text: yaml(
      "exports:",
      "  - path: /srv/a.img",
      "    shelf: 0x0FFF",
      "    slot: 0",
      "    interfaces: [eth0]",
    ),
    at: [3, 12],
    path: "exports[0].shelf",
    message: "shelf 4095 (0x0FFF) is reserved: the Linux aoe initiator ignores it",
  },
  {
    name: "slot 0xFF",
    text: yaml(
      "exports:",
      "  - path: /srv/a.img",
      "    shelf: 0",
      "    slot: 0xFF",
      "    interfaces: [eth0]",
    ),
    at: [4, 11],
    path: "exports[0].slot",
    message: "slot 255 (0xFF) is the broadcast slot and cannot be exported",
  },

  // ---- backing store
  {
    name: "both path and uuid",
    text: E("    uuid: 6f1c2a9e-3b7d-4e8a-9c51-0d2f4a6b8e10", "    interfaces: [eth0]"),
    at: [5, 5],
    path: "exports[0].uuid",
    message: "both `path:` and `uuid:` are set",
  },
  {
    name: "neither path nor uuid",
    text: yaml("exports:", "  - shelf: 0", "    slot: 0", "    interfaces: [eth0]"),
    at: [2, 5],
    path: "exports[0]",
    message: "missing `path:` or `uuid:`: the export needs a backing file or block device",
  },
  {
    name: "directory",
    text: yaml(
      "exports:",
      "  - path: /srv/dir",
      "    shelf: 0",
      "    slot: 0",
      "    interfaces: [eth0]",
    ),
    at: [2, 11],
    path: "exports[0].path",
    message: "/srv/dir is a directory",
  },
  {
    name: "empty file",
    text: yaml(
      "exports:",
      "  - path: /srv/empty.img",
      "    shelf: 0",
      "    slot: 0",
      "    interfaces: [eth0]",
    ),
    at: [2, 11],
    path: "exports[0].path",
    message: "the backing file /srv/empty.img is empty (0 bytes)",
  },

  // ---- window
  {
    name: "offset not a multiple of 512",
    text: E("    interfaces: [eth0]", "    offset: 1000"),
    at: [6, 13],
    path: "exports[0].offset",
    message: "1000 is not a multiple of 512 bytes",
    hint: "use 512 bytes or 1 KiB",
  },
  {
    name: "length not a multiple of 512",
    text: E("    interfaces: [eth0]", "    length: 1.1MiB"),
    at: [6, 13],
    path: "exports[0].length",
    message: '"1.1MiB" is not a whole number of bytes',
  },
  {
    name: "length with a fraction of a sector",
    text: E("    interfaces: [eth0]", "    length: 1.25K"),
    at: [6, 13],
    path: "exports[0].length",
    message: '"1.25K" is not a multiple of 512 bytes',
    hint: "use 1 KiB or 1.5 KiB (1536 bytes)",
  },
  {
    name: "length 0",
    text: E("    interfaces: [eth0]", "    length: 0"),
    at: [6, 13],
    path: "exports[0].length",
    message: "must not be 0",
  },
  {
    name: "unknown unit",
    text: E("    interfaces: [eth0]", "    offset: 10 GB2"),
    at: [6, 13],
    path: "exports[0].offset",
    message: /got "10 GB2"$/,
    hint: /^units: K, M, G, T/,
  },
  {
    name: "window past the end of the file",
    text: yaml(
      "exports:",
      "  - path: /srv/small.img",
      "    shelf: 0",
      "    slot: 0",
      "    interfaces: [eth0]",
      "    offset: 1MiB",
      "    length: 4MiB",
    ),
    at: [7, 13],
    path: "exports[0].length",
    message: "the window (offset 1 MiB + length 4 MiB) ends past the end of /srv/small.img (4 MiB)",
    hint: "use a length of at most 3 MiB, or grow the file with `truncate -s 5M /srv/small.img`",
  },
  {
    name: "offset past the end of the file",
    text: yaml(
      "exports:",
      "  - path: /srv/small.img",
      "    shelf: 0",
      "    slot: 0",
      "    interfaces: [eth0]",
      "    offset: 4MiB",
    ),
    at: [6, 13],
    path: "exports[0].offset",
    message: "offset 4 MiB is at or past the end of /srv/small.img (4 MiB)",
  },

  // ---- interfaces

  // ---- cross-export
  {
    name: "duplicate shelf/slot on an interface (via a glob)",
    text: yaml(
      "exports:",
      "  - path: /srv/a.img",
      "    shelf: 0",
      "    slot: 0",
      "    interfaces: [eth1]",
      "  - path: /srv/b.img",
      "    name: b",
      "    shelf: 0",
      "    slot: 0",
      "    interfaces: [eth*]",
    ),
    at: [8, 12],
    path: "exports[1].shelf",
    message: "shelf 0 slot 0 is already exported on eth1 by exports[0] (`e0.0`, line 2)",
  },
  {
    name: "duplicate shelf/slot with default names: one error, not two",
    text: yaml(
      "exports:",
      "  - path: /srv/a.img",
      "    shelf: 0",
      "    slot: 0",
      "    interfaces: [eth0]",
      "  - path: /srv/b.img",
      "    shelf: 0",
      "    slot: 0",
      "    interfaces: [eth0, eth1]",
    ),
    at: [7, 12],
    path: "exports[1].shelf",
    message: "shelf 0 slot 0 is already exported on eth0 by exports[0] (`e0.0`, line 2)",
    hint: "each export on an interface needs its own shelf/slot pair",
  },
  {
    name: "duplicate export names",
    text: yaml(
      "exports:",
      "  - name: disk",
      "    path: /srv/a.img",
      "    shelf: 0",
      "    slot: 0",
      "    interfaces: [eth0]",
      "  - name: disk",
      "    path: /srv/b.img",
      "    shelf: 0",
      "    slot: 1",
      "    interfaces: [eth0]",
    ),
    at: [7, 11],
    path: "exports[1].name",
    message: "duplicate export name `disk`: exports[0] (`disk`, line 2) has it too",
  },
  {
    name: "same shelf/slot on different interfaces: default names collide",
    text: yaml(
      "exports:",
      "  - path: /srv/a.img",
      "    shelf: 0",
      "    slot: 0",
      "    interfaces: [eth0]",
      "  - path: /srv/b.img",
      "    shelf: 0",
      "    slot: 0",
      "    interfaces: [eth1]",
    ),
    at: [6, 5],
    path: "exports[1]",
    message: "this export's default name `e0.0` is already used by exports[0] (`e0.0`, line 2)",
    hint: "add a unique `name:`",
  },

  // ---- ACLs
  {
    name: "unknown ACL list",
    text: yaml(
      "acls:",
      "  xen-hosts: [00:1b:21:aa:bb:01]",
      ...E("    interfaces: [eth0]", "    policy: reject", "    accept: [xen-host]")
        .trimEnd()
        .split("\n"),
    ),
    at: [9, 14],
    path: "exports[0].accept[0]",
    message: "unknown ACL list `xen-host`",
    hint: "did you mean `xen-hosts`?",
  },
  {
    name: "unknown ACL list, none defined",
    text: E("    interfaces: [eth0]", "    deny: [servers]"),
    at: [6, 12],
    path: "exports[0].deny[0]",
    message: "unknown ACL list `servers`",
    hint: "define it under `acls:`, or write a MAC address such as 00:1b:21:aa:bb:01",
  },
  {
    name: "ACL cycle",
    text: yaml(
      "acls:",
      "  a: [00:1b:21:aa:bb:01, b]",
      "  b: [c]",
      "  c: [a]",
      ...E("    interfaces: [eth0]", "    deny: [a]").trimEnd().split("\n"),
    ),
    at: [4, 7],
    path: "acls.c[0]",
    message: "ACL lists refer to each other in a cycle: a -> b -> c -> a",
  },
  {
    name: "ACL list naming itself",
    text: yaml(
      "acls:",
      "  a: [a]",
      ...E("    interfaces: [eth0]", "    deny: [a]").trimEnd().split("\n"),
    ),
    at: [2, 7],
    path: "acls.a[0]",
    message: "ACL lists refer to each other in a cycle: a -> a",
  },
  {
    name: "bad MAC: wrong digit",
    text: E("    interfaces: [eth0]", "    deny: [00:1b:21:aa:bg:01]"),
    at: [6, 12],
    path: "exports[0].deny[0]",
    message: '"00:1b:21:aa:bg:01" is not a valid MAC address: "bg" is not two hex digits',
    hint: "write six two-digit hex bytes, e.g. 00:1b:21:aa:bb:01",
  },
  {
    name: "bad MAC: too short",
    text: E("    interfaces: [eth0]", "    deny: [00:1b:21:aa:bb]"),
    at: [6, 12],
    path: "exports[0].deny[0]",
    message: '"00:1b:21:aa:bb" is not a valid MAC address: it has 5 parts instead of 6',
  },
  {
    name: "bad MAC in a named list",
    text: yaml(
      "acls:",
      "  hosts: [00-1b-21-aa-bb]",
      ...E("    interfaces: [eth0]", "    deny: [hosts]").trimEnd().split("\n"),
    ),
    at: [2, 11],
    path: "acls.hosts[0]",
    message: '"00-1b-21-aa-bb" is not a valid MAC address: it has 5 parts instead of 6',
  },

  // ---- no exports
  {
    name: "empty file",
    text: "# nothing here yet\n",
    at: [1, 1],
    path: "",
    message: "no exports: the config is empty",
    hint: "add at least one, e.g. exports: [{ path: /srv/aoe/disk0.img, shelf: 0, slot: 0, interfaces: [enp3s0] }]",
  },
  {
    name: "no exports key",
    text: yaml("# settings", "log-level: info"),
    at: [2, 1],
    path: "",
    message: "no exports: the config has no `exports:` list",
    hint: /^add at least one, e\.g\. exports: \[/,
  },
  {
    name: "empty exports list",
    text: yaml("log-level: info", "exports: []"),
    at: [2, 10],
    path: "exports",
    message: "no exports: the `exports:` list is empty",
  },
];

describe("each class of mistake gets one precise error", () => {
  it.each(cases)("$name", async (c) => {
    const r = await load(c.text);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const shown = r.errors.map((d) => formatDiagnostic(d)).join("\n");
    expect(r.errors, shown).toHaveLength(1);
    const d = r.errors[0]!;
    expect([d.line, d.column], shown).toEqual(c.at);
    expect(d.path).toBe(c.path);
    expect(d.file).toBe("aoed.yaml");
    expect(d.severity).toBe("error");
    if (typeof c.message === "string") expect(d.message).toBe(c.message);
    else expect(d.message).toMatch(c.message);
    if (c.hint === null) expect(d.hint).toBeUndefined();
    else if (typeof c.hint === "string") expect(d.hint).toBe(c.hint);
    else if (c.hint !== undefined) expect(d.hint).toMatch(c.hint);
    // never leak ajv's own wording
    expect(d.message).not.toMatch(/must NOT|must match|must have required|pattern "/);
  });
});

/** Things a config names that do not exist now: the export waits for them (a boot race), check fails. */
const absentCases: Case[] = [
  {
    name: "missing backing file",
    text: yaml(
      "exports:",
      "  - path: /srv/nope.img",
      "    shelf: 0",
      "    slot: 0",
      "    interfaces: [eth0]",
    ),
    at: [2, 11],
    path: "exports[0].path",
    message: "the backing file /srv/nope.img does not exist; the export waits for it",
    hint: "create a sparse image with `truncate -s 10G /srv/nope.img`, or fix the path",
  },
  {
    name: "missing block device",
    text: yaml(
      "exports:",
      "  - path: /dev/vg0/lv9",
      "    shelf: 0",
      "    slot: 0",
      "    interfaces: [eth0]",
    ),
    at: [2, 11],
    path: "exports[0].path",
    message: "the backing file /dev/vg0/lv9 does not exist; the export waits for it",
    hint: "check the device name with `lsblk`",
  },
  {
    name: "unknown uuid",
    text: yaml(
      "exports:",
      "  - uuid: 0000-1111",
      "    shelf: 0",
      "    slot: 0",
      "    interfaces: [eth0]",
    ),
    at: [2, 11],
    path: "exports[0].uuid",
    message:
      "no disk with this UUID: /dev/disk/by-uuid/0000-1111 does not exist; the export waits for it",
    hint: "list the UUIDs with `blkid` or `ls -l /dev/disk/by-uuid`",
  },
  {
    name: "interface that does not exist",
    text: E("    interfaces: [eht0]"),
    at: [5, 18],
    path: "exports[0].interfaces[0]",
    message: "there is no network interface `eht0` on this machine; the export waits for it",
    hint: "did you mean `eth0`? existing interfaces: enp3s0, eth0, eth1, eth2, eth10, lo, wlan0",
  },
];

describe("what does not exist yet is a warning that the export waits, not an error", () => {
  it.each(absentCases)("$name", async (c) => {
    const r = await load(c.text);
    expect(r.ok).toBe(true);
    const absent = r.warnings.filter((d) => d.absent);
    const shown = r.warnings.map((d) => formatDiagnostic(d)).join("\n");
    expect(absent, shown).toHaveLength(1);
    const d = absent[0]!;
    expect([d.line, d.column], shown).toEqual(c.at);
    expect(d.path).toBe(c.path);
    expect(d.severity).toBe("warning");
    expect(d.message).toBe(c.message);
    expect(d.hint).toBe(c.hint);
    // The export is kept as written, for the engine to start when it appears.
    if (r.ok) expect(r.config.exports).toHaveLength(1);
  });
});

describe("all errors are reported at once", () => {
  it("reports every mistake, sorted by position", async () => {
    const text = yaml(
      "log-level: loud", //                      1
      "defaults:", //                             2
      "  queue_length: 64", //                    3
      "acls:", //                                 4
      "  hosts: [00:1b:21:aa:bb:01, 00:zz]", //   5
      "exports:", //                              6
      "  - path: /srv/nope.img", //               7
      "    shelf: 70000", //                      8
      "    slot: 0", //                           9
      "    interfaces: [eth9]", //                10
      "    offset: 3", //                         11
      "    policy: reject", //                    12
      "    accept: [hostz]", //                   13
      "  - uuid: 6f1c2a9e-3b7d-4e8a-9c51-0d2f4a6b8e10", // 14
      "    slot: 1", //                           15
      "    interfaces: [eth0]", //                16
    );
    const r = await load(text);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map((d) => `${d.line}:${d.column} ${d.path}`)).toEqual([
      "1:12 log-level",
      "3:3 defaults.queue_length",
      "5:30 acls.hosts[1]",
      "8:12 exports[0].shelf",
      "11:13 exports[0].offset",
      "13:14 exports[0].accept[0]",
      "14:5 exports[1]",
    ]);
    // Reported with the errors, as warnings: the missing file and interface.
    expect(
      r.warnings.filter((d) => d.absent).map((d) => `${d.line}:${d.column} ${d.path}`),
    ).toEqual(["7:11 exports[0].path", "10:18 exports[0].interfaces[0]"]);
    expect(r.errors.map((d) => formatDiagnostic(d))).toContain(
      "aoed.yaml:3:3: error: defaults.queue_length: unknown key `queue_length` (did you mean `queue-length`?)",
    );
  });

  it("keeps checking after a duplicate key", async () => {
    const r = await load(yaml("log-level: info", "log-level: debug", "exports: []"));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map((d) => d.message)).toEqual([
      "duplicate key `log-level`",
      "no exports: the `exports:` list is empty",
    ]);
  });

  it("stops after a real syntax error rather than guess", async () => {
    const r = await load(yaml("exports:", "  - path: [a", "    shelf: x: y"));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.length).toBeGreaterThan(0);
    expect(r.errors.every((d) => d.message.startsWith("YAML syntax:"))).toBe(true);
  });
});
