/**
 * charts/backup-gate installed with `helm install` on the real node (test/support/node.ts), the
 * gate running as real pods from its own image (tools/gate-image.sh: built from this checkout,
 * imported into the node's containerd, no registry), in a namespace enforcing PodSecurity
 * `restricted`, once per certificate mode on one node.
 *
 * For each mode: both replicas Ready, the Lease held by one of them, and a Backup created
 * through the API server carrying the mutating webhook's mark: the API server called the gate
 * through the Service named in the webhook configurations. The node has no kube-proxy, so the
 * API server runs with --enable-aggregator-routing=true (it resolves a webhook's Service through
 * its Endpoints, which the endpoints controller fills with the pods' addresses), and the pods
 * reach the API server at the node's address (a helm post-renderer sets
 * KUBERNETES_SERVICE_HOST/PORT, test/support/podApiEnv.ts). The service-ca operator and
 * cert-manager are played by the test as those operators behave: the Secret (service-ca: no
 * ca.crt), and the CA written into every caBundle of the configurations annotated for them.
 *
 * Needs root and the node's tools (`bash tools/build.sh`); BACKUP_GATE_NODE_TESTS=0 skips it.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import {
  AdmissionregistrationV1Api,
  AppsV1Api,
  CoordinationV1Api,
  KubernetesObjectApi,
  type KubernetesObject,
  type V1CustomResourceDefinition,
  type V1Pod,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCa, issueServing, serviceDnsNames } from "../../src/tls/certs.js";
import { createWithWarnings } from "../support/gate.js";
import { buildGateImage, type GateImage } from "../support/gateImage.js";
import { helmInstall, helmUninstall } from "../support/helm.js";
import { createCrds, startNodeWhenFree, type TestNode } from "../support/node.js";
import { backupBody } from "../support/builders.js";
import { clients, isApiError, type Clients } from "../support/objects.js";
import { repoRoot, toolPath } from "../support/tools.js";
import { waitFor } from "../support/wait.js";

const enabled = process.env.BACKUP_GATE_NODE_TESTS !== "0";
const VELERO = "velero";
const NAME = "backup-gate";
const MARK = "backup-gate.io/conflict-level";

interface Mode {
  mode: "selfManaged" | "secret" | "serviceCA" | "certManager";
  /** The injector's annotation on both webhook configurations (service-ca, cert-manager). */
  injector?: { annotation: string; value: (ns: string) => string; withCaFile: boolean };
}

const MODES: Mode[] = [
  { mode: "selfManaged" },
  { mode: "secret" },
  { mode: "serviceCA", injector: { annotation: "service.beta.openshift.io/inject-cabundle", value: () => "true", withCaFile: false } },
  { mode: "certManager", injector: { annotation: "cert-manager.io/inject-ca-from", value: (ns) => `${ns}/${NAME}`, withCaFile: true } },
];

/**
 * cert-manager's Certificate kind, served so that the chart's Certificate can be created (no
 * controller acts on it). Typed: the client's serializer writes only the model's fields, under
 * their wire names (x_kubernetes_preserve_unknown_fields).
 */
const CERTIFICATE_CRD: V1CustomResourceDefinition = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: "certificates.cert-manager.io" },
  spec: {
    group: "cert-manager.io",
    names: { kind: "Certificate", listKind: "CertificateList", plural: "certificates", singular: "certificate" },
    scope: "Namespaced",
    versions: [{ name: "v1", served: true, storage: true, schema: { openAPIV3Schema: { type: "object", x_kubernetes_preserve_unknown_fields: true } } }],
  },
};

