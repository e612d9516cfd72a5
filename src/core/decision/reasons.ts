import type { Conflict } from "../conflict/conflicts.js";
import { describeConflict } from "../conflict/conflicts.js";
import type { BackupScope } from "../scope/scope.js";
import type { BudgetHold, BudgetKind } from "./budgets.js";
import type { RestoreHold } from "./restores.js";

// The words a person reads, shared by the plan and the admission verdicts.

function levelNote(scope: BackupScope): string {
  return scope.levelReason ? ` (judged at Namespace level: ${scope.levelReason})` : "";
}

export function startReason(scope: BackupScope, inUse: number, limit: number): string {
  return `conflicts with nothing in flight or ahead of it; ${inUse} of ${limit} slots in use${levelNote(scope)}`;
}

export function waitReason(
  scope: BackupScope,
  conflicts: readonly Conflict[],
  more: boolean,
  limit: number,
  describe: (c: Conflict) => string = describeConflict,
): string {
  return (
    (conflicts.length > 0
      ? conflicts.map((c) => `waits behind ${c.with} (${c.withPhase || "New"}): ${describe(c)}`).join("; ") +
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
  return `waits for its tenant's limit: tenant ${tenant} has ${held.inFlight} of ${held.limit} backups in flight${keptNote(held.kept)} (tenants.maxInFlightPerTenant)`;
}

export interface TenantHold {
  readonly inFlight: number;
  readonly limit: number;
  /** Units of the limit kept for the tenant's budget-held backups ahead (docs/rules.md, "Budgets"). */
  readonly kept?: number;
}

const keptNote = (kept: number | undefined) => (kept ? `, ${kept} kept for ${kept === 1 ? "a backup" : "backups"} ahead` : "");

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
  /** Set when a budget holds it. */
  readonly budget?: BudgetHold;
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
  if (w.held)
    return `waits for its tenant's limit: ${w.held.inFlight} of ${w.held.limit} backups in flight${keptNote(w.held.kept)}${level}`;
  if (w.budget) return tenantBudgetReason(w.budget) + level;
  return `waits for a free slot: ${counted(w.ahead, "backup")} ahead${level}`;
}

/** A supersession in words a tenant may read (the newer run is not named). */
export const TENANT_SUPERSEDED = "superseded by a newer run of its schedule (serialWorkloads: Replace)";

/** What a backup outside its start window waits for (docs/rules.md, "Windows"). */
export interface WindowWait {
  /** The window's name, or windows[i]. */
  readonly window: string;
  /** Local "HH:MM-HH:MM" of its next opening and the closing after ("never" when it never opens). */
  readonly span: string;
  readonly zone: string;
  /** When it next opens (ms; Infinity: never), and that instant in local words. */
  readonly opens: number;
  readonly opensLocal: string;
  readonly maxWait?: { readonly seconds: number; readonly deadline: number; readonly onMaxWait: "Start" | "Fail" };
}

/** The words administrators and tenants share: the span and zone alone, no backup named. */
export function windowWaitText(w: WindowWait): string {
  return `waits for its window ${w.span} (${w.zone})`;
}

/** Why a backup waits for its window, for administrators. */
export function windowWaitReason(w: WindowWait): string {
  const opens = w.opens < Infinity ? `opens ${w.opensLocal}` : "never opens under the policy";
  const max = w.maxWait
    ? `; after ${w.maxWait.seconds}s of waiting it is ${w.maxWait.onMaxWait === "Start" ? "started anyway" : "failed"}`
    : "";
  return `${windowWaitText(w)}: ${w.window} ${opens}${max}`;
}

/** Appended to the start reason of a backup started outside its window (onMaxWait: Start). */
export function windowStartedAnywayNote(w: WindowWait): string {
  return `; outside its window ${w.span} (${w.zone}), started anyway after waiting ${w.maxWait?.seconds ?? 0}s (${w.window}: onMaxWait Start)`;
}

/** Why a backup is failed for missing its window (onMaxWait: Fail), for administrators. */
export function windowFailedReason(w: WindowWait): string {
  return `${windowFailedTenantReason(w)} (${w.window}: onMaxWait Fail)`;
}

/** The same in words its tenant may read. */
export function windowFailedTenantReason(w: WindowWait): string {
  return `waited past ${w.maxWait?.seconds ?? 0}s (maxWaitSeconds) outside its window ${w.span} (${w.zone}): not started`;
}

const BUDGET_WORK: Readonly<Record<BudgetKind, string>> = {
  backupsPerStorageLocation: "backups to storage location",
  snapshotsPerDriver: "snapshots on driver",
  snapshotsPerStorageClass: "snapshots of storage class",
  fsBackupsPerNode: "file-system backups on node",
};

function budgetWait(h: BudgetHold): string {
  return `waits for budget ${BUDGET_WORK[h.kind]} ${h.name}: ${h.inFlight} of ${h.limit} backups in flight${keptNote(h.kept)}`;
}

/** Why a backup waits for a budget (docs/rules.md, "Budgets"), for administrators: the budget and its policy key. */
export function budgetReason(h: BudgetHold): string {
  return `${budgetWait(h)} (budgets.${h.kind})`;
}

/**
 * The same in words a tenant may read: the budget's name comes from the tenant's own backup (its
 * storage location, its volumes' driver or storage class, its pods' node); counts, no backup named.
 */
export function tenantBudgetReason(h: BudgetHold): string {
  return budgetWait(h);
}

/** A start in words a tenant may read (the slots in use are not the tenant's to know by name, nor its level note). */
export const TENANT_STARTED = "conflicts with nothing in flight or ahead of it, and a slot is free";

/** A take-back in words a tenant may read (the backup it overlaps is not named). */
export const TENANT_TAKEN_BACK = "taken back to the queue: it overlaps another backup in flight";

/** Why a backup waits for a restore (docs/rules.md, "Restores"), for administrators. */
export function restoreWaitReason(h: RestoreHold): string {
  return h.next
    ? `waits for restore ${h.restore}, next in Velero's restore queue, which will write into namespace ${h.namespace}`
    : `waits for restore ${h.restore} writing into namespace ${h.namespace}`;
}

/** What a restore does to a namespace, as a refusal says it. */
export function restoreActivity(h: RestoreHold): string {
  return h.next
    ? `restore ${h.restore} will write into namespace ${h.namespace} next (New, queued behind a restore in progress)`
    : `restore ${h.restore} is writing into namespace ${h.namespace}`;
}

/** The same, in words a tenant may read: no restore or namespace named. */
export function tenantRestoreWaitReason(namespaceLevel: boolean): string {
  return `waits for a restore into its namespaces${namespaceLevel ? " (judged at Namespace level)" : ""}`;
}

/** The admission warning on a Restore created into what a backup in flight holds. */
export function restoreAdmissionWarning(restore: string, backup: string, namespace: string): string {
  return `restore ${restore} writes into namespace ${namespace}, which backup ${backup} in flight is freezing or copying: the backup may capture a half-restored state`;
}
