import { positions, setOf } from "./lists.js";
import type { ConflictLevel } from "./model.js";
import { compareClaims, type BackupScope, type Claim, type ScopeClaims, type ScopePart } from "./scope.js";

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
  /** Units both need exclusively (ItemBlock level): the first MAX_SHARED_UNITS in this backup's claim order. */
  readonly units: readonly SharedUnit[];
  /** How many units both need exclusively (`units` lists at most MAX_SHARED_UNITS of them). */
  readonly unitCount: number;
}

/** A conflict names at most this many shared units; `unitCount` has the total. */
export const MAX_SHARED_UNITS = 3;

export function conflictBetween(a: ScopedBackup, b: ScopedBackup): Conflict | undefined {
  const level: ConflictLevel = a.scope.level === "Namespace" || b.scope.level === "Namespace" ? "Namespace" : "ItemBlock";
  const serial = a.scope.serialKey !== undefined && a.scope.serialKey === b.scope.serialKey ? a.scope.serialKey : undefined;
  const namespaces = level === "Namespace"
    ? intersect(a.scope.queueNamespaces, b.scope.queueNamespaces)
    : intersect(a.scope.strictNamespaces, b.scope.strictNamespaces);
  const shared = level === "ItemBlock" ? sharedUnits(a.scope.claims, b.scope.claims) : NONE;
  if (!serial && namespaces.length === 0 && shared.count === 0) return undefined;
  return { with: b.name, withPhase: b.phase, level, ...(serial ? { serial } : {}), namespaces, units: shared.units, unitCount: shared.count };
}

/** True when `a` and `b` may not be in flight together (conflictBetween without the details). */
export function conflictsWith(a: ScopedBackup, b: ScopedBackup): boolean {
  if (a.scope.serialKey !== undefined && a.scope.serialKey === b.scope.serialKey) return true;
  if (a.scope.level === "Namespace" || b.scope.level === "Namespace") return meets(a.scope.queueNamespaces, b.scope.queueNamespaces);
  return meets(a.scope.strictNamespaces, b.scope.strictNamespaces) || sharesUnit(a.scope.claims, b.scope.claims);
}

const NONE = { units: [] as SharedUnit[], count: 0 };

// Claims are compared namespace by namespace, walking the smaller side: two backups share a
// unit only inside a namespace both claim in, and two backups with the same part there (same
// spec and context) share all of its units. `visit` gets a's part and b's; true stops the walk.
function eachSharedNamespace(a: ScopeClaims, b: ScopeClaims, visit: (mine: ScopePart, theirs: ScopePart) => boolean | void): void {
  if (a.size === 0 || b.size === 0) return;
  const small = a.namespaces.length <= b.namespaces.length ? a : b;
  const other = small === a ? b : a;
  for (const ns of small.namespaces) {
    const pOther = other.byNamespace.get(ns);
    if (!pOther) continue;
    const pSmall = small.byNamespace.get(ns) as ScopePart;
    if (small === a ? visit(pSmall, pOther) : visit(pOther, pSmall)) return;
  }
}

/** Walks the smaller claim map of two parts, calling `found` for each unit both claim. */
function eachSharedUnit(mine: ScopePart, theirs: ScopePart, found: (unit: string, mine: Claim, theirs: Claim) => boolean | void): void {
  if (mine.claims.size <= theirs.claims.size) {
    for (const [unit, m] of mine.claims) { const t = theirs.claims.get(unit); if (t !== undefined && found(unit, m, t)) return; }
  } else {
    for (const [unit, t] of theirs.claims) { const m = mine.claims.get(unit); if (m !== undefined && found(unit, m, t)) return; }
  }
}

function sharedUnits(a: ScopeClaims, b: ScopeClaims): { units: SharedUnit[]; count: number } {
  let count = 0;
  const top: [string, Claim, Claim][] = [];
  const consider = (unit: string, mine: Claim, theirs: Claim) => {
    if (top.length === MAX_SHARED_UNITS && compareClaims(mine, (top[MAX_SHARED_UNITS - 1] as [string, Claim, Claim])[1]) >= 0) return;
    let i = top.length;
    while (i > 0 && compareClaims(mine, (top[i - 1] as [string, Claim, Claim])[1]) < 0) i--;
    top.splice(i, 0, [unit, mine, theirs]);
    if (top.length > MAX_SHARED_UNITS) top.pop();
  };
  eachSharedNamespace(a, b, (mineP, theirsP) => {
    if (mineP === theirsP) {
      count += mineP.claims.size;
      let n = 0;
      for (const [unit, c] of mineP.claims) { if (n++ === MAX_SHARED_UNITS) break; consider(unit, c, c); }
      return;
    }
    eachSharedUnit(mineP, theirsP, (unit, mine, theirs) => { count++; consider(unit, mine, theirs); });
  });
  return count === 0 ? NONE : { units: top.map(([unit, mine, theirs]) => ({ unit, reasons: [mine.reason, theirs.reason] as const })), count };
}

