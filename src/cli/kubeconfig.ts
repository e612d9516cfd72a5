import { KubeConfigError, loadKubeAccess, type KubeTarget } from "../kube/config.js";
import type { KubeAccess } from "../kube/http.js";
import { UsageError } from "./readInput.js";

export type { KubeTarget };

/**
 * The kubeconfig as kubectl would load it (`--kubeconfig`, else $KUBECONFIG, else
 * ~/.kube/config, else in-cluster), switched to `--context` when one is given.
 */
export async function loadKubeConfig(t: KubeTarget): Promise<KubeAccess> {
  try {
    return await loadKubeAccess(t);
  } catch (e) {
    if (e instanceof KubeConfigError) throw new UsageError(e.message);
    throw e;
  }
}
