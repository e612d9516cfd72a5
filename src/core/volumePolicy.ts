// Velero resource policies ("volume policies"), as Velero v1.18.1 reads and applies them
// (internal/resourcepolicies and internal/volumehelper at tag v1.18.1).
//
// A Backup's spec.resourcePolicy {kind: configmap, name} names a ConfigMap in the Backup's
// namespace. Its data must hold exactly one key whose value is YAML:
//
//   version: v1
//   volumePolicies:
//     - conditions: {capacity: "0,100Gi", storageClass: [gp2], csi: {driver: ebs.csi.aws.com}}
//       action: {type: snapshot}
//   includeExcludePolicy: {excludedNamespaceScopedResources: [secrets]}
//
// The first volume policy whose conditions all hold decides the volume's action.

import { parseAllDocuments, isAlias, isMap, isScalar, isSeq, type Document, type Node } from "yaml";
import { z } from "zod";
import type { ConfigMapInfo, Labels, PodVolume, PvcInfo, PvInfo } from "./model.js";
import {
  compareQuantities, formatQuantity, isZeroQuantity, parseQuantityExact, ZERO_QUANTITY, type Quantity,
} from "./quantity.js";

// ---------------------------------------------------------------------------------------------
// Policies

/** Velero's VolumeActionType. `custom` exists from v1.18.1 on (v1.18.0 rejects it). */
export const VOLUME_ACTION_TYPES = ["skip", "snapshot", "fs-backup", "custom"] as const;
export type VolumeActionType = (typeof VOLUME_ACTION_TYPES)[number];

export interface VolumeAction {
  readonly type: VolumeActionType;
  /** Free-form parameters (only plugins read them, e.g. for `custom`). */
  readonly parameters?: Readonly<Record<string, unknown>>;
}

/** "min,max": both bounds inclusive; a zero bound (written empty or as any zero quantity) is open. */
export interface CapacityRange {
  readonly lower: Quantity;
  readonly upper: Quantity;
}

export interface VolumeConditions {
  /** Always present: Velero turns a missing capacity into "," (which matches every non-negative size). */
  readonly capacity: CapacityRange;
  /** Empty: any. */
  readonly storageClass: readonly string[];
  /** Absent (or YAML null): any volume. `{}`: any NFS volume. */
  readonly nfs?: { readonly server: string; readonly path: string };
  /** Absent (or YAML null): any volume. Empty driver: any CSI volume. */
  readonly csi?: { readonly driver: string; readonly volumeAttributes?: Labels };
  /** Velero's SupportedVolume names; Velero does not check them, an unknown name just never matches. Empty: any. */
  readonly volumeTypes: readonly string[];
  /** Empty: any. */
  readonly pvcLabels: Labels;
  /** Empty: any. */
  readonly pvcPhase: readonly string[];
}

export interface VolumePolicy {
  readonly conditions: VolumeConditions;
  readonly action: VolumeAction;
}

/** Velero's includeExcludePolicy: resource filters that combine with the Backup's new-style filters (the spec wins). */
export interface IncludeExcludePolicy {
  readonly includedClusterScopedResources: readonly string[];
  readonly excludedClusterScopedResources: readonly string[];
  readonly includedNamespaceScopedResources: readonly string[];
  readonly excludedNamespaceScopedResources: readonly string[];
}

export interface VolumePolicies {
  readonly version: "v1";
  readonly volumePolicies: readonly VolumePolicy[];
  readonly includeExcludePolicy?: IncludeExcludePolicy;
}

export type ParseVolumePoliciesResult =
  | { readonly ok: true; readonly policies: VolumePolicies }
  | { readonly ok: false; readonly error: string };

/**
 * The ConfigMap a Backup's `spec.resourcePolicy` points at, as Velero resolves it: only when
 * `kind` equals "configmap" ignoring case (GetResourcePoliciesFromBackup). Any other kind means
 * Velero uses no resource policy at all, silently.
 */