describe.skipIf(!enabled)("charts/backup-gate with helm install on a real node, the gate as pods of its own image", () => {
  let node: TestNode;
  let c: Clients;
  let image: GateImage;
  const timings: string[] = [];

  beforeAll(async () => {
    let t = Date.now();
    image = buildGateImage();
    timings.push(`image ${Date.now() - t} ms`);
    t = Date.now();
    node = await startNodeWhenFree({
      waitMs: 20 * 60_000,
      apiserverArgs: ["--enable-aggregator-routing=true"],
      onWait: (line) => process.stderr.write(`chart-node: waiting for the node: ${line}\n`),
    });
    timings.push(`node ${Date.now() - t} ms`);
    t = Date.now();
    node.ctr(["images", "import", image.file]);
    timings.push(`import ${Date.now() - t} ms`);
    c = clients(node.kubeConfig);
    const objs = KubernetesObjectApi.makeApiClient(node.kubeConfig);
    const velero = JSON.parse(
      execFileSync(toolPath("velero"), ["install", "--crds-only", "--dry-run", "-o", "json"], {
        encoding: "utf8",
        env: { PATH: process.env.PATH, HOME: join(node.dir, "velero-cli-home") },
        maxBuffer: 64 << 20,
      }),
    ) as { items: KubernetesObject[] };
    await createCrds(objs, [...velero.items, CERTIFICATE_CRD], "Velero's and cert-manager's Certificate CRDs");
    await c.core.createNamespace({ body: { metadata: { name: VELERO } } });
  }, 900_000);

  afterAll(async () => {
    process.stderr.write(`chart-node: ${timings.join(", ")}\n`);
    await node?.stop();
  }, 120_000);

  it.each(MODES)(
    "certificates.mode=$mode: pods Ready under PodSecurity restricted, a Lease held, the API server calls the webhooks through the Service",
    async ({ mode, injector }) => {
      const t = Date.now();
      const ns = `gate-${mode.toLowerCase()}`;
      await c.core.createNamespace({
        body: {
          metadata: { name: ns, labels: { "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest" } },
        },
      });
      const certificates: Record<string, unknown> = { mode };
      if (mode === "secret") {
        // An admin's own Secret, with its CA (ca.crt), made before the install.
        const pki = await servingPki("admin-ca", ns);
        await tlsSecret(c, ns, `${NAME}-admin-tls`, pki, true);
        certificates.secretName = `${NAME}-admin-tls`;
      }
      if (mode === "certManager") certificates.certManager = { issuerRef: { name: "ca-issuer" } };

      await helmInstall(node.kubeconfigPath, {
        namespace: ns,
        release: NAME,
        values: { image: { repository: image.repository, tag: image.tag, pullPolicy: "Never" }, certificates },
        postRenderer: {
          cmd: process.execPath,
          args: ["--import", "tsx", join(repoRoot, "test/support/podApiEnv.ts"), node.nodeIp, String(node.apiserverPort)],
        },
      });

      try {
        let injected: string | undefined;
        if (injector) injected = await playInjector(c, ns, mode, injector);

        await waitFor(
          `both ${ns} replicas Ready`,
          async () => {
            const d = await node.kubeConfig.makeApiClient(AppsV1Api).readNamespacedDeployment({ name: NAME, namespace: ns });
            return d.status?.readyReplicas === 2;
          },
          { timeoutMs: 150_000, intervalMs: 1_000 },
        ).catch(async (e: unknown) => {
          throw new Error(`${(e as Error).message}\n${await podReport(c, ns)}`);
        });
        const pods = await gatePods(c, ns);
        expect(pods.map((p) => p.spec?.securityContext?.runAsNonRoot)).toEqual([true, true]);

        const lease = await waitFor(
          `a ${ns} pod to hold the Lease`,
          async () => {
            const l = await node.kubeConfig.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: NAME, namespace: ns });
            return l.spec?.holderIdentity && l.spec.holderIdentity;
          },
          { timeoutMs: 60_000, intervalMs: 500 },
        );
        expect(pods.map((p) => p.metadata?.name)).toContain(lease);

        // Both configurations send to the Service; none to a URL.
        const clientConfigs = await webhookClientConfigs(c);
        expect(clientConfigs.map((w) => [w.service?.namespace, w.service?.name, w.url])).toEqual(clientConfigs.map(() => [ns, NAME, undefined]));
        const r = await createWithWarnings(node, `/apis/velero.io/v1/namespaces/${VELERO}/backups`, backupBody(`after-${mode.toLowerCase()}`, VELERO));
        expect(r.status).toBe(201);
        // Only backup-gate's mutating webhook writes this at admission.
        expect(r.body.metadata.annotations).toMatchObject({ [MARK]: "ItemBlock" });
        if (injected)
          expect((await webhookClientConfigs(c)).map((w) => Buffer.from(w.caBundle ?? "", "base64").toString())).toEqual(clientConfigs.map(() => injected));
      } finally {
        // Also after a failure: the next mode installs the same cluster-scoped objects.
        await helmUninstall(node.kubeconfigPath, { namespace: ns, release: NAME });
      }
      timings.push(`${mode} ${Date.now() - t} ms`);
    },
    240_000,
  );

  it("positive control: with the release uninstalled a Backup carries no mark, and PodSecurity refuses a root pod there", async () => {
    const gone = await c.kc
      .makeApiClient(AdmissionregistrationV1Api)
      .readMutatingWebhookConfiguration({ name: NAME })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isApiError(gone, 404)).toBe(true);
    const r = await createWithWarnings(node, `/apis/velero.io/v1/namespaces/${VELERO}/backups`, backupBody("no-gate", VELERO));
    expect(r.status).toBe(201);
    expect(r.body.metadata.annotations?.[MARK]).toBeUndefined();
    const refused = await c.core
      .createNamespacedPod({
        namespace: "gate-selfmanaged",
        dryRun: "All",
        body: { metadata: { name: "root" }, spec: { containers: [{ name: "c", image: image.ref, securityContext: { runAsUser: 0 } }] } },
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isApiError(refused, 403)).toBe(true);
  });
});

