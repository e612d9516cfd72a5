import { z } from "zod";
import { labelSelectorSchema, type LabelSelector } from "./labelSelector.js";

// The parts of a velero.io/v1 BackupSpec that decide what a backup touches; other fields are
// dropped. Every list may arrive as null from JSON, which Velero reads as empty.
//
// zod checks the shape and `normalized` fills the defaults: a zod transform is a pipe zod runs
// outside its compiled object parser, and in a process that parses other schemas too a spec
// took 7-25 µs with them, under 1 without (docs/performance.md, "A spec's defaults").
const names = z.array(z.string()).nullish();
const flag = z.boolean().nullish();

const execHook = z.looseObject({
  exec: z.looseObject({
    container: z.string().nullish(),
    command: z.array(z.string()).min(1),
    onError: z.enum(["Continue", "Fail"]).nullish(),
    timeout: z.string().nullish(),
  }),
});

const hookResource = z.looseObject({
  name: z.string(),
  includedNamespaces: names,
  excludedNamespaces: names,
  includedResources: names,
  excludedResources: names,
  labelSelector: labelSelectorSchema.nullish(),
  pre: z.array(execHook).nullish(),
  post: z.array(execHook).nullish(),
});

export const backupSpecSchema = z.looseObject({
  includedNamespaces: names,
  excludedNamespaces: names,
  includedResources: names,
  excludedResources: names,
  includeClusterResources: flag,
  includedClusterScopedResources: names,
  excludedClusterScopedResources: names,
  includedNamespaceScopedResources: names,
  excludedNamespaceScopedResources: names,
  labelSelector: labelSelectorSchema.nullish(),
  orLabelSelectors: z.array(labelSelectorSchema).nullish(),
  snapshotVolumes: flag,
  defaultVolumesToFsBackup: flag,
  defaultVolumesToRestic: flag,
  snapshotMoveData: flag,
  volumeGroupSnapshotLabelKey: z.string().nullish(),
  hooks: z.looseObject({ resources: z.array(hookResource).nullish() }).nullish(),
  resourcePolicy: z.looseObject({ kind: z.string(), name: z.string().min(1), apiGroup: z.string().nullish() }).nullish(),
});

type RawSpec = z.output<typeof backupSpecSchema>;
type RawHookResource = z.output<typeof hookResource>;

/**
 * A spec as zod read it, with Velero's defaults: null lists are empty, null flags and selectors
 * absent. Fields the core does not read are dropped: a literal that spreads the parsed spec and then
 * sets fields it already has leaves V8's fast copy for its runtime, field by field (25 µs a spec).
 */
function normalized(raw: RawSpec) {
  return {
    includedNamespaces: list(raw.includedNamespaces),
    excludedNamespaces: list(raw.excludedNamespaces),
    includedResources: list(raw.includedResources),
    excludedResources: list(raw.excludedResources),
    includeClusterResources: given(raw.includeClusterResources),
    includedClusterScopedResources: list(raw.includedClusterScopedResources),
    excludedClusterScopedResources: list(raw.excludedClusterScopedResources),
    includedNamespaceScopedResources: list(raw.includedNamespaceScopedResources),
    excludedNamespaceScopedResources: list(raw.excludedNamespaceScopedResources),
    labelSelector: given(raw.labelSelector),
    orLabelSelectors: given(raw.orLabelSelectors),
    snapshotVolumes: given(raw.snapshotVolumes),
    defaultVolumesToFsBackup: given(raw.defaultVolumesToFsBackup),
    defaultVolumesToRestic: given(raw.defaultVolumesToRestic),
    snapshotMoveData: given(raw.snapshotMoveData),
    volumeGroupSnapshotLabelKey: raw.volumeGroupSnapshotLabelKey || undefined,
    hooks: { resources: raw.hooks?.resources?.map(normalizedHook) ?? [] },
    resourcePolicy: given(raw.resourcePolicy),
  };
}

function normalizedHook(raw: RawHookResource) {
  return {
    name: raw.name,
    includedNamespaces: list(raw.includedNamespaces),
    excludedNamespaces: list(raw.excludedNamespaces),
    includedResources: list(raw.includedResources),
    excludedResources: list(raw.excludedResources),
    labelSelector: given(raw.labelSelector),
    pre: list(raw.pre),
    post: list(raw.post),
  };
}

const list = <T>(v: T[] | null | undefined): T[] => v ?? [];
const given = <T>(v: T | null | undefined): T | undefined => v ?? undefined;

export type BackupSpec = ReturnType<typeof normalized>;
export type HookResourceSpec = BackupSpec["hooks"]["resources"][number];
export type { LabelSelector };

