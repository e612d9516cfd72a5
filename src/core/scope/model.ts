import type { ListLookup } from "../lists.js";
import type { BackupSpec, SpecError } from "../velero/backupSpec.js";
import { KEYS, type ConflictLevel, type Labels, type PvInfo } from "../model.js";
import type { Policy } from "../policy.js";
import type { ResourceFilter } from "../velero/resources.js";
import type { VolumeRules } from "../velero/volumes.js";

// What one backup touches, predicted as Velero 1.18 resolves it: the namespaces, the pods,
// PVCs and PVs it processes, the units they belong to, and which of those units it needs
// exclusively (hooks, snapshots, file-system backups), each with its reason.
//
// A scope is computed in pieces so that an event re-computes only what it can change:
// - the head (validation, namespace resolution, level, serial key), from the spec, the
//   namespace list and the backup's own labels and annotations;
// - one ScopePart per namespace: everything the backup touches inside that namespace depends
//   only on the spec (minus its namespace lists), the spec-derived context (resource filter,
//   volume rules) and that namespace's contents (pods, PVCs, the PVs bound into it), so it is
//   valid while `view.contents(ns).version` stays put and is shared by every backup with the
//   same spec (and context) covering that namespace;
// - the PVs listed directly (when the filter includes persistentvolumes), from `view.pvVersion`.
// The public lists (`items`, `units`, `exclusive`) are assembled from the parts on demand;
// conflicts are judged on the parts (`claims`).

export interface BackupScope extends Omit<ScopeHead, "context"> {
  /** Items processed: pods and PVCs as namespace/name, PVs by name; each list sorted (assembled on demand). */
  readonly items: { readonly pods: readonly string[]; readonly pvcs: readonly string[]; readonly pvs: readonly string[] };
  /** Units the backup includes (assembled on demand). */
  readonly units: readonly string[];
  /** Units the backup needs exclusively, each with the first reason found (assembled on demand). */
  readonly exclusive: ReadonlyMap<string, string>;
  /** The exclusive claims by namespace, for conflicts (not enumerable: not part of the scope's data). */
  readonly claims: ScopeClaims;
  /** Where its volume work runs, over all its parts (assembled on demand, not enumerable): what budgets count. */
  readonly work: VolumeWork;
  /** Lookups over `queueNamespaces` and `strictNamespaces`, kept with the scope (not enumerable either). */
  readonly queueLookup: ListLookup;
  readonly strictLookup: ListLookup;
}

/** Why a backup needs a unit, and where that reason comes in the backup's claim order. */
export interface Claim {
  readonly reason: string;
  /** Claim order: 0 pods, 1 PVCs, 2 PVs, 3 + i the i-th exclusive resource kind of the policy; then by `key`. */
  readonly rank: number;
  readonly key: string;
}

/** One piece of exclusive work a backup will do on an item, as the scope predicts it. */
export interface Action {
  /** `pod`, `pvc` or `pv`, and the item as the scope lists it (namespace/name; a PV by name). */
  readonly kind: "pod" | "pvc" | "pv";
  readonly item: string;
  readonly work: "pre hooks" | "post hooks" | "file-system backup" | "snapshot";
  /** The pod volume a file-system backup copies. */
  readonly volume?: string;
  /** The unit the work makes exclusive. */
  readonly unit: string;
}

/** Hears every action a scope predicts (the fidelity suite compares them with what Velero did). */
export type ActionTrace = (action: Action) => void;

/** What a backup touches inside one namespace. */
export interface ScopePart {
  readonly namespace: string;
  /** Pods and PVCs processed (namespace/name), PVs reached from this namespace; each sorted. */
  readonly pods: readonly string[];
  readonly pvcs: readonly string[];
  readonly pvs: readonly string[];
  /** Units included, sorted. */
  readonly units: readonly string[];
  /** Units needed exclusively, in claim order, with the first reason. */
  readonly claims: ReadonlyMap<string, Claim>;
  /** The keys of `claims`, in order: conflict checks walk it for every candidate pair, and an array walk allocates no iterator. */
  readonly claimed: readonly string[];
  /** PVs reached from this namespace whose claim is in another namespace (rare). */
  readonly foreignPvs: readonly PvInfo[];
  /** True when the part read a PV whose changes need not move this namespace's version. */
  readonly readsForeignPvs: boolean;
  /** Where the part's volume work runs. */
  readonly work: VolumeWork;
}

