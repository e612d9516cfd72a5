import { parseBackupSpec, type BackupSpec, type SpecError } from "./backupSpec.js";
import { hooksOnPod } from "./hooks.js";
import { selectorMatches } from "./labelSelector.js";
import { KEYS, requestsNamespaceLevel, type BackupInfo, type ConflictLevel, type Labels, type PodInfo, type PvcInfo, type PvInfo } from "./model.js";
import { backupNamespaces, veleroQueueNamespaces } from "./namespaces.js";
import type { Policy } from "./policy.js";
import { resourceFilter, type ResourceFilter } from "./resources.js";
import type { ClusterView } from "./view.js";
import { volumeRules, type VolumeRules } from "./volumes.js";

// What one backup touches, predicted as Velero 1.18 resolves it: the namespaces, the pods,
// PVCs and PVs it processes, the units they belong to, and which of those units it needs
// exclusively (hooks, snapshots, file-system backups), each with its reason.

export interface BackupScope {
  /** Non-empty when Velero would refuse the backup (FailedValidation): it then touches nothing. */
  readonly errors: readonly SpecError[];
  /** The namespace set Velero's own queue compares; the claim at namespace level. */
  readonly queueNamespaces: readonly string[];
  /** The namespaces the backup controller backs up. */
  readonly namespaces: readonly string[];
  /** Items processed: pods and PVCs as namespace/name, PVs by name; each list sorted. */
  readonly items: { readonly pods: readonly string[]; readonly pvcs: readonly string[]; readonly pvs: readonly string[] };
  /** Units the backup includes. */
  readonly units: readonly string[];
  /** Units the backup needs exclusively, each with the first reason found. */
  readonly exclusive: ReadonlyMap<string, string>;
  /** The level this backup is judged at, and why when it is not the policy's. */
  readonly level: ConflictLevel;
  readonly levelReason?: string;
  /** Namespaces in scope annotated backup-gate.io/conflict-level: Namespace. */
  readonly strictNamespaces: readonly string[];
  /** Runs of one serial workload share this key and never run together. */
  readonly serialKey?: string;
  /** True when the backup lists PVs directly, so any PV change can change its scope. */
  readonly listsPvs: boolean;
  /** What else a person should know (e.g. a volume policy that could not be read). */
  readonly notes: readonly string[];
}

const EXCLUDE = (labels: Labels) => labels[KEYS.excludeFromBackup] === "true";

export function scopeOf(backup: BackupInfo, view: ClusterView, policy: Policy): BackupScope {
  const existing = view.namespaceNames();
  const raw = (backup.spec ?? {}) as Record<string, unknown>;
  const queueNamespaces = veleroQueueNamespaces(stringList(raw.includedNamespaces), stringList(raw.excludedNamespaces), existing);
  const { level, levelReason } = judgeLevel(backup, view, policy);
  const serialKey = serialKeyOf(backup, policy);
  const base = { queueNamespaces, level, levelReason, serialKey };
  const empty = { listsPvs: false, namespaces: [], items: { pods: [], pvcs: [], pvs: [] }, units: [], exclusive: new Map(), strictNamespaces: [], notes: [] };

  const parsed = parseBackupSpec(backup.spec);
  if (!parsed.ok) return { ...base, ...empty, errors: parsed.errors };
  const spec = parsed.spec;
  const labelled = existing.filter((ns) => EXCLUDE(view.namespace(ns)?.labels ?? {}));
  const resolved = backupNamespaces(spec.includedNamespaces, spec.excludedNamespaces, existing, labelled);
  if (!resolved.ok) return { ...base, ...empty, errors: resolved.errors };

  const namespaces = resolved.namespaces;
  const includeEverything = spec.excludedNamespaces.length === 0 && labelled.length === 0
    && (spec.includedNamespaces.length === 0 || (spec.includedNamespaces.length === 1 && spec.includedNamespaces[0] === "*")
      || sameList([...spec.includedNamespaces].sort(), existing));
  const filter = resourceFilter(spec, includeEverything);
  const volumes = volumeRules(backup, spec, view, policy, filter.shouldInclude("persistentvolumeclaims"));
  if (volumes.errors.length > 0) return { ...base, ...empty, errors: volumes.errors, notes: volumes.notes };

  const processed = collect(view, spec, policy, namespaces, filter);
  const claims = exclusiveUnits(view, spec, policy, processed, volumes, filter, namespaces);
  const strictNamespaces = namespaces.filter((ns) => view.namespace(ns)?.annotations[KEYS.conflictLevel] === "Namespace");
  return {
    ...base,
    errors: [],
    listsPvs: filter.shouldInclude("persistentvolumes"),
    namespaces,
    items: {
      pods: [...processed.pods.values()].map(key).sort(),
      pvcs: [...processed.pvcs.values()].map(key).sort(),
      pvs: [...processed.pvs.keys()].sort(),
    },
    units: claims.units,
    exclusive: claims.exclusive,
    strictNamespaces,
    notes: volumes.notes,
  };
}

