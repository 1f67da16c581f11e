// Host side of the end-to-end "reload" scenario (README.md, "Reload under
// load"): rewrites aoed's config file while the guest runs a verified
// workload on e0.0, and checks every reload aoed logs against what was written.
//
// aoed-target.sh starts it (compiled: dist/test/e2e/config-churn.js) in the
// target's network namespace and process group when AOE_SCENARIO=reload:
//   1. wait for aoed's "aoed ready" line in --log and for the guest's
//      "E2E-STEP reload" line in --console (its workload has started);
//   2. write --edits versions of --config. Valid ones add, remove and change
//      exports other than e0.0: e0.1's read-only/serial/queue-length, and e1.N
//      exports with their own small images. Invalid ones have a YAML syntax
//      error, an unknown key, a duplicate shelf/slot or name, or an
//      out-of-range value (a missing backing file is no error: that export
//      waits for it, test/integration/waiting.test.ts). Most are written one at a time (each
//      reload is awaited, so they are further apart than the 250 ms debounce),
//      some in quick bursts (30-120 ms apart, folded into one reload), in place
//      or by write-and-rename or by an editor's backup-and-rewrite. A few
//      SIGHUPs without a change are mixed in;
//   3. after each write, wait for aoed's "config reloaded" / "config not
//      reloaded" line(s) and check them: the reason, added/removed/changed/
//      unchanged exactly as computed from the previous valid config, e0.0
//      always unchanged, every invalid version refused;
//   4. the last valid version also adds the done marker "churn-done" (shelf 2
//      slot 0, seen by the guest as e2.0: its cue to stop the workload); two
//      invalid versions follow it;
//   5. run `aoed check` on the last valid version, and write OUT/churn.json
//      and OUT/churn-result.txt (lines RESULT, SUMMARY, TARGETS, FAIL ...).
// Every version written is kept as OUT/churn/edit-NN.yaml; the last valid one
// also as OUT/churn/last-valid.yaml. Progress goes to stdout (churn.log).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { parse, stringify } from "yaml";

const { values: opt } = parseArgs({
  options: {
    config: { type: "string" },
    out: { type: "string" },
    aoed: { type: "string" },
    pid: { type: "string" },
    log: { type: "string" },
    console: { type: "string" },
    edits: { type: "string", default: "50" },
    seed: { type: "string", default: "1" },
    "start-timeout": { type: "string", default: "900" },
  },
});
if (!opt.config || !opt.out || !opt.aoed || !opt.pid) {
  process.stderr.write(
    "usage: config-churn --config FILE --out DIR --aoed AOED_JS --pid AOED_PID [--log FILE] [--console FILE] [--edits N] [--seed N]\n",
  );
  process.exit(2);
}
const CONFIG = path.resolve(opt.config);
const OUT = path.resolve(opt.out);
const AOED = path.resolve(opt.aoed);
const PID = Number(opt.pid);
const LOG = path.resolve(opt.log ?? path.join(OUT, "target.log"));
const CONSOLE = path.resolve(opt.console ?? path.join(OUT, "console.log"));
const EDITS = Number(opt.edits);
const SEED = Number(opt.seed);
const START_TIMEOUT_MS = Number(opt["start-timeout"]) * 1000;
const DIR = path.join(OUT, "churn");
/** Shelf 2 slot 0: the guest stops its workload when it discovers it. */
const DONE = { name: "churn-done", shelf: 2, slot: 0 };
const POOL = 6; // e1.0 .. e1.5
/** Time from an edit to aoed's reload line before it counts as missing. */
const LINE_TIMEOUT_MS = 20_000;
/** An e1.N is removed only this long after it appeared (the guest may still be reading its partition table). */
const MIN_AGE_MS = 2_000;

