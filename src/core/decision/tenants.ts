import { IN_FLIGHT_PHASES, type BackupInfo } from "../model.js";
import type { Policy } from "../policy.js";
import type { Timestamps } from "../times.js";
import { agedFrom, nextStepAfter, type Ordered } from "./order.js";

// Tenants (docs/rules.md, "Tenants"): whose a backup is, and the fair order of the queue. With no
// `tenants` section in the policy nothing here runs and the queue is today's single queue.

/** OADP's non-admin controller names the NonAdminBackup's namespace here on each Velero Backup it makes. */
export const ORIGIN_NAMESPACE = "openshift.io/oadp-nab-origin-namespace";

/** ... and the NonAdminBackup's name. */
export const ORIGIN_NAME = "openshift.io/oadp-nab-origin-name";

/** The NonAdminBackup a Velero Backup was made for (both OADP annotations present), else undefined. */
export function nonAdminBackupOf(b: BackupInfo): { readonly namespace: string; readonly name: string } | undefined {
  const namespace = b.annotations[ORIGIN_NAMESPACE];
  const name = b.annotations[ORIGIN_NAME];
  return namespace && name ? { namespace, name } : undefined;
}

/** A backup's tenant: OADP's origin namespace, else the policy's label, else none (an administrator's). */
export function tenantOf(b: BackupInfo, policy: Policy): string | undefined {
  const tenants = policy.tenants;
  if (!tenants) return undefined;
  const origin = b.annotations[ORIGIN_NAMESPACE];
  if (origin) return origin;
  const label = tenants.label === undefined ? undefined : b.labels[tenants.label];
  return label || undefined;
}

/** A class's share of the slots: its tenant's weight, or the untenanted class's. */
export function weightOf(tenant: string | undefined, policy: Policy): number {
  const t = policy.tenants;
  if (!t) return 1;
  return tenant === undefined ? t.untenantedWeight : (t.weights[tenant] ?? t.defaultWeight);
}

/** Where a queued backup stands among the classes: `(earlier + j) / weight`, kept as a fraction. */
interface Rank {
  readonly held: number;
  readonly weight: number;
  /** Its turn: the later of its creation and the last finish of a class-mate created before it. */
  readonly turn: number;
  /** Its priority aged from its turn (across classes a backup ages from its turn, not its creation). */
  readonly turnPriority: number;
  /** Its place in today's order: the last tie-break. */
  readonly today: number;
}

/** The fair order, and until when it holds (a turn's aging step may reorder it). */
export interface FairOrder {
  readonly order: Ordered[];
  readonly validUntil: number;
}

/**
 * The fair order of the queue. `today` is today's order (priority with aging, creation, name).
 * Within a class (a tenant, or the untenanted backups) it stays today's order. Across classes,
 * the j-th queued backup X of class c (from 0) ranks `(f + j) / w`: f counts c's backups in
 * flight created before X or before a class-mate ahead of X (the most of these), w is c's
 * weight. Lower rank first. Equal ranks go by turn: X's turn is the later of its creation and
 * the last time a class-mate created before X finished (Velero's completionTimestamp), and X
 * ages from its turn; the higher aged priority first, then the earlier turn, then today's order.
 * So a class that was just served waits behind one that was not, even when nothing of it is in
 * flight at the instant a slot frees (one slot, or a class whose backups finish together).
 * In-flight class-mates created after X overtook it and count neither in its rank nor its turn,
 * so both only move while class-mates created before X finish, or when a class-mate of higher
 * priority arrives ahead of it (bounded by aging, as today).
 */
