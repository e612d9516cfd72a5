import { parseBackupSpec, usesOldResourceFilters, type BackupSpec, type SpecError } from "../velero/backupSpec.js";
import { hooksOnPod } from "../velero/hooks.js";
import { positions } from "../lists.js";
import { selectorMatches } from "../velero/labelSelector.js";
import { KEYS, requestsNamespaceLevel, type BackupInfo, type ConflictLevel, type Labels, type PodInfo, type PvcInfo, type PvInfo } from "../model.js";
import { backupNamespaces, veleroQueueNamespaces } from "../velero/namespaces.js";
import type { Policy } from "../policy.js";
import { resourceFilter, type ResourceFilter } from "../velero/resources.js";
import type { ClusterView } from "../view.js";
import { volumeRules, type VolumeRules } from "../velero/volumes.js";

// What one backup touches, predicted as Velero 1.18 resolves it: the namespaces, the pods,
// PVCs and PVs it processes, the units they belong to, and which of those units it needs
// exclusively (hooks, snapshots, file-system backups), each with its reason.
//
// A scope is computed in pieces so that an event re-computes only what it can change:
// - the head (validation, namespace resolution, level, serial key), from the spec, the
//   namespace list and the backup's own labels and annotations;
// - one ScopePart per namespace: everything the backup touches inside that namespace depends
//   only on the spec (minus its namespace lists), the spec-derived context (resource filter,
//   volume rules) and that namespace's contents (pods, PVCs, the PVs bound into it), so it is
//   valid while `view.contents(ns).version` stays put and is shared by every backup with the
//   same spec (and context) covering that namespace;
// - the PVs listed directly (when the filter includes persistentvolumes), from `view.pvVersion`.
// The public lists (`items`, `units`, `exclusive`) are assembled from the parts on demand;
// conflicts are judged on the parts (`claims`).

export interface BackupScope extends Omit<ScopeHead, "context"> {
  /** Items processed: pods and PVCs as namespace/name, PVs by name; each list sorted (assembled on demand). */
  readonly items: { readonly pods: readonly string[]; readonly pvcs: readonly string[]; readonly pvs: readonly string[] };
  /** Units the backup includes (assembled on demand). */
  readonly units: readonly string[];
  /** Units the backup needs exclusively, each with the first reason found (assembled on demand). */
  readonly exclusive: ReadonlyMap<string, string>;
  /** The exclusive claims by namespace, for conflicts (not enumerable: not part of the scope's data). */
  readonly claims: ScopeClaims;
}

/** Why a backup needs a unit, and where that reason comes in the backup's claim order. */
export interface Claim {
  readonly reason: string;
  /** Claim order: 0 pods, 1 PVCs, 2 PVs, 3 + i the i-th exclusive resource kind of the policy; then by `key`. */
  readonly rank: number;
  readonly key: string;
}

/** One piece of exclusive work a backup will do on an item, as the scope predicts it. */
export interface Action {
  /** `pod`, `pvc` or `pv`, and the item as the scope lists it (namespace/name; a PV by name). */
  readonly kind: "pod" | "pvc" | "pv";
  readonly item: string;
  readonly work: "pre hooks" | "post hooks" | "file-system backup" | "snapshot";
  /** The pod volume a file-system backup copies. */
  readonly volume?: string;
  /** The unit the work makes exclusive. */
  readonly unit: string;
}

/** Hears every action a scope predicts (the fidelity suite compares them with what Velero did). */
export type ActionTrace = (action: Action) => void;

/** What a backup touches inside one namespace. */
export interface ScopePart {
  readonly namespace: string;
  /** Pods and PVCs processed (namespace/name), PVs reached from this namespace; each sorted. */
  readonly pods: readonly string[];
  readonly pvcs: readonly string[];
  readonly pvs: readonly string[];
  /** Units included, sorted. */
  readonly units: readonly string[];
  /** Units needed exclusively, in claim order, with the first reason. */
  readonly claims: ReadonlyMap<string, Claim>;
  /** The keys of `claims`, in order: conflict checks walk it for every candidate pair, and an array walk allocates no iterator. */
  readonly claimed: readonly string[];
  /** PVs reached from this namespace whose claim is in another namespace (rare). */
  readonly foreignPvs: readonly PvInfo[];
  /** True when the part read a PV whose changes need not move this namespace's version. */
  readonly readsForeignPvs: boolean;
}

