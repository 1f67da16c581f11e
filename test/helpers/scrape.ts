/** Metrics of a daemon running in a network namespace, where 127.0.0.1:9288 is its own. */
import { execFile } from "node:child_process";
import { parseExposition } from "../metrics/fakes.js";

export function scrapeMetrics(netns: string): Promise<Map<string, number>> {
  return new Promise((resolve, reject) =>
    execFile(
      "ip",
      [
        "netns",
        "exec",
        netns,
        process.execPath,
        "-e",
        "fetch('http://127.0.0.1:9288/metrics').then(r => r.text()).then(t => process.stdout.write(t), e => { console.error(e); process.exit(1); })",
      ],
      { timeout: 20_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) =>
        err ? reject(new Error(stderr || err.message)) : resolve(parseExposition(stdout)),
    ),
  );
}