const T0 = Date.now();
const secs = () => ((Date.now() - T0) / 1000).toFixed(1);
const say = (s: string) => process.stdout.write(`[churn ${secs()}s] ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ random
let rngState = SEED >>> 0 || 1;
function rand(): number {
  // mulberry32
  rngState = (rngState + 0x6d2b79f5) >>> 0;
  let t = rngState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const randInt = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
function pick<T>(xs: readonly T[]): T {
  return xs[Math.floor(rand() * xs.length)]!;
}

// ------------------------------------------------------------------ model
/** One export as written to the file (only keys that are set). */
interface Exp {
  name?: string;
  path: string;
  shelf: number;
  slot: number;
  interfaces: string[];
  "read-only"?: boolean;
  serial?: string;
  "queue-length"?: number;
}
/** Exports by effective name, in file order. */
type Model = Map<string, Exp>;
const nameOf = (e: Exp) => e.name ?? `e${e.shelf}.${e.slot}`;
const targetOf = (e: Exp) => `e${e.shelf}.${e.slot}`;
const clone = (m: Model): Model => new Map([...m].map(([k, e]) => [k, { ...e }]));
/** Same settings. Values equal to aoed's defaults are never written, so "set" vs "left out" always differs. */
const same = (a: Exp, b: Exp) =>
  JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

interface Summary {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
}
function diff(prev: Model, next: Model): Summary {
  const s: Summary = { added: [], removed: [], changed: [], unchanged: [] };
  for (const [n, e] of next) {
    const p = prev.get(n);
    if (!p) s.added.push(n);
    else if (same(p, e)) s.unchanged.push(n);
    else s.changed.push(n);
  }
  for (const n of prev.keys()) if (!next.has(n)) s.removed.push(n);
  return s;
}
const sortedSummary = (s: Summary): Summary => ({
  added: [...s.added].sort(),
  removed: [...s.removed].sort(),
  changed: [...s.changed].sort(),
  unchanged: [...s.unchanged].sort(),
});
const sameSummary = (a: Summary, b: Summary) =>
  JSON.stringify(sortedSummary(a)) === JSON.stringify(sortedSummary(b));
const fmtSummary = (s: Summary) =>
  `+[${s.added.join(" ")}] -[${s.removed.join(" ")}] ~[${s.changed.join(" ")}] =[${s.unchanged.join(" ")}]`;

// ------------------------------------------------------------------ rendering
function scalar(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v); // a JSON string is a YAML double-quoted scalar
  if (Array.isArray(v)) return `[${v.map(scalar).join(", ")}]`;
  return String(v);
}
function exportLines(e: Record<string, unknown>): string[] {
  return Object.entries(e)
    .filter(([, v]) => v !== undefined)
    .map(([k, v], i) => `${i === 0 ? "  - " : "    "}${k}: ${scalar(v)}`);
}
let header: Record<string, unknown> = {};
/** The file: a comment, the header keys of the original config, then the exports, each a list of lines. */
function renderBlocks(comment: string, blocks: string[][], headerExtra = ""): string {
  const head = Object.keys(header).length > 0 ? stringify(header) : "";
  return `# ${comment}\n${head}${headerExtra}exports:\n${blocks.flat().join("\n")}\n`;
}
function render(comment: string, m: Model, shuffle: boolean): string {
  const exps = [...m.values()];
  if (shuffle) {
    for (let i = exps.length - 1; i > 0; i--) {
      const j = randInt(0, i);
      [exps[i], exps[j]] = [exps[j]!, exps[i]!];
    }
  }
  return renderBlocks(
    comment,
    exps.map((e) => exportLines({ ...e })),
  );
}

// ------------------------------------------------------------------ aoed's log
interface ReloadLine {
  ok: boolean;
  reason: string;
  summary: Summary | null;
  /** The error lines aoed logged just before a "config not reloaded". */
  errors: string[];
  time: string;
}
let logOffset = 0;
let logRest = "";
let pendingErrors: string[] = [];
const logQueue: ReloadLine[] = [];
let sawReady = false;
function pollLog(): void {
  let fd: number;
  try {
    fd = fs.openSync(LOG, "r");
  } catch {
    return;
  }
  try {
    const buf = Buffer.alloc(1 << 16);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, logOffset);
      if (n <= 0) break;
      logOffset += n;
      logRest += buf.subarray(0, n).toString("utf8");
    }
  } finally {
    fs.closeSync(fd);
  }
  const lines = logRest.split("\n");
  logRest = lines.pop() ?? "";
  for (const l of lines) {
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(l);
    } catch {
      continue;
    }
    const msg = String(j.msg ?? "");
    if (msg.startsWith("aoed ready")) sawReady = true;
    if (msg.startsWith("config reloaded")) {
      const arr = (k: string) => (Array.isArray(j[k]) ? (j[k] as unknown[]).map(String) : []);
      logQueue.push({
        ok: true,
        reason: String(j.reason ?? ""),
        summary: {
          added: arr("added"),
          removed: arr("removed"),
          changed: arr("changed"),
          unchanged: arr("unchanged"),
        },
        errors: [],
        time: String(j.time ?? ""),
      });
      pendingErrors = [];
    } else if (msg.startsWith("config not reloaded")) {
      logQueue.push({
        ok: false,
        reason: String(j.reason ?? ""),
        summary: null,
        errors: pendingErrors.length > 0 ? pendingErrors : [String(j.err ?? "")],
        time: String(j.time ?? ""),
      });
      pendingErrors = [];
    } else if (Number(j.level) >= 50) {
      pendingErrors.push(msg);
    }
  }
}
/** The reload lines logged from now on: at least `min` (or until the timeout), then until `quietMs` pass without another. */
async function collect(min: number, quietMs: number): Promise<ReloadLine[]> {
  const got: ReloadLine[] = [];
  const deadline = Date.now() + LINE_TIMEOUT_MS;
  let last = Date.now();
  for (;;) {
    pollLog();
    if (logQueue.length > 0) {
      got.push(...logQueue.splice(0));
      last = Date.now();
    }
    if (got.length >= min && Date.now() - last >= quietMs) return got;
    if (got.length < min && Date.now() > deadline) return got;
    if (!alive()) fail(`aoed (pid ${PID}) exited; see target.log`);
    await sleep(40);
  }
}
/** Lines nobody asked for (a straggling watcher event): drained before each write. */
function stray(): ReloadLine[] {
  pollLog();
  return logQueue.splice(0);
}

