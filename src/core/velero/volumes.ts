import type { BackupSpec, SpecError } from "./backupSpec.js";
import { usesOldResourceFilters } from "./backupSpec.js";
import { KEYS, type BackupInfo, type PodInfo, type PodVolume, type PvcInfo, type PvInfo } from "../model.js";
import type { Policy } from "../policy.js";
import type { ClusterView } from "../view.js";
import { factsForPodVolume, factsFromPv, matchVolumePolicy, parseVolumePolicies, type VolumePolicies } from "./volumePolicy/index.js";

// Which volumes a backup copies data of (Velero's volume helper): a file-system backup per pod
// volume, or a snapshot per PVC/PV. Volume data is what makes a unit exclusive.

export interface VolumeRules {
  readonly errors: readonly SpecError[];
  readonly notes: readonly string[];
  fsBackupVolumes(pod: PodInfo): readonly string[];
  /**
   * Whether the claim's volume is snapshotted. `pv`: the PV it names, as the view holds it;
   * `mounts`, `c`: its namespace's pods by claim, and the claim's index there (a part has both
   * at hand in its graph).
   */
  snapshotsPvc(pvc: PvcInfo, pv: PvInfo | undefined, mounts: ClaimMounts, c: number): boolean;
  /** Whether the PV is snapshotted, reached through `pvc`, the claim bound to it (index `c` in `mounts`). */
  snapshotsPv(pv: PvInfo, pvc: PvcInfo, mounts: ClaimMounts, c: number): boolean;
}

/**
 * A namespace's pods by the claims they mount (a NamespaceGraph): the pods mounting claim c are
 * pods[mounters[k]] for k in mountersFrom[c] .. mountersFrom[c + 1]. Read by index, because the
 * rule is asked about every claim of every candidate, and a list per claim was two per PVC.
 */
export interface ClaimMounts {
  readonly pods: readonly PodInfo[];
  readonly mountersFrom: Int32Array;
  readonly mounters: Int32Array;
}

// Velero never copies the data of these pod volumes with a file-system backup.
const NEVER_FS: ReadonlySet<string> = new Set(["hostPath", "secret", "configMap", "projected", "downwardAPI"]);

const NO_VOLUMES: readonly string[] = Object.freeze([]);

/** True for a pod volume whose data Velero never copies, whatever the backup says (nothing else reads it). */
export function neverCopied(volume: PodVolume): boolean {
  return NEVER_FS.has(volume.type) || volume.name.startsWith("default-token");
}

