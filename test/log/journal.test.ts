/**
 * Logging to journald: when JOURNAL_STREAM names stdout (systemd's
 * StandardOutput=journal), every line starts with the sd-daemon `<N>` priority
 * of its level and is readable text, so `journalctl -p err` finds errors and
 * `systemctl status` shows sentences. Output to a pipe or a file that is not
 * the journal stays JSON. The journal stream is stood in for by a file: the
 * daemon only compares stdout's device:inode with JOURNAL_STREAM.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { journalPrefix, prettyLine } from "../../src/log.js";

const DIST = path.resolve(import.meta.dirname, "../../dist/src");
const AOED = path.join(DIST, "bin/aoed.cjs");

// One line at each level, through the daemon's own createLogger.
const SCRIPT = `
const { createLogger } = await import(${JSON.stringify(path.join(DIST, "log.js"))});
const log = createLogger("debug");
log.debug("d");
log.info({ export: "disk0", path: "/srv/aoe/a b.img" }, "aoed ready");
log.warn("interface is gone");
log.error({ err: "EIO\\nsecond line" }, "read failed");
log.fatal("cannot start");
process.exit(1);
`;

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-journal-"));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Runs node with stdout (and stderr) into a file that JOURNAL_STREAM names, or with plain pipes. */
function run(args: string[], journal: boolean) {
  const out = path.join(dir, `out-${Math.random().toString(36).slice(2)}`);
  const fd = fs.openSync(out, "w+");
  try {
    const st = fs.fstatSync(fd);
    const env = { ...process.env, JOURNAL_STREAM: `${st.dev}:${st.ino}` };
    if (journal) {
      const r = spawnSync("node", args, { env, stdio: ["ignore", fd, fd] });
      return { status: r.status, text: fs.readFileSync(out, "utf8") };
    }
    // JOURNAL_STREAM is inherited, but stdout was redirected to a pipe: not the journal.
    const r = spawnSync("node", args, { env, encoding: "utf8" });
    return { status: r.status, text: r.stdout + r.stderr };
  } finally {
    fs.closeSync(fd);
  }
}

describe("journald priorities", () => {
  it("maps pino levels to sd-daemon priorities", () => {
    expect([60, 50, 40, 30, 20, 10].map(journalPrefix)).toEqual([
      "<2>",
      "<3>",
      "<4>",
      "<6>",
      "<7>",
      "<7>",
    ]);
  });

  it("keeps an entry on one line and quotes values with spaces", () => {
    const line = JSON.stringify({ level: 50, time: "t", pid: 1, msg: "a\nb", file: "x y", n: 2 });
    expect(prettyLine(line, true)).toBe('<3>ERROR a b  file="x y" n=2\n');
  });

  it("prefixes every line with its priority when stdout is the journal", () => {
    const { status, text } = run(["--input-type=module", "-e", SCRIPT], true);
    expect(status).toBe(1);
    expect(text.split("\n").filter(Boolean)).toEqual([
      "<7>DEBUG d",
      '<6>INFO  aoed ready  export=disk0 path="/srv/aoe/a b.img"',
      "<4>WARN  interface is gone",
      '<3>ERROR read failed  err="EIO\\nsecond line"',
      // Written synchronously: the line before process.exit() is not lost.
      "<2>FATAL cannot start",
    ]);
  });

  it("stays JSON, without prefixes, when stdout is a pipe", () => {
    const { text } = run(["--input-type=module", "-e", SCRIPT], false);
    const lines = text.split("\n").filter(Boolean);
    expect(lines).toHaveLength(5);
    const levels = lines.map((l) => (JSON.parse(l) as { level: number }).level);
    expect(levels.sort()).toEqual([20, 30, 40, 50, 60]);
    expect(text).not.toMatch(/^</m);
  });

  it("a config the daemon rejects at start is logged at priority err", () => {
    const config = path.join(dir, "aoed.yaml");
    fs.writeFileSync(config, "exports: []\n");
    const { status, text } = run([AOED, "--config", config], true);
    expect(status).toBe(2);
    const lines = text.split("\n").filter(Boolean);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line).toMatch(/^<3>/);
    expect(text).toMatch(/nothing started/);
  });
});
