// The estate of bench/rss.bench.ts: pods and claims as a StatefulSet's look once scheduled,
// running and bound (50 per namespace, 10 apps). The same shapes feed the real API server
// (created, then their status written) and the synthetic list server (served whole).

import type { V1PersistentVolumeClaim, V1PersistentVolumeClaimStatus, V1Pod, V1PodStatus } from "@kubernetes/client-node";

export const PER_NAMESPACE = 50;

export const nsOf = (i: number): string => `team-${Math.floor(i / PER_NAMESPACE)}`;
const appOf = (i: number) => `app-${i % 10}`;
const STARTED = "2026-01-01T00:00:05Z";

/** Hex id unique to object `i`; the synthetic server's uids and the claims' volume names. */
export const idOf = (i: number, kind: "pod" | "pvc"): string => `0b6c${String(i).padStart(8, "0")}-1f2e-4d5c-9a8b-${kind === "pod" ? "00" : "11"}7c6d5e4f3a`;

export function pvcBody(i: number): V1PersistentVolumeClaim {
  const app = appOf(i);
  return {
    metadata: { name: `data-${app}-${i}`, labels: { app, "app.kubernetes.io/part-of": "shop" } },
    spec: {
      accessModes: ["ReadWriteOnce"],
      storageClassName: "standard",
      resources: { requests: { storage: "10Gi" } },
      volumeName: `pvc-${idOf(i, "pvc")}`,
      volumeMode: "Filesystem",
    },
  };
}

export function pvcStatus(): V1PersistentVolumeClaimStatus {
  return { phase: "Bound", accessModes: ["ReadWriteOnce"], capacity: { storage: "10Gi" } };
}

export function podBody(i: number): V1Pod {
  const app = appOf(i);
  return {
    metadata: {
      name: `${app}-${i}`,
      labels: { app, "app.kubernetes.io/part-of": "shop", "controller-revision-hash": `${app}-5d8f9c7b6`, "statefulset.kubernetes.io/pod-name": `${app}-${i}` },
      annotations: { "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z", "backup.velero.io/backup-volumes": "data" },
    },
    spec: {
      nodeName: `node-${i % 100}`,
      containers: [
        {
          name: "main",
          image: "registry.invalid/app:1",
          resources: { requests: { cpu: "100m", memory: "128Mi" } },
          volumeMounts: [
            { name: "data", mountPath: "/data" },
            { name: "ca", mountPath: "/etc/ca" },
          ],
        },
      ],
      volumes: [
        { name: "data", persistentVolumeClaim: { claimName: `data-${app}-${i}` } },
        {
          name: "ca",
          projected: {
            sources: [
              { configMap: { name: "kube-root-ca.crt" } },
              { downwardAPI: { items: [{ path: "namespace", fieldRef: { fieldPath: "metadata.namespace" } }] } },
            ],
          },
        },
      ],
    },
  };
}

/** What a kubelet reports for a running pod. */
export function podStatus(i: number): V1PodStatus {
  const podIP = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  const hostIP = `192.168.0.${i % 100}`;
  return {
    phase: "Running",
    podIP,
    podIPs: [{ ip: podIP }],
    hostIP,
    hostIPs: [{ ip: hostIP }],
    startTime: new Date(STARTED),
    conditions: ["Initialized", "Ready", "ContainersReady", "PodScheduled"].map((type) => ({ type, status: "True", lastTransitionTime: new Date(STARTED) })),
    containerStatuses: [
      {
        name: "main",
        ready: true,
        restartCount: 0,
        image: "registry.invalid/app:1",
        imageID: "registry.invalid/app@sha256:0123456789abcdef",
        containerID: `containerd://${idOf(i, "pod")}`,
        started: true,
        state: { running: { startedAt: new Date(STARTED) } },
      },
    ],
  };
}
