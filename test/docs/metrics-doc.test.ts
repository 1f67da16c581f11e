/**
 * docs/metrics.md and docs/grafana/aoed-dashboard.json against the metrics the
 * code registers: every registered metric is documented with its labels, and
 * every metric or label a query names exists.
 */
import { readFileSync } from "node:fs";
import type { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { StatsLedger } from "../../src/metrics/ledger.js";
import { createMetricsRegistry } from "../../src/metrics/registry.js";
import { FakeEngine, FakePort, FakeTarget } from "../metrics/fakes.js";

const METRICS_DOC = "docs/metrics.md";
const DASHBOARD = "docs/grafana/aoed-dashboard.json";
/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = ["instance", "job"];

interface Registered {
  name: string;
  type: string;
  labels: Set<string>;
}

/** What the registry serves for an engine with one export and one interface. */
async function registered(defaultMetrics: boolean): Promise<Registered[]> {
  const engine = new FakeEngine().add(new FakeTarget("lv0", 0, 1), new FakePort("eth1", 9000));
  const registry: Registry = createMetricsRegistry(engine, new StatsLedger(), { defaultMetrics });
  const json = await registry.getMetricsAsJSON();
  return json.map((m) => ({
    name: m.name,
    type: String(m.type),
    labels: new Set(m.values.flatMap((v) => Object.keys(v.labels ?? {}))),
  }));
}

/** Every series name a metric may appear under: histograms add _bucket, _sum, _count. */
function seriesNames(metrics: Registered[]): Set<string> {
  const out = new Set<string>();
  for (const m of metrics) {
    out.add(m.name);
    if (m.type === "histogram")
      for (const s of ["_bucket", "_sum", "_count"]) out.add(`${m.name}${s}`);
  }
  return out;
}

/** `### name` sections of a Markdown file: heading text -> body. */
function sections(markdown: string): Map<string, string> {
  const out = new Map<string, string>();
  const parts = markdown.split(/^### /m).slice(1);
  for (const part of parts) {
    const nl = part.indexOf("\n");
    const title = part.slice(0, nl).trim().replace(/^`|`$/g, "");
    out.set(title, part.slice(nl + 1).split(/^## /m)[0]!);
  }
  return out;
}

/** Metric names mentioned in a text (aoed's own and the process metrics). */
function metricNamesIn(text: string): string[] {
  return [...new Set(text.match(/\b(?:aoed|process|nodejs)_[a-z0-9_]+\b/g) ?? [])];
}

/** Label names a PromQL expression uses: in matchers and in by/without clauses. */
function labelsIn(expr: string): string[] {
  const out = new Set<string>();
  for (const m of expr.matchAll(/\{([^}]*)\}/g)) {
    for (const matcher of m[1]!.split(",")) {
      const name = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/.exec(matcher)?.[1];
      if (name !== undefined) out.add(name);
    }
  }
  for (const m of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
    for (const l of m[1]!.split(",")) if (l.trim() !== "") out.add(l.trim());
  }
  return [...out];
}

/** Brackets and quotes balance: a cheap guard against a broken expression. */
function balanced(expr: string): boolean {
  const stack: string[] = [];
  const pairs: Record<string, string> = { ")": "(", "]": "[", "}": "{" };
  let quote = false;
  for (const c of expr) {
    if (c === '"') quote = !quote;
    if (quote) continue;
    if ("([{".includes(c)) stack.push(c);
    else if (c in pairs && stack.pop() !== pairs[c]) return false;
  }
  return stack.length === 0 && !quote;
}

/** The ```promql blocks of a Markdown file, one expression per block (lines may continue it). */
function promqlBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/```promql\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

describe("docs/metrics.md", () => {
  const doc = readFileSync(METRICS_DOC, "utf8");
  const docSections = sections(doc);

  it("documents every aoed metric the registry serves, with its type and labels", async () => {
    const metrics = await registered(false);
    expect(metrics.length).toBeGreaterThan(10);
    for (const m of metrics) {
      const body = docSections.get(m.name);
      expect(body, `${METRICS_DOC} has no "### \`${m.name}\`" section`).toBeDefined();
      expect(body!.toLowerCase(), `${m.name}: the type (${m.type}) is not stated`).toContain(
        m.type,
      );
      for (const label of m.labels) {
        expect(body, `${m.name}: label \`${label}\` is not documented`).toContain(`\`${label}\``);
      }
    }
  });

  it("documents no metric that does not exist", async () => {
    const known = seriesNames(await registered(true));
    for (const name of metricNamesIn(doc)) {
      expect(known.has(name), `${METRICS_DOC} mentions ${name}, which aoed does not serve`).toBe(
        true,
      );
    }
    for (const title of docSections.keys()) {
      if (title.startsWith("aoed_")) expect(known.has(title), title).toBe(true);
    }
  });

  it("has well-formed queries that name existing metrics and labels", async () => {
    const metrics = await registered(true);
    const known = seriesNames(metrics);
    const labels = new Set([...metrics.flatMap((m) => [...m.labels]), ...TARGET_LABELS]);
    const blocks = promqlBlocks(doc);
    expect(blocks.length).toBeGreaterThan(5);
    for (const block of blocks) {
      expect(balanced(block), block).toBe(true);
      for (const name of metricNamesIn(block)) expect(known.has(name), name).toBe(true);
      for (const label of labelsIn(block))
        expect(labels.has(label), `${label} in ${block}`).toBe(true);
    }
  });
});

