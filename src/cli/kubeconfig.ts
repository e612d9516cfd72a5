import { KubeConfig } from "@kubernetes/client-node";
import { UsageError } from "./readInput.js";

/** Where the user's cluster is: kubectl's `--kubeconfig` and `--context`. */
export interface KubeTarget {
  readonly kubeconfig?: string;
  readonly context?: string;
}

/**
 * The kubeconfig as kubectl would load it (`--kubeconfig`, else $KUBECONFIG, else
 * ~/.kube/config, else in-cluster), switched to `--context` when one is given.
 */
export function loadKubeConfig(t: KubeTarget): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (t.kubeconfig) kc.loadFromFile(t.kubeconfig);
    else kc.loadFromDefault();
  } catch (e) {
    throw new UsageError(`cannot load the kubeconfig: ${(e as Error).message.split("\n")[0]}`);
  }
  if (t.context !== undefined) {
    if (!kc.getContextObject(t.context)) {
      const known = kc.getContexts().map((c) => c.name);
      throw new UsageError(`context "${t.context}" is not in the kubeconfig (it has: ${known.join(", ") || "none"})`);
    }
    kc.setCurrentContext(t.context);
  }
  return kc;
}
