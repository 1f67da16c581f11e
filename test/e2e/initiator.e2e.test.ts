// End-to-end: the real Linux aoe initiator (QEMU guest) against an AoE target.
// Needs root, QEMU and the apt packages in README.md; ~1 min per MTU.
//   npx vitest run --config test/e2e/vitest.config.ts      (AOE_E2E=0 skips it)
// The target is aoed (built in dist/); AOE_E2E_TARGET_CMD runs another one instead,
// e.g. vblade (placeholders {iface} {file0} {file1} {mtu} {ns} {out}, see README.md).
// AOE_E2E_MTUS=1500,9000 selects the MTUs, AOE_E2E_SCENARIO the guest scenario.
// With aoed as the target, "reload under load" also runs at AOE_E2E_RELOAD_MTUS
// (default 1500; empty skips it): 50 config edits while the guest verifies I/O on e0.0.
// "Failures under load" (node loss, restart, link loss; README.md) runs at
// AOE_E2E_FAILOVER_MTUS (default 9000; empty skips it), with three aoed nodes.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { type E2EResult, e2eUnavailableReason, runE2E, type Scenario } from "./harness.js";

const enabled = process.env.AOE_E2E !== "0";
const reason = enabled ? e2eUnavailableReason() : undefined;
const mtus = (process.env.AOE_E2E_MTUS ?? "1500,9000").split(",").map(Number);
const scenario = (process.env.AOE_E2E_SCENARIO ?? "full") as Scenario;
const aoedTarget = `${fileURLToPath(new URL("aoed-target.sh", import.meta.url))} {iface} {file0} {file1} {out}`;
const targetCmd = process.env.AOE_E2E_TARGET_CMD ?? aoedTarget;
const reloadMtus = (process.env.AOE_E2E_RELOAD_MTUS ?? "1500")
  .split(",")
  .filter((m) => m.trim() !== "")
  .map(Number);
const failoverTarget = `${fileURLToPath(new URL("failover-target.sh", import.meta.url))} {file0} {file1} {file2} {out}`;
const failoverMtus = (process.env.AOE_E2E_FAILOVER_MTUS ?? "9000")
  .split(",")
  .filter((m) => m.trim() !== "")
  .map(Number);
const onLine = process.env.AOE_E2E_VERBOSE === "1" ? (l: string) => console.log(l) : undefined;

/** The pino lines of aoed's log (target.log, or `file`) whose msg starts with `prefix` (or one of them), in order. */
function logLines(
  outDir: string,
  prefix: string | string[],
  file = "target.log",
): Record<string, unknown>[] {
  const prefixes = [prefix].flat();
  return readFileSync(join(outDir, file), "utf8")
    .split("\n")
    .flatMap((l) => {
      try {
        const j = JSON.parse(l) as Record<string, unknown>;
        return prefixes.some((p) => String(j.msg ?? "").startsWith(p)) ? [j] : [];
      } catch {
        return [];
      }
    });
}

/** The harness passed: no guest step or host check failed, and each of `steps` passed. */
function expectPassed(r: E2EResult, steps: string[]): void {
  const failed = [
    ...r.guest.filter((s) => s.status === "FAIL").map((s) => `guest ${s.name}: ${s.detail}`),
    ...r.host.filter((h) => !h.ok).map((h) => `host: ${h.detail}`),
  ];
  // show the tail of the log when something went wrong
  expect({ ok: r.ok, failed }, r.ok ? "" : r.output.split("\n").slice(-80).join("\n")).toEqual({
    ok: true,
    failed: [],
  });
  for (const name of steps) {
    expect(r.guest.find((s) => s.name === name)?.status, name).toBe("PASS");
  }
}

