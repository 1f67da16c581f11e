/** The I/O engines a soak test runs under (`io:` in its config), and a check that the daemon uses the one asked for. */
import { expect } from "vitest";
import { probeUring } from "../../src/io/uring.js";
import type { Daemon } from "../helpers/daemon.js";

// mmap completes a request before the next frame is read (nothing is ever in flight);
// threads and io_uring complete later.
export const ENGINES = probeUring().ok ? ["io_uring", "threads", "mmap"] : ["threads", "mmap"];

/** Every export in the daemon's ready log runs on `engine`. */
export function expectEngine(daemon: Daemon, engine: string): void {
  const ready = daemon.logs.find((l) => /aoed ready/.test(String(l.msg)));
  const io = (ready?.exports as { io: string }[] | undefined)?.map((e) => e.io);
  expect(io?.length).toBeGreaterThan(0);
  for (const x of io ?? []) expect(x).toBe(engine);
}
