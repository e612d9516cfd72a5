import { loadSnapshot, trim } from "../../../src/core/velero/objects.js";
import type { BackupInfo } from "../../../src/core/model.js";
import type { ClusterView } from "../../../src/core/view.js";
import type { ControlPlane } from "../controlPlane.js";
import { bindPvcToPv, createBackup, isApiError, type Clients } from "../objects.js";
import { readProbeRecords } from "../overlap.js";
import { kickBackups, waitForBackupDone, type Velero } from "../velero.js";
import { caseObjects, type FidelityCase, type Placement } from "./cases.js";
import { readVeleroRecords, type VeleroRecords } from "./observe.js";

// Runs one fidelity case through a real Velero: creates its estate, reads the cluster back as
// the gate would see it, runs the backup to its end and collects what Velero recorded.

/** The case with its namespaces (and what names them) renamed from `case-` to `${prefix}-`. */
export function withPrefix(c: FidelityCase, prefix: string): FidelityCase {
  return JSON.parse(JSON.stringify(c).replaceAll("case-", `${prefix}-`)) as FidelityCase;
}

export async function applyCase(c: Clients, fc: FidelityCase, at: Placement, bindByHand: boolean): Promise<void> {
  const o = caseObjects(fc, at);
  for (const ns of o.namespaces) await c.core.createNamespace({ body: ns });
  for (const cm of o.configMaps) await c.core.createNamespacedConfigMap({ namespace: at.veleroNamespace, body: cm });
  for (const pv of o.pvs) await c.core.createPersistentVolume({ body: pv });
  for (const pvc of o.pvcs) {
    const meta = (pvc as { metadata: { namespace: string; name: string } }).metadata;
    await c.core.createNamespacedPersistentVolumeClaim({ namespace: meta.namespace, body: pvc });
  }
  if (bindByHand) {
    for (const pv of o.pvs) {
      const ref = (pv as { metadata: { name: string }; spec: { claimRef: { namespace: string; name: string } } });
      await bindPvcToPv(c, ref.spec.claimRef.namespace, ref.spec.claimRef.name, ref.metadata.name);
    }
  }
  for (const pod of o.pods) {
    const meta = (pod as { metadata: { namespace: string } }).metadata;
    await c.core.createNamespacedPod({ namespace: meta.namespace, body: pod });
  }
}

/** The cluster as the gate's informers would trim it (the typed client's objects, back to JSON). */
export async function readView(c: Clients): Promise<ClusterView> {
  const asJson = (kind: string, items: object[]) => items.map((i) => ({ ...(JSON.parse(JSON.stringify(i)) as object), kind }));
  const [namespaces, pods, pvcs, pvs, configMaps] = await Promise.all([
    c.core.listNamespace(), c.core.listPodForAllNamespaces(), c.core.listPersistentVolumeClaimForAllNamespaces(),
    c.core.listPersistentVolume(), c.core.listConfigMapForAllNamespaces(),
  ]);
  const loaded = loadSnapshot({
    kind: "List",
    items: [...asJson("Namespace", namespaces.items), ...asJson("Pod", pods.items), ...asJson("PersistentVolumeClaim", pvcs.items),
      ...asJson("PersistentVolume", pvs.items), ...asJson("ConfigMap", configMaps.items)],
  });
  if (!loaded.ok) throw new Error(`the cluster could not be read as the gate reads it: ${loaded.error}`);
  return loaded.snapshot.view;
}

/** A case's estate read as a view directly (its claims bound as applyCase binds them), without a cluster. */
export function viewOfCase(fc: FidelityCase, at: Placement): ClusterView {
  const o = caseObjects(fc, at);
  const bound = (pvc: object) => ((pvc as { spec: { volumeName?: string } }).spec.volumeName ? { ...pvc, status: { phase: "Bound" } } : pvc);
  const loaded = loadSnapshot({ kind: "List", items: [...o.namespaces, ...o.pvs, ...o.pvcs.map(bound), ...o.pods, ...o.configMaps] });
  if (!loaded.ok) throw new Error(`the case's objects do not load: ${loaded.error}`);
  return loaded.snapshot.view;
}

export interface CaseRun {
  readonly backup: BackupInfo;
  readonly view: ClusterView;
  readonly phase: string;
  readonly records: VeleroRecords;
}

/** Runs the backup (Velero's queue off), waits for its end, and returns it as stored at creation with Velero's records. */
export async function runBackup(cp: ControlPlane, v: Velero, c: Clients, name: string, spec: Record<string, unknown>): Promise<CaseRun> {
  const view = await readView(c);
  // Started directly (created ReadyToStart, then touched), one case at a time: the suite needs
  // no queue, and Velero's own queue can stall for good after a FailedValidation backup (its
  // in-memory count of running backups; velero issues 9493 and 10519), which a run of 300 hit.
  let created;
  try {
    created = await createBackup(c, v.namespace, name, { spec, status: { phase: "ReadyToStart" } });
  } catch (e) {
    if (isApiError(e, 422)) throw new Error(`the API server refused the case's spec: ${JSON.stringify(spec)}`);
    throw e;
  }
  await kickBackups(cp, v, [name]);
  const done = await waitForBackupDone(v, cp, name);
  // Judged as stored at creation, as the gate judges it: Velero later writes its server
  // defaults into the spec (the group key, defaultVolumesToFsBackup).
  const backup = trim("Backup", { ...created, kind: "Backup" });
  if (!backup.ok) throw backup.error;
  const records = await readVeleroRecords(c, v.namespace, v.s3Url, name, readProbeRecords(v.probeDir));
  return { backup: backup.value, view, phase: String(done.status?.phase), records };
}
