/**
 * Small, private, disposable storage for fault tests (root only): a tmpfs of a
 * given size mounted on a directory the test created, and loop devices over
 * files. Everything is undone by the returned handle, and at process exit.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";

const cleanups = new Set<() => void>();
let hooked = false;

function track(undo: () => void): () => void {
  if (!hooked) {
    hooked = true;
    process.on("exit", () => {
      for (const u of [...cleanups]) u();
    });
  }
  let done = false;
  const once = () => {
    if (done) return;
    done = true;
    cleanups.delete(once);
    undo();
  };
  cleanups.add(once);
  return once;
}

function quiet(argv: string[]): void {
  try {
    execFileSync(argv[0]!, argv.slice(1), { stdio: "pipe" });
  } catch {
    // best effort
  }
}

export interface Mounted {
  dir: string;
  /** Unmounts (lazily if busy) and removes the directory. Idempotent. */
  release(): void;
}

/** Mounts a tmpfs of `bytes` on `dir` (created if missing). */
export function mountTmpfs(dir: string, bytes: number): Mounted {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${bytes},mode=0700`, "tmpfs", dir], {
    stdio: "pipe",
  });
  const release = track(() => {
    quiet(["umount", dir]);
    if (fs.existsSync(dir) && isMountpoint(dir)) quiet(["umount", "-l", dir]);
    try {
      fs.rmdirSync(dir);
    } catch {
      // not empty or still mounted
    }
  });
  return { dir, release };
}

function isMountpoint(dir: string): boolean {
  try {
    execFileSync("mountpoint", ["-q", dir], { stdio: "pipe" });
    return true;
  } catch {
    return false;
  }
}

export interface Loop {
  dev: string;
  /** Detaches the loop device. Idempotent. */
  release(): void;
}

/** Why loop devices cannot be used here, or null. */
export function loopUnavailable(): string | null {
  if (!fs.existsSync("/dev/loop-control")) return "no /dev/loop-control";
  try {
    execFileSync("losetup", ["--version"], { stdio: "pipe" });
  } catch {
    return "no losetup";
  }
  return null;
}

/** Attaches `file` to a free loop device; `args`: more losetup options (e.g. --sector-size 4096). */
export function attachLoop(file: string, args: string[] = []): Loop {
  const dev = execFileSync("losetup", ["--find", "--show", ...args, file], {
    encoding: "utf8",
  }).trim();
  const release = track(() => quiet(["losetup", "-d", dev]));
  return { dev, release };
}
