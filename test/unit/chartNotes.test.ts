import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { CHART_DIR, parseObjects } from "../support/helm.js";
import { toolPath } from "../support/tools.js";

// NOTES.txt, which `helm install` prints, rendered offline with the real helm: a copy of the
// chart gets one extra template that renders NOTES.txt's text through `tpl` with the same
// values and helpers (helm template itself never prints NOTES; the chart's integration suite
// checks them through `helm install --dry-run=server`).

async function notes(values: Record<string, unknown>, namespace = "backup-gate"): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "bg-notes-"));
  cpSync(CHART_DIR, join(dir, "chart"), { recursive: true });
  writeFileSync(join(dir, "chart", "notes-source.txt"), readFileSync(join(CHART_DIR, "templates", "NOTES.txt")));
  writeFileSync(join(dir, "chart", "templates", "zz-notes.yaml"), 'notes: {{ tpl (.Files.Get "notes-source.txt") . | toJson }}\n');
  writeFileSync(join(dir, "values.json"), JSON.stringify(values));
  const env = { ...process.env, HELM_CONFIG_HOME: join(dir, "h"), HELM_CACHE_HOME: join(dir, "h"), HELM_DATA_HOME: join(dir, "h") };
  const { stdout } = await promisify(execFile)(
    toolPath("helm"),
    ["template", "backup-gate", join(dir, "chart"), "--namespace", namespace, "--values", join(dir, "values.json"), "--show-only", "templates/zz-notes.yaml"],
    { env },
  );
  return (parseObjects(stdout)[0] as unknown as { notes: string }).notes;
}

describe("NOTES.txt", () => {
  it.each([
    { mode: "selfManaged", values: {}, says: /^Certificates: self-managed/m },
    {
      mode: "secret",
      values: { certificates: { mode: "secret", secretName: "gate-tls" } },
      says: /^Certificates: served from Secret gate-tls .*ca\.crt, for the name backup-gate\.backup-gate\.svc\.\nThe gate patches ca\.crt/m,
    },
    {
      mode: "serviceCA",
      values: { certificates: { mode: "serviceCA" } },
      says: /^Certificates: OpenShift's service-ca operator writes Secret backup-gate-tls .*never writes the caBundle; backup_gate_ca_bundle_verified 0/m,
    },
    {
      mode: "certManager",
      values: { certificates: { mode: "certManager", certManager: { issuerRef: { name: "ca-issuer", kind: "ClusterIssuer" } } } },
      says: /^Certificates: cert-manager's Certificate backup-gate \(issuer ClusterIssuer ca-issuer\) fills Secret backup-gate-tls.*never writes the caBundle/m,
    },
  ])("names the certificate mode: $mode", async ({ values, says }) => {
    const text = await notes(values);
    expect(text).toMatch(says);
    expect(text).not.toMatch(/<no value>/);
  });

  it.each([
    {
      installedBy: "cli",
      namespace: "velero",
      says: /^ {2}velero server --disable-controllers=backup-queue --concurrent-backups=6$/m,
      not: /DataProtectionApplication|disableControllers/,
    },
    {
      installedBy: "helm",
      namespace: "velero",
      says: /^ {2}configuration:\n {4}disableControllers: backup-queue\n {4}extraArgs:\n {6}- --concurrent-backups=6$/m,
      not: /velero server|DataProtectionApplication/,
    },
    {
      installedBy: "oadp",
      namespace: "openshift-adp",
      says: /oc -n openshift-adp edit dpa <name>\):\n\n {2}spec:\n {4}configuration:\n {6}velero:\n {8}concurrentBackups: 6\n {8}args:\n {10}disabled-controllers:\n {12}- backup-queue$/m,
      not: /velero server|disableControllers|Note: velero\.namespace/,
    },
    { installedBy: "oadp", namespace: "velero", says: /^Note: velero\.namespace is "velero"; OADP runs Velero in openshift-adp/m, not: /velero server/ },
  ])("tells how to switch Velero's queue off when it is installed by $installedBy (namespace $namespace)", async ({ installedBy, namespace, says, not }) => {
    const text = await notes({ limit: 6, velero: { namespace, installedBy } });
    expect(text).toMatch(says);
    expect(text).not.toMatch(not);
  });
});
