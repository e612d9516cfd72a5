import { ListLookup } from "../lists.js";
import type { BackupInfo, ConflictLevel, PvInfo } from "../model.js";
import type { Policy } from "../policy.js";
import type { ClusterView } from "../view.js";
import type { SpecError } from "../velero/backupSpec.js";
import { listedPvs, withExtras, type ListedPvs } from "./extraPvs.js";
import { parseSpecInfo, scopeHead } from "./head.js";
import {
  byString,
  compareClaims,
  joinWork,
  type ActionTrace,
  type BackupScope,
  type ScopeClaims,
  type ScopeHead,
  type ScopePart,
  type VolumeWork,
} from "./model.js";
import { scopePart } from "./part.js";

// A scope from its pieces (model.ts says which): computed afresh by `scopeOf`, or from cached
// pieces by the ScopeCache (cache.ts).

export type { Action, ActionTrace, BackupScope, Claim, PartContext, ScopeClaims, ScopeHead, ScopePart, VolumeWork } from "./model.js";
export { compareClaims } from "./model.js";

/** What a backup touches, computed afresh. `ScopeCache` gives the same answer, reusing parts. */
export function scopeOf(backup: BackupInfo, view: ClusterView, policy: Policy, trace?: ActionTrace): BackupScope {
  const head = scopeHead(backup, view, policy, parseSpecInfo(backup.spec));
  const ctx = head.context;
  if (!ctx) return assembleScope(head, [], undefined);
  const listed = head.listsPvs ? listedPvs(ctx, view) : undefined;
  if (!trace) {
    const parts = head.namespaces.map((ns) => scopePart(ctx, view, ns));
    const namespaces = new ListLookup(head.namespaces);
    return assembleScope(
      head,
      withExtras(namespaces, parts, listed, (ns, extras) => scopePart(ctx, view, ns, extras)),
      listed,
      namespaces,
    );
  }
  // Traced: the parts are made without a trace first, then each final part once with it.
  const untraced = head.namespaces.map((ns) => scopePart(ctx, view, ns));
  const extrasOf = new Map<string, readonly PvInfo[]>();
  withExtras(new ListLookup(head.namespaces), untraced, listed, (ns, extras) => {
    extrasOf.set(ns, extras);
    return scopePart(ctx, view, ns, extras);
  });
  return assembleScope(
    head,
    head.namespaces.map((ns) => scopePart(ctx, view, ns, extrasOf.get(ns), trace)),
    listed,
  );
}

/**
 * A scope from its head and its parts (`parts[i]` belongs to `head.namespaces[i]`). `namespaces`
 * looks up `head.namespaces`: a caller that keeps one passes it. The public lists are assembled
 * when first read; conflicts use `claims`.
 */
export function assembleScope(
  head: ScopeHead,
  parts: readonly ScopePart[],
  listed: ListedPvs | undefined,
  namespaces = new ListLookup(head.namespaces),
): BackupScope {
  return new Scope(head, parts, listed, new Claims(namespaces, parts));
}

// A scope's part in a namespace is found by the namespace's place in the head's list, which the
// cache keeps across refreshes: a Map per scope cost a backup of every namespace thousands of
// inserts each time one namespace changed, and a Map per single-namespace backup in the queue.
class Claims implements ScopeClaims {
  readonly namespaces: readonly string[];
  readonly parts: readonly ScopePart[];
  readonly size: number = 0;

  constructor(
    private readonly lookup: ListLookup,
    private readonly all: readonly ScopePart[],
  ) {
    let claiming = 0;
    for (let i = 0; i < all.length; i++) {
      const n = (all[i] as ScopePart).claims.size;
      this.size += n;
      if (n > 0) claiming++;
    }
    // Usually every namespace has units to claim: the lists are then the head's and the parts.
    if (claiming === all.length && all.length === lookup.list.length) {
      this.namespaces = lookup.list;
      this.parts = all;
    } else {
      this.parts = all.filter((p) => p.claims.size > 0);
      this.namespaces = this.parts.map((p) => p.namespace);
    }
  }

  partIn(ns: string): ScopePart | undefined {
    const i = this.lookup.indexOf(ns);
    const part = i < 0 ? undefined : this.all[i];
    return part && part.claims.size > 0 ? part : undefined;
  }
}

// Scopes are instances of one class, their on-demand fields getters on its prototype, so that
// every scope has one shape (test/unit/shapes.test.ts) and the plan's loops read scope fields
// monomorphically. `claims` is a getter too, so that it stays out of the scope's enumerable data.
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
  #work: VolumeWork | undefined;
  #queueLookup: ListLookup | undefined;
  #strictLookup: ListLookup | undefined;

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

  get claims(): ScopeClaims {
    return this.#claims;
  }

  get queueLookup(): ListLookup {
    return (this.#queueLookup ??= new ListLookup(this.queueNamespaces));
  }

  get strictLookup(): ListLookup {
    return (this.#strictLookup ??= new ListLookup(this.strictNamespaces));
  }

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

  get work(): VolumeWork {
    return (this.#work ??= joinWork(this.#parts.map((p) => p.work)));
  }

  get exclusive(): ReadonlyMap<string, string> {
    if (!this.#exclusive) {
      const all = this.#parts.flatMap((p) => [...p.claims]).sort((a, b) => compareClaims(a[1], b[1]));
      this.#exclusive = new Map(all.map(([unit, c]) => [unit, c.reason]));
    }
    return this.#exclusive;
  }
}
