/**
 * sd_notify for the systemd unit (packaging/aoed.service, Type=notify): the
 * message format, the native sendto() against a real AF_UNIX datagram socket
 * (abstract and path), and the daemon's READY/RELOADING/STOPPING sequence.
 * The receiving end is a few lines of Python (Node has no unix datagram
 * sockets); it also reports the sender's pid from SCM_CREDENTIALS, which is
 * what systemd's NotifyAccess=main checks.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createNotifier, formatMessage, notifyReloads } from "../../src/bin/sd-notify.js";
import { AoeClient } from "../../src/client/client.js";
import { loadNative } from "../../src/native/addon.js";
import { createVethPair, type VethPair } from "../helpers/net.js";
import { waitFor } from "../helpers/wait.js";

const AOED = path.resolve(import.meta.dirname, "../../dist/src/bin/aoed.cjs");

const RECEIVER = `
import json, os, socket, struct, sys
addr = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind("\\0" + addr[1:] if addr.startswith("@") else addr)
print(json.dumps({"bound": True}), flush=True)
while True:
    data, anc, _, _ = s.recvmsg(8192, socket.CMSG_SPACE(12))
    pid = None
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", payload[:12])[0]
    print(json.dumps({"pid": pid, "message": data.decode()}), flush=True)
`;

const hasPython = (() => {
  try {
    execFileSync("python3", ["-c", "import socket; socket.SCM_CREDENTIALS"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

interface Datagram {
  pid: number | null;
  message: string;
  fields: Record<string, string>;
}

interface Receiver {
  proc: ChildProcess;
  got: Datagram[];
  /** WATCHDOG=1 keepalives: counted here, skipped by next(). */
  keepalives: Datagram[];
  next(timeoutMs?: number): Promise<Datagram>;
  close(): void;
}

