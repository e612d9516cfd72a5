// Builders for Kubernetes and Velero objects as plain JSON, the way kubectl prints them: the
// unit tests read them into a cluster view (test/unit/support/cluster.ts), the integration
// suites send them to a real API server (objects.ts: each create* builds, then creates).
// Defaults describe a running cluster (pods on a node, claims bound); the create* helpers
// pass what a client sends instead (no node, no status).

type Labels = Record<string, string>;
export interface Meta {
  labels?: Labels;
  annotations?: Labels;
}

export const VELERO_GROUP = "velero.io";
export const VELERO_VERSION = "v1";

/** A velero.io/v1 object as plain JSON. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type VeleroObject = { apiVersion?: string; kind?: string; metadata: { name: string; namespace?: string; [k: string]: any }; spec?: any; status?: any };

export const ns = (name: string, m: Meta = {}) => ({ apiVersion: "v1", kind: "Namespace", metadata: { name, ...m } });

export interface PodOpts extends Meta {
  /** PVCs mounted, one volume each, named `vol-<claim>`. */
  claims?: string[];
  volumes?: object[];
  containers?: object[];
  /** null: no status (what a client sends). */
  phase?: string | null;
  /** null: not scheduled. */
  node?: string | null;
}
export const pod = (namespace: string, name: string, o: PodOpts = {}) => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { namespace, name, labels: o.labels, annotations: o.annotations },
  spec: {
    ...(o.node === null ? {} : { nodeName: o.node ?? "node-1" }),
    ...(o.containers ? { containers: o.containers } : {}),
    volumes: [...(o.claims ?? []).map((c) => ({ name: `vol-${c}`, persistentVolumeClaim: { claimName: c } })), ...(o.volumes ?? [])],
  },
  ...(o.phase === null ? {} : { status: { phase: o.phase ?? "Running" } }),
});

export interface PvcOpts extends Meta {
  /** The bound PV's name (default `pv-<namespace>-<name>`); null: not bound. */
  pv?: string | null;
  storageClass?: string;
  /** The requested size, when the object goes to an API server (which requires one). */
  storage?: string;
  accessModes?: string[];
  /** null: no status (what a client sends). */
  phase?: string | null;
}
export const pvc = (namespace: string, name: string, o: PvcOpts = {}) => ({
  apiVersion: "v1",
  kind: "PersistentVolumeClaim",
  metadata: { namespace, name, labels: o.labels, annotations: o.annotations },
  spec: {
    ...(o.accessModes ? { accessModes: o.accessModes } : {}),
    ...(o.storage ? { resources: { requests: { storage: o.storage } } } : {}),
    ...(o.pv === null ? {} : { volumeName: o.pv ?? `pv-${namespace}-${name}` }),
    storageClassName: o.storageClass ?? "standard",
  },
  ...(o.phase === null ? {} : { status: { phase: o.phase ?? (o.pv === null ? "Pending" : "Bound") } }),
});

export interface PvOpts extends Meta {
  claim?: [string, string];
  capacity?: string;
  csiDriver?: string;
  storageClass?: string;
  accessModes?: string[];
  reclaimPolicy?: string;
  /** The hostPath source's path when there is no CSI driver (default `/data/<name>`). */
  hostPath?: string;
}
export const pv = (name: string, o: PvOpts = {}) => ({
  apiVersion: "v1",
  kind: "PersistentVolume",
  metadata: { name, labels: o.labels, annotations: o.annotations },
  spec: {
    capacity: { storage: o.capacity ?? "10Gi" },
    ...(o.accessModes ? { accessModes: o.accessModes } : {}),
    ...(o.reclaimPolicy ? { persistentVolumeReclaimPolicy: o.reclaimPolicy } : {}),
    storageClassName: o.storageClass ?? "standard",
    ...(o.claim ? { claimRef: { namespace: o.claim[0], name: o.claim[1] } } : {}),
    ...(o.csiDriver ? { csi: { driver: o.csiDriver, volumeHandle: name } } : { hostPath: { path: o.hostPath ?? `/data/${name}` } }),
  },
});

