/**
 * The webhooks on the real kube-apiserver: the gate's server runs in this process on
 * 127.0.0.1 with its self-managed CA; the two webhook configurations point at it by URL and
 * their caBundle is written by the CaBundlePatcher. The API server calls the webhooks over
 * real TLS; the cache is the informer-fed ClusterCache of src/cluster.
 */
import { AdmissionregistrationV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WEBHOOK_NAMES } from "../../src/admission/manifests.js";
import type { WebhookServer } from "../../src/admission/server.js";
import type { ClusterCacheImpl } from "../../src/cluster/cache.js";
import { policySchema } from "../../src/core/policy.js";
import type { Metrics } from "../../src/metrics/metrics.js";
import { createLogger } from "../../src/logging/logger.js";
import { CaBundlePatcher } from "../../src/tls/caBundle.js";
import { SelfManagedTls } from "../../src/tls/selfManaged.js";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import { createWithWarnings, warningText, type CreateAnswer } from "../support/createWithWarnings.js";
import { backupBody } from "../support/builders.js";
import {
  clients,
  createBackup,
  createNamespace,
  createWorkload,
  getBackup,
  isApiError,
  uniqueName,
  updateVelero,
  VELERO_GROUP,
  VELERO_VERSION,
  type Clients,
  type VeleroObject,
} from "../support/objects.js";
import { waitFor } from "../support/wait.js";
import { startWebhookGate, type WebhookGate } from "../support/webhookGate.js";

const log = createLogger(process.env.LOG_LEVEL ?? "silent");

const objectOf = (r: CreateAnswer) => JSON.parse(r.body) as VeleroObject;

async function apiError(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await p;
  } catch (e) {
    if (isApiError(e)) {
      const body = typeof e.body === "string" ? (JSON.parse(e.body) as { message?: string }) : (e.body as { message?: string });
      return { code: e.code, message: body?.message ?? String(e.body) };
    }
    throw e;
  }
  throw new Error("expected the API server to refuse the request");
}

async function counter(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  const values = (metric?.values ?? []) as { value: number; labels: Record<string, string | number> }[];
  return values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((s, v) => s + v.value, 0);
}

