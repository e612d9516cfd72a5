import { createRequester, MERGE_PATCH, statusOf, type KubeAccess } from "../kube/http.js";
import type { BackupWrite } from "../core/decision/writes.js";

export type WriteResult = "ok" | "conflict" | "gone";

/**
 * Applies one planned write as a JSON merge patch that carries the resourceVersion it was
 * planned against: the API server refuses it (409) if the backup changed meanwhile, so a
 * write never lands on a state the plan did not see. The Backup CRD has no status
 * subresource, so status goes through the main resource, and Velero sees an update event.
 */
export function backupWriter(kc: KubeAccess, namespace: string) {
  const api = createRequester(kc);
  const backups = `/apis/velero.io/v1/namespaces/${encodeURIComponent(namespace)}/backups/`;
  return async (w: BackupWrite): Promise<WriteResult> => {
    const body = {
      metadata: { resourceVersion: w.resourceVersion, ...(w.annotations ? { annotations: w.annotations } : {}) },
      ...(w.status ? { status: w.status } : {}),
    };
    try {
      await api.send("PATCH", backups + encodeURIComponent(w.backup), { body, contentType: MERGE_PATCH, query: { fieldManager: "backup-gate" } });
      return "ok";
    } catch (e) {
      const code = statusOf(e);
      if (code === 409) return "conflict";
      if (code === 404) return "gone";
      throw e;
    }
  };
}
