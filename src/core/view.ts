import type { ConfigMapInfo, NamespaceInfo, PodInfo, PvcInfo, PvInfo, RestoreInfo } from "./model.js";
import { NamespaceGraph, type PvSource } from "./namespaceGraph.js";
import { NameTable, type Named } from "./nameTable.js";

// The cluster view: every object the core reads, indexed by namespace. Each namespace keeps a
// version that moves whenever anything in it (or a PV bound into it) changes, so that scopes
// and units computed for it can be reused until then. Mutators are called by the informers;
// readers by the core. Nothing here does I/O.

/** Members of one unit: a connected component of pods, PVCs and PVs. */
export interface Unit {
  readonly id: string;
  readonly pods: readonly string[];
  readonly pvcs: readonly string[];
  readonly pvs: readonly string[];
}

export class NamespaceContents {
  readonly pods = new NameTable<PodInfo>();
  readonly pvcs = new NameTable<PvcInfo>();
  version = 0;
  private unitIndex?: UnitIndex;
  private graphOf?: { readonly graph: NamespaceGraph; readonly pvVersion: number };

  constructor(
    readonly namespace: string,
    private readonly pvs: PvSource,
    private readonly onTouch?: (namespace: string) => void,
  ) {}

  touch(): void {
    this.version++;
    this.onTouch?.(this.namespace);
    this.unitIndex = undefined;
    this.graphOf = undefined;
  }

  /** The namespace's items and relations by index (namespaceGraph.ts), with the view's PVs as they are now. */
  graph(): NamespaceGraph {
    if (this.graphOf?.pvVersion !== this.pvs.pvVersion) {
      const { namespace, pods, pvcs, pvs } = this;
      this.graphOf = { graph: new NamespaceGraph({ namespace, pods, pvcs, pvs }), pvVersion: pvs.pvVersion };
    }
    return this.graphOf.graph;
  }

  /** The unit holding `pod:NAME` or `pvc:NAME`, under the volume-group label key given, with its members spelled. */
  unitOf(member: string, volumeGroupKey: string): Unit | undefined {
    const id = member.startsWith("pod:")
      ? this.podUnit(member.slice(4), volumeGroupKey)
      : member.startsWith("pvc:")
        ? this.pvcUnit(member.slice(4), volumeGroupKey)
        : undefined;
    return id === undefined ? undefined : this.spellUnit(id, volumeGroupKey);
  }
  /** The id of the unit holding the pod. */
  podUnit(pod: string, volumeGroupKey: string): string | undefined {
    const units = this.units(volumeGroupKey);
    return units.names[units.pods[this.pods.indexOf(pod)] ?? -1];
  }
  /** The id of the unit holding the claim. */
  pvcUnit(pvc: string, volumeGroupKey: string): string | undefined {
    const units = this.units(volumeGroupKey);
    return units.names[units.pvcs[this.pvcs.indexOf(pvc)] ?? -1];
  }

  /** Each pod's and claim's unit, by their index in `graph()`'s lists. */
  units(volumeGroupKey: string): NamespaceUnits {
    if (this.unitIndex?.key !== volumeGroupKey) this.unitIndex = { key: volumeGroupKey, ...computeUnits(this, volumeGroupKey) };
    return this.unitIndex;
  }

  private spellUnit(id: string, volumeGroupKey: string): Unit {
    const { names, pods, pvcs } = this.units(volumeGroupKey);
    const named = (items: NameTable<Named>, unitAt: Int32Array) =>
      items.toArray().flatMap((x, i) => (names[unitAt[i] as number] === id ? [x.name] : []));
    const claims = named(this.pvcs, pvcs);
    const pvs = claims.flatMap((c) => this.pvcs.get(c)?.volumeName || []).sort();
    return { id, pods: named(this.pods, pods), pvcs: claims, pvs };
  }
}

/**
 * A namespace's units under one volume-group key. Each pod's and claim's unit is a number, its
 * place in `names` (the unit ids in name order), kept in typed arrays indexed like the tables
 * and the graph (both in name order): a part marks its units by number, and a Map of name to
 * unit id cost about 37 B per item (docs/performance.md, "Units by number").
 */
export interface NamespaceUnits {
  /** The unit ids, in name order. */
  readonly names: readonly string[];
  /** pods[p]: the unit of the graph's pod p, an index into `names`. */
  readonly pods: Int32Array;
  readonly pvcs: Int32Array;
}

