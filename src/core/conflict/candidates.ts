import { partsShareUnit } from "./conflicts.js";
import type { ScopePart } from "../scope/scope.js";

/** The members claiming units in one namespace (in member order), and each one's part there. */
export interface Claimants {
  readonly members: number[];
  readonly parts: ScopePart[];
}

/**
 * The candidates of one `blockersOf` call: the index lists it names, then the members below a
 * bound in them. Each index owns one and reuses its space call after call (blockersOf runs for
 * every queued backup and never re-enters).
 */
export class Candidates {
  private readonly lists: (readonly number[] | undefined)[] = [];
  /** For a claim list: the asking backup's part in that namespace, and the listed members' parts. */
  private readonly mine: (ScopePart | undefined)[] = [];
  private readonly theirs: (readonly ScopePart[] | undefined)[] = [];
  private count = 0;
  /** Entries in all lists. */
  listed = 0;
  /** Filled by `everyMemberBelow` and `conflictingBelow`. */
  candidates = new Int32Array(1024);

  reset(): void {
    this.count = 0;
    this.listed = 0;
  }

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

/** Sorts `a[0..n)` in place; short runs by insertion, which allocates no subarray view. */
function sortFirst(a: Int32Array, n: number): void {
  if (n > 64) {
    a.subarray(0, n).sort();
    return;
  }
  for (let k = 1; k < n; k++) {
    const x = a[k] as number;
    let j = k - 1;
    while (j >= 0 && (a[j] as number) > x) {
      a[j + 1] = a[j] as number;
      j--;
    }
    a[j + 1] = x;
  }
}
