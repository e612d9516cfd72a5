/**
 * Helpers to create the objects the integration suites need: each builds the object with the
 * builders in builders.ts, then creates it through the API. There is no controller-manager,
 * scheduler or kubelet: pods stay Pending unless a test writes their status, and PVCs/PVs are
 * bound here by hand (PV claimRef and PVC volumeName, then both status phases through the
 * status subresource).
 */
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type V1Namespace,
  type V1PersistentVolume,
  type V1PersistentVolumeClaim,
  type V1Pod,
} from "@kubernetes/client-node";
import {
  backupBody,
  ns,
  pod,
  pv,
  pvc,
  schedule,
  VELERO_GROUP,
  VELERO_VERSION,
  type BackupOptions,
  type ScheduleOptions,
  type VeleroObject,
} from "./builders.js";

export { VELERO_GROUP, VELERO_VERSION, type BackupOptions, type ScheduleOptions, type VeleroObject } from "./builders.js";

export interface Clients {
  kc: KubeConfig;
  core: CoreV1Api;
  custom: CustomObjectsApi;
}

export function clients(kc: KubeConfig): Clients {
  return { kc, core: kc.makeApiClient(CoreV1Api), custom: kc.makeApiClient(CustomObjectsApi) };
}

let counter = 0;
/** A DNS-1123 name unique within this test process. */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}-${Date.now().toString(36)}-${counter}`.toLowerCase();
}

export function isApiError(e: unknown, code?: number): e is ApiException<unknown> {
  return e instanceof ApiException && (code === undefined || e.code === code);
}

export async function createNamespace(c: Clients, name: string, labels: Record<string, string> = {}): Promise<V1Namespace> {
  return c.core.createNamespace({ body: ns(name, { labels }) });
}

export interface PodSpecOptions {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** PVC names to mount, one volume each (volume name = claim name). */
  pvcs?: string[];
  image?: string;
}

export async function createPod(c: Clients, namespace: string, name: string, o: PodSpecOptions = {}): Promise<V1Pod> {
  const pvcs = o.pvcs ?? [];
  const body = pod(namespace, name, {
    labels: o.labels,
    annotations: o.annotations,
    node: null,
    phase: null,
    containers: [
      {
        name: "main",
        image: o.image ?? "registry.invalid/never-pulled:1",
        volumeMounts: pvcs.map((p) => ({ name: p, mountPath: `/data/${p}` })),
      },
    ],
    volumes: pvcs.map((p) => ({ name: p, persistentVolumeClaim: { claimName: p } })),
  });
  return c.core.createNamespacedPod({ namespace, body: body as V1Pod });
}

export interface PvcOptions {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  storage?: string;
  storageClassName?: string;
}

export async function createPvc(c: Clients, namespace: string, name: string, o: PvcOptions = {}): Promise<V1PersistentVolumeClaim> {
  const body = pvc(namespace, name, {
    labels: o.labels,
    annotations: o.annotations,
    pv: null,
    phase: null,
    accessModes: ["ReadWriteOnce"],
    storage: o.storage ?? "1Gi",
    storageClass: o.storageClassName ?? "",
  });
  return c.core.createNamespacedPersistentVolumeClaim({ namespace, body });
}

export interface PvOptions {
  labels?: Record<string, string>;
  storage?: string;
  storageClassName?: string;
}

/** A PV with a hostPath source (no driver needed; Velero will not snapshot it). */
export async function createPv(c: Clients, name: string, o: PvOptions = {}): Promise<V1PersistentVolume> {
  const body = pv(name, {
    labels: o.labels,
    capacity: o.storage ?? "1Gi",
    accessModes: ["ReadWriteOnce"],
    reclaimPolicy: "Retain",
    storageClass: o.storageClassName ?? "",
    hostPath: `/tmp/backup-gate-pv/${name}`,
  });
  return c.core.createPersistentVolume({ body });
}

/**
 * Binds a PVC and a PV the way the PV controller would: PV spec.claimRef and
 * PVC spec.volumeName, then status.phase Bound on both (status subresource).
 */
export async function bindPvcToPv(c: Clients, namespace: string, pvcName: string, pvName: string): Promise<void> {
  const pvc = await c.core.readNamespacedPersistentVolumeClaim({ name: pvcName, namespace });
  const pv = await c.core.readPersistentVolume({ name: pvName });
  pv.spec = {
    ...pv.spec,
    claimRef: { apiVersion: "v1", kind: "PersistentVolumeClaim", namespace, name: pvcName, uid: pvc.metadata?.uid },
  };
  const pv2 = await c.core.replacePersistentVolume({ name: pvName, body: pv });
  pv2.status = { ...pv2.status, phase: "Bound" };
  await c.core.replacePersistentVolumeStatus({ name: pvName, body: pv2 });

  pvc.spec = { ...pvc.spec, volumeName: pvName };
  const pvc2 = await c.core.replaceNamespacedPersistentVolumeClaim({ name: pvcName, namespace, body: pvc });
  pvc2.status = {
    ...pvc2.status,
    phase: "Bound",
    accessModes: pvc2.spec?.accessModes,
    capacity: pv.spec?.capacity,
  };
  await c.core.replaceNamespacedPersistentVolumeClaimStatus({ name: pvcName, namespace, body: pvc2 });
}

/** A namespace holding one pod that mounts one PVC bound to one PV. */
export async function createWorkload(c: Clients, namespace: string, base = "app"): Promise<{ pod: string; pvc: string; pv: string }> {
  const pod = `${base}-0`;
  const pvc = `data-${base}-0`;
  const pv = `pv-${namespace}-${base}`.slice(0, 63);
  await createPvc(c, namespace, pvc);
  await createPv(c, pv);
  await bindPvcToPv(c, namespace, pvc, pv);
  await createPod(c, namespace, pod, { pvcs: [pvc], labels: { app: base } });
  return { pod, pvc, pv };
}

// ---- velero.io/v1 ----

export async function createBackup(c: Clients, veleroNamespace: string, name: string, o: BackupOptions = {}): Promise<VeleroObject> {
  return (await c.custom.createNamespacedCustomObject({
    group: VELERO_GROUP,
    version: VELERO_VERSION,
    namespace: veleroNamespace,
    plural: "backups",
    body: backupBody(name, veleroNamespace, o),
  })) as VeleroObject;
}

export async function getVelero(c: Clients, plural: string, namespace: string, name: string): Promise<VeleroObject> {
  return (await c.custom.getNamespacedCustomObject({
    group: VELERO_GROUP,
    version: VELERO_VERSION,
    namespace,
    plural,
    name,
  })) as VeleroObject;
}

export async function getBackup(c: Clients, namespace: string, name: string): Promise<VeleroObject> {
  return getVelero(c, "backups", namespace, name);
}

/**
 * Read-modify-write of a velero.io/v1 object (PUT with resourceVersion; retried
 * on 409 conflicts). Returns the stored object.
 */
export async function updateVelero(
  c: Clients,
  plural: string,
  namespace: string,
  name: string,
  mutate: (o: VeleroObject) => void,
  attempts = 10,
): Promise<VeleroObject> {
  for (let i = 0; ; i++) {
    const obj = await getVelero(c, plural, namespace, name);
    mutate(obj);
    try {
      return (await c.custom.replaceNamespacedCustomObject({
        group: VELERO_GROUP,
        version: VELERO_VERSION,
        namespace,
        plural,
        name,
        body: obj,
      })) as VeleroObject;
    } catch (e) {
      if (isApiError(e, 409) && i + 1 < attempts) continue;
      throw e;
    }
  }
}

export async function createSchedule(c: Clients, veleroNamespace: string, name: string, o: ScheduleOptions = {}): Promise<VeleroObject> {
  return (await c.custom.createNamespacedCustomObject({
    group: VELERO_GROUP,
    version: VELERO_VERSION,
    namespace: veleroNamespace,
    plural: "schedules",
    body: schedule(name, veleroNamespace, o),
  })) as VeleroObject;
}

/** Terminal Backup phases in Velero 1.18. */
export const TERMINAL_BACKUP_PHASES = new Set(["Completed", "PartiallyFailed", "Failed", "FailedValidation"]);
