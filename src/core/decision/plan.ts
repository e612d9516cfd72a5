import { ClaimIndex, type Blockers } from "../conflict/claimIndex.js";
import { IN_FLIGHT_PHASES, QUEUED_PHASES, type BackupInfo } from "../model.js";
import type { Policy } from "../policy.js";
import { ScopeCache } from "../scope/cache.js";
import type { BackupScope } from "../scope/scope.js";
import type { ClusterView } from "../view.js";
import { decide } from "./decide.js";
import { nextAgingStep, orderQueue, sortByCreation, supersede, type Ordered } from "./order.js";
import { MAX_BLOCKERS, type Plan, type PlanOptions, type Snapshot, type Supersession } from "./planModel.js";
import { MadePlan, NO_DECISIONS, versionsOf, type PlanMaking } from "./planMemory.js";
import { replan, reusable } from "./replan.js";
import { writingRestores } from "./restores.js";
import { fairOrder, tenantOf } from "./tenants.js";
import { applyWindows, type Windowed, type WindowState } from "./windows.js";

// The queue, decided: plan(snapshot, policy, now) -> Plan. Pure: the same snapshot, policy and
// instant always give the same plan, whatever order the backups arrive in. A plan is five
// steps: order the queue, scope each backup, index the claims, decide, explain (decide.ts).
// Incremental re-planning (replan.ts) builds on the previous plan when it can.

export type { Overlap, Plan, PlanOptions, Promotion, QueueEntry, Snapshot, Supersession } from "./planModel.js";
export { MAX_BLOCKERS } from "./planModel.js";
export type { PlanMaking } from "./planMemory.js";

export function plan(snapshot: Snapshot, policy: Policy, now: number, options: PlanOptions = {}): Plan {
  const cache = options.cache ?? new ScopeCache();
  const backups = backupsOf(snapshot, policy);
  const memory = options.previous && reusable(options.previous, snapshot.view, policy, cache, backups, now);
  return (memory && replan(memory, now)) ?? planAfresh(snapshot.view, backups, policy, now, cache);
}

/**
 * The snapshot's backups in Velero's namespace: a copy, which the next plan compares its own
 * with (replan.ts). Usually all of them are: then a slice, which grows no array as it goes.
 */
function backupsOf(snapshot: Snapshot, policy: Policy): BackupInfo[] {
  const all = snapshot.backups;
  const ours = (b: BackupInfo) => b.namespace === policy.veleroNamespace;
  return all.every(ours) ? all.slice() : all.filter(ours);
}

/** Whether a plan was made from nothing or built on the previous one (for the controller's log and tests). */
export function howMade(p: Plan): PlanMaking | undefined {
  return MadePlan.madeOf(p);
}

/**
 * When time alone next changes what may start or must fail in this plan: a window boundary or a
 * held backup's max wait (Infinity: only a change does). Aging steps are not counted: with
 * thousands queued one comes every few milliseconds, and the controller's tick catches them.
 */
export function planWakeAt(p: Plan): number {
  return MadePlan.memoryOf(p)?.wakeAt ?? Infinity;
}

function planAfresh(view: ClusterView, backups: readonly BackupInfo[], policy: Policy, now: number, cache: ScopeCache): Plan {
  const { inFlight, priorities, supersessions, windowed, fairUntil } = order(backups, policy, now, cache);
  const infos = inFlight.concat(priorities.map((q) => q.backup));
  const classes = policy.tenants ? infos.map((b) => tenantOf(b, policy)) : undefined;
  const index = indexClaims(infos, (b) => cache.scopeOf(b, view, policy));
  const blocked = blockersOfQueued(index, inFlight.length);
  const restores = writingRestores(view, backups, policy);
  return decide(
    {
      used: false,
      view,
      policy,
      cache,
      backups,
      now,
      orderValidUntil: Math.min(nextAgingStep(priorities, policy, now), fairUntil, windowed?.validUntil ?? Infinity),
      versions: versionsOf(view),
      infos,
      index,
      inFlight: inFlight.length,
      priorities,
      supersessions,
      blocked,
      decided: NO_DECISIONS,
      ...(classes ? { classes } : {}),
      ...(windowed
        ? {
            windows: new Array<WindowState | undefined>(inFlight.length).concat(windowed.states),
            missedWindows: windowed.missed,
            wakeAt: windowed.validUntil,
          }
        : {}),
      ...(restores.length > 0 ? { restores } : {}),
    },
    "afresh",
  );
}

/**
 * The order step: in flight by creation; queued after supersession, in queue order (fair among
 * tenants when the policy has them, valid until `fairUntil`; backups outside their start window last).
 */
function order(
  backups: readonly BackupInfo[],
  policy: Policy,
  now: number,
  cache: ScopeCache,
): { inFlight: BackupInfo[]; priorities: Ordered[]; supersessions: readonly Supersession[]; windowed?: Windowed; fairUntil: number } {
  const inFlight = sortByCreation(
    backups.filter((b) => IN_FLIGHT_PHASES.has(b.phase)),
    cache.times,
  );
  const waiting = backups.filter((b) => QUEUED_PHASES.has(b.phase));
  const { queued, supersessions } = supersede(waiting, policy, cache.times);
  const today = orderQueue(queued, policy, now, cache.times);
  const fair = policy.tenants ? fairOrder(today, backups, policy, now, cache.times) : { order: today, validUntil: Infinity };
  if (!policy.windows) return { inFlight, priorities: fair.order, supersessions, fairUntil: fair.validUntil };
  const windowed = applyWindows(fair.order, policy.windows, now, cache.times);
  return { inFlight, priorities: windowed.order, supersessions, windowed, fairUntil: fair.validUntil };
}

// Indexed loops in the two steps below: they run once per plan, mostly before V8 optimizes
// them, when a for-of allocates an iterator result per step.

/** The scope and index steps: each backup's scope, its claims filed in member order. */
function indexClaims(infos: readonly BackupInfo[], scopeOf: (b: BackupInfo) => BackupScope): ClaimIndex {
  const index = new ClaimIndex();
  for (let i = 0; i < infos.length; i++) {
    const b = infos[i] as BackupInfo;
    index.add({ name: b.name, phase: b.phase, scope: scopeOf(b) });
  }
  return index;
}

/** Whom each queued member waits behind among the members ahead of it. */
function blockersOfQueued(index: ClaimIndex, inFlight: number): Blockers[] {
  const blocked: Blockers[] = new Array(index.size);
  for (let i = inFlight; i < index.size; i++) blocked[i] = index.blockersOf(index.member(i), MAX_BLOCKERS, i);
  return blocked;
}
