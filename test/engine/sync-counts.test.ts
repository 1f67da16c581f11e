/**
 * Group commit's counters (src/io/group-commit.ts) reach the target counters
 * through countSyncs() (src/engine/stats.ts): each thread's backend counted
 * once into its own thread's stats, worker threads' counts added into the
 * main thread's by their vectors, nothing counted twice when a reload hands a
 * backend or the counters to a new target.
 */
import { describe, expect, it } from "vitest";
import {
  addTargetVector,
  countSyncs,
  newTargetStats,
  resetTargetStats,
  targetIndex,
  targetVector,
} from "../../src/engine/stats.js";
import type { IoCallback } from "../../src/io/backend.js";
import { GroupCommit } from "../../src/io/group-commit.js";

/** A group commit whose syncs the test completes by hand. */
function commit() {
  const syncs: IoCallback[] = [];
  const gc = new GroupCommit((cb) => syncs.push(cb), { path: "/img", exportName: "lv0" });
  const acked: (NodeJS.ErrnoException | null)[] = [];
  /** `n` writes completed together, then their sync ends with `err`. */
  const batch = async (n: number, err: NodeJS.ErrnoException | null = null) => {
    for (let i = 0; i < n; i++) gc.completed((e) => acked.push(e));
    await new Promise<void>((r) => queueMicrotask(r));
    syncs.shift()!(err);
  };
  /** A lone RWF_DSYNC write. */
  const dsync = () => {
    gc.dsyncStarted();
    gc.dsyncDone(null);
    acked.push(null);
  };
  return { gc, batch, dsync, acked };
}

const sums = (s: ReturnType<typeof newTargetStats>) => ({
  syncs: s.syncs,
  syncedWrites: s.syncedWrites,
  dsyncWrites: s.dsyncWrites,
  syncErrors: s.syncErrors,
});

describe("countSyncs", () => {
  it("adds what the group commit counted since the last call, once", async () => {
    const c = commit();
    const stats = newTargetStats();
    await c.batch(3);
    c.dsync();
    countSyncs(stats, c.gc.stats);
    expect(sums(stats)).toEqual({ syncs: 1, syncedWrites: 3, dsyncWrites: 1, syncErrors: 0 });
    countSyncs(stats, c.gc.stats); // nothing new
    expect(sums(stats)).toEqual({ syncs: 1, syncedWrites: 3, dsyncWrites: 1, syncErrors: 0 });
    await c.batch(2);
    countSyncs(stats, c.gc.stats);
    // Every acknowledged write is a synced or a DSYNC write; each sync covered one at least.
    expect(stats.syncedWrites + stats.dsyncWrites).toBe(c.acked.filter((e) => e === null).length);
    expect(sums(stats)).toEqual({ syncs: 2, syncedWrites: 5, dsyncWrites: 1, syncErrors: 0 });
  });

  it("counts a failed sync as an error, not as synced writes", async () => {
    const c = commit();
    const stats = newTargetStats();
    await c.batch(2, Object.assign(new Error("EIO"), { code: "EIO" }));
    countSyncs(stats, c.gc.stats);
    expect(sums(stats)).toEqual({ syncs: 1, syncedWrites: 0, dsyncWrites: 0, syncErrors: 1 });
  });

  it("leaves the counters alone without group commit", () => {
    const stats = newTargetStats();
    countSyncs(stats, undefined);
    expect(targetVector(stats).every((v) => v === 0)).toBe(true);
  });

  it("sums each thread's backend through the worker's vector differences", async () => {
    const main = commit();
    const worker = commit();
    const mainStats = newTargetStats();
    const workerStats = newTargetStats();
    let reported = targetVector(workerStats);
    const report = () => {
      countSyncs(workerStats, worker.gc.stats);
      const now = targetVector(workerStats);
      addTargetVector(
        mainStats,
        now.map((v, i) => v - reported[i]!),
      );
      reported = now;
    };
    await main.batch(4);
    await worker.batch(5);
    worker.dsync();
    report();
    await worker.batch(1);
    report();
    report();
    countSyncs(mainStats, main.gc.stats);
    expect(sums(mainStats)).toEqual({ syncs: 3, syncedWrites: 10, dsyncWrites: 1, syncErrors: 0 });
    expect(targetVector(mainStats)[targetIndex("syncedWrites")]).toBe(10);
  });

  it("a backend handed to a new target with the same counters is not counted again; a new one from zero", async () => {
    const kept = commit();
    const stats = newTargetStats();
    await kept.batch(2);
    countSyncs(stats, kept.gc.stats); // the old target
    await kept.batch(3);
    countSyncs(stats, kept.gc.stats); // its successor, same backend, same stats
    countSyncs(stats, kept.gc.stats); // the old one again, as it finishes draining
    expect(sums(stats)).toEqual({ syncs: 2, syncedWrites: 5, dsyncWrites: 0, syncErrors: 0 });
    const reopened = commit();
    await reopened.batch(1);
    countSyncs(stats, reopened.gc.stats);
    expect(sums(stats)).toEqual({ syncs: 3, syncedWrites: 6, dsyncWrites: 0, syncErrors: 0 });
  });

  it("after the counters are cleared, counts only what follows", async () => {
    const c = commit();
    const stats = newTargetStats();
    await c.batch(2);
    countSyncs(stats, c.gc.stats);
    resetTargetStats(stats);
    await c.batch(1);
    countSyncs(stats, c.gc.stats);
    expect(sums(stats)).toEqual({ syncs: 1, syncedWrites: 1, dsyncWrites: 0, syncErrors: 0 });
  });
});
