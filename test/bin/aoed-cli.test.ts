/** aoed's command line: every mistake is one line on stderr and exit status 2 (aoed(8)). */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { AOED } from "../helpers/daemon.js";

function aoed(args: string[]) {
  const r = spawnSync(process.execPath, [AOED, ...args], { encoding: "utf8", timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("aoed command-line errors", () => {
  it.each([
    [["--bogus"], "aoed: unknown option --bogus (see aoed --help)"],
    [
      ["--confg", "x.yaml"],
      "aoed: unknown option --confg; did you mean --config? (see aoed --help)",
    ],
    [["--config"], "aoed: option --config needs a value (see aoed --help)"],
    [["--help=yes"], "aoed: option --help takes no value (see aoed --help)"],
    [["frob"], 'aoed: unknown command "frob": run or check (see aoed --help)'],
    [["check", "extra"], 'aoed: unexpected argument "extra" (see aoed --help)'],
    [["--log-format", "xml"], 'aoed: --log-format must be json or pretty, not "xml"'],
    [
      ["--log-level", "loud"],
      'aoed: --log-level must be one of trace, debug, info, warn, error, not "loud"',
    ],
    [["--demo", "--config", "x.yaml"], "aoed: --demo and --config exclude each other"],
  ])("aoed %j", (args, message) => {
    expect(aoed(args)).toEqual({ code: 2, stdout: "", stderr: `${message}\n` });
  });
});
