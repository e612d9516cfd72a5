/**
 * Velero Restores on the real kube-apiserver (docs/rules.md, "Restores"): the validating
 * webhook judges Restore CREATEs over real TLS (the gate's server in this process, its CA
 * patched into the configuration), and the informer-fed cache carries Restores into the plan,
 * where one that is writing holds a backup of its namespace until it is done.
 */
import { AdmissionregistrationV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WEBHOOK_NAMES } from "../../src/admission/manifests.js";
import type { ClusterCacheImpl } from "../../src/cluster/cache.js";
import { plan } from "../../src/core/decision/plan.js";
import { policySchema, type Policy } from "../../src/core/policy.js";
import { createLogger } from "../../src/logging/logger.js";
import { SelfManagedTls } from "../../src/tls/selfManaged.js";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import { createWithWarnings, warningText } from "../support/createWithWarnings.js";
import { restore } from "../support/builders.js";
import { StaticPolicySource } from "../support/fakes/policySource.js";
import {
  clients,
  createBackup,
  createNamespace,
  createWorkload,
  isApiError,
  uniqueName,
  updateVelero,
  VELERO_GROUP,
  VELERO_VERSION,
  type Clients,
  type VeleroObject,
} from "../support/objects.js";
import { waitFor } from "../support/wait.js";
import { runCli } from "../unit/support/cli.js";
import { startWebhookGate, type WebhookGate } from "../support/webhookGate.js";

const log = createLogger(process.env.LOG_LEVEL ?? "silent");

const messageOf = (body: string) => (JSON.parse(body) as { message?: string }).message ?? body;

