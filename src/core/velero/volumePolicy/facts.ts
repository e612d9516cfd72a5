// Volume facts: Velero's structuredVolume.
import type { Labels, PodVolume, PvcInfo, PvInfo } from "../../model.js";
import { parseQuantityExact, ZERO_QUANTITY, type Quantity } from "../quantity.js";

export interface VolumeFacts {
  /** PV spec.capacity.storage; zero for a pod volume or a PVC without a PV (Velero leaves it unset). */
  readonly capacity: Quantity;
  /** The PV's storageClassName; "" for a pod volume or a PVC without a PV (the PVC's class is never used). */
  readonly storageClass: string;
  readonly nfs?: { readonly server: string; readonly path: string };
  readonly csi?: { readonly driver: string; readonly volumeAttributes: Labels };
  /** Velero's SupportedVolume name for the source ("" when Velero has none, e.g. persistentVolumeClaim). */
  readonly volumeType: string;
  /** The PVC's labels; absent when there is no PVC or it has no labels. */
  readonly pvcLabels?: Labels;
  /** The PVC's status.phase; "" without a PVC. */
  readonly pvcPhase: string;
}

/** Velero's getVolumeTypeFromPV: Kubernetes PV source key → SupportedVolume name. */
const PV_VOLUME_TYPES: ReadonlyMap<string, string> = new Map([
  ["awsElasticBlockStore", "awsElasticBlockStore"],
  ["azureDisk", "azureDisk"],
  ["azureFile", "azureFile"],
  ["cephfs", "cephfs"],
  ["cinder", "cinder"],
  ["csi", "csi"],
  ["fc", "fc"],
  ["flocker", "flocker"],
  ["flexVolume", "flexVolume"],
  ["gcePersistentDisk", "gcePersistentDisk"],
  ["glusterfs", "glusterfs"],
  ["hostPath", "hostPath"],
  ["iscsi", "iscsi"],
  ["local", "local"],
  ["nfs", "nfs"],
  ["photonPersistentDisk", "photonPersistentDisk"],
  ["portworxVolume", "portworxVolume"],
  ["quobyte", "quobyte"],
  ["rbd", "rbd"],
  ["scaleIO", "scaleIO"],
  ["storageos", "storageOS"],
  ["vsphereVolume", "vsphereVolume"],
]);

/** Velero's getVolumeTypeFromVolume: pod volume source key → SupportedVolume name (no `local`, no PVC). */
const POD_VOLUME_TYPES: ReadonlyMap<string, string> = new Map([
  ["awsElasticBlockStore", "awsElasticBlockStore"],
  ["azureDisk", "azureDisk"],
  ["azureFile", "azureFile"],
  ["cephfs", "cephfs"],
  ["cinder", "cinder"],
  ["csi", "csi"],
  ["fc", "fc"],
  ["flocker", "flocker"],
  ["flexVolume", "flexVolume"],
  ["gcePersistentDisk", "gcePersistentDisk"],
  ["gitRepo", "gitRepo"],
  ["glusterfs", "glusterfs"],
  ["iscsi", "iscsi"],
  ["nfs", "nfs"],
  ["secret", "secret"],
  ["rbd", "rbd"],
  ["downwardAPI", "downwardAPI"],
  ["configMap", "configMap"],
  ["projected", "projected"],
  ["ephemeral", "ephemeral"],
  ["photonPersistentDisk", "photonPersistentDisk"],
  ["portworxVolume", "portworxVolume"],
  ["quobyte", "quobyte"],
  ["scaleIO", "scaleIO"],
  ["storageos", "storageOS"],
  ["vsphereVolume", "vsphereVolume"],
  ["hostPath", "hostPath"],
  ["emptyDir", "emptyDir"],
]);

/** The SupportedVolume name Velero gives a PV source key ("" if none). */
export function veleroPvVolumeType(sourceKey: string): string {
  return PV_VOLUME_TYPES.get(sourceKey) ?? "";
}

/** The SupportedVolume name Velero gives a pod volume source key ("" if none). */
export function veleroPodVolumeType(sourceKey: string): string {
  return POD_VOLUME_TYPES.get(sourceKey) ?? "";
}

/** Velero's parsePVC: labels only when there are some; the phase as is. */
function pvcPart(pvc: PvcInfo | undefined): Pick<VolumeFacts, "pvcLabels" | "pvcPhase"> {
  if (pvc === undefined) return { pvcPhase: "" };
  return {
    ...(Object.keys(pvc.labels).length > 0 ? { pvcLabels: pvc.labels } : {}),
    pvcPhase: pvc.phase,
  };
}

export type FactsResult =
  | {
      readonly ok: true;
      readonly facts: VolumeFacts;
      /**
       * Set when Velero could not find the PV behind the PVC (GetPVForPVC failed) and fell back to
       * PVC-only facts. If no policy matches, Velero then reports this as an error for the volume
       * (ShouldPerformSnapshot / ShouldPerformFSBackup return it; no snapshot, no fs-backup).
       */
      readonly pvError?: string;
    }
  | { readonly ok: false; readonly error: string };