export interface ScopeClaims {
  /** Namespace -> part, for the namespaces where the backup needs some unit exclusively. */
  readonly byNamespace: ReadonlyMap<string, ScopePart>;
  /** The keys of `byNamespace`, in namespace order. */
  readonly namespaces: readonly string[];
  /** Its values, in the same order (a plan files thousands of these; no lookups needed). */
  readonly parts: readonly ScopePart[];
  /** How many units the backup needs exclusively. */
  readonly size: number;
}

const EXCLUDE = (labels: Labels) => labels[KEYS.excludeFromBackup] === "true";

/** The fields of a scope that do not depend on namespace contents. */
export interface ScopeHead {
  /** Non-empty when Velero would refuse the backup (FailedValidation): it then touches nothing. */
  readonly errors: readonly SpecError[];
  /** The namespace set Velero's own queue compares; the claim at namespace level. */
  readonly queueNamespaces: readonly string[];
  /** The namespaces the backup controller backs up. */
  readonly namespaces: readonly string[];
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
  /** Present when the backup is valid: what its parts are computed from. */
  readonly context?: PartContext;
}

/** Everything a part depends on besides the namespace's contents. */
export interface PartContext {
  /** Parts with equal keys (and namespaces) are equal. */
  readonly key: string;
  readonly spec: BackupSpec;
  readonly policy: Policy;
  readonly filter: ResourceFilter;
  readonly volumes: VolumeRules;
  readonly groupKey: string;
  readonly selected: (labels: Labels) => boolean;
}

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

/** What a backup touches, computed afresh. `ScopeCache` gives the same answer, reusing parts. */
export function scopeOf(backup: BackupInfo, view: ClusterView, policy: Policy, trace?: ActionTrace): BackupScope {
  const head = scopeHead(backup, view, policy, parseSpecInfo(backup.spec));
  const ctx = head.context;
  if (!ctx) return assembleScope(head, [], undefined);
  const listed = head.listsPvs ? listedPvs(ctx, view) : undefined;
  if (!trace) {
    const parts = head.namespaces.map((ns) => scopePart(ctx, view, ns));
    return assembleScope(head, withExtras(head.namespaces, parts, listed, (ns, extras) => scopePart(ctx, view, ns, extras)), listed);
  }
  // Traced: the parts are made without a trace first, then each final part once with it.
  const untraced = head.namespaces.map((ns) => scopePart(ctx, view, ns));
  const extrasOf = new Map<string, readonly PvInfo[]>();
  withExtras(head.namespaces, untraced, listed, (ns, extras) => { extrasOf.set(ns, extras); return scopePart(ctx, view, ns, extras); });
  return assembleScope(head, head.namespaces.map((ns) => scopePart(ctx, view, ns, extrasOf.get(ns), trace)), listed);
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
    this.labelledList ??= this.view.namespaceNames().filter((ns) => EXCLUDE(this.view.namespace(ns)?.labels ?? {}));
    return this.labelledList;
  }
  queueNamespaces(includes: readonly string[], excludes: readonly string[]): readonly string[] {
    const key = JSON.stringify([includes, excludes]);
    let list = this.queue.get(key);
    if (!list) { list = veleroQueueNamespaces(includes, excludes, this.view.namespaceNames()); this.queue.set(key, list); }
    return list;
  }
  backupNamespaces(includes: readonly string[], excludes: readonly string[]): ReturnType<typeof backupNamespaces> {
    const key = JSON.stringify([includes, excludes]);
    let r = this.resolved.get(key);
    if (!r) { r = backupNamespaces(includes, excludes, this.view.namespaceNames(), this.labelled()); this.resolved.set(key, r); }
    return r;
  }
  strict(namespaces: readonly string[]): string[] {
    this.strictSet ??= new Set(this.view.namespaceNames().filter((ns) => this.view.namespace(ns)?.annotations[KEYS.conflictLevel] === "Namespace"));
    const set = this.strictSet;
    return set.size === 0 ? [] : namespaces.filter((ns) => set.has(ns));
  }
}

