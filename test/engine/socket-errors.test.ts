import type { Logger } from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { logSocketErrors, SOCKET_ERROR_BURST_MS } from "../../src/engine/socket-errors.js";

function fakeLog() {
  const lines: { obj: Record<string, unknown>; msg: string }[] = [];
  const log = { warn: (obj: Record<string, unknown>, msg: string) => lines.push({ obj, msg }) };
  return { log: log as unknown as Logger, lines };
}

const enetdown = () =>
  Object.assign(new Error("eth0: socket error: ENETDOWN"), { code: "ENETDOWN" });

describe("logSocketErrors", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("logs the first error of a burst with the interface, then one line counting the rest", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
    const { log, lines } = fakeLog();
    const report = logSocketErrors(log, "eth0");
    report(enetdown());
    expect(lines).toEqual([
      {
        obj: { interface: "eth0", err: "eth0: socket error: ENETDOWN", code: "ENETDOWN" },
        msg: "socket error",
      },
    ]);
    for (let i = 0; i < 3; i++) report(enetdown());
    expect(lines.length).toBe(1);
    vi.advanceTimersByTime(SOCKET_ERROR_BURST_MS);
    expect(lines[1]).toEqual({
      obj: { interface: "eth0", err: "eth0: socket error: ENETDOWN", repeated: 3 },
      msg: "socket errors repeated",
    });
    // After the quiet period the next error is logged at once again.
    report(enetdown());
    expect(lines.length).toBe(3);
    expect(lines[2]!.msg).toBe("socket error");
  });
});
