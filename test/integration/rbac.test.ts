/**
 * Least privilege, proved on the real API server (issue 8, Security, RBAC).
 *
 * The gate (`backup-gate serve`, a separate process) runs under its ServiceAccount, with a
 * token from the TokenRequest API and exactly the RBAC of `manifests/10-rbac.yaml`; the
 * webhook configurations are those of `manifests/40-webhooks.yaml`, pointed at the gate's URL
 * by the admin (out of cluster there is no Service), so the gate writes only their caBundle,
 * as it does in a cluster. The test drives everything the gate does (leadership, policy hot
 * reload and refusal, admission through the API server, queueing, promotion, positions,
 * Events, caBundle, /metrics, lease release) while playing Velero as the admin. Then:
 *
 * - every call the gate made, read from the API server's audit log (Metadata level, every
 *   request), was allowed (no 401/403), each is permitted by a rule of the manifests, and each
 *   rule of the manifests was used by at least one call (no dead grants);
 * - every write beyond its needs, attempted over HTTPS with the ServiceAccount's own token,
 *   is refused with 403 by the API server, which also records it as 403 in its audit log, and
 *   a SubjectAccessReview and the rule matcher agree.
 *
 * Rerun: npx vitest run --project integration test/integration/rbac.test.ts
 * (the audit log and the gate's log stay in the suite directory printed at the end).
 */
import { join } from "node:path";
import { AdmissionregistrationV1Api, AuthorizationV1Api, CoordinationV1Api, type KubeConfig, type KubernetesObject } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import { backupsIn, startGate, type GateProcess } from "../support/gate.js";
import { backupBody } from "../support/builders.js";
import { clients, createBackup, createNamespace, createPod, createWorkload, getBackup, updateVelero, type Clients } from "../support/objects.js";
import { makeSuiteDir, tailFile } from "../support/proc.js";
import {
  PROBE_USER_AGENT,
  auditApiserverArgs,
  callOf,
  createAll,
  describePermission,
  grantAllows,
  grantsFor,
  permissions,
  rawRequest,
  readAuditLog,
  readManifests,
  serviceAccountKubeconfig,
  serviceAccountUser,
  usesPermission,
  type ApiCall,
  type AuditEvent,
  type Grant,
} from "../support/rbac.js";
import { repoRoot } from "../support/tools.js";
import { splitPemBundle } from "../../src/tls/certs.js";
import { waitFor } from "../support/wait.js";

const VELERO = "velero";
const GATE_NS = "backup-gate";
const SA = serviceAccountUser(GATE_NS, "backup-gate");
const POLICY_CM = "backup-gate-policy";
const manifest = (file: string) => join(repoRoot, "manifests", file);

