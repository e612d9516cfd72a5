/**
 * The demo's sample estate and its burst of backups.
 *
 *   shop       two stateful apps sharing a namespace: cart and orders (pod + PVC + PV each),
 *              a Deployment and ConfigMaps
 *   db         a stateful app: postgres (pod + PVC + PV)
 *   analytics  a stateful app: clickhouse (pod + PVC + PV)
 *   web        stateless: two pods without volumes, a Deployment, a ConfigMap
 */
import { AppsV1Api } from "@kubernetes/client-node";
import type { BackupOptions, Clients } from "../../test/support/objects.js";
import { createNamespace, createPod, createWorkload, isApiError } from "../../test/support/objects.js";

export const ESTATE_NAMESPACES = ["shop", "db", "analytics", "web"] as const;

async function ignoreExists(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (!isApiError(e, 409)) throw e;
  }
}

export async function createEstate(c: Clients): Promise<void> {
  for (const ns of ESTATE_NAMESPACES) await ignoreExists(createNamespace(c, ns, { "demo.backup-gate.io/estate": "true" }));
  await createWorkload(c, "shop", "cart");
  await createWorkload(c, "shop", "orders");
  await createWorkload(c, "db", "postgres");
  await createWorkload(c, "analytics", "clickhouse");
  await createPod(c, "web", "nginx-a", { labels: { app: "nginx" } });
  await createPod(c, "web", "nginx-b", { labels: { app: "nginx" } });
  const apps = c.kc.makeApiClient(AppsV1Api);
  for (const [ns, app] of [["shop", "storefront"], ["web", "nginx"]] as const) {
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: {
        metadata: { name: app, labels: { app } },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app } },
          template: { metadata: { labels: { app } }, spec: { containers: [{ name: "main", image: "registry.invalid/never-pulled:1" }] } },
        },
      },
    });
  }
  for (const ns of ESTATE_NAMESPACES) {
    await c.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: `${ns}-settings` }, data: { "settings.yaml": `namespace: ${ns}\n` } } });
  }
}

export interface DemoBackup {
  readonly name: string;
  readonly description: string;
  readonly options: BackupOptions;
  /** Expected to be refused by the validating webhook. */
  readonly expectRejection?: boolean;
}

const app = (ns: string, label: string): BackupOptions => ({ includedNamespaces: [ns], spec: { labelSelector: { matchLabels: { app: label } } } });
const manifests = (namespaces: string[]): BackupOptions => ({
  includedNamespaces: namespaces,
  spec: { includedResources: ["configmaps", "deployments.apps"] },
});

/** The burst, in creation order. `stamp` names the Schedule runs as Velero does (yyyyMMddHHmmss). */
export function demoBackups(stamp: string, nextStamp: string): DemoBackup[] {
  const nightly: BackupOptions = { includedNamespaces: ["db"], labels: { "velero.io/schedule-name": "nightly-db" } };
  return [
    { name: "cart-1", description: "per-app", options: app("shop", "cart") },
    { name: "orders-1", description: "per-app", options: app("shop", "orders") },
    { name: "postgres-1", description: "namespace", options: { includedNamespaces: ["db"] } },
    { name: "web-1", description: "stateless ns", options: { includedNamespaces: ["web"] } },
    { name: "all-namespaces", description: "all namespaces", options: {} },
    { name: "cart-2", description: "per-app", options: app("shop", "cart") },
    { name: "shop-manifests", description: "manifest-only", options: manifests(["shop"]) },
    { name: "config-all", description: "manifest-only", options: manifests(["*"]) },
    { name: `nightly-db-${stamp}`, description: "scheduled run", options: nightly },
    { name: `nightly-db-${nextStamp}`, description: "scheduled run", options: nightly, expectRejection: true },
    { name: "clickhouse-1", description: "namespace", options: { includedNamespaces: ["analytics"] } },
    { name: "orders-2", description: "per-app", options: app("shop", "orders") },
    { name: "postgres-urgent", description: "priority 50", options: { includedNamespaces: ["db"], labels: { "backup-gate.io/priority": "50" } } },
  ];
}

/**
 * The gate's policy for the demo (ConfigMap backup-gate/backup-gate-policy, key policy.yaml).
 * Positions are corrected in full on each promotion (the default pays for one correction per
 * promotion, so a position can lag for a while): in a burst this small, the live view then
 * shows the exact queue.
 */
export function demoPolicy(slots: number): string {
  return `conflictLevel: ItemBlock\nmaxConcurrentBackups: ${slots}\nserialWorkloads: Forbid\npositionUpdates: {writesPerDequeue: 100}\n`;
}
