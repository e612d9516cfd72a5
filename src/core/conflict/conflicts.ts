import type { ListLookup } from "../lists.js";
import type { ConflictLevel } from "../model.js";
import { compareClaims, type BackupScope, type Claim, type ScopeClaims, type ScopePart } from "../scope/scope.js";

// When two backups may not be in flight together. One rule, used by the plan (through the
// claim index, which only narrows the pairs to check), the admission verdicts and the tests.

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
  const namespaces =
    level === "Namespace" ? intersect(a.scope.queueLookup, b.scope.queueLookup) : intersect(a.scope.strictLookup, b.scope.strictLookup);
  const shared = level === "ItemBlock" ? sharedUnits(a.scope.claims, b.scope.claims) : NONE;
  if (!serial && namespaces.length === 0 && shared.count === 0) return undefined;
  // Two literals rather than a spread: a conflict is made for every blocker of every review.
  return serial
    ? { with: b.name, withPhase: b.phase, level, serial, namespaces, units: shared.units, unitCount: shared.count }
    : { with: b.name, withPhase: b.phase, level, namespaces, units: shared.units, unitCount: shared.count };
}

/** True when `a` and `b` may not be in flight together (conflictBetween without the details). */
export function conflictsWith(a: ScopedBackup, b: ScopedBackup): boolean {
  if (a.scope.serialKey !== undefined && a.scope.serialKey === b.scope.serialKey) return true;
  if (a.scope.level === "Namespace" || b.scope.level === "Namespace") return meets(a.scope.queueLookup, b.scope.queueLookup);
  return meets(a.scope.strictLookup, b.scope.strictLookup) || sharesUnit(a.scope.claims, b.scope.claims);
}

const NONE: { readonly units: readonly SharedUnit[]; readonly count: number } = { units: [], count: 0 };

// The walks below take visitor objects, not callbacks: a conflict's details are spelled for
// every blocker of every review, and closures over the walk's state were made for each.

/** Called with a's part and b's in each namespace both claim in; true stops the walk. */
interface PartVisitor {
  parts(mine: ScopePart, theirs: ScopePart): boolean;
}

/** Called with each unit both parts claim, and the two claims; true stops the walk. */
interface UnitVisitor {
  unit(unit: string, mine: Claim, theirs: Claim): boolean;
}

// Claims are compared namespace by namespace, walking the smaller side: two backups share a
// unit only inside a namespace both claim in, and two backups with the same part there (same
// spec and context) share all of its units. The walk returns whether it was stopped.
function eachSharedNamespace(a: ScopeClaims, b: ScopeClaims, visitor: PartVisitor): boolean {
  if (a.size === 0 || b.size === 0) return false;
  const small = a.namespaces.length <= b.namespaces.length ? a : b;
  const other = small === a ? b : a;
  for (const ns of small.namespaces) {
    const pOther = other.partIn(ns);
    if (!pOther) continue;
    const pSmall = small.partIn(ns) as ScopePart;
    if (small === a ? visitor.parts(pSmall, pOther) : visitor.parts(pOther, pSmall)) return true;
  }
  return false;
}

/** Walks the smaller claim map of two parts, visiting each unit both claim; returns whether the walk was stopped. */
function eachSharedUnit(mine: ScopePart, theirs: ScopePart, visitor: UnitVisitor): boolean {
  const walkMine = mine.claims.size <= theirs.claims.size;
  const walked = walkMine ? mine : theirs;
  const other = walkMine ? theirs : mine;
  for (const unit of walked.claimed) {
    const c = other.claims.get(unit);
    if (c === undefined) continue;
    const w = walked.claims.get(unit) as Claim;
    if (walkMine ? visitor.unit(unit, w, c) : visitor.unit(unit, c, w)) return true;
  }
  return false;
}

/** The units two backups both claim: how many, and the first MAX_SHARED_UNITS in a's claim order. */
class SharedUnits implements PartVisitor, UnitVisitor {
  count = 0;
  /** The first units so far, in claim order: `#kept` entries of three lists made at their full length. */
  #kept = 0;
  readonly #units = new Array<string>(MAX_SHARED_UNITS);
  readonly #mine = new Array<Claim>(MAX_SHARED_UNITS);
  readonly #theirs = new Array<Claim>(MAX_SHARED_UNITS);

