// The cluster as the decision core sees it: Kubernetes objects trimmed to the fields that
// decide a backup's scope, its units and its claims. Adapters (informers, snapshot files)
// build these; the core never sees a raw API object except a Backup's spec.

export type Labels = Readonly<Record<string, string>>;

export interface NamespaceInfo {
  readonly name: string;
  readonly labels: Labels;
  readonly annotations: Labels;
  readonly terminating: boolean;
}

/** The source of a pod volume, reduced to what Velero's volume rules look at. */
export interface PodVolume {
  readonly name: string;
  /** The volume source key as in the pod spec: persistentVolumeClaim, emptyDir, hostPath, nfs, csi, ... */
  readonly type: string;
  readonly claimName?: string;
  readonly nfs?: { readonly server: string; readonly path: string };
  readonly csi?: { readonly driver: string; readonly volumeAttributes: Labels };
}

export interface PodInfo {
  readonly namespace: string;
  readonly name: string;
  readonly labels: Labels;
  readonly annotations: Labels;
  readonly phase: string;
  /** spec.nodeName; Velero treats an unscheduled pod as not running. */
  readonly nodeName?: string;
  readonly deleting: boolean;
  readonly volumes: readonly PodVolume[];
}

export interface PvcInfo {
  readonly namespace: string;
  readonly name: string;
  readonly labels: Labels;
  readonly annotations: Labels;
  /** status.phase: Pending | Bound | Lost */
  readonly phase: string;
  readonly volumeName?: string;
  readonly storageClassName?: string;
  readonly deleting: boolean;
}

export interface PvInfo {
  readonly name: string;
  readonly labels: Labels;
  readonly annotations: Labels;
  /** spec.capacity.storage as a Kubernetes quantity string. */
  readonly capacity?: string;
  readonly storageClassName?: string;
  readonly claimRef?: { readonly namespace: string; readonly name: string };
  /** The volume source key in the PV spec: csi, nfs, hostPath, awsElasticBlockStore, local, ... */
  readonly type: string;
  readonly nfs?: { readonly server: string; readonly path: string };
  readonly csi?: { readonly driver: string; readonly volumeAttributes: Labels };
  readonly deleting: boolean;
}

export interface ConfigMapInfo {
  readonly namespace: string;
  readonly name: string;
  readonly data: Labels;
}

export const PHASES = [
  "",
  "New",
  "Queued",
  "ReadyToStart",
  "InProgress",
  "WaitingForPluginOperations",
  "WaitingForPluginOperationsPartiallyFailed",
  "Finalizing",
  "FinalizingPartiallyFailed",
  "Completed",
  "PartiallyFailed",
  "Failed",
  "FailedValidation",
  "Deleting",
] as const;
export type Phase = (typeof PHASES)[number];

export const QUEUED_PHASES: ReadonlySet<string> = new Set(["", "New", "Queued"]);
export const IN_FLIGHT_PHASES: ReadonlySet<string> = new Set(["ReadyToStart", "InProgress"]);

/** A velero.io/v1 Backup as the core needs it. `spec` stays raw: parsing it is a rule of its own. */
export interface BackupInfo {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly resourceVersion: string;
  readonly labels: Labels;
  readonly annotations: Labels;
  /** RFC 3339; empty for a backup not yet created (an admission request). */
  readonly creationTimestamp: string;
  readonly spec: unknown;
  /** A stable digest of `spec`, when the adapter has one; saves re-serializing it per plan. */
  readonly specHash?: string;
  readonly phase: string;
  readonly queuePosition?: number;
  /** status.completionTimestamp (RFC 3339): when Velero finished running it; its tenant's last turn (tenants.ts). */
  readonly completionTimestamp?: string;
}

/**
 * A velero.io/v1 Restore as the core needs it: where it writes, and whether it is writing now.
 * The spec is read by `readRestoreSpec` (velero/restoreSpec.ts); when it cannot be read,
 * `specError` says why and the restore is taken to write into every namespace.
 */
export interface RestoreInfo {
  readonly namespace: string;
  readonly name: string;
  readonly phase: string;
  /** spec.backupName (empty when the restore names only a schedule Velero has not resolved yet). */
  readonly backupName: string;
  readonly includedNamespaces: readonly string[];
  readonly excludedNamespaces: readonly string[];
  /** spec.namespaceMapping: source namespace -> the namespace it is restored into. */
  readonly namespaceMapping: Labels;
  readonly specError?: string;
}

/**
 * Restore phases in which Velero writes into the cluster (Velero 1.18, docs/rules.md "Restores"):
 * InProgress creates the items and starts file-system restores; WaitingForPluginOperations* runs
 * the async item operations (data-mover DataDownloads fill the restored volumes); Finalizing*
 * patches the restored PVs and waits for the restore exec hooks in the restored pods.
 */
export const RESTORE_WRITING_PHASES: ReadonlySet<string> = new Set([
  "InProgress",
  "WaitingForPluginOperations",
  "WaitingForPluginOperationsPartiallyFailed",
  "Finalizing",
  "FinalizingPartiallyFailed",
]);

/** Annotation and label keys backup-gate and Velero agree on. */
export const KEYS = {
  excludeFromBackup: "velero.io/exclude-from-backup",
  scheduleName: "velero.io/schedule-name",
  conflictLevel: "backup-gate.io/conflict-level",
  /** "gate" when backup-gate wrote conflict-level itself (a report, not a request). */
  conflictLevelSource: "backup-gate.io/conflict-level-source",
  waitingFor: "backup-gate.io/waiting-for",
  reason: "backup-gate.io/reason",
  promotedBy: "backup-gate.io/promoted-by",
  priority: "backup-gate.io/priority",
  fsBackupVolumes: "backup.velero.io/backup-volumes",
  fsBackupExcludes: "backup.velero.io/backup-volumes-excludes",
} as const;

export type ConflictLevel = "Namespace" | "ItemBlock";

/**
 * `backup-gate.io/conflict-level` is both a request (a person sets `Namespace` to have a backup
 * judged at namespace level) and a report (the gate writes the level it judged at). The gate
 * marks its own writes, so a level it reported is never mistaken for a request.
 */
export function requestsNamespaceLevel(annotations: Labels): boolean {
  return annotations[KEYS.conflictLevel] === "Namespace" && annotations[KEYS.conflictLevelSource] !== "gate";
}

/** The annotations that report `level` on a backup, leaving a person's request untouched. */
export function levelAnnotations(annotations: Labels, level: ConflictLevel): Record<string, string> {
  return requestsNamespaceLevel(annotations) ? {} : { [KEYS.conflictLevel]: level, [KEYS.conflictLevelSource]: "gate" };
}