// ------------------------------------------------------------------ writing
type Method = "in-place" | "rename" | "backup";
function writeConfig(text: string, method: Method): void {
  if (method === "in-place") {
    fs.writeFileSync(CONFIG, text);
  } else if (method === "rename") {
    const tmp = `${CONFIG}.churn-tmp`;
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, CONFIG);
  } else {
    // like vim with 'backupcopy=no': move the original aside, write a new file, drop the backup
    const bak = `${CONFIG}~`;
    fs.renameSync(CONFIG, bak);
    fs.writeFileSync(CONFIG, text);
    fs.unlinkSync(bak);
  }
}
const pickMethod = (): Method => pick(["in-place", "in-place", "rename", "rename", "backup"]);

// ------------------------------------------------------------------ state
interface EditRecord {
  n: number;
  kind: string;
  valid: boolean;
  method: Method;
  burst: number | null;
  desc: string;
  file: string;
  t: number;
}
interface StepRecord {
  step: string;
  edits: number[];
  expected: string;
  observed: string[];
  ok: boolean;
  problems: string[];
}
const edits: EditRecord[] = [];
const steps: StepRecord[] = [];
const failures: string[] = [];
let running: Model = new Map(); // the config aoed serves (the last valid version applied)
let fileValid = true; // whether the file on disk now is valid
const appliedAt = new Map<string, number>();
let lastValidText = "";
let editNo = 0;
let serialNo = 0;
let defaultQueueLength = 64;
let iface: string[] = [];
const poolPath = (i: number, alt: boolean) => path.join(DIR, `e1.${i}${alt ? "-b" : ""}.img`);

