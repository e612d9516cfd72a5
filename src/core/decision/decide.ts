import type { Blockers, ClaimIndex } from "../conflict/claimIndex.js";
import { conflictBetween, type Conflict, type ScopedBackup } from "../conflict/conflicts.js";
import { budgetBook, hasBudgets, type BudgetBook, type BudgetHold } from "./budgets.js";
import type { Ordered } from "./order.js";
import type { Overlap, Plan, Promotion, QueueEntry } from "./planModel.js";
import { MadePlan, NO_DECISIONS, type Decided, type Decisions, type Memory, type PlanMaking, type Started } from "./planMemory.js";
import { Queued, type Tenancy } from "./queueEntry.js";
import { overlapReason, startReason, windowStartedAnywayNote } from "./reasons.js";
import type { WindowState } from "./windows.js";
import { restoreHoldOf, type RestoreHold } from "./restores.js";

// Promotions and the queue from who blocks whom: in queue order, a backup that waits behind no
// one takes a free slot; the others keep their place in the queue.

/** Decides every queued member, then explains the plan. */
export function decide(m: Memory, made: PlanMaking): Plan {
  const run = new Deciding(m, NO_DECISIONS, m.inFlight);
  for (let i = m.inFlight; i < m.index.size; i++) run.decide(i, undefined);
  return explain(m, run.decisions(), made);
}

/**
 * Decides again after a replan redid the blockers of the members in `redo`: what was decided
 * ahead of the first of them stands; past the last one, once the slots and positions come out
 * as they did, so does everything behind. Only the stretch between is decided again, keeping
 * each decision that came out the same.
 */
export function decideAgain(m: Memory, was: Decisions, redo: ReadonlySet<number>): Plan {
  const n = m.index.size;
  let from = n;
  let last = -1;
  for (const i of redo) {
    from = Math.min(from, i);
    last = Math.max(last, i);
  }
  // With tenants or budgets, a decision also reads counts of backups in flight and promoted ahead: decide all again.
  const all = m.classes !== undefined || hasBudgets(m.policy);
  from = all ? m.inFlight : Math.max(m.inFlight, from);
  const run = new Deciding(m, was, from);
  for (let i = from; i < n; i++) {
    if (all) {
      run.decide(i, undefined);
      continue;
    }
    if (i > last && run.caughtUp(i)) {
      run.takeRest(i);
      break;
    }
    run.decide(i, redo.has(i) ? undefined : was.each[i]);
  }
  return explain(m, run.decisions(), "incremental");
}

/** What holds a backup that may conflict with nothing: a budget, its start window, a restore writing into it. */
interface Holds {
  readonly budget: BudgetHold | undefined;
  readonly window: WindowState | undefined;
  readonly restoreHold: RestoreHold | undefined;
}

/** The decisions of one plan as they are made, member by member, after those `was` had before `from`. */
class Deciding {
  readonly #m: Memory;
  readonly #was: Decisions;
  readonly #limit: number;
  readonly #each: Decided[];
  readonly #promotedBefore: Int32Array;
  readonly #queuedBefore: Int32Array;
  readonly #promotions: Promotion[];
  readonly #queue: QueueEntry[];
  /** With tenants: backups in flight or promoted per tenant, and each member's class by name. */
  readonly #tenants:
    | {
        readonly flying: Map<string, number>;
        readonly kept: Map<string, number>;
        readonly classOf: ReadonlyMap<string, string | undefined>;
      }
    | undefined;
  /** With budgets: backups in flight, promoted and held per budget (with budgets, every plan decides from the first queued member). */
  readonly #budgets: BudgetBook | undefined;

  constructor(m: Memory, was: Decisions, from: number) {
    const n = m.index.size;
    this.#m = m;
    this.#was = was;
    this.#limit = m.policy.maxConcurrentBackups;
    this.#each = new Array<Decided>(n);
    this.#promotedBefore = new Int32Array(n + 1);
    this.#queuedBefore = new Int32Array(n + 1);
    for (let i = m.inFlight; i < from; i++) this.#each[i] = was.each[i] as Decided;
    if (from > m.inFlight) {
      this.#promotedBefore.set(was.promotedBefore.subarray(0, from + 1));
      this.#queuedBefore.set(was.queuedBefore.subarray(0, from + 1));
    }
    this.#promotions = was.promotions.slice(0, this.#promotedBefore[from]);
    this.#queue = was.queue.slice(0, this.#queuedBefore[from]);
    this.#tenants = m.classes && tenantsAt(m, m.classes);
    this.#budgets = budgetBook(m);
  }

  /**
   * Member i starts when it waits behind no one, its tenant is under its limit, each of its
   * budgets has room and a slot is free; otherwise it queues.
   * `before`: its last decision, kept if it comes out the same.
   */
  decide(i: number, before: Decided | undefined): void {
    const blocked = this.#m.blocked[i] as Blockers;
    const tenancy = this.#tenancyOf(i);
    const b = this.#m.index.member(i);
    const window = this.#m.windows?.[i];
    const restoreHold = this.#restoreHoldOf(b, i);
    const free = blocked.blockers.length === 0 && !tenancy?.held && !window?.held && !restoreHold;
    const budget = free ? this.#budgets?.holdOf(i) : undefined;
    const slot = this.#promotions.length < this.#limit - this.#m.inFlight;
    this.#each[i] =
      free && !budget && slot
        ? this.#start(i, before, tenancy, window)
        : this.#wait(i, before, blocked, tenancy, { budget, window, restoreHold });
    this.#promotedBefore[i + 1] = this.#promotions.length;
    this.#queuedBefore[i + 1] = this.#queue.length;
  }