export function resourcePolicyConfigMapName(ref: unknown): string | undefined {
  if (typeof ref !== "object" || ref === null) return undefined;
  const { kind, name } = ref as { kind?: unknown; name?: unknown };
  if (typeof kind !== "string" || kind.toLowerCase() !== "configmap") return undefined;
  return typeof name === "string" ? name : "";
}

// ---------------------------------------------------------------------------------------------
// YAML to a plain tree, with yaml.v3's decoding rules for what the schema below needs:
// every non-null scalar is kept as its source text (yaml.v3 fills a Go string field with the
// scalar's text whatever its YAML type), null stays null, and maps whose keys are not all
// strings are remembered (yaml.v3 decodes them into map[interface{}]interface{}).

type Plain = null | string | Plain[] | { [key: string]: Plain };

class YamlShapeError extends Error {
  constructor(readonly path: string, message: string) {
    super(message);
  }
}

/** Nodes visited after alias expansion; yaml.v3 likewise refuses "excessive aliasing". */
const MAX_NODES = 100_000;

interface Walk {
  readonly doc: Document;
  readonly nonStringKeyMaps: WeakSet<object>;
  nodes: number;
}

function toPlain(node: unknown, walk: Walk, path: string, depth: number): Plain {
  if (depth > 200) throw new YamlShapeError(path, "YAML nested too deeply");
  if (++walk.nodes > MAX_NODES) throw new YamlShapeError(path, "YAML too large after alias expansion");
  if (isAlias(node)) return toPlain(node.resolve(walk.doc), walk, path, depth + 1);
  if (node === null || node === undefined) return null;
  if (isScalar(node)) {
    const v: unknown = node.value;
    if (v === null || v === undefined) return null;
    if (typeof v === "string") return v;
    return node.source ?? String(v);
  }
  if (isSeq(node)) {
    return node.items.map((item, i) => toPlain(item, walk, `${path}[${i}]`, depth + 1));
  }
  if (isMap(node)) {
    const out: { [key: string]: Plain } = Object.create(null) as { [key: string]: Plain };
    let nonStringKey = false;
    for (const pair of node.items) {
      let key: unknown = pair.key;
      if (isAlias(key)) key = key.resolve(walk.doc);
      let keyText: string;
      if (key === null || key === undefined) {
        keyText = "";
        nonStringKey = true;
      } else if (isScalar(key)) {
        const kv: unknown = key.value;
        if (typeof kv === "string") keyText = kv;
        else {
          nonStringKey = true;
          keyText = kv === null || kv === undefined ? "" : (key.source ?? String(kv));
        }
      } else {
        throw new YamlShapeError(path, "a mapping key must be a scalar");
      }
      const at = path === "" ? keyText : `${path}.${keyText}`;
      if (Object.hasOwn(out, keyText)) throw new YamlShapeError(at, `mapping key "${keyText}" already defined`);
      out[keyText] = toPlain(pair.value as Node | null, walk, at, depth + 1);
    }
    if (nonStringKey) walk.nonStringKeyMaps.add(out);
    return out;
  }
  throw new YamlShapeError(path, "unsupported YAML node");
}

// ---------------------------------------------------------------------------------------------
// The schema. Strict objects mirror yaml.v3's KnownFields(true), which Velero uses for the whole
// document and again for each policy's conditions. Nulls decode to Go zero values.

const GO_STRING = "expected a string (a YAML scalar)";

/** A Go `string` field: any scalar's text; null is "". */
const goString = z.string({ error: GO_STRING }).nullable().transform((v) => v ?? "");
/** A Go `[]string` field: null/absent is nil. */
const goStringList = z.array(goString, { error: "expected a list of strings" }).nullish()
  .transform((v) => v ?? undefined);
/** A Go `map[string]string` field: null/absent is nil; {} is an empty, non-nil map. */
const goStringMap = z.record(z.string(), goString, { error: "expected a map of string to string" }).nullish()
  .transform((v) => v ?? undefined);
/** A Go non-pointer struct field or slice element: null is the zero struct. */
const nullAsEmpty = (v: unknown): unknown => (v === null || v === undefined ? {} : v);

const nfsSchema = z.strictObject({ server: goString.optional(), path: goString.optional() },
  { error: "expected a map with server and/or path" });

