import type { Blockers, ClaimIndex } from "../conflict/claimIndex.js";
import { conflictBetween, type Conflict, type ScopedBackup } from "../conflict/conflicts.js";
import type { Ordered } from "./order.js";
import type { Overlap, Plan, Promotion, QueueEntry } from "./planModel.js";
import { MadePlan, NO_DECISIONS, type Decided, type Decisions, type Memory, type PlanMaking } from "./planMemory.js";
import { Queued, type Tenancy } from "./queueEntry.js";
import { overlapReason, startReason } from "./reasons.js";
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
  // With tenants, a decision also reads its tenant's count of backups in flight: decide all again.
  const all = m.classes !== undefined;
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
  readonly #tenants: { readonly flying: Map<string, number>; readonly classOf: ReadonlyMap<string, string | undefined> } | undefined;

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
  }

  /**
   * Member i starts when it waits behind no one and a slot is free; otherwise it queues.
   * `before`: its last decision, kept if it comes out the same.
   */
  decide(i: number, before: Decided | undefined): void {
    const m = this.#m;
    const blocked = m.blocked[i] as Blockers;
    const b = m.index.member(i);
    const tenancy = this.#tenancyOf(i);
    const restoreHold = this.#restoreHoldOf(b, i);
    let d: Decided;
    if (blocked.blockers.length === 0 && !tenancy?.held && !restoreHold && this.#promotions.length < this.#limit - m.inFlight) {
      const inUse = m.inFlight + this.#promotions.length + 1;
      d =
        before && !(before instanceof Queued) && before.inUse === inUse
          ? before
          : { inUse, promotion: { backup: b.name, level: b.scope.level, reason: startReason(b.scope, inUse, this.#limit) } };
      this.#promotions.push(d.promotion);
      if (tenancy?.tenant !== undefined) this.#tenants?.flying.set(tenancy.tenant, (this.#tenants.flying.get(tenancy.tenant) ?? 0) + 1);
    } else {
      const position = this.#queue.length + 1;
      d =
        before instanceof Queued && before.position === position
          ? before
          : new Queued(b, m.priorities[i - m.inFlight] as Ordered, position, blocked, this.#limit, tenancy, restoreHold);
      this.#queue.push(d);
    }
    this.#each[i] = d;
    this.#promotedBefore[i + 1] = this.#promotions.length;
    this.#queuedBefore[i + 1] = this.#queue.length;
  }

  /** Member i's tenant, and whether its tenant is at its limit (undefined without tenants). */
  #tenancyOf(i: number): Tenancy | undefined {
    const t = this.#tenants;
    if (!t) return undefined;
    const tenant = this.#m.classes?.[i];
    const limit = this.#m.policy.tenants?.maxInFlightPerTenant;
    const inFlight = tenant === undefined ? 0 : (t.flying.get(tenant) ?? 0);
    const held = limit !== undefined && tenant !== undefined && inFlight >= limit ? { inFlight, limit } : undefined;
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
  return { flying, classOf };
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
