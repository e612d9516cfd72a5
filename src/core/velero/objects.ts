import { z } from "zod";
import type { BackupInfo, ConfigMapInfo, NamespaceInfo, PodInfo, PodVolume, PvcInfo, PvInfo, RestoreInfo } from "../model.js";
import { specTypeErrors } from "./backupSpec.js";
import { readRestoreSpec } from "./restoreSpec.js";
import { ClusterView } from "../view.js";

// Raw Kubernetes objects -> the trimmed model. Used for snapshot files and, by the informers,
// for every object that arrives, so only the fields the core needs are ever kept. Objects are
// read in zod's strip mode: a loose object runs a schema and copies every field it does not
// name (a pod's managedFields, containers, status), which was a fifth of what listing 100k pods
// and 100k claims allocated (docs/performance.md). Only a volume source stays loose: its type is
// the one field it does not name.

const stringMap = z
  .record(z.string(), z.string())
  .nullish()
  .transform((v) => v ?? {});
const metadata = z.object({
  name: z.string().min(1),
  namespace: z.string().nullish(),
  uid: z.string().nullish(),
  resourceVersion: z.string().nullish(),
  creationTimestamp: z.string().nullish(),
  deletionTimestamp: z.string().nullish(),
  labels: stringMap,
  annotations: stringMap,
});
const namespacedMetadata = metadata.extend({ namespace: z.string().min(1) });

const nfs = z.object({ server: z.string().nullish(), path: z.string().nullish() });
const csi = z.object({ driver: z.string().nullish(), volumeAttributes: stringMap });

const NOT_A_SOURCE: ReadonlySet<string> = new Set([
  "name",
  "capacity",
  "accessModes",
  "claimRef",
  "persistentVolumeReclaimPolicy",
  "storageClassName",
  "mountOptions",
  "volumeMode",
  "nodeAffinity",
  "volumeAttributesClassName",
]);

/** The volume source key of a pod volume or PV spec: the one field that is not plain settings. */
function sourceType(spec: Record<string, unknown>): string {
  return Object.keys(spec).find((k) => !NOT_A_SOURCE.has(k) && spec[k] !== null && spec[k] !== undefined) ?? "";
}

function nfsOf(value: z.infer<typeof nfs> | null | undefined) {
  return value ? { nfs: { server: value.server ?? "", path: value.path ?? "" } } : {};
}
function csiOf(value: z.infer<typeof csi> | null | undefined) {
  return value ? { csi: { driver: value.driver ?? "", volumeAttributes: value.volumeAttributes } } : {};
}

const podVolume = z
  .looseObject({
    name: z.string().min(1),
    persistentVolumeClaim: z.object({ claimName: z.string().min(1) }).nullish(),
    nfs: nfs.nullish(),
    csi: csi.nullish(),
  })
  .transform((v): PodVolume => ({
    name: v.name,
    type: sourceType(v),
    ...(v.persistentVolumeClaim ? { claimName: v.persistentVolumeClaim.claimName } : {}),
    ...nfsOf(v.nfs),
    ...csiOf(v.csi),
  }));

const namespaceSchema = z
  .object({ metadata, status: z.object({ phase: z.string().nullish() }).nullish() })
  .transform((o): NamespaceInfo => ({
    name: o.metadata.name,
    labels: o.metadata.labels,
    annotations: o.metadata.annotations,
    terminating: o.status?.phase === "Terminating" || !!o.metadata.deletionTimestamp,
  }));

const podSchema = z
  .object({
    metadata: namespacedMetadata,
    spec: z.object({ nodeName: z.string().nullish(), volumes: z.array(podVolume).nullish() }).nullish(),
    status: z.object({ phase: z.string().nullish() }).nullish(),
  })
  .transform((o): PodInfo => ({
    namespace: o.metadata.namespace,
    name: o.metadata.name,
    labels: o.metadata.labels,
    annotations: o.metadata.annotations,
    phase: o.status?.phase ?? "Pending",
    ...(o.spec?.nodeName ? { nodeName: o.spec.nodeName } : {}),
    deleting: !!o.metadata.deletionTimestamp,
    volumes: o.spec?.volumes ?? [],
  }));

const pvcSchema = z
  .object({
    metadata: namespacedMetadata,
    spec: z.object({ volumeName: z.string().nullish(), storageClassName: z.string().nullish() }).nullish(),
    status: z.object({ phase: z.string().nullish() }).nullish(),
  })
  .transform((o): PvcInfo => ({
    namespace: o.metadata.namespace,
    name: o.metadata.name,
    labels: o.metadata.labels,
    annotations: o.metadata.annotations,
    phase: o.status?.phase ?? "Pending",
    ...(o.spec?.volumeName ? { volumeName: o.spec.volumeName } : {}),
    ...(o.spec?.storageClassName ? { storageClassName: o.spec.storageClassName } : {}),
    deleting: !!o.metadata.deletionTimestamp,
  }));

