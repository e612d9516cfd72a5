import { ClaimIndex, conflictBetween, describeConflict, type Conflict, type ScopedBackup } from "./conflicts.js";
import { IN_FLIGHT_PHASES, KEYS, QUEUED_PHASES, type BackupInfo, type ConflictLevel } from "./model.js";
import type { Policy } from "./policy.js";
import { ScopeCache } from "./scopeCache.js";
import type { BackupScope } from "./scope.js";
import type { ClusterView } from "./view.js";

// The queue, decided: plan(snapshot, policy, now) -> Plan. Pure: the same snapshot, policy and
// instant always give the same plan, whatever order the backups arrive in.

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
  /** Every backup the plan judged, with its scope (not serialized). */
  readonly scopes: ReadonlyMap<string, BackupScope>;
}

export interface PlanOptions {
  /** Reuse scopes across plans; a fresh cache is used when none is given. */
  readonly cache?: ScopeCache;
}

export function plan(snapshot: Snapshot, policy: Policy, now: number, options: PlanOptions = {}): Plan {
  const cache = options.cache ?? new ScopeCache();
  const backups = snapshot.backups.filter((b) => b.namespace === policy.veleroNamespace);
  const scoped = (b: BackupInfo): ScopedBackup => ({ name: b.name, phase: b.phase, scope: cache.scopeOf(b, snapshot.view, policy) });

  const inFlight = backups.filter((b) => IN_FLIGHT_PHASES.has(b.phase)).sort(byCreation).map(scoped);
  const waiting = backups.filter((b) => QUEUED_PHASES.has(b.phase));
  const { queued, supersessions } = supersede(waiting, policy);
  const ordered = orderQueue(queued, policy, now);

  const order = new Map<string, number>();
  [...inFlight.map((b) => b.name), ...ordered.map((q) => q.backup.name)].forEach((name, i) => order.set(name, i));
  const index = new ClaimIndex();
  const overlaps: Overlap[] = [];
  for (const b of inFlight) {
    for (const c of index.conflictsOf(b, order)) {
      overlaps.push({ backups: [c.with, b.name], conflict: c, reason: `${c.with} and ${b.name} are in flight together: ${describeConflict(c)}` });
    }
    index.add(b);
  }

  const scopes = new Map<string, BackupScope>(inFlight.map((b) => [b.name, b.scope]));
  let free = policy.maxConcurrentBackups - inFlight.length;
  const promotions: Promotion[] = [];
  const queue: QueueEntry[] = [];
  for (const { backup, priority, effectivePriority } of ordered) {
    const b = scoped(backup);
    scopes.set(b.name, b.scope);
    const { blockers, more } = index.blockersOf(b, order, MAX_BLOCKERS);
    if (blockers.length === 0 && free > 0) {
      free--;
      promotions.push({ backup: b.name, level: b.scope.level, reason: startReason(b.scope, policy.maxConcurrentBackups - free, policy.maxConcurrentBackups) });
    } else {
      queue.push(queueEntry({
        backup: b.name,
        position: queue.length + 1,
        priority,
        effectivePriority,
        level: b.scope.level,
        waitingFor: blockers.map((x) => x.name),
      }, more, () => {
        const conflicts = blockers.map((other) => conflictBetween(b, other) as Conflict);
        return { conflicts, reason: waitReason(b.scope, conflicts, more, policy.maxConcurrentBackups) };
      }));
    }
    // Rule (2): a backup later in the order never overtakes an earlier one it conflicts with,
    // so every queued backup holds its claims for those behind it.
    index.add(b);
  }

  return {
    level: policy.conflictLevel,
    limit: policy.maxConcurrentBackups,
    inFlight: inFlight.map((b) => b.name),
    promotions,
    queue,
    supersessions,
    overlaps,
    scopes,
  };
}

// A queued backup's conflict details and reason cost more than the decision itself and are read
// for a handful of backups per plan (the writes) or all of them (the CLI): computed on first
// read, and then kept. They stay ordinary enumerable fields for JSON and deep equality.
function queueEntry(head: Omit<QueueEntry, "conflicts" | "reason" | "moreBlockers">, more: boolean,
  details: () => { conflicts: Conflict[]; reason: string }): QueueEntry {
  let cached: { conflicts: Conflict[]; reason: string } | undefined;
  const get = () => (cached ??= details());
  const entry = { ...head } as QueueEntry;
  Object.defineProperty(entry, "conflicts", { get: () => get().conflicts, enumerable: true });
  if (more) Object.defineProperty(entry, "moreBlockers", { value: true, enumerable: true });
  Object.defineProperty(entry, "reason", { get: () => get().reason, enumerable: true });
  return entry;
}

