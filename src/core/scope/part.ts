import type { PodInfo, PvcInfo, PvInfo } from "../model.js";
import type { NamespaceGraph } from "../namespaceGraph.js";
import type { ClusterView, NamespaceUnits } from "../view.js";
import { hooksOnPodIn } from "../velero/hooks.js";
import { byString, isExcluded, NO_WORK, type ActionTrace, type Claim, type PartContext, type ScopePart, type VolumeWork } from "./model.js";

// What a backup touches inside one namespace. The item collector lists what the filters and
// selectors admit; ItemBlock actions then pull in related items regardless of selectors (pod ->
// PVCs; bound PVC -> PV, running pods that mount it, volume-group siblings). An item joins a
// block, listed or related, only if it passes Velero's inclusion checks (resource filter, the
// exclude-from-backup label), so nothing is pulled in through an excluded item
// (pkg/backup/itemblock.go). Every pod in a block gets its hooks; an item being deleted joins its
// block but is not backed up (no data, not listed). Every relation but PVC -> PV stays inside a
// namespace, so a namespace's part is computed alone.

const NONE: readonly string[] = [];

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
  const graph = contents.graph();
  const items: BlockItems = {
    graph,
    flags: graph.derived(itemFlags),
    seen: collectBlocks(ctx, graph),
    pvsExcluded: ctx.filter.shouldExclude("persistentvolumes"),
  };
  const claims = new PartClaims(ctx, contents.units(ctx.policy.volumeGroupSnapshotLabelKey), graph, ns, trace);
  claims.ofPods(items);
  claims.ofPvcs(items);
  claims.ofPvs(items, extraPvs);
  claims.ofExclusiveResources(ns);
  return new Part(ns, items, claims, foreignPvsOf(items), graph.readsForeignPvs);
}

// A candidate's part is made on every admission review, and the item lists are read only when
// someone prints or compares them: the part keeps its items and spells the lists when first read.
class Part implements ScopePart {
  readonly namespace: string;
  readonly units: readonly string[];
  readonly claims: ReadonlyMap<string, Claim>;
  readonly claimed: readonly string[];
  readonly foreignPvs: readonly PvInfo[];
  readonly readsForeignPvs: boolean;
  #work: VolumeWork | WorkSeen;
  #items: BlockItems | undefined;
  #pods: readonly string[] | undefined;
  #pvcs: readonly string[] | undefined;
  #pvs: readonly string[] | undefined;

  constructor(ns: string, items: BlockItems, claims: PartClaims, foreignPvs: readonly PvInfo[], readsForeign: boolean) {
    this.namespace = ns;
    this.units = claims.unitList();
    this.claims = claims.claims;
    this.claimed = [...claims.claims.keys()];
    this.foreignPvs = foreignPvs;
    this.readsForeignPvs = readsForeign;
    this.#work = claims.work();
    this.#items = items;
    this.#pods = undefined;
    this.#pvcs = undefined;
    this.#pvs = undefined;
  }