const csiSchema = z.strictObject({ driver: goString.optional(), volumeAttributes: goStringMap },
  { error: "expected a map with driver and/or volumeAttributes" })
  .superRefine((csi, ctx) => {
    // Velero: "csi driver should not be empty when filtering by volume attributes".
    if ((csi.driver ?? "") === "" && csi.volumeAttributes !== undefined) {
      ctx.addIssue({ code: "custom", path: ["driver"], message: "must not be empty when volumeAttributes is set" });
    }
  });

function parseCapacityText(text: string): { ok: true; range: CapacityRange } | { ok: false; error: string } {
  // Velero's parseCapacity: "" means ","; exactly one comma; each side trimmed; an empty side is 0.
  const cap = text === "" ? "," : text;
  const sides = cap.split(",");
  if (sides.length !== 2) return { ok: false, error: `wrong format "${text}": expected "min,max"` };
  const bounds: Quantity[] = [];
  for (const side of sides) {
    const trimmed = goTrimSpace(side);
    if (trimmed === "") {
      bounds.push(ZERO_QUANTITY);
      continue;
    }
    const q = parseQuantityExact(trimmed);
    if (q === undefined) return { ok: false, error: `"${trimmed}" is not a Kubernetes quantity` };
    bounds.push(q);
  }
  const [lower, upper] = bounds as [Quantity, Quantity];
  // Velero's capacityCondition.validate: upper >= lower, or lower set and upper open.
  if (!(compareQuantities(upper, lower) >= 0 || (!isZeroQuantity(lower) && isZeroQuantity(upper)))) {
    return {
      ok: false,
      error: `illegal range "${text}": max ${formatQuantity(upper)} is below min ${formatQuantity(lower)}`,
    };
  }
  return { ok: true, range: { lower, upper } };
}

/** Go's strings.TrimSpace (unicode.IsSpace; unlike JS trim, U+0085 is space and U+FEFF is not). */
function goTrimSpace(s: string): string {
  return s.replace(/^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u, "")
    .replace(/[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/u, "");
}

function describeGoType(v: unknown): string {
  if (v === null) return "<nil>";
  if (Array.isArray(v)) return "a list";
  return typeof v === "string" ? "a string" : typeof v;
}

function conditionsSchema(nonStringKeyMaps: WeakSet<object>) {
  return z.strictObject({
    capacity: goString.optional().transform((text, ctx): CapacityRange => {
      const parsed = parseCapacityText(text ?? "");
      if (!parsed.ok) {
        ctx.addIssue({ code: "custom", message: parsed.error });
        return z.NEVER;
      }
      return parsed.range;
    }),
    storageClass: goStringList,
    nfs: nfsSchema.nullish().transform((v) => v ?? undefined),
    csi: csiSchema.nullish().transform((v) => v ?? undefined),
    volumeTypes: goStringList,
    // Velero checks pvcLabels before anything else: it must be a map with string keys (null is refused too).
    pvcLabels: z.unknown().superRefine((v, ctx) => {
      if (v === undefined) return;
      const isMapValue = typeof v === "object" && v !== null && !Array.isArray(v);
      if (!isMapValue || nonStringKeyMaps.has(v)) {
        ctx.addIssue({
          code: "custom",
          message: `must be a map of string to string, got ${isMapValue ? "a map with non-string keys" : describeGoType(v)}`,
        });
      }
    }).pipe(goStringMap).optional(),
    pvcPhase: goStringList,
  }, { error: "expected a map of conditions" });
}

const actionSchema = z.preprocess(nullAsEmpty, z.strictObject({
  type: goString.optional().transform((t, ctx): VolumeActionType => {
    const type = t ?? "";
    if (!(VOLUME_ACTION_TYPES as readonly string[]).includes(type)) {
      ctx.addIssue({
        code: "custom",
        message: `invalid action type "${type}" (Velero 1.18 accepts ${VOLUME_ACTION_TYPES.join(", ")})`,
      });
      return z.NEVER;
    }
    return type as VolumeActionType;
  }),
  parameters: z.record(z.string(), z.unknown(), { error: "expected a map" }).nullish(),
}, { error: "expected a map with type and parameters" }));

const includeExcludeSchema = z.strictObject({
  includedClusterScopedResources: goStringList,
  excludedClusterScopedResources: goStringList,
  includedNamespaceScopedResources: goStringList,
  excludedNamespaceScopedResources: goStringList,
}, { error: "expected a map of resource lists" }).superRefine((p, ctx) => {
  // Velero's IncludeExcludePolicy.Validate, per scope: no "*", nothing both included and excluded.
  for (const scope of ["ClusterScoped", "NamespaceScoped"] as const) {
    const incKey = `included${scope}Resources` as const;
    const excKey = `excluded${scope}Resources` as const;
    const inc = p[incKey] ?? [];
    const exc = p[excKey] ?? [];
    for (const [key, list] of [[incKey, inc], [excKey, exc]] as const) {
      if (list.includes("*")) {
        ctx.addIssue({ code: "custom", path: [key], message: `"*" is not allowed in the policy's filters` });
      }
    }
    for (const item of [...new Set(exc)].sort()) {
      if (item !== "*" && inc.includes(item)) {
        ctx.addIssue({ code: "custom", path: [excKey], message: `"${item}" is also in ${incKey}` });
      }
    }
  }
});

function documentSchema(nonStringKeyMaps: WeakSet<object>) {
  const policySchema = z.preprocess(nullAsEmpty, z.strictObject({
    conditions: conditionsSchema(nonStringKeyMaps).nullish(),
    action: actionSchema,
  }, { error: "expected a map with conditions and action" }));
  return z.preprocess(nullAsEmpty, z.strictObject({
    version: goString.optional().transform((v, ctx): "v1" => {
      if (v !== "v1") {
        ctx.addIssue({ code: "custom", message: `incompatible version "${v ?? ""}": Velero supports only "v1"` });
        return z.NEVER;
      }
      return v;
    }),
    volumePolicies: z.array(policySchema, { error: "expected a list of volume policies" }).nullish(),
    includeExcludePolicy: includeExcludeSchema.nullish(),
  }, { error: "expected a map with version, volumePolicies and includeExcludePolicy" }));
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out === "" ? String(p) : `.${String(p)}`;
  }
  return out;
}

