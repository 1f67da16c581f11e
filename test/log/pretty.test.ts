import { describe, expect, it } from "vitest";
import { prettyLine } from "../../src/log.js";

describe("pretty log lines", () => {
  it("shows time, level, message and fields, without the pid", () => {
    const line = JSON.stringify({
      level: 40,
      time: "2026-11-25T16:45:01.234Z",
      pid: 42,
      msg: "interface is gone",
      interface: "eth1",
      errors: 3,
      list: ["a"],
    });
    expect(prettyLine(line)).toBe(
      '16:45:01.234 WARN  interface is gone  interface=eth1 errors=3 list=["a"]\n',
    );
  });
});
