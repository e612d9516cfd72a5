import { createHash } from "node:crypto";
import type { BackupInfo, Labels, NamespaceInfo, PodInfo, PodVolume, PvcInfo, PvInfo } from "../core/model.js";

// Memory savings on the trimmed objects the watches keep (100k pods and 100k PVCs must fit in
// a few hundred MiB):
//
// - strings that repeat across objects (namespaces, label keys and values, phases, volume
//   names and types, storage classes) are interned, so JSON.parse's fresh copies are dropped;
// - empty maps and lists are one shared frozen object;
// - pods, PVCs and PVs keep only the annotations the core reads: keys in the `velero.io` and
//   `backup-gate.io` domains (hooks, file-system backup lists, conflict level). Anything else
//   (kubectl's last-applied-configuration, sidecar injectors' blobs) can be large and is never
//   read. Namespaces and Backups keep all their annotations.

const EMPTY_LABELS: Labels = Object.freeze({});
const EMPTY_VOLUMES: readonly PodVolume[] = Object.freeze([]);

/** A bounded string table: past `max` entries new strings are returned as they are. */
export class Interner {
  private readonly table = new Map<string, string>();
  constructor(
    private readonly max = 200_000,
    private readonly maxLength = 256,
  ) {}

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

function slimVolume(v: PodVolume, i: Interner): PodVolume {
  return {
    name: i.intern(v.name),
    type: i.intern(v.type),
    ...(v.claimName !== undefined ? { claimName: v.claimName } : {}),
    ...(v.nfs ? { nfs: { server: i.intern(v.nfs.server), path: v.nfs.path } } : {}),
    ...(v.csi ? { csi: { driver: i.intern(v.csi.driver), volumeAttributes: i.map(v.csi.volumeAttributes) } } : {}),
  };
}

export function slimPod(p: PodInfo, i: Interner): PodInfo {
  return {
    namespace: i.intern(p.namespace),
    name: p.name,
    labels: i.map(p.labels, undefined, p.name),
    annotations: i.map(p.annotations, keepAnnotation),
    phase: i.intern(p.phase),
    ...(p.nodeName !== undefined ? { nodeName: i.intern(p.nodeName) } : {}),
    deleting: p.deleting,
    volumes: p.volumes.length === 0 ? EMPTY_VOLUMES : p.volumes.map((v) => slimVolume(v, i)),
  };
}

export function slimPvc(c: PvcInfo, i: Interner): PvcInfo {
  return {
    namespace: i.intern(c.namespace),
    name: c.name,
    labels: i.map(c.labels),
    annotations: i.map(c.annotations, keepAnnotation),
    phase: i.intern(c.phase),
    ...(c.volumeName !== undefined ? { volumeName: c.volumeName } : {}),
    ...(c.storageClassName !== undefined ? { storageClassName: i.intern(c.storageClassName) } : {}),
    deleting: c.deleting,
  };
}

export function slimPv(v: PvInfo, i: Interner): PvInfo {
  return {
    name: v.name,
    labels: i.map(v.labels),
    annotations: i.map(v.annotations, keepAnnotation),
    ...(v.capacity !== undefined ? { capacity: i.intern(v.capacity) } : {}),
    ...(v.storageClassName !== undefined ? { storageClassName: i.intern(v.storageClassName) } : {}),
    ...(v.claimRef ? { claimRef: { namespace: i.intern(v.claimRef.namespace), name: v.claimRef.name } } : {}),
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
