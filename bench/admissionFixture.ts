// The admission benches' cluster: 1,000 namespaces with 50,000 pods (each with a bound PVC and
// PV; slimmed as the cluster cache slims them), 10,000 backups, and the reviews the load sends.
// bench/admission.bench.ts times them over HTTPS; bench/candidate.bench.ts times the decision
// alone.

import type { BackupInfo } from "../src/core/model.js";
import { ClusterView } from "../src/core/view.js";
import { Interner, slimNamespace, slimPod, slimPv, slimPvc } from "../src/cluster/slim.js";
import { benchBackup, boundPv, nsName } from "./benchObjects.js";

export const NAMESPACES = 1_000;
export const PODS_PER_NAMESPACE = 50; // 50,000 pods, one PVC (and PV) each
const APPS_PER_NAMESPACE = 10;
export const BACKUPS = 10_000;
export const IN_FLIGHT = 4;

// The view holds what `serve`'s cluster cache holds: each object slimmed as it arrives
// (src/cluster/slim.ts: interned strings, shared equal maps and volumes).
export function buildView(): ClusterView {
  const view = new ClusterView();
  const i = new Interner();
  const namespaceOf = (name: string) => slimNamespace({ name, labels: {}, annotations: {}, terminating: false }, i);
  view.setNamespace(namespaceOf("velero"));
  for (let n = 0; n < NAMESPACES; n++) {
    const namespace = nsName(n);
    view.setNamespace(namespaceOf(namespace));
    for (let k = 0; k < PODS_PER_NAMESPACE; k++) {
      const claim = `data-${k}`;
      const pv = `pv-${namespace}-${claim}`;
      const app = `app-${k % APPS_PER_NAMESPACE}`;
      view.setPvc(
        slimPvc({ namespace, name: claim, labels: { app }, annotations: {}, phase: "Bound", volumeName: pv, storageClassName: "standard", deleting: false }, i),
      );
      view.setPv(slimPv(boundPv(namespace, claim, pv), i));
      view.setPod(
        slimPod(
          {
            namespace,
            name: `${app}-${k}`,
            labels: { app },
            annotations: k % 5 === 0 ? { "pre.hook.backup.velero.io/command": '["/bin/sync"]' } : {},
            phase: "Running",
            nodeName: `node-${k % 50}`,
            deleting: false,
            volumes: [
              { name: "data", type: "persistentVolumeClaim", claimName: claim },
              { name: "tmp", type: "emptyDir" },
            ],
          },
          i,
        ),
      );
    }
  }
  return view;
}

export function buildBackups(): BackupInfo[] {
  const backups: BackupInfo[] = [];
  const add = (...a: Parameters<typeof benchBackup>) => backups.push(benchBackup(...a));
  for (let i = 0; i < 3; i++)
    add(`all-${i}`, { includedNamespaces: ["*"], snapshotVolumes: true }, 60 + i * 120, "Queued", { "velero.io/schedule-name": `dr-${i}` });
  for (let i = 0; backups.length < BACKUPS; i++) {
    const namespace = nsName(i % NAMESPACES);
    const phase = i < IN_FLIGHT ? "InProgress" : i % 10 < 7 ? "Completed" : i % 3 === 0 ? "Queued" : "New";
    if (i % 2 === 0)
      add(`ns-${i}`, { includedNamespaces: [namespace], snapshotVolumes: true }, i % 600, phase, { "velero.io/schedule-name": `ns-${namespace}` });
    else add(`app-${i}`, { includedNamespaces: [namespace], labelSelector: { matchLabels: { app: `app-${i % APPS_PER_NAMESPACE}` } } }, i % 600, phase);
  }
  return backups;
}

/** What each review's spec asks for, by `seq % 4`. */
export const REVIEW_KINDS = [
  "one namespace, snapshots",
  "one namespace, a label selector",
  "two namespaces, no snapshots",
  "one namespace, file-system backup",
] as const;

/** The mutating CREATE review number `seq`: a new backup name each time, so the candidate's scope is always computed. */
export function reviewBody(seq: number, prefix = `bench-${process.pid}`): string {
  const n = seq % NAMESPACES;
  const kind = seq % 4;
  const spec =
    kind === 0
      ? { includedNamespaces: [nsName(n)], snapshotVolumes: true }
      : kind === 1
        ? { includedNamespaces: [nsName(n)], labelSelector: { matchLabels: { app: `app-${seq % APPS_PER_NAMESPACE}` } } }
        : kind === 2
          ? { includedNamespaces: [nsName(n), nsName((n + 1) % NAMESPACES)], snapshotVolumes: false }
          : { includedNamespaces: [nsName(n)], defaultVolumesToFsBackup: true };
  const name = `${prefix}-${seq}`;
  return JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: `u-${seq}`,
      kind: { group: "velero.io", version: "v1", kind: "Backup" },
      resource: { group: "velero.io", version: "v1", resource: "backups" },
      name,
      namespace: "velero",
      operation: "CREATE",
      userInfo: { username: "bench" },
      object: { apiVersion: "velero.io/v1", kind: "Backup", metadata: { name, namespace: "velero" }, spec },
      oldObject: null,
      dryRun: false,
    },
  });
}
