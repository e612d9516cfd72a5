import type { Conflict } from "../conflict/conflicts.js";
import { describeConflict } from "../conflict/conflicts.js";
import type { BackupScope } from "../scope/scope.js";

// The words a person reads, shared by the plan and the admission verdicts.

function levelNote(scope: BackupScope): string {
  return scope.levelReason ? ` (judged at Namespace level: ${scope.levelReason})` : "";
}

export function startReason(scope: BackupScope, inUse: number, limit: number): string {
  return `conflicts with nothing in flight or ahead of it; ${inUse} of ${limit} slots in use${levelNote(scope)}`;
}

export function waitReason(scope: BackupScope, conflicts: readonly Conflict[], more: boolean, limit: number): string {
  return (
    (conflicts.length > 0
      ? conflicts.map((c) => `waits behind ${c.with} (${c.withPhase || "New"}): ${describeConflict(c)}`).join("; ") +
        (more ? "; and behind more backups" : "")
      : `waits for a free slot: ${limit} of ${limit} backups in flight`) + levelNote(scope)
  );
}

/** Why two in-flight backups overlap. */
export function overlapReason(c: Conflict, name: string): string {
  return `${c.with} and ${name} are in flight together: ${describeConflict(c)}`;
}

/** Why a backup waits for its tenant's limit (tenants.maxInFlightPerTenant), for administrators. */
export function tenantLimitReason(tenant: string, held: TenantHold): string {
  return `waits for its tenant's limit: tenant ${tenant} has ${held.inFlight} of ${held.limit} backups in flight (tenants.maxInFlightPerTenant)`;
}

export interface TenantHold {
  readonly inFlight: number;
  readonly limit: number;
}

/** What a tenant may read of a wait: counts per reason class (docs/rules.md, "Tenant-safe visibility"). */
export interface TenantWait {
  /** Backups it waits behind of its own class (its tenant's, or for an untenanted backup, other untenanted ones). */
  readonly own: number;
  /** Backups of another class it waits behind that span several namespaces. */
  readonly clusterWide: number;
  /** Other backups of another class it waits behind. */
  readonly others: number;
  readonly more: boolean;
  readonly held?: TenantHold;
  /** Queued backups ahead of it. */
  readonly ahead: number;
  readonly namespaceLevel: boolean;
}

const counted = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;

/**
 * Why a backup waits, in words a tenant may read: reason classes and counts, never another
 * backup's or namespace's name (the text is built from numbers alone).
 */
export function tenantWaitReason(w: TenantWait): string {
  const behind: string[] = [];
  if (w.own > 0) behind.push(`waits behind ${counted(w.own, "backup")} of its own tenant`);
  if (w.clusterWide > 0)
    behind.push(w.clusterWide === 1 ? "waits behind a cluster-wide backup" : `waits behind ${w.clusterWide} cluster-wide backups`);
  if (w.others > 0) behind.push(`waits behind ${counted(w.others, "other backup")} of its namespaces`);
  const level = w.namespaceLevel ? " (judged at Namespace level)" : "";
  if (behind.length > 0) return behind.join("; ") + (w.more ? "; and behind more backups" : "") + level;
  if (w.held) return `waits for its tenant's limit: ${w.held.inFlight} of ${w.held.limit} backups in flight${level}`;
  return `waits for a free slot: ${counted(w.ahead, "backup")} ahead${level}`;
}

/** A supersession in words a tenant may read (the newer run is not named). */
export const TENANT_SUPERSEDED = "superseded by a newer run of its schedule (serialWorkloads: Replace)";

/** Why a backup waits for a restore (docs/rules.md, "Restores"), for administrators. */
export function restoreWaitReason(restore: string, namespace: string): string {
  return `waits for restore ${restore} writing into namespace ${namespace}`;
}

/** The same, in words a tenant may read: no restore or namespace named. */
export function tenantRestoreWaitReason(namespaceLevel: boolean): string {
  return `waits for a restore into its namespaces${namespaceLevel ? " (judged at Namespace level)" : ""}`;
}

/** The admission warning on a Restore created into what a backup in flight holds. */
export function restoreAdmissionWarning(restore: string, backup: string, namespace: string): string {
  return `restore ${restore} writes into namespace ${namespace}, which backup ${backup} in flight is freezing or copying: the backup may capture a half-restored state`;
}
