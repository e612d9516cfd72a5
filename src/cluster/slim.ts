import { createHash } from "node:crypto";
import type { BackupInfo, Labels, NamespaceInfo, PodInfo, PodVolume, PvcInfo, PvInfo } from "../core/model.js";
import { neverCopied } from "../core/velero/volumes.js";

// Memory savings on the trimmed objects the watches keep (100k pods and 100k PVCs must fit in
// a few hundred MiB):
//
// - strings that repeat across objects (namespaces, label keys and values, phases, volume
//   names and types, storage classes) are interned, so JSON.parse's fresh copies are dropped;
// - empty maps and lists are one shared frozen object;
// - equal label and annotation maps, and equal volumes, are one shared frozen object: the pods of
//   one workload repeat them (a map holding the object's own name, as a StatefulSet's pod-name
//   label does, is unique to it and is not tabled);
// - each kind is built by one object literal with every field present (undefined when unset), so
//   its objects share one hidden class and keep their fields in the object, with no separate
//   property array;
// - pods, PVCs and PVs keep only the annotations the core reads: keys in the `velero.io` and
//   `backup-gate.io` domains (hooks, file-system backup lists, conflict level). Anything else
//   (kubectl's last-applied-configuration, sidecar injectors' blobs) can be large and is never
//   read. Namespaces and Backups keep all their annotations.
// - a name one object gives for another (a pod's claim, a claim's volume, a volume's claim) is
//   that object's own string when the view already holds it (`Held`): at 100k pods with a claim
//   each, a second copy of every claim name was 3 MiB;
// - pods keep only the volumes whose data Velero may copy: the core reads no other (a pod's
//   service-account token volume, `kube-api-access-` and a random suffix, is one per pod).

const EMPTY_LABELS: Labels = Object.freeze({});
const EMPTY_VOLUMES: readonly PodVolume[] = Object.freeze([]);
/** Separates the parts of a content key; label keys and values cannot contain it. */
const SEP = "\u0000";
/** Longer content keys are not tabled (their maps stay per object). */
const MAX_KEY_LENGTH = 2048;

/** The claims and volumes the view already holds, by name (see `slimPod`, `slimPvc`, `slimPv`); a ClusterView is one. */
export interface Held {
  pvc(namespace: string, name: string): PvcInfo | undefined;
  pv(name: string): PvInfo | undefined;
}

const NOTHING_HELD: Held = { pvc: () => undefined, pv: () => undefined };

/** A bounded string table: past `max` entries new strings are returned as they are. */
export class Interner {
  private readonly table = new Map<string, string>();
  /** Shared maps and volumes by content key (see `shareMap`, `shareVolume`). */
  private readonly shared = new Map<string, Labels | PodVolume>();
  constructor(
    private readonly max = 200_000,
    private readonly maxLength = 256,
    private readonly maxShared = 50_000,
  ) {}

  /** Distinct shared maps and volumes held. */
  get sharedSize(): number {
    return this.shared.size;
  }

  get size(): number {
    return this.table.size;
  }

  intern(s: string): string;
  intern(s: string | undefined): string | undefined;
  intern(s: string | undefined): string | undefined {
    if (s === undefined || s.length > this.maxLength) return s;
    const held = this.table.get(s);
    if (held !== undefined) return held;
    if (this.table.size < this.max) this.table.set(s, s);
    return s;
  }

  /**
   * The map with interned keys and values. A value equal to `own` (the object's name, which
   * StatefulSet pods repeat in a label) shares that string instead of a table entry of its own.
   */
  map(m: Labels, keep?: (key: string) => boolean, own?: string): Labels {
    let out: Record<string, string> | undefined;
    for (const k in m) {
      if (keep && !keep(k)) continue;
      out ??= {};
      const v = m[k] as string;
      out[this.intern(k)] = v === own ? own : this.intern(v);
    }
    return out ?? EMPTY_LABELS;
  }

  /**
   * `map`, but one frozen object for every equal result: pods of one ReplicaSet carry the same
   * labels and annotations. A map with a value equal to `own` is the object's alone and is
   * returned unshared (a table entry per pod would cost more than it saves).
   */
  shareMap(m: Labels, keep?: (key: string) => boolean, own?: string): Labels {
    const out = this.map(m, keep, own);
    if (out === EMPTY_LABELS) return out;
    let key = "m";
    for (const k in out) {
      const v = out[k] as string;
      if (v === own) return out;
      key += SEP + k + SEP + v;
    }
    return this.share(key, out) as Labels;
  }

  /** One frozen object per distinct volume without a claim (a claim volume is usually its pod's alone). */
  shareVolume(v: PodVolume): PodVolume {
    if (v.claimName !== undefined) return v;
    let key = `v${SEP}${v.name}${SEP}${v.type}`;
    if (v.nfs) key += `${SEP}nfs${SEP}${v.nfs.server}${SEP}${v.nfs.path}`;
    if (v.csi) {
      key += `${SEP}csi${SEP}${v.csi.driver}`;
      for (const k in v.csi.volumeAttributes) key += SEP + k + SEP + v.csi.volumeAttributes[k];
    }
    return this.share(key, v) as PodVolume;
  }

