import { loadSnapshot, trim, type LoadedSnapshot } from "../../../src/core/velero/objects.js";

// Builders for raw Kubernetes objects, so tests describe a cluster the way kubectl prints it.

type Labels = Record<string, string>;
interface Meta {
  labels?: Labels;
  annotations?: Labels;
}

export const ns = (name: string, m: Meta = {}) => ({ apiVersion: "v1", kind: "Namespace", metadata: { name, ...m } });

export interface PodOpts extends Meta {
  claims?: string[];
  volumes?: object[];
  phase?: string;
  node?: string | null;
}
export const pod = (namespace: string, name: string, o: PodOpts = {}) => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { namespace, name, labels: o.labels, annotations: o.annotations },
  spec: {
    ...(o.node === null ? {} : { nodeName: o.node ?? "node-1" }),
    volumes: [...(o.claims ?? []).map((c) => ({ name: `vol-${c}`, persistentVolumeClaim: { claimName: c } })), ...(o.volumes ?? [])],
  },
  status: { phase: o.phase ?? "Running" },
});

export interface PvcOpts extends Meta {
  pv?: string | null;
  storageClass?: string;
  phase?: string;
}
export const pvc = (namespace: string, name: string, o: PvcOpts = {}) => ({
  apiVersion: "v1",
  kind: "PersistentVolumeClaim",
  metadata: { namespace, name, labels: o.labels, annotations: o.annotations },
  spec: { ...(o.pv === null ? {} : { volumeName: o.pv ?? `pv-${namespace}-${name}` }), storageClassName: o.storageClass ?? "standard" },
  status: { phase: o.phase ?? (o.pv === null ? "Pending" : "Bound") },
});

export interface PvOpts extends Meta {
  claim?: [string, string];
  capacity?: string;
  csiDriver?: string;
  storageClass?: string;
}
export const pv = (name: string, o: PvOpts = {}) => ({
  apiVersion: "v1",
  kind: "PersistentVolume",
  metadata: { name, labels: o.labels, annotations: o.annotations },
  spec: {
    capacity: { storage: o.capacity ?? "10Gi" },
    storageClassName: o.storageClass ?? "standard",
    ...(o.claim ? { claimRef: { namespace: o.claim[0], name: o.claim[1] } } : {}),
    ...(o.csiDriver ? { csi: { driver: o.csiDriver, volumeHandle: name } } : { hostPath: { path: `/data/${name}` } }),
  },
});

/** A PVC bound to its own PV, both objects. */
export const boundClaim = (namespace: string, name: string, o: PvcOpts & { pvOpts?: PvOpts } = {}) => {
  const pvName = `pv-${namespace}-${name}`;
  return [pvc(namespace, name, { ...o, pv: pvName }), pv(pvName, { ...o.pvOpts, claim: [namespace, name] })];
};

export const configMap = (namespace: string, name: string, data: Labels) => ({ apiVersion: "v1", kind: "ConfigMap", metadata: { namespace, name }, data });

export interface BackupOpts extends Meta {
  phase?: string;
  created?: string;
  uid?: string;
}
let seq = 0;
export const backup = (name: string, spec: object = {}, o: BackupOpts = {}) => ({
  apiVersion: "velero.io/v1",
  kind: "Backup",
  metadata: {
    namespace: "velero",
    name,
    uid: o.uid ?? `uid-${name}`,
    resourceVersion: String(++seq),
    creationTimestamp: o.created ?? "2026-01-01T00:00:00Z",
    labels: o.labels,
    annotations: o.annotations,
  },
  spec,
  status: o.phase === undefined ? {} : { phase: o.phase },
});

/**
 * A cluster view and its backups. Backups are read as the webhook reads them (`trim`), so a
 * test can hold one with a spec the API server would refuse; the snapshot reader refuses those.
 */
export function cluster(...items: (object | object[])[]): LoadedSnapshot {
  const all = items.flat();
  const isBackup = (o: object) => (o as { kind?: unknown }).kind === "Backup";
  const result = loadSnapshot({ apiVersion: "v1", kind: "List", items: all.filter((o) => !isBackup(o)) });
  if (!result.ok) throw new Error(result.error);
  const backups = all.filter(isBackup).map((raw) => {
    const b = trim("Backup", raw);
    if (!b.ok) throw b.error;
    return b.value;
  });
  return { ...result.snapshot, backups };
}