describe.skipIf(!enabled)("Linux aoe initiator end-to-end", () => {
  it("has the tools it needs", () => {
    expect(reason).toBeUndefined();
  });

  for (const mtu of mtus) {
    it.skipIf(reason !== undefined)(
      `MTU ${mtu}: discover, sizes, raw I/O, ext4, md RAID1, host checks, capture`,
      async () => {
        const r = await runE2E({
          mtu,
          scenario,
          targetCmd,
          // aoed pads its frames, so aoetools' aoeping must see it without the padding relay.
          env: targetCmd === aoedTarget ? { E2E_REQUIRE_PADDING: "1" } : {},
          onLine,
        });
        expectPassed(
          r,
          scenario === "full" ? ["net", "discover", "sizes", "raw", "ext4", "md"] : [],
        );
        expect(r.capture.ata_requests ?? 0).toBeGreaterThan(0);
      },
      30 * 60 * 1000,
    );
  }

  // Reload under load (README.md): aoed-target.sh runs config-churn.ts, which
  // rewrites the config 50 times while the guest runs verified fio passes on e0.0.
  for (const mtu of targetCmd === aoedTarget ? reloadMtus : []) {
    it.skipIf(reason !== undefined)(
      `MTU ${mtu}: 50 config reloads (valid, invalid, bursts, SIGHUP) under verified I/O on e0.0`,
      async () => {
        const r = await runE2E({
          mtu,
          scenario: "reload",
          targetCmd,
          env: { E2E_REQUIRE_PADDING: "1" },
          onLine,
        });
        expectPassed(r, ["net", "discover", "sizes", "reload"]);
        const out = r.outDir!;
        const churn = JSON.parse(readFileSync(join(out, "churn.json"), "utf8")) as {
          ok: boolean;
          edits: { valid: boolean }[];
          expectedTargets: string[];
        };
        expect(churn.ok).toBe(true);
        expect(churn.edits).toHaveLength(50);
        // Independently of the churn's own bookkeeping, from aoed's log:
        // e0.0 is unchanged in every reload ...
        const reloaded = logLines(out, "config reloaded");
        const refused = logLines(out, "config not reloaded");
        expect(reloaded.length).toBeGreaterThan(20);
        for (const l of reloaded) {
          expect(l.unchanged, JSON.stringify(l)).toContain("e0.0");
          const touched = [l.added, l.removed, l.changed].flat();
          expect(touched, JSON.stringify(l)).not.toContain("e0.0");
        }
        // ... every invalid version was refused ...
        const invalid = churn.edits.filter((e) => !e.valid).length;
        expect(invalid).toBeGreaterThan(10);
        expect(refused.filter((l) => l.reason === "file changed").length).toBeGreaterThanOrEqual(
          invalid,
        );
        // ... and what aoed serves at the end is the last valid version, which
        // is also exactly what a fresh discovery in the guest finds.
        const lastValid = parse(readFileSync(join(out, "churn/last-valid.yaml"), "utf8")) as {
          exports: { name?: string; shelf: number; slot: number }[];
        };
        const names = lastValid.exports.map((e) => e.name ?? `e${e.shelf}.${e.slot}`).sort();
        const targets = lastValid.exports.map((e) => `e${e.shelf}.${e.slot}`).sort();
        const last = reloaded.at(-1)!;
        expect([last.unchanged, last.changed, last.added].flat().map(String).sort()).toEqual(names);
        expect(targets).toEqual(churn.expectedTargets);
        const seen = r.info.find((i) => i.startsWith("reload_devices="))?.split("=")[1];
        expect(seen?.split(",")).toEqual(targets);
        // not a pass criterion: how often the initiator had to retransmit to e0.0
        console.log(
          `reload MTU ${mtu}: ${r.host.find((h) => h.detail.startsWith("config churn"))?.detail}; ` +
            `guest: ${r.info.find((i) => i.startsWith("reload_retransmits"))}; ` +
            `capture: unanswered=${r.capture.unanswered}; total ${r.timings.total}s`,
        );
      },
      30 * 60 * 1000,
    );
  }

  // Failures under load (README.md): failover-target.sh runs nodes A (e0.0),
  // B (e0.1) and C (e0.2 on two links) and fails them when the guest asks.
  for (const mtu of targetCmd === aoedTarget ? failoverMtus : []) {
    it.skipIf(reason !== undefined)(
      `MTU ${mtu}: node loss under md RAID1, link loss, restart under load, with verified I/O`,
      async () => {
        const r = await runE2E({
          mtu,
          scenario: "failover",
          targetCmd: failoverTarget,
          env: { E2E_REQUIRE_PADDING: "1" },
          onLine,
        });
        expectPassed(r, ["net", "discover", "sizes", "nodeloss", "linkloss", "restart"]);
        // the data checks the harness makes on the host all ran
        const hostChecks = r.host.map((h) => h.detail).join("\n");
        for (const check of [
          "md legs identical",
          "node loss, md leg e0.0: pass",
          "node loss, md leg e0.1: pass",
          "restart: e0.2's last pass",
          "linkloss: e0.2's last pass",
          "failover capture:",
        ]) {
          expect(hostChecks).toContain(check);
        }
        const info = (key: string) =>
          r.info
            .flatMap((i) => i.split(" "))
            .find((kv) => kv.startsWith(`${key}=`))
            ?.split("=")[1];
        expect(info("nodeloss_mismatch_cnt")).toBe("0");
        const out = r.outDir!;
        // the capture: every answer on its request's link, br0 alone while aoe3 was down
        const cap = Object.fromEntries(
          readFileSync(join(out, "failover-capture.txt"), "utf8")
            .replace(/^E2E-FAILOVER /, "")
            .trim()
            .split("\n")[0]!
            .split(" ")
            .map((kv) => kv.split("=") as [string, string]),
        );
        expect(Number(cap.wrong_link)).toBe(0);
        expect(Number(cap.down_answers_br1)).toBe(0);
        expect(Number(cap.down_answers_br0)).toBeGreaterThan(0);
        expect(Number(cap.up_answers_br1)).toBeGreaterThan(0);
        // aoed's side: node A was killed (it logged "stopped" only when the
        // harness stopped it at the end), node C stopped cleanly and came back
        const lifecycle = (file: string) =>
          logLines(out, ["aoed ready", "stopped"], file).map((l) => String(l.msg).split(",")[0]);
        expect(lifecycle("node-a.log")).toEqual(["aoed ready", "aoed ready", "stopped"]);
        expect(lifecycle("node-c.log")).toEqual(["aoed ready", "stopped", "aoed ready", "stopped"]);
        // node C's metrics after the link loss (it answered on both links) and,
        // for the process the restart started, at the end: neither dropped or failed anything
        const sample = (tag: string, name: string) =>
          Number(
            new RegExp(`^${name.replace(/[{}]/g, "\\$&")} (\\S+)$`, "m").exec(
              readFileSync(join(out, `metrics-${tag}-node-c.txt`), "utf8"),
            )?.[1],
          );
        for (const link of ["aoe2", "aoe3"]) {
          expect(
            sample("linkloss", `aoed_interface_transmit_frames_total{interface="${link}"}`),
            link,
          ).toBeGreaterThan(0);
        }
        for (const tag of ["linkloss", "end"]) {
          expect(sample(tag, `aoed_export_queue_drops_total{export="e0.2"}`), tag).toBe(0);
          expect(sample(tag, `aoed_export_ata_errors_total{export="e0.2"}`), tag).toBe(0);
        }
        // not pass criteria: the recovery times, for docs/operations.md
        const restart = r.guest
          .find((s) => s.name === "restart")
          ?.detail.match(/\(ok restart-node-c ([^)]*)\)/)?.[1];
        console.log(
          `failover MTU ${mtu}: node loss: faulty ${info("nodeloss_faulty_s")} s, ` +
            `revalidate ${info("nodeloss_revalidate_s")} s, resync ${info("nodeloss_resync_s")} s; ` +
            `restart: ${restart}, no answer ${cap.restart_no_answer_ms} ms; ` +
            `link loss: first br1 answer ${cap.up_first_br1_answer_ms} ms after link-up, ` +
            `both paths in the guest after ${info("linkloss_both_paths_s")} s; ` +
            `steps ${["nodeloss", "linkloss", "restart"].map((n) => `${n}=${r.guest.find((s) => s.name === n)?.seconds}s`).join(" ")}; ` +
            `total ${r.timings.total}s`,
        );
      },
      30 * 60 * 1000,
    );
  }
});
