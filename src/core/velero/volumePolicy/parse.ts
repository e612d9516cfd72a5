import { parseAllDocuments, type Document } from "yaml";
import type { z } from "zod";
import type { ConfigMapInfo } from "../../model.js";
import { ZERO_QUANTITY } from "../quantity.js";
import type { ParseVolumePoliciesResult, VolumePolicy } from "./model.js";
import { documentSchema, formatIssues } from "./schema.js";
import { toPlain, YamlShapeError, type Plain } from "./yaml.js";

/** Action parameters keep their YAML types (plugins compare them with Go's ==). */
function actionParameters(doc: Document, index: number): Readonly<Record<string, unknown>> | undefined {
  try {
    const js: unknown = doc.toJS({ maxAliasCount: 100 });
    const policies: unknown = (js as { volumePolicies?: unknown } | null)?.volumePolicies;
    const policy: unknown = Array.isArray(policies) ? policies[index] : undefined;
    const action: unknown = (policy as { action?: unknown } | null | undefined)?.action;
    const value: unknown = (action as { parameters?: unknown } | null | undefined)?.parameters;
    return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Map)
      ? (value as Record<string, unknown>)
      : undefined;
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
    const volumePolicies = (raw.volumePolicies ?? []).map((p, i) =>
      volumePolicyOf(p, p.action.parameters == null ? undefined : actionParameters(doc, i)),
    );
    const iep = raw.includeExcludePolicy;
    return {
      ok: true,
      policies: { version: raw.version, volumePolicies, ...(iep ? { includeExcludePolicy: includeExcludeOf(iep) } : {}) },
    };
  } catch (e) {
    return { ok: false, error: `${where}: unreadable resource policy: ${e instanceof Error ? e.message : String(e)}` };
  }
}

type RawDocument = z.infer<ReturnType<typeof documentSchema>>;
type RawPolicy = NonNullable<RawDocument["volumePolicies"]>[number];

/** A policy as read, with Velero's zero values for what it leaves out. */
function volumePolicyOf(p: RawPolicy, parameters: ReturnType<typeof actionParameters> | undefined): VolumePolicy {
  return {
    conditions: conditionsOf(p.conditions),
    action: { type: p.action.type, ...(parameters !== undefined ? { parameters } : {}) },
  };
}

function conditionsOf(conditions: RawPolicy["conditions"]): VolumePolicy["conditions"] {
  const c: Partial<NonNullable<RawPolicy["conditions"]>> = conditions ?? {};
  return {
    capacity: c.capacity ?? { lower: ZERO_QUANTITY, upper: ZERO_QUANTITY },
    storageClass: c.storageClass ?? [],
    ...(c.nfs ? { nfs: { server: c.nfs.server ?? "", path: c.nfs.path ?? "" } } : {}),
    ...(c.csi ? { csi: csiOf(c.csi) } : {}),
    volumeTypes: c.volumeTypes ?? [],
    pvcLabels: c.pvcLabels ?? {},
    pvcPhase: c.pvcPhase ?? [],
  };
}

function csiOf(csi: NonNullable<NonNullable<RawPolicy["conditions"]>["csi"]>) {
  return { driver: csi.driver ?? "", ...(csi.volumeAttributes !== undefined ? { volumeAttributes: csi.volumeAttributes } : {}) };
}

function includeExcludeOf(iep: NonNullable<RawDocument["includeExcludePolicy"]>) {
  return {
    includedClusterScopedResources: iep.includedClusterScopedResources ?? [],
    excludedClusterScopedResources: iep.excludedClusterScopedResources ?? [],
    includedNamespaceScopedResources: iep.includedNamespaceScopedResources ?? [],
    excludedNamespaceScopedResources: iep.excludedNamespaceScopedResources ?? [],
  };
}