  // Read only by the volume budgets: the drivers, classes and nodes seen are sorted when first read.
  get work(): VolumeWork {
    const work = this.#work;
    if (!(work instanceof WorkSeen)) return work;
    return (this.#work = work.sorted());
  }

  get pods(): readonly string[] {
    return (this.#pods ??= this.#spell().pods);
  }
  get pvcs(): readonly string[] {
    return (this.#pvcs ??= this.#spell().pvcs);
  }
  get pvs(): readonly string[] {
    return (this.#pvs ??= this.#spell().pvs);
  }

  /** All three lists at once, after which the items are let go. */
  #spell(): { pods: readonly string[]; pvcs: readonly string[]; pvs: readonly string[] } {
    const items = this.#items;
    if (items) {
      const { graph, flags } = items;
      const key = (x: { name: string }) => `${this.namespace}/${x.name}`;
      this.#pods = graph.pods.filter((_, p) => hasPod(items, p) && !((flags.pods[p] as number) & DELETING)).map(key);
      this.#pvcs = graph.pvcs.filter((_, c) => hasPvc(items, c)).map(key);
      this.#pvs = graph.pvs.filter((_, v) => hasPv(items, v)).map((pv) => pv.name);
      this.#items = undefined;
    }
    return { pods: this.#pods as readonly string[], pvcs: this.#pvcs as readonly string[], pvs: this.#pvs as readonly string[] };
  }
}

/** The items the blocks hold, marked by their index in the namespace's graph. */
interface Marks {
  readonly pods: Uint8Array;
  readonly pvcs: Uint8Array;
  readonly pvs: Uint8Array;
}

// What the block walk asks of each item, read off its labels and status once per namespace
// graph (`NamespaceGraph.derived`) instead of on every review: bits of ItemFlags.
const RUNNING = 1;
const JOINS = 2; // not labelled to be excluded (pods, claims); for a PV, not being deleted either
const DELETING = 4;
const BOUND = 8;
const FOREIGN = 16; // a PV bound to a claim in another namespace

interface ItemFlags {
  readonly pods: Uint8Array;
  readonly pvcs: Uint8Array;
  readonly pvs: Uint8Array;
  /** The claim each PV is bound to here (`boundClaimAt`). */
  readonly pvClaims: Int32Array;
}

function itemFlags(graph: NamespaceGraph): ItemFlags {
  const joins = (x: { readonly labels: PodInfo["labels"] }) => (isExcluded(x.labels) ? 0 : JOINS);
  return {
    pods: Uint8Array.from(graph.pods, (p) => (isPodRunning(p) ? RUNNING : 0) | joins(p) | (p.deleting ? DELETING : 0)),
    pvcs: Uint8Array.from(graph.pvcs, (c) => joins(c) | (c.deleting ? DELETING : 0) | (c.phase === "Bound" && c.volumeName ? BOUND : 0)),
    pvs: Uint8Array.from(graph.pvs, (v) => (v.deleting ? 0 : joins(v)) | (isForeignPv(v, graph.namespace) ? FOREIGN : 0)),
    pvClaims: Int32Array.from(graph.pvs, (v) => boundClaimAt(graph, v)),
  };
}

function isForeignPv(pv: PvInfo, ns: string): boolean {
  return !!pv.claimRef && pv.claimRef.namespace !== ns;
}

/** The claim of the graph's namespace `pv` is bound to, if that claim names it back; else -1. */
function boundClaimAt(graph: NamespaceGraph, pv: PvInfo): number {
  const ref = pv.claimRef;
  const c = ref && ref.namespace === graph.namespace ? graph.claimAt(ref.name) : -1;
  return c >= 0 && (graph.pvcs[c] as PvcInfo).volumeName === pv.name ? c : -1;
}

/** Every label key a claim of the namespace carries: with no claim labelled with its volume-group key, a walk looks for no sibling. */
function claimLabelKeys(graph: NamespaceGraph): ReadonlySet<string> {
  const keys = new Set<string>();
  for (const pvc of graph.pvcs) for (const key of Object.keys(pvc.labels)) keys.add(key);
  return keys;
}

/** The items of every block the namespace's listed items start. */
function collectBlocks(ctx: PartContext, graph: NamespaceGraph): Marks {
  const { filter, groupKey, selected } = ctx;
  const flags = graph.derived(itemFlags);
  const grouped = graph.derived(claimLabelKeys).has(groupKey);
  const podsIncluded = filter.shouldInclude("pods");
  const pvcsIncluded = filter.shouldInclude("persistentvolumeclaims");
  const podJoins = (p: number) => podsIncluded && ((flags.pods[p] as number) & JOINS) !== 0;
  const pvcJoins = (c: number) => pvcsIncluded && ((flags.pvcs[c] as number) & JOINS) !== 0;
  const { pods, pvcs, claims, claimsFrom, mounters, mountersFrom } = graph;
  const seen: Marks = { pods: new Uint8Array(pods.length), pvcs: new Uint8Array(pvcs.length), pvs: new Uint8Array(graph.pvs.length) };

  const visitPod = (p: number) => {
    if (seen.pods[p]) return;
    seen.pods[p] = 1;
    for (let k = claimsFrom[p] as number; k < (claimsFrom[p + 1] as number); k++) {
      const c = claims[k] as number;
      if (pvcJoins(c)) visitPvc(c);
    }
  };
  const visitPvc = (c: number) => {
    if (seen.pvcs[c]) return;
    seen.pvcs[c] = 1;
    if (!((flags.pvcs[c] as number) & BOUND)) return;
    const pv = graph.pvAt[c] as number;
    if (pv >= 0) seen.pvs[pv] = 1;
    for (let k = mountersFrom[c] as number; k < (mountersFrom[c + 1] as number); k++) {
      const p = mounters[k] as number;
      if ((flags.pods[p] as number) & RUNNING && podJoins(p)) visitPod(p);
    }
    const group = grouped ? (pvcs[c] as PvcInfo).labels[groupKey] : undefined;
    if (!group) return;
    for (let s = 0; s < pvcs.length; s++) if (s !== c && (pvcs[s] as PvcInfo).labels[groupKey] === group && pvcJoins(s)) visitPvc(s);
  };

  // Without selectors every item is listed, and the items themselves are not read.
  const podListed = (p: number) => podJoins(p) && (!selected || selected((pods[p] as PodInfo).labels));
  const pvcListed = (c: number) => pvcJoins(c) && (!selected || selected((pvcs[c] as PvcInfo).labels));
  if (podsIncluded) for (let p = 0; p < pods.length; p++) if (podListed(p)) visitPod(p);
  if (pvcsIncluded) for (let c = 0; c < pvcs.length; c++) if (pvcListed(c)) visitPvc(c);
  return seen;
}

/**
 * The blocks' items: the walk's marks, by index in the namespace's graph, read through `hasPod`,
 * `hasPvc` and `hasPv` (no list of them is made: most parts are never listed).
 */
interface BlockItems {
  readonly graph: NamespaceGraph;
  readonly flags: ItemFlags;
  readonly seen: Marks;
  /** The backup's resource filter leaves PVs out. */
  readonly pvsExcluded: boolean;
}

// The graph lists each kind in name order: inside one namespace that is the order of the
// namespace/name keys the scope lists.

/** Every pod of the blocks: those being deleted too, as they get their hooks. */
function hasPod(items: BlockItems, p: number): boolean {
  return items.seen.pods[p] === 1;
}

/** The blocks' claims, but those being deleted. */
function hasPvc(items: BlockItems, c: number): boolean {
  return items.seen.pvcs[c] === 1 && ((items.flags.pvcs[c] as number) & DELETING) === 0;
}

/** The PVs reached, but those excluded or being deleted. */
function hasPv(items: BlockItems, v: number): boolean {
  return !items.pvsExcluded && items.seen.pvs[v] === 1 && ((items.flags.pvs[v] as number) & JOINS) !== 0;
}

const NO_PVS: readonly PvInfo[] = [];

/** The PVs reached whose claim is in another namespace (rare). */
function foreignPvsOf(items: BlockItems): readonly PvInfo[] {
  const { graph, flags } = items;
  const isForeign = (v: number) => hasPv(items, v) && ((flags.pvs[v] as number) & FOREIGN) !== 0;
  for (let v = 0; v < graph.pvs.length; v++) if (isForeign(v)) return graph.pvs.filter((_, w) => isForeign(w));
  return NO_PVS;
}

type ClaimWork = "hooks" | "fs-backup" | "pvc-snapshot" | "pv-snapshot" | "exclusive";

// A part claims every unit it needs, but a reason is read only for the few units a conflict
// names: a claim keeps its pieces and spells its reason when first read (pinned in
// test/unit/reviewAllocations.test.ts).
class PartClaim implements Claim {
  readonly rank: number;
  readonly #work: ClaimWork;
  readonly #ns: string;
  /** The item claimed (none for an exclusive resource kind): read only when the key is. */
  readonly #item: { readonly name: string } | undefined;
  readonly #what: string;
  readonly #detail: string;
  #reason: string | undefined;

  constructor(work: ClaimWork, rank: number, ns: string, item: { readonly name: string } | undefined, what = "", detail = "") {
    this.rank = rank;
    this.#work = work;
    this.#ns = ns;
    this.#item = item;
    this.#what = what;
    this.#detail = detail;
    this.#reason = undefined;
  }

  // Spelled when read (to order a conflict's few named units, or in a reason), not kept: most
  // claims are never read, and reading one reads its item, which lies elsewhere in the heap.
  get key(): string {
    const item = this.#item;
    if (!item) return this.#ns;
    return this.#work === "pv-snapshot" ? item.name : `${this.#ns}/${item.name}`;
  }

  get reason(): string {
    return (this.#reason ??= this.#spell());
  }

  #spell(): string {
    const { key } = this;
    const what = this.#what;
    switch (this.#work) {
      case "hooks":
        return `run ${what} hooks on pod ${key} (${this.#detail})`;
      case "fs-backup":
        return `file-system back up volume ${what} of pod ${key}`;
      case "pvc-snapshot":
        return `snapshot PVC ${key}`;
      case "pv-snapshot":
        return `snapshot PV ${key}`;
      case "exclusive":
        return `back up ${what} in namespace ${key} (an exclusive resource)`;
    }
  }
}

/** Where a part's volume work runs, as seen item by item (with repeats): sorted only if read. */
class WorkSeen {
  /** Each snapshot's PV and claim, read only when sorted: parallel lists. */
  readonly snapshotPvs: (PvInfo | undefined)[] = [];
  readonly snapshotPvcs: (PvcInfo | undefined)[] = [];
  /** The pods whose volumes get a file-system backup, read only when sorted (for their nodes). */
  readonly fsBackupPods: PodInfo[] = [];

  sorted(): VolumeWork {
    const sorted = (seen: readonly (string | undefined)[]) => [...new Set(seen.filter((x) => !!x) as string[])].sort(byString);
    // A snapshot's CSI driver, and its storage class: the claim's, else the volume's.
    const drivers = this.snapshotPvs.map((pv) => pv?.csi?.driver);
    const classes = this.snapshotPvcs.map((pvc, i) => pvc?.storageClassName || this.snapshotPvs[i]?.storageClassName);
    const nodes = this.fsBackupPods.map((pod) => pod.nodeName);
    return { snapshotDrivers: sorted(drivers), snapshotClasses: sorted(classes), fsBackupNodes: sorted(nodes) };
  }
}

/** The units a part includes and those it needs exclusively, each with the first reason found; and where its volume work runs. */
class PartClaims {
  readonly claims = new Map<string, Claim>();
  readonly #ctx: PartContext;
  readonly #units: NamespaceUnits;
  readonly #graph: NamespaceGraph;
  readonly #ns: string;
  readonly #trace: ActionTrace | undefined;
  /** The namespace's units the part includes, marked by number: read back in name order, no set and no sort. */
  readonly #included: Uint8Array;
  /** Units beyond the namespace's items (the exclusive resource kinds). */
  #others: string[] | undefined;
  // Made on first use: most parts do no volume work, and a plan makes thousands of parts.
  #seen: WorkSeen | undefined;

  constructor(ctx: PartContext, units: NamespaceUnits, graph: NamespaceGraph, ns: string, trace: ActionTrace | undefined) {
    this.#ctx = ctx;
    this.#units = units;
    this.#graph = graph;
    this.#ns = ns;
    this.#trace = trace;
    this.#included = new Uint8Array(units.names.length);
  }

  /** The units included, sorted. */
  unitList(): string[] {
    const { names } = this.#units;
    const list: string[] = [];
    for (let u = 0; u < names.length; u++) if (this.#included[u]) list.push(names[u] as string);
    return this.#others ? [...new Set([...list, ...this.#others])].sort(byString) : list;
  }

  work(): VolumeWork | WorkSeen {
    return this.#seen ?? NO_WORK;
  }

  /** A snapshot of `pv` (claimed by `pvc`). */
  #snapshotWork(pv: PvInfo | undefined, pvc: PvcInfo | undefined): void {
    const seen = (this.#seen ??= new WorkSeen());
    seen.snapshotPvs.push(pv);
    seen.snapshotPvcs.push(pvc);
  }

  /** True when `unit` is not claimed yet: only the first reason is kept, so later ones are not spelled. */
  #unclaimed(unit: string): boolean {
    return !this.claims.has(unit);
  }
  #claim(unit: string, claim: PartClaim): void {
    this.claims.set(unit, claim);
  }

  // Units are the cluster's, cut with the policy's group key: a backup's own key changes what it
  // pulls in, never which unit an item belongs to, so claims of two backups always compare.
  // `#units` is that key's; each returns the unit's name and marks it included.
  #include(unit: number): string {
    this.#included[unit] = 1;
    return this.#units.names[unit] as string;
  }

  // Indexed loops: the hook and volume lists are often frozen empties, and for-of over a mix of
  // frozen and plain arrays fell back to iterator objects, 8 KB a candidate (docs/performance.md).
  // Items are read off the graph's facts by index; an item itself only when a claim is read.
  ofPods(items: BlockItems): void {
    const { graph, flags } = items;
    for (let p = 0; p < graph.pods.length; p++) {
      if (!hasPod(items, p)) continue;
      const unit = this.#include(this.#units.pods[p] as number);
      const hooks = hooksOnPodIn(graph, p, this.#ctx.spec);
      const volumes = (flags.pods[p] as number) & DELETING ? NONE : this.#ctx.volumes.fsBackupVolumes(graph, p);
      if (hooks.length === 0 && volumes.length === 0) continue;
      const pod = graph.pods[p] as PodInfo;
      for (let h = 0; h < hooks.length; h++) {
        const hook = hooks[h] as (typeof hooks)[number];
        if (this.#unclaimed(unit)) this.#claim(unit, new PartClaim("hooks", 0, this.#ns, pod, hook.phase, hook.source));
        this.#trace?.({ kind: "pod", item: `${this.#ns}/${pod.name}`, work: `${hook.phase} hooks`, unit });
      }
      for (let v = 0; v < volumes.length; v++) {
        const volume = volumes[v] as string;
        if (this.#unclaimed(unit)) this.#claim(unit, new PartClaim("fs-backup", 0, this.#ns, pod, volume));
        this.#trace?.({ kind: "pod", item: `${this.#ns}/${pod.name}`, work: "file-system backup", volume, unit });
        (this.#seen ??= new WorkSeen()).fsBackupPods.push(pod);
      }
    }
  }

  // Velero snapshots a claim's volume only when the claim is bound.
  ofPvcs(items: BlockItems): void {
    const { graph, flags } = items;
    for (let c = 0; c < graph.pvcs.length; c++) {
      if (!hasPvc(items, c)) continue;
      const unit = this.#include(this.#units.pvcs[c] as number);
      const pv = graph.pvOf(c);
      if (!((flags.pvcs[c] as number) & BOUND) || !this.#ctx.volumes.snapshots(pv, graph, c)) continue;
      const pvc = graph.pvcs[c] as PvcInfo;
      if (this.#unclaimed(unit)) this.#claim(unit, new PartClaim("pvc-snapshot", 1, this.#ns, pvc));
      this.#snapshotWork(pv, pvc);
      this.#trace?.({ kind: "pvc", item: `${this.#ns}/${pvc.name}`, work: "snapshot", unit });
    }
  }

  // A PV is cluster-scoped: it counts toward a unit (and can make it exclusive) only through a
  // claim in one of the backup's namespaces, so that cluster-scoped items never conflict.
  // `extraPvs`: PVs reached elsewhere and bound here. A PV bound elsewhere claims nothing here.
  ofPvs(items: BlockItems, extraPvs: readonly PvInfo[]): void {
    const graph = this.#graph;
    if (extraPvs.length === 0) {
      // The graph's PVs in name order, each with its claim here found once per graph.
      const { pvClaims } = items.flags;
      for (let v = 0; v < graph.pvs.length; v++) if (hasPv(items, v)) this.#ofPv(graph.pvs[v] as PvInfo, pvClaims[v] as number);
      return;
    }
    const bound = [...graph.pvs.filter((_, v) => hasPv(items, v)), ...extraPvs].sort((a, b) => byString(a.name, b.name));
    for (const pv of bound) this.#ofPv(pv, boundClaimAt(graph, pv));
  }

  /** PV `pv`, bound to claim c of the namespace (-1: to none here). */
  #ofPv(pv: PvInfo, c: number): void {
    if (c < 0) return;
    const unit = this.#include(this.#units.pvcs[c] as number);
    if (!this.#ctx.volumes.snapshots(pv, this.#graph, c)) return;
    if (this.#unclaimed(unit)) this.#claim(unit, new PartClaim("pv-snapshot", 2, this.#ns, pv));
    this.#snapshotWork(pv, this.#graph.pvcs[c]);
    this.#trace?.({ kind: "pv", item: pv.name, work: "snapshot", unit });
  }

  ofExclusiveResources(ns: string): void {
    this.#ctx.policy.exclusiveResources.forEach((kind, i) => {
      if (!this.#ctx.filter.shouldInclude(kind)) return;
      const unit = `${ns}/${kind}`;
      (this.#others ??= []).push(unit);
      if (this.#unclaimed(unit)) this.#claim(unit, new PartClaim("exclusive", 3 + i, ns, undefined, kind));
    });
  }
}
