import type { BackupSpec, SpecError } from "./backupSpec.js";
import { usesOldResourceFilters } from "./backupSpec.js";
import { KEYS, type BackupInfo, type PodInfo, type PodVolume, type PvInfo } from "../model.js";
import type { Policy } from "../policy.js";
import type { NamespaceGraph } from "../namespaceGraph.js";
import type { ClusterView } from "../view.js";
import { factsForPodVolume, factsFromPv, matchVolumePolicy, parseVolumePolicies, type VolumePolicies } from "./volumePolicy/index.js";

// Which volumes a backup copies data of (Velero's volume helper): a file-system backup per pod
// volume, or a snapshot per PVC/PV. Volume data is what makes a unit exclusive.

export interface VolumeRules {
  readonly errors: readonly SpecError[];
  readonly notes: readonly string[];
  /** The volumes of pod p of the namespace's graph whose data the backup copies with a file-system backup. */
  fsBackupVolumes(graph: NamespaceGraph, p: number): readonly string[];
  /**
   * Whether the volume of claim c of the namespace's graph is snapshotted: `pv`, the PV bound to
   * it as the view holds it (none: no snapshot). The caller asks for a bound claim only.
   */
  snapshots(pv: PvInfo | undefined, graph: NamespaceGraph, c: number): boolean;
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
  const policies = loaded.policies;

  // The opt-in rule's answers for this backup's settings, kept by each namespace's graph. Without
  // volume policies (and with a readable reference, or none), a volume's fate follows it alone.
  const optIn = byOptIn(defaultFs, pvcsIncluded);
  const plain = !policies && !unreadable;

  const fsBackedUp = (pod: PodInfo, volume: PodVolume, policies: VolumePolicies): boolean => {
    if (!copyable(volume, pvcsIncluded)) return false;
    // Velero gives up on a volume whose facts it cannot gather (no PVC; no PV and no match).
    const facts = factsForPodVolume(volume, pod.namespace, lookupPvc, lookupPv);
    if (!facts.ok) return false;
    const action = matchVolumePolicy(policies, facts.facts);
    if (action) return action.type === "fs-backup";
    return facts.pvError === undefined && optedIn(pod, volume, defaultFs);
  };

  const snapshots = (pv: PvInfo | undefined, graph: NamespaceGraph, c: number): boolean => {
    if (!pv) return false;
    if (unreadable) return true;
    if (policies) {
      const facts = factsFromPv(pv, graph.pvcs[c]);
      const action = facts.ok ? matchVolumePolicy(policies, facts.facts) : undefined;
      if (action) return action.type === "snapshot";
    }
    if (spec.snapshotVolumes === false) return false;
    // Any pod mounting the claim that opts the volume into a file-system backup rules out
    // the snapshot, whatever the volume policies say (Velero checks the opt-in rule only).
    return !graph.derived(optIn).claimOptedIn[c];
  };
  const picked: string[] = [];

  return {
    errors,
    notes: loaded.note ? [loaded.note] : [],
    fsBackupVolumes: (graph, p) => {
      if (plain) return graph.derived(optIn).volumes[p] as readonly string[];
      const pod = graph.pods[p] as PodInfo;
      if (unreadable) return pod.volumes.filter((v) => copyable(v, pvcsIncluded)).map((v) => v.name);
      // Asked for every pod of a candidate with volume policies: no list unless a volume
      // qualifies, and then a copy of its length from a list reused pod to pod.
      const { volumes } = pod;
      let n = 0;
      for (let k = 0; k < volumes.length; k++) {
        const v = volumes[k] as PodVolume;
        if (fsBackedUp(pod, v, policies as VolumePolicies)) picked[n++] = v.name;
      }
      return n === 0 ? NO_VOLUMES : picked.slice(0, n);
    },
    snapshots,
  };
}

/** What the opt-in rule says about a namespace's volumes under one setting, made once per namespace graph. */
interface OptInFacts {
  /** Pod p's volumes backed up with a file-system backup. */
  readonly volumes: readonly (readonly string[])[];
  /** Claim c is opted into a file-system backup by a pod mounting it (1), which rules out its snapshot. */
  readonly claimOptedIn: Uint8Array;
}

/** A volume whose data a file-system backup may copy: never one of NEVER_FS, nor a claim's when claims are filtered out. */
function copyable(volume: PodVolume, pvcsIncluded: boolean): boolean {
  return !neverCopied(volume) && (volume.claimName === undefined || pvcsIncluded);
}

/** Velero's opt-in/opt-out rule without volume policies ("legacy" in its volume helper). */
function optedIn(pod: PodInfo, volume: PodVolume, defaultFs: boolean): boolean {
  return defaultFs ? !annotationNames(pod, KEYS.fsBackupExcludes, volume.name) : annotationNames(pod, KEYS.fsBackupVolumes, volume.name);
}

function optInFacts(graph: NamespaceGraph, defaultFs: boolean, pvcsIncluded: boolean): OptInFacts {
  const backedUp = (v: PodVolume, pod: PodInfo) => copyable(v, pvcsIncluded) && optedIn(pod, v, defaultFs);
  const volumes = graph.pods.map((pod) => {
    const names = pod.volumes.filter((v) => backedUp(v, pod)).map((v) => v.name);
    return names.length === 0 ? NO_VOLUMES : names;
  });
  const claimOptedIn = new Uint8Array(graph.pvcs.length);
  graph.pvcs.forEach((pvc, c) => {
    for (let k = graph.mountersFrom[c] as number; k < (graph.mountersFrom[c + 1] as number); k++) {
      const pod = graph.pods[graph.mounters[k] as number] as PodInfo;
      if (pod.volumes.some((v) => v.claimName === pvc.name && optedIn(pod, v, defaultFs))) claimOptedIn[c] = 1;
    }
  });
  return { volumes, claimOptedIn };
}

// One maker per setting: `NamespaceGraph.derived` keys what it keeps by its maker.
const OPT_IN_FACTS: readonly ((graph: NamespaceGraph) => OptInFacts)[] = [false, true].flatMap((defaultFs) =>
  [false, true].map((pvcsIncluded) => (graph: NamespaceGraph) => optInFacts(graph, defaultFs, pvcsIncluded)),
);

function byOptIn(defaultFs: boolean, pvcsIncluded: boolean): (graph: NamespaceGraph) => OptInFacts {
  return OPT_IN_FACTS[(defaultFs ? 2 : 0) + (pvcsIncluded ? 1 : 0)] as (graph: NamespaceGraph) => OptInFacts;
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
