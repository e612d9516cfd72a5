import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { exportedMetrics, familyOf, type Exported } from "./support/exportedMetrics.js";
import { metricNames, PromqlError } from "./support/promql.js";

// manifests/grafana/backup-gate.json: every query names only series the gate exports (from its
// real registry), and the dashboard covers what issue 9 asks to see.

interface Target {
  expr?: string;
  refId?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid?: string };
  targets?: Target[];
  gridPos: { x: number; w: number };
}
const dashboard = JSON.parse(readFileSync("manifests/grafana/backup-gate.json", "utf8")) as {
  uid: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: string }[] };
};
const panels = dashboard.panels.filter((p) => p.type !== "row");
const queries = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr ?? "" })));

let exported: Exported;
beforeAll(async () => {
  exported = await exportedMetrics();
});

/** The checker: the names `expr` reads that the gate does not export (or why the query cannot be read). */
function unexported(expr: string): string[] {
  try {
    const names = metricNames(expr);
    if (names.length === 0) return ["(no metric)"];
    return names.filter((n) => !exported.series.has(n));
  } catch (e) {
    if (e instanceof PromqlError) return [`(unreadable: ${e.message})`];
    throw e;
  }
}

describe("the dashboard's queries", () => {
  it("has queries, each with a ${datasource} Prometheus source", () => {
    expect(queries.length).toBeGreaterThanOrEqual(20);
    expect(dashboard.templating.list).toContainEqual(expect.objectContaining({ name: "datasource", type: "datasource", query: "prometheus" }));
    for (const p of panels) {
      expect(p.datasource?.uid, p.title).toBe("${datasource}");
      for (const t of p.targets ?? []) expect(t.datasource?.uid, p.title).toBe("${datasource}");
    }
  });

  it("every query names only series the gate exports", () => {
    const bad = queries.map((q) => ({ ...q, missing: unexported(q.expr) })).filter((q) => q.missing.length > 0);
    expect(bad).toEqual([]);
  });

  it.each([
    { name: "queue length", family: "backup_gate_queue_length" },
    { name: "in flight", family: "backup_gate_in_flight" },
    { name: "waits", family: "backup_gate_queue_wait_seconds" },
    { name: "decisions", family: "backup_gate_decisions_total" },
    { name: "admission latency", family: "backup_gate_admission_duration_seconds" },
    { name: "policy validity", family: "backup_gate_policy_valid" },
    { name: "drift", family: "backup_gate_overlaps_detected_total" },
  ])("covers $name ($family)", ({ family }) => {
    expect(exported.families.has(family)).toBe(true);
    const shown = queries.filter((q) => metricNames(q.expr).some((n) => familyOf(n, exported.families) === family));
    expect(shown.length).toBeGreaterThan(0);
  });

  it("panel ids are unique and panels fit the 24-column grid", () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
  });
});

describe("the checker", () => {
  it.each([
    { name: "a misspelled metric", expr: "sum(backup_gate_queue_lenght)", missing: ["backup_gate_queue_lenght"] },
    {
      name: "a histogram by its family name, which no series has",
      expr: "rate(backup_gate_queue_wait_seconds[5m])",
      missing: ["backup_gate_queue_wait_seconds"],
    },
    { name: "_bucket of a counter", expr: "rate(backup_gate_decisions_total_bucket[5m])", missing: ["backup_gate_decisions_total_bucket"] },
    { name: "a counter without _total", expr: "rate(backup_gate_nudges[5m])", missing: ["backup_gate_nudges"] },
    {
      name: "a misspelled name behind on(...) group_left",
      expr: "backup_gate_in_flight * on(instance) group_left backup_gate_leadr",
      missing: ["backup_gate_leadr"],
    },
    { name: "a metric named by __name__", expr: '{__name__="backup_gate_nope"}', missing: ["backup_gate_nope"] },
    { name: "a misspelled function", expr: "rat(backup_gate_nudges_total[5m])", missing: [expect.stringMatching(/unknown function rat/)] },
    { name: "no metric at all", expr: "vector(1)", missing: ["(no metric)"] },
  ])("catches $name", ({ expr, missing }) => {
    expect(unexported(expr)).toEqual(missing);
  });

  it.each([
    {
      expr: 'sum by (le, webhook) (rate(backup_gate_admission_duration_seconds_bucket{webhook="mutate", le!="+Inf"}[$__rate_interval]))',
      names: ["backup_gate_admission_duration_seconds_bucket"],
    },
    { expr: "max(backup_gate_queue_length * on(instance) backup_gate_leader)", names: ["backup_gate_queue_length", "backup_gate_leader"] },
    { expr: "min(backup_gate_certificate_expiry_seconds) - time()", names: ["backup_gate_certificate_expiry_seconds"] },
    { expr: 'sum without (pod) (backup_gate_api_writes_total{result=~"error|conflict", kind="by"}) > bool 0', names: ["backup_gate_api_writes_total"] },
    { expr: "backup_gate_nudges_total offset 1h unless absent(backup_gate_leader)", names: ["backup_gate_nudges_total", "backup_gate_leader"] },
    {
      expr: "histogram_quantile(0.99, sum by (le) (rate(backup_gate_plan_duration_seconds_bucket[1h:5m])))",
      names: ["backup_gate_plan_duration_seconds_bucket"],
    },
    { expr: '{__name__="backup_gate_view_synced"} == 1', names: ["backup_gate_view_synced"] },
  ])("reads $expr as $names", ({ expr, names }) => {
    expect(metricNames(expr)).toEqual(names);
    expect(unexported(expr)).toEqual([]);
  });
});
