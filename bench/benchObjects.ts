// What the scale benches (core.bench.ts, admissionFixture.ts) build alike: team namespaces, a
// CSI volume bound to its claim, and a backup in Velero's namespace created some minutes after T0.

import { createHash } from "node:crypto";
import type { BackupInfo, PvInfo } from "../src/core/model.js";

export const T0 = Date.parse("2026-01-01T00:00:00Z");
export const nsName = (i: number): string => `team-${String(i).padStart(4, "0")}`;

export function boundPv(namespace: string, claim: string, name: string): PvInfo {
  return {
    name,
    labels: {},
    annotations: {},
    capacity: "10Gi",
    storageClassName: "standard",
    claimRef: { namespace, name: claim },
    type: "csi",
    csi: { driver: "ebs.csi.aws.com", volumeAttributes: {} },
    deleting: false,
  };
}

export function benchBackup(name: string, spec: Record<string, unknown>, minute: number, phase: string, labels: Record<string, string> = {}): BackupInfo {
  return {
    namespace: "velero",
    name,
    uid: `uid-${name}`,
    resourceVersion: "1",
    labels,
    annotations: {},
    creationTimestamp: new Date(T0 + minute * 60_000).toISOString(),
    spec,
    specHash: createHash("sha256").update(JSON.stringify(spec)).digest("hex").slice(0, 16),
    phase,
  };
}
