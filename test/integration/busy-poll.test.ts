/**
 * Busy polling's counters from a real daemon, per interface: an initiator that
 * sends its next request as soon as it has the reply (queue depth 1) is caught
 * by the watch, so aoed_interface_busy_poll_frames_total grows, and so does
 * _misses_total (a watch after the last reply sees nothing); with worker
 * threads their sockets watch too, and their counts reach the main thread's
 * totals. With `busy-poll: 0` nothing watches and both stay 0. A watch catches
 * a request only if it comes within `busy-poll` µs, so the test reads until
 * one has (at 1000 µs, the most, an initiator in this process mostly does)
 * instead of counting on a round trip's time.
 */
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TargetInfo } from "../../src/client/client.js";
import { controlRequest } from "../../src/control/client.js";
import type { InterfaceCounters, StatsResult } from "../../src/control/protocol.js";
import { type NetDaemon, sparseFile, startNetDaemon } from "../helpers/net-daemon.js";
import { scrapeMetrics } from "../helpers/scrape.js";
import { waitFor } from "../helpers/wait.js";

const MiB = 1024 * 1024;
/** Reads between two looks at the metrics, one at a time. */
const READS = 50;

type Metrics = Map<string, number>;

/** A daemon with one export on one interface, with `busy-poll` and `workers` as given. */
function serve(busyPoll: number, workers: number) {
  let fx: NetDaemon;
  let target: TargetInfo;
  let sock: string;
  let lba = 0;

  beforeAll(async () => {
    fx = await startNetDaemon({
      config: ({ dir, iface }) => {
        sock = path.join(dir, "aoed.sock");
        return `${workers > 0 ? `workers: ${workers}\n` : ""}control-socket: ${sock}
interfaces:
  ${iface}:
    busy-poll: ${busyPoll}
exports:
  - name: disk
    path: ${sparseFile(path.join(dir, "disk.img"), 4 * MiB)}
    shelf: 5
    slot: 2
    interfaces: [${iface}]
`;
      },
    });
    [target] = (await fx.client.discover({ shelf: 5, slot: 2, timeoutMs: 500 })) as [TargetInfo];
    expect(target).toBeDefined();
  });

  afterAll(async () => {
    expect(await fx?.close()).toBe(0);
  });

  const counter = (m: Metrics, name: string) => m.get(`${name}{interface="${fx.net.b}"}`) ?? 0;
  return {
    counter,
    frames: (m: Metrics) => counter(m, "aoed_interface_busy_poll_frames_total"),
    misses: (m: Metrics) => counter(m, "aoed_interface_busy_poll_misses_total"),
    /** READS reads, each sent once the previous one's reply is in. */
    async reads(): Promise<void> {
      for (let i = 0; i < READS; i++) {
        await fx.client.read(target, lba, 2);
        lba = (lba + 2) % 2048;
      }
    },
    scrape: () => scrapeMetrics(fx.net.netns!),
    /** The interface's counters in `aoectl stats --json`. */
    async stats(): Promise<InterfaceCounters> {
      return (await controlRequest<StatsResult>(sock, { cmd: "stats" })).interfaces[0]!;
    },
  };
}

describe.each([0, 2])("busy polling's counters, busy-poll: 1000, workers: %i", (workers) => {
  const d = serve(1000, workers);
  /** Frames the main thread's socket took: the interface's, less the workers' share. */
  const mainFrames = (m: Metrics) => {
    let w = 0;
    for (let i = 1; i <= workers; i++)
      w += m.get(`aoed_worker_receive_frames_total{worker="${i}"}`) ?? 0;
    return d.counter(m, "aoed_interface_receive_frames_total") - w;
  };

  it("counts requests a watch caught, and watches that caught none, in the metrics and aoectl stats", async () => {
    const m = await waitFor(
      workers > 0
        ? "the workers' watches to catch requests, and one to miss, in the metrics"
        : "a watch to catch a request, and one to miss, in the metrics",
      async () => {
        await d.reads();
        const m = await d.scrape();
        // Each request the main thread's watches caught is one of its own
        // frames: more than it received were caught by the workers'.
        const caught = workers > 0 ? d.frames(m) > mainFrames(m) : d.frames(m) > 0;
        return caught && d.misses(m) > 0 ? m : null;
      },
      { timeoutMs: 45_000, intervalMs: 0 },
    );
    expect(d.frames(m)).toBeLessThanOrEqual(d.counter(m, "aoed_interface_receive_frames_total"));
    // aoectl stats: the same counts since start (nothing was cleared), read a little later.
    const s = await d.stats();
    expect(s.busyPollFrames).toBeGreaterThanOrEqual(d.frames(m));
    expect(s.busyPollMisses).toBeGreaterThanOrEqual(d.misses(m));
  }, 60_000);
});

describe("busy polling's counters, busy-poll: 0", () => {
  const d = serve(0, 0);

  it("counts nothing, however fast the requests come", async () => {
    for (let round = 0; round < 4; round++) await d.reads();
    const m = await waitFor("the metrics to count every read", async () => {
      const m = await d.scrape();
      return d.counter(m, "aoed_interface_receive_frames_total") >= 4 * READS ? m : null;
    });
    expect(d.frames(m)).toBe(0);
    expect(d.misses(m)).toBe(0);
    expect(await d.stats()).toMatchObject({ busyPollFrames: 0, busyPollMisses: 0 });
  });
});
