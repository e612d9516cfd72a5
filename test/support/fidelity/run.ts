import { loadSnapshot } from "../../../src/core/velero/objects.js";
import type { ClusterView } from "../../../src/core/view.js";
import type { Clients } from "../objects.js";
import { caseObjects, type FidelityCase, type Placement } from "./cases.js";

// A fidelity case's names and views: renamed to a run's prefix, the cluster read back as the
// gate reads it, or the case's objects read as a view without a cluster.

/** The case with its namespaces (and what names them) renamed from `case-` to `${prefix}-`. */
export function withPrefix(c: FidelityCase, prefix: string): FidelityCase {
  return JSON.parse(JSON.stringify(c).replaceAll("case-", `${prefix}-`)) as FidelityCase;
}

/** The cluster's namespaces, pods, claims, PVs and ConfigMaps as JSON objects (the typed client's, back to JSON). */
export async function readClusterItems(c: Clients): Promise<object[]> {
  const asJson = (kind: string, items: object[]) => items.map((i) => ({ ...(JSON.parse(JSON.stringify(i)) as object), kind }));
  const [namespaces, pods, pvcs, pvs, configMaps] = await Promise.all([
    c.core.listNamespace(),
    c.core.listPodForAllNamespaces(),
    c.core.listPersistentVolumeClaimForAllNamespaces(),
    c.core.listPersistentVolume(),
    c.core.listConfigMapForAllNamespaces(),
  ]);
  return [
    ...asJson("Namespace", namespaces.items),
    ...asJson("Pod", pods.items),
    ...asJson("PersistentVolumeClaim", pvcs.items),
    ...asJson("PersistentVolume", pvs.items),
    ...asJson("ConfigMap", configMaps.items),
  ];
}

/** Objects read as the gate's informers would trim them. */
export function viewOfItems(items: readonly object[]): ClusterView {
  const loaded = loadSnapshot({ kind: "List", items: [...items] });
  if (!loaded.ok) throw new Error(`the cluster could not be read as the gate reads it: ${loaded.error}`);
  return loaded.snapshot.view;
}

/** The cluster as the gate's informers would trim it. */
export async function readView(c: Clients): Promise<ClusterView> {
  return viewOfItems(await readClusterItems(c));
}

/** A case's estate read as a view directly (its claims bound as applyCase binds them), without a cluster. */
export function viewOfCase(fc: FidelityCase, at: Placement): ClusterView {
  const o = caseObjects(fc, at);
  const bound = (pvc: object) => ((pvc as { spec: { volumeName?: string } }).spec.volumeName ? { ...pvc, status: { phase: "Bound" } } : pvc);
  const loaded = loadSnapshot({ kind: "List", items: [...o.namespaces, ...o.pvs, ...o.pvcs.map(bound), ...o.pods, ...o.configMaps] });
  if (!loaded.ok) throw new Error(`the case's objects do not load: ${loaded.error}`);
  return loaded.snapshot.view;
}