export function fairOrder(
  today: readonly Ordered[],
  backups: readonly BackupInfo[],
  policy: Policy,
  now: number,
  times: Timestamps,
): FairOrder {
  const flying = byClass(backups, policy, times, (b) => (IN_FLIGHT_PHASES.has(b.phase) ? 0 : undefined));
  const finished = byClass(backups, policy, times, (b) => finishedAt(b, times));
  const seen = new Map<string | undefined, { j: number; earlier: number }>();
  let validUntil = Infinity;
  const ranks: Rank[] = today.map((o, i) => {
    const tenant = tenantOf(o.backup, policy);
    const key = createdKey(o.backup, times);
    const last = seen.get(tenant) ?? { j: 0, earlier: 0 };
    // The most counted for any class-mate ahead: ranks then grow along the class's own order.
    const earlier = Math.max(last.earlier, countBefore(flying.get(tenant), key));
    seen.set(tenant, { j: last.j + 1, earlier });
    const turn = Math.max(key[0], latestBefore(finished.get(tenant), key));
    // A turn at its creation ages as today's order does; nextAgingStep counts those steps already.
    const turned = turn !== key[0];
    if (turned) validUntil = Math.min(validUntil, nextStepAfter(turn, policy, now));
    const turnPriority = turned ? agedFrom(o.priority, turn, policy, now) : o.effectivePriority;
    return { held: earlier + last.j, weight: weightOf(tenant, policy), turn, turnPriority, today: i };
  });
  const places = ranks.map((_, i) => i).sort((a, b) => compareRanks(ranks[a] as Rank, ranks[b] as Rank));
  return { order: places.map((i) => today[i] as Ordered), validUntil };
}

/** When a backup finished running (undefined: it has not, or the time does not parse). */
function finishedAt(b: BackupInfo, times: Timestamps): number | undefined {
  if (b.completionTimestamp === undefined) return undefined;
  const t = times.parse(b.completionTimestamp);
  return Number.isFinite(t) ? t : undefined;
}

/** held/weight compared exactly (cross-multiplied integers), then the turn's priority and the turn, then today's order. */
function compareRanks(a: Rank, b: Rank): number {
  return a.held * b.weight - b.held * a.weight || b.turnPriority - a.turnPriority || a.turn - b.turn || a.today - b.today;
}

type CreatedKey = readonly [number, string];

/** Creation time, then name, as the queue orders backups created together (unknown times first). */
function createdKey(b: BackupInfo, times: Timestamps): CreatedKey {
  return [times.parse(b.creationTimestamp) || 0, b.name];
}

function before(a: CreatedKey, b: CreatedKey): boolean {
  return a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
}

/** A class's backups that `value` keeps (by creation), each with its value and the most of the values so far. */
interface ClassTimeline {
  readonly created: CreatedKey[];
  /** The most of `value` among the first i + 1 backups by creation. */
  readonly mostSoFar: number[];
}

/** Each class's backups with a `value` (undefined: left out), by creation. */
function byClass(
  backups: readonly BackupInfo[],
  policy: Policy,
  times: Timestamps,
  value: (b: BackupInfo) => number | undefined,
): Map<string | undefined, ClassTimeline> {
  const lists = new Map<string | undefined, { key: CreatedKey; value: number }[]>();
  for (const b of backups) {
    const v = value(b);
    if (v === undefined) continue;
    const tenant = tenantOf(b, policy);
    const list = lists.get(tenant) ?? [];
    list.push({ key: createdKey(b, times), value: v });
    lists.set(tenant, list);
  }
  const timelines = new Map<string | undefined, ClassTimeline>();
  for (const [tenant, list] of lists) {
    list.sort((a, b) => (before(a.key, b.key) ? -1 : before(b.key, a.key) ? 1 : 0));
    let most = -Infinity;
    timelines.set(tenant, { created: list.map((x) => x.key), mostSoFar: list.map((x) => (most = Math.max(most, x.value))) });
  }
  return timelines;
}

/** How many of a class's backups were created before `key`. */
function countBefore(timeline: ClassTimeline | undefined, key: CreatedKey): number {
  return timeline ? indexBefore(timeline.created, key) : 0;
}

/** The latest value among a class's backups created before `key` (-Infinity: none). */
function latestBefore(timeline: ClassTimeline | undefined, key: CreatedKey): number {
  const n = timeline ? indexBefore(timeline.created, key) : 0;
  return n === 0 ? -Infinity : (timeline?.mostSoFar[n - 1] as number);
}

/** How many of `sorted` were created before `key` (binary search). */
function indexBefore(sorted: readonly CreatedKey[], key: CreatedKey): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (before(sorted[mid] as CreatedKey, key)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
