import type { PodInfo, PvcInfo, PvInfo } from "../model.js";
import type { ClusterView, NamespaceContents } from "../view.js";
import { hooksOnPod } from "../velero/hooks.js";
import { byString, isExcluded, NO_WORK, type ActionTrace, type Claim, type PartContext, type ScopePart, type VolumeWork } from "./model.js";

// What a backup touches inside one namespace. The item collector lists what the filters and
// selectors admit; ItemBlock actions then pull in related items regardless of selectors (pod ->
// PVCs; bound PVC -> PV, running pods that mount it, volume-group siblings). An item joins a
// block, listed or related, only if it passes Velero's inclusion checks (resource filter, the
// exclude-from-backup label), so nothing is pulled in through an excluded item
// (pkg/backup/itemblock.go). Every pod in a block gets its hooks; an item being deleted joins its
// block but is not backed up (no data, not listed). Every relation but PVC -> PV stays inside a
// namespace, so a namespace's part is computed alone.

export function isPodRunning(pod: PodInfo): boolean {
  return pod.phase === "Running" && !!pod.nodeName && !pod.deleting;
}

/**
 * The part of namespace `ns`. `extraPvs`: PVs processed through another namespace, or listed
 * directly, that are bound to a claim in this namespace (they can claim the claim's unit).
 */
export function scopePart(
  ctx: PartContext,
  view: ClusterView,
  ns: string,
  extraPvs: readonly PvInfo[] = [],
  trace?: ActionTrace,
): ScopePart {
  const contents = view.contents(ns);
  const seen = collectBlocks(ctx, view, contents);
  const items = sortedItems(ctx, ns, seen);
  const { foreignPvs, local } = byClaimNamespace(items.reached, ns);
  const bound = extraPvs.length === 0 ? local : [...local, ...extraPvs].sort((a, b) => byString(a.name, b.name));
  const claims = new PartClaims(ctx, view, contents, trace);
  claims.ofPods(items.blockPods);
  claims.ofPvcs(items.pvcs);
  claims.ofPvs(bound, ns);
  claims.ofExclusiveResources(ns);
  return {
    namespace: ns,
    pods: items.pods.map((x) => x.key),
    pvcs: items.pvcs.map((x) => x.key),
    pvs: items.reached.map((v) => v.name),
    units: [...claims.units].sort(byString),
    claims: claims.claims,
    claimed: [...claims.claims.keys()],
    foreignPvs,
    readsForeignPvs: readsForeignPvs(view, contents, ns),
    work: claims.work(),
  };
}

interface Seen {
  readonly pods: Set<PodInfo>;
  readonly pvcs: Set<PvcInfo>;
  readonly pvs: Set<PvInfo>;
}

/** The items of every block the namespace's listed items start. */
function collectBlocks(ctx: PartContext, view: ClusterView, contents: NamespaceContents): Seen {
  const { filter, groupKey, selected } = ctx;
  const podsIncluded = filter.shouldInclude("pods");
  const pvcsIncluded = filter.shouldInclude("persistentvolumeclaims");
  const podJoins = (p: PodInfo) => podsIncluded && !isExcluded(p.labels);
  const pvcJoins = (c: PvcInfo) => pvcsIncluded && !isExcluded(c.labels);
  const seen: Seen = { pods: new Set<PodInfo>(), pvcs: new Set<PvcInfo>(), pvs: new Set<PvInfo>() };

  const visitPod = (pod: PodInfo) => {
    if (seen.pods.has(pod)) return;
    seen.pods.add(pod);
    for (const v of pod.volumes) {
      const pvc = v.claimName ? contents.pvcs.get(v.claimName) : undefined;
      if (pvc && pvcJoins(pvc)) visitPvc(pvc);
    }
  };
  const visitPvc = (pvc: PvcInfo) => {
    if (seen.pvcs.has(pvc)) return;
    seen.pvcs.add(pvc);
    if (pvc.phase !== "Bound" || !pvc.volumeName) return;
    const pv = view.pv(pvc.volumeName);
    if (pv) seen.pvs.add(pv);
    for (const pod of contents.podsMounting(pvc.name)) {
      if (isPodRunning(pod) && podJoins(pod)) visitPod(pod);
    }
    const group = pvc.labels[groupKey];
    if (!group) return;
    for (const sibling of contents.pvcs.values()) {
      if (sibling !== pvc && sibling.labels[groupKey] === group && pvcJoins(sibling)) visitPvc(sibling);
    }
  };

  if (podsIncluded) for (const pod of contents.pods.values()) if (selected(pod.labels) && podJoins(pod)) visitPod(pod);
  if (pvcsIncluded) for (const pvc of contents.pvcs.values()) if (selected(pvc.labels) && pvcJoins(pvc)) visitPvc(pvc);
  return seen;
}