  /** A start in the next slot: `before` when it came out the same. */
  #start(i: number, before: Decided | undefined, tenancy: Tenancy | undefined, window: WindowState | undefined): Decided {
    const d = this.#started(this.#m.index.member(i), before, window);
    this.#promotions.push(d.promotion);
    if (tenancy?.tenant !== undefined) this.#tenants?.flying.set(tenancy.tenant, (this.#tenants.flying.get(tenancy.tenant) ?? 0) + 1);
    this.#budgets?.started(i);
    return d;
  }

  #started(b: ScopedBackup, before: Decided | undefined, window: WindowState | undefined): Started {
    const inUse = this.#m.inFlight + this.#promotions.length + 1;
    if (before && !(before instanceof Queued) && before.inUse === inUse) return before;
    const reason = startReason(b.scope, inUse, this.#limit) + (window ? windowStartedAnywayNote(window.wait) : "");
    return { inUse, promotion: { backup: b.name, level: b.scope.level, reason } };
  }

  #wait(
    i: number,
    before: Decided | undefined,
    blocked: Blockers,
    tenancy: Tenancy | undefined,
    { budget, window, restoreHold }: Holds,
  ): Decided {
    const m = this.#m;
    if (budget) {
      // A budget-held backup keeps a unit of its budgets and of its tenant's limit, so that neither
      // fills behind it while it waits for the other (docs/rules.md, "Budgets").
      this.#budgets?.held(i);
      if (tenancy?.tenant !== undefined) this.#tenants?.kept.set(tenancy.tenant, (this.#tenants.kept.get(tenancy.tenant) ?? 0) + 1);
    }
    const position = this.#queue.length + 1;
    const d =
      before instanceof Queued && before.position === position
        ? before
        : new Queued(
            m.index.member(i),
            m.priorities[i - m.inFlight] as Ordered,
            position,
            blocked,
            this.#limit,
            tenancy,
            window?.held ? window.wait : undefined,
            budget,
            restoreHold,
          );
    this.#queue.push(d);
    return d;
  }

  /** Member i's tenant, and whether its tenant is at its limit (undefined without tenants). */
  #tenancyOf(i: number): Tenancy | undefined {
    const t = this.#tenants;
    if (!t) return undefined;
    const tenant = this.#m.classes?.[i];
    const limit = this.#m.policy.tenants?.maxInFlightPerTenant;
    const inFlight = tenant === undefined ? 0 : (t.flying.get(tenant) ?? 0);
    const kept = tenant === undefined ? 0 : (t.kept.get(tenant) ?? 0);
    const held =
      limit !== undefined && tenant !== undefined && inFlight + kept >= limit ? { inFlight, limit, ...(kept ? { kept } : {}) } : undefined;
    return { tenant, held, classOf: t.classOf };
  }

  /** The writing restore that holds this member, if any (docs/rules.md, "Restores"). */
  #restoreHoldOf(b: ScopedBackup, i: number): RestoreHold | undefined {
    const restores = this.#m.restores;
    return restores ? restoreHoldOf({ scope: b.scope, spec: this.#m.infos[i]?.spec }, restores) : undefined;
  }

  /** Whether the slots and positions before member i came out as last time. */
  caughtUp(i: number): boolean {
    return this.#promotions.length === this.#was.promotedBefore[i] && this.#queue.length === this.#was.queuedBefore[i];
  }

  /** Members i and on come out as last time. */
  takeRest(i: number): void {
    const was = this.#was;
    for (let j = i; j < this.#each.length; j++) this.#each[j] = was.each[j] as Decided;
    this.#promotedBefore.set(was.promotedBefore.subarray(i), i);
    this.#queuedBefore.set(was.queuedBefore.subarray(i), i);
    this.#promotions.push(...was.promotions.slice(this.#promotions.length));
    this.#queue.push(...was.queue.slice(this.#queue.length));
  }

  decisions(): Decisions {
    return {
      each: this.#each,
      promotedBefore: this.#promotedBefore,
      queuedBefore: this.#queuedBefore,
      promotions: this.#promotions,
      queue: this.#queue,
    };
  }
}

/** Backups in flight per tenant before the first queued member is decided, and each member's class by name. */
function tenantsAt(m: Memory, classes: readonly (string | undefined)[]) {
  const flying = new Map<string, number>();
  const classOf = new Map<string, string | undefined>();
  for (let i = 0; i < m.index.size; i++) {
    const tenant = classes[i];
    classOf.set(m.index.member(i).name, tenant);
    if (i < m.inFlight && tenant !== undefined) flying.set(tenant, (flying.get(tenant) ?? 0) + 1);
  }
  return { flying, kept: new Map<string, number>(), classOf };
}

/** The plan people read: the decisions, with overlaps worked out now and queue reasons on first read. */
function explain(m: Memory, decided: Decisions, made: PlanMaking): Plan {
  const { index, policy } = m;
  const fields = {
    level: policy.conflictLevel,
    limit: policy.maxConcurrentBackups,
    inFlight: m.infos.slice(0, m.inFlight).map((b) => b.name),
    promotions: decided.promotions,
    queue: decided.queue,
    supersessions: m.supersessions,
    overlaps: overlapsOf(index, m.inFlight),
    ...(m.missedWindows ? { missedWindows: m.missedWindows } : {}),
  };
  return new MadePlan(fields, index.snapshot(), { ...m, decided }, made);
}

function overlapsOf(index: ClaimIndex, inFlight: number): Overlap[] {
  const overlaps: Overlap[] = [];
  for (let i = 0; i < inFlight; i++) {
    const b = index.member(i);
    for (const other of index.blockersOf(b, Infinity, i).blockers) {
      const c = conflictBetween(b, other) as Conflict;
      overlaps.push({ backups: [c.with, b.name], conflict: c, reason: overlapReason(c, b.name) });
    }
  }
  return overlaps;
}
