import { KEYS, requestsNamespaceLevel, type BackupInfo, type ConflictLevel, type Labels } from "../model.js";
import type { Policy } from "../policy.js";
import type { ClusterView } from "../view.js";
import { parseBackupSpec, usesOldResourceFilters, type BackupSpec, type SpecError } from "../velero/backupSpec.js";
import { selectorMatches, type LabelSelector } from "../velero/labelSelector.js";
import { backupNamespaces, veleroQueueNamespaces } from "../velero/namespaces.js";
import { resourceFilter } from "../velero/resources.js";
import { volumeRules } from "../velero/volumes.js";
import { isExcluded, type ScopeHead } from "./model.js";

// A scope's head: what follows from the spec, the namespace list and the backup's own labels
// and annotations (validation, namespace resolution, level, serial key, the parts' context).

/** A parsed spec and what follows from the spec alone; shared by backups with the same spec. */
export interface ParsedSpecInfo {
  readonly parsed: ReturnType<typeof parseBackupSpec>;
  /** The spec without its namespace lists, as a stable string (parts do not depend on those lists). */
  readonly partSpecKey: string;
}

export function parseSpecInfo(spec: unknown): ParsedSpecInfo {
  const parsed = parseBackupSpec(spec);
  const raw = (spec ?? {}) as Record<string, unknown>;
  const rest: Record<string, unknown> = {};
  if (raw && typeof raw === "object") {
    for (const k of Object.keys(raw)) if (k !== "includedNamespaces" && k !== "excludedNamespaces") rest[k] = raw[k];
  }
  return { parsed, partSpecKey: canonicalJson(rest) };
}

/**
 * Namespace resolution for one state of the namespace list (labels and annotations included):
 * backups with the same namespace lists share the answer.
 */
export class NamespaceResolver {
  private labelledList?: string[];
  private strictSet?: ReadonlySet<string>;
  private readonly queue = new Map<string, string[]>();
  private readonly resolved = new Map<string, ReturnType<typeof backupNamespaces>>();
  constructor(private readonly view: ClusterView) {}

  labelled(): readonly string[] {
    this.labelledList ??= this.view.namespaceNames().filter((ns) => isExcluded(this.view.namespace(ns)?.labels ?? {}));
    return this.labelledList;
  }
  queueNamespaces(includes: readonly string[], excludes: readonly string[]): readonly string[] {
    const key = JSON.stringify([includes, excludes]);
    let list = this.queue.get(key);
    if (!list) {
      list = veleroQueueNamespaces(includes, excludes, this.view.namespaceNames());
      this.queue.set(key, list);
    }
    return list;
  }
  backupNamespaces(includes: readonly string[], excludes: readonly string[]): ReturnType<typeof backupNamespaces> {
    const key = JSON.stringify([includes, excludes]);
    let r = this.resolved.get(key);
    if (!r) {
      r = backupNamespaces(includes, excludes, this.view.namespaceNames(), this.labelled());
      this.resolved.set(key, r);
    }
    return r;
  }
  strict(namespaces: readonly string[]): string[] {
    this.strictSet ??= new Set(
      this.view.namespaceNames().filter((ns) => this.view.namespace(ns)?.annotations[KEYS.conflictLevel] === "Namespace"),
    );
    const set = this.strictSet;
    return set.size === 0 ? [] : namespaces.filter((ns) => set.has(ns));
  }
}

