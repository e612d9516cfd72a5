import type { BackupInfo } from "../model.js";
import type { Policy } from "../policy.js";
import type { Timestamps } from "../times.js";
import type { Ordered } from "./order.js";

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
  /** Its place in today's order: the tie-break. */
  readonly today: number;
}

/**
 * The fair order of the queue. `today` is today's order (priority with aging, creation, name).
 * Within a class (a tenant, or the untenanted backups) it stays today's order. Across classes,
 * the j-th queued backup X of class c (from 0) ranks `(f + j) / w`: f counts c's backups in
 * flight created before X or before a class-mate ahead of X (the most of these), w is c's
 * weight. Lower rank first; equal ranks in today's order. In-flight class-mates created after
 * all of them overtook them (they conflicted with nothing) and do not count, so X's rank only
 * falls while it waits, save when a class-mate of higher priority arrives ahead of it (bounded
 * by aging, as today).
 */
export function fairOrder(today: readonly Ordered[], inFlight: readonly BackupInfo[], policy: Policy, times: Timestamps): Ordered[] {
  const flying = inFlightByClass(inFlight, policy, times);
  const seen = new Map<string | undefined, { j: number; earlier: number }>();
  const ranks: Rank[] = today.map((o, i) => {
    const tenant = tenantOf(o.backup, policy);
    const last = seen.get(tenant) ?? { j: 0, earlier: 0 };
    // The most counted for any class-mate ahead: ranks then grow along the class's own order.
    const earlier = Math.max(last.earlier, countBefore(flying.get(tenant) ?? [], createdKey(o.backup, times)));
    seen.set(tenant, { j: last.j + 1, earlier });
    return { held: earlier + last.j, weight: weightOf(tenant, policy), today: i };
  });
  const places = ranks.map((_, i) => i).sort((a, b) => compareRanks(ranks[a] as Rank, ranks[b] as Rank));
  return places.map((i) => today[i] as Ordered);
}

/** held/weight compared exactly (cross-multiplied integers), then today's order. */
function compareRanks(a: Rank, b: Rank): number {
  return a.held * b.weight - b.held * a.weight || a.today - b.today;
}

type CreatedKey = readonly [number, string];

/** Creation time, then name, as the queue orders backups created together (unknown times first). */
function createdKey(b: BackupInfo, times: Timestamps): CreatedKey {
  return [times.parse(b.creationTimestamp) || 0, b.name];
}

function before(a: CreatedKey, b: CreatedKey): boolean {
  return a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
}

/** Each class's in-flight backups, by creation. */
function inFlightByClass(inFlight: readonly BackupInfo[], policy: Policy, times: Timestamps): Map<string | undefined, CreatedKey[]> {
  const byClass = new Map<string | undefined, CreatedKey[]>();
  for (const b of inFlight) {
    const tenant = tenantOf(b, policy);
    const list = byClass.get(tenant) ?? [];
    list.push(createdKey(b, times));
    byClass.set(tenant, list);
  }
  for (const list of byClass.values()) list.sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0));
  return byClass;
}

/** How many of `sorted` were created before `key` (binary search). */
function countBefore(sorted: readonly CreatedKey[], key: CreatedKey): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (before(sorted[mid] as CreatedKey, key)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