/**
 * Facts from a PV (parsePV), plus its PVC's labels and phase when given (parsePVC). Velero passes
 * the PVC in every path except ShouldPerformSnapshot for a PV (the native-snapshot check), which
 * passes an empty PVC: there, call this without a PVC.
 */
export function factsFromPv(pv: PvInfo, pvc?: PvcInfo): FactsResult {
  let capacity = ZERO_QUANTITY;
  if (pv.capacity !== undefined) {
    const q = parseQuantityExact(pv.capacity);
    if (q === undefined) return { ok: false, error: `PV ${pv.name}: capacity "${pv.capacity}" is not a quantity` };
    capacity = q;
  }
  return {
    ok: true,
    facts: {
      capacity,
      storageClass: pv.storageClassName ?? "",
      ...(pv.nfs ? { nfs: { server: pv.nfs.server, path: pv.nfs.path } } : {}),
      ...(pv.csi ? { csi: { driver: pv.csi.driver, volumeAttributes: pv.csi.volumeAttributes } } : {}),
      volumeType: veleroPvVolumeType(pv.type),
      ...pvcPart(pvc),
    },
  };
}

/** Facts from a PVC alone (GetMatchAction's PVC-only case): only pvcLabels and pvcPhase are set. */
export function factsFromPvcOnly(pvc: PvcInfo): VolumeFacts {
  return { capacity: ZERO_QUANTITY, storageClass: "", volumeType: "", ...pvcPart(pvc) };
}

/** Facts from a pod volume itself (parsePodVolume): nfs, inline csi and the volume type; no capacity, no class. */
export function factsFromPodVolume(vol: PodVolume, pvc?: PvcInfo): VolumeFacts {
  return {
    capacity: ZERO_QUANTITY,
    storageClass: "",
    ...(vol.nfs ? { nfs: { server: vol.nfs.server, path: vol.nfs.path } } : {}),
    ...(vol.csi ? { csi: { driver: vol.csi.driver, volumeAttributes: vol.csi.volumeAttributes } } : {}),
    volumeType: veleroPodVolumeType(vol.type),
    ...pvcPart(pvc),
  };
}

export type PvLookup = (name: string) => PvInfo | undefined;
export type PvcLookup = (namespace: string, name: string) => PvcInfo | undefined;

/** Velero's kube.GetPVForPVC: the PV only for a Bound PVC with spec.volumeName whose PV exists. */
export function pvForPvc(pvc: PvcInfo, lookupPv: PvLookup): { pv: PvInfo } | { error: string } {
  const id = `${pvc.namespace}/${pvc.name}`;
  if (!pvc.volumeName) return { error: `PVC ${id} has no volume backing this claim` };
  if (pvc.phase !== "Bound") return { error: `PVC ${id} is in phase ${pvc.phase} and is not bound to a volume` };
  const pv = lookupPv(pvc.volumeName);
  if (pv === undefined) return { error: `failed to get PV ${pvc.volumeName} for PVC ${id}` };
  return { pv };
}

/**
 * Facts for a PVC, as ShouldPerformSnapshot(PVC) (the CSI snapshot path) and the pod-volume
 * backupper build them: PV + PVC when GetPVForPVC succeeds, else PVC-only facts with `pvError`.
 */
export function factsForPvc(pvc: PvcInfo, lookupPv: PvLookup): FactsResult {
  const found = pvForPvc(pvc, lookupPv);
  if ("pv" in found) return factsFromPv(found.pv, pvc);
  return { ok: true, facts: factsFromPvcOnly(pvc), pvError: found.error };
}

/**
 * Facts for a pod volume, as ShouldPerformFSBackup builds them. A non-PVC volume: the pod volume's
 * own facts. A PVC volume: the PVC must exist (else Velero errors out for this volume: `ok: false`);
 * then PV + PVC facts when GetPVForPVC succeeds, else the pod volume's facts (no nfs/csi, type "")
 * with the PVC's labels and phase, and `pvError`.
 */
export function factsForPodVolume(vol: PodVolume, podNamespace: string, lookupPvc: PvcLookup, lookupPv: PvLookup): FactsResult {
  if (vol.type !== "persistentVolumeClaim") return { ok: true, facts: factsFromPodVolume(vol) };
  const claim = vol.claimName ?? "";
  const pvc = claim === "" ? undefined : lookupPvc(podNamespace, claim);
  if (pvc === undefined) {
    return { ok: false, error: `failed to get PVC ${claim} for volume ${podNamespace}/${vol.name}` };
  }
  const found = pvForPvc(pvc, lookupPv);
  if ("pv" in found) return factsFromPv(found.pv, pvc);
  return { ok: true, facts: factsFromPodVolume(vol, pvc), pvError: found.error };
}