export function volumeRules(backup: BackupInfo, spec: BackupSpec, view: ClusterView, policy: Policy, pvcsIncluded: boolean): VolumeRules {
  const loaded = loadPolicies(backup, spec, view);
  const errors =
    loaded.policies?.includeExcludePolicy && usesOldResourceFilters(spec)
      ? [
          {
            field: "spec.resourcePolicy",
            message:
              "the resource policy has an includeExcludePolicy, which cannot be used with the old resource filters (includedResources, excludedResources, includeClusterResources)",
          },
        ]
      : [];
  const defaultFs = spec.defaultVolumesToFsBackup ?? spec.defaultVolumesToRestic ?? policy.defaultVolumesToFsBackup;
  const unreadable = loaded.note !== undefined;

  const lookupPvc = (namespace: string, name: string) => view.contents(namespace).pvcs.get(name);
  const lookupPv = (name: string) => view.pv(name);

  // The opt-in/opt-out rule without volume policies ("legacy" in Velero's volume helper).
  const optedIn = (pod: PodInfo, volume: PodVolume): boolean =>
    defaultFs ? !annotationNames(pod, KEYS.fsBackupExcludes, volume.name) : annotationNames(pod, KEYS.fsBackupVolumes, volume.name);

  const fsBackedUp = (pod: PodInfo, volume: PodVolume): boolean => {
    if (neverCopied(volume)) return false;
    if (volume.claimName !== undefined && !pvcsIncluded) return false;
    if (unreadable) return true;
    if (!loaded.policies) return optedIn(pod, volume);
    // Velero gives up on a volume whose facts it cannot gather (no PVC; no PV and no match).
    const facts = factsForPodVolume(volume, pod.namespace, lookupPvc, lookupPv);
    if (!facts.ok) return false;
    const action = matchVolumePolicy(loaded.policies, facts.facts);
    if (action) return action.type === "fs-backup";
    return facts.pvError === undefined && optedIn(pod, volume);
  };

  const snapshots = (pv: PvInfo | undefined, pvc: PvcInfo, mounts: ClaimMounts, c: number): boolean => {
    if (!pv) return false;
    if (unreadable) return true;
    if (loaded.policies) {
      const facts = factsFromPv(pv, pvc);
      const action = facts.ok ? matchVolumePolicy(loaded.policies, facts.facts) : undefined;
      if (action) return action.type === "snapshot";
    }
    if (spec.snapshotVolumes === false) return false;
    // Any pod mounting the claim that opts the volume into a file-system backup rules out
    // the snapshot, whatever the volume policies say (Velero checks the opt-in rule only).
    const { pods, mountersFrom, mounters } = mounts;
    for (let k = mountersFrom[c] as number; k < (mountersFrom[c + 1] as number); k++)
      if (optsClaimIn(pods[mounters[k] as number] as PodInfo, pvc.name)) return false;
    return true;
  };
  const picked: string[] = [];
  // A loop, not some(): asked for every claim of a candidate, and a callback per pod was a closure each.
  const optsClaimIn = (pod: PodInfo, claim: string): boolean => {
    for (const v of pod.volumes) if (v.claimName === claim && optedIn(pod, v)) return true;
    return false;
  };

  return {
    errors,
    notes: loaded.note ? [loaded.note] : [],
    fsBackupVolumes: (pod) => {
      // Asked for every pod of every candidate in a review: no list unless a volume qualifies, and
      // then a copy of its length from a list reused pod to pod (one grown by push keeps room for 16 more).
      const { volumes } = pod;
      let n = 0;
      for (let k = 0; k < volumes.length; k++) {
        const v = volumes[k] as PodVolume;
        if (fsBackedUp(pod, v)) picked[n++] = v.name;
      }
      return n === 0 ? NO_VOLUMES : picked.slice(0, n);
    },
    snapshotsPvc: (pvc, pv, mounts, c) => pvc.phase === "Bound" && !!pvc.volumeName && snapshots(pv, pvc, mounts, c),
    snapshotsPv: (pv, pvc, mounts, c) => snapshots(pv, pvc, mounts, c),
  };
}

// The opt-in/opt-out annotation lists. Velero splits them on "," and compares names exactly,
// without trimming: "data, tmp" names " tmp", which matches no volume (pkg/util/podvolume/pod_volume.go).
function annotationNames(pod: PodInfo, key: string, volume: string): boolean {
  const raw = pod.annotations[key];
  return raw ? raw.split(",").includes(volume) : false;
}

function loadPolicies(backup: BackupInfo, spec: BackupSpec, view: ClusterView): { policies?: VolumePolicies; note?: string } {
  const ref = spec.resourcePolicy;
  if (!ref || ref.kind.toLowerCase() !== "configmap") return {};
  const cm = view.configMap(backup.namespace, ref.name);
  if (!cm) {
    return {
      note: `resource policy ConfigMap ${backup.namespace}/${ref.name} is not in the cluster view (Velero fails the backup if it is still missing when the backup starts); every volume counts as exclusive`,
    };
  }
  const parsed = parseVolumePolicies(cm);
  if (!parsed.ok)
    return {
      note: `resource policy ConfigMap ${backup.namespace}/${ref.name} is invalid (${parsed.error}); every volume counts as exclusive`,
    };
  return { policies: parsed.policies };
}
