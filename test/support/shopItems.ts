import type { PodInfo, PvcInfo, PvInfo } from "../../src/core/model.js";

/** Pod `db-k` in namespace shop, mounting claim `data-k`, bound to volume `pv-k` (as the view holds them). */
export function shopItems(k: number): { pod: PodInfo; pvc: PvcInfo; pv: PvInfo } {
  const claim = `data-${k}`;
  return {
    pv: {
      name: `pv-${k}`,
      labels: {},
      annotations: {},
      capacity: "1Gi",
      storageClassName: "standard",
      claimRef: { namespace: "shop", name: claim },
      type: "csi",
      csi: { driver: "d", volumeAttributes: {} },
      deleting: false,
    },
    pvc: { namespace: "shop", name: claim, labels: {}, annotations: {}, phase: "Bound", volumeName: `pv-${k}`, storageClassName: "standard", deleting: false },
    pod: {
      namespace: "shop",
      name: `db-${k}`,
      labels: {},
      annotations: {},
      phase: "Running",
      nodeName: "w",
      deleting: false,
      volumes: [{ name: "data", type: "persistentVolumeClaim", claimName: claim }],
    },
  };
}