// The index keeps only each member's unit: the core asks which unit an item is in, never what
// else is in it, and member lists per unit were most of a namespace's heap (docs/performance.md).
// It is dropped whenever the namespace changes, so its arrays stay indexed like the tables.
interface UnitIndex extends NamespaceUnits {
  readonly key: string;
}

// Union-find over the ItemBlock relations Velero follows: a pod and the PVCs it mounts, a PVC
// and its PV, PVCs sharing a volume-group label value. Units are named by their smallest
// member so that the same cluster always yields the same names.
function computeUnits(ns: NamespaceContents, volumeGroupKey: string): NamespaceUnits {
  const parent = new Map<string, string>();
  const find = (x: string): string => {
    let root = x;
    while (parent.get(root) !== root) root = parent.get(root) as string;
    let cur = x;
    while (cur !== root) {
      const next = parent.get(cur) as string;
      parent.set(cur, root);
      cur = next;
    }
    return root;
  };
  const union = (a: string, b: string) => {
    const ra = find(a),
      rb = find(b);
    if (ra !== rb) {
      if (ra < rb) parent.set(rb, ra);
      else parent.set(ra, rb);
    }
  };
  for (const name of ns.pods.keys()) parent.set(`pod:${name}`, `pod:${name}`);
  for (const name of ns.pvcs.keys()) parent.set(`pvc:${name}`, `pvc:${name}`);
  for (const pod of ns.pods.values()) {
    for (const v of pod.volumes) {
      if (v.claimName !== undefined && ns.pvcs.has(v.claimName)) union(`pod:${pod.name}`, `pvc:${v.claimName}`);
    }
  }
  const groups = new Map<string, string>();
  for (const pvc of ns.pvcs.values()) {
    const group = pvc.labels[volumeGroupKey];
    if (!group) continue;
    const first = groups.get(group);
    if (first) union(first, `pvc:${pvc.name}`);
    else groups.set(group, `pvc:${pvc.name}`);
  }
  return unitIdsOf(ns, find);
}

/** Each member's unit, from the union-find forest: ids are the namespace and the unit's root. */
function unitIdsOf(ns: NamespaceContents, find: (x: string) => string): NamespaceUnits {
  const podRoots = [...ns.pods.keys()].map((name) => find(`pod:${name}`));
  const claimRoots = [...ns.pvcs.keys()].map((name) => find(`pvc:${name}`));
  // Every id starts with the same namespace, so the roots' order is the ids' order.
  const roots = [...new Set([...podRoots, ...claimRoots])].sort();
  const numberOf = new Map(roots.map((root, i) => [root, i]));
  const numbers = (of: readonly string[]) => Int32Array.from(of, (root) => numberOf.get(root) as number);
  return { names: roots.map((root) => `${ns.namespace}/${root}`), pods: numbers(podRoots), pvcs: numbers(claimRoots) };
}

/** How many contents changes the view remembers by namespace (see `changedSince`). */
const CHANGE_LOG = 1024;

export class ClusterView {
  /** False until every source of the view has been listed; scopes are then judged at namespace level. */
  synced = true;
  /** Moves when the set of namespaces, or any namespace's labels or annotations, changes. */
  namespacesVersion = 0;
  /** Moves when any PV changes (directly collected PVs depend on it). */
  pvVersion = 0;
  /** Moves whenever any namespace's contents version moves (a cheap "nothing changed" check). */
  contentsVersion = 0;
  // Which namespace each recent contents version moved, so that a plan can redo only what an
  // event touched: touchLog[v % CHANGE_LOG] is the namespace whose change made version v + 1.
  private readonly touchLog: string[] = [];
  private readonly nsInfo = new Map<string, NamespaceInfo>();
  private readonly nsContents = new Map<string, NamespaceContents>();
  private readonly pvByName = new Map<string, PvInfo>();
  private readonly cms = new Map<string, ConfigMapInfo & { version: number }>();
  /** Moves whenever a Restore is added, changes or goes (a plan made before then is not reused). */
  restoresVersion = 0;
  private readonly restoreByKey = new Map<string, RestoreInfo>();
  private sortedNames?: string[];
  private cmVersion = 0;