/** A reason Velero would refuse a backup (FailedValidation), tied to the field at fault. */
export interface SpecError {
  readonly field: string;
  readonly message: string;
}

export type ParsedSpec = { ok: true; spec: BackupSpec } | { ok: false; errors: SpecError[] };

/** Parses a raw spec. Type errors name the field; rule errors come from `validateSpec`. */
export function parseBackupSpec(raw: unknown): ParsedSpec {
  const result = backupSpecSchema.safeParse(raw ?? {});
  if (!result.success) return { ok: false, errors: typeErrors(result.error.issues) };
  const spec = normalized(result.data);
  const errors = validateSpec(spec);
  return errors.length > 0 ? { ok: false, errors } : { ok: true, spec };
}

/**
 * Fields of the wrong type or shape: an object the API server's schema would never have
 * stored, so a file holding one is malformed (a rule Velero checks is not a type error).
 */
export function specTypeErrors(raw: unknown): SpecError[] {
  const result = backupSpecSchema.safeParse(raw ?? {});
  return result.success ? [] : typeErrors(result.error.issues);
}

function typeErrors(issues: readonly z.core.$ZodIssue[]): SpecError[] {
  return issues.map((issue) => ({
    field: ["spec", ...issue.path.map(String)].join(".").replace(/\.(\d+)(?=\.|$)/g, "[$1]"),
    message: issue.message,
  }));
}

/** True when the spec uses Velero's old resource filters (includedResources and friends). */
export function usesOldResourceFilters(spec: BackupSpec): boolean {
  return spec.includeClusterResources !== undefined || spec.includedResources.length > 0 || spec.excludedResources.length > 0;
}

function usesNewResourceFilters(spec: BackupSpec): boolean {
  return (
    spec.includedClusterScopedResources.length > 0 ||
    spec.excludedClusterScopedResources.length > 0 ||
    spec.includedNamespaceScopedResources.length > 0 ||
    spec.excludedNamespaceScopedResources.length > 0
  );
}

// The checks Velero's backup controller makes before it runs a backup (prepareBackupRequest)
// that depend on the spec alone. Namespace lists are checked by the scope, because Velero
// checks them after adding the namespaces labelled velero.io/exclude-from-backup.
function validateSpec(spec: BackupSpec): SpecError[] {
  const errors: SpecError[] = [];
  if (usesOldResourceFilters(spec) && usesNewResourceFilters(spec)) {
    errors.push({
      field: "spec.includedResources",
      message:
        "old resource filters (includedResources, excludedResources, includeClusterResources) cannot be used together with the new scoped filters (included/excluded ClusterScoped/NamespaceScoped resources)",
    });
  } else if (usesOldResourceFilters(spec)) {
    errors.push(...listErrors("spec.includedResources", "spec.excludedResources", spec.includedResources, spec.excludedResources, false));
  } else {
    errors.push(
      ...listErrors(
        "spec.includedClusterScopedResources",
        "spec.excludedClusterScopedResources",
        spec.includedClusterScopedResources,
        spec.excludedClusterScopedResources,
        true,
      ),
    );
    errors.push(
      ...listErrors(
        "spec.includedNamespaceScopedResources",
        "spec.excludedNamespaceScopedResources",
        spec.includedNamespaceScopedResources,
        spec.excludedNamespaceScopedResources,
        true,
      ),
    );
  }
  if (spec.labelSelector && spec.orLabelSelectors) {
    errors.push({ field: "spec.orLabelSelectors", message: "labelSelector and orLabelSelectors cannot both be set; use one" });
  }
  return errors;
}

/**
 * Velero's include/exclude list rules. `scoped` lists (the new filters) accept a lone `*` in
 * excludes (meaning "none of this scope"); old lists and namespace lists do not.
 */
export function listErrors(
  includesField: string,
  excludesField: string,
  includes: readonly string[],
  excludes: readonly string[],
  scoped: boolean,
): SpecError[] {
  const errors: SpecError[] = [];
  const inc = new Set(includes);
  const exc = new Set(excludes);
  if (inc.size > 1 && inc.has("*"))
    errors.push({ field: includesField, message: "must either contain '*' only, or a list of items without '*'" });
  if (scoped) {
    if (exc.size > 1 && exc.has("*"))
      errors.push({ field: excludesField, message: "must either contain '*' only, or a list of items without '*'" });
    if (inc.size > 0 && exc.has("*")) errors.push({ field: excludesField, message: "when excludes is '*', includes must be empty" });
  } else if (exc.has("*")) {
    errors.push({ field: excludesField, message: "cannot contain '*'" });
  }
  for (const item of [...exc].sort()) {
    if (inc.has(item)) errors.push({ field: excludesField, message: `cannot contain an item that is also included: ${item}` });
  }
  return errors;
}
