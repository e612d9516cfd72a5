/**
 * Positive control for the overlap checker, on a real Velero:
 * - with Velero's queue disabled and --concurrent-backups 2, two backups of the
 *   same namespace forced into ReadyToStart together run at once, and the
 *   checker must report their overlap;
 * - the same two backups under Velero's built-in queue (enabled) are
 *   serialized (namespace conflict), and the checker must report nothing.
 * The probe holds each item for PROBE_SLEEP so that backups last long enough
 * to overlap if nothing keeps them apart.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import { clients, createBackup, createNamespace, createWorkload, getBackup, uniqueName, type Clients } from "../support/objects.js";
import { describeOverlaps, findOverlaps, readProbeRecords } from "../support/overlap.js";
import { createReadyToStart, kickBackups, startVelero, waitForBackupDone, type Velero } from "../support/velero.js";
import { expectStays } from "../support/wait.js";

const PROBE_SLEEP = "2s";

function itemsOf(probeDir: string, backup: string): string[] {
  return readProbeRecords(probeDir)
    .filter((r) => r.backup === backup)
    .map((r) => `${r.kind} ${r.namespace}/${r.name}`)
    .sort();
}

// Longer than every wait inside (backup waits are 180 s), so a stuck wait reports its own message.
const TEST_TIMEOUT_MS = 300_000;

describe("positive control: Velero queue disabled, concurrent-backups 2", () => {
  let cp: ControlPlane;
  let velero: Velero;
  let c: Clients;

  beforeAll(async () => {
    cp = await startControlPlane({ name: "overlap-noqueue" });
    c = clients(cp.kubeConfig);
    velero = await startVelero(cp, { concurrentBackups: 2, disableQueue: true, probeSleep: PROBE_SLEEP });
  });
  afterAll(async () => {
    await velero?.stop();
    await cp?.stop();
  });

  it(
    "two same-namespace backups forced to ReadyToStart overlap, and the checker says so",
    async () => {
      const ns = uniqueName("shop");
      await createNamespace(c, ns);
      await createWorkload(c, ns);
      const [a, b] = [uniqueName("force-a"), uniqueName("force-b")];
      const idle = uniqueName("idle");
      await createBackup(c, velero.namespace, idle, { includedNamespaces: [ns] });
      await createReadyToStart(cp, velero, [a, b], { includedNamespaces: [ns] });
      // Facts the design rests on: with the queue disabled nothing moves a New
      // backup, and Velero's backup controller ignores create events.
      await expectStays(
        "the queue-less backup to stay New and the created-ReadyToStart ones to stay put",
        async () => {
          const phases = await Promise.all([idle, a, b].map(async (n) => (await getBackup(c, velero.namespace, n)).status?.phase));
          return phases[0] === undefined && phases[1] === "ReadyToStart" && phases[2] === "ReadyToStart" && readProbeRecords(velero.probeDir).length === 0;
        },
        5_000,
      );
      await kickBackups(cp, velero, [a, b]);
      const [da, db] = await Promise.all([waitForBackupDone(velero, cp, a), waitForBackupDone(velero, cp, b)]);
      expect([da.status?.phase, db.status?.phase]).toEqual(["Completed", "Completed"]);
      expect(itemsOf(velero.probeDir, a)).toHaveLength(3);
      expect(itemsOf(velero.probeDir, b)).toEqual(itemsOf(velero.probeDir, a));

      const overlaps = findOverlaps(readProbeRecords(velero.probeDir));
      expect(overlaps.length, describeOverlaps(overlaps)).toBeGreaterThan(0);
      for (const o of overlaps) expect(new Set([o.a.backup, o.b.backup])).toEqual(new Set([a, b]));
    },
    TEST_TIMEOUT_MS,
  );
});

describe("negative control: Velero's built-in queue, concurrent-backups 2", () => {
  let cp: ControlPlane;
  let velero: Velero;
  let c: Clients;

  beforeAll(async () => {
    cp = await startControlPlane({ name: "overlap-queue" });
    c = clients(cp.kubeConfig);
    velero = await startVelero(cp, { concurrentBackups: 2, disableQueue: false, probeSleep: PROBE_SLEEP });
  });
  afterAll(async () => {
    await velero?.stop();
    await cp?.stop();
  });

  it(
    "the same two backups are serialized by Velero's queue: no overlap",
    async () => {
      const ns = uniqueName("shop");
      await createNamespace(c, ns);
      await createWorkload(c, ns);
      const [a, b] = [uniqueName("queued-a"), uniqueName("queued-b")];
      await createBackup(c, velero.namespace, a, { includedNamespaces: [ns] });
      await createBackup(c, velero.namespace, b, { includedNamespaces: [ns] });
      const [da, db] = await Promise.all([waitForBackupDone(velero, cp, a), waitForBackupDone(velero, cp, b)]);
      expect([da.status?.phase, db.status?.phase]).toEqual(["Completed", "Completed"]);
      expect(itemsOf(velero.probeDir, a)).toHaveLength(3);
      expect(itemsOf(velero.probeDir, b)).toEqual(itemsOf(velero.probeDir, a));

      const overlaps = findOverlaps(readProbeRecords(velero.probeDir));
      expect(overlaps, describeOverlaps(overlaps)).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );
});
