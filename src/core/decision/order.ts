import { KEYS, type BackupInfo } from "../model.js";
import type { Policy } from "../policy.js";
import { Timestamps } from "../times.js";
import type { Supersession } from "./planModel.js";
import { TENANT_SUPERSEDED } from "./reasons.js";

// The queue's order: priority (from the label, the Schedule or a person), aging, creation time
// and name; and which queued runs of a Schedule give way to a newer one.

/** A queued backup with its priorities, as the queue orders it. */
export interface Ordered {
  readonly backup: BackupInfo;
  readonly priority: number;
  readonly effectivePriority: number;
  /** NaN when the creation time is unknown (it then sorts as the earliest). */
  readonly created: number;
}

/** Base priority from the label, the Schedule, or whether a person made the backup. */
export function basePriority(backup: BackupInfo, policy: Policy): number {
  const label = backup.labels[KEYS.priority];
  if (label !== undefined && /^-?\d+$/.test(label.trim())) return Number.parseInt(label, 10);
  const schedule = backup.labels[KEYS.scheduleName];
  if (schedule) return policy.priorities.schedules[schedule] ?? policy.priorities.scheduled;
  return policy.priorities.manual;
}

export function effectivePriorityOf(backup: BackupInfo, policy: Policy, now: number, times?: Timestamps): number {
  return agedFrom(basePriority(backup, policy), parse(backup.creationTimestamp, times), policy, now);
}

function parse(timestamp: string, times: Timestamps | undefined): number {
  return times ? times.parse(timestamp) : Date.parse(timestamp);
}

/** A base priority after aging, for a backup created at `created` (NaN: unknown, no aging). */
export function agedFrom(base: number, created: number, policy: Policy, now: number): number {
  const aging = policy.priorities.agingSeconds;
  if (aging === 0) return base;
  const waited = Number.isFinite(created) ? Math.max(0, now - created) : 0;
  return base + Math.floor(waited / (aging * 1000));
}

/** Queue order of two backups: effective priority (higher first), then creation time, then name. */
export function queueOrder(a: BackupInfo, b: BackupInfo, policy: Policy, now: number, times?: Timestamps): number {
  return effectivePriorityOf(b, policy, now, times) - effectivePriorityOf(a, policy, now, times) || creationOrder(a, b, times);
}

/** Queue order: effective priority (higher first), then creation time, then name. */
export function orderQueue(queued: readonly BackupInfo[], policy: Policy, now: number, times = new Timestamps()): Ordered[] {
  return queued
    .map((backup): Ordered => {
      const priority = basePriority(backup, policy);
      const created = times.parse(backup.creationTimestamp);
      return { backup, priority, effectivePriority: agedFrom(priority, created, policy, now), created };
    })
    .sort((a, b) => b.effectivePriority - a.effectivePriority || (a.created || 0) - (b.created || 0) || byName(a.backup, b.backup));
}

/** When aging next moves the effective priority of one of `queued` after `now` (Infinity without aging). */
export function nextAgingStep(queued: readonly Ordered[], policy: Policy, now: number): number {
  const aging = policy.priorities.agingSeconds * 1000;
  if (aging === 0) return Infinity;
  let next = Infinity;
  for (const { created } of queued) next = Math.min(next, nextStepAfter(created, policy, now));
  return next;
}

/** When a priority aging from `since` next steps up after `now` (Infinity without aging or an unknown time). */
export function nextStepAfter(since: number, policy: Policy, now: number): number {
  const aging = policy.priorities.agingSeconds * 1000;
  if (aging === 0 || !Number.isFinite(since)) return Infinity;
  return since + (Math.floor(Math.max(0, now - since) / aging) + 1) * aging;
}

function byName(a: BackupInfo, b: BackupInfo): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Creation time, then name: the order of backups in flight. */
export function byCreation(a: BackupInfo, b: BackupInfo): number {
  return creationOrder(a, b, undefined);
}

/** byCreation, with creation times parsed once in `times`. */
export function byCreationIn(times: Timestamps): (a: BackupInfo, b: BackupInfo) => number {
  return (a, b) => creationOrder(a, b, times);
}

function creationOrder(a: BackupInfo, b: BackupInfo, times: Timestamps | undefined): number {
  const at = (x: BackupInfo) => parse(x.creationTimestamp, times) || 0;
  return at(a) - at(b) || byName(a, b);
}

/** Backups by creation time, then name (a sorted copy). */
export function sortByCreation(backups: readonly BackupInfo[], times?: Timestamps): BackupInfo[] {
  return [...backups].sort((a, b) => creationOrder(a, b, times));
}

// Under `Replace`, only the newest queued run of a Schedule stays queued; the older queued runs
// are superseded (failed with a reason by the controller). Runs already in flight are kept.
export function supersede(
  waiting: readonly BackupInfo[],
  policy: Policy,
  times?: Timestamps,
): { queued: BackupInfo[]; supersessions: Supersession[] } {
  if (policy.serialWorkloads !== "Replace") return { queued: [...waiting], supersessions: [] };
  const newest = newestRuns(waiting, times);
  const queued: BackupInfo[] = [];
  const supersessions: Supersession[] = [];
  for (const b of waiting) {
    const schedule = b.labels[KEYS.scheduleName];
    const keep = schedule ? newest.get(schedule) : b;
    if (!keep || keep === b) queued.push(b);
    else
      supersessions.push({
        backup: b.name,
        by: keep.name,
        reason: `superseded by ${keep.name}, a newer run of schedule ${schedule} (serialWorkloads: Replace)`,
        ...(policy.tenants ? { tenantReason: TENANT_SUPERSEDED } : {}),
      });
  }
  return { queued, supersessions: supersessions.sort((a, b) => (a.backup < b.backup ? -1 : 1)) };
}

/** The newest of the runs of each Schedule among `backups`. */
function newestRuns(backups: readonly BackupInfo[], times: Timestamps | undefined): Map<string, BackupInfo> {
  const newest = new Map<string, BackupInfo>();
  for (const b of backups) {
    const schedule = b.labels[KEYS.scheduleName];
    if (!schedule) continue;
    const current = newest.get(schedule);
    if (!current || creationOrder(current, b, times) < 0) newest.set(schedule, b);
  }
  return newest;
}