const pvSchema = z
  .object({
    metadata,
    spec: z
      .looseObject({
        capacity: z.object({ storage: z.union([z.string(), z.number()]).nullish() }).nullish(),
        storageClassName: z.string().nullish(),
        claimRef: z.object({ namespace: z.string().nullish(), name: z.string().nullish() }).nullish(),
        nfs: nfs.nullish(),
        csi: csi.nullish(),
      })
      .nullish()
      .transform((v) => v ?? {}),
  })
  .transform((o): PvInfo => ({
    name: o.metadata.name,
    labels: o.metadata.labels,
    annotations: o.metadata.annotations,
    ...(o.spec.capacity?.storage != null ? { capacity: String(o.spec.capacity.storage) } : {}),
    ...(o.spec.storageClassName ? { storageClassName: o.spec.storageClassName } : {}),
    ...(o.spec.claimRef?.namespace && o.spec.claimRef.name
      ? { claimRef: { namespace: o.spec.claimRef.namespace, name: o.spec.claimRef.name } }
      : {}),
    type: sourceType(o.spec),
    ...nfsOf(o.spec.nfs),
    ...csiOf(o.spec.csi),
    deleting: !!o.metadata.deletionTimestamp,
  }));

const configMapSchema = z
  .object({ metadata: namespacedMetadata, data: stringMap })
  .transform((o): ConfigMapInfo => ({ namespace: o.metadata.namespace, name: o.metadata.name, data: o.data }));

/**
 * How deep a Backup's spec may nest. Velero's BackupSpec nests about 8 levels (hooks); the
 * core hashes and compares specs recursively, so a deeper one (only garbage is) is refused
 * here rather than overflowing the stack later.
 */
export const MAX_SPEC_DEPTH = 32;

/** The path to the first value nested deeper than `max` levels, or undefined. Iterative: the input may be a nesting bomb. */
export function tooDeep(value: unknown, max: number): (string | number)[] | undefined {
  const isNode = (x: unknown): x is object => x !== null && typeof x === "object";
  if (!isNode(value)) return undefined;
  // Only objects and arrays are pushed: a list of 100,000 names costs one pass, no allocation per name.
  const stack: { value: object; path: (string | number)[] }[] = [{ value, path: [] }];
  while (stack.length > 0) {
    const { value: v, path } = stack.pop()!;
    if (path.length >= max) return path;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const x: unknown = v[i];
        if (isNode(x)) stack.push({ value: x, path: [...path, i] });
      }
    } else {
      for (const [k, x] of Object.entries(v)) if (isNode(x)) stack.push({ value: x, path: [...path, k] });
    }
  }
  return undefined;
}

const backupSpec = z
  .unknown()
  .optional()
  .superRefine((spec, ctx) => {
    const path = tooDeep(spec, MAX_SPEC_DEPTH);
    if (path) ctx.addIssue({ code: "custom", path: path.slice(0, 4), message: `nests deeper than ${MAX_SPEC_DEPTH} levels below here` });
  });

// A Backup's creation time orders the queue and ages it, so a malformed one is refused rather
// than read as "no time".
const rfc3339 = z.iso.datetime({ offset: true });
const creationTime = z
  .string()
  .refine((v) => v === "" || rfc3339.safeParse(v).success, "is not an RFC 3339 time (e.g. 2026-01-02T03:04:05Z)");

const backupSchema = z
  .object({
    metadata: namespacedMetadata.extend({ creationTimestamp: creationTime.nullish() }),
    spec: backupSpec,
    status: z
      .object({ phase: z.string().nullish(), queuePosition: z.number().int().nullish(), completionTimestamp: z.unknown().optional() })
      .nullish(),
  })
  .transform((o): BackupInfo => ({
    namespace: o.metadata.namespace,
    name: o.metadata.name,
    uid: o.metadata.uid ?? "",
    resourceVersion: o.metadata.resourceVersion ?? "",
    labels: o.metadata.labels,
    annotations: o.metadata.annotations,
    creationTimestamp: o.metadata.creationTimestamp ?? "",
    spec: o.spec ?? {},
    phase: o.status?.phase ?? "",
    ...(o.status?.queuePosition ? { queuePosition: o.status.queuePosition } : {}),
    ...completionOf(o.status?.completionTimestamp),
  }));

// Velero writes the completion time; one that is not a time is dropped rather than refusing the
// Backup, since it only orders tenants' turns (docs/rules.md, "Tenants").
function completionOf(v: unknown): { completionTimestamp?: string } {
  return typeof v === "string" && rfc3339.safeParse(v).success ? { completionTimestamp: v } : {};
}

// A Restore whose spec cannot be read is kept with the reason: it is then taken to write into
// every namespace while it runs (dropping it would let backups start into what it writes).
const restoreSchema = z
  .object({
    metadata: namespacedMetadata,
    spec: z.unknown().optional(),
    status: z.object({ phase: z.string().nullish() }).nullish(),
  })
  .transform((o): RestoreInfo => restoreInfo(o.metadata.namespace, o.metadata.name, o.status?.phase ?? "", o.spec));

