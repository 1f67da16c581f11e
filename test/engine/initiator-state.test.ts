/** Initiator-set state: one owner that publishes to the worker threads and persists before anyone is answered. */
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { emptyState, InitiatorState, type TargetState } from "../../src/engine/initiator-state.js";
import { SharedAccessLists } from "../../src/engine/shared-state.js";

const log = pino({ level: "silent" });
const A = 0x020000000aaa;
const B = 0x020000000bbb;

describe("initiator state", () => {
  it("publishes the mask and reservation to the workers before the change is persisted", () => {
    const lists = new SharedAccessLists();
    const worker = new SharedAccessLists(lists.buffer);
    const seen: { saved: TargetState; published: { mask: number[]; reserve: number[] } }[] = [];
    const state = new InitiatorState(
      "e",
      log,
      emptyState(),
      (saved) => {
        const { mask, reserve } = worker.read();
        seen.push({ saved, published: { mask, reserve } });
      },
      lists,
    );
    state.setMask([A]);
    state.setReserve([B], A);
    expect(seen.map((s) => s.published)).toEqual([
      { mask: [A], reserve: [] },
      { mask: [A], reserve: [B] },
    ]);
    expect(seen[1]!.saved).toMatchObject({ mask: [A], reserve: [B] });
  });

  it("reads what another thread published", () => {
    const lists = new SharedAccessLists();
    const other = new SharedAccessLists(lists.buffer);
    const config = Buffer.from("hello");
    const state = new InitiatorState("e", log, { ...emptyState(), config }, () => {}, lists);
    other.publish([A], [B]);
    expect(state.state).toEqual({ config, mask: [A], reserve: [B] });
  });

  it("keeps its own copy of a config string and clears each part alone", () => {
    const saved: TargetState[] = [];
    const state = new InitiatorState("e", log, emptyState(), (s) => saved.push(s), null);
    const value = Buffer.from("abc");
    state.setConfig(value);
    value.fill(0);
    expect(state.state.config.toString()).toBe("abc");
    state.setMask([A]);
    state.setReserve([A, B], A);
    state.clear("mask");
    expect(state.state).toEqual({ config: Buffer.from("abc"), mask: [], reserve: [A, B] });
    state.clear("config");
    state.clear("reserve");
    expect(state.state).toEqual(emptyState());
    expect(saved).toHaveLength(6);
  });
});
