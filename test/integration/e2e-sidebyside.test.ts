/**
 * Side by side, in one test process on one control plane: the same workload of 12 backups
 * (10 per-app backups in two shared namespaces, one manifest-only namespace backup, one
 * all-namespace configuration backup) run
 *   1. under Velero's built-in queue (Velero without --disable-controllers, no gate);
 *   2. under backup-gate at ItemBlock level (Velero --disable-controllers=backup-queue);
 *   3. under backup-gate at Namespace level (the policy switched at run time);
 * all with --concurrent-backups 4 and the probe holding each pod/PVC/PV for PROBE_SLEEP.
 *
 * Printed: makespan (first create -> last terminal phase), mean and max queue wait (create ->
 * InProgress, local clock, seen through a watch), and the ratio to Velero's queue, as a table
 * and one JSON line per run. Asserted: no overlap on an item exclusive for both backups
 * (Velero's queue and Namespace level: no overlap at all), and ItemBlock makespan < Velero's.
 * Goals (ItemBlock <= 0.5x Velero; Namespace level not slower than Velero) are printed, not
 * asserted: the machine is shared.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import { exclusiveOverlaps, predict, snapshotCluster, Timeline } from "../support/e2e.js";
import { startGate, type GateProcess } from "../support/gate.js";
import { clients, createBackup, createNamespace, createWorkload, getBackup, type BackupOptions, type Clients, type VeleroObject } from "../support/objects.js";
import { describeOverlaps, findOverlaps, readProbeRecords } from "../support/overlap.js";
import { startVelero, waitForBackupDone, type Velero } from "../support/velero.js";
import { waitFor } from "../support/wait.js";

const VELERO = "velero";
const GATE_NS = "backup-gate";
const PROBE_SLEEP = "400ms";
const CONCURRENCY = 4;
const APPS = ["a1", "a2", "a3", "a4", "a5"];
const NSS = ["sbs-east", "sbs-west"];
const POLICY = (level: string) => `conflictLevel: ${level}\nmaxConcurrentBackups: ${CONCURRENCY}\npriorities: {agingSeconds: 0}\n`;

interface Spec {
  name: string;
  o: BackupOptions;
}

/** 12 backups in creation order: per-app backups interleaved, the all-namespace one fifth. */
function workload(p: string): Spec[] {
  const perApp = (i: number): Spec[] =>
    NSS.map((ns) => ({
      name: `${p}${ns.slice(4)}-${APPS[i]}`,
      o: { includedNamespaces: [ns], spec: { labelSelector: { matchLabels: { app: APPS[i] } } } },
    }));
  return [
    ...perApp(0),
    ...perApp(1),
    // The nightly configuration backup of every namespace (no pods, PVCs or PVs).
    {
      name: `${p}all-config`,
      o: { includedNamespaces: ["*"], spec: { includedResources: ["configmaps", "secrets", "serviceaccounts"], snapshotVolumes: false } },
    },
    // Manifests of one namespace, no volume data.
    { name: `${p}east-manifests`, o: { includedNamespaces: [NSS[0]!], spec: { snapshotVolumes: false } } },
    ...perApp(2),
    ...perApp(3),
    ...perApp(4),
  ];
}

interface Figures {
  run: string;
  backups: number;
  makespanS: number;
  meanWaitS: number;
  maxWaitS: number;
  overlaps: number;
  ratio?: number;
}

async function runWorkload(cp: ControlPlane, c: Clients, v: Velero, run: string, specs: Spec[]): Promise<{ f: Figures; done: VeleroObject[] }> {
  const t = await Timeline.start(cp, VELERO);
  try {
    for (const s of specs) {
      t.markCreated(s.name);
      await createBackup(c, VELERO, s.name, s.o);
    }
    const done = await Promise.all(specs.map((s) => waitForBackupDone(v, cp, s.name, 300_000)));
    for (const d of done) expect(d.status?.phase, `${d.metadata.name}: ${JSON.stringify(d.status)}`).toBe("Completed");
    const ends = specs.map((s) => t.firstAt(s.name, ["Completed", "PartiallyFailed", "Failed"]) ?? Date.now());
    const waits = specs.map((s) => {
      const started = t.firstAt(s.name, ["InProgress", "WaitingForPluginOperations", "Finalizing", "Completed"]);
      if (started === undefined) throw new Error(`${run}: never saw ${s.name} InProgress`);
      return (started - t.created.get(s.name)!) / 1000;
    });
    const first = Math.min(...specs.map((s) => t.created.get(s.name)!));
    const f: Figures = {
      run,
      backups: specs.length,
      makespanS: (Math.max(...ends) - first) / 1000,
      meanWaitS: waits.reduce((a, b) => a + b, 0) / waits.length,
      maxWaitS: Math.max(...waits),
      overlaps: 0,
    };
    return { f, done };
  } finally {
    t.stop();
  }
}

