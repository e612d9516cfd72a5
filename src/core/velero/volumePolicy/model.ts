// The policy document as Velero holds it (internal/resourcepolicies: Policies, VolumePolicy).
import type { Labels } from "../../model.js";
import type { Quantity } from "../quantity.js";

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
  { readonly ok: true; readonly policies: VolumePolicies } | { readonly ok: false; readonly error: string };

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