/** A Restore from its name, phase and raw spec. */
export function restoreInfo(namespace: string, name: string, phase: string, rawSpec: unknown): RestoreInfo {
  const read = readRestoreSpec(rawSpec);
  const spec = read.ok ? read.spec : undefined;
  return {
    namespace,
    name,
    phase,
    backupName: spec?.backupName ?? "",
    includedNamespaces: spec?.includedNamespaces ?? [],
    excludedNamespaces: spec?.excludedNamespaces ?? [],
    namespaceMapping: spec?.namespaceMapping ?? {},
    ...(read.ok ? {} : { specError: read.error }),
  };
}

export const OBJECT_SCHEMAS = {
  Namespace: namespaceSchema,
  Pod: podSchema,
  PersistentVolumeClaim: pvcSchema,
  PersistentVolume: pvSchema,
  ConfigMap: configMapSchema,
  Backup: backupSchema,
  Restore: restoreSchema,
} as const;
export type ObjectKind = keyof typeof OBJECT_SCHEMAS;
export type Trimmed<K extends ObjectKind> = z.output<(typeof OBJECT_SCHEMAS)[K]>;

/** An object that could not be read, named by kind, namespace/name and the field at fault. */
export class ObjectError extends Error {
  constructor(
    readonly object: string,
    readonly field: string,
    readonly detail: string,
  ) {
    super(`${object}: ${field}: ${detail}`);
  }
}

export function objectName(raw: unknown): string {
  const o = raw as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } } | null;
  const kind = typeof o?.kind === "string" ? o.kind : "object";
  const name = typeof o?.metadata?.name === "string" ? o.metadata.name : "(no name)";
  const ns = typeof o?.metadata?.namespace === "string" ? `${o.metadata.namespace}/` : "";
  return `${kind} ${ns}${name}`;
}

export type TrimResult<K extends ObjectKind> = { ok: true; value: Trimmed<K> } | { ok: false; error: ObjectError };

export function trim<K extends ObjectKind>(kind: K, raw: unknown): TrimResult<K> {
  const result = OBJECT_SCHEMAS[kind].safeParse(raw);
  if (result.success) return { ok: true, value: result.data as Trimmed<K> };
  const issue = result.error.issues[0];
  const field =
    issue?.path
      .map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`))
      .join("")
      .replace(/^\./, "") || "(object)";
  return { ok: false, error: new ObjectError(objectName(raw), field, issue?.message ?? "invalid") };
}

export interface LoadedSnapshot {
  readonly view: ClusterView;
  readonly backups: BackupInfo[];
  /** Objects of kinds the core does not read (they are ignored). */
  readonly ignored: number;
}

/**
 * Reads what `kubectl get namespaces,pods,pvc,pv,configmaps,backups.velero.io,restores.velero.io -A -o yaml`
 * prints. Every object must be readable; the first that is not is reported with its index.
 */
export function loadSnapshot(doc: unknown): { ok: true; snapshot: LoadedSnapshot } | { ok: false; error: string } {
  const list = doc as { kind?: unknown; items?: unknown } | null;
  if (!list || typeof list !== "object" || !Array.isArray(list.items)) {
    return { ok: false, error: "the file is not a Kubernetes List: expected an object with an `items` array (kubectl get ... -o yaml)" };
  }
  const view = new ClusterView();
  const backups: BackupInfo[] = [];
  let ignored = 0;
  for (const [i, raw] of list.items.entries()) {
    const kind = (raw as { kind?: unknown } | null)?.kind;
    if (typeof kind !== "string" || !(kind in OBJECT_SCHEMAS)) {
      ignored++;
      continue;
    }
    const result = trim(kind as ObjectKind, raw);
    if (!result.ok) return { ok: false, error: `items[${i}] ${result.error.message}` };
    const malformed = kind === "Backup" ? specTypeErrors((result.value as BackupInfo).spec)[0] : undefined;
    if (malformed) return { ok: false, error: `items[${i}] ${objectName(raw)}: ${malformed.field}: ${malformed.message}` };
    addToView(view, backups, kind as ObjectKind, result.value);
  }
  return { ok: true, snapshot: { view, backups, ignored } };
}

function addToView(view: ClusterView, backups: BackupInfo[], kind: ObjectKind, value: unknown): void {
  switch (kind) {
    case "Namespace":
      view.setNamespace(value as NamespaceInfo);
      break;
    case "Pod":
      view.setPod(value as PodInfo);
      break;
    case "PersistentVolumeClaim":
      view.setPvc(value as PvcInfo);
      break;
    case "PersistentVolume":
      view.setPv(value as PvInfo);
      break;
    case "ConfigMap":
      view.setConfigMap(value as ConfigMapInfo);
      break;
    case "Backup":
      backups.push(value as BackupInfo);
      break;
    case "Restore":
      view.setRestore(value as RestoreInfo);
      break;
  }
}