  parts(mine: ScopePart, theirs: ScopePart): boolean {
    if (mine === theirs) {
      // The same part: every unit is shared; the first few in its claim order are the ones shown.
      this.count += mine.claims.size;
      let n = 0;
      for (const unit of mine.claimed) {
        if (n++ === MAX_SHARED_UNITS) break;
        const c = mine.claims.get(unit) as Claim;
        this.#consider(unit, c, c);
      }
      return false;
    }
    if (mine.claims.size > theirs.claims.size) return eachSharedUnit(mine, theirs, this);
    // Walking `mine` in its claim order, only the first few units shared in this part can be
    // among the first overall: the rest are only counted.
    const { claimed } = mine;
    let here = 0;
    for (let i = 0; i < claimed.length; i++) {
      const unit = claimed[i] as string;
      const c = theirs.claims.get(unit);
      if (c === undefined) continue;
      this.count++;
      if (here++ < MAX_SHARED_UNITS) this.#consider(unit, mine.claims.get(unit) as Claim, c);
    }
    return false;
  }

  unit(unit: string, mine: Claim, theirs: Claim): boolean {
    this.count++;
    this.#consider(unit, mine, theirs);
    return false;
  }

  /** Keeps the unit if it comes before the last kept one, or there is room: an insertion into a sorted list of three. */
  #consider(unit: string, mine: Claim, theirs: Claim): void {
    const kept = this.#mine;
    let i = this.#kept;
    if (i === MAX_SHARED_UNITS && compareClaims(mine, kept[i - 1] as Claim) >= 0) return;
    while (i > 0 && compareClaims(mine, kept[i - 1] as Claim) < 0) i--;
    this.#kept = Math.min(this.#kept + 1, MAX_SHARED_UNITS);
    for (let k = this.#kept - 1; k > i; k--) {
      this.#units[k] = this.#units[k - 1] as string;
      kept[k] = kept[k - 1] as Claim;
      this.#theirs[k] = this.#theirs[k - 1] as Claim;
    }
    this.#units[i] = unit;
    kept[i] = mine;
    this.#theirs[i] = theirs;
  }

  shared(): { readonly units: readonly SharedUnit[]; readonly count: number } {
    if (this.count === 0) return NONE;
    const units = new Array<SharedUnit>(this.#kept);
    for (let i = 0; i < units.length; i++)
      units[i] = { unit: this.#units[i] as string, reasons: [(this.#mine[i] as Claim).reason, (this.#theirs[i] as Claim).reason] };
    return { units, count: this.count };
  }
}

function sharedUnits(a: ScopeClaims, b: ScopeClaims): { readonly units: readonly SharedUnit[]; readonly count: number } {
  const shared = new SharedUnits();
  eachSharedNamespace(a, b, shared);
  return shared.shared();
}

// The yes/no question is asked for every candidate pair of every plan: its visitors are made
// once, so asking allocates nothing.
const YES: UnitVisitor = { unit: () => true };
export const partsShareUnit = (mine: ScopePart, theirs: ScopePart): boolean =>
  mine === theirs ? mine.claims.size > 0 : eachSharedUnit(mine, theirs, YES);
const SHARES_UNIT: PartVisitor = { parts: partsShareUnit };
const sharesUnit = (a: ScopeClaims, b: ScopeClaims): boolean => eachSharedNamespace(a, b, SHARES_UNIT);

function meets(a: ListLookup, b: ListLookup): boolean {
  if (a.list.length === 0 || b.list.length === 0) return false;
  return a.list.length <= b.list.length ? a.list.some((x) => b.set.has(x)) : b.list.some((x) => a.set.has(x));
}

const NO_NAMESPACES: readonly string[] = [];

function intersect(a: ListLookup, b: ListLookup): readonly string[] {
  // Most backups judge no namespace strictly: one empty list for all of their conflicts.
  if (a.list.length === 0 || b.list.length === 0) return NO_NAMESPACES;
  if (a.list.length <= b.list.length) return a.list.filter((x) => b.set.has(x));
  // Walk the shorter list (a backup of every namespace lists them all), keep `a`'s order.
  const shared = b.list.filter((x) => a.set.has(x));
  if (shared.length > 1) {
    const at = a.positions;
    shared.sort((x, y) => (at.get(x) as number) - (at.get(y) as number));
  }
  return shared;
}

/** describeConflict, spelling each conflict once however often it is asked (a verdict's reason and warnings both name them). */
export function describedOnce(): (c: Conflict) => string {
  const spelled = new Map<Conflict, string>();
  return (c) => {
    let line = spelled.get(c);
    if (line === undefined) spelled.set(c, (line = describeConflict(c)));
    return line;
  };
}

/** A conflict in one line, as people read it: "both snapshot PVC shop/data-0". */
export function describeConflict(c: Conflict): string {
  const parts: string[] = [];
  if (c.serial) parts.push(`both are runs of ${c.serial}, which never run together`);
  for (const {
    reasons: [mine, theirs],
  } of c.units.slice(0, 3)) {
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