/** A PVC bound to its own PV, both objects. */
export const boundClaim = (namespace: string, name: string, o: PvcOpts & { pvOpts?: PvOpts } = {}) => {
  const pvName = `pv-${namespace}-${name}`;
  return [pvc(namespace, name, { ...o, pv: pvName }), pv(pvName, { ...o.pvOpts, claim: [namespace, name] })];
};

export const configMap = (namespace: string, name: string, data: Labels) => ({ apiVersion: "v1", kind: "ConfigMap", metadata: { namespace, name }, data });

export interface NewBackupOpts extends Meta {
  /** Velero's namespace (default `velero`). */
  namespace?: string;
  /** Initial status (the Backup CRD has no status subresource, so create can set it). */
  status?: Record<string, unknown>;
}

/** A Backup as a client sends it: no fields the API server sets. */
export const newBackup = (name: string, spec: object, o: NewBackupOpts = {}): VeleroObject => ({
  apiVersion: `${VELERO_GROUP}/${VELERO_VERSION}`,
  kind: "Backup",
  metadata: { namespace: o.namespace ?? "velero", name, labels: o.labels, annotations: o.annotations },
  spec,
  ...(o.status ? { status: o.status } : {}),
});

export interface BackupOpts extends Meta {
  phase?: string;
  created?: string;
  uid?: string;
  /** status.completionTimestamp: when Velero finished running it. */
  finished?: string;
}
let seq = 0;
/** A Backup as the API server stores it: with a uid, a resourceVersion and a creation time. */
export const backup = (name: string, spec: object = {}, o: BackupOpts = {}) => {
  const sent = newBackup(name, spec, o);
  return {
    ...sent,
    metadata: { ...sent.metadata, uid: o.uid ?? `uid-${name}`, resourceVersion: String(++seq), creationTimestamp: o.created ?? "2026-01-01T00:00:00Z" },
    status: { ...(o.phase === undefined ? {} : { phase: o.phase }), ...(o.finished ? { completionTimestamp: o.finished } : {}) },
  };
};

export interface BackupOptions extends Meta {
  includedNamespaces?: string[];
  /** Extra spec fields (merged over the defaults). */
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

/** A Backup as the suites create one: only what a user would typically set; Velero's defaults apply to the rest. */
export const backupBody = (name: string, veleroNamespace: string, o: BackupOptions = {}): VeleroObject =>
  // snapshotVolumes nil, defaultVolumesToFsBackup from the server, ttl 720h.
  newBackup(
    name,
    { includedNamespaces: o.includedNamespaces, storageLocation: "default", ...o.spec },
    { namespace: veleroNamespace, labels: o.labels, annotations: o.annotations, status: o.status },
  );

export interface ScheduleOptions {
  schedule?: string;
  includedNamespaces?: string[];
  paused?: boolean;
  labels?: Record<string, string>;
  template?: Record<string, unknown>;
}

export const schedule = (name: string, veleroNamespace: string, o: ScheduleOptions = {}): VeleroObject => ({
  apiVersion: `${VELERO_GROUP}/${VELERO_VERSION}`,
  kind: "Schedule",
  metadata: { name, namespace: veleroNamespace, labels: o.labels },
  spec: {
    schedule: o.schedule ?? "@every 1h",
    paused: o.paused ?? false,
    template: { includedNamespaces: o.includedNamespaces, storageLocation: "default", ...o.template },
  },
});

export interface RestoreOpts {
  /** status.phase; absent: no status (what a client sends). */
  phase?: string;
  /** The Restore's namespace (default velero). */
  namespace?: string;
}
/** A velero.io/v1 Restore. */
export const restore = (name: string, spec: object, o: RestoreOpts = {}): VeleroObject => ({
  apiVersion: `${VELERO_GROUP}/${VELERO_VERSION}`,
  kind: "Restore",
  metadata: { namespace: o.namespace ?? "velero", name },
  spec,
  ...(o.phase === undefined ? {} : { status: { phase: o.phase } }),
});