describe("admission webhooks on the real API server", () => {
  let cp: ControlPlane;
  let c: Clients;
  let cache: ClusterCacheImpl;
  let tls: SelfManagedTls;
  let server: WebhookServer;
  let patcher: CaBundlePatcher;
  let metrics: Metrics;
  let admission: AdmissionregistrationV1Api;
  let gate: WebhookGate;
  const velero = uniqueName("velero");
  const shop = uniqueName("shop");
  const web = uniqueName("web");
  const configName = uniqueName("backup-gate");
  let pvc = "";

  beforeAll(async () => {
    cp = await startControlPlane({ name: "webhooks" });
    c = clients(cp.kubeConfig);
    admission = cp.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    await createNamespace(c, velero);
    await createNamespace(c, shop);
    await createNamespace(c, web);
    pvc = (await createWorkload(c, shop, "db")).pvc;

    tls = new SelfManagedTls({ extraSans: ["127.0.0.1"] });
    await tls.start();
    gate = await startWebhookGate(cp, {
      policy: policySchema.parse({ veleroNamespace: velero, priorities: { agingSeconds: 0 } }),
      tls,
      configName,
      log,
      rebuildIntervalMs: 100,
      afterSync: (seen) => waitFor("the cache to see the workload's pod", () => seen.view.contents(shop).pods.size === 1, { timeoutMs: 30_000 }),
    });
    ({ cache, server, patcher, metrics } = gate);

    // The API server picks new webhook configurations up asynchronously: wait until a
    // dry-run create comes back annotated by the mutating webhook.
    await waitFor(
      "the mutating webhook to be called",
      async () => {
        const o = (await c.custom.createNamespacedCustomObject({
          group: VELERO_GROUP,
          version: VELERO_VERSION,
          namespace: velero,
          plural: "backups",
          dryRun: "All",
          body: backupBody(uniqueName("probe"), velero, { includedNamespaces: [web] }),
        })) as VeleroObject;
        return o.metadata.annotations?.["backup-gate.io/conflict-level"] === "ItemBlock";
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
  });

  afterAll(async () => {
    await gate?.stop();
    await tls?.stop();
    await cp?.stop();
  });

  it("the patcher wrote the CA into every webhook of both configurations", async () => {
    const want = Buffer.from(tls.current().ca).toString("base64");
    const m = await admission.readMutatingWebhookConfiguration({ name: configName });
    const v = await admission.readValidatingWebhookConfiguration({ name: configName });
    expect(m.webhooks?.map((w) => [w.name, w.clientConfig.caBundle, w.failurePolicy])).toEqual([[WEBHOOK_NAMES.mutate, want, "Ignore"]]);
    expect(v.webhooks?.map((w) => [w.name, w.clientConfig.caBundle, w.failurePolicy])).toEqual([
      [WEBHOOK_NAMES.validateCreate, want, "Ignore"],
      [WEBHOOK_NAMES.validateCreateInFlight, want, "Fail"],
      [WEBHOOK_NAMES.validatePromotion, want, "Fail"],
      [WEBHOOK_NAMES.validateRestore, want, "Ignore"],
    ]);
  });

  it("a second run of a Schedule while the first is in flight is rejected, naming the first", async () => {
    const sched = { "velero.io/schedule-name": "nightly" };
    await createBackup(c, velero, "nightly-1", { includedNamespaces: [shop], labels: sched, spec: { snapshotVolumes: true }, status: { phase: "InProgress" } });
    await waitFor("the cache to see nightly-1 InProgress", () => cache.backup("nightly-1")?.phase === "InProgress", { timeoutMs: 20_000, intervalMs: 50 });
    const e = await apiError(createBackup(c, velero, "nightly-2", { includedNamespaces: [shop], labels: sched, spec: { snapshotVolumes: true } }));
    expect(e.code).toBe(403);
    expect(e.message).toBe(
      `admission webhook "${WEBHOOK_NAMES.validateCreate}" denied the request: ` +
        "schedule nightly already has run nightly-1 InProgress; serialWorkloads is Forbid, so nightly-2 is refused (Velero's schedule controller tries again at its next check)",
    );
    await expect(getBackup(c, velero, "nightly-2")).rejects.toSatisfy((x) => isApiError(x, 404));
  });

  it("a conflicting backup is admitted with a warning and annotated with why it waits", async () => {
    const r = await createWithWarnings(cp, velero, "backups", backupBody("manual-1", velero, { includedNamespaces: [shop], spec: { snapshotVolumes: true } }));
    expect(r.status).toBe(201);
    expect(r.warnings.map(warningText)).toEqual([`backup manual-1 will wait behind nightly-1: both snapshot PVC ${shop}/${pvc}`]);
    expect(objectOf(r).metadata.annotations).toEqual({
      "backup-gate.io/conflict-level": "ItemBlock",
      "backup-gate.io/conflict-level-source": "gate",
      "backup-gate.io/reason": `waits behind nightly-1 (InProgress): both snapshot PVC ${shop}/${pvc}`,
      "backup-gate.io/waiting-for": "nightly-1",
    });
    // A backup that conflicts with nothing is admitted without a warning.
    const free = await createWithWarnings(cp, velero, "backups", backupBody("web-1", velero, { includedNamespaces: [web] }));
    expect(free.status).toBe(201);
    expect(free.warnings).toEqual([]);
    expect(objectOf(free).metadata.annotations?.["backup-gate.io/waiting-for"]).toBe("");
  });

  it("a move into ReadyToStart that breaks the invariant is refused; one that keeps it is allowed", async () => {
    await waitFor("the cache to see manual-1 and web-1", () => cache.backup("manual-1") && cache.backup("web-1"), { timeoutMs: 20_000, intervalMs: 50 });
    const promote = (o: VeleroObject) => {
      o.metadata.annotations = { ...o.metadata.annotations, "backup-gate.io/promoted-by": "test" };
      o.status = { ...o.status, phase: "ReadyToStart" };
    };
    const e = await apiError(updateVelero(c, "backups", velero, "manual-1", promote, 1));
    expect(e.code).toBe(403);
    expect(e.message).toBe(
      `admission webhook "${WEBHOOK_NAMES.validatePromotion}" denied the request: ` +
        `backup manual-1 may not become ReadyToStart: it conflicts with nightly-1 (InProgress): both snapshot PVC ${shop}/${pvc}`,
    );
    expect((await getBackup(c, velero, "manual-1")).status?.phase).toBeUndefined();

    const ok = await updateVelero(c, "backups", velero, "web-1", promote);
    expect(ok.status?.phase).toBe("ReadyToStart");
  });

  it("a foreign promotion (no promoted-by mark) that breaks the invariant is refused and counted", async () => {
    const before = await counter(metrics, "backup_gate_foreign_promotions_total");
    const e = await apiError(
      updateVelero(
        c,
        "backups",
        velero,
        "manual-1",
        (o) => {
          o.status = { phase: "ReadyToStart" };
        },
        1,
      ),
    );
    expect(e.code).toBe(403);
    expect(e.message).toMatch(/may not become ReadyToStart: it conflicts with nightly-1/);
    expect(await counter(metrics, "backup_gate_foreign_promotions_total")).toBe(before + 1);
  });

  it("Velero's own status writes never reach the webhook (matchConditions)", async () => {
    const before = await counter(metrics, "backup_gate_admission_requests_total", { webhook: "validate", operation: "UPDATE" });
    await updateVelero(c, "backups", velero, "nightly-1", (o) => {
      o.status = { ...o.status, phase: "Completed" };
    });
    await updateVelero(c, "backups", velero, "manual-1", (o) => {
      o.status = { phase: "Queued", queuePosition: 1 };
    });
    expect(await counter(metrics, "backup_gate_admission_requests_total", { webhook: "validate", operation: "UPDATE" })).toBe(before);
  });

  it("a CA rotation is written into the configurations and the API server keeps calling", async () => {
    await waitFor("the cache to see nightly-1 Completed", () => cache.backup("nightly-1")?.phase === "Completed", { timeoutMs: 20_000, intervalMs: 50 });
    const writes = patcher.writes;
    const rotated = await tls.rotate(true);
    await waitFor("the patcher to write the new bundle", () => patcher.writes >= writes + 2, { timeoutMs: 30_000 });
    const m = await admission.readMutatingWebhookConfiguration({ name: configName });
    const bundle = Buffer.from(m.webhooks?.[0]?.clientConfig.caBundle ?? "", "base64").toString("utf8");
    expect(bundle.startsWith(rotated.ca)).toBe(true);
    // The API server reloads the bundle asynchronously; then it calls the webhook with the new certificate.
    await waitFor(
      "an annotated create after the rotation",
      async () => {
        const r = await createWithWarnings(cp, velero, "backups", backupBody(uniqueName("after-rotation"), velero, { includedNamespaces: [web] }));
        return r.status === 201 && objectOf(r).metadata.annotations?.["backup-gate.io/conflict-level"] === "ItemBlock";
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
  });

  it("failurePolicy while the gate is down: creates go through (Ignore), promotions are refused (Fail)", async () => {
    await waitFor("the cache to see manual-1 Queued", () => cache.backup("manual-1")?.phase === "Queued", { timeoutMs: 20_000, intervalMs: 50 });
    await server.close();
    const created = await createBackup(c, velero, "while-down", { includedNamespaces: [web] });
    expect(created.metadata.annotations?.["backup-gate.io/conflict-level"]).toBeUndefined();
    const e = await apiError(
      updateVelero(
        c,
        "backups",
        velero,
        "while-down",
        (o) => {
          o.metadata.annotations = { "backup-gate.io/promoted-by": "test" };
          o.status = { phase: "ReadyToStart" };
        },
        1,
      ),
    );
    expect(e.code).toBe(500);
    expect(e.message).toMatch(new RegExp(`failed calling webhook "${WEBHOOK_NAMES.validatePromotion.replace(/\./g, "\\.")}"`));
    // Velero's own writes still work.
    await updateVelero(c, "backups", velero, "while-down", (o) => {
      o.status = { phase: "Queued" };
    });
  });
});
