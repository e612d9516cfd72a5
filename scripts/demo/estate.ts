/**
 * The demo's sample estate and its burst of backups, on the real node (test/support/node.ts):
 * every pod runs.
 *
 *   shop       two stateful apps sharing a namespace: cart and orders, a Deployment and ConfigMaps
 *   db         a stateful app: postgres
 *   analytics  a stateful app: clickhouse
 *   web        stateless: two pods without volumes, a Deployment, a ConfigMap
 *
 * A stateful app is a busybox pod (test/support/nodeFreeze.ts) with random data on a volume
 * that Velero copies by file system (node-agent, kopia), and Velero pre/post-backup hooks that
 * take and release a freeze of that volume, recorded under the node's records directory: two
 * backups freezing one pod at once would show there (and fail the later hook).
 */
import { AppsV1Api, type V1PodSpec } from "@kubernetes/client-node";
import { join } from "node:path";
import type { BackupOptions, Clients } from "../../test/support/objects.js";
import { createNamespace, isApiError } from "../../test/support/objects.js";
import { freezePod } from "../../test/support/nodeFreeze.js";
import { waitFor } from "../../test/support/wait.js";

export const ESTATE_NAMESPACES = ["shop", "db", "analytics", "web"] as const;

/** The stateful apps: namespace and pod (label app=<pod>). */
export const STATEFUL_APPS = [
  ["shop", "cart"],
  ["shop", "orders"],
  ["db", "postgres"],
  ["analytics", "clickhouse"],
] as const;

export interface EstateOptions {
  /** The node's busybox image. */
  image: string;
  /** Host directory for the hook records (one subdirectory per namespace and pod). */
  recordsDir: string;
  /** MiB of random data on each stateful app's volume. */
  dataMiB: number;
  /** Seconds each freeze hook holds before the copy starts (a flush). */
  holdSeconds: number;
}

async function ignoreExists(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (!isApiError(e, 409)) throw e;
  }
}

/** A stateless busybox container that exits at once on SIGTERM. */
const idle = (image: string): V1PodSpec => ({
  terminationGracePeriodSeconds: 1,
  containers: [{ name: "main", image, imagePullPolicy: "Never", command: ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"] }],
});

export function recordsDirOf(o: Pick<EstateOptions, "recordsDir">, namespace: string, pod: string): string {
  return join(o.recordsDir, namespace, pod);
}

/** Creates the estate and waits until every pod is Running and ready. */
export async function createEstate(c: Clients, o: EstateOptions): Promise<void> {
  for (const ns of ESTATE_NAMESPACES) await ignoreExists(createNamespace(c, ns, { "demo.backup-gate.io/estate": "true" }));
  for (const [ns, app] of STATEFUL_APPS) {
    await c.core.createNamespacedPod({
      namespace: ns,
      body: freezePod(app, { image: o.image, recordsDir: recordsDirOf(o, ns, app), dataMiB: o.dataMiB, holdSeconds: o.holdSeconds }),
    });
  }
  for (const name of ["nginx-a", "nginx-b"]) {
    await c.core.createNamespacedPod({ namespace: "web", body: { metadata: { name, labels: { app: "nginx" } }, spec: idle(o.image) } });
  }
  const apps = c.kc.makeApiClient(AppsV1Api);
  for (const [ns, app] of [
    ["shop", "storefront"],
    ["web", "nginx"],
  ] as const) {
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: {
        metadata: { name: app, labels: { app } },
        spec: { replicas: 2, selector: { matchLabels: { app } }, template: { metadata: { labels: { app } }, spec: idle(o.image) } },
      },
    });
  }
  for (const ns of ESTATE_NAMESPACES) {
    await c.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: `${ns}-settings` }, data: { "settings.yaml": `namespace: ${ns}\n` } } });
  }
  await waitFor(
    "every pod of the estate to be Running and ready",
    async () => {
      for (const ns of ESTATE_NAMESPACES) {
        const pods = (await c.core.listNamespacedPod({ namespace: ns })).items;
        if (!pods.length || pods.some((p) => p.status?.phase !== "Running" || !p.status.containerStatuses?.every((s) => s.ready))) return false;
      }
      return true;
    },
    { timeoutMs: 180_000, intervalMs: 1_000 },
  );
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
