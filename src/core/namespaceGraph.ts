import type { PodInfo, PvcInfo, PvInfo } from "./model.js";

// A namespace's pods, claims and the PVs they name, each in name order, with the relations an
// ItemBlock walk follows (pod -> claims it mounts, claim -> pods mounting it, claim -> its PV) as
// indexes into those lists. A scope walks them for every backup and every admission review:
// marks in typed arrays indexed in name order replace the walk's sets, its sorts and its lookups
// in the view's PV map (docs/performance.md, "A candidate's part"). Built once per version of the
// namespace and of the PVs.

/** What the graph is built from: one namespace's contents and the view's PVs. */
export interface GraphSource {
  readonly namespace: string;
  readonly pods: ReadonlyMap<string, PodInfo>;
  readonly pvcs: ReadonlyMap<string, PvcInfo>;
  /** Pods mounting the claim, in name order. */
  podsMounting(claim: string): readonly PodInfo[];
  pv(name: string): PvInfo | undefined;
}

export class NamespaceGraph {
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

  constructor(source: GraphSource) {
    this.pods = [...source.pods.values()].sort(byName);
    this.pvcs = [...source.pvcs.values()].sort(byName);
    const podAt = indexOf(this.pods);
    const pvcAt = new Map(this.pvcs.map((c, i) => [c.name, i]));
    const claimsOf = (pod: PodInfo) => pod.volumes.flatMap((v) => (v.claimName === undefined ? [] : (pvcAt.get(v.claimName) ?? [])));
    [this.claimsFrom, this.claims] = adjacency(this.pods, claimsOf);
    const mountersOf = (pvc: PvcInfo) => source.podsMounting(pvc.name).map((pod) => podAt.get(pod) as number);
    [this.mountersFrom, this.mounters] = adjacency(this.pvcs, mountersOf);
    const named = this.pvcs.map((c) => (c.volumeName ? source.pv(c.volumeName) : undefined));
    this.pvs = [...new Set(named.flatMap((pv) => pv ?? []))].sort(byName);
    const pvIndex = indexOf(this.pvs);
    this.pvAt = Int32Array.from(named, (pv) => (pv ? (pvIndex.get(pv) as number) : -1));
    this.readsForeignPvs = this.pvcs.some((c, i) => !!c.volumeName && named[i]?.claimRef?.namespace !== source.namespace);
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
function adjacency<T>(items: readonly T[], neighbours: (item: T) => readonly number[]): [Int32Array, Int32Array] {
  const from = new Int32Array(items.length + 1);
  const flat: number[] = [];
  items.forEach((item, i) => {
    for (const n of new Set(neighbours(item))) flat.push(n);
    from[i + 1] = flat.length;
  });
  return [from, Int32Array.from(flat)];
}
