/**
 * Durability of acknowledged writes, against the real daemon in a network
 * namespace, for each I/O engine (the thread pool and io_uring): the sync
 * semantics that give power-loss durability, seen from the kernel rather than
 * from the daemon. With write-cache off ext4 completed a data sync of the
 * backing file before each write was acknowledged (group commit, no O_DSYNC:
 * test/reliability/group-commit.test.ts checks the order); with write-cache on, writes are not synced and FLUSH CACHE EXT is (fdatasync on
 * the thread pool, IORING_OP_FSYNC on io_uring); and, with strace on the
 * thread-pool engine, the syscalls themselves. The SIGKILL loops ("every
 * acknowledged write survives a kill") are in the soak suite
 * (test/soak/durability-kill.test.ts).
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { fdFlags, fsType, KernelTrace, O_DSYNC } from "../helpers/ktrace.js";
import { pattern } from "../helpers/patterns.js";
import { durabilityRig, ENGINES } from "./durability-rig.js";

const traceUnavailable = KernelTrace.unavailable();
const hasStrace = (() => {
  try {
    execFileSync("strace", ["-V"], { stdio: "pipe" });
    return true;
  } catch {
    return false;
  }
})();

const now = () => Number(process.hrtime.bigint()) / 1e9;

it("says which engines and kernel tools this run covers", () => {
  // Not a condition of the suite, a statement in its output of what ran.
  console.log(
    `durability: engines ${ENGINES.join(", ")}; kernel tracing: ${traceUnavailable ?? "yes"}; strace: ${hasStrace}`,
  );
  expect(ENGINES).toContain("threads");
});

describe.each(ENGINES)("durability, io: %s", (engine) => {
  const rig = durabilityRig(engine);
  const { syncImg, cachedImg } = rig;

  it("no backing file is open O_DSYNC: write-cache off syncs groups of writes instead", () => {
    const sync = fdFlags(rig.daemon!.pid, syncImg());
    const cached = fdFlags(rig.daemon!.pid, cachedImg());
    expect(sync.length).toBeGreaterThan(0);
    expect(cached.length).toBeGreaterThan(0);
    for (const f of [...sync, ...cached]) expect(f & O_DSYNC).toBe(0);
  });

  it.skipIf(traceUnavailable !== null)(
    "write-cache off: the kernel completed a data sync of the file before each write was acknowledged",
    async ({ skip }) => {
      // stat -f calls ext4 "ext2/ext3"; the tracepoints are ext4's.
      if (fsType(syncImg()) !== "ext2/ext3") skip(`${syncImg()} is not on ext4`);
      const trace = KernelTrace.open().syncsOf(fs.statSync(syncImg()).ino);
      try {
        const acks: { sent: number; acked: number }[] = [];
        for (let i = 0; i < 30; i++) {
          const lba = i * 17;
          const sent = now();
          await rig.client.write(rig.syncT, lba, pattern(lba, 17, 1_000_000 + i));
          acks.push({ sent, acked: now() });
        }
        const exits = trace.syncs().filter((e) => e.phase === "exit" && e.ret === 0);
        const enters = trace.syncs().filter((e) => e.phase === "enter");
        expect(enters.every((e) => e.datasync)).toBe(true);
        // For each write: a data sync of the file completed after it was sent and before it was acknowledged.
        const unsynced = acks.filter((a) => !exits.some((e) => e.t > a.sent && e.t < a.acked));
        expect(unsynced).toEqual([]);
      } finally {
        trace.close();
      }
    },
  );

  it.skipIf(traceUnavailable !== null)(
    "write-cache on: writes are not synced, FLUSH CACHE EXT is (fdatasync / IORING_OP_FSYNC)",
    async ({ skip }) => {
      if (fsType(cachedImg()) !== "ext2/ext3") skip(`${cachedImg()} is not on ext4`);
      const d = rig.daemon!;
      const trace = KernelTrace.open().syncsOf(fs.statSync(cachedImg()).ino).uringOf(d.pid);
      try {
        for (let i = 0; i < 30; i++)
          await rig.client.write(rig.cachedT, i * 17, pattern(i * 17, 17, 7));
        expect(trace.syncs()).toEqual([]);
        if (engine === "io_uring") expect(trace.uringOps().get("WRITE") ?? 0).toBeGreaterThan(0);
        trace.clear();
        const sent = now();
        await rig.client.flush(rig.cachedT);
        const acked = now();
        const syncs = trace.syncs();
        const enter = syncs.find((e) => e.phase === "enter");
        const exit = syncs.find((e) => e.phase === "exit");
        expect(enter?.datasync).toBe(true);
        expect(exit?.ret).toBe(0);
        expect(enter!.t).toBeGreaterThan(sent);
        expect(exit!.t).toBeLessThan(acked);
        if (engine === "io_uring") expect(trace.uringOps().get("FSYNC")).toBe(1);
        else expect(trace.uringOps().size).toBe(0);
      } finally {
        trace.close();
      }
    },
  );

  it.skipIf(engine !== "threads" || !hasStrace)(
    "strace: no O_DSYNC; pwrite64 per write; write-cache off: a lone write is followed by fdatasync; on: fdatasync on FLUSH only",
    async () => {
      await rig.daemon!.stop();
      rig.daemon = null;
      const out = path.join(rig.dir, "strace.out");
      // -y: every fd printed with its path, so calls are matched by file, not by number
      // (an "<unfinished ...>" line still starts with the call and its fd).
      const d = await rig.start([
        "strace",
        "-f",
        "-qq",
        "-y",
        "-o",
        out,
        "-e",
        "trace=openat,pwrite64,pwritev,pwritev2,fdatasync,fsync,io_uring_enter",
      ]);
      const esc = (x: string) => x.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      const openFlags = (img: string) => {
        const m = new RegExp(`openat\\(AT_FDCWD(?:<[^>]*>)?, "${esc(img)}", ([A-Z0-9_|]+)`).exec(
          fs.readFileSync(out, "utf8"),
        );
        if (!m) throw new Error(`no openat of ${img} in the strace output`);
        return m[1]!;
      };
      const calls = (text: string, call: string, img: string) =>
        text.split("\n").filter((l) => new RegExp(`\\b${call}\\(\\d+<${esc(img)}>`).test(l)).length;
      expect(openFlags(syncImg())).not.toContain("O_DSYNC");
      expect(openFlags(cachedImg())).not.toContain("O_DSYNC");
      for (let i = 0; i < 5; i++) {
        await rig.client.write(rig.syncT, 100 + i * 17, pattern(100 + i * 17, 17, 9));
        await rig.client.write(rig.cachedT, 100 + i * 17, pattern(100 + i * 17, 17, 9));
      }
      const before = fs.readFileSync(out, "utf8");
      // One pwrite64 per 17-sector request; write-cache off: one at a time, each is
      // alone, so each gets its own fdatasync (the thread pool has no RWF_DSYNC).
      expect(calls(before, "pwrite64", syncImg())).toBe(5);
      expect(calls(before, "pwrite64", cachedImg())).toBe(5);
      expect(calls(before, "fdatasync", syncImg())).toBe(5);
      for (const call of ["fdatasync", "fsync"]) expect(calls(before, call, cachedImg())).toBe(0);
      expect(calls(before, "fsync", syncImg())).toBe(0);
      expect(before).not.toContain("io_uring_enter");
      await rig.client.flush(rig.cachedT);
      const after = fs.readFileSync(out, "utf8");
      expect(calls(after, "fdatasync", cachedImg())).toBe(1);
      expect(calls(after, "fdatasync", syncImg())).toBe(5);
      expect(await d.stop()).toBe(0);
      rig.daemon = null;
      await rig.start();
    },
    40_000,
  );
});
