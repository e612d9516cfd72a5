import type { BackupInfo } from "../../../src/core/model.js";
import type { Policy } from "../../../src/core/policy.js";
import { scopeOf, type Action } from "../../../src/core/scope/scope.js";
import type { ClusterView } from "../../../src/core/view.js";

// What a backup does to each pod, PVC and PV: as the core predicts it, and as Velero did it.
// Both sides are written in the same terms, so that a difference is one line a person reads:
// "PersistentVolumeClaim ns/c1: predicted snapshot, Velero did nothing".

/** Exclusive work on an item. A snapshot is told on the claim (Velero's CSI action snapshots the PVC). */
export type Work = "pre hooks" | "post hooks" | "file-system backup" | "snapshot";

/** What can be observed in a run: items always; the rest only where pods really run (a kubelet). */
export type Dimension = "items" | "hooks" | "file-system backup" | "snapshot";

export interface ItemOutcome {
  readonly included: boolean;
  /** Exclusive work, with the volume for a pod's file-system backup ("file-system backup cfg"; on a claim, "file-system backup"). */
  readonly work: readonly string[];
}

/** Item key ("Pod ns/name", "PersistentVolumeClaim ns/name", "PersistentVolume name") -> outcome. */
export type Outcomes = ReadonlyMap<string, ItemOutcome>;

export interface Prediction {
  readonly outcomes: Outcomes;
  /** Item key -> the unit the core's claim for it names; checked against the cluster's unit. */
  readonly claimedUnits: ReadonlyMap<string, string>;
  /** The units the core says the backup includes. */
  readonly units: ReadonlySet<string>;
  readonly errors: readonly string[];
}

const workOf = (a: Action): string => (a.work === "file-system backup" ? `file-system backup ${a.volume}` : a.work);

/**
 * Where an action is told. A file-system backup of a claim is told on the claim: Velero copies a
 * claim once per backup, from the first pod in its block that opts it in, and skips it on the
 * others (pkg/backup/item_backupper.go, the pod volume tracker); the gate claims the claim's unit
 * either way. A PV's snapshot is told on its claim when it has one.
 */
function keyOfAction(a: Action, view: ClusterView): string {
  if (a.kind === "pv") return snapshotKeyOfPv(a.item, view);
  if (a.kind === "pvc") return `PersistentVolumeClaim ${a.item}`;
  const claim = a.work === "file-system backup" ? claimOfPodVolume(a.item, a.volume, view) : undefined;
  return claim ? `PersistentVolumeClaim ${claim}` : `Pod ${a.item}`;
}

/** "ns/claim" when volume `volume` of pod "ns/name" is a claim. */
function claimOfPodVolume(pod: string, volume: string | undefined, view: ClusterView): string | undefined {
  const [ns, name] = pod.split("/") as [string, string];
  const claimName = view
    .contents(ns)
    .pods.get(name)
    ?.volumes.find((v) => v.name === volume)?.claimName;
  return claimName ? `${ns}/${claimName}` : undefined;
}

/** A file-system backup told on a claim names no volume (pods name theirs differently). */
const workAt = (key: string, a: Action): string => (key.startsWith("PersistentVolumeClaim ") && a.work === "file-system backup" ? a.work : workOf(a));

/** The core's prediction for one backup over the cluster as the gate sees it. */
export function predict(backup: BackupInfo, view: ClusterView, policy: Policy): Prediction {
  const actions: Action[] = [];
  const scope = scopeOf(backup, view, policy, (a) => actions.push(a));
  const outcomes = new Map<string, { included: boolean; work: Set<string> }>();
  const at = (key: string) => {
    let o = outcomes.get(key);
    if (!o) {
      o = { included: false, work: new Set() };
      outcomes.set(key, o);
    }
    return o;
  };
  for (const p of scope.items.pods) at(`Pod ${p}`).included = true;
  for (const c of scope.items.pvcs) at(`PersistentVolumeClaim ${c}`).included = true;
  for (const v of scope.items.pvs) at(`PersistentVolume ${v}`).included = true;
  const claimedUnits = new Map<string, string>();
  for (const a of actions) {
    const key = keyOfAction(a, view);
    at(key).work.add(workAt(key, a));
    claimedUnits.set(key, a.unit);
  }
  return {
    outcomes: new Map([...outcomes].map(([k, o]) => [k, { included: o.included, work: [...o.work].sort() }])),
    claimedUnits,
    units: new Set(scope.units),
    errors: scope.errors.map((e) => `${e.field}: ${e.message}`),
  };
}

