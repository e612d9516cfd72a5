import picomatch from "picomatch";
import { z } from "zod";
import { windowSchema } from "./windowPolicy.js";

// The gate's policy: the `policy.yaml` key of its ConfigMap. Every key has a default, so an
// empty document is a valid policy and the admin writes only what differs.
export const policySchema = z.strictObject({
  conflictLevel: z.enum(["Namespace", "ItemBlock"]).default("ItemBlock"),
  maxConcurrentBackups: z.number().int().min(1).max(1000).default(4),
  veleroNamespace: z.string().min(1).default("velero"),
  /** Velero server defaults the backups inherit when their spec leaves the field unset. */
  defaultVolumesToFsBackup: z.boolean().default(false),
  snapshotMoveData: z.boolean().default(false),
  volumeGroupSnapshotLabelKey: z.string().min(1).default("velero.io/volume-group"),
  /** What a new run of a Schedule does while an earlier run is queued or in flight. */
  serialWorkloads: z.enum(["Allow", "Forbid", "Replace"]).default("Forbid"),
  /** Also treat backups with identical specs (not only runs of one Schedule) as one serial workload. */
  serialIdenticalScope: z.boolean().default(false),
  priorities: z
    .strictObject({
      /** Base priority of backups not made by a Schedule. */
      manual: z.number().int().default(10),
      /** Base priority of runs of a Schedule. */
      scheduled: z.number().int().default(0),
      /** Base priority per Schedule name, over `scheduled`. */
      schedules: z.record(z.string(), z.number().int()).default({}),
      /** Waiting this many seconds raises a queued backup's priority by one; 0 turns aging off. */
      agingSeconds: z.number().int().min(0).default(600),
    })
    .prefault({}),
  /** Resource kinds (plural.group) whose objects no two backups may hold at once, per namespace. */
  exclusiveResources: z.array(z.string().min(1)).default([]),
  /**
   * How the controller paces status.queuePosition writes. Velero rewrites every queued
   * backup's position on each dequeue. backup-gate writes a position when a backup is queued,
   * and then spends writesPerDequeue writes per promotion on the stalest positions (largest
   * relative error first, so the next backups are corrected first): a dequeue costs a bounded
   * number of writes however long the queue is.
   */
  positionUpdates: z
    .strictObject({
      writesPerDequeue: z.number().int().min(0).max(100).default(1),
    })
    .prefault({}),
  /** A ReadyToStart backup Velero has not picked up after this long gets a no-op update. */
  nudgeAfterSeconds: z.number().int().min(1).default(60),
  /** Tenants (OADP's non-admin users): absent, the queue is one queue as without tenants. */
  tenants: z
    .strictObject({
      /** A Backup label naming its tenant, read when OADP's origin-namespace annotation is absent. */
      label: z.string().min(1).optional(),
      /** Backups of one tenant in flight at once; unset: only maxConcurrentBackups bounds them. */
      maxInFlightPerTenant: z.number().int().min(1).max(1000).optional(),
      /** Each tenant's share of the slots, by name; tenants not named weigh defaultWeight. */
      weights: z.record(z.string(), z.number().int().min(1).max(1000)).default({}),
      defaultWeight: z.number().int().min(1).max(1000).default(1),
      /** The share of backups with no tenant (an administrator's, often cluster-wide). */
      untenantedWeight: z.number().int().min(1).max(1000).default(1),
      /** Also post each tenant-safe reason as an Event on the NonAdminBackup, in the tenant's namespace (needs RBAC there). */
      nonAdminEvents: z.boolean().default(false),
    })
    .optional(),
  /** Start windows (docs/rules.md, "Windows"): absent, a backup may start at any time. */
  windows: z.array(windowSchema).optional(),
  /** Budgets (docs/rules.md, "Budgets"): limits on backups in flight that do one kind of work; absent, none. */
  budgets: z
    .strictObject({
      /** The storage location of a backup whose spec.storageLocation is empty (Velero's default location). */
      defaultStorageLocation: z.string().min(1).default("default"),
      /** Backups in flight per storage location (spec.storageLocation). */
      backupsPerStorageLocation: budgetLimits().optional(),
      /** Backups in flight that snapshot a volume of the CSI driver. */
      snapshotsPerDriver: budgetLimits().optional(),
      /** Backups in flight that snapshot a volume of the storage class. */
      snapshotsPerStorageClass: budgetLimits().optional(),
      /** Backups in flight that copy a volume of a pod on the node with a file-system backup. */
      fsBackupsPerNode: budgetLimits().optional(),
    })
    .superRefine(refusePatterns)
    .optional(),
  /** Velero Restores (docs/rules.md, "Restores"). Absent: restores hold backups, and a conflicting Restore gets a warning. */
  restores: z
    .strictObject({
      /** A Restore created into what a backup in flight holds: admitted with a warning, or refused. */
      onConflict: z.enum(["Warn", "Deny"]).default("Warn"),
      /** Backups wait while a restore writes into what they would hold; false lets them start anyway. */
      holdBackups: z.boolean().default(true),
    })
    .optional(),
});

/**
 * One kind of budget: a limit for every name, or limits by name; a key may be a pattern
 * (`*`, `?`, `[...]`, `{a,b}`). Names no key matches have no budget.
 */
function budgetLimits() {
  // An integer check that does not abort, so that a bad limit in a map is reported at its key, not as the union's.
  const limit = z.number().min(1).max(1000).refine(Number.isInteger, { error: "expected an integer" });
  return z.union([limit, z.record(z.string().min(1), limit)], {
    error: "expected a limit (an integer from 1 to 1000) or a map of names or patterns to limits",
  });
}

/** A budget key the matcher (velero/glob.ts) could not compile would match nothing: refused here instead, naming it. */
function refusePatterns(budgets: Readonly<Record<string, unknown>>, ctx: z.RefinementCtx): void {
  for (const [kind, limits] of Object.entries(budgets)) {
    if (typeof limits !== "object" || limits === null) continue;
    for (const key of Object.keys(limits)) {
      try {
        picomatch(key, { strictBrackets: true });
      } catch (e) {
        ctx.addIssue({ code: "custom", path: [kind, key], message: `not a usable pattern: ${(e as Error).message}` });
      }
    }
  }
}

export type Policy = z.output<typeof policySchema>;

export const DEFAULT_POLICY: Policy = policySchema.parse({});

export type PolicyResult = { ok: true; policy: Policy } | { ok: false; error: string };

/** Validates a parsed policy document; the error names the first field at fault. */
export function parsePolicy(doc: unknown): PolicyResult {
  const result = policySchema.safeParse(doc ?? {});
  if (result.success) return { ok: true, policy: result.data };
  const issue = result.error.issues[0];
  const field = issue?.path.length ? issue.path.join(".") : "(document)";
  return { ok: false, error: `${field}: ${issue?.message ?? "invalid policy"}` };
}
