// End-to-end: the real Linux aoe initiator (QEMU guest) against an AoE target.
// Needs root, QEMU and the apt packages in README.md; ~1 min per MTU.
//   npx vitest run --config test/e2e/vitest.config.ts      (AOE_E2E=0 skips it)
// The target is aoed (built in dist/); AOE_E2E_TARGET_CMD runs another one instead,
// e.g. vblade (placeholders {iface} {file0} {file1} {mtu} {ns} {out}, see README.md).
// AOE_E2E_MTUS=1500,9000 selects the MTUs, AOE_E2E_SCENARIO the guest scenario.
// With aoed as the target, "reload under load" also runs at AOE_E2E_RELOAD_MTUS
// (default 1500; empty skips it): 50 config edits while the guest verifies I/O on e0.0.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { e2eUnavailableReason, runE2E, type Scenario } from "./harness.js";

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
const onLine = process.env.AOE_E2E_VERBOSE === "1" ? (l: string) => console.log(l) : undefined;

/** The pino lines of aoed's log (target.log) whose msg starts with `prefix`. */
function logLines(outDir: string, prefix: string): Record<string, unknown>[] {
  return readFileSync(join(outDir, "target.log"), "utf8")
    .split("\n")
    .flatMap((l) => {
      try {
        const j = JSON.parse(l) as Record<string, unknown>;
        return String(j.msg ?? "").startsWith(prefix) ? [j] : [];
      } catch {
        return [];
      }
    });
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
        const failed = [
          ...r.guest.filter((s) => s.status === "FAIL").map((s) => `guest ${s.name}: ${s.detail}`),
          ...r.host.filter((h) => !h.ok).map((h) => `host: ${h.detail}`),
        ];
        // show the tail of the log when something went wrong
        expect(
          { ok: r.ok, failed },
          r.ok ? "" : r.output.split("\n").slice(-80).join("\n"),
        ).toEqual({ ok: true, failed: [] });
        const expected =
          scenario === "full" ? ["net", "discover", "sizes", "raw", "ext4", "md"] : [];
        for (const name of expected) {
          expect(r.guest.find((s) => s.name === name)?.status, name).toBe("PASS");
        }
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
        const failed = [
          ...r.guest.filter((s) => s.status === "FAIL").map((s) => `guest ${s.name}: ${s.detail}`),
          ...r.host.filter((h) => !h.ok).map((h) => `host: ${h.detail}`),
        ];
        expect(
          { ok: r.ok, failed },
          r.ok ? "" : r.output.split("\n").slice(-80).join("\n"),
        ).toEqual({ ok: true, failed: [] });
        for (const name of ["net", "discover", "sizes", "reload"]) {
          expect(r.guest.find((s) => s.name === name)?.status, name).toBe("PASS");
        }
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
});
