import type { BackupInfo } from "./model.js";
import type { Policy } from "./policy.js";
import { scopeOf, type BackupScope } from "./scope.js";
import type { ClusterView, NamespaceContents } from "./view.js";

// Scopes are the expensive part of a plan. A scope stays valid while the backup's spec, the
// namespace list, the contents of the namespaces it covers, the PVs (when it lists PVs
// directly) and its volume-policy ConfigMap stay as they were, so an event re-plans only the
// backups it touches.

interface Entry {
  readonly fingerprint: string;
  readonly namespacesVersion: number;
  readonly pvVersion: number;
  readonly contents: readonly (readonly [NamespaceContents, number])[];
  readonly scope: BackupScope;
}

export class ScopeCache {
  private readonly entries = new Map<string, Entry>();
  private policy?: Policy;
  private view?: ClusterView;
  hits = 0;
  misses = 0;

  scopeOf(backup: BackupInfo, view: ClusterView, policy: Policy): BackupScope {
    if (policy !== this.policy || view !== this.view) {
      this.entries.clear();
      this.policy = policy;
      this.view = view;
    }
    const id = backup.uid || `${backup.namespace}/${backup.name}`;
    const fingerprint = fingerprintOf(backup, view);
    const entry = this.entries.get(id);
    if (entry && entry.fingerprint === fingerprint && this.fresh(entry, view)) {
      this.hits++;
      return entry.scope;
    }
    this.misses++;
    const scope = scopeOf(backup, view, policy);
    this.entries.set(id, {
      fingerprint,
      namespacesVersion: view.namespacesVersion,
      pvVersion: view.pvVersion,
      contents: scope.namespaces.map((ns) => { const c = view.contents(ns); return [c, c.version] as const; }),
      scope,
    });
    return scope;
  }

  /** Forgets backups that are gone, so the cache does not outgrow the queue. */
  retain(ids: ReadonlySet<string>): void {
    for (const id of this.entries.keys()) if (!ids.has(id)) this.entries.delete(id);
  }

  private fresh(entry: Entry, view: ClusterView): boolean {
    if (entry.namespacesVersion !== view.namespacesVersion) return false;
    if (entry.pvVersion !== view.pvVersion && entry.scope.listsPvs) return false;
    return entry.contents.every(([c, v]) => c.version === v);
  }
}

function fingerprintOf(backup: BackupInfo, view: ClusterView): string {
  const policyRef = (backup.spec as { resourcePolicy?: { name?: unknown } } | null)?.resourcePolicy?.name;
  const cmVersion = typeof policyRef === "string" ? view.configMap(backup.namespace, policyRef)?.version ?? -1 : 0;
  return [
    backup.specHash ?? JSON.stringify(backup.spec ?? null),
    backup.annotations["backup-gate.io/conflict-level"] ?? "",
    backup.labels["velero.io/schedule-name"] ?? "",
    view.synced ? "synced" : "unsynced",
    cmVersion,
  ].join("\u0000");
}
