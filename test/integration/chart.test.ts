/**
 * charts/backup-gate installed on a real kube-apiserver, and the gate it describes becoming
 * Ready and being called by that API server.
 *
 * `helm template` renders the chart (release namespace gate-system, a non-default policy);
 * every object is created as rendered. There is no kubelet, so the Deployment never runs a
 * pod: the test runs the gate as the pod would, from the rendered Deployment (its container
 * args and env, POD_NAME from the downward API), under the rendered ServiceAccount (a token
 * from the TokenRequest API), in a network namespace of its own so that it has an address an
 * Endpoints object may hold (the control plane has no endpoints controller, so the test writes
 * the Endpoints a controller would: the pod's address and the container port the Service
 * targets). The API server runs with --enable-aggregator-routing=true, which makes it resolve
 * a webhook's Service through those Endpoints instead of its ClusterIP (which nothing routes
 * here): so its webhook calls go Service -> Endpoints -> the gate, over TLS it verifies
 * against the caBundle the gate patched in.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  AdmissionregistrationV1Api,
  AuthenticationV1Api,
  CoordinationV1Api,
  KubeConfig,
  KubernetesObjectApi,
  type V1PodSpec,
  type V1Secret,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCa, issueServing, serviceDnsNames } from "../../src/tls/certs.js";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import { createWithWarnings, httpsGet } from "../support/gate.js";
import { helmInstallDryRun, renderChart, type K8sObject } from "../support/helm.js";
import { createNetNs, tcpRelay, type NetNs } from "../support/netns.js";
import { backupBody } from "../support/builders.js";
import { clients, createNamespace, getBackup, isApiError, updateVelero, type Clients, type VeleroObject } from "../support/objects.js";
import { imageNodeFlags } from "../support/imageRuntime.js";
import { spawnManaged, type ManagedProcess } from "../support/proc.js";
import { repoRoot } from "../support/tools.js";
import { expectStays, waitFor } from "../support/wait.js";
import { WEBHOOK_NAMES } from "../../src/admission/manifests.js";

const RELEASE_NS = "gate-system";
const VELERO = "velero";
const SERVICE_HOST = `backup-gate.${RELEASE_NS}.svc`;
/** Not the defaults, so the test can tell the rendered policy is the one in force. */
const VALUES = { level: "Namespace", limit: 2, serialWorkloads: "Allow", priorities: { agingSeconds: 0 } };

type Container = {
  args: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports: { name: string; containerPort: number }[];
};

function find(objects: K8sObject[], kind: string): K8sObject {
  const o = objects.find((x) => x.kind === kind);
  if (!o) throw new Error(`the chart rendered no ${kind}`);
  return o;
}

const containerOf = (deployment: K8sObject) =>
  (deployment as unknown as { spec: { template: { spec: { containers: Container[] } } } }).spec.template.spec.containers[0]!;

/** The container's env as the kubelet would set it for pod `podName`. */
function podEnv(c: Container, podName: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    const field = e.valueFrom?.fieldRef?.fieldPath;
    if (e.value !== undefined) env[e.name] = e.value;
    else if (field === "metadata.name") env[e.name] = podName;
    else if (field === "metadata.namespace") env[e.name] = RELEASE_NS;
    else throw new Error(`env ${e.name}: the test cannot play the kubelet for ${JSON.stringify(e.valueFrom)}`);
  }
  return env;
}

/** The port the Service sends to: its targetPort, resolved by name through the container's ports. */
function targetPort(objects: K8sObject[]): { name: string; port: number } {
  const svcPort = (find(objects, "Service") as unknown as { spec: { ports: { name: string; targetPort: string | number }[] } }).spec.ports[0]!;
  const port = containerOf(find(objects, "Deployment")).ports.find((p) => p.name === svcPort.targetPort || p.containerPort === svcPort.targetPort);
  if (!port) throw new Error(`the Service targets ${svcPort.targetPort}, which the container does not expose`);
  return { name: svcPort.name, port: port.containerPort };
}

