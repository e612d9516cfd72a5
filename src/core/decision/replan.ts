import type { Blockers } from "../conflict/claimIndex.js";
import type { BackupInfo } from "../model.js";
import type { Policy } from "../policy.js";
import type { ScopeCache } from "../scope/cache.js";
import type { BackupScope } from "../scope/scope.js";
import type { ClusterView } from "../view.js";
import { decideAgain } from "./decide.js";
import { MAX_BLOCKERS, type Plan } from "./planModel.js";
import { MadePlan, versionsOf, type Memory } from "./planMemory.js";

// Incremental re-planning, on top of the plan: when only the cluster's contents moved since the
// last plan, redo just the scopes, blockers and decisions those changes touch.

/** The memory of `previous` when the queue is as it left it (only the cluster's contents moved). */
export function reusable(
  previous: Plan,
  view: ClusterView,
  policy: Policy,
  cache: ScopeCache,
  backups: readonly BackupInfo[],
  now: number,
): Memory | undefined {
  const m = MadePlan.memoryOf(previous);
  if (!m || m.used) return undefined;
  m.used = true; // its index is about to change, or be dropped
  if (m.view !== view || m.policy !== policy || m.cache !== cache) return undefined;
  if (now < m.now || now >= m.orderValidUntil) return undefined;
  if (view.namespacesVersion !== m.versions.namespaces || view.synced !== m.versions.synced) return undefined;
  // While a restore writes, its hold reads which namespaces it is still filling: plan afresh.
  if (view.restoresVersion !== m.versions.restores || m.restores) return undefined;
  if (backups.length !== m.backups.length || backups.some((b, i) => b !== m.backups[i])) return undefined;
  return m;
}

/**
 * The plan after the cluster's contents moved: rescope the backups of the namespaces that
 * changed (all of them when the view cannot say which, or a PV moved), and redo the blockers of
 * the backups whose claims changed and of every backup claiming where those claims moved (it is
 * usually rescoped anyway, its own part there being new). Undefined when a scope changed beyond
 * its claims (then the whole plan is redone).
 */
export function replan(m: Memory, now: number): Plan | undefined {
  const redo = rescope(m);
  if (!redo) return undefined;
  const blocked = redo.size === 0 ? m.blocked : [...m.blocked];
  for (const i of redo) {
    if (i >= m.inFlight) (blocked as Blockers[])[i] = m.index.blockersOf(m.index.member(i), MAX_BLOCKERS, i);
  }
  return decideAgain({ ...m, used: false, now, versions: versionsOf(m.view), blocked }, m.decided, redo);
}

/** Rescopes the members the change may touch; returns those whose blockers must be redone. */
function rescope(m: Memory): Set<number> | undefined {
  const { view, policy, cache, index } = m;
  const changed = view.pvVersion === m.versions.pv ? view.changedSince(m.versions.contents) : undefined;
  const redo = new Set<number>();
  for (const i of touched(m, changed)) {
    const old = index.member(i);
    const scope = cache.scopeOf(m.infos[i] as BackupInfo, view, policy);
    if (scope === old.scope) continue;
    if (!sameHead(scope, old.scope)) return undefined;
    const moved = claimsMoved(old.scope, scope, changed);
    index.replace(i, { ...old, scope }, moved);
    redo.add(i);
    for (const ns of moved) for (const j of index.claimingIn(ns)) redo.add(j);
  }
  return redo;
}

/** The members that back up a namespace in `changed` (every member when undefined). */
function touched(m: Memory, changed: ReadonlySet<string> | undefined): Set<number> {
  const touched = new Set<number>();
  if (changed) {
    for (const ns of changed) for (const i of m.index.inScope(ns)) touched.add(i);
  } else for (let i = 0; i < m.index.size; i++) touched.add(i);
  return touched;
}

// The parts a scope's head decides (level, namespace lists, serial key) never move with the
// cluster's contents; checked anyway, since the shortcut above relies on it.
function sameHead(a: BackupScope, b: BackupScope): boolean {
  return (
    a.level === b.level &&
    a.queueNamespaces === b.queueNamespaces &&
    a.strictNamespaces === b.strictNamespaces &&
    a.serialKey === b.serialKey &&
    a.errors === b.errors
  );
}

/** The namespaces where two scopes of one backup claim differently (among `within` when given). */
function claimsMoved(a: BackupScope, b: BackupScope, within: ReadonlySet<string> | undefined): string[] {
  const [was, now] = [a.claims, b.claims];
  if (within) return [...within].filter((ns) => was.partIn(ns) !== now.partIn(ns));
  const moved: string[] = [];
  for (const ns of was.namespaces) if (now.partIn(ns) !== was.partIn(ns)) moved.push(ns);
  for (const ns of now.namespaces) if (!was.partIn(ns)) moved.push(ns);
  return moved;
}
