import { rmSync } from "node:fs";
import { join } from "node:path";
import { trim } from "../../../src/core/velero/objects.js";
import type { BackupInfo } from "../../../src/core/model.js";
import type { ClusterView } from "../../../src/core/view.js";
import type { NodeVelero, TestNode } from "../node.js";
import { createBackup, getBackup, isApiError, TERMINAL_BACKUP_PHASES, updateVelero, type Clients, type VeleroObject } from "../objects.js";
import { readProbeRecords } from "../overlap.js";
import { waitForClaimsBound, waitForPodsReady } from "../podReadiness.js";
import { waitFor } from "../wait.js";
import { caseObjects, type FidelityCase, type Placement } from "./cases.js";
import { readHookRecords, readVeleroRecords, type VeleroRecords } from "./observe.js";
import { readClusterItems, viewOfItems } from "./run.js";

// Fidelity cases on the real node. A case lives in a slot: three namespaces `${slot}-a/-b/-c`
// made once and reused by case after case (Velero then sets up one kopia repository per
// namespace, not one per case). Between cases a slot is emptied: pods force-deleted, claims
// deleted and their provisioned PVs gone, hook records removed.

export interface Bench {
  readonly node: TestNode;
  readonly velero: NodeVelero;
  readonly c: Clients;
  readonly placement: Placement;
}

const slotNamespaces = (slot: string) => ["a", "b", "c"].map((x) => `${slot}-${x}`);
const policyMapName = (slot: string) => `${slot}-volume-policy`;

export async function makeSlot(b: Bench, slot: string): Promise<void> {
  for (const name of slotNamespaces(slot)) {
    try {
      await b.c.core.createNamespace({ body: { metadata: { name } } });
    } catch (e) {
      if (!isApiError(e, 409)) throw e;
    }
  }
}

/** Empties a slot: no pod, claim, PV of its claims, policy ConfigMap or hook record is left. */
export async function clearSlot(b: Bench, slot: string): Promise<void> {
  const namespaces = slotNamespaces(slot);
  await Promise.all(
    namespaces.map(async (namespace) => {
      const pods = await b.c.core.listNamespacedPod({ namespace });
      await Promise.all(pods.items.map((p) => b.c.core.deleteNamespacedPod({ namespace, name: p.metadata!.name!, gracePeriodSeconds: 0 }).catch(ignore404)));
      const pvcs = await b.c.core.listNamespacedPersistentVolumeClaim({ namespace });
      await Promise.all(pvcs.items.map((p) => b.c.core.deleteNamespacedPersistentVolumeClaim({ namespace, name: p.metadata!.name! }).catch(ignore404)));
    }),
  );
  await b.c.core.deleteNamespacedConfigMap({ namespace: b.velero.namespace, name: policyMapName(slot) }).catch(ignore404);
  await waitFor(
    `slot ${slot}: its pods, claims and their PVs to be gone`,
    async () => {
      for (const namespace of namespaces) {
        if ((await b.c.core.listNamespacedPod({ namespace })).items.length > 0) return false;
        if ((await b.c.core.listNamespacedPersistentVolumeClaim({ namespace })).items.length > 0) return false;
      }
      const pvs = await b.c.core.listPersistentVolume();
      return !pvs.items.some((pv) => namespaces.includes(pv.spec?.claimRef?.namespace ?? ""));
    },
    { timeoutMs: 120_000, intervalMs: 250 },
  );
  for (const namespace of namespaces) rmSync(join(b.node.recordsDir, namespace), { recursive: true, force: true });
}

function ignore404(e: unknown): void {
  if (!isApiError(e, 404)) throw e;
}

