/**
 * Helpers to create the objects the integration suites need. There is no
 * controller-manager, scheduler or kubelet: pods stay Pending unless a test
 * writes their status, and PVCs/PVs are bound here by hand (PV claimRef and
 * PVC volumeName, then both status phases through the status subresource).
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

export const VELERO_GROUP = "velero.io";
export const VELERO_VERSION = "v1";

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
  return c.core.createNamespace({ body: { metadata: { name, labels } } });
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
  return c.core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name, labels: o.labels, annotations: o.annotations },
      spec: {
        containers: [
          {
            name: "main",
            image: o.image ?? "registry.invalid/never-pulled:1",
            volumeMounts: pvcs.map((p) => ({ name: p, mountPath: `/data/${p}` })),
          },
        ],
        volumes: pvcs.map((p) => ({ name: p, persistentVolumeClaim: { claimName: p } })),
      },
    },
  });
}

export interface PvcOptions {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  storage?: string;
  storageClassName?: string;
}

export async function createPvc(c: Clients, namespace: string, name: string, o: PvcOptions = {}): Promise<V1PersistentVolumeClaim> {
  return c.core.createNamespacedPersistentVolumeClaim({
    namespace,
    body: {
      metadata: { name, labels: o.labels, annotations: o.annotations },
      spec: {
        accessModes: ["ReadWriteOnce"],
        resources: { requests: { storage: o.storage ?? "1Gi" } },
        storageClassName: o.storageClassName ?? "",
      },
    },
  });
}

export interface PvOptions {
  labels?: Record<string, string>;
  storage?: string;
  storageClassName?: string;
}

/** A PV with a hostPath source (no driver needed; Velero will not snapshot it). */
export async function createPv(c: Clients, name: string, o: PvOptions = {}): Promise<V1PersistentVolume> {
  return c.core.createPersistentVolume({
    body: {
      metadata: { name, labels: o.labels },
      spec: {
        capacity: { storage: o.storage ?? "1Gi" },
        accessModes: ["ReadWriteOnce"],
        persistentVolumeReclaimPolicy: "Retain",
        storageClassName: o.storageClassName ?? "",
        hostPath: { path: `/tmp/backup-gate-pv/${name}` },
      },
    },
  });
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

/** A velero.io/v1 object as plain JSON. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type VeleroObject = { apiVersion?: string; kind?: string; metadata: { name: string; namespace?: string; [k: string]: any }; spec?: any; status?: any };

export interface BackupOptions {
  includedNamespaces?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Extra spec fields (merged over the defaults). */
  spec?: Record<string, unknown>;
  /** Initial status (the Backup CRD has no status subresource, so create can set it). */
  status?: Record<string, unknown>;
}

export function backupBody(name: string, veleroNamespace: string, o: BackupOptions = {}): VeleroObject {
  return {
    apiVersion: `${VELERO_GROUP}/${VELERO_VERSION}`,
    kind: "Backup",
    metadata: { name, namespace: veleroNamespace, labels: o.labels, annotations: o.annotations },
    // Only what a user would typically set: Velero's defaults apply to the rest
    // (snapshotVolumes nil, defaultVolumesToFsBackup from the server, ttl 720h).
    spec: {
      includedNamespaces: o.includedNamespaces,
      storageLocation: "default",
      ...o.spec,
    },
    ...(o.status ? { status: o.status } : {}),
  };
}

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

export interface ScheduleOptions {
  schedule?: string;
  includedNamespaces?: string[];
  paused?: boolean;
  labels?: Record<string, string>;
  template?: Record<string, unknown>;
}

export async function createSchedule(c: Clients, veleroNamespace: string, name: string, o: ScheduleOptions = {}): Promise<VeleroObject> {
  return (await c.custom.createNamespacedCustomObject({
    group: VELERO_GROUP,
    version: VELERO_VERSION,
    namespace: veleroNamespace,
    plural: "schedules",
    body: {
      apiVersion: `${VELERO_GROUP}/${VELERO_VERSION}`,
      kind: "Schedule",
      metadata: { name, namespace: veleroNamespace, labels: o.labels },
      spec: {
        schedule: o.schedule ?? "@every 1h",
        paused: o.paused ?? false,
        template: {
          includedNamespaces: o.includedNamespaces,
          storageLocation: "default",
          ...o.template,
        },
      },
    },
  })) as VeleroObject;
}

/** Terminal Backup phases in Velero 1.18. */
export const TERMINAL_BACKUP_PHASES = new Set(["Completed", "PartiallyFailed", "Failed", "FailedValidation"]);