describe("Velero Restores on the real API server", () => {
  let cp: ControlPlane;
  let c: Clients;
  let cache: ClusterCacheImpl;
  let tls: SelfManagedTls;
  let gate: WebhookGate;
  let policy: Policy;
  const source = new StaticPolicySource();
  const velero = uniqueName("velero");
  const shop = uniqueName("shop");
  const web = uniqueName("web");
  const configName = uniqueName("backup-gate");

  const getRestore = (name: string) =>
    c.custom.getNamespacedCustomObject({ group: VELERO_GROUP, version: VELERO_VERSION, namespace: velero, plural: "restores", name }) as Promise<VeleroObject>;

  beforeAll(async () => {
    cp = await startControlPlane({ name: "restores" });
    c = clients(cp.kubeConfig);
    await createNamespace(c, velero);
    await createNamespace(c, shop);
    await createNamespace(c, web);
    await createWorkload(c, shop, "db");
    policy = policySchema.parse({ veleroNamespace: velero, priorities: { agingSeconds: 0 } });
    source.set(policy);
    tls = new SelfManagedTls({ extraSans: ["127.0.0.1"] });
    await tls.start();
    gate = await startWebhookGate(cp, {
      policy,
      policySource: source,
      tls,
      configName,
      log,
      rebuildIntervalMs: 100,
      afterSync: (seen) => waitFor("the cache to see the workload's pod", () => seen.view.contents(shop).pods.size === 1, { timeoutMs: 30_000 }),
    });
    cache = gate.cache;
    // A backup in flight that snapshots shop's volume.
    await createBackup(c, velero, "nightly-1", { includedNamespaces: [shop], spec: { snapshotVolumes: true }, status: { phase: "InProgress" } });
    await waitFor("the cache to see nightly-1 InProgress", () => cache.backup("nightly-1")?.phase === "InProgress", { timeoutMs: 20_000, intervalMs: 50 });
    // The API server picks new webhook configurations up asynchronously: wait until a dry-run Restore comes back warned.
    await waitFor(
      "the restore webhook to be called",
      async () => {
        const r = await createWithWarnings(
          cp,
          velero,
          "restores",
          restore(uniqueName("probe"), { backupName: "old", includedNamespaces: [shop] }, { namespace: velero }),
        );
        if (r.status === 201) {
          await c.custom.deleteNamespacedCustomObject({
            group: VELERO_GROUP,
            version: VELERO_VERSION,
            namespace: velero,
            plural: "restores",
            name: (JSON.parse(r.body) as VeleroObject).metadata.name,
          });
        }
        return r.warnings.length > 0;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
  });

  afterAll(async () => {
    await gate?.stop();
    await tls?.stop();
    await cp?.stop();
  });

  it("the validating configuration holds the restore webhook (CREATE, Ignore), with the gate's CA", async () => {
    const v = await cp.kubeConfig.makeApiClient(AdmissionregistrationV1Api).readValidatingWebhookConfiguration({ name: configName });
    const w = v.webhooks?.find((x) => x.name === WEBHOOK_NAMES.validateRestore);
    expect(w?.failurePolicy).toBe("Ignore");
    expect(w?.rules).toEqual([{ apiGroups: ["velero.io"], apiVersions: ["v1"], resources: ["restores"], operations: ["CREATE"], scope: "Namespaced" }]);
    expect(w?.clientConfig.caBundle).toBe(Buffer.from(tls.current().ca).toString("base64"));
  });

  it("a Restore into a namespace a backup in flight snapshots is created with a warning naming the backup", async () => {
    const r = await createWithWarnings(cp, velero, "restores", restore("into-shop", { backupName: "old", includedNamespaces: [shop] }, { namespace: velero }));
    expect(r.status).toBe(201);
    expect(r.warnings.map(warningText)).toEqual([
      `restore ${velero}/into-shop writes into namespace ${shop}, which backup nightly-1 in flight is freezing or copying: the backup may capture a half-restored state`,
    ]);
    const other = await createWithWarnings(
      cp,
      velero,
      "restores",
      restore("into-web", { backupName: "old", includedNamespaces: [web] }, { namespace: velero }),
    );
    expect(other.status).toBe(201);
    expect(other.warnings).toEqual([]);
    // namespaceMapping: the target namespace is the one written.
    const mapped = await createWithWarnings(
      cp,
      velero,
      "restores",
      restore("web-as-shop", { backupName: "old", includedNamespaces: [web], namespaceMapping: { [web]: shop } }, { namespace: velero }),
    );
    expect(mapped.warnings.map(warningText)).toEqual([expect.stringContaining(`writes into namespace ${shop}, which backup nightly-1`)]);
  });

  it("restores.onConflict: Deny refuses it (403) naming the backup; once the backup is done the same Restore is created (positive control)", async () => {
    source.set(policySchema.parse({ ...policy, restores: { onConflict: "Deny" } }));
    try {
      const refused = await createWithWarnings(
        cp,
        velero,
        "restores",
        restore("denied", { backupName: "old", includedNamespaces: [shop] }, { namespace: velero }),
      );
      expect(refused.status).toBe(403);
      expect(messageOf(refused.body)).toBe(
        `admission webhook "${WEBHOOK_NAMES.validateRestore}" denied the request: ` +
          `restore ${velero}/denied writes into namespace ${shop}, which backup nightly-1 in flight is freezing or copying: the backup may capture a half-restored state; ` +
          "restores.onConflict is Deny, so restore denied is refused until the backup is done",
      );
      await expect(getRestore("denied")).rejects.toSatisfy((x) => isApiError(x, 404));

      await updateVelero(c, "backups", velero, "nightly-1", (o) => {
        o.status = { ...o.status, phase: "Completed" };
      });
      await waitFor("the cache to see nightly-1 Completed", () => cache.backup("nightly-1")?.phase === "Completed", { timeoutMs: 20_000, intervalMs: 50 });
      const admitted = await createWithWarnings(
        cp,
        velero,
        "restores",
        restore("denied", { backupName: "old", includedNamespaces: [shop] }, { namespace: velero }),
      );
      expect(admitted.status).toBe(201);
      expect(admitted.warnings).toEqual([]);
    } finally {
      source.set(policy);
    }
  });

  it("a malformed Restore spec is refused by the CRD's schema before the webhook is asked", async () => {
    const r = await createWithWarnings(cp, velero, "restores", restore("bad", { includedNamespaces: shop }, { namespace: velero }));
    expect(r.status).toBe(422);
    expect(messageOf(r.body)).toMatch(/spec\.includedNamespaces/);
  });

  it("a backup of a namespace a Restore is writing into waits in the plan, naming it, and starts once it completes", async () => {
    // The Restores the tests above created stay New (no Velero runs here); behind one InProgress
    // they would hold too (Velero's next restore), so they go first.
    await c.custom.deleteCollectionNamespacedCustomObject({ group: VELERO_GROUP, version: VELERO_VERSION, namespace: velero, plural: "restores" });
    await waitFor("the cache to see no Restore", () => [...cache.view.restores()].length === 0, { timeoutMs: 20_000, intervalMs: 50 });
    await c.custom.createNamespacedCustomObject({
      group: VELERO_GROUP,
      version: VELERO_VERSION,
      namespace: velero,
      plural: "restores",
      body: restore("dr-shop", { backupName: "old", includedNamespaces: [shop] }, { namespace: velero, phase: "InProgress" }),
    });
    await createBackup(c, velero, "after-restore", { includedNamespaces: [shop], spec: { snapshotVolumes: true } });
    await waitFor(
      "the cache to see the restore and the backup",
      () => cache.view.restore(velero, "dr-shop")?.phase === "InProgress" && cache.backup("after-restore"),
      {
        timeoutMs: 20_000,
        intervalMs: 50,
      },
    );
    const planNow = () => plan({ view: cache.view, backups: cache.backups() }, policy, Date.now());
    const held = planNow();
    expect(held.promotions.map((p) => p.backup)).toEqual([]);
    expect(held.queue.find((q) => q.backup === "after-restore")?.reason).toBe(`waits for restore ${velero}/dr-shop writing into namespace ${shop}`);
    expect(held.scopes.get("after-restore")?.claims.namespaces).toEqual([shop]);
    // The CLI reads the Restores from the cluster too, and says the same.
    await createNamespace(c, "backup-gate");
    await c.core.createNamespacedConfigMap({
      namespace: "backup-gate",
      body: { metadata: { name: "backup-gate-policy" }, data: { "policy.yaml": `veleroNamespace: ${velero}\npriorities: {agingSeconds: 0}\n` } },
    });
    const explained = await runCli("explain", "after-restore", "--kubeconfig", cp.kubeconfigPath);
    expect(explained.stdout).toMatch(
      new RegExp(`^after-restore is #1 in the queue, judged at ItemBlock level: waits for restore ${velero}/dr-shop writing into namespace ${shop}`),
    );

    await updateVelero(c, "restores", velero, "dr-shop", (o) => {
      o.status = { ...o.status, phase: "Completed" };
    });
    await waitFor("the cache to see the restore Completed", () => cache.view.restore(velero, "dr-shop")?.phase === "Completed", {
      timeoutMs: 20_000,
      intervalMs: 50,
    });
    expect(planNow().promotions.map((p) => p.backup)).toEqual(["after-restore"]);
  });

  it("another writer's Backup created straight into ReadyToStart into a namespace a Restore writes is refused, naming the restore; one of another namespace is created (control)", async () => {
    const extra = uniqueName("extra");
    await createNamespace(c, extra);
    await c.custom.createNamespacedCustomObject({
      group: VELERO_GROUP,
      version: VELERO_VERSION,
      namespace: velero,
      plural: "restores",
      body: restore("dr-web", { backupName: "old", includedNamespaces: [web] }, { namespace: velero, phase: "InProgress" }),
    });
    await waitFor("the cache to see dr-web InProgress", () => cache.view.restore(velero, "dr-web")?.phase === "InProgress", {
      timeoutMs: 20_000,
      intervalMs: 50,
    });

    const refused = await createBackup(c, velero, "sneaky-web", { includedNamespaces: [web], status: { phase: "ReadyToStart" } }).then(
      () => "created",
      (e: unknown) => e,
    );
    expect(isApiError(refused, 403)).toBe(true);
    expect(messageOf((refused as { body: string }).body)).toContain(
      `backup sneaky-web may not be created ReadyToStart: restore ${velero}/dr-web is writing into namespace ${web}, which it would hold`,
    );
    // Control: the same move into a namespace no restore writes passes the guard.
    await createBackup(c, velero, "plain-extra", { includedNamespaces: [extra], status: { phase: "ReadyToStart" } });
    await updateVelero(c, "restores", velero, "dr-web", (o) => {
      o.status = { ...o.status, phase: "Completed" };
    });
  });
});