// ------------------------------------------------------------------ valid changes
/** Exports of the pool (e1.N) in a model. */
const poolIn = (m: Model) => [...m.values()].filter((e) => e.shelf === 1);
function toggleE01(m: Model): string {
  const e = m.get("e0.1")!;
  const what = pick(["read-only", "serial", "queue-length"] as const);
  if (what === "read-only") {
    if (e["read-only"]) delete e["read-only"];
    else e["read-only"] = true;
    return `e0.1 read-only ${e["read-only"] ? "on" : "off"}`;
  }
  if (what === "serial") {
    if (e.serial !== undefined && rand() < 0.4) delete e.serial;
    else e.serial = `CHURN-${++serialNo}`;
    return `e0.1 serial ${e.serial ?? "(default)"}`;
  }
  const choices = [undefined, 8, 16, 32, 128].filter(
    (q) => q !== e["queue-length"] && q !== defaultQueueLength,
  );
  const q = pick(choices);
  if (q === undefined) delete e["queue-length"];
  else e["queue-length"] = q;
  return `e0.1 queue-length ${q ?? "(default)"}`;
}
function addPool(m: Model): string | null {
  const free = [...Array(POOL).keys()].filter((i) => !m.has(`e1.${i}`));
  if (free.length === 0) return null;
  const i = pick(free);
  const e: Exp = { path: poolPath(i, false), shelf: 1, slot: i, interfaces: [...iface] };
  if (rand() < 0.3) e["read-only"] = true;
  if (rand() < 0.3) e["queue-length"] = pick([4, 16]);
  m.set(nameOf(e), e);
  return `add e1.${i}`;
}
/** `removable`: names that may go (present long enough in what aoed serves). */
function removePool(m: Model, removable: Set<string>): string | null {
  const cands = poolIn(m)
    .map(nameOf)
    .filter((n) => removable.has(n));
  if (cands.length === 0) return null;
  const n = pick(cands);
  m.delete(n);
  return `remove ${n}`;
}
function modifyPool(m: Model): string | null {
  const cands = poolIn(m);
  if (cands.length === 0) return null;
  const e = pick(cands);
  const what = pick(["read-only", "serial", "queue-length", "path"] as const);
  if (what === "read-only") {
    if (e["read-only"]) delete e["read-only"];
    else e["read-only"] = true;
    return `${nameOf(e)} read-only ${e["read-only"] ? "on" : "off"}`;
  }
  if (what === "serial") {
    e.serial = `CHURN-${++serialNo}`;
    return `${nameOf(e)} serial ${e.serial}`;
  }
  if (what === "queue-length") {
    const q = pick([4, 16, 32].filter((x) => x !== e["queue-length"]));
    e["queue-length"] = q;
    return `${nameOf(e)} queue-length ${q}`;
  }
  e.path = poolPath(e.slot, !e.path.endsWith("-b.img"));
  return `${nameOf(e)} path ${path.basename(e.path)}`;
}
function removableNow(): Set<string> {
  const now = Date.now();
  return new Set([...running.keys()].filter((n) => now - (appliedAt.get(n) ?? 0) >= MIN_AGE_MS));
}
/** A random valid change of `m` (in place); returns what it did. */
function validChange(m: Model, removable: Set<string>): string {
  const one = (): string | null => {
    const r = rand();
    if (r < 0.3) return toggleE01(m);
    if (r < 0.6) return addPool(m) ?? removePool(m, removable) ?? toggleE01(m);
    if (r < 0.8) return removePool(m, removable) ?? addPool(m) ?? toggleE01(m);
    return modifyPool(m) ?? addPool(m) ?? toggleE01(m);
  };
  const n = rand() < 0.2 ? randInt(2, 3) : 1;
  const did: string[] = [];
  for (let i = 0; i < n; i++) did.push(one()!);
  return did.join(", ");
}

// ------------------------------------------------------------------ invalid versions
type Flaw =
  | "syntax-bracket"
  | "syntax-indent"
  | "syntax-tab"
  | "unknown-key"
  | "unknown-top-key"
  | "dup-slot-e0.0"
  | "dup-slot"
  | "dup-name"
  | "bad-value";
/** An attempted valid change with a mistake in it: the text and what the mistake is. */
function invalidVersion(flaw: Flaw, comment: string): { text: string; desc: string } {
  const m = clone(running);
  const change = validChange(m, removableNow());
  const exps = [...m.values()];
  const blocks = exps.map((e) => exportLines({ ...e }));
  const i01 = exps.findIndex((e) => nameOf(e) === "e0.1");
  const b01 = blocks[i01]!;
  const freeSlot = [...Array(POOL).keys()].find((i) => !m.has(`e1.${i}`)) ?? 7;
  let extra = "";
  let desc: string;
  switch (flaw) {
    case "syntax-bracket": {
      const k = b01.findIndex((l) => l.includes("interfaces: ["));
      b01[k] = b01[k]!.replace(/\]$/, "");
      desc = "YAML syntax: unclosed [ in e0.1's interfaces";
      break;
    }
    case "syntax-indent": {
      const k = b01.findIndex((l) => l.startsWith("    shelf:"));
      b01[k] = b01[k]!.slice(1);
      desc = "YAML syntax: e0.1's shelf indented one space less";
      break;
    }
    case "syntax-tab": {
      const k = b01.findIndex((l) => l.startsWith("    slot:"));
      b01[k] = `\t${b01[k]!.trimStart()}`;
      desc = "YAML syntax: a tab indents e0.1's slot";
      break;
    }
    case "unknown-key":
      b01.push("    read-olny: true");
      desc = "unknown key read-olny in e0.1";
      break;
    case "unknown-top-key":
      extra = "log-levle: debug\n";
      desc = "unknown top-level key log-levle";
      break;
    case "dup-slot-e0.0":
      blocks.push(
        exportLines({
          name: "intruder",
          path: poolPath(freeSlot % POOL, false),
          shelf: 0,
          slot: 0,
          interfaces: iface,
        }),
      );
      desc = "a new export `intruder` at shelf 0 slot 0 (e0.0's address)";
      break;
    case "dup-slot":
      blocks.push(
        exportLines({
          name: "twin-a",
          path: poolPath(0, true),
          shelf: 1,
          slot: 9,
          interfaces: iface,
        }),
        exportLines({
          name: "twin-b",
          path: poolPath(1, true),
          shelf: 1,
          slot: 9,
          interfaces: iface,
        }),
      );
      desc = "two new exports twin-a and twin-b both at shelf 1 slot 9";
      break;
    case "dup-name":
      blocks.push(
        exportLines({
          name: "e0.1",
          path: poolPath(2, true),
          shelf: 1,
          slot: 8,
          interfaces: iface,
        }),
      );
      desc = "a second export named e0.1 (at e1.8)";
      break;
    case "bad-value":
      if (rand() < 0.5) {
        const k = b01.findIndex((l) => l.startsWith("    queue-length:"));
        if (k >= 0) b01[k] = "    queue-length: 1";
        else b01.push("    queue-length: 1");
        desc = "e0.1 queue-length 1 (minimum is 2)";
      } else {
        const k = b01.findIndex((l) => l.startsWith("    serial:"));
        const bad = '    serial: "SERIAL-TOO-LONG-123456"';
        if (k >= 0) b01[k] = bad;
        else b01.push(bad);
        desc = "e0.1 serial of 22 characters (at most 20)";
      }
      break;
  }
  return { text: renderBlocks(comment, blocks, extra), desc: `${desc} (on top of: ${change})` };
}