/** A PV's snapshot is told on its claim when it has one (so CSI and native snapshots compare alike). */
function snapshotKeyOfPv(pv: string, view: ClusterView): string {
  const ref = view.pv(pv)?.claimRef;
  return ref ? `PersistentVolumeClaim ${ref.namespace}/${ref.name}` : `PersistentVolume ${pv}`;
}

/** The unit an item belongs to in the cluster, cut with the policy's group key (the one claims must name). */
export function clusterUnitOf(key: string, view: ClusterView, policy: Policy): string | undefined {
  const [kind, ref] = key.split(" ") as [string, string];
  const [ns, name] = ref.split("/") as [string, string];
  const member = kind === "Pod" ? `pod:${name}` : kind === "PersistentVolumeClaim" ? `pvc:${name}` : undefined;
  return member ? view.contents(ns).unitOf(member, policy.volumeGroupSnapshotLabelKey)?.id : undefined;
}

export interface Mismatch {
  readonly item: string;
  readonly predicted: string;
  readonly observed: string;
}

/**
 * Every difference between prediction and observation, in the dimensions observed; plus every
 * claim whose unit is not the item's unit in the cluster, and every included pod or claim whose
 * unit is not among the backup's units (two backups' claims would then not compare, and a
 * shared item would not be seen as shared).
 */
export function compare(p: Prediction, observed: Outcomes, dimensions: ReadonlySet<Dimension>, unitOf: (key: string) => string | undefined): Mismatch[] {
  const out: Mismatch[] = [];
  const keys = [...new Set([...p.outcomes.keys(), ...observed.keys()])].sort();
  const visible = (work: readonly string[]) => work.filter((w) => dimensions.has(dimensionOf(w)));
  for (const key of keys) {
    const want = p.outcomes.get(key) ?? { included: false, work: [] };
    const got = observed.get(key) ?? { included: false, work: [] };
    if (dimensions.has("items") && want.included !== got.included) {
      out.push({ item: key, predicted: want.included ? "included" : "not included", observed: got.included ? "included" : "not included" });
    }
    const w = visible(want.work),
      g = visible(got.work);
    if (w.join() !== g.join()) out.push({ item: key, predicted: w.join(", ") || "nothing", observed: g.join(", ") || "nothing" });
  }
  for (const [key, unit] of p.claimedUnits) {
    const actual = unitOf(key);
    if (actual !== undefined && actual !== unit) out.push({ item: key, predicted: `claims unit ${unit}`, observed: `the item is in unit ${actual}` });
  }
  // Every pod and claim the core includes is in one of the units it says the backup includes.
  for (const [key, o] of p.outcomes) {
    if (!o.included || key.startsWith("PersistentVolume ")) continue;
    const actual = unitOf(key);
    if (actual !== undefined && !p.units.has(actual))
      out.push({ item: key, predicted: "included in none of the backup's units", observed: `the item is in unit ${actual}` });
  }
  return out;
}

function dimensionOf(work: string): Dimension {
  if (work.endsWith("hooks")) return "hooks";
  if (work.startsWith("file-system backup")) return "file-system backup";
  return "snapshot";
}

export function describeMismatches(list: readonly Mismatch[]): string {
  return list.map((m) => `${m.item}: predicted ${m.predicted}, Velero: ${m.observed}`).join("\n");
}
