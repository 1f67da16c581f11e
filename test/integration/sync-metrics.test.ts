/**
 * Group commit's counters in the metrics, from a real daemon with
 * `write-cache: false` on a file under /var/tmp (on tmpfs nothing is synced,
 * so group commit is off there): every acknowledged write is counted once as
 * a synced or a lone RWF_DSYNC write, and every sync covered one at least.
 * With `workers: 2` the writes are served, synced and counted in the worker
 * threads, each with its own backend. The identities hold across a reload that
 * replaces the target on the same backend and one that reopens the backend.
 * Only identities are asserted: how many writes share a sync is timing.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AoeClient, type TargetInfo } from "../../src/client/client.js";
import { TMPFS_MAGIC } from "../../src/io/store.js";
import { type Daemon, startDaemon } from "../helpers/daemon.js";
import { createVethPair, type VethPair } from "../helpers/net.js";
import { scrapeMetrics } from "../helpers/scrape.js";
import { waitFor } from "../helpers/wait.js";

const MiB = 1024 * 1024;
/** Writes per round, LANES at a time (below queue-length: none is dropped, none retransmitted). */
const N = 96;
const LANES = 8;
const onTmpfs = fs.statfsSync("/var/tmp").type === TMPFS_MAGIC;

describe.skipIf(onTmpfs).each([0, 2])(
  "group commit's counters in the metrics, workers: %i",
  (workers) => {
    let net: VethPair;
    let dir: string;
    let configPath: string;
    let daemon: Daemon;
    let client: AoeClient;
    let target: TargetInfo;
    const img = () => path.join(dir, "sync.img");
    /** Rounds of N writes so far: the LBAs of the next round start after theirs. */
    let rounds = 0;

    const writeConfig = (extra = "") => {
      const tmp = `${configPath}.tmp`;
      fs.writeFileSync(
        tmp,
        `${workers > 0 ? `workers: ${workers}\n` : ""}watch-config: true
exports:
  - name: sync
    path: ${img()}
    shelf: 9
    slot: 0
    interfaces: [${net.b}]
    write-cache: false
${extra}`,
      );
      fs.renameSync(tmp, configPath);
    };

    /** N writes, each read back and compared; then the metrics until they count all of them. */
    const round = async () => {
      const first = rounds++ * N;
      let next = 0;
      await Promise.all(
        Array.from({ length: LANES }, async () => {
          while (next < N) {
            const lba = (first + next++) * 2;
            const buf = randomBytes(1024);
            await client.write(target, lba, buf);
            expect((await client.read(target, lba, 2)).equals(buf)).toBe(true);
          }
        }),
      );
      const acked = rounds * N;
      const get = (m: Map<string, number>, name: string) => m.get(`${name}{export="sync"}`) ?? 0;
      // Worker threads report their counters every 100 ms: wait for them, then check.
      const m = await waitFor(
        `the metrics to count ${acked} synced or DSYNC writes`,
        async () => {
          const m = await scrapeMetrics(net.netns!);
          const counted =
            get(m, "aoed_export_synced_writes_total") + get(m, "aoed_export_dsync_writes_total");
          return counted >= acked ? m : null;
        },
        { intervalMs: 100 },
      );
      const synced = get(m, "aoed_export_synced_writes_total");
      const dsync = get(m, "aoed_export_dsync_writes_total");
      const syncs = get(m, "aoed_export_syncs_total");
      expect(m.get('aoed_export_requests_total{export="sync",op="write"}')).toBe(acked);
      expect(synced + dsync).toBe(acked);
      // Writes that overlap share a sync, and the 17th lone write starts a trial of
      // write + fdatasync (LoneWriteChooser), so N = 96 writes mean one sync at least.
      expect(syncs).toBeGreaterThanOrEqual(1);
      expect(syncs).toBeLessThanOrEqual(synced); // every sync covered a write
      expect(get(m, "aoed_export_sync_errors_total")).toBe(0);
      return m;
    };

    const reload = async (extra: string) => {
      const before = daemon.logs.length;
      writeConfig(extra);
      const done = await daemon.waitForLog(/config reloaded/, { from: before, timeoutMs: 10_000 });
      expect(done.changed).toContain("sync");
    };

    beforeAll(async () => {
      net = createVethPair({ netns: true, prefix: `gs${workers}` });
      dir = fs.mkdtempSync("/var/tmp/aoed-sync-metrics-");
      fs.writeFileSync(img(), "");
      fs.truncateSync(img(), 4 * MiB);
      configPath = path.join(dir, "aoed.yaml");
      writeConfig();
      daemon = await startDaemon(["--config", configPath], {
        netns: net.netns,
        env: { AOED_SOCKET: path.join(dir, "aoed.sock") },
      });
      client = AoeClient.open(net.a, { timeoutMs: 10_000, tries: 1 });
      const found = await client.discover({ shelf: 9, timeoutMs: 500 });
      expect(found).toHaveLength(1);
      target = found[0]!;
    });

    afterAll(async () => {
      client?.close();
      if (daemon && daemon.proc.exitCode === null) await daemon.stop();
      net?.destroy();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it("counts every acknowledged write once, as synced or DSYNC, and no more syncs than writes", async () => {
      const m = await round();
      if (workers > 0) {
        // The writes went through the workers, whose counts crossed threads.
        const frames = [1, 2].map((w) => m.get(`aoed_worker_receive_frames_total{worker="${w}"}`));
        expect((frames[0] ?? 0) + (frames[1] ?? 0)).toBeGreaterThanOrEqual(2 * N);
      }
    });

    it("keeps counting across a reload that replaces the target on the same backend", async () => {
      await reload("    queue-length: 24\n");
      await round();
    });

    it("keeps counting across a reload that reopens the backend", async () => {
      await reload(`    queue-length: 24\n    length: ${3 * MiB}\n`);
      await round();
    });
  },
);