export function scopeHead(backup: BackupInfo, view: ClusterView, policy: Policy, info: ParsedSpecInfo, resolver = new NamespaceResolver(view)): ScopeHead {
  const existing = view.namespaceNames();
  const raw = (backup.spec ?? {}) as Record<string, unknown>;
  const queueNamespaces = resolver.queueNamespaces(stringList(raw.includedNamespaces), stringList(raw.excludedNamespaces));
  const { level, levelReason } = judgeLevel(backup, view, policy);
  const serialKey = serialKeyOf(backup, policy);
  const base = { queueNamespaces, level, ...(levelReason !== undefined ? { levelReason } : {}), ...(serialKey !== undefined ? { serialKey } : {}) };
  const empty = { listsPvs: false, namespaces: [], strictNamespaces: [], notes: [] };

  const parsed = info.parsed;
  if (!parsed.ok) return { ...base, ...empty, errors: parsed.errors };
  const spec = parsed.spec;
  const labelled = resolver.labelled();
  const resolved = resolver.backupNamespaces(spec.includedNamespaces, spec.excludedNamespaces);
  if (!resolved.ok) return { ...base, ...empty, errors: resolved.errors };

  const namespaces = resolved.namespaces;
  const includeEverything = spec.excludedNamespaces.length === 0 && labelled.length === 0
    && (spec.includedNamespaces.length === 0 || (spec.includedNamespaces.length === 1 && spec.includedNamespaces[0] === "*")
      || sameList([...spec.includedNamespaces].sort(), existing));
  const filter = resourceFilter(spec, includeEverything);
  const volumes = volumeRules(backup, spec, view, policy, filter.shouldInclude("persistentvolumeclaims"));
  if (volumes.errors.length > 0) return { ...base, ...empty, errors: volumes.errors, notes: volumes.notes };

  const strictNamespaces = resolver.strict(namespaces);
  const selectors = spec.orLabelSelectors ?? (spec.labelSelector ? [spec.labelSelector] : undefined);
  const policyRef = spec.resourcePolicy ? `${backup.namespace}/${spec.resourcePolicy.kind}/${spec.resourcePolicy.name}@${view.configMap(backup.namespace, spec.resourcePolicy.name)?.version ?? -1}` : "";
  const key = [info.partSpecKey, usesOldResourceFilters(spec) ? String(includeEverything) : "", policyRef].join("\u0000");
  return {
    ...base,
    errors: [],
    listsPvs: filter.shouldInclude("persistentvolumes"),
    namespaces,
    strictNamespaces,
    notes: volumes.notes,
    context: {
      key, spec, policy, filter, volumes,
      groupKey: spec.volumeGroupSnapshotLabelKey ?? policy.volumeGroupSnapshotLabelKey,
      selected: selectors ? (labels) => selectors.some((s) => selectorMatches(s, labels)) : () => true,
    },
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

export function isPodRunning(pod: PodInfo): boolean {
  return pod.phase === "Running" && !!pod.nodeName && !pod.deleting;
}

const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

// The item collector lists what the filters and selectors admit; ItemBlock actions then pull
// in related items regardless of selectors (pod -> PVCs; bound PVC -> PV, running pods that
// mount it, volume-group siblings). An item joins a block, listed or related, only if it passes
// Velero's inclusion checks (resource filter, the exclude-from-backup label), so nothing is
// pulled in through an excluded item (pkg/backup/itemblock.go). Every pod in a block gets its
// hooks; an item being deleted joins its block but is not backed up (no data, not listed).
// Every relation but PVC -> PV stays inside a namespace, so a namespace's part is computed alone.
//
// `extraPvs`: PVs processed through another namespace, or listed directly, that are bound to
// a claim in this namespace (they can claim the claim's unit).
export function scopePart(ctx: PartContext, view: ClusterView, ns: string, extraPvs: readonly PvInfo[] = [], trace?: ActionTrace): ScopePart {
  const { filter, volumes, groupKey, selected } = ctx;
  const contents = view.contents(ns);
  const podsIncluded = filter.shouldInclude("pods");
  const pvcsIncluded = filter.shouldInclude("persistentvolumeclaims");
  const pvsExcluded = filter.shouldExclude("persistentvolumes");
  const joins = {
    pod: (p: PodInfo) => podsIncluded && !EXCLUDE(p.labels),
    pvc: (c: PvcInfo) => pvcsIncluded && !EXCLUDE(c.labels),
    pv: (v: PvInfo) => !pvsExcluded && !EXCLUDE(v.labels),
  };
  const seen = { pods: new Set<PodInfo>(), pvcs: new Set<PvcInfo>(), pvs: new Set<PvInfo>() };

  const visitPod = (pod: PodInfo) => {
    if (seen.pods.has(pod)) return;
    seen.pods.add(pod);
    for (const v of pod.volumes) {
      const pvc = v.claimName ? contents.pvcs.get(v.claimName) : undefined;
      if (pvc && joins.pvc(pvc)) visitPvc(pvc);
    }
  };
  const visitPvc = (pvc: PvcInfo) => {
    if (seen.pvcs.has(pvc)) return;
    seen.pvcs.add(pvc);
    if (pvc.phase !== "Bound" || !pvc.volumeName) return;
    const pv = view.pv(pvc.volumeName);
    if (pv) seen.pvs.add(pv);
    for (const pod of contents.podsMounting(pvc.name)) {
      if (isPodRunning(pod) && joins.pod(pod)) visitPod(pod);
    }
    const group = pvc.labels[groupKey];
    if (!group) return;
    for (const sibling of contents.pvcs.values()) {
      if (sibling !== pvc && sibling.labels[groupKey] === group && joins.pvc(sibling)) visitPvc(sibling);
    }
  };

  if (podsIncluded) for (const pod of contents.pods.values()) if (selected(pod.labels) && joins.pod(pod)) visitPod(pod);
  if (pvcsIncluded) for (const pvc of contents.pvcs.values()) if (selected(pvc.labels) && joins.pvc(pvc)) visitPvc(pvc);

  // Sorted once by precomputed keys (namespace/name, as the scope lists them).
  const byKey = <T>(items: Iterable<T>, keyOf: (x: T) => string) => [...items].map((x) => ({ key: keyOf(x), x })).sort((a, b) => byString(a.key, b.key));
  const blockPods = byKey(seen.pods, (p) => `${ns}/${p.name}`);
  const pods = blockPods.filter(({ x }) => !x.deleting);
  const pvcs = byKey([...seen.pvcs].filter((c) => !c.deleting), (c) => `${ns}/${c.name}`);
  const reached = [...seen.pvs].filter((v) => joins.pv(v) && !v.deleting).sort((a, b) => byString(a.name, b.name));

  const units = new Set<string>();
  const claims = new Map<string, Claim>();
  const claim = (unit: string, reason: string, rank: number, key: string) => { if (!claims.has(unit)) claims.set(unit, { reason, rank, key }); };
  // Units are the cluster's, cut with the policy's group key: a backup's own key changes what it
  // pulls in, never which unit an item belongs to, so claims of two backups always compare.
  const unitOf = (member: string) => contents.unitOf(member, ctx.policy.volumeGroupSnapshotLabelKey)?.id;

  for (const { key, x: pod } of blockPods) {
    const unit = unitOf(`pod:${pod.name}`);
    if (!unit) continue;
    units.add(unit);
    for (const hook of hooksOnPod(pod, ctx.spec)) {
      claim(unit, `run ${hook.phase} hooks on pod ${key} (${hook.source})`, 0, key);
      trace?.({ kind: "pod", item: key, work: `${hook.phase} hooks`, unit });
    }
    if (pod.deleting) continue;
    for (const volume of volumes.fsBackupVolumes(pod)) {
      claim(unit, `file-system back up volume ${volume} of pod ${key}`, 0, key);
      trace?.({ kind: "pod", item: key, work: "file-system backup", volume, unit });
    }
  }
  for (const { key, x: pvc } of pvcs) {
    const unit = unitOf(`pvc:${pvc.name}`);
    if (!unit) continue;
    units.add(unit);
    if (!volumes.snapshotsPvc(pvc)) continue;
    claim(unit, `snapshot PVC ${key}`, 1, key);
    trace?.({ kind: "pvc", item: key, work: "snapshot", unit });
  }
  // A PV is cluster-scoped: it counts toward a unit (and can make it exclusive) only through a
  // claim in one of the backup's namespaces, so that cluster-scoped items never conflict.
  const foreignPvs: PvInfo[] = [];
  const local: PvInfo[] = [];
  for (const pv of reached) {
    if (pv.claimRef && pv.claimRef.namespace !== ns) foreignPvs.push(pv);
    else local.push(pv);
  }
  const bound = extraPvs.length === 0 ? local : [...local, ...extraPvs].sort((a, b) => byString(a.name, b.name));
  for (const pv of bound) {
    const ref = pv.claimRef;
    const pvc = ref && ref.namespace === ns ? contents.pvcs.get(ref.name) : undefined;
    const unit = pvc?.volumeName === pv.name ? unitOf(`pvc:${pvc.name}`) : undefined;
    if (!unit) continue;
    units.add(unit);
    if (!volumes.snapshotsPv(pv)) continue;
    claim(unit, `snapshot PV ${pv.name}`, 2, pv.name);
    trace?.({ kind: "pv", item: pv.name, work: "snapshot", unit });
  }
  ctx.policy.exclusiveResources.forEach((kind, i) => {
    if (!filter.shouldInclude(kind)) return;
    const unit = `${ns}/${kind}`;
    units.add(unit);
    claim(unit, `back up ${kind} in namespace ${ns} (an exclusive resource)`, 3 + i, ns);
  });

  // Changes to a PV move the version of the namespace of its claim; a PV read here whose claim
  // is elsewhere (or a PV that is missing) can change without this namespace hearing of it.
  let readsForeignPvs = false;
  for (const pvc of contents.pvcs.values()) {
    if (!pvc.volumeName) continue;
    const pv = view.pv(pvc.volumeName);
    if (!pv || pv.claimRef?.namespace !== ns) { readsForeignPvs = true; break; }
  }

  return {
    namespace: ns,
    pods: pods.map((x) => x.key),
    pvcs: pvcs.map((x) => x.key),
    pvs: reached.map((v) => v.name),
    units: [...units].sort(byString),
    claims,
    claimed: [...claims.keys()],
    foreignPvs,
    readsForeignPvs,
  };
}

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
    if (!ctx.selected(pv.labels) || EXCLUDE(pv.labels) || pv.deleting) continue;
    names.push(pv.name);
    const ns = pv.claimRef?.namespace;
    if (ns === undefined) continue;
    const list = byClaimNamespace.get(ns);
    if (list) list.push(pv); else byClaimNamespace.set(ns, [pv]);
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
export function withExtras(namespaces: readonly string[], parts: readonly ScopePart[], listed: ListedPvs | undefined,
  make: (ns: string, extras: readonly PvInfo[]) => ScopePart): ScopePart[] {
  let extras: Map<string, PvInfo[]> | undefined;
  const add = (pv: PvInfo) => {
    const ns = pv.claimRef?.namespace as string;
    extras ??= new Map();
    const list = extras.get(ns);
    if (list) { if (!list.includes(pv)) list.push(pv); } else extras.set(ns, [pv]);
  };
  const index = listed || parts.some((p) => p.foreignPvs.length > 0) ? positions(namespaces) : NO_POSITIONS;
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
    out[i] = make(ns, pvs.sort((a, b) => byString(a.name, b.name)));
  }
  return out;
}

function binaryHas(sorted: readonly string[], value: string): boolean {
  let lo = 0, hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = sorted[mid] as string;
    if (v === value) return true;
    if (v < value) lo = mid + 1; else hi = mid - 1;
  }
  return false;
}

