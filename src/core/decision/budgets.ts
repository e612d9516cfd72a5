import type { ClaimIndex } from "../conflict/claimIndex.js";
import type { BackupInfo } from "../model.js";
import type { Policy } from "../policy.js";
import type { BackupScope } from "../scope/scope.js";
import { globMatcher, hasWildcard } from "../velero/glob.js";

// Budgets (docs/rules.md, "Budgets"): limits on the backups in flight that do one kind of work
// (write to a storage location, snapshot volumes of a CSI driver or a storage class, copy pod
// volumes on a node with a file-system backup), each predicted from the backup's scope. A backup
// that conflicts with nothing still waits while starting it would exceed a budget: a hold, as a
// tenant's limit is. With no `budgets` section (or one that sets no limit) nothing here runs.

export const BUDGET_KINDS = ["backupsPerStorageLocation", "snapshotsPerDriver", "snapshotsPerStorageClass", "fsBackupsPerNode"] as const;
export type BudgetKind = (typeof BUDGET_KINDS)[number];

/** Why starting a backup would exceed a budget: the first budget (in BUDGET_KINDS order, then by name) that has no room. */
export interface BudgetHold {
  readonly kind: BudgetKind;
  /** The storage location, driver, storage class or node the budget is kept for. */
  readonly name: string;
  /** Backups counting toward it: in flight, and promoted earlier in the same plan. */
  readonly inFlight: number;
  /** Units kept for budget-held backups ahead of it that need this budget too. */
  readonly kept: number;
  readonly limit: number;
}

type Budgets = NonNullable<Policy["budgets"]>;

/** Whether the policy limits anything: a `budgets` section that sets no limit changes nothing. */
export function hasBudgets(policy: Policy): boolean {
  const b = policy.budgets;
  return b !== undefined && BUDGET_KINDS.some((kind) => b[kind] !== undefined);
}

/** The storage location a backup writes to: its spec's, else the policy's name for Velero's default location. */
export function storageLocationOf(b: BackupInfo, policy: Policy): string {
  const location = (b.spec as { storageLocation?: unknown } | null | undefined)?.storageLocation;
  return typeof location === "string" && location !== "" ? location : (policy.budgets?.defaultStorageLocation ?? "default");
}

/** The names a backup's work counts toward, per kind of budget (each sorted, without repeats). */
export function workOf(b: BackupInfo, scope: BackupScope, policy: Policy): Readonly<Record<BudgetKind, readonly string[]>> {
  // A backup Velero would refuse (FailedValidation) does no work.
  if (scope.errors.length > 0)
    return { backupsPerStorageLocation: [], snapshotsPerDriver: [], snapshotsPerStorageClass: [], fsBackupsPerNode: [] };
  const work = scope.work;
  return {
    backupsPerStorageLocation: [storageLocationOf(b, policy)],
    snapshotsPerDriver: work.snapshotDrivers,
    snapshotsPerStorageClass: work.snapshotClasses,
    fsBackupsPerNode: work.fsBackupNodes,
  };
}

/** One budget a backup counts toward. */
interface Need {
  readonly kind: BudgetKind;
  readonly name: string;
  /** `kind` and `name`, the key of the counts. */
  readonly key: string;
  readonly limit: number;
}

/**
 * The limit of one budget: a number limits every name; in a map the exact name wins, else the
 * smallest limit among the patterns that match (so the order keys are written in never matters).
 * A name no key matches has no budget.
 */
export class Limits {
  readonly #byKind = new Map<BudgetKind, (name: string) => number | undefined>();

  constructor(budgets: Budgets) {
    for (const kind of BUDGET_KINDS) {
      const limits = budgets[kind];
      if (limits === undefined) continue;
      this.#byKind.set(kind, typeof limits === "number" ? () => limits : limitByName(limits));
    }
  }

  of(kind: BudgetKind, name: string): number | undefined {
    return this.#byKind.get(kind)?.(name);
  }
}

function limitByName(limits: Readonly<Record<string, number>>): (name: string) => number | undefined {
  const patterns = Object.entries(limits)
    .filter(([key]) => hasWildcard(key))
    .map(([key, limit]) => ({ matches: globMatcher(key), limit }));
  const seen = new Map<string, number | undefined>();
  return (name) => {
    if (Object.hasOwn(limits, name)) return limits[name];
    if (seen.has(name)) return seen.get(name);
    let limit: number | undefined;
    for (const p of patterns) if (p.matches(name) && (limit === undefined || p.limit < limit)) limit = p.limit;
    seen.set(name, limit);
    return limit;
  };
}

/** What a plan's decisions read of its members: their backups, their scopes, how many are in flight. */
export interface Members {
  readonly policy: Policy;
  readonly infos: readonly BackupInfo[];
  readonly index: ClaimIndex;
  readonly inFlight: number;
}

/**
 * The budgets' counts while one plan is decided, in queue order. Members 0..inFlight-1 are in
 * flight and count from the start; a queued member counts once promoted (`started`). A member
 * held by a budget keeps one unit of each of its budgets (`held`): a backup behind it may take
 * a budget it needs only while room is left for it, so a held backup is never overtaken for a
 * budget forever (docs/rules.md, "Budgets").
 */
export class BudgetBook {
  readonly #m: Members;
  readonly #limits: Limits;
  readonly #needs: (readonly Need[] | undefined)[];
  readonly #used = new Map<string, number>();
  readonly #kept = new Map<string, number>();

  constructor(m: Members, budgets: Budgets) {
    this.#m = m;
    this.#limits = new Limits(budgets);
    this.#needs = new Array<readonly Need[] | undefined>(m.index.size);
    for (let i = 0; i < m.inFlight; i++) this.started(i);
  }

  /** The first budget member i cannot start under, or undefined when each has room. */
  holdOf(i: number): BudgetHold | undefined {
    for (const n of this.#needsOf(i)) {
      const inFlight = this.#used.get(n.key) ?? 0;
      const kept = this.#kept.get(n.key) ?? 0;
      if (inFlight + kept >= n.limit) return { kind: n.kind, name: n.name, inFlight, kept, limit: n.limit };
    }
    return undefined;
  }

  /** Member i is in flight, or promoted. */
  started(i: number): void {
    for (const n of this.#needsOf(i)) this.#used.set(n.key, (this.#used.get(n.key) ?? 0) + 1);
  }

  /** Member i waits for a budget: one unit of each of its budgets is kept for it. */
  held(i: number): void {
    for (const n of this.#needsOf(i)) this.#kept.set(n.key, (this.#kept.get(n.key) ?? 0) + 1);
  }

  #needsOf(i: number): readonly Need[] {
    let needs = this.#needs[i];
    if (!needs) {
      const m = this.#m;
      const work = workOf(m.infos[i] as BackupInfo, m.index.member(i).scope, m.policy);
      const list: Need[] = [];
      for (const kind of BUDGET_KINDS) {
        for (const name of work[kind]) {
          const limit = this.#limits.of(kind, name);
          if (limit !== undefined) list.push({ kind, name, key: `${kind}\u0000${name}`, limit });
        }
      }
      this.#needs[i] = needs = list;
    }
    return needs;
  }
}

/** The book for a plan, or undefined when the policy sets no budget. */
export function budgetBook(m: Members): BudgetBook | undefined {
  const budgets = m.policy.budgets;
  return budgets && hasBudgets(m.policy) ? new BudgetBook(m, budgets) : undefined;
}
