import type { PodInfo, PvcInfo, PvInfo } from "./model.js";
import { positionOf, type NameTable } from "./nameTable.js";

// A namespace's pods, claims and the PVs they name, each in name order, with the relations an
// ItemBlock walk follows (pod -> claims it mounts, claim -> pods mounting it, claim -> its PV) as
// indexes into those lists. A scope walks them for every backup and every admission review:
// marks in typed arrays indexed in name order replace the walk's sets, its sorts and its lookups
// in the view's PV map (docs/performance.md, "A candidate's part"). Built once per version of the
// namespace and of the PVs.

/** The view's PVs, and a version that moves whenever any of them changes. */
export interface PvSource {
  pv(name: string): PvInfo | undefined;
  readonly pvVersion: number;
}

/** What the graph is built from: one namespace's contents and the view's PVs. */
export interface GraphSource {
  readonly namespace: string;
  readonly pods: NameTable<PodInfo>;
  readonly pvcs: NameTable<PvcInfo>;
  readonly pvs: PvSource;
}

export class NamespaceGraph {
  readonly namespace: string;
  readonly pods: readonly PodInfo[];
  readonly pvcs: readonly PvcInfo[];
  /** The PVs the claims name that the view holds, without repeats. */
  readonly pvs: readonly PvInfo[];
  /** Claim c's PV is pvs[pvAt[c]] (-1: the claim names none, or the view holds none). */
  readonly pvAt: Int32Array;
  /** The claims pod p mounts that the namespace holds: claims[claimsFrom[p] .. claimsFrom[p + 1]). */
  readonly claimsFrom: Int32Array;
  readonly claims: Int32Array;
  /** The pods mounting claim c, in name order: mounters[mountersFrom[c] .. mountersFrom[c + 1]). */
  readonly mountersFrom: Int32Array;
  readonly mounters: Int32Array;
  /** Some claim names a PV that is missing or bound to a claim in another namespace (see ScopePart). */
  readonly readsForeignPvs: boolean;
  /** What `derived` made, by the function that makes it. */
  #derived: Map<(graph: NamespaceGraph) => unknown, unknown> | undefined;

  constructor(source: GraphSource) {
    this.namespace = source.namespace;
    this.pods = source.pods.toArray();
    this.pvcs = source.pvcs.toArray();
    const pvcAt = new Map(this.pvcs.map((c, i) => [c.name, i]));
    const claimsOf = (pod: PodInfo) => pod.volumes.flatMap((v) => (v.claimName === undefined ? [] : (pvcAt.get(v.claimName) ?? [])));
    [this.claimsFrom, this.claims] = adjacency(this.pods.map(claimsOf));
    [this.mountersFrom, this.mounters] = inverse(this.claimsFrom, this.claims, this.pvcs.length);
    const named = this.pvcs.map((c) => (c.volumeName ? source.pvs.pv(c.volumeName) : undefined));
    this.pvs = [...new Set(named.flatMap((pv) => pv ?? []))].sort(byName);
    const pvIndex = indexOf(this.pvs);
    this.pvAt = Int32Array.from(named, (pv) => (pv ? (pvIndex.get(pv) as number) : -1));
    this.readsForeignPvs = this.pvcs.some((c, i) => !!c.volumeName && named[i]?.claimRef?.namespace !== source.namespace);
    this.#derived = undefined;
  }

  /**
   * What `make` reads off this graph alone (each item's flags, its hooks...), made on first
   * read and kept as long as the graph, one version of the namespace: a part then reads a
   * few arrays instead of every item's labels and annotations (docs/performance.md, "Item
   * facts"). `make` must be a constant function: it is the key.
   */
  derived<T>(make: (graph: NamespaceGraph) => T): T {
    const made = (this.#derived ??= new Map());
    if (made.has(make)) return made.get(make) as T;
    const value = make(this);
    made.set(make, value);
    return value;
  }

  /** The index of the claim named, or -1 when the namespace does not hold it. */
  claimAt(name: string): number {
    const at = positionOf(this.pvcs, name);
    return at >= 0 ? at : -1;
  }

  /** The PV claim c names, if the view holds it. */
  pvOf(c: number): PvInfo | undefined {
    const at = this.pvAt[c] as number;
    return at < 0 ? undefined : this.pvs[at];
  }
}

function byName(a: { readonly name: string }, b: { readonly name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function indexOf<T>(items: readonly T[]): Map<T, number> {
  return new Map(items.map((x, i) => [x, i]));
}

/** Each item's neighbours as one flat list and where each item's run of it starts (without repeats per item). */
function adjacency(neighbours: readonly (readonly number[])[]): [Int32Array, Int32Array] {
  const from = new Int32Array(neighbours.length + 1);
  const flat: number[] = [];
  neighbours.forEach((ns, i) => {
    for (const n of new Set(ns)) flat.push(n);
    from[i + 1] = flat.length;
  });
  return [from, Int32Array.from(flat)];
}

/** The reverse relation of `adjacency`'s runs over `size` targets: each target's sources, in source order. */
function inverse(from: Int32Array, flat: Int32Array, size: number): [Int32Array, Int32Array] {
  const starts = new Int32Array(size + 1);
  for (const t of flat) starts[t + 1] = (starts[t + 1] as number) + 1;
  for (let t = 0; t < size; t++) starts[t + 1] = (starts[t + 1] as number) + (starts[t] as number);
  const next = starts.slice(0, size);
  const sources = new Int32Array(flat.length);
  for (let s = 0; s + 1 < from.length; s++)
    for (let k = from[s] as number; k < (from[s + 1] as number); k++) {
      const t = flat[k] as number;
      sources[next[t] as number] = s;
      next[t] = (next[t] as number) + 1;
    }
  return [starts, sources];
}
