// End-to-end: the real Linux aoe initiator (QEMU guest) against an AoE target.
// Needs root, QEMU and the apt packages in README.md; ~1 min per MTU.
//   npx vitest run --config test/e2e/vitest.config.ts      (AOE_E2E=0 skips it)
// The target is aoed (built in dist/); AOE_E2E_TARGET_CMD runs another one instead,
// e.g. vblade (placeholders {iface} {file0} {file1} {mtu} {ns} {out}, see README.md).
// AOE_E2E_MTUS=1500,9000 selects the MTUs, AOE_E2E_SCENARIO the guest scenario.
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { e2eUnavailableReason, runE2E, type Scenario } from "./harness.js";

const enabled = process.env.AOE_E2E !== "0";
const reason = enabled ? e2eUnavailableReason() : undefined;
const mtus = (process.env.AOE_E2E_MTUS ?? "1500,9000").split(",").map(Number);
const scenario = (process.env.AOE_E2E_SCENARIO ?? "full") as Scenario;
const aoedTarget = `${fileURLToPath(new URL("aoed-target.sh", import.meta.url))} {iface} {file0} {file1} {out}`;
const targetCmd = process.env.AOE_E2E_TARGET_CMD ?? aoedTarget;

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
          onLine: process.env.AOE_E2E_VERBOSE === "1" ? (l) => console.log(l) : undefined,
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
});
