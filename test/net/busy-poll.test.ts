/**
 * When a packet socket watches its ring (src/net/busy-poll.ts), driven with
 * times of the test's choosing: only after a frame that a watch would have
 * caught, never again after an empty watch until that happens once more.
 */
import { describe, expect, it } from "vitest";
import { BusyPollPolicy } from "../../src/net/busy-poll.js";

const BUDGET = 0.05; // ms: 50 µs

describe("BusyPollPolicy", () => {
  it("does not watch after the first frame, nor after one that came later than the budget", () => {
    const p = new BusyPollPolicy(BUDGET);
    p.woke(1000);
    expect(p.idle(1000.01)).toBe(false); // nothing known about the gap yet
    p.woke(1000.01 + BUDGET + 0.001); // came just too late for a watch
    expect(p.idle(1000.2)).toBe(false);
  });

  it("watches after a frame that came within the budget of the idle moment before it", () => {
    const p = new BusyPollPolicy(BUDGET);
    p.woke(1000);
    p.idle(1000.01);
    p.woke(1000.01 + BUDGET); // exactly the budget: a watch would have caught it
    expect(p.idle(1000.07)).toBe(true);
  });

  it("keeps watching while watches catch frames, and stops at the first empty one", () => {
    const p = new BusyPollPolicy(BUDGET);
    p.woke(1000);
    p.idle(1000.01);
    p.woke(1000.02);
    expect(p.idle(1000.03)).toBe(true);
    p.caught();
    expect(p.idle(1000.04)).toBe(true);
    p.caught();
    expect(p.idle(1000.05)).toBe(true);
    p.missed();
    expect(p.idle(1000.1)).toBe(false); // called again without a new frame: still no
    // The next frame came long after: no watch after it either.
    p.woke(1005);
    expect(p.idle(1005.01)).toBe(false);
  });

  it("measures the gap from when the replies went out, not from the frame before", () => {
    // An asynchronous backend: the frame wakes the socket, its reply goes out
    // later (not idle meanwhile), and the next frame's gap counts from then.
    const p = new BusyPollPolicy(BUDGET);
    p.woke(1000);
    expect(p.idle(1000.5)).toBe(false); // the reply left 0.5 ms after the frame
    p.woke(1000.53); // 30 µs after the reply: within the budget
    expect(p.idle(1001)).toBe(true);
  });
});
