/**
 * Which engine serves a store: the `io:` setting applied to what was probed.
 * "auto": files in memory (tmpfs, ramfs) mapped, else io_uring when the kernel
 * allows it, else libuv's thread pool. An explicit engine is honoured where it
 * can be: never a mapping with direct-io, never the event loop on a filesystem
 * that can hang, and pwrite + fdatasync instead of a mapping where writes must
 * be synced.
 */
import fs from "node:fs";
import type { UringProbeResult } from "../native/addon.js";
import type { DirectIo, IoEngine, IoSetting } from "./backend.js";
import { probeUring } from "./uring.js";

export interface IoEngineChoice {
  engine: IoEngine;
  /** Why not what was asked for (or, with "auto", why not io_uring); absent otherwise. */
  note?: string;
}

/** What of the store and the export's settings the choice depends on. */
export interface StoreFacts {
  /** On tmpfs or ramfs. */
  inMemory?: boolean;
  /** The filesystem's name when it can hang (fuse, nfs...). */
  mayHang?: string | null;
  directIo?: DirectIo;
  writeCache?: boolean;
  readOnly?: boolean;
}

function readSysctl(name: string): string | null {
  try {
    return fs.readFileSync(`/proc/sys/${name.replaceAll(".", "/")}`, "utf8").trim();
  } catch {
    return null;
  }
}

/** Why io_uring cannot be used, in words an admin can act on. */
export function describeUringFailure(p: UringProbeResult): string {
  if (p.step.startsWith("native addon")) return `io_uring unavailable: ${p.step}`;
  if (p.step === "io_uring_setup") {
    if (p.code === "EPERM" || p.code === "EACCES") {
      const disabled = readSysctl("kernel.io_uring_disabled");
      if (disabled === "2") return "io_uring is disabled by sysctl kernel.io_uring_disabled=2";
      if (disabled === "1")
        return (
          "io_uring is restricted by sysctl kernel.io_uring_disabled=1 " +
          "(needs CAP_SYS_ADMIN or membership in kernel.io_uring_group)"
        );
      return `io_uring_setup refused (${p.code}): blocked by a seccomp filter (a container's default profile?)`;
    }
    if (p.code === "ENOSYS")
      return "io_uring_setup: ENOSYS (kernel without io_uring, or blocked by a seccomp filter)";
    if (p.code === "ENOMEM")
      return "io_uring_setup: ENOMEM (RLIMIT_MEMLOCK too low for the rings on Linux < 5.12?)";
    return `io_uring_setup failed (${p.code})`;
  }
  if (p.step === "IORING_REGISTER_PROBE") {
    if (p.code === "EOPNOTSUPP") {
      const missing = (["read", "write", "fsync"] as const).filter((op) => !p[op]);
      return `io_uring lacks IORING_OP_${missing.join("/").toUpperCase()} (needs Linux >= 5.6)`;
    }
    return `io_uring probe failed (${p.code}; Linux < 5.6?)`;
  }
  return `io_uring unavailable: ${p.step} (${p.code})`;
}

/** The engine for `want` on a store like `facts`. Throws when io_uring is asked for and cannot be had. */
export function chooseIoEngine(want: IoSetting, facts: StoreFacts = {}): IoEngineChoice {
  const { inMemory = false, mayHang = null, directIo = false } = facts;
  const choice = baseChoice(
    // direct-io asks for O_DIRECT (tmpfs takes it since Linux 6.6): not a mapping.
    want === "mmap" && directIo ? "auto" : want,
    inMemory && !directIo,
  );
  if (choice.engine === "mmap" && !inMemory && facts.writeCache === false && !facts.readOnly) {
    // Writes must be group-committed with fdatasync: pwrite, not stores into a mapping.
    choice.engine = "sync";
    choice.note = "write-cache is off: pwrite and fdatasync instead of a mapping";
  }
  if (mayHang !== null && (choice.engine === "sync" || choice.engine === "mmap")) {
    // A copy from a mapping or a pread on the event loop would stop the whole daemon with it.
    choice.engine = "threads";
    choice.note = `the file is on ${mayHang}, which can stop answering: the thread pool, never the event loop`;
  }
  return choice;
}

function baseChoice(want: IoSetting, mappable: boolean): IoEngineChoice {
  if (want === "threads" || want === "sync" || want === "mmap") return { engine: want };
  if (want === "auto" && mappable)
    return {
      engine: "mmap",
      note:
        "the file is in memory (tmpfs): mapped, a read or write is a copy on the event " +
        "loop, cheaper than any system call and never waiting for a disk " +
        "(io: io_uring to override)",
    };
  const p = probeUring();
  if (p.ok) return { engine: "io_uring" };
  const why = describeUringFailure(p);
  if (want === "io_uring") throw new Error(`io: io_uring is set, but ${why}`);
  return { engine: "threads", note: why };
}