interface Pki {
  caPem: string;
  certPem: string;
  keyPem: string;
}

async function servingPki(commonName: string, ns: string): Promise<Pki> {
  const now = Date.now();
  const ca = await createCa({ commonName, validityMs: 86_400_000, now });
  const serving = await issueServing({ ca, dnsNames: serviceDnsNames(NAME, ns), validityMs: 86_400_000, now });
  return { caPem: ca.certPem, certPem: serving.certPem, keyPem: serving.privateKeyPem };
}

async function tlsSecret(c: Clients, ns: string, name: string, pki: Pki, withCaFile: boolean): Promise<void> {
  await c.core.createNamespacedSecret({
    namespace: ns,
    body: {
      metadata: { name },
      type: "kubernetes.io/tls",
      stringData: { "tls.crt": pki.certPem, "tls.key": pki.keyPem, ...(withCaFile ? { "ca.crt": pki.caPem } : {}) },
    },
  });
}

/**
 * The service-ca operator or cert-manager, as they behave: the Secret the chart names (on the
 * Service, or in the Certificate), and the CA in every caBundle of the configurations carrying
 * the injector's annotation. Returns the injected CA.
 */
async function playInjector(c: Clients, ns: string, mode: string, injector: NonNullable<Mode["injector"]>): Promise<string> {
  const secretName =
    mode === "serviceCA"
      ? (await c.core.readNamespacedService({ name: NAME, namespace: ns })).metadata?.annotations?.["service.beta.openshift.io/serving-cert-secret-name"]
      : // The custom objects API: KubernetesObjectApi drops the fields of a kind it has no model for.
        (
          (await c.custom.getNamespacedCustomObject({ group: "cert-manager.io", version: "v1", namespace: ns, plural: "certificates", name: NAME })) as {
            spec: { secretName: string };
          }
        ).spec.secretName;
  if (!secretName) throw new Error(`the ${mode} release names no Secret for its injector`);
  const pki = await servingPki(`${mode}-signer`, ns);
  await tlsSecret(c, ns, secretName, pki, injector.withCaFile);

  const admission = c.kc.makeApiClient(AdmissionregistrationV1Api);
  const bundle = Buffer.from(pki.caPem).toString("base64");
  const m = await admission.readMutatingWebhookConfiguration({ name: NAME });
  const v = await admission.readValidatingWebhookConfiguration({ name: NAME });
  for (const conf of [m, v]) {
    expect(conf.metadata?.annotations?.[injector.annotation]).toBe(injector.value(ns));
    for (const w of conf.webhooks ?? []) w.clientConfig.caBundle = bundle;
  }
  await admission.replaceMutatingWebhookConfiguration({ name: NAME, body: m });
  await admission.replaceValidatingWebhookConfiguration({ name: NAME, body: v });
  return pki.caPem;
}

async function webhookClientConfigs(c: Clients) {
  const admission = c.kc.makeApiClient(AdmissionregistrationV1Api);
  const m = await admission.readMutatingWebhookConfiguration({ name: NAME });
  const v = await admission.readValidatingWebhookConfiguration({ name: NAME });
  return [...(m.webhooks ?? []), ...(v.webhooks ?? [])].map((w) => w.clientConfig);
}

async function gatePods(c: Clients, ns: string): Promise<V1Pod[]> {
  return (await c.core.listNamespacedPod({ namespace: ns, labelSelector: `app.kubernetes.io/name=${NAME}` })).items;
}

/** What a failed wait prints: every gate pod's state and its last log lines. */
async function podReport(c: Clients, ns: string): Promise<string> {
  try {
    const lines: string[] = [];
    const events = await c.core.listNamespacedEvent({ namespace: ns });
    lines.push(...events.items.slice(-15).map((e) => `event ${e.involvedObject.kind}/${e.involvedObject.name}: ${e.reason}: ${e.message}`));
    for (const p of await gatePods(c, ns)) {
      lines.push(`${p.metadata?.name}: ${p.status?.phase} ${JSON.stringify(p.status?.containerStatuses?.map((s) => s.state))}`);
      const log = await c.core.readNamespacedPodLog({ name: p.metadata!.name!, namespace: ns, tailLines: 15 }).catch((e: unknown) => `(no log: ${String(e)})`);
      lines.push(String(log));
    }
    return lines.join("\n");
  } catch (e) {
    if (isApiError(e, 404)) return `(namespace ${ns} gone)`;
    return `(no pod report: ${String(e)})`;
  }
}