// ------------------------------------------------------------------ checking
function describeLine(l: ReloadLine): string {
  return l.ok
    ? `reloaded (${l.reason}) ${fmtSummary(l.summary!)}`
    : `NOT reloaded (${l.reason}): ${l.errors.slice(0, 2).join(" | ")}`;
}
/** Checks every reloaded line has e0.0 unchanged. */
function e00Problems(lines: ReloadLine[]): string[] {
  return lines
    .filter((l) => l.ok && !l.summary!.unchanged.includes("e0.0"))
    .map((l) => `e0.0 not in unchanged: ${fmtSummary(l.summary!)}`);
}
/** A reload that changed nothing (re-reading a file already applied or refused). */
function isNoop(l: ReloadLine, m: Model): boolean {
  if (!l.ok) return !fileValid;
  return sameSummary(l.summary!, diff(m, m));
}
function record(
  step: string,
  nums: number[],
  expected: string,
  lines: ReloadLine[],
  problems: string[],
): void {
  problems.push(...e00Problems(lines));
  const ok = problems.length === 0;
  steps.push({ step, edits: nums, expected, observed: lines.map(describeLine), ok, problems });
  say(
    `${ok ? "ok  " : "FAIL"} ${step}: expected ${expected}; got ${lines.map(describeLine).join(" ; ") || "nothing"}`,
  );
  for (const p of problems) {
    failures.push(`${step}: ${p}`);
    say(`     problem: ${p}`);
  }
}
function strays(): void {
  const s = stray();
  if (s.length === 0) return;
  const bad = s.filter((l) => !isNoop(l, running));
  record(
    "stray reload line(s)",
    [],
    "none or no-ops",
    s,
    bad.map((l) => `unexpected: ${describeLine(l)}`),
  );
}

function newEdit(
  kind: string,
  valid: boolean,
  method: Method,
  burst: number | null,
  desc: string,
  text: string,
): EditRecord {
  editNo++;
  const file = path.join(DIR, `edit-${String(editNo).padStart(2, "0")}.yaml`);
  fs.writeFileSync(file, text);
  const e: EditRecord = {
    n: editNo,
    kind,
    valid,
    method,
    burst,
    desc,
    file: path.relative(OUT, file),
    t: Date.now() - T0,
  };
  edits.push(e);
  return e;
}

async function singleValid(kind: string, m: Model, desc: string): Promise<void> {
  strays();
  const method = pickMethod();
  const text = render(
    `aoed e2e config churn, edit ${editNo + 1}/${EDITS}: ${desc}`,
    m,
    rand() < 0.3,
  );
  const e = newEdit(kind, true, method, null, desc, text);
  const want = diff(running, m);
  writeConfig(text, method);
  fileValid = true;
  const lines = await collect(1, 300);
  const problems: string[] = [];
  const first = lines[0];
  if (!first) problems.push(`no reload line within ${LINE_TIMEOUT_MS / 1000}s`);
  else if (!first.ok) problems.push(`valid version refused: ${first.errors.join(" | ")}`);
  else {
    if (first.reason !== "file changed")
      problems.push(`reason "${first.reason}", expected "file changed"`);
    if (!sameSummary(first.summary!, want))
      problems.push(`summary ${fmtSummary(first.summary!)} != expected ${fmtSummary(want)}`);
  }
  for (const l of lines.slice(1))
    if (!isNoop(l, m)) problems.push(`extra line is not a no-op: ${describeLine(l)}`);
  record(`edit ${e.n} [${kind}, ${method}] ${desc}`, [e.n], fmtSummary(want), lines, problems);
  if (first?.ok) apply(m, text);
}
function apply(m: Model, text: string): void {
  const now = Date.now();
  for (const n of m.keys()) if (!running.has(n)) appliedAt.set(n, now);
  running = clone(m);
  lastValidText = text;
}

