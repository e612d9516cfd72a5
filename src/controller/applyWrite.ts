import { CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from "@kubernetes/client-node";
import { makeKeepAliveClient } from "../kube/apiClient.js";
import type { BackupWrite } from "../core/decision/writes.js";

export type WriteResult = "ok" | "conflict" | "gone";

/**
 * Applies one planned write as a JSON merge patch that carries the resourceVersion it was
 * planned against: the API server refuses it (409) if the backup changed meanwhile, so a
 * write never lands on a state the plan did not see. The Backup CRD has no status
 * subresource, so status goes through the main resource, and Velero sees an update event.
 */
export function backupWriter(kc: KubeConfig, namespace: string) {
  const api = makeKeepAliveClient(kc, CustomObjectsApi);
  const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
  return async (w: BackupWrite): Promise<WriteResult> => {
    const body = {
      metadata: { resourceVersion: w.resourceVersion, ...(w.annotations ? { annotations: w.annotations } : {}) },
      ...(w.status ? { status: w.status } : {}),
    };
    try {
      await api.patchNamespacedCustomObject(
        { group: "velero.io", version: "v1", namespace, plural: "backups", name: w.backup, body, fieldManager: "backup-gate" },
        mergePatch,
      );
      return "ok";
    } catch (e) {
      const code = (e as { code?: number }).code;
      if (code === 409) return "conflict";
      if (code === 404) return "gone";
      throw e;
    }
  };
}