export function scopeHead(
  backup: BackupInfo,
  view: ClusterView,
  policy: Policy,
  info: ParsedSpecInfo,
  resolver = new NamespaceResolver(view),
): ScopeHead {
  const existing = view.namespaceNames();
  const raw = (backup.spec ?? {}) as Record<string, unknown>;
  const queueNamespaces = resolver.queueNamespaces(stringList(raw.includedNamespaces), stringList(raw.excludedNamespaces));
  const { level, levelReason } = judgeLevel(backup, view, policy);
  const serialKey = serialKeyOf(backup, policy);
  // Each head is one literal with every field (the optional ones may be undefined): in V8 an
  // object spread and then given new keys lands in the old generation, and admission makes a
  // head on every review (docs/performance.md, "What a review keeps").
  const refused = (errors: readonly SpecError[], notes: readonly string[] = []): ScopeHead => ({
    queueNamespaces,
    level,
    levelReason,
    serialKey,
    errors,
    listsPvs: false,
    namespaces: [],
    strictNamespaces: [],
    notes,
    context: undefined,
  });

  const parsed = info.parsed;
  if (!parsed.ok) return refused(parsed.errors);
  const spec = parsed.spec;
  const labelled = resolver.labelled();
  const resolved = resolver.backupNamespaces(spec.includedNamespaces, spec.excludedNamespaces);
  if (!resolved.ok) return refused(resolved.errors);

  const namespaces = resolved.namespaces;
  const includeEverything = includesEveryNamespace(spec, labelled, existing);
  const filter = resourceFilter(spec, includeEverything);
  const volumes = volumeRules(backup, spec, view, policy, filter.shouldInclude("persistentvolumeclaims"));
  if (volumes.errors.length > 0) return refused(volumes.errors, volumes.notes);

  const strictNamespaces = resolver.strict(namespaces);
  const key = [info.partSpecKey, usesOldResourceFilters(spec) ? String(includeEverything) : "", policyRef(backup, spec, view)].join(
    "\u0000",
  );
  const context = {
    key,
    spec,
    policy,
    filter,
    volumes,
    groupKey: spec.volumeGroupSnapshotLabelKey ?? policy.volumeGroupSnapshotLabelKey,
    selected: selectorOf(spec),
  };
  return {
    queueNamespaces,
    level,
    levelReason,
    serialKey,
    errors: [],
    listsPvs: filter.shouldInclude("persistentvolumes"),
    namespaces,
    strictNamespaces,
    notes: volumes.notes,
    context,
  };
}

/** Whether the backup names every namespace (Velero then treats its old-style filters differently). */
function includesEveryNamespace(spec: BackupSpec, labelled: readonly string[], existing: readonly string[]): boolean {
  if (spec.excludedNamespaces.length > 0 || labelled.length > 0) return false;
  const included = spec.includedNamespaces;
  return included.length === 0 || (included.length === 1 && included[0] === "*") || sameList([...included].sort(), existing);
}

/** The volume-policy ConfigMap the parts read, with its version (empty without one). */
function policyRef(backup: BackupInfo, spec: BackupSpec, view: ClusterView): string {
  const ref = spec.resourcePolicy;
  if (!ref) return "";
  return `${backup.namespace}/${ref.kind}/${ref.name}@${view.configMap(backup.namespace, ref.name)?.version ?? -1}`;
}

/** Whether an item's labels pass the backup's label selectors. */
function selectorOf(spec: BackupSpec): ((labels: Labels) => boolean) | undefined {
  const selectors = spec.orLabelSelectors ?? (spec.labelSelector ? [spec.labelSelector] : undefined);
  if (!selectors) return undefined;
  // Asked for every pod and claim of a candidate: a loop, as some() made a closure per item.
  return (labels) => {
    for (let i = 0; i < selectors.length; i++) if (selectorMatches(selectors[i] as LabelSelector, labels)) return true;
    return false;
  };
}

function judgeLevel(backup: BackupInfo, view: ClusterView, policy: Policy): { level: ConflictLevel; levelReason?: string } {
  if (policy.conflictLevel === "Namespace") return { level: "Namespace" };
  if (!view.synced) return { level: "Namespace", levelReason: "the cluster view is not synced yet, so the scope cannot be predicted" };
  if (requestsNamespaceLevel(backup.annotations))
    return { level: "Namespace", levelReason: `the backup is annotated ${KEYS.conflictLevel}: Namespace` };
  return { level: "ItemBlock" };
}

function serialKeyOf(backup: BackupInfo, policy: Policy): string | undefined {
  const schedule = backup.labels[KEYS.scheduleName];
  if (schedule) return `schedule ${schedule}`;
  return policy.serialIdenticalScope ? `spec ${canonicalJson(backup.spec)}` : undefined;
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) && value.every((v) => typeof v === "string") ? value : [];
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