  namespaceNames(): readonly string[] {
    this.sortedNames ??= [...this.nsInfo.keys()].sort();
    return this.sortedNames;
  }
  namespace(name: string): NamespaceInfo | undefined {
    return this.nsInfo.get(name);
  }
  contents(namespace: string): NamespaceContents {
    let c = this.nsContents.get(namespace);
    if (!c) {
      c = new NamespaceContents(namespace, this, (ns) => this.touched(ns));
      this.nsContents.set(namespace, c);
    }
    return c;
  }
  /**
   * The namespaces whose contents changed since `contentsVersion` was `version`, or undefined
   * when that is too long ago to know (then everything may have changed).
   */
  changedSince(version: number): ReadonlySet<string> | undefined {
    if (version > this.contentsVersion || this.contentsVersion - version > CHANGE_LOG) return undefined;
    const changed = new Set<string>();
    for (let v = version; v < this.contentsVersion; v++) changed.add(this.touchLog[v % CHANGE_LOG] as string);
    return changed;
  }
  /** Every namespace, every pod and every PVC, unsorted (for what a watch holds). */
  namespaces(): IterableIterator<NamespaceInfo> {
    return this.nsInfo.values();
  }
  *allPods(): IterableIterator<PodInfo> {
    for (const c of this.nsContents.values()) yield* c.pods.values();
  }
  *allPvcs(): IterableIterator<PvcInfo> {
    for (const c of this.nsContents.values()) yield* c.pvcs.values();
  }
  /** The claim, if held (unlike `contents`, makes no entry for an unknown namespace). */
  pvc(namespace: string, name: string): PvcInfo | undefined {
    return this.nsContents.get(namespace)?.pvcs.get(name);
  }
  pv(name: string): PvInfo | undefined {
    return this.pvByName.get(name);
  }
  pvs(): IterableIterator<PvInfo> {
    return this.pvByName.values();
  }
  configMaps(): IterableIterator<ConfigMapInfo> {
    return this.cms.values();
  }
  configMap(namespace: string, name: string): (ConfigMapInfo & { version: number }) | undefined {
    return this.cms.get(`${namespace}/${name}`);
  }

  /** Velero Restores, as observed (any phase, any namespace). */
  restores(): IterableIterator<RestoreInfo> {
    return this.restoreByKey.values();
  }
  restore(namespace: string, name: string): RestoreInfo | undefined {
    return this.restoreByKey.get(`${namespace}/${name}`);
  }

  setNamespace(ns: NamespaceInfo): void {
    if (!this.nsInfo.has(ns.name)) this.sortedNames = undefined;
    this.nsInfo.set(ns.name, ns);
    this.namespacesVersion++;
  }
  deleteNamespace(name: string): void {
    if (this.nsInfo.delete(name)) {
      this.sortedNames = undefined;
      this.namespacesVersion++;
    }
  }
  setPod(pod: PodInfo): void {
    const c = this.contents(pod.namespace);
    c.pods.set(pod);
    c.touch();
  }
  deletePod(namespace: string, name: string): void {
    const c = this.contents(namespace);
    if (c.pods.delete(name)) c.touch();
  }
  setPvc(pvc: PvcInfo): void {
    const c = this.contents(pvc.namespace);
    c.pvcs.set(pvc);
    c.touch();
  }
  deletePvc(namespace: string, name: string): void {
    const c = this.contents(namespace);
    if (c.pvcs.delete(name)) c.touch();
  }
  setPv(pv: PvInfo): void {
    this.touchClaimOf(this.pvByName.get(pv.name));
    this.pvByName.set(pv.name, pv);
    this.touchClaimOf(pv);
    this.pvVersion++;
  }
  deletePv(name: string): void {
    const old = this.pvByName.get(name);
    if (!old) return;
    this.pvByName.delete(name);
    this.touchClaimOf(old);
    this.pvVersion++;
  }
  setConfigMap(cm: ConfigMapInfo): void {
    this.cms.set(`${cm.namespace}/${cm.name}`, { ...cm, version: ++this.cmVersion });
  }
  deleteConfigMap(namespace: string, name: string): void {
    this.cms.delete(`${namespace}/${name}`);
    this.cmVersion++;
  }

  setRestore(r: RestoreInfo): void {
    this.restoreByKey.set(`${r.namespace}/${r.name}`, r);
    this.restoresVersion++;
  }
  deleteRestore(namespace: string, name: string): void {
    if (this.restoreByKey.delete(`${namespace}/${name}`)) this.restoresVersion++;
  }

  private touched(namespace: string): void {
    this.touchLog[this.contentsVersion % CHANGE_LOG] = namespace;
    this.contentsVersion++;
  }

  private touchClaimOf(pv: PvInfo | undefined): void {
    if (pv?.claimRef) this.nsContents.get(pv.claimRef.namespace)?.touch();
  }
}
