import { IN_FLIGHT_PHASES, KEYS, QUEUED_PHASES, type BackupInfo } from "../core/model.js";
import { orderQueue } from "../core/decision/order.js";
import { plan } from "../core/decision/plan.js";
import { policySchema, type Policy } from "../core/policy.js";
import { ScopeCache } from "../core/scope/cache.js";
import type { Planner, Strategy } from "./engine.js";

// The schedulers a trace is replayed under, side by side. Every safe one is the real plan()
// with a policy variant; only the reference is a planner of its own.

export const STRATEGY_NAMES = [
  "one-at-a-time",
  "velero",
  "namespace",
  "itemblock",
  "reference",
  "fair",
  "no-budgets",
  "no-windows",
  "no-restore-holds",
] as const;
export type StrategyName = (typeof STRATEGY_NAMES)[number];

/** plan() with one policy and a scope cache kept across the instants of one run. */
export function planWith(policy: Policy): () => Planner {
  return () => {
    const cache = new ScopeCache();
    return (snapshot, now) => plan(snapshot, policy, now, { cache });
  };
}

/**
 * Velero 1.18's own queue rule: two backups whose namespace sets intersect never run together,
 * queued backups go in creation order (then name), and nothing ages. That is our Namespace
 * level with every priority 0 and aging off, and no hold: Velero knows no budget or window, and
 * its queue ignores restores.
 */
export function veleroPolicy(policy: Policy): Policy {
  const bare = HOLDS.reduce((p, hold) => withoutHold(p, hold), oneQueue(policy));
  return { ...bare, conflictLevel: "Namespace", priorities: { manual: 0, scheduled: 0, schedules: {}, agingSeconds: 0 } };
}

/** The policy without its tenants section: one queue, today's order. */
export function oneQueue(policy: Policy): Policy {
  if (!policy.tenants) return policy;
  const { tenants: _, ...rest } = policy;
  return rest;
}

/** Fair sharing among tenants: the policy's tenants section, else its defaults. */
export function fairPolicy(policy: Policy): Policy {
  return { ...policy, tenants: policy.tenants ?? DEFAULT_TENANTS };
}
const DEFAULT_TENANTS = policySchema.parse({ tenants: {} }).tenants;

/** The rules that make a backup that conflicts with nothing still wait, and that simulate compares. */
export const HOLDS = ["budgets", "windows", "restores"] as const;
export type Hold = (typeof HOLDS)[number];
/** The strategy that runs the policy's level without one hold. */
export const WITHOUT_HOLD: Readonly<Record<Hold, StrategyName>> = { budgets: "no-budgets", windows: "no-windows", restores: "no-restore-holds" };

/** The policy without one hold: no budgets, no windows, or restores that hold no backup. */
export function withoutHold(policy: Policy, hold: Hold): Policy {
  switch (hold) {
    case "budgets": {
      const { budgets: _, ...rest } = policy;
      return rest;
    }
    case "windows": {
      const { windows: _, ...rest } = policy;
      return rest;
    }
    case "restores":
      return { ...policy, restores: { onConflict: policy.restores?.onConflict ?? "Warn", holdBackups: false } };
  }
}

/** Velero knows no priority label either: the velero planner plans as if no backup had one. */
function withoutPriorityLabels(next: Planner): Planner {
  const stripped = new WeakMap<BackupInfo, BackupInfo>();
  const strip = (b: BackupInfo): BackupInfo => {
    if (!(KEYS.priority in b.labels)) return b;
    let s = stripped.get(b);
    if (!s) {
      const { [KEYS.priority]: _, ...labels } = b.labels;
      s = { ...b, labels };
      stripped.set(b, s);
    }
    return s;
  };
  return (snapshot, now) => next({ view: snapshot.view, backups: snapshot.backups.map(strip) }, now);
}

/**
 * The reference: the first free-slot-many queued backups start, in the policy's queue order,
 * whatever they conflict with. No safe scheduler keeps slots busier; it is unsafe by design.
 */
export function referencePlanner(policy: Policy): () => Planner {
  return () => (snapshot, now) => {
    const ours = snapshot.backups.filter((b) => b.namespace === policy.veleroNamespace);
    const free = Math.max(0, policy.maxConcurrentBackups - ours.filter((b) => IN_FLIGHT_PHASES.has(b.phase)).length);
    const ordered = orderQueue(
      ours.filter((b) => QUEUED_PHASES.has(b.phase)),
      policy,
      now,
    );
    return {
      promotions: ordered.slice(0, free).map((o) => ({ backup: o.backup.name })),
      queue: ordered.slice(free).map((o) => ({
        backup: o.backup.name,
        waitingFor: [],
        reason: `waits for a free slot: ${policy.maxConcurrentBackups} of ${policy.maxConcurrentBackups} backups in flight`,
      })),
      supersessions: [],
    };
  };
}

/**
 * The strategies for one policy (its maxConcurrentBackups is the concurrency of all of them;
 * its conflictLevel is the level of one-at-a-time and the level the reference is checked at).
 * With `tenants` (the trace has tenants' backups, or the policy a tenants section) every
 * strategy but one runs one queue, as today, and "fair" adds fair sharing at the policy's level.
 * Each of `holds` adds the policy's level without that hold ("no-budgets", ...), to compare.
 */
export function strategies(given: Policy, tenants = false, holds: readonly Hold[] = []): Strategy[] {
  const policy = tenants ? oneQueue(given) : given;
  const one: Policy = { ...policy, maxConcurrentBackups: 1 };
  const velero = veleroPolicy(policy);
  const namespace: Policy = { ...policy, conflictLevel: "Namespace" };
  const itemblock: Policy = { ...policy, conflictLevel: "ItemBlock" };
  const fair = fairPolicy(given);
  const veleroPlanner = planWith(velero);
  const fairStrategy: Strategy[] = tenants
    ? [{ name: "fair", description: `plan() at ${fair.conflictLevel} level with tenants sharing the slots fairly`, policy: fair, planner: planWith(fair) }]
    : [];
  return [
    { name: "one-at-a-time", description: "plan() with maxConcurrentBackups 1", policy: one, planner: planWith(one) },
    {
      name: "velero",
      description: "Velero 1.18's queue: Namespace level, all priorities 0, no aging",
      policy: velero,
      planner: () => withoutPriorityLabels(veleroPlanner()),
    },
    { name: "namespace", description: "plan() at Namespace level with the policy's priorities", policy: namespace, planner: planWith(namespace) },
    { name: "itemblock", description: "plan() at ItemBlock level with the policy's priorities", policy: itemblock, planner: planWith(itemblock) },
    {
      name: "reference",
      description: "the first N queued start, conflicts ignored (unsafe; a bound)",
      policy,
      planner: referencePlanner(policy),
      ignoresConflicts: true,
    },
    ...fairStrategy,
    ...holds.map((hold): Strategy => {
      const without = withoutHold(policy, hold);
      return {
        name: WITHOUT_HOLD[hold],
        description: `plan() at ${policy.conflictLevel} level without the policy's ${hold === "restores" ? "restore holds" : hold}`,
        policy: without,
        planner: planWith(without),
      };
    }),
  ];
}