interface Keyed<T> {
  readonly key: string;
  readonly x: T;
}

/** The blocks' items as the scope lists them, sorted once by precomputed keys (namespace/name). */
function sortedItems(ctx: PartContext, ns: string, seen: Seen) {
  const byKey = <T>(items: Iterable<T>, keyOf: (x: T) => string): Keyed<T>[] =>
    [...items].map((x) => ({ key: keyOf(x), x })).sort((a, b) => byString(a.key, b.key));
  const pvsExcluded = ctx.filter.shouldExclude("persistentvolumes");
  const blockPods = byKey(seen.pods, (p) => `${ns}/${p.name}`);
  return {
    blockPods,
    pods: blockPods.filter(({ x }) => !x.deleting),
    pvcs: byKey(
      [...seen.pvcs].filter((c) => !c.deleting),
      (c) => `${ns}/${c.name}`,
    ),
    reached: [...seen.pvs].filter((v) => !pvsExcluded && !isExcluded(v.labels) && !v.deleting).sort((a, b) => byString(a.name, b.name)),
  };
}

/** The PVs reached whose claim is in another namespace (rare), and the others. */
function byClaimNamespace(reached: readonly PvInfo[], ns: string): { foreignPvs: PvInfo[]; local: PvInfo[] } {
  const foreignPvs: PvInfo[] = [];
  const local: PvInfo[] = [];
  for (const pv of reached) {
    if (pv.claimRef && pv.claimRef.namespace !== ns) foreignPvs.push(pv);
    else local.push(pv);
  }
  return { foreignPvs, local };
}

/** The units a part includes and those it needs exclusively, each with the first reason found; and where its volume work runs. */
class PartClaims {
  readonly units = new Set<string>();
  readonly claims = new Map<string, Claim>();
  readonly #ctx: PartContext;
  readonly #view: ClusterView;
  readonly #contents: NamespaceContents;
  readonly #trace: ActionTrace | undefined;
  // Made on first use: most parts do no volume work, and a plan makes thousands of parts.
  #drivers: Set<string> | undefined;
  #classes: Set<string> | undefined;
  #nodes: Set<string> | undefined;

  constructor(ctx: PartContext, view: ClusterView, contents: NamespaceContents, trace: ActionTrace | undefined) {
    this.#ctx = ctx;
    this.#view = view;
    this.#contents = contents;
    this.#trace = trace;
  }

