/**
 * Smoke test of a real Velero server (built from source by tools/build.sh)
 * against the harness control plane, with an in-memory S3 server and the probe
 * BackupItemAction recording every pod, PVC and PV a backup processes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import { clients, createBackup, createNamespace, createWorkload, getVelero, uniqueName, type Clients } from "../support/objects.js";
import { readProbeRecords } from "../support/overlap.js";
import { startVelero, waitForBackupDone, type Velero } from "../support/velero.js";

// Longer than every wait inside (backup waits are 180 s), so a stuck wait reports its own message.
const TEST_TIMEOUT_MS = 300_000;

describe("velero smoke", () => {
  let cp: ControlPlane;
  let velero: Velero;
  let c: Clients;

  beforeAll(async () => {
    cp = await startControlPlane({ name: "velero-smoke" });
    c = clients(cp.kubeConfig);
    velero = await startVelero(cp, { concurrentBackups: 1 });
  });
  afterAll(async () => {
    await velero?.stop();
    await cp?.stop();
  });

  it(
    "the BackupStorageLocation becomes Available",
    async () => {
      const bsl = await getVelero(c, "backupstoragelocations", velero.namespace, "default");
      expect(bsl.status?.phase).toBe("Available");
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "backs up a namespace with a pod, a PVC and its PV, and the probe records exactly those",
    async () => {
      const ns = uniqueName("smoke");
      await createNamespace(c, ns);
      const w = await createWorkload(c, ns);
      const name = uniqueName("smoke");
      await createBackup(c, velero.namespace, name, { includedNamespaces: [ns] });
      const done = await waitForBackupDone(velero, cp, name);
      // Completed with no errors and no warnings (observed on Velero 1.18.3): the
      // backup has no volume data to move. There is no VolumeSnapshotLocation, the
      // PV is hostPath, EnableCSI is off (the CSI PVC action is skipped), and the
      // pod is Pending and not opted into fs-backup (the server runs with
      // --default-volumes-to-fs-backup=false). So only manifests are written:
      // the namespace, pod, PVC and PV, 4 items.
      expect(done.status?.phase, JSON.stringify(done.status)).toBe("Completed");
      expect(done.status?.errors ?? 0).toBe(0);
      expect(done.status?.warnings ?? 0).toBe(0);
      expect(done.status?.progress).toEqual({ itemsBackedUp: 4, totalItems: 4 });

      const got = readProbeRecords(velero.probeDir)
        .filter((r) => r.backup === name)
        .map((r) => `${r.kind} ${r.namespace}/${r.name}`)
        .sort();
      expect(got).toEqual([`PersistentVolume /${w.pv}`, `PersistentVolumeClaim ${ns}/${w.pvc}`, `Pod ${ns}/${w.pod}`]);
    },
    TEST_TIMEOUT_MS,
  );
});