async function singleInvalid(flaw: Flaw): Promise<void> {
  strays();
  const method = pickMethod();
  const { text, desc } = invalidVersion(
    flaw,
    `aoed e2e config churn, edit ${editNo + 1}/${EDITS}: invalid (${flaw})`,
  );
  const e = newEdit(flaw, false, method, null, desc, text);
  writeConfig(text, method);
  fileValid = false;
  const lines = await collect(1, 300);
  const problems: string[] = [];
  const first = lines[0];
  if (!first) problems.push(`no "config not reloaded" within ${LINE_TIMEOUT_MS / 1000}s`);
  else if (first.ok) problems.push(`invalid version was applied: ${describeLine(first)}`);
  else if (first.reason !== "file changed")
    problems.push(`reason "${first.reason}", expected "file changed"`);
  for (const l of lines.slice(1))
    if (l.ok) problems.push(`extra line applied something: ${describeLine(l)}`);
  record(`edit ${e.n} [${flaw}, ${method}] ${desc}`, [e.n], "config not reloaded", lines, problems);
}

let burstNo = 0;
async function burst(k: number): Promise<void> {
  strays();
  burstNo++;
  const models: Model[] = [];
  const texts: string[] = [];
  const nums: number[] = [];
  const removable = removableNow();
  let m = clone(running);
  for (let i = 0; i < k; i++) {
    m = clone(m);
    const desc = validChange(m, removable);
    const method = pickMethod();
    const text = render(
      `aoed e2e config churn, edit ${editNo + 1}/${EDITS} (burst ${burstNo}): ${desc}`,
      m,
      rand() < 0.3,
    );
    const e = newEdit("valid", true, method, burstNo, desc, text);
    writeConfig(text, method);
    fileValid = true;
    models.push(m);
    texts.push(text);
    nums.push(e.n);
    if (i < k - 1) await sleep(randInt(30, 120));
  }
  const lines = await collect(1, 800);
  const problems: string[] = [];
  // Usually one reload for the whole burst. If the debounce split it, each line
  // takes aoed from one version of the burst to the same or a later one, and
  // the last line to the last version. A line names exports, not settings, so
  // two versions can fit the same line: search for a path that ends on the
  // last version, trying later versions first.
  const applied = lines.filter((l) => l.ok);
  for (const l of lines) {
    if (!l.ok) problems.push(`valid version refused: ${l.errors.join(" | ")}`);
    else if (l.reason !== "file changed")
      problems.push(`reason "${l.reason}", expected "file changed"`);
  }
  const route = (li: number, cur: Model, from: number): number[] | null => {
    if (li === applied.length) return from === k - 1 ? [] : null;
    for (let j = k - 1; j >= Math.max(from, 0); j--) {
      if (!sameSummary(applied[li]!.summary!, diff(cur, models[j]!))) continue;
      const rest = route(li + 1, models[j]!, j);
      if (rest) return [j, ...rest];
    }
    return null;
  };
  const found = applied.length > 0 ? route(0, running, -1) : null;
  // where aoed is now: the last version (if the lines do not fit, a best guess)
  const at = applied.length > 0 ? k - 1 : -1;
  const want = diff(running, models[k - 1]!);
  if (lines.length === 0) problems.push(`no reload line within ${LINE_TIMEOUT_MS / 1000}s`);
  else if (applied.length > 0 && !found)
    problems.push("the reload lines do not take aoed through the burst's versions to its last one");
  record(
    `burst ${burstNo} (edits ${nums.join(",")}, ${lines.length} reload line(s))`,
    nums,
    fmtSummary(want),
    lines,
    problems,
  );
  if (at >= 0) apply(models[at]!, texts[at]!);
}