/**
 * Where a backup's volume work runs, as the scope predicts it (docs/rules.md, "Budgets"): the
 * CSI drivers and storage classes of the volumes it snapshots, and the nodes of the pods whose
 * volumes it copies with a file-system backup. Each list sorted, without repeats.
 */
export interface VolumeWork {
  readonly snapshotDrivers: readonly string[];
  readonly snapshotClasses: readonly string[];
  readonly fsBackupNodes: readonly string[];
}

// Not frozen: a frozen object gets a map of its own in V8, and parts read `work` in one shape.
export const NO_WORK: VolumeWork = { snapshotDrivers: [], snapshotClasses: [], fsBackupNodes: [] };

/** The work of several parts together. */
export function joinWork(works: readonly VolumeWork[]): VolumeWork {
  const busy = works.filter((w) => w !== NO_WORK);
  if (busy.length <= 1) return busy[0] ?? NO_WORK;
  const join = (pick: (w: VolumeWork) => readonly string[]) => [...new Set(busy.flatMap(pick))].sort(byString);
  return {
    snapshotDrivers: join((w) => w.snapshotDrivers),
    snapshotClasses: join((w) => w.snapshotClasses),
    fsBackupNodes: join((w) => w.fsBackupNodes),
  };
}

export interface ScopeClaims {
  /** The part in namespace `ns` when the backup needs some unit there exclusively. */
  partIn(ns: string): ScopePart | undefined;
  /** The namespaces where the backup needs some unit exclusively, in namespace order. */
  readonly namespaces: readonly string[];
  /** Its values, in the same order (a plan files thousands of these; no lookups needed). */
  readonly parts: readonly ScopePart[];
  /** How many units the backup needs exclusively. */
  readonly size: number;
}

/** The fields of a scope that do not depend on namespace contents. */
export interface ScopeHead {
  /** Non-empty when Velero would refuse the backup (FailedValidation): it then touches nothing. */
  readonly errors: readonly SpecError[];
  /** The namespace set Velero's own queue compares; the claim at namespace level. */
  readonly queueNamespaces: readonly string[];
  /** The namespaces the backup controller backs up. */
  readonly namespaces: readonly string[];
  /** The level this backup is judged at, and why when it is not the policy's. */
  readonly level: ConflictLevel;
  readonly levelReason?: string;
  /** Namespaces in scope annotated backup-gate.io/conflict-level: Namespace. */
  readonly strictNamespaces: readonly string[];
  /** Runs of one serial workload share this key and never run together. */
  readonly serialKey?: string;
  /** True when the backup lists PVs directly, so any PV change can change its scope. */
  readonly listsPvs: boolean;
  /** What else a person should know (e.g. a volume policy that could not be read). */
  readonly notes: readonly string[];
  /** Present when the backup is valid: what its parts are computed from. */
  readonly context?: PartContext;
}

/** Everything a part depends on besides the namespace's contents. */
export interface PartContext {
  /** Parts with equal keys (and namespaces) are equal. */
  readonly key: string;
  readonly spec: BackupSpec;
  readonly policy: Policy;
  readonly filter: ResourceFilter;
  readonly volumes: VolumeRules;
  readonly groupKey: string;
  /** Whether the label selectors list an item; absent without selectors, when every item is listed (its labels are not read). */
  readonly selected: ((labels: Labels) => boolean) | undefined;
}

/** Items labelled velero.io/exclude-from-backup=true never join a backup. */
export const isExcluded = (labels: Labels): boolean => labels[KEYS.excludeFromBackup] === "true";

export const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export function compareClaims(a: Claim, b: Claim): number {
  return a.rank - b.rank || byString(a.key, b.key);
}
