import { describe, expect, it } from "vitest";
import { EARLY_KICK, ReplyKick } from "../../src/engine/reply-kick.js";

/** A ReplyKick whose kicks are counted and whose deferred kicks run when the test says. */
function setup() {
  const deferred: (() => void)[] = [];
  let kicks = 0;
  const kick = new ReplyKick(
    () => {
      kicks++;
    },
    (fn) => {
      deferred.push(fn);
    },
  );
  return {
    kick,
    kicks: () => kicks,
    deferred,
    /** The end of the event-loop turn: what was deferred runs. */
    turnEnds: () => {
      for (const fn of deferred.splice(0)) fn();
    },
  };
}

describe("ReplyKick: when a port's replies are sent", () => {
  it("a batch's replies go out together when it ends, with no deferred kick", () => {
    const { kick, kicks, deferred } = setup();
    kick.frame();
    kick.committed();
    kick.frame();
    kick.committed();
    expect(kicks()).toBe(0);
    kick.batchEnd();
    expect(kicks()).toBe(1);
    expect(deferred).toHaveLength(0);
  });

  it(`the ${EARLY_KICK}th reply of a batch kicks at once; the rest wait for its end`, () => {
    const { kick, kicks } = setup();
    for (let i = 1; i <= EARLY_KICK + 2; i++) {
      kick.frame();
      kick.committed();
      expect(kicks()).toBe(i < EARLY_KICK ? 0 : 1);
    }
    kick.batchEnd();
    expect(kicks()).toBe(2);
  });

  it("only the first replies of each batch are kicked early", () => {
    const { kick, kicks } = setup();
    for (let batch = 1; batch <= 2; batch++) {
      kick.frame();
      for (let i = 0; i < EARLY_KICK; i++) kick.committed();
      expect(kicks()).toBe(2 * batch - 1);
      for (let i = 0; i < 3 * EARLY_KICK; i++) kick.committed();
      expect(kicks()).toBe(2 * batch - 1);
      kick.batchEnd();
      expect(kicks()).toBe(2 * batch);
    }
  });

  it("a batch that ends with everything kicked early kicks nothing more", () => {
    const { kick, kicks } = setup();
    kick.frame();
    for (let i = 0; i < EARLY_KICK; i++) kick.committed();
    kick.batchEnd();
    expect(kicks()).toBe(1);
  });

  it("a batch with no replies kicks nothing", () => {
    const { kick, kicks } = setup();
    kick.frame();
    kick.frame();
    kick.batchEnd();
    expect(kicks()).toBe(0);
  });

  it("replies outside a batch go out with one deferred kick per turn", () => {
    const { kick, kicks, deferred, turnEnds } = setup();
    for (let i = 0; i < 3 * EARLY_KICK; i++) kick.committed();
    expect(kicks()).toBe(0);
    expect(deferred).toHaveLength(1);
    turnEnds();
    expect(kicks()).toBe(1);
    kick.committed();
    expect(deferred).toHaveLength(1);
    turnEnds();
    expect(kicks()).toBe(2);
  });

  it("a deferred kick finding its replies sent with a batch does nothing", () => {
    const { kick, kicks, turnEnds } = setup();
    kick.committed(); // an I/O completion: kick deferred
    kick.frame();
    kick.committed(); // pending already: no second deferral
    kick.batchEnd();
    expect(kicks()).toBe(1);
    turnEnds();
    expect(kicks()).toBe(1);
  });

  it("after a batch, replies are deferred again", () => {
    const { kick, kicks, deferred, turnEnds } = setup();
    kick.frame();
    kick.committed();
    kick.batchEnd();
    kick.committed();
    expect(deferred).toHaveLength(1);
    turnEnds();
    expect(kicks()).toBe(2);
  });

  it("a batch cut short (batchEnd without a frame's end) sends what it answered", () => {
    const { kick, kicks } = setup();
    kick.frame();
    kick.committed();
    kick.batchEnd();
    expect(kicks()).toBe(1);
    // And the early-kick count starts over.
    kick.frame();
    for (let i = 1; i < EARLY_KICK; i++) kick.committed();
    expect(kicks()).toBe(1);
  });

  it("close sends at once, even with nothing committed, and leaves nothing for a deferred kick", () => {
    const { kick, kicks, turnEnds } = setup();
    kick.close();
    expect(kicks()).toBe(1);
    kick.committed();
    kick.close();
    expect(kicks()).toBe(2);
    turnEnds();
    expect(kicks()).toBe(2);
  });
});