export function compareClaims(a: Claim, b: Claim): number {
  return a.rank - b.rank || byString(a.key, b.key);
}

/**
 * A scope from its head and its parts (`parts[i]` belongs to `head.namespaces[i]`). The
 * public lists are assembled when first read; conflicts use `claims`.
 */
export function assembleScope(head: ScopeHead, parts: readonly ScopePart[], listed: ListedPvs | undefined): BackupScope {
  const byNamespace = new Map<string, ScopePart>();
  const claimNamespaces: string[] = [];
  const claimParts: ScopePart[] = [];
  let size = 0;
  for (const part of parts) {
    if (part.claims.size === 0) continue;
    byNamespace.set(part.namespace, part);
    claimNamespaces.push(part.namespace);
    claimParts.push(part);
    size += part.claims.size;
  }
  return new Scope(head, parts, listed, { byNamespace, namespaces: claimNamespaces, parts: claimParts, size });
}

// Scopes are instances of one class, their on-demand fields getters on its prototype. Accessors
// defined on each object, each a closure of its own, gave every scope a hidden class of its own,
// so the plan's hot loops read scope fields through polymorphic lookups (warm full plan 33 ->
// 23 ms, bench/core.bench.ts), and each scope's hidden class was one more old-generation object
// for the mark-compact collector. `claims` is a getter too, so that it stays out of the scope's
// enumerable data.
class Scope implements BackupScope {
  readonly errors: readonly SpecError[];
  readonly queueNamespaces: readonly string[];
  readonly namespaces: readonly string[];
  readonly level: ConflictLevel;
  readonly strictNamespaces: readonly string[];
  readonly listsPvs: boolean;
  readonly notes: readonly string[];
  readonly levelReason?: string;
  readonly serialKey?: string;
  readonly #parts: readonly ScopePart[];
  readonly #listed: ListedPvs | undefined;
  readonly #claims: ScopeClaims;
  #items: BackupScope["items"] | undefined;
  #units: readonly string[] | undefined;
  #exclusive: ReadonlyMap<string, string> | undefined;

