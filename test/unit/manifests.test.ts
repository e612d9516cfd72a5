import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { describe, expect, it } from "vitest";
import { webhookConfigurations } from "../../src/admission/manifests.js";

// manifests/ is what people apply; the webhook configurations there must be exactly what the
// gate itself generates (and patches caBundles into), so the two can never drift apart.

const docs = (file: string) => parseAllDocuments(readFileSync(file, "utf8")).map((d) => d.toJS());

describe("manifests/", () => {
  it("40-webhooks.yaml equals the generated webhook configurations", () => {
    const { mutating, validating } = webhookConfigurations({
      name: "backup-gate",
      veleroNamespace: "velero",
      service: { name: "backup-gate", namespace: "backup-gate" },
    });
    expect(docs("manifests/40-webhooks.yaml")).toEqual([JSON.parse(JSON.stringify(mutating)), JSON.parse(JSON.stringify(validating))]);
  });

  it("the Deployment runs non-root, read-only, without privilege escalation and with all capabilities dropped", () => {
    const deployment = docs("manifests/30-deployment.yaml").find((d) => d.kind === "Deployment");
    const pod = deployment.spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
    expect(pod.containers[0].securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } });
    expect(deployment.spec.replicas).toBe(2);
    // No fixed UID: OpenShift's restricted-v2 SCC assigns one and refuses another.
    expect(JSON.stringify(pod)).not.toMatch(/runAsUser|runAsGroup/);
  });

  it("the namespace enforces PodSecurity restricted, and a NetworkPolicy admits only the HTTPS port", () => {
    expect(docs("manifests/00-namespace.yaml")[0].metadata.labels).toMatchObject({ "pod-security.kubernetes.io/enforce": "restricted" });
    const policy = docs("manifests/30-deployment.yaml").find((d) => d.kind === "NetworkPolicy");
    expect(policy.spec).toEqual({
      podSelector: { matchLabels: { "app.kubernetes.io/name": "backup-gate" } },
      policyTypes: ["Ingress"],
      ingress: [{ ports: [{ port: 8443, protocol: "TCP" }] }],
    });
    const container = docs("manifests/30-deployment.yaml").find((d) => d.kind === "Deployment").spec.template.spec.containers[0];
    expect(container.ports).toEqual([{ name: "https", containerPort: 8443 }]);
  });

  it("RBAC grants on Secrets only what the promotion key needs: create, and get of that one", () => {
    const rules = docs("manifests/10-rbac.yaml").flatMap((d) => d.rules ?? []);
    const onSecrets = rules.filter((r: { resources: string[] }) => r.resources.includes("secrets"));
    expect(onSecrets).toEqual([
      { apiGroups: [""], resources: ["secrets"], verbs: ["create"] },
      { apiGroups: [""], resources: ["secrets"], resourceNames: ["backup-gate-promotion-key"], verbs: ["get"] },
    ]);
  });
});