function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  const lines: string[] = [];
  for (const issue of issues) {
    const at = formatPath(issue.path);
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        lines.push(`${at === "" ? key : `${at}.${key}`}: unknown field`);
      }
    } else {
      lines.push(`${at === "" ? "(document)" : at}: ${issue.message}`);
    }
  }
  return lines.join("; ");
}

/** Action parameters keep their YAML types (plugins compare them with Go's ==). */
function actionParameters(doc: Document, index: number): Readonly<Record<string, unknown>> | undefined {
  try {
    const js: unknown = doc.toJS({ maxAliasCount: 100 });
    const policies: unknown = (js as { volumePolicies?: unknown } | null)?.volumePolicies;
    const policy: unknown = Array.isArray(policies) ? policies[index] : undefined;
    const action: unknown = (policy as { action?: unknown } | null | undefined)?.action;
    const value: unknown = (action as { parameters?: unknown } | null | undefined)?.parameters;
    return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Map)
      ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Reads a resource-policy ConfigMap and validates it as Velero does (getResourcePoliciesFromConfig
 * followed by Policies.Validate). Never throws. An error names the field at fault, e.g.
 * `volumePolicies[2].conditions.capacity: ...`. Velero fails a Backup with such a policy
 * (FailedValidation).
 */
export function parseVolumePolicies(cm: ConfigMapInfo): ParseVolumePoliciesResult {
  try {
    const data: unknown = (cm as { data?: unknown } | null | undefined)?.data;
    const keys = typeof data === "object" && data !== null ? Object.keys(data) : [];
    if (keys.length !== 1) {
      return { ok: false, error: `data: a resource-policy ConfigMap must hold exactly one key, found ${keys.length}` };
    }
    const key = keys[0] as string;
    const text: unknown = (data as Record<string, unknown>)[key];
    if (typeof text !== "string") return { ok: false, error: `data.${key}: expected a string` };
    return parseVolumePoliciesYaml(text, `data.${key}`);
  } catch (e) {
    return { ok: false, error: `unreadable resource policy: ${e instanceof Error ? e.message : String(e)}` };
  }
}

/** The YAML half of parseVolumePolicies. `where` prefixes document-level errors. */
export function parseVolumePoliciesYaml(text: string, where = "policy"): ParseVolumePoliciesResult {
  try {
    // Velero decodes only the first document of the stream (yaml.v3 Decoder.Decode).
    const docs = parseAllDocuments(text, { uniqueKeys: false, merge: false, prettyErrors: false });
    const doc = Array.isArray(docs) ? docs[0] : undefined;
    if (doc === undefined) return { ok: false, error: `${where}: no YAML document (Velero: EOF)` };
    if (doc.errors.length > 0) {
      return { ok: false, error: `${where}: invalid YAML: ${doc.errors.map((e) => e.message).join("; ")}` };
    }
    const nonStringKeyMaps = new WeakSet<object>();
    let plain: Plain;
    try {
      plain = toPlain(doc.contents, { doc, nonStringKeyMaps, nodes: 0 }, "", 0);
    } catch (e) {
      if (e instanceof YamlShapeError) return { ok: false, error: `${e.path === "" ? where : e.path}: ${e.message}` };
      throw e;
    }
    const parsed = documentSchema(nonStringKeyMaps).safeParse(plain);
    if (!parsed.success) return { ok: false, error: formatIssues(parsed.error.issues) };
    const raw = parsed.data;
    const volumePolicies: VolumePolicy[] = (raw.volumePolicies ?? []).map((p, i) => {
      const c = p.conditions;
      const parameters = p.action.parameters == null ? undefined : actionParameters(doc, i);
      return {
        conditions: {
          capacity: c?.capacity ?? { lower: ZERO_QUANTITY, upper: ZERO_QUANTITY },
          storageClass: c?.storageClass ?? [],
          ...(c?.nfs ? { nfs: { server: c.nfs.server ?? "", path: c.nfs.path ?? "" } } : {}),
          ...(c?.csi ? {
            csi: {
              driver: c.csi.driver ?? "",
              ...(c.csi.volumeAttributes !== undefined ? { volumeAttributes: c.csi.volumeAttributes } : {}),
            },
          } : {}),
          volumeTypes: c?.volumeTypes ?? [],
          pvcLabels: c?.pvcLabels ?? {},
          pvcPhase: c?.pvcPhase ?? [],
        },
        action: { type: p.action.type, ...(parameters !== undefined ? { parameters } : {}) },
      };
    });
    const iep = raw.includeExcludePolicy;
    return {
      ok: true,
      policies: {
        version: raw.version,
        volumePolicies,
        ...(iep ? {
          includeExcludePolicy: {
            includedClusterScopedResources: iep.includedClusterScopedResources ?? [],
            excludedClusterScopedResources: iep.excludedClusterScopedResources ?? [],
            includedNamespaceScopedResources: iep.includedNamespaceScopedResources ?? [],
            excludedNamespaceScopedResources: iep.excludedNamespaceScopedResources ?? [],
          },
        } : {}),
      },
    };
  } catch (e) {
    return { ok: false, error: `${where}: unreadable resource policy: ${e instanceof Error ? e.message : String(e)}` };
  }
}

// ---------------------------------------------------------------------------------------------
// Volume facts: Velero's structuredVolume.

export interface VolumeFacts {
  /** PV spec.capacity.storage; zero for a pod volume or a PVC without a PV (Velero leaves it unset). */
  readonly capacity: Quantity;
  /** The PV's storageClassName; "" for a pod volume or a PVC without a PV (the PVC's class is never used). */
  readonly storageClass: string;
  readonly nfs?: { readonly server: string; readonly path: string };
  readonly csi?: { readonly driver: string; readonly volumeAttributes: Labels };
  /** Velero's SupportedVolume name for the source ("" when Velero has none, e.g. persistentVolumeClaim). */
  readonly volumeType: string;
  /** The PVC's labels; absent when there is no PVC or it has no labels. */
  readonly pvcLabels?: Labels;
  /** The PVC's status.phase; "" without a PVC. */
  readonly pvcPhase: string;
}

/** Velero's getVolumeTypeFromPV: Kubernetes PV source key → SupportedVolume name. */
const PV_VOLUME_TYPES: ReadonlyMap<string, string> = new Map([
  ["awsElasticBlockStore", "awsElasticBlockStore"], ["azureDisk", "azureDisk"], ["azureFile", "azureFile"],
  ["cephfs", "cephfs"], ["cinder", "cinder"], ["csi", "csi"], ["fc", "fc"], ["flocker", "flocker"],
  ["flexVolume", "flexVolume"], ["gcePersistentDisk", "gcePersistentDisk"], ["glusterfs", "glusterfs"],
  ["hostPath", "hostPath"], ["iscsi", "iscsi"], ["local", "local"], ["nfs", "nfs"],
  ["photonPersistentDisk", "photonPersistentDisk"], ["portworxVolume", "portworxVolume"], ["quobyte", "quobyte"],
  ["rbd", "rbd"], ["scaleIO", "scaleIO"], ["storageos", "storageOS"], ["vsphereVolume", "vsphereVolume"],
]);

/** Velero's getVolumeTypeFromVolume: pod volume source key → SupportedVolume name (no `local`, no PVC). */
const POD_VOLUME_TYPES: ReadonlyMap<string, string> = new Map([
  ["awsElasticBlockStore", "awsElasticBlockStore"], ["azureDisk", "azureDisk"], ["azureFile", "azureFile"],
  ["cephfs", "cephfs"], ["cinder", "cinder"], ["csi", "csi"], ["fc", "fc"], ["flocker", "flocker"],
  ["flexVolume", "flexVolume"], ["gcePersistentDisk", "gcePersistentDisk"], ["gitRepo", "gitRepo"],
  ["glusterfs", "glusterfs"], ["iscsi", "iscsi"], ["nfs", "nfs"], ["secret", "secret"], ["rbd", "rbd"],
  ["downwardAPI", "downwardAPI"], ["configMap", "configMap"], ["projected", "projected"],
  ["ephemeral", "ephemeral"], ["photonPersistentDisk", "photonPersistentDisk"],
  ["portworxVolume", "portworxVolume"], ["quobyte", "quobyte"], ["scaleIO", "scaleIO"],
  ["storageos", "storageOS"], ["vsphereVolume", "vsphereVolume"], ["hostPath", "hostPath"],
  ["emptyDir", "emptyDir"],
]);

/** The SupportedVolume name Velero gives a PV source key ("" if none). */
export function veleroPvVolumeType(sourceKey: string): string {
  return PV_VOLUME_TYPES.get(sourceKey) ?? "";
}

/** The SupportedVolume name Velero gives a pod volume source key ("" if none). */
export function veleroPodVolumeType(sourceKey: string): string {
  return POD_VOLUME_TYPES.get(sourceKey) ?? "";
}

/** Velero's parsePVC: labels only when there are some; the phase as is. */
function pvcPart(pvc: PvcInfo | undefined): Pick<VolumeFacts, "pvcLabels" | "pvcPhase"> {
  if (pvc === undefined) return { pvcPhase: "" };
  return {
    ...(Object.keys(pvc.labels).length > 0 ? { pvcLabels: pvc.labels } : {}),
    pvcPhase: pvc.phase,
  };
}

export type FactsResult =
  | {
      readonly ok: true;
      readonly facts: VolumeFacts;
      /**
       * Set when Velero could not find the PV behind the PVC (GetPVForPVC failed) and fell back to
       * PVC-only facts. If no policy matches, Velero then reports this as an error for the volume
       * (ShouldPerformSnapshot / ShouldPerformFSBackup return it; no snapshot, no fs-backup).
       */
      readonly pvError?: string;
    }
  | { readonly ok: false; readonly error: string };

/**
 * Facts from a PV (parsePV), plus its PVC's labels and phase when given (parsePVC). Velero passes
 * the PVC in every path except ShouldPerformSnapshot for a PV (the native-snapshot check), which
 * passes an empty PVC: there, call this without a PVC.
 */
export function factsFromPv(pv: PvInfo, pvc?: PvcInfo): FactsResult {
  let capacity = ZERO_QUANTITY;
  if (pv.capacity !== undefined) {
    const q = parseQuantityExact(pv.capacity);
    if (q === undefined) return { ok: false, error: `PV ${pv.name}: capacity "${pv.capacity}" is not a quantity` };
    capacity = q;
  }
  return {
    ok: true,
    facts: {
      capacity,
      storageClass: pv.storageClassName ?? "",
      ...(pv.nfs ? { nfs: { server: pv.nfs.server, path: pv.nfs.path } } : {}),
      ...(pv.csi ? { csi: { driver: pv.csi.driver, volumeAttributes: pv.csi.volumeAttributes } } : {}),
      volumeType: veleroPvVolumeType(pv.type),
      ...pvcPart(pvc),
    },
  };
}

/** Facts from a PVC alone (GetMatchAction's PVC-only case): only pvcLabels and pvcPhase are set. */
export function factsFromPvcOnly(pvc: PvcInfo): VolumeFacts {
  return { capacity: ZERO_QUANTITY, storageClass: "", volumeType: "", ...pvcPart(pvc) };
}

/** Facts from a pod volume itself (parsePodVolume): nfs, inline csi and the volume type; no capacity, no class. */
export function factsFromPodVolume(vol: PodVolume, pvc?: PvcInfo): VolumeFacts {
  return {
    capacity: ZERO_QUANTITY,
    storageClass: "",
    ...(vol.nfs ? { nfs: { server: vol.nfs.server, path: vol.nfs.path } } : {}),
    ...(vol.csi ? { csi: { driver: vol.csi.driver, volumeAttributes: vol.csi.volumeAttributes } } : {}),
    volumeType: veleroPodVolumeType(vol.type),
    ...pvcPart(pvc),
  };
}

export type PvLookup = (name: string) => PvInfo | undefined;
export type PvcLookup = (namespace: string, name: string) => PvcInfo | undefined;

/** Velero's kube.GetPVForPVC: the PV only for a Bound PVC with spec.volumeName whose PV exists. */
export function pvForPvc(pvc: PvcInfo, lookupPv: PvLookup): { pv: PvInfo } | { error: string } {
  const id = `${pvc.namespace}/${pvc.name}`;
  if (!pvc.volumeName) return { error: `PVC ${id} has no volume backing this claim` };
  if (pvc.phase !== "Bound") return { error: `PVC ${id} is in phase ${pvc.phase} and is not bound to a volume` };
  const pv = lookupPv(pvc.volumeName);
  if (pv === undefined) return { error: `failed to get PV ${pvc.volumeName} for PVC ${id}` };
  return { pv };
}

/**
 * Facts for a PVC, as ShouldPerformSnapshot(PVC) (the CSI snapshot path) and the pod-volume
 * backupper build them: PV + PVC when GetPVForPVC succeeds, else PVC-only facts with `pvError`.
 */
export function factsForPvc(pvc: PvcInfo, lookupPv: PvLookup): FactsResult {
  const found = pvForPvc(pvc, lookupPv);
  if ("pv" in found) return factsFromPv(found.pv, pvc);
  return { ok: true, facts: factsFromPvcOnly(pvc), pvError: found.error };
}

/**
 * Facts for a pod volume, as ShouldPerformFSBackup builds them. A non-PVC volume: the pod volume's
 * own facts. A PVC volume: the PVC must exist (else Velero errors out for this volume: `ok: false`);
 * then PV + PVC facts when GetPVForPVC succeeds, else the pod volume's facts (no nfs/csi, type "")
 * with the PVC's labels and phase, and `pvError`.
 */
export function factsForPodVolume(
  vol: PodVolume, podNamespace: string, lookupPvc: PvcLookup, lookupPv: PvLookup,
): FactsResult {
  if (vol.type !== "persistentVolumeClaim") return { ok: true, facts: factsFromPodVolume(vol) };
  const claim = vol.claimName ?? "";
  const pvc = claim === "" ? undefined : lookupPvc(podNamespace, claim);
  if (pvc === undefined) {
    return { ok: false, error: `failed to get PVC ${claim} for volume ${podNamespace}/${vol.name}` };
  }
  const found = pvForPvc(pvc, lookupPv);
  if ("pv" in found) return factsFromPv(found.pv, pvc);
  return { ok: true, facts: factsFromPodVolume(vol, pvc), pvError: found.error };
}

// ---------------------------------------------------------------------------------------------
// Matching: Velero's Policies.match and the conditions' match methods.

function capacityMatches(c: CapacityRange, y: Quantity): boolean {
  // capacity.isInRange: [0, a], [b, 0] and [a, b], bounds inclusive; a zero bound is open.
  if (isZeroQuantity(c.lower) && compareQuantities(c.upper, y) >= 0) return true;
  if (isZeroQuantity(c.upper) && compareQuantities(c.lower, y) <= 0) return true;
  if (!isZeroQuantity(c.lower) && !isZeroQuantity(c.upper)) {
    return compareQuantities(c.lower, y) <= 0 && compareQuantities(c.upper, y) >= 0;
  }
  return false;
}

function storageClassMatches(classes: readonly string[], sc: string): boolean {
  if (classes.length === 0) return true;
  if (sc === "") return false;
  return classes.includes(sc);
}

function nfsMatches(c: VolumeConditions["nfs"], v: VolumeFacts["nfs"]): boolean {
  if (c === undefined) return true;
  if (v === undefined) return false;
  if (c.server !== "" && c.server !== v.server) return false;
  if (c.path !== "" && c.path !== v.path) return false;
  return true;
}

function csiMatches(c: VolumeConditions["csi"], v: VolumeFacts["csi"]): boolean {
  if (c === undefined) return true;
  if (c.driver === "") return v !== undefined;
  if (v === undefined || c.driver !== v.driver) return false;
  const wanted = Object.entries(c.volumeAttributes ?? {});
  if (wanted.length === 0) return true;
  if (Object.keys(v.volumeAttributes).length === 0) return false;
  // Go reads a missing key as "": a wanted "" matches an absent attribute.
  return wanted.every(([k, value]) => (Object.hasOwn(v.volumeAttributes, k) ? v.volumeAttributes[k] : "") === value);
}

function volumeTypeMatches(types: readonly string[], t: string): boolean {
  return types.length === 0 || types.includes(t);
}

function pvcLabelsMatch(wanted: Labels, labels: Labels | undefined): boolean {
  const entries = Object.entries(wanted);
  if (entries.length === 0) return true;
  if (labels === undefined) return false;
  // labels.SelectorFromSet: every key present with exactly this value.
  return entries.every(([k, value]) => Object.hasOwn(labels, k) && labels[k] === value);
}

function pvcPhaseMatches(phases: readonly string[], phase: string): boolean {
  if (phases.length === 0) return true;
  if (phase === "") return false;
  return phases.includes(phase);
}

/** Whether all of a policy's conditions hold for the volume (Velero ANDs them). */
export function volumeConditionsMatch(c: VolumeConditions, v: VolumeFacts): boolean {
  return capacityMatches(c.capacity, v.capacity)
    && storageClassMatches(c.storageClass, v.storageClass)
    && nfsMatches(c.nfs, v.nfs)
    && csiMatches(c.csi, v.csi)
    && volumeTypeMatches(c.volumeTypes, v.volumeType)
    && pvcLabelsMatch(c.pvcLabels, v.pvcLabels)
    && pvcPhaseMatches(c.pvcPhase, v.pvcPhase);
}

/** The action of the first policy whose conditions all hold, or undefined (Policies.match). */
export function matchVolumePolicy(policies: VolumePolicies, facts: VolumeFacts): VolumeAction | undefined {
  for (const policy of policies.volumePolicies) {
    if (volumeConditionsMatch(policy.conditions, facts)) return policy.action;
  }
  return undefined;
}
