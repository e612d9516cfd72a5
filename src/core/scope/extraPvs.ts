import type { ListLookup } from "../lists.js";
import type { PvInfo } from "../model.js";
import type { ClusterView } from "../view.js";
import { byString, isExcluded, type PartContext, type ScopePart } from "./model.js";

// PVs a backup processes outside the part of the namespace of their claim: listed directly
// (the filter includes persistentvolumes), or reached from another namespace.

/** The PVs a backup lists directly (filter includes persistentvolumes), by the namespace of their claim. */
export interface ListedPvs {
  /** Names of the listed PVs that are processed, sorted. */
  readonly names: readonly string[];
  readonly byClaimNamespace: ReadonlyMap<string, readonly PvInfo[]>;
}

export function listedPvs(ctx: PartContext, view: ClusterView): ListedPvs {
  const pvsExcluded = ctx.filter.shouldExclude("persistentvolumes");
  const names: string[] = [];
  const byClaimNamespace = new Map<string, PvInfo[]>();
  if (pvsExcluded) return { names, byClaimNamespace };
  for (const pv of view.pvs()) {
    if ((ctx.selected && !ctx.selected(pv.labels)) || isExcluded(pv.labels) || pv.deleting) continue;
    names.push(pv.name);
    const ns = pv.claimRef?.namespace;
    if (ns === undefined) continue;
    const list = byClaimNamespace.get(ns);
    if (list) list.push(pv);
    else byClaimNamespace.set(ns, [pv]);
  }
  names.sort(byString);
  return { names, byClaimNamespace };
}

const NO_POSITIONS: ReadonlyMap<string, number> = new Map();

/**
 * The parts with the PVs processed elsewhere (listed directly, or reached from another
 * namespace) that are bound into their namespace: such a namespace gets a part of its own
 * (`make`), which is rare. `parts[i]` is the part of `namespaces[i]`.
 */
export function withExtras(
  namespaces: ListLookup,
  parts: readonly ScopePart[],
  listed: ListedPvs | undefined,
  make: (ns: string, extras: readonly PvInfo[]) => ScopePart,
): ScopePart[] {
  let extras: Map<string, PvInfo[]> | undefined;
  const add = (pv: PvInfo) => {
    const ns = pv.claimRef?.namespace as string;
    extras ??= new Map();
    const list = extras.get(ns);
    if (list) {
      if (!list.includes(pv)) list.push(pv);
    } else extras.set(ns, [pv]);
  };
  const index = listed || parts.some((p) => p.foreignPvs.length > 0) ? namespaces.positions : NO_POSITIONS;
  const isLocal = (pv: PvInfo) => {
    const i = index.get(pv.claimRef?.namespace as string);
    return i === undefined ? undefined : binaryHas((parts[i] as ScopePart).pvs, pv.name);
  };
  for (const part of parts) {
    for (const pv of part.foreignPvs) if (isLocal(pv) === false) add(pv);
  }
  if (listed) {
    for (const [ns, pvs] of listed.byClaimNamespace) {
      if (!index.has(ns)) continue;
      for (const pv of pvs) if (isLocal(pv) === false) add(pv);
    }
  }
  if (!extras) return [...parts];
  const out = [...parts];
  for (const [ns, pvs] of extras) {
    const i = index.get(ns) as number;
    out[i] = make(
      ns,
      pvs.sort((a, b) => byString(a.name, b.name)),
    );
  }
  return out;
}

function binaryHas(sorted: readonly string[], value: string): boolean {
  let lo = 0,
    hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = sorted[mid] as string;
    if (v === value) return true;
    if (v < value) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}
