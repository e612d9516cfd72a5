/**
 * backup-gate serve, end to end on the real kube-apiserver: the API server calls its webhooks
 * over real TLS, the queue controller promotes through updates, and the test plays Velero's
 * part by moving phases (ReadyToStart -> InProgress -> Completed).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { AdmissionregistrationV1Api, CoordinationV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import { backupsIn, startGate, type GateProcess } from "../support/gate.js";
import { backupBody } from "../support/builders.js";
import {
  clients,
  createNamespace,
  createPod,
  createWorkload,
  getBackup,
  isApiError,
  updateVelero,
  type Clients,
  type VeleroObject,
} from "../support/objects.js";
import { expectStays, waitFor } from "../support/wait.js";
import { startWatch, type StartedWatch } from "../support/watch.js";
import { readLive } from "../../src/cli/live.js";
import { plan } from "../../src/core/decision/plan.js";

const VELERO = "velero";
const GATE_NS = "backup-gate";
const run = promisify(execFile);
const cli = async (...args: string[]) => (await run(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args])).stdout;
const fixture = (name: string, o: Parameters<typeof backupBody>[2]) => {
  const path = join(mkdtempSync(join(tmpdir(), "bg-explain-")), `${name}.json`);
  writeFileSync(path, JSON.stringify(backupBody(name, VELERO, o)));
  return path;
};
const BASE_POLICY = "conflictLevel: ItemBlock\nmaxConcurrentBackups: 4\npriorities: {agingSeconds: 0}\nserialWorkloads: Forbid\n";

describe("backup-gate serve on a real API server", () => {
  let cp: ControlPlane;
  let c: Clients;
  let leader: GateProcess;
  let standby: GateProcess;
  let watch: StartedWatch;
  const events: { type: string; name: string; phase?: string }[] = [];

  const { create, phaseOf, waitPhase, setPhase } = backupsIn(
    () => cp,
    () => c,
    VELERO,
  );
  const app = (appLabel: string) => ({ includedNamespaces: ["shop"], spec: { labelSelector: { matchLabels: { app: appLabel } } } });
  const setPolicy = (text: string) =>
    c.core.replaceNamespacedConfigMap({
      name: "backup-gate-policy",
      namespace: GATE_NS,
      body: { metadata: { name: "backup-gate-policy", namespace: GATE_NS }, data: { "policy.yaml": text } },
    });

  beforeAll(async () => {
    cp = await startControlPlane({ name: "gate" });
    c = clients(cp.kubeConfig);
    for (const ns of [VELERO, GATE_NS, "shop", "web"]) await createNamespace(c, ns);
    await c.core.createNamespacedConfigMap({ namespace: GATE_NS, body: { metadata: { name: "backup-gate-policy" }, data: { "policy.yaml": BASE_POLICY } } });
    await createWorkload(c, "shop", "cart");
    await createWorkload(c, "shop", "orders");
    await createPod(c, "web", "nginx", { labels: { app: "web" } });
    leader = await startGate(cp, { identity: "gate-a", register: true });
    standby = await startGate(cp, { identity: "gate-b" });
    watch = await startWatch(cp.kubeConfig, `/apis/velero.io/v1/namespaces/${VELERO}/backups`, {}, (type, o: VeleroObject) =>
      events.push({ type, name: o.metadata.name, phase: o.status?.phase }),
    );
  }, 300_000);
  afterAll(async () => {
    watch?.abort();
    await standby?.stop();
    await leader?.stop();
    await cp?.stop();
  });

  it("answers health and readiness, and exports metrics", async () => {
    expect((await leader.get("/healthz")).status).toBe(200);
    const metrics = await leader.get("/metrics");
    expect(metrics.body).toMatch(/^backup_gate_view_synced 1$/m);
    expect(metrics.body).toMatch(/^backup_gate_leader 1$/m);
    expect((await standby.get("/metrics")).body).toMatch(/^backup_gate_leader 0$/m);
  });

  it("ItemBlock level: backups that share only a namespace run together, and each promotion is an update", async () => {
    const cart = await create("cart-1", app("cart"));
    const orders = await create("orders-1", app("orders"));
    expect(cart.status).toBe(201);
    expect(cart.warnings).toEqual([]);
    expect(cart.body.metadata.annotations["backup-gate.io/conflict-level"]).toBe("ItemBlock");
    expect(orders.status).toBe(201);
    await waitPhase("cart-1", "ReadyToStart");
    await waitPhase("orders-1", "ReadyToStart");
    for (const name of ["cart-1", "orders-1"]) {
      expect(events.find((e) => e.name === name && e.type === "ADDED")?.phase).toBeUndefined();
      expect(events.some((e) => e.name === name && e.type === "MODIFIED" && e.phase === "ReadyToStart")).toBe(true);
      expect((await getBackup(c, VELERO, name)).metadata.annotations["backup-gate.io/promoted-by"]).toBe("gate-a");
    }
    await setPhase("cart-1", "InProgress");
    await setPhase("orders-1", "InProgress");
  });

  it("a backup sharing a snapshotted PVC is admitted with a warning, annotated, and waits until the other finishes", async () => {
    const res = await create("cart-2", app("cart"));
    expect(res.status).toBe(201);
    expect(res.warnings).toEqual(["backup cart-2 will wait behind cart-1: both snapshot PVC shop/data-cart-0"]);
    expect(res.body.metadata.annotations).toMatchObject({ "backup-gate.io/waiting-for": "cart-1", "backup-gate.io/conflict-level": "ItemBlock" });
    await waitPhase("cart-2", "Queued");
    expect((await getBackup(c, VELERO, "cart-2")).status.queuePosition).toBe(1);
    await expectStays("cart-2 to stay Queued while cart-1 runs", async () => (await phaseOf("cart-2")) === "Queued", 3000);
    // The CLI, through the user's kubeconfig, tells the same story.
    const explain = await cli("explain", "cart-2", "--kubeconfig", cp.kubeconfigPath);
    expect(explain).toBe("cart-2 is #1 in the queue, judged at ItemBlock level: waits behind cart-1 (InProgress): both snapshot PVC shop/data-cart-0\n");
    const queue = await cli("queue", "--kubeconfig", cp.kubeconfigPath);
    expect(queue).toMatch(/^cart-2 +Queued +1 +\d+ +\d+s +cart-1 +waits behind cart-1/m);
    expect(queue).toMatch(/^cart-1 +InProgress .*in flight$/m);
    const ifCreated = await cli("explain", "-f", fixture("cart-9", app("cart")), "--kubeconfig", cp.kubeconfigPath);
    expect(ifCreated).toMatch(
      /^cart-9 would wait \(judged at ItemBlock level\): waits behind cart-1 \(InProgress\): both snapshot PVC shop\/data-cart-0; waits behind cart-2/,
    );
    await setPhase("cart-1", "Completed");
    await waitPhase("cart-2", "ReadyToStart");
    await setPhase("cart-2", "Completed");
    await setPhase("orders-1", "Completed");
  });

  it("the validating webhook refuses a promotion by another writer that would break the invariant", async () => {
    await create("cart-3", { ...app("cart"), status: { phase: "InProgress" } });
    await create("cart-4", app("cart"));
    await waitPhase("cart-4", "Queued");
    const err = await updateVelero(c, "backups", VELERO, "cart-4", (o) => {
      o.status = { ...o.status, phase: "ReadyToStart" };
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isApiError(err)).toBe(true);
    expect(String((err as { body?: unknown }).body)).toMatch(/cart-3/);
    await setPhase("cart-3", "Completed");
    await waitPhase("cart-4", "ReadyToStart");
    await setPhase("cart-4", "Completed");
  });

  it("Forbid: a run of a Schedule while its last run is in flight is rejected, naming that run", async () => {
    const sched = { includedNamespaces: ["web"], labels: { "velero.io/schedule-name": "nightly" } };
    expect((await create("nightly-1", sched)).status).toBe(201);
    await waitPhase("nightly-1", "ReadyToStart");
    const second = await create("nightly-2", sched);
    expect(second.status).toBe(403);
    expect(second.body.message).toMatch(/schedule nightly already has run nightly-1 ReadyToStart; serialWorkloads is Forbid/);
    await setPhase("nightly-1", "Completed");
  });

  it("queue positions match what `plan` computes for the same cluster", async () => {
    await create("web-long", { includedNamespaces: ["shop"], status: { phase: "InProgress" } });
    for (const name of ["q-a", "q-b", "q-c"]) await create(name, app("orders"));
    await waitFor("three backups Queued", async () => (await Promise.all(["q-a", "q-b", "q-c"].map(phaseOf))).every((p) => p === "Queued"));
    // What `backup-gate queue` reads: the live cluster and the policy ConfigMap, through the kubeconfig.
    const live = await readLive({ kubeconfig: cp.kubeconfigPath, gateNamespace: GATE_NS });
    const expected = plan(live.snapshot, live.policy, Date.now()).queue.map((q) => [q.backup, q.position]);
    const shown = await Promise.all(["q-a", "q-b", "q-c"].map(async (n) => [n, (await getBackup(c, VELERO, n)).status.queuePosition]));
    expect(shown).toEqual(expected);
    for (const name of ["web-long", "q-a", "q-b", "q-c"]) await setPhase(name, "Completed");
  });

  it("Namespace level, switched at run time, serializes backups that share a namespace", async () => {
    await setPolicy(BASE_POLICY.replace("ItemBlock", "Namespace"));
    const probes: string[] = [];
    await waitFor(
      "the policy to switch to Namespace level",
      async () => {
        const name = `probe-${probes.length}`;
        probes.push(name);
        const probe = await create(name, { includedNamespaces: ["web"], spec: { snapshotVolumes: false }, status: { phase: "Completed" } });
        return probe.body.metadata.annotations["backup-gate.io/conflict-level"] === "Namespace";
      },
      { timeoutMs: 20_000, intervalMs: 1000 },
    );
    await create("ns-cart", app("cart"));
    await waitPhase("ns-cart", "ReadyToStart");
    const second = await create("ns-orders", app("orders"));
    expect(second.warnings[0]).toMatch(/^backup ns-orders will wait behind ns-cart: both include namespace shop/);
    await waitPhase("ns-orders", "Queued");
    await setPhase("ns-cart", "Completed");
    await waitPhase("ns-orders", "ReadyToStart");
    await setPhase("ns-orders", "Completed");
    await setPolicy(BASE_POLICY);
  });

  it("a garbage policy edit keeps the last good policy and says so in a Warning Event", async () => {
    await setPolicy("maxConcurrentBackups: lots\n");
    const event = await waitFor(
      "an InvalidPolicy event on the policy ConfigMap",
      async () => (await c.core.listNamespacedEvent({ namespace: GATE_NS })).items.find((e) => e.reason === "InvalidPolicy"),
      { timeoutMs: 20_000 },
    );
    expect(event.type).toBe("Warning");
    expect(event.message).toMatch(/maxConcurrentBackups/);
    expect((await leader.get("/metrics")).body).toMatch(/^backup_gate_policy_valid 0$/m);
    await setPolicy(BASE_POLICY);
  });

  it("leader handover: the standby takes over within the lease time after the leader is killed, and never two promote at once", async () => {
    await leader.kill();
    // The Service would drop the dead endpoint; here the webhooks are pointed at the standby
    // (its CA joined the caBundle when it started).
    const admission = cp.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    const m = await admission.readMutatingWebhookConfiguration({ name: "backup-gate" });
    const v = await admission.readValidatingWebhookConfiguration({ name: "backup-gate" });
    for (const w of [...(m.webhooks ?? []), ...(v.webhooks ?? [])])
      w.clientConfig.url = w.clientConfig.url!.replace(/^https:\/\/127\.0\.0\.1:\d+/, standby.url);
    await admission.replaceMutatingWebhookConfiguration({ name: "backup-gate", body: m });
    await admission.replaceValidatingWebhookConfiguration({ name: "backup-gate", body: v });
    const killedAt = Date.now();
    await create("after-failover", { includedNamespaces: ["web"] });
    await waitPhase("after-failover", "ReadyToStart", 45_000);
    const took = Date.now() - killedAt;
    const b = await getBackup(c, VELERO, "after-failover");
    expect(b.metadata.annotations["backup-gate.io/promoted-by"]).toBe("gate-b");
    expect(took).toBeLessThan(45_000);
    const lease = await cp.kubeConfig.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: "backup-gate", namespace: GATE_NS });
    expect(lease.spec?.holderIdentity).toBe("gate-b");
    expect(lease.spec?.leaseTransitions).toBe(1);
  }, 90_000);
});
