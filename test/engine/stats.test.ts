/** The counter vectors worker threads send the main thread: what one thread counted, another adds up. */
import { describe, expect, it } from "vitest";
import {
  addPortVector,
  addTargetVector,
  LATENCY_OPS,
  newPortStats,
  newSocketCounts,
  newTargetStats,
  opHistogramAt,
  PORT_COUNTERS,
  portIndex,
  portVector,
  resetTargetStats,
  TARGET_COUNT_AT,
  TARGET_COUNTERS,
  TARGET_SUM_AT,
  targetIndex,
  targetVector,
} from "../../src/engine/stats.js";

function busyTarget() {
  const s = newTargetStats();
  TARGET_COUNTERS.forEach((k, i) => {
    s[k] = 10 + i;
  });
  s.latency.observe(0.0001);
  s.latency.observe(2);
  s.opLatency.read.observe(0.0001);
  s.opLatency.flush.observe(2);
  return s;
}

describe("engine counter vectors", () => {
  it("a target's vector added into fresh counters gives the same counters back", () => {
    const worker = busyTarget();
    const main = newTargetStats();
    addTargetVector(main, targetVector(worker));
    expect(targetVector(main)).toEqual(targetVector(worker));
    addTargetVector(main, targetVector(worker));
    expect(main.reads).toBe(2 * worker.reads);
    expect(main.opLatency.flush.count).toBe(2);
  });

  it("lays a target's vector out as documented: counters, then each histogram's buckets, sum and count", () => {
    const v = targetVector(busyTarget());
    expect(v[targetIndex("queueDrops")]).toBe(10 + TARGET_COUNTERS.indexOf("queueDrops"));
    expect(v[TARGET_COUNT_AT]).toBe(2);
    expect(v[TARGET_SUM_AT]).toBeCloseTo(2.0001);
    const flushAt = opHistogramAt(LATENCY_OPS.indexOf("flush"));
    expect(v.length).toBe(opHistogramAt(LATENCY_OPS.length));
    expect(v[opHistogramAt(LATENCY_OPS.length) - 1]).toBe(1); // flush count
    expect(v.slice(flushAt, opHistogramAt(LATENCY_OPS.length) - 2).reduce((a, b) => a + b)).toBe(1);
  });

  it("resets every counter and histogram in place", () => {
    const s = busyTarget();
    resetTargetStats(s);
    expect(targetVector(s).every((x) => x === 0)).toBe(true);
  });

  it("a port's vector carries the kernel's drops, other-host frames and busy polling's counts after its counters", () => {
    const stats = newPortStats();
    PORT_COUNTERS.forEach((k, i) => {
      stats[k] = i + 1;
    });
    const v = portVector({
      stats,
      kernelStats: () => ({
        rxFrames: 0,
        rxDrops: 5,
        otherHost: 6,
        busyPollHits: 8,
        busyPollMisses: 9,
      }),
    });
    expect(v).toHaveLength(PORT_COUNTERS.length + 4);
    expect(v[portIndex("kernelDrops")]).toBe(5);
    expect(v[portIndex("otherHost")]).toBe(6);
    expect(v[portIndex("busyPollHits")]).toBe(8);
    expect(v[portIndex("busyPollMisses")]).toBe(9);
    expect(v[portIndex("txRingFull")]).toBe(PORT_COUNTERS.length);
    const into = newPortStats();
    const socket = { rxDrops: 1, otherHost: 1, busyPollHits: 2, busyPollMisses: 3 };
    addPortVector(into, socket, v);
    expect(into).toEqual(stats);
    expect(socket).toEqual({ rxDrops: 6, otherHost: 7, busyPollHits: 10, busyPollMisses: 12 });
  });

  it("a worker's port vectors, sent as differences, add up to its socket's counts", () => {
    // As src/engine/worker.ts reports them and Port.workerReport adds them.
    const worker = newSocketCounts();
    const counted = { stats: newPortStats(), kernelStats: () => ({ rxFrames: 0, ...worker }) };
    const mainStats = newPortStats();
    const main = newSocketCounts();
    let last = portVector(counted);
    for (const [frames, misses] of [
      [3, 1],
      [0, 2],
      [40, 0],
    ] as const) {
      worker.busyPollHits += frames;
      worker.busyPollMisses += misses;
      counted.stats.rxFrames += frames + 1;
      const now = portVector(counted);
      addPortVector(
        mainStats,
        main,
        now.map((x, i) => x - last[i]!),
      );
      last = now;
    }
    expect(main).toEqual({ rxDrops: 0, otherHost: 0, busyPollHits: 43, busyPollMisses: 3 });
    expect(mainStats.rxFrames).toBe(46);
  });

  it("a port whose socket cannot say counts no kernel drops", () => {
    const v = portVector({
      stats: newPortStats(),
      kernelStats: () => {
        throw new Error("closed");
      },
    });
    expect(v.slice(PORT_COUNTERS.length)).toEqual([0, 0, 0, 0]);
  });

  it("a socket that cannot say any more keeps what it said last, so no total goes back", () => {
    let closed = false;
    const port = {
      stats: newPortStats(),
      kernelStats: () => {
        if (closed) throw new Error("closed");
        return { rxFrames: 9, rxDrops: 2, otherHost: 3, busyPollHits: 4, busyPollMisses: 5 };
      },
    };
    expect(portVector(port).slice(PORT_COUNTERS.length)).toEqual([2, 3, 4, 5]);
    closed = true;
    expect(portVector(port).slice(PORT_COUNTERS.length)).toEqual([2, 3, 4, 5]);
  });
});