  constructor(head: ScopeHead, parts: readonly ScopePart[], listed: ListedPvs | undefined, claims: ScopeClaims) {
    this.errors = head.errors;
    this.queueNamespaces = head.queueNamespaces;
    this.namespaces = head.namespaces;
    this.level = head.level;
    this.strictNamespaces = head.strictNamespaces;
    this.listsPvs = head.listsPvs;
    this.notes = head.notes;
    if (head.levelReason !== undefined) this.levelReason = head.levelReason;
    if (head.serialKey !== undefined) this.serialKey = head.serialKey;
    this.#parts = parts;
    this.#listed = listed;
    this.#claims = claims;
  }

  get claims(): ScopeClaims { return this.#claims; }

  get items(): BackupScope["items"] {
    const parts = this.#parts;
    return (this.#items ??= {
      pods: parts.flatMap((p) => p.pods).sort(byString),
      pvcs: parts.flatMap((p) => p.pvcs).sort(byString),
      pvs: [...new Set([...parts.flatMap((p) => p.pvs), ...(this.#listed?.names ?? [])])].sort(byString),
    });
  }

  get units(): readonly string[] {
    return (this.#units ??= this.#parts.flatMap((p) => p.units).sort(byString));
  }

  get exclusive(): ReadonlyMap<string, string> {
    if (!this.#exclusive) {
      const all = this.#parts.flatMap((p) => [...p.claims]).sort((a, b) => compareClaims(a[1], b[1]));
      this.#exclusive = new Map(all.map(([unit, c]) => [unit, c.reason]));
    }
    return this.#exclusive;
  }
}
