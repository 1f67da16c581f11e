/**
 * LinkMonitor hears of links as the kernel changes them (rtnetlink), and
 * linkState() asks about one link now. Both see this network namespace.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { nativeAddonCandidates } from "../../src/native/addon.js";
import { type LinkEvent, LinkMonitor, linkState } from "../../src/net/link-monitor.js";
import { createVethPair, type VethPair } from "../helpers/net.js";
import { waitFor } from "../helpers/wait.js";

describe("LinkMonitor", () => {
  it("reports a link appearing with its MTU, coming up, and going", async () => {
    // Other links of this namespace may change meanwhile: only ours are looked at.
    const events: LinkEvent[] = [];
    const failures: Error[] = [];
    const monitor = LinkMonitor.open(
      (evs) => {
        if (evs !== null) events.push(...evs);
      },
      (err) => failures.push(err),
    );
    let pair: VethPair | null = null;
    try {
      pair = createVethPair({ mtu: 4000 });
      const a = pair.a;
      const up = await waitFor("link A up and running", () =>
        events.find((e) => e.name === a && e.up && !e.deleted),
      );
      expect(up.mtu).toBe(4000);
      expect(linkState(a)).toEqual({ ifindex: up.ifindex, mtu: 4000, up: true });
      pair.destroy();
      pair = null;
      await waitFor("link A gone", () => events.some((e) => e.ifindex === up.ifindex && e.deleted));
      expect(linkState(a)).toBeNull();
      expect(failures).toEqual([]);
    } finally {
      monitor.close();
      monitor.close();
      pair?.destroy();
    }
  });

  it("linkState says null for a name that cannot be an interface", () => {
    expect(linkState("aoednosuch0")).toBeNull();
    expect(linkState("x".repeat(16))).toBeNull();
  });

  it("the native watch keeps the process alive until close() or unref()", () => {
    const addon = nativeAddonCandidates().find((p) => existsSync(p));
    expect(addon).toBeDefined();
    const script = (last: string) =>
      `const w = require(${JSON.stringify(addon)}).watchLinks(() => {}); ${last}`;
    for (const last of ["w.close(); w.close();", "w.unref();"]) {
      const r = spawnSync(process.execPath, ["-e", script(last)], { timeout: 5000 });
      expect(r.error).toBeUndefined();
      expect(r.status).toBe(0);
    }
    const alive = spawnSync(process.execPath, ["-e", script("")], { timeout: 500 });
    expect(alive.signal).toBe("SIGTERM");
  });
});