function judgeLevel(backup: BackupInfo, view: ClusterView, policy: Policy): { level: ConflictLevel; levelReason?: string } {
  if (policy.conflictLevel === "Namespace") return { level: "Namespace" };
  if (!view.synced) return { level: "Namespace", levelReason: "the cluster view is not synced yet, so the scope cannot be predicted" };
  if (requestsNamespaceLevel(backup.annotations)) return { level: "Namespace", levelReason: `the backup is annotated ${KEYS.conflictLevel}: Namespace` };
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
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) && value.every((v) => typeof v === "string") ? value : [];
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

const key = (item: { namespace: string; name: string }) => `${item.namespace}/${item.name}`;

interface Processed {
  readonly pods: Map<string, PodInfo>;
  readonly pvcs: Map<string, PvcInfo>;
  readonly pvs: Map<string, PvInfo>;
}

export function isPodRunning(pod: PodInfo): boolean {
  return pod.phase === "Running" && !!pod.nodeName && !pod.deleting;
}

// The item collector lists what the filters and selectors admit; ItemBlock actions then pull
// in related items regardless of selectors (pod -> PVCs; bound PVC -> PV, running pods that
// mount it, volume-group siblings). A related item that was not listed joins only if it
// passes Velero's per-item checks; every item is processed only if it passes them.
function collect(view: ClusterView, spec: BackupSpec, policy: Policy, namespaces: readonly string[], filter: ResourceFilter): Processed {
  const selectors = spec.orLabelSelectors ?? (spec.labelSelector ? [spec.labelSelector] : undefined);
  const selected = (labels: Labels) => !selectors || selectors.some((s) => selectorMatches(s, labels));
  const inNamespaces = new Set(namespaces);
  const podsIncluded = filter.shouldInclude("pods");
  const pvcsIncluded = filter.shouldInclude("persistentvolumeclaims");
  const pvsExcluded = filter.shouldExclude("persistentvolumes");
  const passes = {
    pod: (p: PodInfo) => podsIncluded && inNamespaces.has(p.namespace) && !EXCLUDE(p.labels) && !p.deleting,
    pvc: (c: PvcInfo) => pvcsIncluded && inNamespaces.has(c.namespace) && !EXCLUDE(c.labels) && !c.deleting,
    pv: (v: PvInfo) => !pvsExcluded && !EXCLUDE(v.labels) && !v.deleting,
  };
  const groupKey = spec.volumeGroupSnapshotLabelKey ?? policy.volumeGroupSnapshotLabelKey;
  const seen = { pods: new Set<PodInfo>(), pvcs: new Set<PvcInfo>(), pvs: new Set<PvInfo>() };
  const listed = { pods: new Set<PodInfo>(), pvcs: new Set<PvcInfo>(), pvs: new Set<PvInfo>() };

  const visitPod = (pod: PodInfo) => {
    if (seen.pods.has(pod)) return;
    seen.pods.add(pod);
    const contents = view.contents(pod.namespace);
    for (const v of pod.volumes) {
      const pvc = v.claimName ? contents.pvcs.get(v.claimName) : undefined;
      if (pvc && (listed.pvcs.has(pvc) || passes.pvc(pvc))) visitPvc(pvc);
    }
  };
  const visitPvc = (pvc: PvcInfo) => {
    if (seen.pvcs.has(pvc)) return;
    seen.pvcs.add(pvc);
    if (pvc.phase !== "Bound" || !pvc.volumeName) return;
    const pv = view.pv(pvc.volumeName);
    if (pv && (listed.pvs.has(pv) || passes.pv(pv))) seen.pvs.add(pv);
    const contents = view.contents(pvc.namespace);
    for (const pod of contents.podsMounting(pvc.name)) {
      if (isPodRunning(pod) && (listed.pods.has(pod) || passes.pod(pod))) visitPod(pod);
    }
    const group = pvc.labels[groupKey];
    if (!group) return;
    for (const sibling of contents.pvcs.values()) {
      if (sibling !== pvc && sibling.labels[groupKey] === group && (listed.pvcs.has(sibling) || passes.pvc(sibling))) visitPvc(sibling);
    }
  };

  for (const ns of namespaces) {
    const contents = view.contents(ns);
    if (podsIncluded) for (const pod of contents.pods.values()) if (selected(pod.labels)) listed.pods.add(pod);
    if (pvcsIncluded) for (const pvc of contents.pvcs.values()) if (selected(pvc.labels)) listed.pvcs.add(pvc);
  }
  if (filter.shouldInclude("persistentvolumes")) for (const pv of view.pvs()) if (selected(pv.labels)) listed.pvs.add(pv);
  for (const pod of listed.pods) visitPod(pod);
  for (const pvc of listed.pvcs) visitPvc(pvc);
  for (const pv of listed.pvs) seen.pvs.add(pv);

  return {
    pods: new Map([...seen.pods].filter(passes.pod).map((p) => [key(p), p])),
    pvcs: new Map([...seen.pvcs].filter(passes.pvc).map((c) => [key(c), c])),
    pvs: new Map([...seen.pvs].filter(passes.pv).map((v) => [v.name, v])),
  };
}

