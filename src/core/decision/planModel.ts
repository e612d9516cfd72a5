import type { Conflict } from "../conflict/conflicts.js";
import type { BudgetHold } from "./budgets.js";
import type { BackupInfo, ConflictLevel } from "../model.js";
import type { ScopeCache } from "../scope/cache.js";
import type { BackupScope } from "../scope/scope.js";
import type { ClusterView } from "../view.js";
import type { MissedWindow } from "./windows.js";

// What a plan reads and what it says: the queue, decided.

export interface Snapshot {
  readonly view: ClusterView;
  readonly backups: readonly BackupInfo[];
}

/** A queued backup, where it stands and why it waits. */
export interface QueueEntry {
  readonly backup: string;
  /** 1 = next. */
  readonly position: number;
  readonly priority: number;
  /** Priority after aging, which decides the order. */
  readonly effectivePriority: number;
  readonly level: ConflictLevel;
  /** The backups it waits behind, in order: at most MAX_BLOCKERS; `moreBlockers` says whether there are more. */
  readonly waitingFor: readonly string[];
  readonly conflicts: readonly Conflict[];
  /** True when it waits behind more backups than `waitingFor` names. */
  readonly moreBlockers?: true;
  readonly reason: string;
  /** With tenants in the policy: its tenant (absent: none). */
  readonly tenant?: string;
  /** With tenants in the policy: why it waits in words its tenant may read (no other backup or namespace named). */
  readonly tenantReason?: string;
  /** The budget that holds it, when one does (docs/rules.md, "Budgets"). */
  readonly budget?: BudgetHold;
}

/** A queued backup names at most this many backups it waits behind (a backup of every namespace may wait behind thousands). */
export const MAX_BLOCKERS = 20;

export interface Promotion {
  readonly backup: string;
  readonly level: ConflictLevel;
  readonly reason: string;
}

export interface Supersession {
  readonly backup: string;
  readonly by: string;
  readonly reason: string;
  /** With tenants in the policy: the reason in words its tenant may read. */
  readonly tenantReason?: string;
}

/** Two in-flight backups that share an exclusive unit (drift after they started, or another writer). */
export interface Overlap {
  readonly backups: readonly [string, string];
  readonly conflict: Conflict;
  readonly reason: string;
}

export interface Plan {
  readonly level: ConflictLevel;
  readonly limit: number;
  readonly inFlight: readonly string[];
  readonly promotions: readonly Promotion[];
  /** Backups still waiting, in queue order. */
  readonly queue: readonly QueueEntry[];
  readonly supersessions: readonly Supersession[];
  readonly overlaps: readonly Overlap[];
  /** With windows in the policy: queued backups failed for waiting past their window's maxWaitSeconds (onMaxWait: Fail). */
  readonly missedWindows?: readonly MissedWindow[];
  /** Every backup the plan judged, with its scope (not serialized). */
  readonly scopes: ReadonlyMap<string, BackupScope>;
}

export interface PlanOptions {
  /** Reuse scopes across plans; a fresh cache is used when none is given. */
  readonly cache?: ScopeCache;
  /**
   * The last plan made with the same cache, view and policy. When only the cluster's contents
   * moved since (the backups, their phases and the queue order did not), the plan redoes just
   * the backups those changes touch; otherwise it starts afresh. Either way the result equals
   * a plan made from nothing. A plan can be built on once: what it remembers passes on.
   */
  readonly previous?: Plan;
}
