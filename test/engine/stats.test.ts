/** The counter vectors worker threads send the main thread: what one thread counted, another adds up. */
import { describe, expect, it } from "vitest";
import {
  addPortVector,
  addTargetVector,
  LATENCY_OPS,
  newPortStats,
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

  it("a port's vector carries the kernel's drops and other-host frames after its counters", () => {
    const stats = newPortStats();
    PORT_COUNTERS.forEach((k, i) => {
      stats[k] = i + 1;
    });
    const v = portVector({
      stats,
      kernelStats: () => ({ rxFrames: 0, rxDrops: 5, otherHost: 6 }),
    });
    expect(v[portIndex("kernelDrops")]).toBe(5);
    expect(v[portIndex("txRingFull")]).toBe(PORT_COUNTERS.length);
    const into = newPortStats();
    const kernel = { rxDrops: 1, otherHost: 1 };
    addPortVector(into, kernel, v);
    expect(into).toEqual(stats);
    expect(kernel).toEqual({ rxDrops: 6, otherHost: 7 });
  });

  it("a port whose socket cannot say counts no kernel drops", () => {
    const v = portVector({
      stats: newPortStats(),
      kernelStats: () => {
        throw new Error("closed");
      },
    });
    expect(v.slice(-2)).toEqual([0, 0]);
  });
});