function sharesUnit(a: ScopeClaims, b: ScopeClaims): boolean {
  let shared = false;
  eachSharedNamespace(a, b, (mineP, theirsP) => {
    if (mineP === theirsP) shared = mineP.claims.size > 0;
    else eachSharedUnit(mineP, theirsP, () => (shared = true));
    return shared;
  });
  return shared;
}

function meets(a: readonly string[], b: readonly string[]): boolean {
  if (a.length === 0 || b.length === 0) return false;
  return a.length <= b.length ? a.some((x) => setOf(b).has(x)) : b.some((x) => setOf(a).has(x));
}

function intersect(a: readonly string[], b: readonly string[]): string[] {
  if (a.length === 0 || b.length === 0) return [];
  if (a.length <= b.length) return a.filter((x) => setOf(b).has(x));
  // Walk the shorter list (a backup of every namespace lists them all), keep `a`'s order.
  const shared = b.filter((x) => setOf(a).has(x));
  if (shared.length > 1) { const at = positions(a); shared.sort((x, y) => (at.get(x) as number) - (at.get(y) as number)); }
  return shared;
}

/** A conflict in one line, as people read it: "both snapshot PVC shop/data-0". */
export function describeConflict(c: Conflict): string {
  const parts: string[] = [];
  if (c.serial) parts.push(`both are runs of ${c.serial}, which never run together`);
  for (const { reasons: [mine, theirs] } of c.units.slice(0, 3)) {
    parts.push(mine === theirs ? `both ${mine}` : `${c.with} will ${theirs} and this backup will ${mine}`);
  }
  const total = c.unitCount ?? c.units.length;
  if (total > 3) parts.push(`and ${total - 3} more shared units`);
  if (c.namespaces.length > 0) {
    const shown = c.namespaces.slice(0, 3).join(", ") + (c.namespaces.length > 3 ? ` and ${c.namespaces.length - 3} more` : "");
    parts.push(`both include namespace${c.namespaces.length > 1 ? "s" : ""} ${shown} (judged at Namespace level)`);
  }
  return parts.join("; ");
}

/**
 * The claims of a set of backups, indexed by what can be shared (namespaces, serial keys, and
 * the namespaces where a backup needs units exclusively) so that finding whom a backup
 * conflicts with costs the namespaces of its own claim, not the size of the queue or the
 * number of units. Members are numbered in the order they were added, which is the order
 * conflicts are reported in ("ahead of" means a smaller number).
 */
export class ClaimIndex {
  private readonly members: ScopedBackup[] = [];
  private readonly byNamespace = new Map<string, number[]>();
  private readonly byStrictNamespace = new Map<string, number[]>();
  private readonly byClaimNamespace = new Map<string, number[]>();
  /** Built on first use: only a plan built on an earlier one asks (see `inScope`). */
  private byScopeNamespace?: Map<string, number[]>;
  private readonly bySerial = new Map<string, number[]>();
  private readonly namespaceLevel = new Map<string, number[]>();

  get size(): number { return this.members.length; }
  member(i: number): ScopedBackup { return this.members[i] as ScopedBackup; }
  /** The members as they are now (later `replace` calls do not show in it). */
  snapshot(): readonly ScopedBackup[] { return this.members.slice(); }

  add(b: ScopedBackup): number {
    const i = this.members.length;
    this.members.push(b);
    const s = b.scope;
    for (const ns of s.queueNamespaces) push(this.byNamespace, ns, i);
    if (s.level === "Namespace") for (const ns of s.queueNamespaces) push(this.namespaceLevel, ns, i);
    for (const ns of s.strictNamespaces) push(this.byStrictNamespace, ns, i);
    for (const ns of s.claims.namespaces) push(this.byClaimNamespace, ns, i);
    if (this.byScopeNamespace) for (const ns of s.namespaces) push(this.byScopeNamespace, ns, i);
    if (s.serialKey) push(this.bySerial, s.serialKey, i);
    return i;
  }