function parseFields(message: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of message.split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/** Binds a datagram socket at `address` (a path or @abstract) and collects what arrives. */
async function receiver(address: string): Promise<Receiver> {
  const proc = spawn("python3", ["-u", "-c", RECEIVER, address], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const got: Datagram[] = [];
  const keepalives: Datagram[] = [];
  let taken = 0;
  const waiters: (() => void)[] = [];
  let partial = "";
  let stderr = "";
  let bound: () => void = () => {};
  const isBound = new Promise<void>((resolve) => {
    bound = resolve;
  });
  proc.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  proc.stdout!.on("data", (d: Buffer) => {
    const lines = (partial + d.toString()).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      const m = JSON.parse(line) as { bound?: true; pid?: number | null; message?: string };
      if (m.bound) bound();
      else {
        const d = { pid: m.pid ?? null, message: m.message!, fields: parseFields(m.message!) };
        (d.message === "WATCHDOG=1" ? keepalives : got).push(d);
      }
    }
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise<void>((resolve) => proc.on("exit", () => resolve()));
  await Promise.race([
    isBound,
    exited.then(() => {
      throw new Error(`receiver exited: ${stderr}`);
    }),
  ]);
  return {
    proc,
    got,
    keepalives,
    async next(timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (taken >= got.length) {
        const left = deadline - Date.now();
        if (left <= 0)
          throw new Error(`no notification within ${timeoutMs} ms (got ${got.length})`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
      return got[taken++]!;
    },
    close() {
      proc.kill("SIGKILL");
    },
  };
}

describe("sd-notify message handling", () => {
  it("formats one field per line and flattens newlines in values", () => {
    expect(formatMessage({ READY: 1, STATUS: "two\nlines" })).toBe("READY=1\nSTATUS=two lines");
  });

  it("does nothing without NOTIFY_SOCKET", () => {
    const sent: string[] = [];
    const n = createNotifier({
      env: {},
      send: (_p, m) => {
        sent.push(m);
        return 0;
      },
    });
    n.ready("x");
    n.reloading();
    n.stopping();
    expect(n.enabled).toBe(false);
    expect(sent).toEqual([]);
  });

  it("ignores a NOTIFY_SOCKET that is neither a path nor @abstract, and says so once", () => {
    const errors: string[] = [];
    const sent: string[] = [];
    const n = createNotifier({
      env: { NOTIFY_SOCKET: "vsock:2:1234" },
      send: (_p, m) => {
        sent.push(m);
        return 0;
      },
      onError: (e) => errors.push(e),
    });
    n.ready();
    expect(n.enabled).toBe(false);
    expect(sent).toEqual([]);
    expect(errors).toHaveLength(1);
  });

  it("sends READY, RELOADING with MONOTONIC_USEC, STOPPING; reports a send error once", () => {
    const sent: { path: string; message: string }[] = [];
    const errors: string[] = [];
    let errno = 0;
    const n = createNotifier({
      env: { NOTIFY_SOCKET: "@aoed-test" },
      send: (p, m) => {
        sent.push({ path: p, message: m });
        return errno;
      },
      onError: (e) => errors.push(e),
    });
    const before = process.hrtime.bigint() / 1000n;
    n.ready("serving 1 export(s)");
    n.reloading("reloading");
    n.stopping();
    expect(sent.map((s) => s.path)).toEqual(["@aoed-test", "@aoed-test", "@aoed-test"]);
    expect(sent[0]!.message).toBe("READY=1\nSTATUS=serving 1 export(s)");
    const reload = parseFields(sent[1]!.message);
    expect(reload.RELOADING).toBe("1");
    expect(BigInt(reload.MONOTONIC_USEC!)).toBeGreaterThanOrEqual(before);
    expect(sent[2]!.message).toBe("STOPPING=1");
    errno = 111;
    n.status("a");
    n.status("b");
    expect(errors).toEqual(["cannot notify systemd at @aoed-test: errno 111"]);
  });

  it("sends WATCHDOG=1 every half WATCHDOG_USEC, only to the process WATCHDOG_PID names", async () => {
    const sent: string[] = [];
    const send = (_p: string, m: string) => {
      sent.push(m);
      return 0;
    };
    const env = { NOTIFY_SOCKET: "/run/x", WATCHDOG_USEC: "40000" };
    for (const other of [
      { ...env, WATCHDOG_PID: String(process.pid + 1) },
      { ...env, WATCHDOG_USEC: "" },
      { WATCHDOG_USEC: "40000" },
    ]) {
      const off = createNotifier({ env: other, send }).startWatchdog();
      expect(off.periodMs).toBeNull();
    }
    expect(sent).toEqual([]);
    const on = createNotifier({ env: { ...env, WATCHDOG_PID: String(process.pid) }, send });
    const wd = on.startWatchdog();
    try {
      expect(wd.periodMs).toBe(20);
      expect(sent).toEqual(["WATCHDOG=1"]);
      await waitFor("three more keepalives", () => sent.length >= 4);
      expect(new Set(sent)).toEqual(new Set(["WATCHDOG=1"]));
    } finally {
      wd.stop();
    }
  });

  it("brackets overlapping reloads with one RELOADING and one READY", async () => {
    const sent: string[] = [];
    const n = createNotifier({
      env: { NOTIFY_SOCKET: "/run/x" },
      send: (_p, m) => {
        sent.push(m.split("\n")[0]!);
        return 0;
      },
    });
    const finish: ((ok: boolean) => void)[] = [];
    const reloader = {
      reload: (_reason: string) =>
        new Promise<{ ok: boolean }>((resolve) => finish.push((ok) => resolve({ ok }))),
    };
    const statuses: boolean[] = [];
    notifyReloads(reloader, n, (ok) => {
      statuses.push(ok);
      return "s";
    });
    const a = reloader.reload("SIGHUP");
    const b = reloader.reload("file changed");
    expect(sent).toEqual(["RELOADING=1"]);
    finish[0]!(true);
    await a;
    expect(sent).toEqual(["RELOADING=1"]);
    finish[1]!(false);
    await b;
    expect(sent).toEqual(["RELOADING=1", "READY=1"]);
    expect(statuses).toEqual([false]);
  });
});

describe.skipIf(!hasPython)("sd-notify over a real unix datagram socket", () => {
  const receivers: Receiver[] = [];
  afterEach(() => {
    for (const r of receivers.splice(0)) r.close();
  });

  it("reaches an abstract socket, with this process's pid as the sender", async () => {
    const name = `@aoed-test-${process.pid}-${Date.now()}`;
    const r = await receiver(name);
    receivers.push(r);
    const n = createNotifier({ env: { NOTIFY_SOCKET: name } });
    n.ready("hello");
    const d = await r.next();
    expect(d.message).toBe("READY=1\nSTATUS=hello");
    expect(d.pid).toBe(process.pid);
  });

  it("reaches a filesystem socket", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-notify-"));
    try {
      const sock = path.join(dir, "notify");
      const r = await receiver(sock);
      receivers.push(r);
      createNotifier({ env: { NOTIFY_SOCKET: sock } }).stopping();
      expect((await r.next()).message).toBe("STOPPING=1");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("returns an errno instead of throwing when nobody listens", () => {
    expect(loadNative().sdNotify(`@aoed-nobody-${process.pid}`, "READY=1")).toBe(111);
    expect(loadNative().sdNotify("relative", "READY=1")).toBe(22);
  });
});

describe.skipIf(!hasPython)("aoed under a NOTIFY_SOCKET", () => {
  let net: VethPair;
  let dir: string;
  let config: string;
  let r: Receiver;
  let daemon: ChildProcess;
  let client: AoeClient;
  let stdout = "";
  let stderr = "";
  const announced: string[] = [];
  const MiB = 1024 * 1024;

  const writeConfig = (exports: [string, number][]) => {
    const tmp = `${config}.tmp`;
    fs.writeFileSync(
      tmp,
      `metrics: false
control-socket: off
exports:
${exports
  .map(
    ([name, slot]) => `  - name: ${name}
    path: ${path.join(dir, `${name}.img`)}
    shelf: 7
    slot: ${slot}
    interfaces: [${net.b}]
`,
  )
  .join("")}`,
    );
    fs.renameSync(tmp, config);
  };

  beforeAll(async () => {
    net = createVethPair({ netns: true });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "aoed-notify-"));
    for (const name of ["one", "two"]) {
      fs.writeFileSync(path.join(dir, `${name}.img`), "");
      fs.truncateSync(path.join(dir, `${name}.img`), MiB);
    }
    config = path.join(dir, "aoed.yaml");
    writeConfig([["one", 0]]);
    // A path socket: abstract names are per network namespace and the daemon runs in its own.
    const sock = path.join(dir, "notify");
    r = await receiver(sock);
    client = AoeClient.open(net.a, { timeoutMs: 300, tries: 3 });
    client.onUnsolicited((m) => {
      if (m.kind === "config" && m.tag === 0) announced.push(`e${m.shelf}.${m.slot}`);
    });
    daemon = spawn("ip", ["netns", "exec", net.netns!, "node", AOED, "--config", config], {
      env: { ...process.env, NOTIFY_SOCKET: sock, WATCHDOG_USEC: "400000" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    daemon.stdout!.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    daemon.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
  });

  afterAll(async () => {
    client?.close();
    if (daemon && daemon.exitCode === null) {
      daemon.kill("SIGKILL");
      await new Promise((resolve) => daemon.once("exit", resolve));
    }
    r?.close();
    net?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("sends READY=1 from the main pid once the exports are announced", async () => {
    const d = await r.next().catch((e: Error) => {
      throw new Error(`${e.message}; aoed stderr: ${stderr}`);
    });
    expect(d.fields.READY).toBe("1");
    expect(d.fields.STATUS).toBe("serving 1 export(s)");
    // `ip netns exec` execs, so the daemon is the process systemd would have started.
    expect(d.pid).toBe(daemon.pid);
    // The log line was written before READY=1, but the pipe may deliver it to us later.
    await waitFor("the ready line on stdout", () => /aoed ready/.test(stdout));
    // The announcement left before READY=1; allow for its delivery to this process.
    await waitFor("the announcement", () => announced.length > 0);
    expect(announced).toEqual(["e7.0"]);
  });

  it("keeps the watchdog fed from its event loop (WATCHDOG_USEC)", async () => {
    const seen = r.keepalives.length;
    await waitFor("two keepalives after READY=1", () => r.keepalives.length >= seen + 2);
    expect(r.keepalives.every((d) => d.pid === daemon.pid)).toBe(true);
  });

  it("brackets a SIGHUP reload with RELOADING=1 and READY=1", async () => {
    writeConfig([
      ["one", 0],
      ["two", 1],
    ]);
    // The file watcher may notice the change too: each reload is bracketed the same way.
    daemon.kill("SIGHUP");
    const reloading = await r.next();
    expect(reloading.fields.RELOADING).toBe("1");
    const usec = BigInt(reloading.fields.MONOTONIC_USEC!);
    expect(usec).toBeGreaterThan(0n);
    // Same clock as systemd's CLOCK_MONOTONIC: within a minute of ours.
    const now = process.hrtime.bigint() / 1000n;
    expect(now - usec).toBeLessThan(60_000_000n);
    let ready = await r.next();
    while (ready.fields.READY !== "1") ready = await r.next();
    expect(ready.fields.STATUS).toMatch(/^serving (1|2) export\(s\)$/);
    await waitFor("the announcement of the added export e7.1", () => announced.includes("e7.1"));
  });

  it("sends STOPPING=1 at SIGTERM and exits 0", async () => {
    const exited = new Promise<number | null>((resolve) => daemon.once("exit", resolve));
    daemon.kill("SIGTERM");
    let d = await r.next();
    while (d.fields.STOPPING === undefined) d = await r.next();
    expect(d.fields.STOPPING).toBe("1");
    expect(await exited).toBe(0);
  });
});