function exclusiveUnits(view: ClusterView, spec: BackupSpec, policy: Policy, processed: Processed, volumes: VolumeRules, filter: ResourceFilter, namespaces: readonly string[]):
  { units: string[]; exclusive: Map<string, string> } {
  const groupKey = spec.volumeGroupSnapshotLabelKey ?? policy.volumeGroupSnapshotLabelKey;
  const units = new Set<string>();
  const exclusive = new Map<string, string>();
  const claim = (unit: string, reason: string) => { if (!exclusive.has(unit)) exclusive.set(unit, reason); };
  const unitOf = (namespace: string, member: string) => view.contents(namespace).unitOf(member, groupKey)?.id;

  for (const pod of [...processed.pods.values()].sort(byKey)) {
    const unit = unitOf(pod.namespace, `pod:${pod.name}`);
    if (!unit) continue;
    units.add(unit);
    for (const hook of hooksOnPod(pod, spec)) claim(unit, `run ${hook.phase} hooks on pod ${key(pod)} (${hook.source})`);
    for (const volume of volumes.fsBackupVolumes(pod)) claim(unit, `file-system back up volume ${volume} of pod ${key(pod)}`);
  }
  for (const pvc of [...processed.pvcs.values()].sort(byKey)) {
    const unit = unitOf(pvc.namespace, `pvc:${pvc.name}`);
    if (!unit) continue;
    units.add(unit);
    if (volumes.snapshotsPvc(pvc)) claim(unit, `snapshot PVC ${key(pvc)}`);
  }
  // A PV is cluster-scoped: it counts toward a unit (and can make it exclusive) only through a
  // claim in one of the backup's namespaces, so that cluster-scoped items never conflict.
  const inScope = new Set(namespaces);
  for (const pv of [...processed.pvs.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const ref = pv.claimRef;
    const pvc = ref && inScope.has(ref.namespace) ? view.contents(ref.namespace).pvcs.get(ref.name) : undefined;
    const unit = pvc?.volumeName === pv.name ? unitOf(pvc.namespace, `pvc:${pvc.name}`) : undefined;
    if (!unit) continue;
    units.add(unit);
    if (volumes.snapshotsPv(pv)) claim(unit, `snapshot PV ${pv.name}`);
  }
  for (const kind of policy.exclusiveResources) {
    if (!filter.shouldInclude(kind)) continue;
    for (const ns of namespaces) {
      const unit = `${ns}/${kind}`;
      units.add(unit);
      claim(unit, `back up ${kind} in namespace ${ns} (an exclusive resource)`);
    }
  }
  return { units: [...units].sort(), exclusive };
}

function byKey(a: { namespace: string; name: string }, b: { namespace: string; name: string }): number {
  const ka = key(a), kb = key(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}
