/**
 * Busy polling's counters from a real daemon, per interface: what the metrics
 * say is what `aoectl stats` says, with and without worker threads (whose
 * sockets watch too and report through their port vectors), no more hits
 * than frames received, and nothing at all with `busy-poll: 0`. Whether a
 * watch catches a request depends on how fast this process's initiator
 * answers, so no verdict here rests on one being caught: that a watch
 * catches and misses is tested on the socket (test/net/packet-socket.test.ts,
 * test/net/busy-poll.test.ts), and that worker threads' counts add up, on
 * the port and the counter vectors (test/engine/port.test.ts, stats.test.ts).
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
    hits: (m: Metrics) => counter(m, "aoed_interface_busy_poll_hits_total"),
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

  it("are the same in the metrics and aoectl stats, and count no more hits than frames received", async () => {
    for (let round = 0; round < 4; round++) await d.reads();
    // Once the last watch has ended, two scrapes and the stats between them agree.
    const m = await waitFor("the counters to settle", async () => {
      const before = await d.scrape();
      const s = await d.stats();
      const after = await d.scrape();
      const same =
        d.hits(before) === d.hits(after) &&
        d.misses(before) === d.misses(after) &&
        s.busyPollHits === d.hits(after) &&
        s.busyPollMisses === d.misses(after);
      return same ? after : null;
    });
    expect(d.hits(m)).toBeLessThanOrEqual(d.counter(m, "aoed_interface_receive_frames_total"));
    expect(d.counter(m, "aoed_interface_receive_frames_total")).toBeGreaterThanOrEqual(4 * READS);
  });
});

describe("busy polling's counters, busy-poll: 0", () => {
  const d = serve(0, 0);

  it("counts nothing, however fast the requests come", async () => {
    for (let round = 0; round < 4; round++) await d.reads();
    const m = await waitFor("the metrics to count every read", async () => {
      const m = await d.scrape();
      return d.counter(m, "aoed_interface_receive_frames_total") >= 4 * READS ? m : null;
    });
    expect(d.hits(m)).toBe(0);
    expect(d.misses(m)).toBe(0);
    expect(await d.stats()).toMatchObject({ busyPollHits: 0, busyPollMisses: 0 });
  });
});