async function hup(): Promise<void> {
  strays();
  process.kill(PID, "SIGHUP");
  const lines = await collect(1, 300);
  const problems: string[] = [];
  const first = lines[0];
  const want = fileValid ? fmtSummary(diff(running, running)) : "config not reloaded";
  if (!first) problems.push(`no reload line within ${LINE_TIMEOUT_MS / 1000}s`);
  else {
    if (first.reason !== "SIGHUP") problems.push(`reason "${first.reason}", expected "SIGHUP"`);
    if (fileValid && !(first.ok && sameSummary(first.summary!, diff(running, running))))
      problems.push(`expected a no-op reload, got ${describeLine(first)}`);
    if (!fileValid && first.ok)
      problems.push(`the invalid file was applied on SIGHUP: ${describeLine(first)}`);
  }
  for (const l of lines.slice(1))
    if (!isNoop(l, running)) problems.push(`extra line: ${describeLine(l)}`);
  record(`SIGHUP (file ${fileValid ? "valid" : "invalid"})`, [], want, lines, problems);
}

// ------------------------------------------------------------------ plan
// V: one valid change; N: comments and order only; Bk: burst of k valid
// versions; H: SIGHUP; anything else: one invalid version with that flaw.
// The final valid version (done marker) and two invalid ones are appended.
// biome-ignore format: one row per ten steps
const PLAN: string[] = [
  "V", "V", "syntax-bracket", "V", "B4", "V", "unknown-key", "H", "V", "dup-slot-e0.0",
  "V", "N", "V", "B3", "dup-slot", "V", "V", "bad-value", "V", "dup-name",
  "V", "B4", "V", "H", "syntax-tab", "V", "unknown-top-key", "V", "V", "dup-slot",
  "V", "V", "N", "V", "syntax-indent", "V", "B3", "V", "bad-value", "H",
];
const TAIL_FLAWS: Flaw[] = ["syntax-bracket", "dup-slot-e0.0"];
const planEdits = (p: string[]) =>
  p.reduce((n, s) => n + (s === "H" ? 0 : s.startsWith("B") ? Number(s.slice(1)) : 1), 0);

function alive(): boolean {
  try {
    process.kill(PID, 0);
    return true;
  } catch {
    return false;
  }
}

function fail(msg: string): never {
  say(`FATAL: ${msg}`);
  failures.push(msg);
  finish();
  process.exit(1);
}

async function waitFor(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!cond()) {
    if (Date.now() > deadline) fail(`timed out waiting for ${what}`);
    if (!alive()) fail(`aoed (pid ${PID}) is gone while waiting for ${what}`);
    await sleep(200);
  }
}

let finished = false;
let checkTargets: string[] = [];
function finish(): void {
  if (finished) return;
  finished = true;
  const valid = edits.filter((e) => e.valid).length;
  const invalid = edits.length - valid;
  const inBursts = edits.filter((e) => e.burst !== null).length;
  const lines = steps.reduce((n, s) => n + s.observed.length, 0);
  const refused = steps.reduce(
    (n, s) => n + s.observed.filter((o) => o.startsWith("NOT")).length,
    0,
  );
  const targets = [...running.values()].map(targetOf).sort();
  const hups = steps.filter((s) => s.step.startsWith("SIGHUP")).length;
  const summary = `${edits.length} edits (${valid} valid: ${valid - inBursts} one at a time, ${inBursts} in ${burstNo} bursts; ${invalid} invalid), ${hups} SIGHUPs, ${lines} reload lines (${lines - refused} config reloaded, ${refused} config not reloaded), ${failures.length} problem(s), ${secs()} s`;
  const ok = failures.length === 0 && edits.length === EDITS;
  const result = {
    ok,
    seed: SEED,
    summary,
    edits,
    steps,
    failures,
    lastValid: lastValidText ? "churn/last-valid.yaml" : null,
    expectedExports: [...running.values()].map((e) => ({ name: nameOf(e), target: targetOf(e) })),
    expectedTargets: targets,
    checkTargets,
    durationSec: Number(secs()),
  };
  const txt = [
    `RESULT ${ok ? "PASS" : "FAIL"}`,
    `SUMMARY ${summary}`,
    `TARGETS ${targets.join(",")}`,
    ...failures.map((f) => `FAIL ${f.replace(/\n/g, " ")}`),
    "",
  ].join("\n");
  for (const [f, body] of [
    ["churn.json", `${JSON.stringify(result, null, 2)}\n`],
    ["churn-result.txt", txt],
  ] as const) {
    fs.writeFileSync(path.join(OUT, `${f}.tmp`), body);
    fs.renameSync(path.join(OUT, `${f}.tmp`), path.join(OUT, f));
  }
  say(`RESULT ${ok ? "PASS" : "FAIL"}: ${summary}`);
}
process.on("SIGTERM", () => {
  failures.push(`stopped by SIGTERM after ${edits.length} edits`);
  finish();
  process.exit(1);
});