// The words a person reads, shared by the plan and the admission verdicts.
function levelNote(scope: BackupScope): string {
  return scope.levelReason ? ` (judged at Namespace level: ${scope.levelReason})` : "";
}

export function startReason(scope: BackupScope, inUse: number, limit: number): string {
  return `conflicts with nothing in flight or ahead of it; ${inUse} of ${limit} slots in use${levelNote(scope)}`;
}

export function waitReason(scope: BackupScope, conflicts: readonly Conflict[], more: boolean, limit: number): string {
  return (conflicts.length > 0
    ? conflicts.map((c) => `waits behind ${c.with} (${c.withPhase || "New"}): ${describeConflict(c)}`).join("; ")
      + (more ? "; and behind more backups" : "")
    : `waits for a free slot: ${limit} of ${limit} backups in flight`) + levelNote(scope);
}

/** Base priority from the label, the Schedule, or whether a person made the backup. */
export function basePriority(backup: BackupInfo, policy: Policy): number {
  const label = backup.labels[KEYS.priority];
  if (label !== undefined && /^-?\d+$/.test(label.trim())) return Number.parseInt(label, 10);
  const schedule = backup.labels[KEYS.scheduleName];
  if (schedule) return policy.priorities.schedules[schedule] ?? policy.priorities.scheduled;
  return policy.priorities.manual;
}

export function effectivePriorityOf(backup: BackupInfo, policy: Policy, now: number): number {
  const base = basePriority(backup, policy);
  const aging = policy.priorities.agingSeconds;
  if (aging === 0) return base;
  const created = parseTime(backup.creationTimestamp);
  const waited = Number.isFinite(created) ? Math.max(0, now - created) : 0;
  return base + Math.floor(waited / (aging * 1000));
}

interface Ordered {
  readonly backup: BackupInfo;
  readonly priority: number;
  readonly effectivePriority: number;
}

/** Queue order: effective priority (higher first), then creation time, then name. */
export function orderQueue(queued: readonly BackupInfo[], policy: Policy, now: number): Ordered[] {
  return queued
    .map((backup) => ({ backup, priority: basePriority(backup, policy), effectivePriority: effectivePriorityOf(backup, policy, now), created: createdAt(backup) }))
    .sort((a, b) => b.effectivePriority - a.effectivePriority || a.created - b.created || byName(a.backup, b.backup))
    .map(({ backup, priority, effectivePriority }) => ({ backup, priority, effectivePriority }));
}

// Creation times parsed once per timestamp string (plans sort thousands of backups).
const parsedTimes = new Map<string, number>();
function parseTime(timestamp: string): number {
  let t = parsedTimes.get(timestamp);
  if (t === undefined) {
    t = Date.parse(timestamp);
    if (parsedTimes.size > 100_000) parsedTimes.clear();
    parsedTimes.set(timestamp, t);
  }
  return t;
}
function createdAt(b: BackupInfo): number {
  return parseTime(b.creationTimestamp) || 0;
}

function byName(a: BackupInfo, b: BackupInfo): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function byCreation(a: BackupInfo, b: BackupInfo): number {
  return createdAt(a) - createdAt(b) || byName(a, b);
}

// Under `Replace`, only the newest queued run of a Schedule stays queued; the older queued runs
// are superseded (failed with a reason by the controller). Runs already in flight are kept.
export function supersede(waiting: readonly BackupInfo[], policy: Policy): { queued: BackupInfo[]; supersessions: Supersession[] } {
  if (policy.serialWorkloads !== "Replace") return { queued: [...waiting], supersessions: [] };
  const newest = new Map<string, BackupInfo>();
  for (const b of waiting) {
    const schedule = b.labels[KEYS.scheduleName];
    if (!schedule) continue;
    const current = newest.get(schedule);
    if (!current || byCreation(current, b) < 0) newest.set(schedule, b);
  }
  const queued: BackupInfo[] = [];
  const supersessions: Supersession[] = [];
  for (const b of waiting) {
    const schedule = b.labels[KEYS.scheduleName];
    const keep = schedule ? newest.get(schedule) : b;
    if (!keep || keep === b) queued.push(b);
    else supersessions.push({ backup: b.name, by: keep.name, reason: `superseded by ${keep.name}, a newer run of schedule ${schedule} (serialWorkloads: Replace)` });
  }
  return { queued, supersessions: supersessions.sort((a, b) => (a.backup < b.backup ? -1 : 1)) };
}
