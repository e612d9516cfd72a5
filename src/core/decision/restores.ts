import type { ScopedBackup } from "../conflict/conflicts.js";
import { RESTORE_WRITING_PHASES, type BackupInfo, type RestoreInfo } from "../model.js";
import type { Policy } from "../policy.js";
import type { BackupScope } from "../scope/scope.js";
import { listMatcher } from "../velero/glob.js";
import type { ClusterView } from "../view.js";
import { restoreAdmissionWarning } from "./reasons.js";

// Restores (docs/rules.md, "Restores"): where a Velero Restore writes, and the one rule both
// ways round. A backup does not start while a restore that is writing writes into a namespace
// where the backup would hold a unit exclusively (at Namespace level: into one of its
// namespaces); a Restore created into what a backup in flight holds is warned about (or
// refused, `restores.onConflict: Deny`). Both read `namespaceMet`.

/** Where one restore writes. */
export interface RestoreTarget {
  /** namespace/name of the Restore. */
  readonly restore: string;
  readonly phase: string;
  /** True when the restore's namespace `ns` receives items. */
  readonly writesInto: (ns: string) => boolean;
  /** Set when its spec could not be read: it is then taken to write into every namespace. */
  readonly unreadable?: string;
  /**
   * The namespaces it names (mapping targets, listed namespaces) that it writes into and that
   * are absent or hold no pod or PVC yet: the restore is filling them, so a backup that lists
   * them would hold what the restore creates.
   */
  readonly filling: readonly string[];
}

/**
 * The namespaces a restore writes into, as Velero 1.18 resolves them (pkg/restore/restore.go):
 * an item of source namespace s is restored when s passes the restore's includedNamespaces
 * (empty: all) and excludedNamespaces, and it lands in namespaceMapping[s], else in s. The
 * sources are the namespaces the backup holds; when the Backup is in the view, its own
 * namespace lists narrow them (a namespace it did not back up holds nothing to restore), and
 * when it is not, every source the restore's lists allow is taken to be there.
 */
export function restoreTarget(r: RestoreInfo, restored: BackupInfo | undefined, view?: ClusterView): RestoreTarget {
  const restore = `${r.namespace}/${r.name}`;
  if (r.specError !== undefined) return { restore, phase: r.phase, writesInto: () => true, unreadable: r.specError, filling: [] };
  const restoring = allowedBy(r.includedNamespaces, r.excludedNamespaces);
  const backedUp = restored ? backupNamespacesOf(restored.spec) : () => true;
  const source = (s: string) => restoring(s) && backedUp(s);
  const mappedInto = new Map<string, string[]>();
  for (const [from, to] of Object.entries(r.namespaceMapping)) mappedInto.set(to, [...(mappedInto.get(to) ?? []), from]);
  const mappedAway = (ns: string) => Object.hasOwn(r.namespaceMapping, ns);
  const writesInto = (ns: string) => (!mappedAway(ns) && source(ns)) || (mappedInto.get(ns) ?? []).some(source);
  const named = [...Object.values(r.namespaceMapping), ...literal(r.includedNamespaces), ...literal(includesOf(restored?.spec))];
  const filling = view ? [...new Set(named)].filter((ns) => writesInto(ns) && unfilled(view, ns)).sort() : [];
  return { restore, phase: r.phase, writesInto, filling };
}

