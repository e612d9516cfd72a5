import type { Blockers } from "../conflict/claimIndex.js";
import { conflictBetween, type Conflict, type ScopedBackup } from "../conflict/conflicts.js";
import type { ConflictLevel } from "../model.js";
import type { Ordered } from "./order.js";
import type { BudgetHold } from "./budgets.js";
import type { QueueEntry } from "./planModel.js";
import {
  budgetReason,
  restoreWaitReason,
  tenantLimitReason,
  tenantRestoreWaitReason,
  tenantWaitReason,
  waitReason,
  windowWaitReason,
  windowWaitText,
  type TenantHold,
  type WindowWait,
} from "./reasons.js";
import type { RestoreHold } from "./restores.js";

/** What a queued backup's entry knows of tenants, when the policy has them. */
export interface Tenancy {
  readonly tenant: string | undefined;
  /** Set when its tenant is at its limit of backups in flight. */
  readonly held: TenantHold | undefined;
  /** Each member's class (tenant, or undefined), by name. */
  readonly classOf: ReadonlyMap<string, string | undefined>;
}

/**
 * A queued backup's entry in a plan. Its conflicts and reason cost more than the decision and
 * are read for few entries, so they are worked out on first read and kept. One class, the lazy
 * fields getters on its prototype, so that thousands of entries share one shape (test/unit/
 * shapes.test.ts); `toJSON` writes every field out, in the interface's order.
 */
export class Queued implements QueueEntry {
  readonly backup: string;
  readonly position: number;
  readonly priority: number;
  readonly effectivePriority: number;
  readonly level: ConflictLevel;
  readonly moreBlockers: true | undefined;
  readonly #of: ScopedBackup;
  readonly #blockers: readonly ScopedBackup[];
  readonly #limit: number;
  readonly #tenancy: Tenancy | undefined;
  /** Set when it waits outside its start window. */
  readonly #window: WindowWait | undefined;
  readonly #budget: BudgetHold | undefined;
  readonly #restoreHold: RestoreHold | undefined;
  #details: { readonly conflicts: readonly Conflict[]; readonly reason: string } | undefined;
  #waitingFor: readonly string[] | undefined;

  constructor(
    b: ScopedBackup,
    o: Ordered,
    position: number,
    { blockers, more }: Blockers,
    limit: number,
    tenancy?: Tenancy,
    window?: WindowWait,
    budget?: BudgetHold,
    restoreHold?: RestoreHold,
  ) {
    this.backup = b.name;
    this.position = position;
    this.priority = o.priority;
    this.effectivePriority = o.effectivePriority;
    this.level = b.scope.level;
    this.moreBlockers = more ? true : undefined;
    this.#of = b;
    this.#blockers = blockers;
    this.#limit = limit;
    this.#tenancy = tenancy;
    this.#window = window;
    this.#budget = budget;
    this.#restoreHold = restoreHold;
  }

  #explain(): { readonly conflicts: readonly Conflict[]; readonly reason: string } {
    if (!this.#details) {
      const conflicts = this.#blockers.map((other) => conflictBetween(this.#of, other) as Conflict);
      const t = this.#tenancy;
      const h = this.#restoreHold;
      const tenantHeld = conflicts.length === 0 && t?.held && t.tenant !== undefined;
      const waits = tenantHeld
        ? tenantLimitReason(t.tenant, t.held)
        : conflicts.length === 0 && this.#budget
          ? budgetReason(this.#budget)
          : conflicts.length === 0 && h
            ? restoreWaitReason(h)
            : waitReason(this.#of.scope, conflicts, this.moreBlockers === true, this.#limit);
      // A restore that also holds it is said after whom or what else it waits for.
      const withRestore = h && (conflicts.length > 0 || tenantHeld) ? `${waits}; ${restoreWaitReason(h)}` : waits;
      // Outside its window the window is what it waits for first; whom it would wait behind follows.
      const w = this.#window;
      const reason = w ? windowWaitReason(w) + (conflicts.length > 0 ? `; then ${withRestore}` : "") : withRestore;
      this.#details = { conflicts, reason };
    }
    return this.#details;
  }
  get waitingFor(): readonly string[] {
    return (this.#waitingFor ??= this.#blockers.map((x) => x.name));
  }
  get conflicts(): readonly Conflict[] {
    return this.#explain().conflicts;
  }
  get reason(): string {
    return this.#explain().reason;
  }
  /** Its tenant, when the policy has tenants. */
  get tenant(): string | undefined {
    return this.#tenancy?.tenant;
  }
  /** The budget that holds it, when one does. */
  get budget(): BudgetHold | undefined {
    return this.#budget;
  }
  /** Why it waits, in words its tenant may read (only when the policy has tenants). */
  get tenantReason(): string | undefined {
    const t = this.#tenancy;
    if (!t) return undefined;
    let own = 0;
    let clusterWide = 0;
    let others = 0;
    for (const x of this.#blockers) {
      if (t.classOf.get(x.name) === t.tenant) own++;
      else if (x.scope.queueNamespaces.length !== 1) clusterWide++;
      else others++;
    }
    const namespaceLevel = this.#of.scope.levelReason !== undefined;
    const waits = tenantWaitReason({
      own,
      clusterWide,
      others,
      more: this.moreBlockers === true,
      ...(t.held ? { held: t.held } : {}),
      ...(this.#budget ? { budget: this.#budget } : {}),
      ahead: this.position - 1,
      namespaceLevel,
    });
    const blocked = own + clusterWide + others > 0;
    const text = !this.#restoreHold
      ? waits
      : !blocked && !t.held
        ? tenantRestoreWaitReason(namespaceLevel)
        : `${waits}; ${tenantRestoreWaitReason(false)}`;
    const w = this.#window;
    return w ? windowWaitText(w) + (this.#blockers.length > 0 ? `; then ${text}` : "") : text;
  }

  toJSON(): QueueEntry {
    const { backup, position, priority, effectivePriority, level, waitingFor, conflicts, moreBlockers, reason, budget } = this;
    const tenancy = this.#tenancy ? { tenant: this.tenant, tenantReason: this.tenantReason } : {};
    return {
      backup,
      position,
      priority,
      effectivePriority,
      level,
      waitingFor,
      conflicts,
      ...(moreBlockers ? { moreBlockers } : {}),
      reason,
      ...tenancy,
      ...(budget ? { budget } : {}),
    };
  }
}