  work(): VolumeWork {
    if (!this.#drivers && !this.#classes && !this.#nodes) return NO_WORK;
    const sorted = (s: ReadonlySet<string> | undefined) => (s ? [...s].sort(byString) : []);
    return { snapshotDrivers: sorted(this.#drivers), snapshotClasses: sorted(this.#classes), fsBackupNodes: sorted(this.#nodes) };
  }

  /** A snapshot of `pv` (claimed by `pvc`): its CSI driver and storage class (the claim's, else the volume's). */
  #snapshotWork(pv: PvInfo | undefined, pvc: PvcInfo | undefined): void {
    const driver = pv?.csi?.driver;
    if (driver) (this.#drivers ??= new Set()).add(driver);
    const storageClass = pvc?.storageClassName || pv?.storageClassName;
    if (storageClass) (this.#classes ??= new Set()).add(storageClass);
  }

  #claim(unit: string, reason: string, rank: number, key: string): void {
    if (!this.claims.has(unit)) this.claims.set(unit, { reason, rank, key });
  }

  // Units are the cluster's, cut with the policy's group key: a backup's own key changes what it
  // pulls in, never which unit an item belongs to, so claims of two backups always compare.
  #podUnit(name: string): string | undefined {
    return this.#contents.podUnit(name, this.#ctx.policy.volumeGroupSnapshotLabelKey)?.id;
  }
  #pvcUnit(name: string): string | undefined {
    return this.#contents.pvcUnit(name, this.#ctx.policy.volumeGroupSnapshotLabelKey)?.id;
  }

  ofPods(blockPods: readonly Keyed<PodInfo>[]): void {
    for (const { key, x: pod } of blockPods) {
      const unit = this.#podUnit(pod.name);
      if (!unit) continue;
      this.units.add(unit);
      for (const hook of hooksOnPod(pod, this.#ctx.spec)) {
        this.#claim(unit, `run ${hook.phase} hooks on pod ${key} (${hook.source})`, 0, key);
        this.#trace?.({ kind: "pod", item: key, work: `${hook.phase} hooks`, unit });
      }
      if (pod.deleting) continue;
      for (const volume of this.#ctx.volumes.fsBackupVolumes(pod)) {
        this.#claim(unit, `file-system back up volume ${volume} of pod ${key}`, 0, key);
        this.#trace?.({ kind: "pod", item: key, work: "file-system backup", volume, unit });
        if (pod.nodeName) (this.#nodes ??= new Set()).add(pod.nodeName);
      }
    }
  }

  ofPvcs(pvcs: readonly Keyed<PvcInfo>[]): void {
    for (const { key, x: pvc } of pvcs) {
      const unit = this.#pvcUnit(pvc.name);
      if (!unit) continue;
      this.units.add(unit);
      if (!this.#ctx.volumes.snapshotsPvc(pvc)) continue;
      this.#claim(unit, `snapshot PVC ${key}`, 1, key);
      this.#snapshotWork(pvc.volumeName === undefined ? undefined : this.#view.pv(pvc.volumeName), pvc);
      this.#trace?.({ kind: "pvc", item: key, work: "snapshot", unit });
    }
  }

  // A PV is cluster-scoped: it counts toward a unit (and can make it exclusive) only through a
  // claim in one of the backup's namespaces, so that cluster-scoped items never conflict.
  ofPvs(bound: readonly PvInfo[], ns: string): void {
    for (const pv of bound) {
      const ref = pv.claimRef;
      const pvc = ref && ref.namespace === ns ? this.#contents.pvcs.get(ref.name) : undefined;
      const unit = pvc?.volumeName === pv.name ? this.#pvcUnit(pvc.name) : undefined;
      if (!unit) continue;
      this.units.add(unit);
      if (!this.#ctx.volumes.snapshotsPv(pv)) continue;
      this.#claim(unit, `snapshot PV ${pv.name}`, 2, pv.name);
      this.#snapshotWork(pv, pvc);
      this.#trace?.({ kind: "pv", item: pv.name, work: "snapshot", unit });
    }
  }

  ofExclusiveResources(ns: string): void {
    this.#ctx.policy.exclusiveResources.forEach((kind, i) => {
      if (!this.#ctx.filter.shouldInclude(kind)) return;
      const unit = `${ns}/${kind}`;
      this.units.add(unit);
      this.#claim(unit, `back up ${kind} in namespace ${ns} (an exclusive resource)`, 3 + i, ns);
    });
  }
}

// Changes to a PV move the version of the namespace of its claim; a PV read here whose claim
// is elsewhere (or a PV that is missing) can change without this namespace hearing of it.
function readsForeignPvs(view: ClusterView, contents: NamespaceContents, ns: string): boolean {
  for (const pvc of contents.pvcs.values()) {
    if (!pvc.volumeName) continue;
    const pv = view.pv(pvc.volumeName);
    if (!pv || pv.claimRef?.namespace !== ns) return true;
  }
  return false;
}