async function caBundles(c: Clients): Promise<string[]> {
  const api = c.kc.makeApiClient(AdmissionregistrationV1Api);
  const m = await api.readMutatingWebhookConfiguration({ name: "backup-gate" });
  const v = await api.readValidatingWebhookConfiguration({ name: "backup-gate" });
  return [...(m.webhooks ?? []), ...(v.webhooks ?? [])].map((w) => Buffer.from(w.clientConfig.caBundle ?? "", "base64").toString("utf8"));
}

describe("charts/backup-gate on a real API server", () => {
  let cp: ControlPlane;
  let c: Clients;
  let netns: NetNs;
  let relay: Awaited<ReturnType<typeof tcpRelay>>;
  let objects: K8sObject[];
  let gate: ManagedProcess | undefined;
  let kubeconfigPath: string;
  let gateUrl: string;
  /** GET /readyz trusting only `ca` for the Service's name, as the API server does for a webhook. */
  const readyzTrusting = (ca: string) => httpsGet(`${gateUrl}/readyz`, { ca, servername: SERVICE_HOST, timeout: 3000 });
  let installPreview: string;
  const FIRST_POD = "backup-gate-5d8f7c9b4-x2x7q";

  /** Runs a Deployment's container in the network namespace, as pod `podName`. */
  function startPod(deployment: K8sObject, podName: string, name: string): ManagedProcess {
    const container = containerOf(deployment);
    // The image's entrypoint runs `dist/src/cli/main.js` with its node flags; from a checkout, the same CLI through tsx.
    const { cmd, args } = netns.wrap(process.execPath, [...imageNodeFlags(), "--import", "tsx", join(repoRoot, "src/cli/main.ts"), ...container.args]);
    // In a pod the kubeconfig is the mounted ServiceAccount token; here a file with that token.
    const env = { PATH: process.env.PATH ?? "", HOME: cp.dir, ...podEnv(container, podName), KUBECONFIG: kubeconfigPath };
    return spawnManaged(cmd, args, { name, logDir: cp.dir, cwd: repoRoot, env });
  }

  beforeAll(async () => {
    netns = createNetNs();
    cp = await startControlPlane({ name: "chart", apiserverArgs: { "enable-aggregator-routing": "true" } });
    c = clients(cp.kubeConfig);
    await createNamespace(c, RELEASE_NS);
    await createNamespace(c, VELERO);
    await createNamespace(c, "shop");
    await createNamespace(c, "web");

    installPreview = await helmInstallDryRun(cp.kubeconfigPath, { namespace: RELEASE_NS, values: VALUES });
    objects = await renderChart({ namespace: RELEASE_NS, values: VALUES });
    const api = KubernetesObjectApi.makeApiClient(cp.kubeConfig);
    for (const o of objects) await api.create(o);

    const port = targetPort(objects);
    gateUrl = `https://${netns.nsIp}:${port.port}`;
    await c.core.createNamespacedEndpoints({
      namespace: RELEASE_NS,
      body: { metadata: { name: "backup-gate" }, subsets: [{ addresses: [{ ip: netns.nsIp }], ports: [{ name: port.name, port: port.port }] }] },
    });

    const sa = find(objects, "ServiceAccount").metadata.name;
    const token = await c.core.createNamespacedServiceAccountToken({
      name: sa,
      namespace: RELEASE_NS,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    });
    // The API server listens on loopback, which the namespace cannot reach: a relay on the host end of the veth.
    const api0 = new URL(cp.host);
    relay = await tcpRelay(netns.hostIp, { host: api0.hostname, port: Number(api0.port) });
    const cluster = cp.kubeConfig.getCurrentCluster()!;
    const caData = cluster.caData ?? readFileSync(cluster.caFile!).toString("base64");
    const dir = join(cp.dir, "pod");
    mkdirSync(dir, { recursive: true });
    kubeconfigPath = join(dir, "kubeconfig");
    writeFileSync(
      kubeconfigPath,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        "current-context": "pod",
        // The API server's certificate names localhost; the relay's address is not in it.
        clusters: [
          { name: "cp", cluster: { server: `https://${netns.hostIp}:${relay.port}`, "certificate-authority-data": caData, "tls-server-name": "localhost" } },
        ],
        users: [{ name: sa, user: { token: token.status?.token } }],
        contexts: [{ name: "pod", context: { cluster: "cp", user: sa } }],
      }),
    );
    gate = startPod(find(objects, "Deployment"), FIRST_POD, "gate-pod");
  });

  afterAll(async () => {
    await gate?.stop();
    await relay?.close();
    await cp?.stop();
    netns?.remove();
  });

  it("helm install (dry run, checked by this API server) accepts the release and its notes name the policy", () => {
    const notes = installPreview.slice(installPreview.indexOf("NOTES:"));
    expect(notes).toMatch(/^NOTES:\n/);
    expect(notes).toContain("Policy: conflictLevel Namespace, maxConcurrentBackups 2, serialWorkloads Allow.");
    expect(notes).toContain("velero server --disable-controllers=backup-queue --concurrent-backups=2");
    expect(notes).toContain(`kubectl -n ${RELEASE_NS} rollout status deployment/backup-gate`);
  });

  it("patches its CA into every webhook of both rendered configurations", async () => {
    const bundles = await waitFor(
      "caBundle in every webhook",
      async () => {
        const b = await caBundles(c);
        return b.length === Object.keys(WEBHOOK_NAMES).length && b.every((x) => x.includes("BEGIN CERTIFICATE")) && b;
      },
      { timeoutMs: 60_000, intervalMs: 300 },
    );
    expect(new Set(bundles).size).toBe(1);
  });

  it("answers /readyz 200 on the Service's target port, over TLS the caBundle and the Service name verify", async () => {
    const [bundle] = await caBundles(c);
    await waitFor(`${gateUrl}/readyz to answer 200`, async () => (await readyzTrusting(bundle!)).status === 200, { timeoutMs: 60_000, intervalMs: 300 });
  });

  it("runs as the rendered ServiceAccount, whose rendered RBAC is enough to lead", async () => {
    const lease = await waitFor(
      "the gate to hold the Lease",
      async () => {
        const l = await c.kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: "backup-gate", namespace: RELEASE_NS });
        return l.spec?.holderIdentity === FIRST_POD && l;
      },
      { timeoutMs: 60_000, intervalMs: 300 },
    );
    expect(lease.metadata?.namespace).toBe(RELEASE_NS);
    // Who the gate's kubeconfig is, asked of the API server with that kubeconfig.
    const podConfig = new KubeConfig();
    podConfig.loadFromFile(kubeconfigPath);
    const review = await podConfig
      .makeApiClient(AuthenticationV1Api)
      .createSelfSubjectReview({ body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" } });
    expect(review.status?.userInfo?.username).toBe(`system:serviceaccount:${RELEASE_NS}:${find(objects, "ServiceAccount").metadata.name}`);
  });

  it("the API server calls it through the Service's Endpoints: the rendered policy (Namespace level, limit 2) decides", async () => {
    const create = (name: string, namespaces: string[]) =>
      createWithWarnings(cp, `/apis/velero.io/v1/namespaces/${VELERO}/backups`, backupBody(name, VELERO, { includedNamespaces: namespaces }));
    const first = await create("shop-1", ["shop"]);
    expect(first.status).toBe(201);
    // The mutating webhook ran: only backup-gate writes this annotation at admission.
    expect(first.body.metadata.annotations).toMatchObject({ "backup-gate.io/conflict-level": "Namespace" });
    await waitFor("shop-1 ReadyToStart", async () => (await getBackup(c, VELERO, "shop-1")).status?.phase === "ReadyToStart", { timeoutMs: 30_000 });

    // At ItemBlock level two backups of a namespace without pods never conflict; at Namespace level they do.
    const second = await create("shop-2", ["shop"]);
    expect(second.status).toBe(201);
    expect(second.warnings).toEqual([expect.stringMatching(/^backup shop-2 will wait behind shop-1/)]);
    expect(second.body.metadata.annotations).toMatchObject({ "backup-gate.io/conflict-level": "Namespace", "backup-gate.io/waiting-for": "shop-1" });

    // limit 2: web-1 takes the second slot, web-2 waits for a free one.
    expect((await create("web-1", ["web"])).status).toBe(201);
    await waitFor("web-1 ReadyToStart", async () => (await getBackup(c, VELERO, "web-1")).status?.phase === "ReadyToStart", { timeoutMs: 30_000 });
    expect((await create("web-2", ["web-other"])).status).toBe(201);
    await expectStays(
      "shop-2 and web-2 to stay out of flight",
      async () => {
        const phases = await Promise.all(["shop-2", "web-2"].map(async (n) => (await getBackup(c, VELERO, n)).status?.phase as string | undefined));
        return phases.every((p) => p !== "ReadyToStart" && p !== "InProgress");
      },
      3_000,
      500,
    );

    // The promotion guard (failurePolicy Fail) is reached the same way and refuses a move past the policy.
    const e = await updateVelero(
      c,
      "backups",
      VELERO,
      "shop-2",
      (o: VeleroObject) => {
        o.status = { ...o.status, phase: "ReadyToStart" };
      },
      1,
    ).then(
      () => undefined,
      (x: unknown) => x,
    );
    if (!isApiError(e, 403)) throw new Error(`expected a 403 from the promotion webhook, got ${String(e)}`);
    expect((JSON.parse(String(e.body)) as { message: string }).message).toBe(
      'admission webhook "validate-promotion.backups.backup-gate.io" denied the request: ' +
        "backup shop-2 may not become ReadyToStart: it conflicts with shop-1 (ReadyToStart): both include namespace shop (judged at Namespace level)",
    );
  });

  it("the pods pass PodSecurity restricted as this API server enforces it on the chart's own namespace labels (a root pod does not)", async () => {
    const ns = (await renderChart({ namespace: RELEASE_NS, values: { ...VALUES, namespace: { create: true } } })).find((o) => o.kind === "Namespace")!;
    const labels = Object.fromEntries(Object.entries(ns.metadata.labels ?? {}).filter(([k]) => k.startsWith("pod-security.kubernetes.io/")));
    expect(labels["pod-security.kubernetes.io/enforce"]).toBe("restricted");
    const live = await c.core.readNamespace({ name: RELEASE_NS });
    await c.core.replaceNamespace({ name: RELEASE_NS, body: { ...live, metadata: { ...live.metadata, labels: { ...live.metadata?.labels, ...labels } } } });
    const template = (find(objects, "Deployment") as unknown as { spec: { template: { metadata: { labels: Record<string, string> }; spec: V1PodSpec } } }).spec
      .template;
    const pod = (spec: V1PodSpec, name: string) =>
      c.core.createNamespacedPod({ namespace: RELEASE_NS, dryRun: "All", body: { metadata: { name, labels: template.metadata.labels }, spec } });
    await pod(template.spec, "gate-restricted");
    // Positive control: the same pod as root with its capabilities kept is refused by PodSecurity.
    const root = {
      ...template.spec,
      securityContext: { ...template.spec.securityContext, runAsNonRoot: false, runAsUser: 0 },
      containers: template.spec.containers.map((ct) => ({ ...ct, securityContext: { ...ct.securityContext, capabilities: {} } })),
    };
    const refused = await pod(root, "gate-root").then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isApiError(refused, 403)).toBe(true);
    expect((JSON.parse(String((refused as { body?: unknown }).body)) as { message: string }).message).toMatch(
      /violates PodSecurity "restricted:latest": .*runAsNonRoot != true/,
    );
  });

  it("certificates.mode=secret: the gate serves the Secret's certificate and the API server trusts its CA", async () => {
    const now = Date.now();
    const ca = await createCa({ commonName: "chart-test-ca", validityMs: 86_400_000, now });
    const serving = await issueServing({ ca, dnsNames: serviceDnsNames("backup-gate", RELEASE_NS), validityMs: 86_400_000, now });
    const secretName = "backup-gate-tls";
    await c.core.createNamespacedSecret({
      namespace: RELEASE_NS,
      body: {
        metadata: { name: secretName },
        type: "kubernetes.io/tls",
        stringData: { "tls.crt": serving.certPem, "tls.key": serving.privateKeyPem, "ca.crt": ca.certPem },
      },
    });
    // The kubelet mounts the Secret at mountPath; the test points mountPath where it may write.
    const mountPath = join(cp.dir, "pod", "tls");
    const upgraded = await renderChart({ namespace: RELEASE_NS, values: { ...VALUES, certificates: { mode: "secret", secretName, mountPath } } });
    const deployment = find(upgraded, "Deployment");
    await KubernetesObjectApi.makeApiClient(cp.kubeConfig).replace(deployment);
    playKubeletSecretVolume(deployment, await c.core.readNamespacedSecret({ name: secretName, namespace: RELEASE_NS }));

    await gate?.stop();
    gate = startPod(deployment, "backup-gate-7f6b8d4c9-q8w2n", "gate-pod-secret");
    await waitFor("the Secret's CA first in every caBundle", async () => (await caBundles(c)).every((b) => b.startsWith(ca.certPem.trim())), {
      timeoutMs: 60_000,
      intervalMs: 300,
    });
    // Only the Secret's CA verifies what it serves now.
    await waitFor(`${gateUrl}/readyz to answer 200`, async () => (await readyzTrusting(ca.certPem)).status === 200, { timeoutMs: 60_000, intervalMs: 300 });
    const r = await createWithWarnings(
      cp,
      `/apis/velero.io/v1/namespaces/${VELERO}/backups`,
      backupBody("after-secret", VELERO, { includedNamespaces: ["web-3"] }),
    );
    expect(r.status).toBe(201);
    expect(r.body.metadata.annotations).toMatchObject({ "backup-gate.io/conflict-level": "Namespace" });
  });

  // The two injectors, played by the test as the operators behave: the Secret (service-ca: no
  // ca.crt; cert-manager: with ca.crt) and the CA written into every caBundle of the webhook
  // configurations that carry the injector's annotation. The gate must serve the Secret and
  // leave the bundle exactly as injected.
  it.each([
    {
      mode: "serviceCA",
      values: { certificates: { mode: "serviceCA" } },
      withCaFile: false,
      annotation: ["service.beta.openshift.io/inject-cabundle", "true"],
    },
    {
      mode: "certManager",
      values: { certificates: { mode: "certManager", certManager: { issuerRef: { name: "ca-issuer" } } } },
      withCaFile: true,
      annotation: ["cert-manager.io/inject-ca-from", `${RELEASE_NS}/backup-gate`],
    },
  ])("certificates.mode=$mode: the injector's Secret is served and its caBundle stays as injected", async ({ mode, values, withCaFile, annotation }) => {
    const mountPath = join(cp.dir, "pod", `tls-${mode}`);
    const rendered = await renderChart({ namespace: RELEASE_NS, values: { ...VALUES, certificates: { ...values.certificates, mountPath } } });
    const api = KubernetesObjectApi.makeApiClient(cp.kubeConfig);
    // cert-manager's CRDs are not in this API server: its Certificate is read from the render.
    for (const o of rendered.filter((x) => ["Deployment", "Service", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"].includes(x.kind))) {
      const live = await api.read(o);
      await api.replace({ ...o, metadata: { ...o.metadata, resourceVersion: live.metadata?.resourceVersion } });
    }
    const secretName =
      mode === "serviceCA"
        ? (find(rendered, "Service").metadata.annotations as Record<string, string>)["service.beta.openshift.io/serving-cert-secret-name"]!
        : (find(rendered, "Certificate") as unknown as { spec: { secretName: string } }).spec.secretName;
    const dnsNames =
      mode === "serviceCA"
        ? serviceDnsNames("backup-gate", RELEASE_NS)
        : (find(rendered, "Certificate") as unknown as { spec: { dnsNames: string[] } }).spec.dnsNames;
    const now = Date.now();
    const ca = await createCa({ commonName: `${mode}-signer`, validityMs: 86_400_000, now });
    const serving = await issueServing({ ca, dnsNames, validityMs: 86_400_000, now });
    await c.core.deleteNamespacedSecret({ name: secretName, namespace: RELEASE_NS }).catch(() => undefined);
    await c.core.createNamespacedSecret({
      namespace: RELEASE_NS,
      body: {
        metadata: { name: secretName },
        type: "kubernetes.io/tls",
        stringData: { "tls.crt": serving.certPem, "tls.key": serving.privateKeyPem, ...(withCaFile ? { "ca.crt": ca.certPem } : {}) },
      },
    });
    const deployment = find(rendered, "Deployment");
    playKubeletSecretVolume(deployment, await c.core.readNamespacedSecret({ name: secretName, namespace: RELEASE_NS }));
    await gate?.stop();
    gate = startPod(deployment, `backup-gate-7f6b8d4c9-${mode.toLowerCase()}`, `gate-pod-${mode}`);

    // The injector: every configuration annotated for it gets the CA in every caBundle.
    const admission = c.kc.makeApiClient(AdmissionregistrationV1Api);
    const bundle = Buffer.from(ca.certPem).toString("base64");
    const m = await admission.readMutatingWebhookConfiguration({ name: "backup-gate" });
    const v = await admission.readValidatingWebhookConfiguration({ name: "backup-gate" });
    for (const conf of [m, v]) {
      expect(conf.metadata?.annotations?.[annotation[0]!]).toBe(annotation[1]);
      for (const w of conf.webhooks ?? []) w.clientConfig.caBundle = bundle;
    }
    await admission.replaceMutatingWebhookConfiguration({ name: "backup-gate", body: m });
    await admission.replaceValidatingWebhookConfiguration({ name: "backup-gate", body: v });

    await waitFor(`${gateUrl}/readyz to answer 200 trusting only the injector's CA`, async () => (await readyzTrusting(ca.certPem)).status === 200, {
      timeoutMs: 60_000,
      intervalMs: 300,
    });
    const r = await createWithWarnings(
      cp,
      `/apis/velero.io/v1/namespaces/${VELERO}/backups`,
      backupBody(`after-${mode.toLowerCase()}`, VELERO, { includedNamespaces: [`web-${mode.toLowerCase()}`] }),
    );
    expect(r.status).toBe(201);
    expect(r.body.metadata.annotations).toMatchObject({ "backup-gate.io/conflict-level": "Namespace" });
    // The gate never writes what the injector owns.
    await expectStays("every caBundle is exactly the injected CA", async () => (await caBundles(c)).every((b) => b === ca.certPem), 3_000);
  });
});

/** Writes a Secret volume's files where the rendered Deployment mounts it, as the kubelet does. */
function playKubeletSecretVolume(deployment: K8sObject, secret: V1Secret): void {
  const pod = (deployment as unknown as { spec: { template: { spec: { volumes: { name: string; secret?: { secretName: string } }[] } } } }).spec.template.spec;
  const container = containerOf(deployment) as Container & { volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[] };
  const volume = pod.volumes.find((v) => v.secret?.secretName === secret.metadata?.name);
  const mount = container.volumeMounts.find((m) => m.name === volume?.name);
  if (!volume || !mount) throw new Error(`the Deployment does not mount Secret ${secret.metadata?.name}`);
  expect(mount.readOnly).toBe(true);
  mkdirSync(mount.mountPath, { recursive: true });
  for (const [key, value] of Object.entries(secret.data ?? {})) writeFileSync(join(mount.mountPath, key), Buffer.from(value, "base64"));
}