const literal = (names: readonly string[]) => names.filter((n) => !/[*?[{]/.test(n));

function includesOf(spec: unknown): readonly string[] {
  const inc = (spec as { includedNamespaces?: unknown } | null | undefined)?.includedNamespaces;
  return Array.isArray(inc) ? inc.filter((x): x is string => typeof x === "string") : [];
}

/** A namespace the view does not have, or that holds no pod and no PVC. */
function unfilled(view: ClusterView, ns: string): boolean {
  if (!view.namespace(ns)) return true;
  const c = view.contents(ns);
  return c.pods.size === 0 && c.pvcs.size === 0;
}

/** A namespace filter from include/exclude lists, Velero's way: empty includes or `*` include all. */
function allowedBy(includes: readonly string[], excludes: readonly string[]): (ns: string) => boolean {
  const all = includes.length === 0 || includes.includes("*");
  const included = listMatcher(includes);
  const excluded = listMatcher(excludes);
  return (ns) => !excluded(ns) && (all || included(ns));
}

/** The namespaces a Backup's spec lists (any namespace when the lists cannot be read). */
function backupNamespacesOf(spec: unknown): (ns: string) => boolean {
  const s = (spec ?? {}) as { includedNamespaces?: unknown; excludedNamespaces?: unknown };
  const list = (v: unknown): string[] | undefined =>
    v === undefined || v === null ? [] : Array.isArray(v) && v.every((x) => typeof x === "string") ? v : undefined;
  const inc = list(s.includedNamespaces);
  const exc = list(s.excludedNamespaces);
  return inc && exc ? allowedBy(inc, exc) : () => true;
}

/**
 * The restores in Velero's namespace that hold backups, by name: those writing now, and, while
 * one is InProgress, those still New. Velero 1.18 runs one restore at a time (its restore
 * controller has one worker and runs the InProgress phase in one reconcile), so a New restore
 * then is queued behind it and writes next, with no instant the gate could see in between.
 * With none InProgress a New restore does not hold: a Velero whose restore controller is off
 * would leave it New for ever and stall the queue.
 */
export function writingRestores(view: ClusterView, backups: readonly BackupInfo[], policy: Policy): RestoreTarget[] {
  if (policy.restores?.holdBackups === false) return [];
  // Asked on every review: one pass over the restores, nothing more when there are none.
  const ours: RestoreInfo[] = [];
  let busy = false;
  for (const r of view.restores()) {
    if (r.namespace !== policy.veleroNamespace) continue;
    ours.push(r);
    busy ||= r.phase === "InProgress";
  }
  const holding = ours.filter((r) => RESTORE_WRITING_PHASES.has(r.phase) || (busy && isNew(r.phase)));
  if (holding.length === 0) return [];
  const byName = new Map(backups.filter((b) => b.namespace === policy.veleroNamespace).map((b) => [b.name, b]));
  holding.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return holding.map((r) => restoreTarget(r, byName.get(r.backupName), view));
}

/** A Restore Velero has not picked up yet (it writes no phase until it does). */
const isNew = (phase: string) => phase === "" || phase === "New";

/** A backup as the restore rule reads it: its scope, and its spec's namespace lists. */
export interface HeldBackup {
  readonly scope: BackupScope;
  readonly spec: unknown;
}

/**
 * The first namespace (in the scope's order) where the restore writes into what the backup
 * would hold exclusively: at Namespace level, its namespaces; at ItemBlock level, the namespaces
 * where it claims a unit, and those annotated to be judged at Namespace level. Restored items
 * do not exist before the restore creates them, so which unit they join cannot be predicted:
 * within a namespace, the restore is taken to write into every unit. And at either level, a
 * namespace the restore is filling (absent or empty now) that the backup's lists cover: the
 * backup would hold what the restore creates there.
 */
export function namespaceMet(target: RestoreTarget, b: HeldBackup): string | undefined {
  const { scope } = b;
  const held =
    scope.level === "Namespace"
      ? scope.queueNamespaces.find(target.writesInto)
      : (scope.claims.namespaces.find(target.writesInto) ?? scope.strictNamespaces.find(target.writesInto));
  return held ?? (target.filling.length > 0 && scope.errors.length === 0 ? target.filling.find(backupNamespacesOf(b.spec)) : undefined);
}

/** Why a backup may not start now: a restore writing into a namespace it would hold. */
export interface RestoreHold {
  readonly restore: string;
  readonly namespace: string;
  /** The restore is New, queued behind one in progress: it writes next. */
  readonly next?: true;
}

/** The first writing restore (by name) that holds this backup, if any. */
export function restoreHoldOf(b: HeldBackup, restores: readonly RestoreTarget[]): RestoreHold | undefined {
  for (const t of restores) {
    const namespace = namespaceMet(t, b);
    if (namespace !== undefined) return { restore: t.restore, namespace, ...(isNew(t.phase) ? { next: true as const } : {}) };
  }
  return undefined;
}

/** A backup in flight that a restore would write into. */
export interface RestoreConflict {
  readonly backup: string;
  readonly namespace: string;
}

/** The verdict on a Restore about to be created. */
export interface RestoreAdmission {
  readonly verdict: "admit" | "admit-with-warning" | "reject";
  /** For a refusal: the message the API server returns. */
  readonly message?: string;
  readonly warnings: readonly string[];
  /** The backups in flight it would write into, each with the first namespace met. */
  readonly conflicts: readonly RestoreConflict[];
  readonly reasons: readonly string[];
}

/**
 * A Restore created into what a backup in flight holds (it freezes, snapshots or copies it):
 * a warning naming each backup, or a refusal under `restores.onConflict: Deny`. Backups in
 * flight are those the plan counts (ReadyToStart, InProgress); `restored` is the Backup the
 * restore names, when it is in the view.
 */
export function decideRestoreAdmission(
  r: RestoreInfo,
  restored: BackupInfo | undefined,
  inFlight: readonly (ScopedBackup & HeldBackup)[],
  policy: Policy,
  view?: ClusterView,
): RestoreAdmission {
  const target = restoreTarget(r, restored, view);
  const conflicts: RestoreConflict[] = [];
  for (const b of [...inFlight].sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0))) {
    const namespace = namespaceMet(target, b);
    if (namespace !== undefined) conflicts.push({ backup: b.name, namespace });
  }
  const notes = target.unreadable
    ? [`backup-gate could not read this Restore's spec (${target.unreadable}); it is taken to write into every namespace`]
    : [];
  const warnings = [...conflicts.map((c) => restoreAdmissionWarning(`${r.namespace}/${r.name}`, c.backup, c.namespace)), ...notes];
  if (conflicts.length > 0 && policy.restores?.onConflict === "Deny") {
    const message = `${warnings[0]}; restores.onConflict is Deny, so restore ${r.name} is refused until the backup is done`;
    return { verdict: "reject", message, warnings: [], conflicts, reasons: [message] };
  }
  return { verdict: warnings.length > 0 ? "admit-with-warning" : "admit", warnings, conflicts, reasons: warnings };
}
