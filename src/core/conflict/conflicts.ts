import { positions, setOf } from "../lists.js";
import type { ConflictLevel } from "../model.js";
import { compareClaims, type BackupScope, type Claim, type ScopeClaims, type ScopePart } from "../scope/scope.js";

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
// spec and context) share all of its units. `visit` gets a's part and b's; true stops the walk,
// and the walk returns whether it was stopped.
function eachSharedNamespace(a: ScopeClaims, b: ScopeClaims, visit: (mine: ScopePart, theirs: ScopePart) => boolean | void): boolean {
  if (a.size === 0 || b.size === 0) return false;
  const small = a.namespaces.length <= b.namespaces.length ? a : b;
  const other = small === a ? b : a;
  for (const ns of small.namespaces) {
    const pOther = other.byNamespace.get(ns);
    if (!pOther) continue;
    const pSmall = small.byNamespace.get(ns) as ScopePart;
    if (small === a ? visit(pSmall, pOther) : visit(pOther, pSmall)) return true;
  }
  return false;
}

/** Walks the smaller claim map of two parts, calling `found` for each unit both claim; true stops the walk (and is returned). */
function eachSharedUnit(mine: ScopePart, theirs: ScopePart, found: (unit: string, mine: Claim, theirs: Claim) => boolean | void): boolean {
  const walkMine = mine.claims.size <= theirs.claims.size;
  const walked = walkMine ? mine : theirs;
  const other = walkMine ? theirs : mine;
  for (const unit of walked.claimed) {
    const c = other.claims.get(unit);
    if (c === undefined) continue;
    const w = walked.claims.get(unit) as Claim;
    if (walkMine ? found(unit, w, c) : found(unit, c, w)) return true;
  }
  return false;
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

// The yes/no question is asked for every candidate pair of every plan: its visitors capture
// nothing, so asking allocates nothing.
const sharesUnit = (a: ScopeClaims, b: ScopeClaims): boolean => eachSharedNamespace(a, b, partsShareUnit);
const partsShareUnit = (mine: ScopePart, theirs: ScopePart): boolean => (mine === theirs ? mine.claims.size > 0 : eachSharedUnit(mine, theirs, yes));
const yes = (): boolean => true;

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
  /** By kind (see `Filed`); each built on first use, then kept up to date by `add`. */
  private readonly indexes: (Map<string, number[]> | undefined)[] = [];
  /** By namespace, the members judged at ItemBlock level that claim units there; built on first use. */
  private claims?: Map<string, Claimants>;
  /** For each member, where `claims` files it: one entry per namespace of its claims, in their order. */
  private readonly filed: (readonly Claimants[])[] = [];
  /** Whether what a question at namespace level (0) and at ItemBlock level (1) reads is built. */
  private readonly prepared = [false, false];

  get size(): number { return this.members.length; }
  member(i: number): ScopedBackup { return this.members[i] as ScopedBackup; }
  /** The members as they are now (later `replace` calls do not show in it). */
  snapshot(): readonly ScopedBackup[] { return this.members.slice(); }

  add(b: ScopedBackup): number {
    const i = this.members.length;
    this.members.push(b);
    for (let kind = 0; kind < this.indexes.length; kind++) { const index = this.indexes[kind]; if (index) file(index, kind, b.scope, i); }
    if (this.claims) this.filed[i] = fileClaims(this.claims, b.scope, i);
    return i;
  }

  // A plan at one level never asks what only the other needs (an ItemBlock plan, the members
  // of every namespace), so each index is built when first asked for; the first question at a
  // level builds all it reads in one pass (reading the members' scopes once, not per index).
  private index(kind: Filed): Map<string, number[]> {
    if (!this.indexes[kind]) this.build([kind], false);
    return this.indexes[kind] as Map<string, number[]>;
  }

  private claimants(): Map<string, Claimants> {
    if (!this.claims) this.build([], true);
    return this.claims as Map<string, Claimants>;
  }

  private prepare(level: ConflictLevel): void {
    const at = level === "Namespace" ? 0 : 1;
    if (this.prepared[at]) return;
    this.build(at === 0 ? NAMESPACE_LEVEL_READS : ITEMBLOCK_LEVEL_READS, at === 1);
    this.prepared[at] = true;
  }

  /**
   * Files every member in whichever of these indexes (and the claims) are not built yet. It runs
   * once per plan, mostly before V8 has optimized it: indexed loops, since unoptimized iteration
   * allocates a result object per step.
   */
  private build(kinds: readonly Filed[], claims: boolean): void {
    const missing = kinds.filter((kind) => !this.indexes[kind]);
    const into = missing.map((kind) => (this.indexes[kind] = new Map<string, number[]>()));
    const filing = claims && !this.claims ? (this.claims = new Map()) : undefined;
    if (missing.length === 0 && !filing) return;
    for (let i = 0; i < this.members.length; i++) {
      const s = (this.members[i] as ScopedBackup).scope;
      for (let k = 0; k < missing.length; k++) file(into[k] as Map<string, number[]>, missing[k] as Filed, s, i);
      if (filing) this.filed[i] = fileClaims(filing, s, i);
    }
  }

  /** Members that back up namespace `ns`: the only ones whose claims a change there can move. */
  inScope(ns: string): readonly number[] { return this.index(Filed.Scope).get(ns) ?? NO_MEMBERS; }
  /** Members judged at ItemBlock level that need some unit in namespace `ns` exclusively. */
  claimingIn(ns: string): readonly number[] { return this.claimants().get(ns)?.members ?? NO_MEMBERS; }

  /**
   * Puts `b` in member `i`'s place: the same backup with a new scope whose claims differ from
   * the old one's only in `namespaces` (everything else a scope's head decides is unchanged).
   */
  replace(i: number, b: ScopedBackup, namespaces: Iterable<string>): void {
    this.members[i] = b;
    if (!this.claims || b.scope.level === "Namespace") return;
    for (const ns of namespaces) {
      const c = this.claims.get(ns) ?? { members: [], parts: [] };
      const at = lowerBound(c.members, i);
      const listed = c.members[at] === i;
      const part = b.scope.claims.byNamespace.get(ns);
      if (part && listed) c.parts[at] = part;
      else if (part) { c.members.splice(at, 0, i); c.parts.splice(at, 0, part); }
      else if (listed) { c.members.splice(at, 1); c.parts.splice(at, 1); }
      if (c.members.length > 0) this.claims.set(ns, c); else this.claims.delete(ns);
    }
    const claims = this.claims;
    this.filed[i] = b.scope.claims.namespaces.map((ns) => claims.get(ns) as Claimants);
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
   *
   * The rule (`conflictsWith`) is applied through the index: a member filed under a queue
   * namespace of `b` when either is judged at namespace level, under a strict namespace of `b`,
   * or under its serial key conflicts with it by that alone; a member filed under a namespace
   * where `b` claims units conflicts when their parts there share one. Only the parts are
   * compared, not the members' scopes: a plan asks this for every queued backup, and reading
   * thousands of scopes scattered in memory was most of its time.
   */
  blockersOf(b: ScopedBackup, limit: number, before = this.members.length): Blockers {
    const s = b.scope;
    this.prepare(s.level);
    gather.reset();
    if (s.level === "Namespace") gather.from(this.index(Filed.Namespace), s.queueNamespaces);
    else {
      gather.from(this.index(Filed.NamespaceLevel), s.queueNamespaces);
      gather.from(this.index(Filed.Strict), s.strictNamespaces);
      const claimants = this.claimants();
      const { namespaces, parts } = s.claims;
      // A plan asks for each member in turn (`b` is member `before`): where it was filed is
      // known, and looking each namespace up again was a fifth of the question's cost.
      const filed = this.members[before] === b ? this.filed[before] : undefined;
      for (let k = 0; k < namespaces.length; k++) gather.fromClaims(filed ? filed[k] : claimants.get(namespaces[k] as string), parts[k] as ScopePart);
    }
    if (s.serialKey) gather.fromKey(this.index(Filed.Serial), s.serialKey);
    // When the lists hold more than there are members ahead (a backup of every namespace),
    // asking each member ahead in turn, until `limit` is passed, is cheaper than merging.
    const crowded = gather.listed >= before;
    const n = crowded ? gather.everyMemberBelow(before) : gather.conflictingBelow(before);
    // The blockers' numbers are moved to the front of the candidates, so that the array a plan
    // keeps per queued backup is allocated once at its size.
    const candidates = gather.candidates;
    let found = 0;
    let more = false;
    for (let k = 0, last = -1; k < n; k++) {
      const i = candidates[k] as number;
      if (i === last) continue;
      last = i;
      const other = this.members[i] as ScopedBackup;
      if (other === b || (crowded && !conflictsWith(b, other))) continue;
      if (found === limit) { more = true; break; }
      candidates[found++] = i;
    }
    if (found === 0) return more ? SOME_BLOCKERS : NO_BLOCKERS;
    const blockers = new Array<ScopedBackup>(found);
    for (let k = 0; k < found; k++) blockers[k] = this.members[candidates[k] as number] as ScopedBackup;
    return { blockers, more };
  }
}

export interface Blockers { readonly blockers: readonly ScopedBackup[]; readonly more: boolean }
const NO_BLOCKERS: Blockers = Object.freeze({ blockers: Object.freeze([]), more: false });
/** With a limit of 0: there are blockers, none named. */
const SOME_BLOCKERS: Blockers = Object.freeze({ ...NO_BLOCKERS, more: true });

/**
 * The candidates of one blockersOf call: the index lists it names, then the members below a
 * bound in them. blockersOf runs for every queued backup of every plan and never re-enters, so
 * one instance keeps its space between calls instead of allocating it each time.
 */
class Gather {
  private readonly lists: (readonly number[] | undefined)[] = [];
  /** For a claim list: the asking backup's part in that namespace, and the listed members' parts. */
  private readonly mine: (ScopePart | undefined)[] = [];
  private readonly theirs: (readonly ScopePart[] | undefined)[] = [];
  private count = 0;
  /** Entries in all lists. */
  listed = 0;
  /** Filled by `everyMemberBelow` and `conflictingBelow`. */
  candidates = new Int32Array(1024);

  reset(): void { this.count = 0; this.listed = 0; }

  from(index: ReadonlyMap<string, readonly number[]>, keys: readonly string[]): void {
    if (index.size > 0) for (const key of keys) this.fromKey(index, key);
  }

  fromKey(index: ReadonlyMap<string, readonly number[]>, key: string): void {
    this.add(index.get(key), undefined, undefined);
  }

  fromClaims(claimants: Claimants | undefined, mine: ScopePart): void {
    if (claimants) this.add(claimants.members, mine, claimants.parts);
  }

  private add(list: readonly number[] | undefined, mine: ScopePart | undefined, theirs: readonly ScopePart[] | undefined): void {
    if (!list) return;
    this.lists[this.count] = list;
    this.mine[this.count] = mine;
    this.theirs[this.count] = theirs;
    this.count++;
    this.listed += list.length;
  }

  /** Every member below `before`; returns how many. */
  everyMemberBelow(before: number): number {
    const all = this.room(before);
    for (let i = 0; i < before; i++) all[i] = i;
    return this.done(before);
  }

  /** The listed members below `before` that conflict, in order, repeats adjacent; returns how many. */
  conflictingBelow(before: number): number {
    const all = this.room(Math.min(this.listed, before));
    let n = 0;
    for (let l = 0; l < this.count; l++) {
      const list = this.lists[l] as readonly number[];
      const mine = this.mine[l];
      const theirs = this.theirs[l] as readonly ScopePart[];
      for (let k = 0; k < list.length; k++) {
        const i = list[k] as number;
        if (i >= before) break;
        if (mine === undefined || partsShareUnit(mine, theirs[k] as ScopePart)) all[n++] = i;
      }
    }
    if (this.count > 1) sortFirst(all, n);
    return this.done(n);
  }

  private room(size: number): Int32Array {
    if (this.candidates.length < size) this.candidates = new Int32Array(Math.max(size, 2 * this.candidates.length));
    return this.candidates;
  }

  // Lets go of the lists: they belong to an index that may be dropped before the next call.
  private done(n: number): number {
    this.lists.fill(undefined, 0, this.count);
    this.mine.fill(undefined, 0, this.count);
    this.theirs.fill(undefined, 0, this.count);
    return n;
  }
}
const gather = new Gather();

/** Sorts `a[0..n)` in place: usually a few dozen numbers, for which `subarray(0, n).sort()` cost a view object per call. */
function sortFirst(a: Int32Array, n: number): void {
  if (n > 64) { a.subarray(0, n).sort(); return; }
  for (let k = 1; k < n; k++) {
    const x = a[k] as number;
    let j = k - 1;
    while (j >= 0 && (a[j] as number) > x) { a[j + 1] = a[j] as number; j--; }
    a[j + 1] = x;
  }
}

const NO_MEMBERS: readonly number[] = [];

/** The members claiming units in one namespace (in member order), and each one's part there. */
interface Claimants { readonly members: number[]; readonly parts: ScopePart[] }

/** Files member `i` under each namespace where it claims units; returns where, in its claims' order. */
function fileClaims(claims: Map<string, Claimants>, s: BackupScope, i: number): readonly Claimants[] {
  if (s.level === "Namespace") return NOT_FILED;
  const { namespaces, parts } = s.claims;
  const filed = new Array<Claimants>(namespaces.length);
  for (let k = 0; k < namespaces.length; k++) {
    const ns = namespaces[k] as string;
    let c = claims.get(ns);
    if (c) { c.members.push(i); c.parts.push(parts[k] as ScopePart); }
    else { c = { members: [i], parts: [parts[k] as ScopePart] }; claims.set(ns, c); }
    filed[k] = c;
  }
  return filed;
}
const NOT_FILED: readonly Claimants[] = [];

function file(index: Map<string, number[]>, kind: Filed, s: BackupScope, i: number): void {
  switch (kind) {
    case Filed.Namespace: return pushEach(index, s.queueNamespaces, i);
    case Filed.NamespaceLevel: return s.level === "Namespace" ? pushEach(index, s.queueNamespaces, i) : undefined;
    case Filed.Strict: return pushEach(index, s.strictNamespaces, i);
    case Filed.Scope: return pushEach(index, s.namespaces, i);
    case Filed.Serial: return s.serialKey ? push(index, s.serialKey, i) : undefined;
  }
}

function pushEach(index: Map<string, number[]>, keys: readonly string[], i: number): void {
  for (let k = 0; k < keys.length; k++) push(index, keys[k] as string, i);
}

/** What can be shared, by which a ClaimIndex files its members (claims are filed apart, with their parts). */
const enum Filed {
  /** The namespaces Velero's rule compares (`queueNamespaces`). */
  Namespace,
  /** The same, for members judged at namespace level only. */
  NamespaceLevel,
  /** Namespaces annotated to be judged at namespace level. */
  Strict,
  /** Every namespace the member backs up. */
  Scope,
  /** The serial workload (Schedule) the member is a run of. */
  Serial,
}

/** What `blockersOf` reads for a backup judged at each level. */
const NAMESPACE_LEVEL_READS: readonly Filed[] = [Filed.Namespace, Filed.Serial];
const ITEMBLOCK_LEVEL_READS: readonly Filed[] = [Filed.NamespaceLevel, Filed.Strict, Filed.Serial];

function lowerBound(list: readonly number[], x: number): number {
  let lo = 0, hi = list.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if ((list[mid] as number) < x) lo = mid + 1; else hi = mid; }
  return lo;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value); else map.set(key, [value]);
}