interface Target {
  expr?: string;
  datasource?: { type?: string; uid?: string };
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}

interface Dashboard {
  schemaVersion: number;
  title: string;
  uid: string;
  panels: Panel[];
  templating: {
    list: { name: string; type: string; query?: unknown; definition?: string }[];
  };
}

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

describe("docs/grafana/aoed-dashboard.json", () => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as Dashboard;
  const panels = allPanels(dashboard.panels);
  const queries = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p, target: t })));

  it("is a dashboard with a Prometheus data source variable", () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.title).toBe("aoed");
    expect(dashboard.uid).toMatch(/^[a-zA-Z0-9_-]{1,40}$/);
    const ds = dashboard.templating.list.find((v) => v.type === "datasource");
    expect(ds?.query).toBe("prometheus");
    const names = dashboard.templating.list.map((v) => v.name);
    expect(new Set(names).size).toBe(names.length);
  });

  it("has unique panel ids and panels inside the 24-column grid", () => {
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      expect(p.gridPos.h, p.title).toBeGreaterThan(0);
    }
  });

  it("queries the data source variable from every panel", () => {
    expect(queries.length).toBeGreaterThan(10);
    for (const { panel, target } of queries) {
      const ds = target.datasource ?? panel.datasource;
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax
      expect(ds, panel.title).toEqual({ type: "prometheus", uid: "${datasource}" });
    }
  });

  it("names only metrics and labels aoed serves, in well-formed expressions", async () => {
    const metrics = await registered(true);
    const known = seriesNames(metrics);
    const labels = new Set([...metrics.flatMap((m) => [...m.labels]), ...TARGET_LABELS]);
    const exprs = [
      ...queries.map(({ target }) => target.expr ?? ""),
      ...dashboard.templating.list.flatMap((v) => (v.definition ? [v.definition] : [])),
    ];
    for (const expr of exprs) {
      expect(expr, "a query without an expression").not.toBe("");
      expect(balanced(expr), expr).toBe(true);
      const names = metricNamesIn(expr);
      expect(names.length, `no metric in ${expr}`).toBeGreaterThan(0);
      for (const name of names) expect(known.has(name), `${name} in ${expr}`).toBe(true);
      for (const label of labelsIn(expr))
        expect(labels.has(label), `${label} in ${expr}`).toBe(true);
    }
  });

  it("shows the per-export and per-interface views the metrics doc describes", () => {
    const exprs = queries.map(({ target }) => target.expr ?? "");
    const used = new Set(exprs.flatMap(metricNamesIn));
    for (const needed of [
      "aoed_export_requests_total",
      "aoed_export_read_bytes_total",
      "aoed_export_written_bytes_total",
      "aoed_export_request_duration_seconds_bucket",
      "aoed_export_queue_drops_total",
      "aoed_export_in_flight_requests",
      "aoed_interface_receive_frames_total",
      "aoed_interface_transmit_bytes_total",
      "aoed_interface_receive_drops_total",
    ])
      expect(used.has(needed), needed).toBe(true);
    expect(exprs.some((e) => /by \([^)]*\bexport\b/.test(e))).toBe(true);
    expect(exprs.some((e) => /by \([^)]*\binterface\b/.test(e))).toBe(true);
    expect(exprs.some((e) => e.startsWith("histogram_quantile(0.99,"))).toBe(true);
  });
});
