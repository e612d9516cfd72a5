import type { ConflictLevel } from "../model.js";
import type { BackupScope, ScopePart } from "../scope/scope.js";
import { Candidates, type Claimants } from "./candidates.js";
import { conflictBetween, conflictsWith, type Conflict, type ScopedBackup } from "./conflicts.js";

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
  /** The scratch space of `blockersOf`. */
  private readonly candidates = new Candidates();

  get size(): number {
    return this.members.length;
  }
  member(i: number): ScopedBackup {
    return this.members[i] as ScopedBackup;
  }
  /** The members as they are now (later `replace` calls do not show in it). */
  snapshot(): readonly ScopedBackup[] {
    return this.members.slice();
  }

  add(b: ScopedBackup): number {
    const i = this.members.length;
    this.members.push(b);
    for (let kind = 0; kind < this.indexes.length; kind++) {
      const index = this.indexes[kind];
      if (index) file(index, kind, b.scope, i);
    }
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
   * Files every member in whichever of these indexes (and the claims) are not built yet.
   * Indexed loops: this runs once per plan, mostly unoptimized, when a for-of allocates per step.
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
  inScope(ns: string): readonly number[] {
    return this.index(Filed.Scope).get(ns) ?? NO_MEMBERS;
  }
  /** Members judged at ItemBlock level that need some unit in namespace `ns` exclusively. */
  claimingIn(ns: string): readonly number[] {
    return this.claimants().get(ns)?.members ?? NO_MEMBERS;
  }

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
      const part = b.scope.claims.partIn(ns);
      if (part && listed) c.parts[at] = part;
      else if (part) {
        c.members.splice(at, 0, i);
        c.parts.splice(at, 0, part);
      } else if (listed) {
        c.members.splice(at, 1);
        c.parts.splice(at, 1);
      }
      if (c.members.length > 0) this.claims.set(ns, c);
      else this.claims.delete(ns);
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
   * compared, not the members' scopes, which lie scattered in memory.
   */
  blockersOf(b: ScopedBackup, limit: number, before = this.members.length): Blockers {
    this.prepare(b.scope.level);
    this.listCandidates(b, before);
    // Lists longer than the members ahead (a backup of every namespace): ask each member ahead.
    const crowded = this.candidates.listed >= before;
    const n = crowded ? this.candidates.everyMemberBelow(before) : this.candidates.conflictingBelow(before);
    return this.pickBlockers(b, n, crowded, limit);
  }

  /** Names to the candidates the index lists that may hold members `b` conflicts with. */
  private listCandidates(b: ScopedBackup, before: number): void {
    const s = b.scope;
    const candidates = this.candidates;
    candidates.reset();
    if (s.level === "Namespace") candidates.from(this.index(Filed.Namespace), s.queueNamespaces);
    else {
      candidates.from(this.index(Filed.NamespaceLevel), s.queueNamespaces);
      candidates.from(this.index(Filed.Strict), s.strictNamespaces);
      const claimants = this.claimants();
      const { namespaces, parts } = s.claims;
      // When `b` is member `before` (a plan asks for each member in turn), where it is filed is known.
      const filed = this.members[before] === b ? this.filed[before] : undefined;
      for (let k = 0; k < namespaces.length; k++) {
        candidates.fromClaims(filed ? filed[k] : claimants.get(namespaces[k] as string), parts[k] as ScopePart);
      }
    }
    if (s.serialKey) candidates.fromKey(this.index(Filed.Serial), s.serialKey);
  }

  /**
   * The first `limit` distinct candidates (of `n`, sorted) that conflict with `b`. Their numbers
   * move to the front of the candidates first, so the array kept per queued backup is made once.
   */
  private pickBlockers(b: ScopedBackup, n: number, crowded: boolean, limit: number): Blockers {
    const numbers = this.candidates.candidates;
    let found = 0;
    let more = false;
    for (let k = 0, last = -1; k < n; k++) {
      const i = numbers[k] as number;
      if (i === last) continue;
      last = i;
      const other = this.members[i] as ScopedBackup;
      if (other === b || (crowded && !conflictsWith(b, other))) continue;
      if (found === limit) {
        more = true;
        break;
      }
      numbers[found++] = i;
    }
    if (found === 0) return more ? SOME_BLOCKERS : NO_BLOCKERS;
    const blockers = new Array<ScopedBackup>(found);
    for (let k = 0; k < found; k++) blockers[k] = this.members[numbers[k] as number] as ScopedBackup;
    return { blockers, more };
  }
}

export interface Blockers {
  readonly blockers: readonly ScopedBackup[];
  readonly more: boolean;
}
const NO_BLOCKERS: Blockers = Object.freeze({ blockers: Object.freeze([]), more: false });
/** With a limit of 0: there are blockers, none named. */
const SOME_BLOCKERS: Blockers = Object.freeze({ ...NO_BLOCKERS, more: true });

const NO_MEMBERS: readonly number[] = [];

/** Files member `i` under each namespace where it claims units; returns where, in its claims' order. */
function fileClaims(claims: Map<string, Claimants>, s: BackupScope, i: number): readonly Claimants[] {
  if (s.level === "Namespace") return NOT_FILED;
  const { namespaces, parts } = s.claims;
  const filed = new Array<Claimants>(namespaces.length);
  for (let k = 0; k < namespaces.length; k++) {
    const ns = namespaces[k] as string;
    let c = claims.get(ns);
    if (c) {
      c.members.push(i);
      c.parts.push(parts[k] as ScopePart);
    } else {
      c = { members: [i], parts: [parts[k] as ScopePart] };
      claims.set(ns, c);
    }
    filed[k] = c;
  }
  return filed;
}
const NOT_FILED: readonly Claimants[] = [];

function file(index: Map<string, number[]>, kind: Filed, s: BackupScope, i: number): void {
  switch (kind) {
    case Filed.Namespace:
      return pushEach(index, s.queueNamespaces, i);
    case Filed.NamespaceLevel:
      return s.level === "Namespace" ? pushEach(index, s.queueNamespaces, i) : undefined;
    case Filed.Strict:
      return pushEach(index, s.strictNamespaces, i);
    case Filed.Scope:
      return pushEach(index, s.namespaces, i);
    case Filed.Serial:
      return s.serialKey ? push(index, s.serialKey, i) : undefined;
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
  let lo = 0,
    hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((list[mid] as number) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
