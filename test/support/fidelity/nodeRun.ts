import { rmSync } from "node:fs";
import { join } from "node:path";
import { trim } from "../../../src/core/velero/objects.js";
import type { BackupInfo } from "../../../src/core/model.js";
import type { ClusterView } from "../../../src/core/view.js";
import type { NodeVelero, TestNode } from "../node.js";
import { createBackup, getBackup, isApiError, TERMINAL_BACKUP_PHASES, updateVelero, type Clients, type VeleroObject } from "../objects.js";
import { readProbeRecords } from "../overlap.js";
import { explainPods, POD_START_TIMEOUT_MS, runningAndReady, type PodRef } from "../podReadiness.js";
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
  // A pod tried while its claim is still being provisioned is parked until the claim's binding
  // event or the scheduler's five-minute flush (seen once in the node estate): claims bind first.
  await waitForClaimsMeantToBind(b, fc);
  await Promise.all(o.pods.map((pod) => b.c.core.createNamespacedPod({ namespace: nsOf(pod), body: pod })));
}

async function waitForClaimsMeantToBind(b: Bench, fc: FidelityCase): Promise<void> {
  let unbound: string[] = [];
  await waitFor(
    `the case's claims to bind`,
    async () => {
      unbound = [];
      for (const ns of fc.namespaces) unbound.push(...(await unboundClaims(b, ns)));
      return unbound.length === 0;
    },
    { timeoutMs: POD_START_TIMEOUT_MS, intervalMs: 300 },
  ).catch((e: Error) => {
    throw new Error(`${e.message}; not Bound: ${unbound.join(", ")}`);
  });
}

/** The claims of one of the case's namespaces that are meant to bind and are not Bound. */
async function unboundClaims(b: Bench, ns: FidelityCase["namespaces"][number]): Promise<string[]> {
  const live = await b.c.core.listNamespacedPersistentVolumeClaim({ namespace: ns.name });
  const phases = new Map(live.items.map((p) => [p.metadata!.name!, p.status?.phase]));
  return ns.pvcs.filter((pvc) => pvc.bound && phases.get(pvc.name) !== "Bound").map((pvc) => `claim ${ns.name}/${pvc.name}`);
}

/** Waits until every pod of the case runs (containers ready) and every claim meant to bind is Bound. */
export async function waitForEstate(b: Bench, fc: FidelityCase): Promise<void> {
  let waiting: string[] = [];
  let pending: PodRef[] = [];
  await waitFor(
    `the case's pods to run and its claims to bind`,
    async () => {
      waiting = [];
      pending = [];
      for (const ns of fc.namespaces) {
        const pods = new Map((await b.c.core.listNamespacedPod({ namespace: ns.name })).items.map((p) => [p.metadata!.name!, p]));
        for (const pod of ns.pods) {
          const p = pods.get(pod.name);
          if (!runningAndReady(p)) {
            waiting.push(`pod ${ns.name}/${pod.name} (${p?.status?.phase})`);
            pending.push({ namespace: ns.name, name: pod.name });
          }
        }
        waiting.push(...(await unboundClaims(b, ns)));
      }
      return waiting.length === 0;
    },
    { timeoutMs: POD_START_TIMEOUT_MS, intervalMs: 300 },
  ).catch(async (e: Error) => {
    throw new Error(`${e.message}; still waiting for ${waiting.join(", ")}\n${await explainPods(b.c, b.node, pending)}`);
  });
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
