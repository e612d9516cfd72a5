import type { Blockers } from "../conflict/claimIndex.js";
import { conflictBetween, type Conflict, type ScopedBackup } from "../conflict/conflicts.js";
import type { ConflictLevel } from "../model.js";
import type { Ordered } from "./order.js";
import type { QueueEntry } from "./planModel.js";
import { waitReason } from "./reasons.js";

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
  #details: { readonly conflicts: readonly Conflict[]; readonly reason: string } | undefined;
  #waitingFor: readonly string[] | undefined;

  constructor(b: ScopedBackup, o: Ordered, position: number, { blockers, more }: Blockers, limit: number) {
    this.backup = b.name;
    this.position = position;
    this.priority = o.priority;
    this.effectivePriority = o.effectivePriority;
    this.level = b.scope.level;
    this.moreBlockers = more ? true : undefined;
    this.#of = b;
    this.#blockers = blockers;
    this.#limit = limit;
  }

  #explain(): { readonly conflicts: readonly Conflict[]; readonly reason: string } {
    if (!this.#details) {
      const conflicts = this.#blockers.map((other) => conflictBetween(this.#of, other) as Conflict);
      this.#details = { conflicts, reason: waitReason(this.#of.scope, conflicts, this.moreBlockers === true, this.#limit) };
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

  toJSON(): QueueEntry {
    const { backup, position, priority, effectivePriority, level, waitingFor, conflicts, moreBlockers, reason } = this;
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
    };
  }
}