describe("side by side: Velero's built-in queue vs backup-gate (ItemBlock, Namespace)", () => {
  let cp: ControlPlane;
  let c: Clients;
  let velero: Velero | undefined;
  let gate: GateProcess | undefined;
  let cluster: object[];
  const figures: Figures[] = [];

  beforeAll(async () => {
    cp = await startControlPlane({ name: "e2e-sbs" });
    c = clients(cp.kubeConfig);
    for (const ns of [VELERO, GATE_NS, ...NSS]) await createNamespace(c, ns);
    for (const ns of NSS) for (const a of APPS) await createWorkload(c, ns, a);
    await c.core.createNamespacedConfigMap({
      namespace: GATE_NS,
      body: { metadata: { name: "backup-gate-policy" }, data: { "policy.yaml": POLICY("ItemBlock") } },
    });
    cluster = await snapshotCluster(cp);
  }, 300_000);
  afterAll(async () => {
    await velero?.stop();
    await gate?.stop();
    await cp?.stop();
  });

  it("1. Velero's built-in queue", async () => {
    velero = await startVelero(cp, { concurrentBackups: CONCURRENCY, probeSleep: PROBE_SLEEP });
    const { f } = await runWorkload(cp, c, velero, "velero-queue", workload("vq-"));
    const overlaps = findOverlaps(readProbeRecords(velero.probeDir));
    expect(overlaps, describeOverlaps(overlaps)).toEqual([]);
    figures.push(f);
    await velero.stop();
    velero = undefined;
  }, 600_000);

  it("2. backup-gate at ItemBlock level, then 3. at Namespace level", async () => {
    gate = await startGate(cp, { identity: "sbs-gate", register: true });
    velero = await startVelero(cp, { concurrentBackups: CONCURRENCY, disableQueue: true, probeSleep: PROBE_SLEEP });
    const specs = workload("ib-");
    const ib = await runWorkload(cp, c, velero, "gate-itemblock", specs);
    const records = readProbeRecords(velero.probeDir);
    const { exclusive, allowed } = exclusiveOverlaps(predict(cluster, ib.done, { conflictLevel: "ItemBlock", priorities: { agingSeconds: 0 } }), records);
    expect(exclusive, describeOverlaps(exclusive)).toEqual([]);
    ib.f.overlaps = exclusive.length;
    console.log(
      `gate-itemblock: ${allowed.length} item overlaps of the manifest-only backup with per-app backups (allowed by design: it holds no unit exclusively)`,
    );
    figures.push(ib.f);

    await c.core.replaceNamespacedConfigMap({
      name: "backup-gate-policy",
      namespace: GATE_NS,
      body: { metadata: { name: "backup-gate-policy", namespace: GATE_NS }, data: { "policy.yaml": POLICY("Namespace") } },
    });
    // The gate applies the new policy to its next decision; wait until a (stored, harmless) backup is judged by it.
    await waitFor(
      "the gate to judge backups at Namespace level",
      async () => {
        const name = `level-probe-${Date.now()}`;
        const b = await createBackup(c, VELERO, name, { includedNamespaces: ["*"], spec: { includedResources: ["configmaps"] } });
        const level = (await getBackup(c, VELERO, b.metadata.name)).metadata.annotations?.["backup-gate.io/conflict-level"];
        await waitForBackupDone(velero!, cp, name, 60_000);
        return level === "Namespace";
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );
    const before = readProbeRecords(velero.probeDir).length;
    const ns = await runWorkload(cp, c, velero, "gate-namespace", workload("ns-"));
    const nsRecords = readProbeRecords(velero.probeDir).filter((r) => r.backup.startsWith("ns-"));
    expect(nsRecords.length).toBeGreaterThan(0);
    expect(readProbeRecords(velero.probeDir).length).toBeGreaterThan(before);
    const nsOverlaps = findOverlaps(nsRecords);
    expect(nsOverlaps, describeOverlaps(nsOverlaps)).toEqual([]);
    figures.push(ns.f);

    const vq = figures.find((x) => x.run === "velero-queue");
    if (!vq) throw new Error("run 1 (Velero's queue) did not finish; no baseline");
    for (const x of figures) x.ratio = x.makespanS / vq.makespanS;
    const row = (x: Figures) =>
      `| ${x.run.padEnd(14)} | ${String(x.backups).padStart(7)} | ${x.makespanS.toFixed(1).padStart(9)} | ${x.meanWaitS.toFixed(1).padStart(9)} | ${x.maxWaitS.toFixed(1).padStart(8)} | ${x.ratio!.toFixed(2).padStart(16)} | ${String(x.overlaps).padStart(8)} |`;
    console.log(
      [
        `side by side: ${specs.length} backups, --concurrent-backups ${CONCURRENCY}, probe sleep ${PROBE_SLEEP} per pod/PVC/PV`,
        "| run            | backups | makespan s | mean wait s | max wait s | makespan / velero | overlaps |",
        "| -------------- | ------- | ---------- | ----------- | ---------- | ----------------- | -------- |",
        ...figures.map(row),
        `goal: gate-itemblock <= 0.50x velero-queue (actual ${ib.f.ratio!.toFixed(2)}x); gate-namespace not slower than velero-queue (actual ${ns.f.ratio!.toFixed(2)}x)`,
      ].join("\n"),
    );
    for (const x of figures) console.log(JSON.stringify({ bench: "e2e-side-by-side", ...x, ratio: Number(x.ratio!.toFixed(3)) }));
    expect(ib.f.ratio!).toBeLessThan(1);
  }, 900_000);
});