describe("RBAC of manifests/: the gate under its ServiceAccount on the real API server", () => {
  let cp: ControlPlane;
  let c: Clients;
  let sa: KubeConfig;
  let gate: GateProcess;
  let standby: GateProcess;
  let auditLog: string;
  let grants: Grant[];
  let manifestPolicy: string;

  const { create, waitPhase, setPhase } = backupsIn(
    () => cp,
    () => c,
    VELERO,
  );
  const app = (label: string) => ({ includedNamespaces: ["shop"], spec: { labelSelector: { matchLabels: { app: label } } } });
  const setPolicy = (text: string) =>
    c.core.patchNamespacedConfigMap({ name: POLICY_CM, namespace: GATE_NS, body: [{ op: "replace", path: "/data/policy.yaml", value: text }] });
  const metric = async (line: RegExp) => line.test((await gate.get("/metrics")).body);
  const eventsOn = async (namespace: string, kind: string, name: string) =>
    (await c.core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.kind=${kind},involvedObject.name=${name}` })).items.filter(
      (e) => e.source?.component === "backup-gate",
    );

  beforeAll(async () => {
    const dir = makeSuiteDir("rbac");
    const audit = auditApiserverArgs(dir);
    auditLog = audit.logPath;
    cp = await startControlPlane({ dir, apiserverArgs: audit.args });
    c = clients(cp.kubeConfig);
    // The gate expects Velero's namespace (the policy's veleroNamespace, default velero) to exist before its Role.
    for (const ns of [VELERO, "shop", "web"]) await createNamespace(c, ns);
    const objects = readManifests(["00-namespace.yaml", "10-rbac.yaml", "20-policy.yaml", "40-webhooks.yaml"].map(manifest));
    await createAll(cp.kubeConfig, objects);
    grants = grantsFor(objects, GATE_NS, "backup-gate");
    manifestPolicy = (objects.find((o) => o.kind === "ConfigMap") as KubernetesObject & { data: Record<string, string> }).data["policy.yaml"]!;
    await createWorkload(c, "shop", "cart");
    await createWorkload(c, "shop", "orders");
    await createPod(c, "web", "nginx", { labels: { app: "web" } });

    sa = await serviceAccountKubeconfig(cp.kubeConfig, GATE_NS, "backup-gate", join(dir, "backup-gate.kubeconfig"));
    // Same control plane, the ServiceAccount's kubeconfig: startGate reads only these two fields.
    const asServiceAccount = { ...cp, kubeconfigPath: join(dir, "backup-gate.kubeconfig") };
    const start = (identity: string) =>
      startGate(asServiceAccount, { identity }).catch((e: unknown) => {
        // A refused call at start-up (e.g. the caBundle write, retried for a minute) shows in the gate's log, not in readiness.
        throw new Error(`${(e as Error).message}\n${tailFile(join(dir, `gate-${identity}.log`), 8)}`);
      });
    gate = await start("gate-sa");
    await pointWebhooksAt(cp.kubeConfig, "backup-gate", gate.url);
    // A second replica, as the Deployment runs: it stands by and merges its own CA into the caBundle.
    standby = await start("standby-sa");
  }, 300_000);

  afterAll(async () => {
    await standby?.stop();
    await gate?.stop();
    if (cp) console.log(`rbac suite directory (audit.log, gate log): ${cp.dir}`);
    await cp?.stop();
  });

  it("leads (the standby does not), serves /metrics, and both replicas have written their CA into both webhook configurations", async () => {
    await waitFor("the gate to lead", () => metric(/^backup_gate_leader 1$/m));
    expect((await standby.get("/metrics")).body).toMatch(/^backup_gate_leader 0$/m);
    expect(await metric(/^backup_gate_view_synced 1$/m)).toBe(true);
    expect(await metric(/^backup_gate_policy_valid 1$/m)).toBe(true);
    const admission = cp.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    const configs = [
      await admission.readMutatingWebhookConfiguration({ name: "backup-gate" }),
      await admission.readValidatingWebhookConfiguration({ name: "backup-gate" }),
    ];
    for (const w of configs.flatMap((cfg) => cfg.webhooks ?? [])) {
      expect(splitPemBundle(Buffer.from(w.clientConfig.caBundle ?? "", "base64").toString()), w.name).toHaveLength(2);
    }
  });

  it("admits through the API server, queues, promotes, writes positions and Events; Velero played by the admin", async () => {
    const first = await create("cart-1", app("cart"));
    expect(first.status).toBe(201);
    // The mutating webhook ran (failurePolicy Ignore would hide a call the API server could not make).
    expect(first.body.metadata.annotations["backup-gate.io/conflict-level"]).toBe("ItemBlock");
    await waitPhase("cart-1", "ReadyToStart");
    await setPhase("cart-1", "InProgress");

    const second = await create("cart-2", app("cart"));
    expect(second.warnings).toEqual(["backup cart-2 will wait behind cart-1: both snapshot PVC shop/data-cart-0"]);
    await waitPhase("cart-2", "Queued");
    expect((await getBackup(c, VELERO, "cart-2")).status.queuePosition).toBe(1);

    // Forbid: the validating webhook refuses a second run of a Schedule in flight.
    const nightly = { includedNamespaces: ["web"], labels: { "velero.io/schedule-name": "nightly" } };
    expect((await create("nightly-1", nightly)).status).toBe(201);
    await waitPhase("nightly-1", "ReadyToStart");
    expect((await create("nightly-2", nightly)).status).toBe(403);

    // A Queued backup knocked back to New (say, re-applied by a GitOps tool) is queued again
    // with the same message: the gate bumps the count of its Event instead of writing a new one.
    await updateVelero(c, "backups", VELERO, "cart-2", (o) => {
      o.status = { ...o.status, phase: "New" };
    });
    await waitFor("cart-2's Queued Event to count 2", async () =>
      (await eventsOn(VELERO, "Backup", "cart-2")).some((e) => e.reason === "Queued" && e.count === 2),
    );

    await setPhase("cart-1", "Completed");
    await waitPhase("cart-2", "ReadyToStart");
    // The Event follows the phase write: read once right after it, it can be missing yet (seen in CI).
    await waitFor("cart-2's Started Event", async () => (await eventsOn(VELERO, "Backup", "cart-2")).some((e) => e.reason === "Started"));
    expect((await eventsOn(VELERO, "Backup", "cart-2")).map((e) => e.reason).sort()).toEqual(["Queued", "Started"]);
    for (const name of ["cart-2", "nightly-1"]) {
      await setPhase(name, "InProgress");
      await setPhase(name, "Completed");
    }
  });

  it("reloads a policy change at once, and refuses an invalid one with an InvalidPolicy Event (a repeat bumps its count)", async () => {
    await setPolicy(manifestPolicy.replace(/maxConcurrentBackups: \d+/, "maxConcurrentBackups: 1"));
    await waitFor("the policy change to be loaded", () => metric(/^backup_gate_policy_reloads_total\{result="valid"\} [2-9]/m));
    // Two backups that conflict on nothing: with one slot the second waits.
    await create("web-1", { includedNamespaces: ["web"] });
    await waitPhase("web-1", "ReadyToStart");
    await create("orders-1", app("orders"));
    await waitPhase("orders-1", "Queued");
    await setPhase("web-1", "Completed");
    await waitPhase("orders-1", "ReadyToStart");
    await setPhase("orders-1", "Completed");

    const invalid = manifestPolicy.replace(/conflictLevel: \w+/, "conflictLevel: Sideways");
    await setPolicy(invalid);
    await waitFor("an InvalidPolicy Event", async () => (await eventsOn(GATE_NS, "ConfigMap", POLICY_CM)).some((e) => e.reason === "InvalidPolicy"));
    expect(await metric(/^backup_gate_policy_valid 0$/m)).toBe(true);
    await setPolicy(manifestPolicy);
    await waitFor("a PolicyApplied Event", async () => (await eventsOn(GATE_NS, "ConfigMap", POLICY_CM)).some((e) => e.reason === "PolicyApplied"));
    await setPolicy(invalid);
    await waitFor("the InvalidPolicy Event to count 2", async () =>
      (await eventsOn(GATE_NS, "ConfigMap", POLICY_CM)).some((e) => e.reason === "InvalidPolicy" && e.count === 2),
    );
    await setPolicy(manifestPolicy);
    await waitFor("the policy to be valid again", () => metric(/^backup_gate_policy_valid 1$/m));
  });

  it("stops and releases its Lease", async () => {
    await gate.stop();
    await standby.stop();
    const lease = await cp.kubeConfig.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: "backup-gate", namespace: GATE_NS });
    expect(lease.spec?.holderIdentity).toBeUndefined();
  });

  it("every call the gate made was allowed, each is granted by manifests/10-rbac.yaml, and every grant was used", async () => {
    // A watch's event is complete once the API server has seen it end (the gate has exited).
    const gateEvents = await waitFor("every watch of the gate to be complete in the audit log", () => {
      const events = readAuditLog(auditLog).filter((e) => e.user.username === SA && e.userAgent !== PROBE_USER_AGENT);
      return events.every((e) => e.stage === "ResponseComplete") && events;
    });
    const calls = gateEvents.map((e) => callOf(e) ?? nonResource(e));
    expect(calls.length).toBeGreaterThan(0);
    console.log(`backup-gate's API calls (${calls.length}, two replicas), from the audit log:\n${callTable(calls, grants)}`);

    expect(calls.filter((k) => k.code === 401 || k.code === 403).map(show)).toEqual([]);
    expect(calls.filter((k) => !grants.some((g) => grantAllows(g, k))).map(show)).toEqual([]);
    const unused = permissions(grants)
      .filter((p) => !calls.some((k) => usesPermission(p, k)))
      .map(describePermission);
    expect(unused).toEqual([]);
  });

  it("every write beyond its needs, and every Secret read but its promotion key, is refused (403) with the gate's own token", async () => {
    await createBackup(c, "shop", "elsewhere", { includedNamespaces: ["shop"] });
    await c.core.createNamespacedSecret({ namespace: VELERO, body: { metadata: { name: "cloud-credentials" }, stringData: { cloud: "secret" } } });
    await cp.kubeConfig.makeApiClient(AdmissionregistrationV1Api).createValidatingWebhookConfiguration({ body: otherWebhook("someone-else") });
    await cp.kubeConfig
      .makeApiClient(CoordinationV1Api)
      .createNamespacedLease({ namespace: GATE_NS, body: { metadata: { name: "other-controller" }, spec: { holderIdentity: "other" } } });

    const attempts = forbiddenAttempts();
    const results = [];
    for (const a of attempts)
      results.push({ ...a, ...(await rawRequest(sa, a.method, a.path, a.body, a.method === "PATCH" ? "application/merge-patch+json" : "application/json")) });
    console.log(`attempts with the ServiceAccount's token:\n${results.map((r) => `${r.status}  ${r.what}  (${r.method} ${r.path})`).join("\n")}`);
    expect(results.filter((r) => r.status !== 403).map((r) => `${r.what}: ${r.status} ${r.body.slice(0, 200)}`)).toEqual([]);

    // The audit log records each as the ServiceAccount's, refused; the rule matcher and a
    // SubjectAccessReview (the authorizer asked directly) agree that nothing grants it.
    const byId = new Map(readAuditLog(auditLog).map((e) => [e.auditID, e]));
    const authz = cp.kubeConfig.makeApiClient(AuthorizationV1Api);
    for (const r of results) {
      const e = byId.get(r.auditId);
      expect(e && [e.user.username, e.responseStatus?.code], r.what).toEqual([SA, 403]);
      const k = callOf(e!)!;
      expect(
        grants.filter((g) => grantAllows(g, k)).map((g) => g.from),
        r.what,
      ).toEqual([]);
      const [resource, subresource] = k.resource.split("/");
      const review = await authz.createSubjectAccessReview({
        body: {
          spec: {
            user: SA,
            groups: ["system:serviceaccounts", `system:serviceaccounts:${GATE_NS}`, "system:authenticated"],
            resourceAttributes: { verb: k.verb, group: k.apiGroup, resource, subresource, namespace: k.namespace, name: k.name },
          },
        },
      });
      expect(review.status?.allowed, r.what).toBe(false);
    }
  });

  it("the writes RBAC cannot narrow: a create is authorized before its name is known, so the gate may create another Lease or Secret in its own namespace, and in no other", async () => {
    const lease = (name: string) => ({ apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name }, spec: {} });
    expect((await rawRequest(sa, "POST", `/apis/coordination.k8s.io/v1/namespaces/${GATE_NS}/leases`, lease("not-mine"))).status).toBe(201);
    expect((await rawRequest(sa, "POST", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases", lease("not-mine"))).status).toBe(403);
    expect((await rawRequest(sa, "POST", `/apis/coordination.k8s.io/v1/namespaces/${VELERO}/leases`, lease("not-mine"))).status).toBe(403);
    const secret = { apiVersion: "v1", kind: "Secret", metadata: { name: "not-mine" }, stringData: { k: "v" } };
    expect((await rawRequest(sa, "POST", `/api/v1/namespaces/${GATE_NS}/secrets`, secret)).status).toBe(201);
    expect((await rawRequest(sa, "POST", "/api/v1/namespaces/kube-system/secrets", secret)).status).toBe(403);
    expect((await rawRequest(sa, "POST", `/api/v1/namespaces/${VELERO}/secrets`, secret)).status).toBe(403);
  });
});

/** The admin points the applied webhook configurations at a URL, keeping the caBundle the gate wrote. */
async function pointWebhooksAt(admin: KubeConfig, name: string, url: string): Promise<void> {
  const api = admin.makeApiClient(AdmissionregistrationV1Api);
  const configs = [
    { plural: "mutatingwebhookconfigurations", obj: await api.readMutatingWebhookConfiguration({ name }) },
    { plural: "validatingwebhookconfigurations", obj: await api.readValidatingWebhookConfiguration({ name }) },
  ];
  for (const { plural, obj } of configs) {
    const ops = (obj.webhooks ?? []).flatMap((w, i) => [
      { op: "remove", path: `/webhooks/${i}/clientConfig/service` },
      { op: "add", path: `/webhooks/${i}/clientConfig/url`, value: `${url}${w.clientConfig.service?.path ?? ""}` },
    ]);
    const res = await rawRequest(admin, "PATCH", `/apis/admissionregistration.k8s.io/v1/${plural}/${name}`, ops, "application/json-patch+json");
    if (res.status !== 200) throw new Error(`pointing ${plural}/${name} at ${url}: ${res.status} ${res.body}`);
  }
}

function otherWebhook(name: string) {
  return {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind: "ValidatingWebhookConfiguration",
    metadata: { name },
    webhooks: [
      {
        name: `validate.${name}.example.com`,
        sideEffects: "None",
        admissionReviewVersions: ["v1"],
        failurePolicy: "Ignore",
        clientConfig: { url: "https://127.0.0.1:9/validate" },
        rules: [{ apiGroups: ["example.com"], apiVersions: ["v1"], resources: ["widgets"], operations: ["CREATE"] }],
      },
    ],
  };
}

interface Attempt {
  what: string;
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  path: string;
  body?: unknown;
}

/** Everything the gate must not be able to do. Each target exists, so only authorization can refuse. */
function forbiddenAttempts(): Attempt[] {
  const v = "/apis/velero.io/v1/namespaces";
  const core = "/api/v1";
  const adm = "/apis/admissionregistration.k8s.io/v1";
  const leases = "/apis/coordination.k8s.io/v1/namespaces";
  const rbac = "/apis/rbac.authorization.k8s.io/v1";
  const label = { metadata: { labels: { "rbac-probe": "x" } } };
  const velero = (kind: string, name: string, ns = VELERO) => ({ apiVersion: "velero.io/v1", kind, metadata: { name, namespace: ns }, spec: {} });
  return [
    { what: "create a Backup outside Velero's namespace", method: "POST", path: `${v}/shop/backups`, body: backupBody("probe", "shop") },
    { what: "patch a Backup outside Velero's namespace", method: "PATCH", path: `${v}/shop/backups/elsewhere`, body: label },
    { what: "delete a Backup outside Velero's namespace", method: "DELETE", path: `${v}/shop/backups/elsewhere` },
    { what: "create a Backup in Velero's namespace", method: "POST", path: `${v}/${VELERO}/backups`, body: backupBody("probe", VELERO) },
    { what: "replace (PUT) a Backup in Velero's namespace", method: "PUT", path: `${v}/${VELERO}/backups/cart-1`, body: backupBody("cart-1", VELERO) },
    { what: "delete a Backup in Velero's namespace", method: "DELETE", path: `${v}/${VELERO}/backups/cart-1` },
    { what: "delete every Backup in Velero's namespace", method: "DELETE", path: `${v}/${VELERO}/backups` },
    { what: "create a DeleteBackupRequest", method: "POST", path: `${v}/${VELERO}/deletebackuprequests`, body: velero("DeleteBackupRequest", "probe") },
    { what: "create a Restore", method: "POST", path: `${v}/${VELERO}/restores`, body: velero("Restore", "probe") },
    { what: "create a Schedule", method: "POST", path: `${v}/${VELERO}/schedules`, body: velero("Schedule", "probe") },
    { what: "create a BackupStorageLocation", method: "POST", path: `${v}/${VELERO}/backupstoragelocations`, body: velero("BackupStorageLocation", "probe") },
    { what: "list Secrets in every namespace", method: "GET", path: `${core}/secrets` },
    { what: "list Secrets in Velero's namespace", method: "GET", path: `${core}/namespaces/${VELERO}/secrets` },
    { what: "get Velero's credentials Secret", method: "GET", path: `${core}/namespaces/${VELERO}/secrets/cloud-credentials` },
    { what: "list Secrets in its own namespace", method: "GET", path: `${core}/namespaces/${GATE_NS}/secrets` },
    { what: "get another Secret in its own namespace (only the promotion key)", method: "GET", path: `${core}/namespaces/${GATE_NS}/secrets/other` },
    { what: "patch its promotion key", method: "PATCH", path: `${core}/namespaces/${GATE_NS}/secrets/backup-gate-promotion-key`, body: label },
    { what: "delete its promotion key", method: "DELETE", path: `${core}/namespaces/${GATE_NS}/secrets/backup-gate-promotion-key` },
    {
      what: "create a Secret in Velero's namespace",
      method: "POST",
      path: `${core}/namespaces/${VELERO}/secrets`,
      body: { metadata: { name: "probe" }, stringData: { k: "v" } },
    },
    { what: "patch another ValidatingWebhookConfiguration", method: "PATCH", path: `${adm}/validatingwebhookconfigurations/someone-else`, body: label },
    { what: "delete its own ValidatingWebhookConfiguration", method: "DELETE", path: `${adm}/validatingwebhookconfigurations/backup-gate` },
    { what: "create a ValidatingWebhookConfiguration", method: "POST", path: `${adm}/validatingwebhookconfigurations`, body: otherWebhook("probe") },
    {
      what: "create a MutatingWebhookConfiguration",
      method: "POST",
      path: `${adm}/mutatingwebhookconfigurations`,
      body: { ...otherWebhook("probe"), kind: "MutatingWebhookConfiguration" },
    },
    { what: "patch a Pod", method: "PATCH", path: `${core}/namespaces/shop/pods/cart-0`, body: label },
    { what: "patch a PersistentVolumeClaim", method: "PATCH", path: `${core}/namespaces/shop/persistentvolumeclaims/data-cart-0`, body: label },
    { what: "patch a PersistentVolume", method: "PATCH", path: `${core}/persistentvolumes/pv-shop-cart`, body: label },
    {
      what: "create a Pod in Velero's namespace",
      method: "POST",
      path: `${core}/namespaces/${VELERO}/pods`,
      body: { metadata: { name: "probe" }, spec: { containers: [{ name: "c", image: "x" }] } },
    },
    { what: "get another Lease in its namespace", method: "GET", path: `${leases}/${GATE_NS}/leases/other-controller` },
    {
      what: "update another Lease in its namespace",
      method: "PUT",
      path: `${leases}/${GATE_NS}/leases/other-controller`,
      body: { metadata: { name: "other-controller" }, spec: { holderIdentity: "gate" } },
    },
    { what: "delete its own Lease", method: "DELETE", path: `${leases}/${GATE_NS}/leases/backup-gate` },
    { what: "create a Lease in kube-system", method: "POST", path: `${leases}/kube-system/leases`, body: { metadata: { name: "probe" }, spec: {} } },
    { what: "list every ConfigMap in its own namespace (not just the policy)", method: "GET", path: `${core}/namespaces/${GATE_NS}/configmaps` },
    { what: "get its policy ConfigMap by name (it lists and watches it only)", method: "GET", path: `${core}/namespaces/${GATE_NS}/configmaps/${POLICY_CM}` },
    {
      what: "patch its policy ConfigMap",
      method: "PATCH",
      path: `${core}/namespaces/${GATE_NS}/configmaps/${POLICY_CM}`,
      body: { data: { "policy.yaml": "maxConcurrentBackups: 100\n" } },
    },
    {
      what: "create a ConfigMap in Velero's namespace",
      method: "POST",
      path: `${core}/namespaces/${VELERO}/configmaps`,
      body: { metadata: { name: "probe" } },
    },
    { what: "patch a Namespace", method: "PATCH", path: `${core}/namespaces/${VELERO}`, body: label },
    {
      what: "create an Event in a namespace it does not work in",
      method: "POST",
      path: `${core}/namespaces/kube-system/events`,
      body: { metadata: { name: "probe" }, involvedObject: { kind: "Pod", name: "x" } },
    },
    {
      what: "create a ClusterRoleBinding",
      method: "POST",
      path: `${rbac}/clusterrolebindings`,
      body: {
        metadata: { name: "probe" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" },
        subjects: [{ kind: "ServiceAccount", name: "backup-gate", namespace: GATE_NS }],
      },
    },
    {
      what: "widen its own ClusterRole",
      method: "PATCH",
      path: `${rbac}/clusterroles/backup-gate`,
      body: { rules: [{ apiGroups: ["*"], resources: ["*"], verbs: ["*"] }] },
    },
    {
      what: "create a RoleBinding in Velero's namespace",
      method: "POST",
      path: `${rbac}/namespaces/${VELERO}/rolebindings`,
      body: {
        metadata: { name: "probe" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "admin" },
        subjects: [{ kind: "ServiceAccount", name: "backup-gate", namespace: GATE_NS }],
      },
    },
    { what: "mint a token for itself", method: "POST", path: `${core}/namespaces/${GATE_NS}/serviceaccounts/backup-gate/token`, body: { spec: {} } },
  ];
}

function nonResource(e: AuditEvent): ApiCall {
  return { verb: e.verb, apiGroup: "", resource: `(non-resource ${e.requestURI})`, code: e.responseStatus?.code ?? 0, uri: e.requestURI };
}

const show = (k: ApiCall) => `${k.verb} ${k.uri} -> ${k.code}`;

/**
 * (verb, resource, namespace) with the count of calls and the response codes seen; the object's
 * name is shown where a grant names it (resourceNames).
 */
function callTable(calls: readonly ApiCall[], grants: readonly Grant[]): string {
  const rows = new Map<string, { cols: string[]; count: number; codes: Set<number> }>();
  for (const k of calls) {
    const named = grants.some((g) => g.rule.resourceNames?.length && grantAllows(g, k));
    const cols = [k.verb, `${k.resource}${k.apiGroup ? `.${k.apiGroup}` : ""}${named ? ` (${k.name})` : ""}`, k.namespace ?? "(cluster)"];
    const key = cols.join("\u0000");
    const row = rows.get(key) ?? { cols, count: 0, codes: new Set<number>() };
    row.count++;
    row.codes.add(k.code);
    rows.set(key, row);
  }
  const table = [
    ["verb", "resource", "namespace", "count", "codes"],
    ...[...rows.values()]
      .sort((a, b) => a.cols[1]!.localeCompare(b.cols[1]!) || a.cols[2]!.localeCompare(b.cols[2]!) || a.cols[0]!.localeCompare(b.cols[0]!))
      .map((r) => [...r.cols, String(r.count), [...r.codes].sort().join(",")]),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  return table
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}