  /** Members that back up namespace `ns`: the only ones whose claims a change there can move. */
  inScope(ns: string): readonly number[] {
    if (!this.byScopeNamespace) {
      this.byScopeNamespace = new Map();
      this.members.forEach((b, i) => { for (const n of b.scope.namespaces) push(this.byScopeNamespace as Map<string, number[]>, n, i); });
    }
    return this.byScopeNamespace.get(ns) ?? NO_MEMBERS;
  }
  /** Members that need some unit in namespace `ns` exclusively. */
  claimingIn(ns: string): readonly number[] { return this.byClaimNamespace.get(ns) ?? NO_MEMBERS; }

  /**
   * Puts `b` in member `i`'s place: the same backup with a new scope whose claims differ from
   * the old one's only in `namespaces` (everything else a scope's head decides is unchanged).
   */
  replace(i: number, b: ScopedBackup, namespaces: Iterable<string>): void {
    this.members[i] = b;
    for (const ns of namespaces) {
      const list = this.byClaimNamespace.get(ns) ?? [];
      const at = lowerBound(list, i);
      const listed = list[at] === i;
      const claims = b.scope.claims.byNamespace.has(ns);
      if (claims && !listed) list.splice(at, 0, i);
      else if (!claims && listed) list.splice(at, 1);
      if (list.length > 0) this.byClaimNamespace.set(ns, list); else this.byClaimNamespace.delete(ns);
    }
  }

  /** Every member `b` conflicts with, in member order, with details. */
  conflictsOf(b: ScopedBackup): Conflict[] {
    return this.blockersOf(b, Infinity).blockers.map((other) => conflictBetween(b, other) as Conflict);
  }

  /**
   * The first `limit` members numbered below `before` that `b` conflicts with, and whether there
   * are more: a backup of every namespace may conflict with thousands, and counting them all
   * would make a plan quadratic in the queue. Details (`conflictBetween`) are left to whoever
   * reads them.
   */
  blockersOf(b: ScopedBackup, limit: number, before = this.members.length): { blockers: ScopedBackup[]; more: boolean } {
    const s = b.scope;
    const lists: number[][] = [];
    const from = (map: Map<string, number[]>, keys: readonly string[]) => {
      for (const k of keys) { const list = map.get(k); if (list) lists.push(list); }
    };
    if (s.level === "Namespace") from(this.byNamespace, s.queueNamespaces);
    else {
      from(this.namespaceLevel, s.queueNamespaces);
      from(this.byStrictNamespace, s.strictNamespaces);
      from(this.byClaimNamespace, s.claims.namespaces);
    }
    if (s.serialKey) from(this.bySerial, [s.serialKey]);
    const blockers: ScopedBackup[] = [];
    // Each list is in member order; one list needs no merge, and when the lists hold more than
    // there are members ahead (a backup of every namespace), walking those members is cheaper.
    let listed = 0;
    for (const list of lists) listed += list.length;
    const candidates = lists.length === 1 ? lists[0] as number[] : listed >= before ? firstMembers(before) : mergeBelow(lists, listed, before);
    let last = -1;
    for (const i of candidates) {
      if (i >= before) break;
      if (i === last) continue;
      last = i;
      const other = this.members[i] as ScopedBackup;
      if (other === b || !conflictsWith(b, other)) continue;
      if (blockers.length === limit) return { blockers, more: true };
      blockers.push(other);
    }
    return { blockers, more: false };
  }
}

const NO_MEMBERS: readonly number[] = [];

function* firstMembers(n: number): Generator<number> {
  for (let i = 0; i < n; i++) yield i;
}

/** The members below `before` in any of the lists (`listed` entries in all), in order (repeats adjacent). */
function mergeBelow(lists: readonly number[][], listed: number, before: number): Int32Array {
  const all = new Int32Array(listed);
  let n = 0;
  for (const list of lists) for (const i of list) { if (i >= before) break; all[n++] = i; }
  return all.subarray(0, n).sort();
}

function lowerBound(list: readonly number[], x: number): number {
  let lo = 0, hi = list.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if ((list[mid] as number) < x) lo = mid + 1; else hi = mid; }
  return lo;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value); else map.set(key, [value]);
}
