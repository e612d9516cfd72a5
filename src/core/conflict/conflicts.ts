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
  return {
    with: b.name,
    withPhase: b.phase,
    level,
    ...(serial ? { serial } : {}),
    namespaces,
    units: shared.units,
    unitCount: shared.count,
  };
}

/** True when `a` and `b` may not be in flight together (conflictBetween without the details). */
export function conflictsWith(a: ScopedBackup, b: ScopedBackup): boolean {
  if (a.scope.serialKey !== undefined && a.scope.serialKey === b.scope.serialKey) return true;
  if (a.scope.level === "Namespace" || b.scope.level === "Namespace") return meets(a.scope.queueLookup, b.scope.queueLookup);
  return meets(a.scope.strictLookup, b.scope.strictLookup) || sharesUnit(a.scope.claims, b.scope.claims);
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
    const pOther = other.partIn(ns);
    if (!pOther) continue;
    const pSmall = small.partIn(ns) as ScopePart;
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
      for (const [unit, c] of mineP.claims) {
        if (n++ === MAX_SHARED_UNITS) break;
        consider(unit, c, c);
      }
      return;
    }
    eachSharedUnit(mineP, theirsP, (unit, mine, theirs) => {
      count++;
      consider(unit, mine, theirs);
    });
  });
  if (count === 0) return NONE;
  return { units: top.map(([unit, mine, theirs]) => ({ unit, reasons: [mine.reason, theirs.reason] as const })), count };
}

// The yes/no question is asked for every candidate pair of every plan: its visitors capture
// nothing, so asking allocates nothing.
const sharesUnit = (a: ScopeClaims, b: ScopeClaims): boolean => eachSharedNamespace(a, b, partsShareUnit);
export const partsShareUnit = (mine: ScopePart, theirs: ScopePart): boolean =>
  mine === theirs ? mine.claims.size > 0 : eachSharedUnit(mine, theirs, yes);
const yes = (): boolean => true;

function meets(a: ListLookup, b: ListLookup): boolean {
  if (a.list.length === 0 || b.list.length === 0) return false;
  return a.list.length <= b.list.length ? a.list.some((x) => b.set.has(x)) : b.list.some((x) => a.set.has(x));
}

function intersect(a: ListLookup, b: ListLookup): string[] {
  if (a.list.length === 0 || b.list.length === 0) return [];
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
