import type { BackupInfo } from "../core/model.js";
import type { Policy } from "../core/policy.js";
import type { ClusterView } from "../core/view.js";

// The seams between the adapters of `backup-gate serve`. Each adapter owns one folder; they
// meet only through these interfaces, so each can be tested against the real API server alone.

/** The informer-fed picture of the cluster (src/cluster). */
export interface ClusterCache {
  /** The core's indexed view, kept current by the watches. */
  readonly view: ClusterView;
  /** Backups in Velero's namespace, as last observed. */
  backups(): readonly BackupInfo[];
  backup(name: string): BackupInfo | undefined;
  /** Those of `backups()` in an in-flight phase, kept as backups change (a review reads only these). */
  inFlight(): readonly BackupInfo[];
  /** Those of `backups()` labelled as runs of this Schedule. */
  runsOf(schedule: string): readonly BackupInfo[];
  /** True once every watch has listed; stays true across watch restarts. */
  synced(): boolean;
  /** Called after each applied change; `kind` says which source changed. */
  onChange(listener: (change: CacheChange) => void): () => void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface CacheChange {
  readonly kind: "Backup" | "Namespace" | "Pod" | "PersistentVolumeClaim" | "PersistentVolume" | "ConfigMap" | "Resync";
  readonly type: "ADDED" | "MODIFIED" | "DELETED" | "RELISTED";
  readonly namespace?: string;
  readonly name?: string;
}

/** The policy in effect (src/policy): the last good one, hot-reloaded. */
export interface PolicySource {
  current(): Policy;
  /** False while the ConfigMap's latest content is refused, or it is missing or deleted (the last good, or the fallback, policy stays). */
  valid(): boolean;
  onChange(listener: (policy: Policy) => void): () => void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Serving certificate material (src/tls), replaceable at run time. */
export interface TlsMaterial {
  readonly key: string;
  readonly cert: string;
  /** PEM of the CA the API server must trust (the caBundle). */
  readonly ca: string;
  readonly notAfter: Date;
}

export interface TlsSource {
  current(): TlsMaterial;
  onRotate(listener: (material: TlsMaterial) => void): () => void;
  start(): Promise<void>;
  stop(): Promise<void>;
}
