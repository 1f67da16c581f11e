import { afterEach, describe, expect, it } from "vitest";
import { StatsLedger } from "../../src/metrics/ledger.js";
import { createMetricsRegistry } from "../../src/metrics/registry.js";
import { type MetricsServer, startMetricsServer } from "../../src/metrics/server.js";
import { FakeEngine, FakeTarget, parseExposition } from "./fakes.js";

describe("metrics HTTP endpoint", () => {
  const servers: MetricsServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  const start = async (port = 0) => {
    const engine = new FakeEngine().add(new FakeTarget("lv0", 0, 1));
    const registry = createMetricsRegistry(engine, new StatsLedger(), { defaultMetrics: false });
    const s = await startMetricsServer({ host: "127.0.0.1", port, registry });
    servers.push(s);
    return { s, engine };
  };

  it("serves /metrics in the Prometheus text format, read at each scrape", async () => {
    const { s, engine } = await start();
    expect(s.address).toBe(`127.0.0.1:${s.port}`);
    const res = await fetch(`http://${s.address}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const first = parseExposition(await res.text());
    expect(first.get('aoed_export_requests_total{export="lv0",op="read"}')).toBe(0);
    engine.targets.get("lv0")!.stats.reads = 42;
    const again = parseExposition(await (await fetch(`http://${s.address}/metrics`)).text());
    expect(again.get('aoed_export_requests_total{export="lv0",op="read"}')).toBe(42);
  });

  it("answers 404 elsewhere and 405 to anything but GET and HEAD", async () => {
    const { s } = await start();
    expect((await fetch(`http://${s.address}/nope`)).status).toBe(404);
    expect((await fetch(`http://${s.address}/`)).status).toBe(200);
    expect((await fetch(`http://${s.address}/metrics`, { method: "POST" })).status).toBe(405);
    const head = await fetch(`http://${s.address}/metrics`, { method: "HEAD" });
    expect(head.status).toBe(200);
  });

  it("says clearly when the address is taken", async () => {
    const { s } = await start();
    await expect(start(s.port)).rejects.toThrow(
      `cannot serve metrics on 127.0.0.1:${s.port}: the address is in use (another aoed?); change \`metrics: listen:\` or set \`metrics: false\``,
    );
  });

  it("closes with a scraper still connected (keep-alive)", async () => {
    const { s } = await start();
    await (await fetch(`http://${s.address}/metrics`)).text();
    await s.close();
    servers.length = 0;
    await expect(fetch(`http://${s.address}/metrics`)).rejects.toThrow();
  });
});
