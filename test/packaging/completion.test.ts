/**
 * The bash completion the package installs (packaging/bash-completion): what
 * TAB offers for aoed and aoectl, by running the completion functions in bash
 * the way bash's programmable completion calls them.
 */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";

const DIR = path.resolve(import.meta.dirname, "../../packaging/bash-completion");

/** The words TAB offers after `line` (the last word is the one being completed). */
function complete(tool: "aoed" | "aoectl", line: string): string[] {
  const words = line.split(" ");
  const script = `source ${JSON.stringify(path.join(DIR, tool))}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")})
COMP_CWORD=${words.length - 1}
_${tool}
printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync("bash", ["--norc", "-c", script], { encoding: "utf8" });
  expect(r.stderr).toBe("");
  return r.stdout.split("\n").filter(Boolean);
}

describe("bash completion", () => {
  it("aoed: the check command, options and their values", () => {
    expect(complete("aoed", "aoed ch")).toEqual(["check"]);
    expect(complete("aoed", "aoed --log-f")).toEqual(["--log-format"]);
    expect(complete("aoed", "aoed --log-format ")).toEqual(["json", "pretty"]);
    expect(complete("aoed", "aoed --log-level w")).toEqual(["warn"]);
  });

  it("aoectl: commands, then what each command takes", () => {
    expect(complete("aoectl", "aoectl s").sort()).toEqual(["show", "stats", "status"]);
    expect(complete("aoectl", "aoectl re").sort()).toEqual(["read", "reload", "reserve"]);
    expect(complete("aoectl", "aoectl clear ")).toEqual(["config", "macmask", "reserve", "stats"]);
    expect(complete("aoectl", "aoectl reserve lo e0.0 ")).toEqual([
      "read",
      "set",
      "force",
      "release",
    ]);
    expect(complete("aoectl", "aoectl --js")).toEqual(["--json"]);
  });

  it("aoectl: interface names for the initiator-side commands", () => {
    expect(complete("aoectl", "aoectl discover l")).toContain("lo");
  });
});
