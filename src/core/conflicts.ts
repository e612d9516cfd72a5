import type { ConflictLevel } from "./model.js";
import type { BackupScope } from "./scope.js";

// When two backups may not be in flight together. One rule, used by the plan (through the
// index below, which only narrows the pairs to check), the admission verdicts and the tests.

export interface ScopedBackup {
  readonly name: string;
  readonly phase: string;
  readonly scope: BackupScope;
}

export interface SharedUnit {
  readonly unit: string;
  /** Why each backup needs the unit: [this backup's reason, the other's]. */
  readonly reasons: readonly [string, string];
}

export interface Conflict {
  readonly with: string;
  readonly withPhase: string;
  readonly level: ConflictLevel;
  /** Runs of one serial workload (a Schedule) never run together. */
  readonly serial?: string;
  /** Shared namespaces (namespace level, or namespaces annotated to be judged at namespace level). */
  readonly namespaces: readonly string[];
  /** Units both need exclusively (ItemBlock level). */
  readonly units: readonly SharedUnit[];
}

export function conflictBetween(a: ScopedBackup, b: ScopedBackup): Conflict | undefined {
  const level: ConflictLevel = a.scope.level === "Namespace" || b.scope.level === "Namespace" ? "Namespace" : "ItemBlock";
  const serial = a.scope.serialKey !== undefined && a.scope.serialKey === b.scope.serialKey ? a.scope.serialKey : undefined;
  const namespaces = level === "Namespace"
    ? intersect(a.scope.queueNamespaces, b.scope.queueNamespaces)
    : intersect(a.scope.strictNamespaces, b.scope.strictNamespaces);
  const units: SharedUnit[] = [];
  if (level === "ItemBlock") {
    const mine = a.scope.exclusive, others = b.scope.exclusive;
    if (mine.size <= others.size) {
      for (const [unit, reason] of mine) {
        const theirs = others.get(unit);
        if (theirs !== undefined) units.push({ unit, reasons: [reason, theirs] });
      }
    } else {
      // Walk the smaller claim (a backup of every namespace claims every unit); list the
      // shared units in `a`'s order all the same.
      for (const [unit, theirs] of others) {
        const reason = mine.get(unit);
        if (reason !== undefined) units.push({ unit, reasons: [reason, theirs] });
      }
      if (units.length > 1) {
        const at = positions(mine);
        units.sort((x, y) => (at.get(x.unit) as number) - (at.get(y.unit) as number));
      }
    }
  }
  if (!serial && namespaces.length === 0 && units.length === 0) return undefined;
  return { with: b.name, withPhase: b.phase, level, ...(serial ? { serial } : {}), namespaces, units };
}

function intersect(a: readonly string[], b: readonly string[]): string[] {
  if (a.length === 0 || b.length === 0) return [];
  if (a.length <= b.length) return a.filter((x) => setOf(b).has(x));
  // Walk the shorter list (a backup of every namespace lists them all), keep `a`'s order.
  const shared = b.filter((x) => setOf(a).has(x));
  if (shared.length > 1) { const at = positions(a); shared.sort((x, y) => (at.get(x) as number) - (at.get(y) as number)); }
  return shared;
}

// Lookups over a scope's claims, built once per scope: scopes never change once computed and
// are reused across plans, so comparing a small claim with a huge one costs the small one.
const sets = new WeakMap<readonly string[], ReadonlySet<string>>();
function setOf(list: readonly string[]): ReadonlySet<string> {
  let set = sets.get(list);
  if (!set) { set = new Set(list); sets.set(list, set); }
  return set;
}
const orders = new WeakMap<object, ReadonlyMap<string, number>>();
function positions(owner: readonly string[] | ReadonlyMap<string, string>): ReadonlyMap<string, number> {
  let at = orders.get(owner);
  if (!at) {
    const keys: readonly string[] = Array.isArray(owner) ? owner : [...owner.keys()];
    at = new Map(keys.map((k, i) => [k, i]));
    orders.set(owner, at);
  }
  return at;
}

/** A conflict in one line, as people read it: "both snapshot PVC shop/data-0". */
export function describeConflict(c: Conflict): string {
  const parts: string[] = [];
  if (c.serial) parts.push(`both are runs of ${c.serial}, which never run together`);
  for (const { reasons: [mine, theirs] } of c.units.slice(0, 3)) {
    parts.push(mine === theirs ? `both ${mine}` : `${c.with} will ${theirs} and this backup will ${mine}`);
  }
  if (c.units.length > 3) parts.push(`and ${c.units.length - 3} more shared units`);
  if (c.namespaces.length > 0) {
    const shown = c.namespaces.slice(0, 3).join(", ") + (c.namespaces.length > 3 ? ` and ${c.namespaces.length - 3} more` : "");
    parts.push(`both include namespace${c.namespaces.length > 1 ? "s" : ""} ${shown} (judged at Namespace level)`);
  }
  return parts.join("; ");
}

/**
 * The claims of a set of backups, indexed by what can be shared (namespaces, units, serial
 * keys) so that finding whom a backup conflicts with costs the size of its own claim, not the
 * size of the queue.
 */
export class ClaimIndex {
  private readonly byNamespace = new Map<string, ScopedBackup[]>();
  private readonly byStrictNamespace = new Map<string, ScopedBackup[]>();
  private readonly byUnit = new Map<string, ScopedBackup[]>();
  private readonly bySerial = new Map<string, ScopedBackup[]>();
  private readonly namespaceLevel = new Map<string, ScopedBackup[]>();

  add(b: ScopedBackup): void {
    const s = b.scope;
    for (const ns of s.queueNamespaces) push(this.byNamespace, ns, b);
    if (s.level === "Namespace") for (const ns of s.queueNamespaces) push(this.namespaceLevel, ns, b);
    for (const ns of s.strictNamespaces) push(this.byStrictNamespace, ns, b);
    for (const unit of s.exclusive.keys()) push(this.byUnit, unit, b);
    if (s.serialKey) push(this.bySerial, s.serialKey, b);
  }

  /** Everyone in the index `b` conflicts with, in the order they were added. */
  conflictsOf(b: ScopedBackup, order: ReadonlyMap<string, number>): Conflict[] {
    const s = b.scope;
    const candidates = new Set<ScopedBackup>();
    const from = (map: Map<string, ScopedBackup[]>, keys: Iterable<string>) => {
      for (const k of keys) for (const other of map.get(k) ?? []) if (other !== b) candidates.add(other);
    };
    if (s.level === "Namespace") from(this.byNamespace, s.queueNamespaces);
    else {
      from(this.namespaceLevel, s.queueNamespaces);
      from(this.byStrictNamespace, s.strictNamespaces);
      from(this.byUnit, s.exclusive.keys());
    }
    if (s.serialKey) from(this.bySerial, [s.serialKey]);
    const sorted = [...candidates].sort((x, y) => (order.get(x.name) ?? 0) - (order.get(y.name) ?? 0));
    const conflicts: Conflict[] = [];
    for (const other of sorted) {
      const c = conflictBetween(b, other);
      if (c) conflicts.push(c);
    }
    return conflicts;
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value); else map.set(key, [value]);
}
