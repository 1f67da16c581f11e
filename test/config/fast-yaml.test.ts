/**
 * The loader reads well-formed files with js-yaml (fast) and everything else
 * with yaml's Document (positions for diagnostics). Both must read a file the
 * same way: every YAML 1.2 core scalar form, and the documented example.
 */
import fs from "node:fs";
import path from "node:path";
import { isDeepStrictEqual } from "node:util";
import { describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { fastData } from "../../src/config/fast-yaml.js";

const SCALARS = [
  "1000",
  "1_000",
  "017",
  "+12",
  "-1",
  "-0",
  "0o17",
  "0o8",
  "0x10",
  "0xFF_FF",
  "0X10",
  "+0x10",
  "-0x10",
  "0b101",
  "08",
  ".5",
  "+.5",
  "-.5e3",
  "0.",
  "1.",
  "1e3",
  "1E3",
  "1.5e+3",
  "+1e-3",
  "1e",
  ".inf",
  "-.Inf",
  "+.INF",
  ".nan",
  ".NaN",
  "~",
  "null",
  "Null",
  "NULL",
  "",
  "true",
  "True",
  "TRUE",
  "false",
  "yes",
  "no",
  "on",
  "off",
  "y",
  "2026-01-01",
  "2026-01-01T10:00:00Z",
  "12:30:45",
  "1:30",
  "00:1b:21:aa:bb:01",
  "eth*",
  "1,000",
  "=",
  "<<",
  "'0x10'",
  '"dq\\n"',
  "'it''s'",
  "!!str 5",
  "!!float 1",
  "[1, a, true]",
  "{a: 1, b: ~}",
];

/** What yaml's Document reads, or "error". */
function slow(text: string): unknown {
  const doc = parseDocument(text);
  return doc.errors.length > 0 ? "error" : doc.toJS();
}

describe("fast YAML path", () => {
  it.each(SCALARS)("reads `k: %s` as the Document path does, or leaves it to it", (v) => {
    const text = `k: ${v}\n`;
    const fast = fastData(text);
    if (fast !== undefined) expect(isDeepStrictEqual(fast.data, slow(text))).toBe(true);
  });

  it("takes the example config and reads it the same way", () => {
    const text = fs.readFileSync(path.resolve(import.meta.dirname, "../../etc/aoed.yaml"), "utf8");
    const fast = fastData(text);
    expect(fast).toBeDefined();
    expect(fast!.data).toEqual(slow(text));
  });

  it("leaves syntax errors, duplicate keys, anchors, aliases and tags to the Document path", () => {
    for (const text of [
      "a: [1\n",
      "a: 1\na: 2\n",
      "a: &x 1\nb: *x\n",
      "a: !!int 5\n",
      "a:\n\t- 1\n",
      "%YAML 1.1\n---\na: 010\n",
      "exports: [\n{ path: /x }\n]\n",
    ])
      expect(fastData(text)).toBeUndefined();
  });
});
