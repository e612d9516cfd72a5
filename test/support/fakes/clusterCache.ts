import { BackupIndex } from "../../../src/core/backupIndex.js";
import { trim } from "../../../src/core/velero/objects.js";
import { ClusterView } from "../../../src/core/view.js";
import type { BackupInfo } from "../../../src/core/model.js";
import type { CacheChange, ClusterCache } from "../../../src/cluster/cache.js";

// A ClusterCache the test feeds by hand: a ClusterView and a list of backups (unit tests and
// benchmarks). It keeps the seam's contract (change listeners, synced), so the webhook server
// cannot tell it from the informer-fed cache.

export class FakeClusterCache implements ClusterCache {
  private readonly index = new BackupIndex();
  private readonly byName = new Map<string, BackupInfo>();
  private readonly listeners = new Set<(c: CacheChange) => void>();
  private isSynced: boolean;

  constructor(
    readonly view: ClusterView = new ClusterView(),
    backups: readonly BackupInfo[] = [],
    synced = true,
  ) {
    for (const b of backups) {
      this.index.set(b);
      this.byName.set(b.name, b);
    }
    this.isSynced = synced;
  }

  backups(): readonly BackupInfo[] {
    return this.index.all();
  }
  /** By name (the gate's backups all live in Velero's namespace; the last one set wins). */
  backup(name: string): BackupInfo | undefined {
    return this.byName.get(name);
  }
  inFlight(): readonly BackupInfo[] {
    return this.index.inFlight();
  }
  runsOf(schedule: string): readonly BackupInfo[] {
    return this.index.runsOf(schedule);
  }
  synced(): boolean {
    return this.isSynced;
  }
  setSynced(v: boolean): void {
    this.isSynced = v;
    this.emit({ kind: "Resync", type: "RELISTED" });
  }
  onChange(listener: (change: CacheChange) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }
  async start(): Promise<void> {}
  async stop(): Promise<void> {}

  /** Adds or replaces a backup (a trimmed BackupInfo, or a raw velero.io/v1 Backup). */
  setBackup(backup: unknown): BackupInfo {
    const b = isInfo(backup) ? backup : trimOrThrow(backup);
    const existed = this.index.set(b);
    this.byName.set(b.name, b);
    this.emit({ kind: "Backup", type: existed ? "MODIFIED" : "ADDED", namespace: b.namespace, name: b.name });
    return b;
  }
  deleteBackup(namespace: string, name: string): void {
    if (this.index.delete(namespace, name)) {
      if (this.byName.get(name)?.namespace === namespace) this.byName.delete(name);
      this.emit({ kind: "Backup", type: "DELETED", namespace, name });
    }
  }
  /** Tells listeners the view changed (after the owner mutated `view`). */
  viewChanged(kind: CacheChange["kind"] = "Pod"): void {
    this.emit({ kind, type: "MODIFIED" });
  }

  private emit(c: CacheChange): void {
    for (const l of this.listeners) l(c);
  }
}

function isInfo(x: unknown): x is BackupInfo {
  return typeof x === "object" && x !== null && "phase" in x && "creationTimestamp" in x && !("metadata" in x);
}

function trimOrThrow(raw: unknown): BackupInfo {
  const r = trim("Backup", raw);
  if (!r.ok) throw r.error;
  return r.value;
}