  private share(key: string, value: Labels | PodVolume): Labels | PodVolume {
    if (key.length > MAX_KEY_LENGTH) return value;
    const held = this.shared.get(key);
    if (held !== undefined) return held;
    if (this.shared.size < this.maxShared) this.shared.set(key, Object.freeze(value));
    return value;
  }
}

/** Annotation keys the core may read on pods, PVCs and PVs. */
export function keepAnnotation(key: string): boolean {
  const slash = key.indexOf("/");
  if (slash < 0) return false;
  const domain = key.slice(0, slash);
  return domain === "velero.io" || domain.endsWith(".velero.io") || domain === "backup-gate.io" || domain.endsWith(".backup-gate.io");
}

export function slimNamespace(ns: NamespaceInfo, i: Interner): NamespaceInfo {
  return { name: i.intern(ns.name), labels: i.map(ns.labels), annotations: i.map(ns.annotations), terminating: ns.terminating };
}

function slimVolume(v: PodVolume, i: Interner, namespace: string, held: Held): PodVolume {
  return i.shareVolume({
    name: i.intern(v.name),
    type: i.intern(v.type),
    claimName: v.claimName === undefined ? undefined : (held.pvc(namespace, v.claimName)?.name ?? v.claimName),
    nfs: v.nfs && { server: i.intern(v.nfs.server), path: v.nfs.path },
    csi: v.csi && { driver: i.intern(v.csi.driver), volumeAttributes: i.map(v.csi.volumeAttributes) },
  });
}

function slimVolumes(volumes: readonly PodVolume[], i: Interner, namespace: string, held: Held): readonly PodVolume[] {
  const kept = volumes.filter((v) => !neverCopied(v));
  if (kept.length === 0) return EMPTY_VOLUMES;
  // Filled by index at its final length: an array grown by push keeps room for 16 more.
  const out = new Array<PodVolume>(kept.length);
  for (let k = 0; k < kept.length; k++) out[k] = slimVolume(kept[k] as PodVolume, i, namespace, held);
  return out;
}

export function slimPod(p: PodInfo, i: Interner, held: Held = NOTHING_HELD): PodInfo {
  return {
    namespace: i.intern(p.namespace),
    name: p.name,
    labels: i.shareMap(p.labels, undefined, p.name),
    annotations: i.shareMap(p.annotations, keepAnnotation),
    phase: i.intern(p.phase),
    nodeName: i.intern(p.nodeName),
    deleting: p.deleting,
    volumes: slimVolumes(p.volumes, i, p.namespace, held),
  };
}

export function slimPvc(c: PvcInfo, i: Interner, held: Held = NOTHING_HELD): PvcInfo {
  const pv = c.volumeName === undefined ? undefined : held.pv(c.volumeName);
  const ref = pv?.claimRef;
  const name = ref?.namespace === c.namespace && ref.name === c.name ? ref.name : c.name;
  return {
    namespace: i.intern(c.namespace),
    name,
    labels: i.shareMap(c.labels, undefined, name),
    annotations: i.shareMap(c.annotations, keepAnnotation),
    phase: i.intern(c.phase),
    volumeName: pv ? pv.name : c.volumeName,
    storageClassName: i.intern(c.storageClassName),
    deleting: c.deleting,
  };
}

export function slimPv(v: PvInfo, i: Interner, held: Held = NOTHING_HELD): PvInfo {
  const claim = v.claimRef && held.pvc(v.claimRef.namespace, v.claimRef.name);
  return {
    name: claim?.volumeName === v.name ? claim.volumeName : v.name,
    labels: i.map(v.labels),
    annotations: i.map(v.annotations, keepAnnotation),
    ...(v.capacity !== undefined ? { capacity: i.intern(v.capacity) } : {}),
    ...(v.storageClassName !== undefined ? { storageClassName: i.intern(v.storageClassName) } : {}),
    ...(v.claimRef ? { claimRef: { namespace: i.intern(v.claimRef.namespace), name: claim ? claim.name : v.claimRef.name } } : {}),
    type: i.intern(v.type),
    ...(v.nfs ? { nfs: { server: i.intern(v.nfs.server), path: v.nfs.path } } : {}),
    ...(v.csi ? { csi: { driver: i.intern(v.csi.driver), volumeAttributes: i.map(v.csi.volumeAttributes) } } : {}),
    deleting: v.deleting,
  };
}

/** A digest of a Backup's spec that does not depend on key order. */
export function specHash(spec: unknown): string {
  return createHash("sha1").update(canonicalJson(spec)).digest("hex");
}

export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .sort()
    .filter((k) => o[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
    .join(",")}}`;
}

export function withSpecHash(b: BackupInfo): BackupInfo {
  return { ...b, specHash: specHash(b.spec) };
}