/** Creates a case's estate in its (empty) slot: namespace labels, policy ConfigMap, claims, pods. */
export async function applyInSlot(b: Bench, fc: FidelityCase): Promise<void> {
  const o = caseObjects(fc, b.placement);
  for (const ns of o.namespaces as { metadata: { name: string; labels: Record<string, string> } }[]) {
    const live = await b.c.core.readNamespace({ name: ns.metadata.name });
    live.metadata!.labels = { "kubernetes.io/metadata.name": ns.metadata.name, ...ns.metadata.labels };
    await b.c.core.replaceNamespace({ name: ns.metadata.name, body: live });
  }
  for (const cm of o.configMaps) await b.c.core.createNamespacedConfigMap({ namespace: b.velero.namespace, body: cm });
  const nsOf = (x: object) => (x as { metadata: { namespace: string } }).metadata.namespace;
  await Promise.all(o.pvcs.map((pvc) => b.c.core.createNamespacedPersistentVolumeClaim({ namespace: nsOf(pvc), body: pvc })));
  // Claims bind first (podReadiness.ts says why).
  await waitForClaimsBound(
    b.c,
    fc.namespaces.flatMap((ns) => ns.pvcs.filter((pvc) => pvc.bound).map((pvc) => ({ namespace: ns.name, name: pvc.name }))),
    "the case's claims meant to bind",
  );
  await Promise.all(o.pods.map((pod) => b.c.core.createNamespacedPod({ namespace: nsOf(pod), body: pod })));
}

/** Waits until every pod of the case runs (containers ready); its claims were Bound before the pods were made. */
export async function waitForEstate(b: Bench, fc: FidelityCase): Promise<void> {
  const pods = fc.namespaces.flatMap((ns) => ns.pods.map((pod) => ({ namespace: ns.name, name: pod.name })));
  await waitForPodsReady(b.c, b.node, pods, "the case's pods");
}

export interface NodeCaseRun {
  /** The Backup as created, and the cluster as read just before (both raw, for a replay). */
  readonly created: object;
  readonly items: readonly object[];
  readonly backup: BackupInfo;
  readonly view: ClusterView;
  readonly phase: string;
  readonly records: VeleroRecords;
}

/** Runs the backup (Velero's queue off: created ReadyToStart, then touched), waits for its end, reads Velero's records. */
export async function runNodeBackup(b: Bench, name: string, fc: FidelityCase): Promise<NodeCaseRun> {
  const items = await readClusterItems(b.c);
  const view = viewOfItems(items);
  let created: VeleroObject;
  try {
    created = await createBackup(b.c, b.velero.namespace, name, { spec: fc.spec, status: { phase: "ReadyToStart" } });
  } catch (e) {
    if (isApiError(e, 422)) throw new Error(`the API server refused the case's spec: ${JSON.stringify(fc.spec)}`);
    throw e;
  }
  await updateVelero(b.c, "backups", b.velero.namespace, name, (o) => {
    o.metadata.labels = { ...o.metadata.labels, "backup-gate.io/test-kick": "1" };
  });
  let last: VeleroObject | undefined;
  await waitFor(
    `Backup ${name} to reach a terminal phase`,
    async () => {
      last = await getBackup(b.c, b.velero.namespace, name);
      return TERMINAL_BACKUP_PHASES.has(last.status?.phase ?? "");
    },
    { timeoutMs: 180_000, intervalMs: 250 },
  ).catch((e: Error) => {
    throw new Error(`${e.message}; last status ${JSON.stringify(last?.status)}\n${b.velero.logs(40)}`);
  });
  // Judged as stored at creation, as the gate judges it: Velero later writes its server
  // defaults into the spec (the group key, defaultVolumesToFsBackup).
  const backup = trim("Backup", { ...created, kind: "Backup" });
  if (!backup.ok) throw backup.error;
  const hooks = readHookRecords(
    b.node.recordsDir,
    fc.namespaces.map((ns) => ns.name),
  );
  const records = await readVeleroRecords(b.c, b.velero.namespace, b.velero.s3Url, name, readProbeRecords(b.velero.probeDir), hooks);
  return { created, items, backup: backup.value, view, phase: String(last?.status?.phase), records };
}
