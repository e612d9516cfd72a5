import { createRequester, ApiStatusError, type Requester } from "../kube/http.js";
import { loadSnapshot, type LoadedSnapshot } from "../core/velero/objects.js";
import { DEFAULT_POLICY, type Policy } from "../core/policy.js";
import { describeRefusal, FALLBACK_POLICY, readPolicyData } from "../policy/document.js";
import { loadKubeConfig, type KubeTarget } from "./kubeconfig.js";
import { UsageError } from "./readInput.js";

// The cluster as the user's kubeconfig sees it, read once: what `queue` and `explain` plan on.

export interface LiveOptions extends KubeTarget {
  readonly gateNamespace: string;
  readonly progress?: (line: string) => void;
}

export interface Live {
  readonly snapshot: LoadedSnapshot;
  readonly policy: Policy;
  readonly policyNote?: string;
}

const SOURCES = [
  ["Namespace", "/api/v1/namespaces"],
  ["Pod", "/api/v1/pods"],
  ["PersistentVolumeClaim", "/api/v1/persistentvolumeclaims"],
  ["PersistentVolume", "/api/v1/persistentvolumes"],
] as const;

export async function readLive(o: LiveOptions): Promise<Live> {
  const kc = await loadKubeConfig(o);
  const api = createRequester(kc, 30_000);
  const { policy, note } = await readPolicy(api, o.gateNamespace);
  const items = await listCluster(api, policy.veleroNamespace, o.progress);
  const loaded = loadSnapshot({ kind: "List", items });
  if (!loaded.ok) throw new UsageError(`the cluster holds an object backup-gate cannot read: ${loaded.error}`);
  return { snapshot: loaded.snapshot, policy, ...(note ? { policyNote: note } : {}) };
}

/**
 * What `kubectl get namespaces,pods,pvc,pv,configmaps,backups.velero.io,restores.velero.io -A -o yaml`
 * would give the core: the items of a List, each with its kind (ConfigMaps, Backups and Restores
 * of Velero's namespace: a writing Restore holds backups).
 */
export async function listCluster(api: Requester, veleroNamespace: string, progress?: (line: string) => void): Promise<object[]> {
  const items: object[] = [];
  const sources: readonly (readonly [string, string])[] = [
    ...SOURCES,
    ["ConfigMap", `/api/v1/namespaces/${veleroNamespace}/configmaps`],
    ["Backup", `/apis/velero.io/v1/namespaces/${veleroNamespace}/backups`],
    ["Restore", `/apis/velero.io/v1/namespaces/${veleroNamespace}/restores`],
  ];
  for (const [kind, path] of sources) {
    progress?.(`reading ${kind}s...`);
    for (const item of await listAll(api, path, (n) => progress?.(`reading ${kind}s... ${n}`))) items.push({ kind, ...(item as object) });
  }
  return items;
}

async function listAll(api: Requester, path: string, pageRead?: (itemsSoFar: number) => void): Promise<unknown[]> {
  const out: unknown[] = [];
  let cont: string | undefined;
  do {
    let page: { items?: unknown[]; metadata?: { continue?: string } };
    try {
      page = (await api.getJson(path, { limit: 500, continue: cont })) as typeof page;
    } catch (e) {
      throw new UsageError(`cannot list ${path}: ${e instanceof ApiStatusError ? `${e.statusCode} ${e.message}` : (e as Error).message}`);
    }
    out.push(...(page.items ?? []));
    pageRead?.(out.length);
    cont = page.metadata?.continue || undefined;
  } while (cont);
  return out;
}

export async function readPolicy(api: Requester, namespace: string): Promise<{ policy: Policy; note?: string }> {
  try {
    const cm = (await api.getJson(`/api/v1/namespaces/${namespace}/configmaps/backup-gate-policy`, {})) as { data?: Record<string, string> };
    const read = readPolicyData(cm.data, "policy.yaml");
    return read.ok
      ? { policy: read.policy }
      : {
          policy: DEFAULT_POLICY,
          note: `the policy ConfigMap is invalid (${describeRefusal(read)}); planning with the defaults, while the gate keeps its last good policy`,
        };
  } catch (e) {
    if (e instanceof ApiStatusError && e.statusCode === 404) {
      return {
        policy: FALLBACK_POLICY,
        note: `no policy ConfigMap ${namespace}/backup-gate-policy; planning with the fallback policy a gate started without one runs (Namespace level, one backup at a time; a gate that saw it deleted keeps its last good policy)`,
      };
    }
    throw new UsageError(`cannot read the policy ConfigMap ${namespace}/backup-gate-policy: ${(e as Error).message}`);
  }
}
