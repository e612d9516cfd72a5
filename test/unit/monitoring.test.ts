import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { objectKey, renderChart, type K8sObject } from "../support/helm.js";
import { toolPath } from "../support/tools.js";
import { exportedMetrics, type Exported } from "./support/exportedMetrics.js";
import { metricNames } from "./support/promql.js";

// The chart's monitoring (all off by default): a ServiceMonitor on the HTTPS port, a
// PrometheusRule whose every expression reads only metrics the gate exports, each alert fired
// from series by Prometheus's own promtool, and the dashboard as a ConfigMap for Grafana's
// sidecar, byte for byte manifests/grafana/backup-gate.json.

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}
const ALL_ON = { monitoring: { serviceMonitor: { enabled: true }, prometheusRule: { enabled: true }, dashboard: { enabled: true } } };

let objects: K8sObject[];
let rules: Rule[];
let exported: Exported;
beforeAll(async () => {
  [objects, exported] = await Promise.all([renderChart({ values: ALL_ON }), exportedMetrics()]);
  const rule = objects.find((o) => o.kind === "PrometheusRule") as unknown as { spec: { groups: { rules: Rule[] }[] } };
  rules = rule.spec.groups.flatMap((g) => g.rules);
});

/** Names an expression reads that the gate does not export. */
const unexported = (expr: string) => metricNames(expr).filter((n) => !exported.series.has(n));

describe("monitoring in the chart", () => {
  it("is off by default", async () => {
    const kinds = (await renderChart()).map((o) => o.kind);
    expect(kinds).not.toContain("ServiceMonitor");
    expect(kinds).not.toContain("PrometheusRule");
    expect((await renderChart()).map(objectKey)).not.toContain("ConfigMap/backup-gate/backup-gate-dashboard");
  });

  it.each([
    { failure: "no leader", alert: "BackupGateNoLeader", metric: "backup_gate_leader" },
    { failure: "Velero's queue back on", alert: "BackupGateVeleroQueueOn", metric: "backup_gate_foreign_promotions_total" },
    { failure: "an overlap", alert: "BackupGateOverlap", metric: "backup_gate_overlaps_detected_total" },
    { failure: "an invalid policy", alert: "BackupGateInvalidPolicy", metric: "backup_gate_policy_valid" },
    { failure: "the view not synced", alert: "BackupGateViewNotSynced", metric: "backup_gate_view_synced" },
    { failure: "a certificate near expiry", alert: "BackupGateCertificateExpiresSoon", metric: "backup_gate_certificate_expiry_seconds" },
    { failure: "an injected caBundle that does not verify", alert: "BackupGateCaBundleNotVerified", metric: "backup_gate_ca_bundle_verified" },
    { failure: "backups queued long with free slots", alert: "BackupGateQueuedWithFreeSlots", metric: "backup_gate_queue_length" },
  ])("alerts on $failure ($alert), reading $metric, with a runbook in docs/monitoring.md", ({ alert, metric }) => {
    const rule = rules.find((r) => r.alert === alert);
    expect(rule, alert).toBeDefined();
    expect(metricNames(rule!.expr)).toContain(metric);
    expect(rule!.labels.severity).toMatch(/^(critical|warning)$/);
    expect(rule!.annotations.runbook_url).toBe(`docs/monitoring.md#${alert.toLowerCase()}`);
    expect(readFileSync("docs/monitoring.md", "utf8")).toMatch(new RegExp(`^### ${alert}$`, "m"));
  });

  it("every alert expression reads only metrics the gate exports (src/metrics/metrics.ts)", () => {
    expect(rules.length).toBe(8);
    expect(rules.map((r) => ({ alert: r.alert, missing: unexported(r.expr) })).filter((r) => r.missing.length)).toEqual([]);
    // Positive control: a misspelt name is caught.
    expect(unexported("sum(backup_gate_leaders) < 1")).toEqual(["backup_gate_leaders"]);
  });

  it("the free-slots alert compares with the chart's limit", async () => {
    const eight = await renderChart({ values: { ...ALL_ON, limit: 8 } });
    const rule = (eight.find((o) => o.kind === "PrometheusRule") as unknown as { spec: { groups: { rules: Rule[] }[] } }).spec.groups[0]!.rules.find(
      (r) => r.alert === "BackupGateQueuedWithFreeSlots",
    );
    expect(rule?.expr).toBe("max(backup_gate_queue_length) > 0 and max(backup_gate_in_flight) < 8");
  });

  it("the ServiceMonitor scrapes /metrics on the Service's HTTPS port", () => {
    const sm = objects.find((o) => o.kind === "ServiceMonitor") as unknown as {
      spec: { selector: { matchLabels: object }; endpoints: { port: string; scheme: string; path: string }[] };
    };
    const svc = objects.find((o) => o.kind === "Service") as unknown as { spec: { selector: object; ports: { name: string }[] } };
    expect(sm.spec.selector.matchLabels).toEqual(svc.spec.selector);
    expect(sm.spec.endpoints[0]).toMatchObject({ scheme: "https", path: "/metrics" });
    expect(svc.spec.ports.map((p) => p.name)).toContain(sm.spec.endpoints[0]!.port);
  });

  it("the dashboard ConfigMap carries manifests/grafana/backup-gate.json and the sidecar's label", () => {
    const cm = objects.find((o) => objectKey(o) === "ConfigMap/backup-gate/backup-gate-dashboard") as unknown as {
      metadata: { labels: Record<string, string> };
      data: Record<string, string>;
    };
    const source = readFileSync("manifests/grafana/backup-gate.json", "utf8");
    expect(readFileSync("charts/backup-gate/dashboards/backup-gate.json", "utf8")).toBe(source);
    expect(cm.data["backup-gate.json"]).toBe(source);
    expect(cm.metadata.labels.grafana_dashboard).toBe("1");
  });
});

