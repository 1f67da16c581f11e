/**
 * The guides quote configurations and aoed's messages; these tests keep the
 * quotes true. Every complete configuration in them (a ```yaml block whose
 * first line is `# /etc/aoed.yaml`, optionally followed by ` on HOST`) must load
 * without errors or warnings, and every message the guides quote must still be
 * in the source.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { formatDiagnostic, loadConfigText } from "../../src/config/load.js";

const GUIDES = ["docs/operations.md", "docs/troubleshooting.md", "docs/metrics.md"];

/** Interfaces the examples use: the lab's, plus what the troubleshooting page names. */
const INTERFACES = ["lo", "eth0", "eth1", "eth1.100", "br0", "bond0"];

function configBlocks(file: string): { file: string; line: number; text: string }[] {
  const text = readFileSync(file, "utf8");
  const out: { file: string; line: number; text: string }[] = [];
  for (const m of text.matchAll(/```yaml\n([\s\S]*?)```/g)) {
    const body = m[1]!;
    if (!/^# \/etc\/aoed\.yaml( on \S+)?\n/.test(body)) continue;
    out.push({ file, line: text.slice(0, m.index).split("\n").length + 1, text: body });
  }
  return out;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return /\.(ts|cc|h)$/.test(name) ? [p] : [];
  });
}

/** Whitespace collapsed, template-literal backticks unescaped: text as it would print. */
const squash = (s: string): string => s.replace(/\\`/g, "`").replace(/\s+/g, " ");

/**
 * Messages (or their fixed parts) that the guides quote. When the code words one
 * differently, update the guides that quote it, then this list.
 */
const QUOTED_MESSAGES = [
  // start and stop
  "aoed ready, serving ",
  "cannot start",
  "permission denied: AF_PACKET needs CAP_NET_RAW",
  "cannot open exports:",
  "the device is in use: mounted, or opened exclusively by another program",
  "aoed needs read/write access; set read-only: true to export it read-only",
  "set read-only: true, or make the filesystem writable for aoed",
  "the filesystem refuses O_DIRECT; set direct-io: false",
  "O_DIRECT reads fail at 512 and 4096-byte alignment; set direct-io: false",
  "cannot read the config file: ",
  "run aoed as root or make the file readable",
  "error(s); nothing started",
  "the address is in use (another aoed?)",
  "change `metrics: listen:` or set `metrics: false`",
  "another aoed is already running: something answers on the control socket ",
  "stop it first, or give this one another `control-socket:`",
  // configuration diagnostics
  "`accept:` has no effect: with policy accept, hosts not listed are accepted too",
  "add `policy: reject` to allow only the listed hosts",
  "policy reject with nothing in `accept:`: no host can use this export",
  "list the allowed hosts under `accept:`",
  "matches no network interface",
  "there is no network interface `",
  "is reserved: the Linux aoe initiator ignores it",
  "is not a valid MAC address: ",
  "write six two-digit hex bytes, e.g. 00:1b:21:aa:bb:01",
  "unknown ACL list `",
  "define it under `acls:`, or write a MAC address such as 00:1b:21:aa:bb:01",
  "is not used by any export",
  "there is no group `",
  "no write-cache (writes durable before ack)",
  // running
  "interface is gone; its exports wait for it to return",
  "interface changed: bound again and exports re-announced",
  "config not reloaded: still serving the previous config",
  "; still running the previous config",
  "aoed reloaded its config",
  ", nothing changed",
  "backend I/O error: answering ABRT",
  "backend I/O errors",
  // aoectl
  "aoed is not running (no socket at ",
  "give --socket PATH or set AOED_SOCKET",
  "only root can use it",
  "or set `control-group:` in aoed's config to let a group in",
  "no reply after ",
  "aoed monitor  every ",
];

describe("configurations quoted in the guides", () => {
  const blocks = GUIDES.flatMap(configBlocks);

  it("are there to check", () => {
    expect(blocks.length).toBeGreaterThanOrEqual(2);
  });

  for (const b of blocks) {
    it(`${b.file}:${b.line} loads without errors or warnings`, async () => {
      const result = await loadConfigText(b.text, `${b.file}:${b.line}`, {
        interfaces: INTERFACES,
        stat: async () => ({ kind: "block", size: 20 * 1024 ** 3 }),
        groups: () => 0,
      });
      const problems = [...(result.ok ? [] : result.errors), ...result.warnings].map((d) =>
        formatDiagnostic(d),
      );
      expect(problems).toEqual([]);
      expect(result.ok).toBe(true);
    });
  }
});

describe("messages quoted in the guides", () => {
  const source = squash(
    [...sourceFiles("src"), ...sourceFiles("native")]
      .map((f) => readFileSync(f, "utf8"))
      .join("\n"),
  );
  const guides = squash(GUIDES.map((f) => readFileSync(f, "utf8")).join("\n"));

  for (const message of QUOTED_MESSAGES) {
    it(`"${message}" is still what aoed says, and a guide quotes it`, () => {
      const text = squash(message);
      expect(source.includes(text), "the code no longer says this: update the guides").toBe(true);
      expect(guides.includes(text), "no guide quotes this any more: drop it from the list").toBe(
        true,
      );
    });
  }
});
