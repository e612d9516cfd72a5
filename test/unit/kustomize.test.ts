import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { readPolicyText } from "../../src/policy/document.js";
import { objectKey, parseObjects, renderChart, type K8sObject } from "../support/helm.js";
import { toolPath } from "../support/tools.js";

// deploy/kustomize rendered by the real `kubectl kustomize` (kubectl built by tools/build.sh):
// the base is manifests/ exactly, the velero overlay the same installation, and the oadp
// overlay what the chart renders for Velero in openshift-adp (up to Helm's labels).

const HELM_LABELS = ["helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance"];
const kustomize = async (dir: string) => parseObjects((await promisify(execFile)(toolPath("kubectl"), ["kustomize", dir])).stdout);
const manifestFiles = readdirSync("manifests")
  .filter((f) => f.endsWith(".yaml"))
  .sort();
const manifests = () => manifestFiles.flatMap((f) => parseObjects(readFileSync(join("manifests", f), "utf8")));

/** An object as compared: Helm's labels dropped, policy.yaml as the policy the gate reads. */
function comparable(o: K8sObject): unknown {
  const labels = Object.fromEntries(Object.entries(o.metadata.labels ?? {}).filter(([k]) => !HELM_LABELS.includes(k)));
  const { labels: _l, ...metadata } = o.metadata;
  const plain: Record<string, unknown> = { ...o, metadata: Object.keys(labels).length ? { ...metadata, labels } : metadata };
  const data = (o as { data?: Record<string, string> }).data;
  if (o.kind === "ConfigMap" && data?.["policy.yaml"]) {
    const r = readPolicyText(data["policy.yaml"]);
    if (!r.ok) throw new Error(`${objectKey(o)}: the gate refuses its policy: ${r.error}`);
    plain.data = { ...data, "policy.yaml": r.policy };
  }
  return plain;
}
const byKey = (objects: K8sObject[]) => new Map(objects.map((o) => [objectKey(o), comparable(o)]));

describe("deploy/kustomize", () => {
  it("base holds manifests/ file for file (`cp manifests/*.yaml deploy/kustomize/base/` after a change)", () => {
    for (const f of manifestFiles) expect(readFileSync(join("deploy/kustomize/base", f), "utf8"), f).toBe(readFileSync(join("manifests", f), "utf8"));
    expect(
      readFileSync("deploy/kustomize/base/kustomization.yaml", "utf8")
        .match(/^ {2}- (\S+)$/gm)
        ?.map((l) => l.trim().slice(2)),
    ).toEqual(manifestFiles);
  });

  it("the velero overlay renders manifests/' objects (its policy.yaml read by the gate as manifests/')", async () => {
    const rendered = byKey(await kustomize("deploy/kustomize/overlays/velero"));
    expect(rendered).toEqual(byKey(manifests()));
  });

  it("the oadp overlay renders what the chart renders with velero.namespace=openshift-adp (and the Namespace)", async () => {
    const [overlay, chart] = await Promise.all([
      kustomize("deploy/kustomize/overlays/oadp"),
      renderChart({ values: { velero: { namespace: "openshift-adp" } } }),
    ]);
    const withoutNamespace = byKey(overlay.filter((o) => o.kind !== "Namespace"));
    expect(withoutNamespace).toEqual(byKey(chart));
    const text = JSON.stringify(overlay);
    expect(text).not.toMatch(/"velero"|veleroNamespace: velero\b/);
    // Positive control: the velero overlay still names velero, so the check above can fail.
    expect(JSON.stringify(await kustomize("deploy/kustomize/overlays/velero"))).toMatch(/"velero"/);
  });
});