// promtool, built from Prometheus's Go module (tools/promtool) by tools/build.sh (PROMTOOL overrides);
// missing, the suite fails with the build hint rather than skipping. Each alert is fired from
// series and, as a control, kept quiet by healthy ones.
const promtool = (): string => process.env.PROMTOOL ?? toolPath("promtool");

interface AlertCase {
  alert: string;
  series: Record<string, string>;
  quietAt: string;
  firesAt: string;
  healthy: Record<string, string>;
}
const ALERT_CASES: AlertCase[] = [
  {
    alert: "BackupGateNoLeader",
    series: { 'backup_gate_leader{pod="a"}': "0x40", 'backup_gate_leader{pod="b"}': "0x40" },
    quietAt: "1m",
    firesAt: "3m",
    healthy: { 'backup_gate_leader{pod="a"}': "1x40", 'backup_gate_leader{pod="b"}': "0x40" },
  },
  {
    alert: "BackupGateNoLeader",
    series: { 'backup_gate_queue_length{pod="a"}': "0x40" },
    quietAt: "1m",
    firesAt: "3m",
    healthy: { 'backup_gate_leader{pod="a"}': "1x40" },
  },
  {
    alert: "BackupGateVeleroQueueOn",
    series: { 'backup_gate_foreign_promotions_total{pod="a"}': "0 0 0 1 1 1 1 1" },
    quietAt: "2m",
    firesAt: "4m",
    healthy: { 'backup_gate_foreign_promotions_total{pod="a"}': "0x40" },
  },
  {
    alert: "BackupGateOverlap",
    series: { 'backup_gate_overlaps_detected_total{pod="a"}': "0 0 0 2 2 2 2 2" },
    quietAt: "2m",
    firesAt: "4m",
    healthy: { 'backup_gate_overlaps_detected_total{pod="a"}': "0x40" },
  },
  {
    alert: "BackupGateInvalidPolicy",
    series: { 'backup_gate_policy_valid{pod="a"}': "1 0x40", 'backup_gate_policy_valid{pod="b"}': "1 0x40" },
    quietAt: "1m",
    firesAt: "3m",
    healthy: { 'backup_gate_policy_valid{pod="a"}': "1x40" },
  },
  {
    alert: "BackupGateViewNotSynced",
    series: { 'backup_gate_view_synced{pod="a"}': "0x40", 'backup_gate_view_synced{pod="b"}': "1x40" },
    quietAt: "4m",
    firesAt: "6m",
    healthy: { 'backup_gate_view_synced{pod="a"}': "1x40", 'backup_gate_view_synced{pod="b"}': "1x40" },
  },
  {
    alert: "BackupGateCertificateExpiresSoon",
    series: { 'backup_gate_certificate_expiry_seconds{pod="a"}': `${10 * 86_400}x40` },
    quietAt: "5m",
    firesAt: "11m",
    healthy: { 'backup_gate_certificate_expiry_seconds{pod="a"}': `${30 * 86_400}x40` },
  },
  {
    alert: "BackupGateCaBundleNotVerified",
    series: { 'backup_gate_ca_bundle_verified{pod="a"}': "0x40" },
    quietAt: "5m",
    firesAt: "11m",
    healthy: { 'backup_gate_ca_bundle_verified{pod="a"}': "1x40" },
  },
  {
    alert: "BackupGateQueuedWithFreeSlots",
    series: { 'backup_gate_queue_length{pod="a"}': "2x40", 'backup_gate_in_flight{pod="a"}': "1x40" },
    quietAt: "20m",
    firesAt: "31m",
    healthy: { 'backup_gate_queue_length{pod="a"}': "2x40", 'backup_gate_in_flight{pod="a"}': "4x40" },
  },
];