async function main(): Promise<void> {
  const total = planEdits(PLAN) + 1 + TAIL_FLAWS.length;
  if (total !== EDITS) fail(`the plan has ${total} edits, --edits says ${EDITS}`);
  fs.mkdirSync(DIR, { recursive: true });
  const doc = parse(fs.readFileSync(CONFIG, "utf8")) as Record<string, unknown>;
  const exps = (doc.exports ?? []) as Exp[];
  const { exports: _omit, ...rest } = doc;
  header = rest;
  const dq = (header.defaults as Record<string, unknown> | undefined)?.["queue-length"];
  if (typeof dq === "number") defaultQueueLength = dq;
  const found00 = exps.find((e) => nameOf(e) === "e0.0");
  const found01 = exps.find((e) => nameOf(e) === "e0.1");
  if (!found00 || !found01 || exps.length !== 2)
    fail(`${CONFIG} must have exactly the exports e0.0 and e0.1`);
  iface = [...found00.interfaces];
  running = new Map([
    ["e0.0", { ...found00 }],
    ["e0.1", { ...found01 }],
  ]);
  lastValidText = fs.readFileSync(CONFIG, "utf8");
  for (let i = 0; i < POOL; i++) {
    fs.writeFileSync(poolPath(i, false), "");
    fs.truncateSync(poolPath(i, false), (i + 1) << 20);
    fs.writeFileSync(poolPath(i, true), "");
    fs.truncateSync(poolPath(i, true), (i + 2) << 20);
  }
  fs.writeFileSync(path.join(DIR, "done.img"), "");
  fs.truncateSync(path.join(DIR, "done.img"), 1 << 20);
  say(
    `seed ${SEED}, ${EDITS} edits of ${CONFIG}; aoed pid ${PID}; waiting for aoed and the guest's workload`,
  );
  await waitFor("aoed ready in the log", () => {
    pollLog();
    return sawReady;
  });
  logQueue.splice(0);
  await waitFor("E2E-STEP reload in the console", () => {
    try {
      return /^E2E-STEP reload/m.test(fs.readFileSync(CONSOLE, "utf8"));
    } catch {
      return false;
    }
  });
  say("guest workload started");
  await sleep(1000);
  for (const s of PLAN) {
    if (s === "H") await hup();
    else if (s === "V") {
      const m = clone(running);
      await singleValid("valid", m, validChange(m, removableNow()));
    } else if (s === "N")
      await singleValid("noop", clone(running), "comments and export order only");
    else if (s.startsWith("B")) await burst(Number(s.slice(1)));
    else await singleInvalid(s as Flaw);
    await sleep(randInt(100, 400));
  }
  // the final valid version: the done marker, the guest's cue to stop
  const m = clone(running);
  m.set(DONE.name, {
    name: DONE.name,
    path: path.join(DIR, "done.img"),
    shelf: DONE.shelf,
    slot: DONE.slot,
    interfaces: [...iface],
  });
  const desc = `add the done marker ${DONE.name} (e${DONE.shelf}.${DONE.slot}), ${toggleE01(m)}`;
  await singleValid("final", m, desc);
  fs.writeFileSync(path.join(DIR, "last-valid.yaml"), lastValidText);
  if (!running.has(DONE.name)) failures.push("the final version was not applied");
  for (const f of TAIL_FLAWS) {
    await sleep(randInt(300, 500));
    await singleInvalid(f);
  }
  await sleep(500);
  strays();
  // aoed check on the last valid version: the exports it resolves must be the ones the model expects
  const r = spawnSync(
    process.execPath,
    [AOED, "check", "--config", path.join(DIR, "last-valid.yaml")],
    {
      encoding: "utf8",
    },
  );
  fs.writeFileSync(path.join(DIR, "aoed-check.txt"), `${r.stdout}${r.stderr}`);
  checkTargets = [...r.stdout.matchAll(/^ {2}(e\d+\.\d+) {2}(\S+)$/gm)]
    .map((x) => `${x[1]} ${x[2]}`)
    .sort();
  const want = [...running.values()].map((e) => `${targetOf(e)} ${nameOf(e)}`).sort();
  if (r.status !== 0)
    failures.push(`aoed check on the last valid version failed: ${r.stderr.trim()}`);
  else if (JSON.stringify(checkTargets) !== JSON.stringify(want))
    failures.push(
      `aoed check resolves [${checkTargets.join(", ")}], the churn expects [${want.join(", ")}]`,
    );
  else say(`aoed check on last-valid.yaml: ${checkTargets.join(", ")}`);
  finish();
}

main().catch((err) => {
  failures.push(`crashed: ${(err as Error).stack ?? err}`);
  finish();
  process.exit(1);
});