describe("the alerts under promtool (Prometheus's own rule tests)", () => {
  it("promtool check rules accepts the rendered rules, and promtool test rules fires each alert from series", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bg-promtool-"));
    const group = (objects.find((o) => o.kind === "PrometheusRule") as unknown as { spec: { groups: unknown[] } }).spec;
    writeFileSync(join(dir, "rules.yaml"), stringify({ groups: group.groups }));
    const expected = (alert: string) => {
      const r = rules.find((x) => x.alert === alert)!;
      return [{ exp_labels: r.labels, exp_annotations: r.annotations }];
    };
    const input = (series: Record<string, string>) => Object.entries(series).map(([s, values]) => ({ series: s, values }));
    const tests = ALERT_CASES.flatMap((c) => [
      {
        interval: "1m",
        input_series: input(c.series),
        alert_rule_test: [
          { eval_time: c.quietAt, alertname: c.alert, exp_alerts: [] },
          { eval_time: c.firesAt, alertname: c.alert, exp_alerts: expected(c.alert) },
        ],
      },
      { interval: "1m", input_series: input(c.healthy), alert_rule_test: [{ eval_time: c.firesAt, alertname: c.alert, exp_alerts: [] }] },
    ]);
    writeFileSync(join(dir, "rules.test.yaml"), stringify({ rule_files: ["rules.yaml"], evaluation_interval: "1m", tests }));
    const run = promisify(execFile);
    const check = await run(promtool(), ["check", "rules", join(dir, "rules.yaml")]);
    expect(check.stdout).toMatch(/SUCCESS: 8 rules found/);
    const test = await run(promtool(), ["test", "rules", join(dir, "rules.test.yaml")]).catch((e: { stdout: string; stderr: string }) => e);
    expect(`${test.stdout}${test.stderr}`).toMatch(/SUCCESS/);
    // Positive control: an alert expected where it cannot fire fails promtool's test.
    const wrong = tests
      .slice(0, 1)
      .map((t) => ({ ...t, alert_rule_test: [{ eval_time: "1m", alertname: "BackupGateNoLeader", exp_alerts: expected("BackupGateNoLeader") }] }));
    writeFileSync(join(dir, "wrong.test.yaml"), stringify({ rule_files: ["rules.yaml"], evaluation_interval: "1m", tests: wrong }));
    const failed = await run(promtool(), ["test", "rules", join(dir, "wrong.test.yaml")]).then(
      () => ({ code: 0, stdout: "", stderr: "" }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(failed.code).toBe(1);
    expect(`${failed.stdout}${failed.stderr}`).toMatch(/alertname: BackupGateNoLeader, time: 1m[\s\S]*exp:[\s\S]*got:\[\]/);
  }, 60_000);
});
