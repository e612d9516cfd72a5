/**
 * Integrity on the real node (issue 15, section 2): real pods with real data (a freeze-hook pod,
 * CSI PVCs Velero snapshots, volumes the node-agent copies with kopia, emptyDirs, a PVC two pods
 * share, a volume group Velero snapshots with real VolumeGroupSnapshots, and the e2e suite's
 * workloads), real Velero (EnableCSI, node-agent, concurrency N) and a burst of overlapping
 * backups (ours, then the e2e suite's scenario), run four ways on one node:
 *
 * 1. through the gate at Namespace level and 2. at ItemBlock level (Velero's queue off): no two
 *    backups ever hold a freeze of one pod at once, no two PodVolumeBackups of one volume overlap
 *    in time, no two backups snapshot one PVC (alone or as a group member) while both run their items, and
 *    every backup reaches a terminal phase;
 * 3. positive control: the same burst with Velero's queue off and no gate must show overlaps of
 *    every kind in the same records (the checks can fail);
 * 4. negative control: under Velero's own queue (no gate), none.
 *
 * The overlap checks are pure (test/support/integrityChecks.ts, unit-tested). Needs root and the
 * node's tools (`bash tools/build.sh`); BACKUP_GATE_NODE_TESTS=0 skips it, like node.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWithWarnings, startGate, type GateProcess } from "../support/gate.js";
import { figuresTable, type IntegrityOverlap, type RunFigures } from "../support/integrityChecks.js";
import { startNode, startNodeCsi, startNodeVelero, type NodeVelero, type TestNode } from "../support/node.js";
import {
  buildEstate,
  burstBackups,
  GROUP_KEY,
  NS,
  runBurst,
  setVeleroQueue,
  unregisterGate,
  VELERO_NS,
  type BurstResult,
  type Estate,
} from "../support/nodeBurst.js";
import { backupBody } from "../support/builders.js";
import { clients, createNamespace, type Clients } from "../support/objects.js";
import { waitFor } from "../support/wait.js";

const enabled = process.env.BACKUP_GATE_NODE_TESTS !== "0";
const N = 4;
const GATE_NS = "backup-gate";
const POLICY = (level: string) =>
  `conflictLevel: ${level}\nmaxConcurrentBackups: ${N}\npriorities: {agingSeconds: 0}\nvolumeGroupSnapshotLabelKey: ${GROUP_KEY}\n`;
const RUN_TIMEOUT_MS = 480_000;

const describeOverlaps = (list: readonly IntegrityOverlap[]) => list.map((o) => `${o.kind} ${o.subject}: ${o.detail}`).join("\n");

describe.skipIf(!enabled)("integrity on a real node: a burst of overlapping backups through the gate, with controls", () => {
  let node: TestNode;
  let velero: NodeVelero;
  let gate: GateProcess | undefined;
  let c: Clients;
  let estate: Estate;
  const figures: RunFigures[] = [];
  const startedAt = Date.now();

  const run = async (label: string, mode: "gate" | "no-queue" | "velero-queue", prefix: string): Promise<BurstResult> => {
    const r = await runBurst(node, c, estate, { label, mode, backups: burstBackups(prefix), timeoutMs: 420_000 });
    figures.push(r.figures);
    console.log(
      `${label}: ${JSON.stringify(r.figures)}\nphases: ${JSON.stringify(r.phases)}\nPVBs: ${r.pvbs.join("; ")}\n` +
        `snapshots (${r.groupSnapshots} group snapshots): ${r.snapshots.join("; ")}\n${describeOverlaps(r.overlaps)}`,
    );
    // The volume group is snapshotted for real: Velero cuts VolumeGroupSnapshots of it.
    expect(r.groupSnapshots, "VolumeGroupSnapshots Velero cut").toBeGreaterThanOrEqual(1);
    expect(r.stuck, `backups not terminal (lost or stuck):\n${velero.logs(30)}`).toEqual([]);
    // Without a second freeze or copy of one volume, nothing fails: every backup Completes.
    if (mode !== "no-queue")
      expect(
        Object.entries(r.phases).filter(([, p]) => p !== "Completed"),
        "backups not Completed",
      ).toEqual([]);
    return r;
  };

  /** Switches the policy and waits until admission judges a fresh backup by it (dry run: nothing is stored). */
  const switchPolicy = async (level: string) => {
    await c.core.replaceNamespacedConfigMap({
      name: "backup-gate-policy",
      namespace: GATE_NS,
      body: { metadata: { name: "backup-gate-policy", namespace: GATE_NS }, data: { "policy.yaml": POLICY(level) } },
    });
    await waitFor(
      `the gate to apply conflictLevel ${level}`,
      async () => {
        const res = await createWithWarnings(
          node,
          `/apis/velero.io/v1/namespaces/${VELERO_NS}/backups?dryRun=All`,
          backupBody("policy-probe", VELERO_NS, { includedNamespaces: [NS.lone] }),
        );
        return res.body?.metadata?.annotations?.["backup-gate.io/conflict-level"] === level;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
  };

  beforeAll(async () => {
    node = await startNode();
    const csi = await startNodeCsi(node);
    // The node-agent copies as many volumes at once as Velero runs backups: otherwise its own
    // limit (1) would serialize every copy, and the positive control could not show one overlap.
    velero = await startNodeVelero(node, { concurrentBackups: N, disableQueue: true, features: ["EnableCSI"], nodeAgentConcurrency: N });
    c = clients(node.kubeConfig);
    await createNamespace(c, GATE_NS);
    await c.core.createNamespacedConfigMap({
      namespace: GATE_NS,
      body: { metadata: { name: "backup-gate-policy" }, data: { "policy.yaml": POLICY("Namespace") } },
    });
    estate = await buildEstate(c, node, csi);
    // One backup of the file-system-copied namespaces first: it initializes their kopia
    // repositories, which would otherwise slow only the first run and skew its makespan.
    const warm = await runBurst(node, c, estate, { label: "warm-up", mode: "no-queue", backups: [{ name: "warm-up", namespaces: [NS.app, NS.files] }] });
    expect(warm.phases, "the warm-up backup").toEqual({ "warm-up": "Completed" });
    gate = await startGate({ kubeconfigPath: node.kubeconfigPath, dir: node.dir }, { identity: "burst-gate", register: true });
    console.log(`node, CSI, Velero, estate and gate ready in ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
  }, 600_000);

  afterAll(async () => {
    if (figures.length)
      console.log(
        `burst of ${burstBackups("").length} backups, concurrency ${N}, wall ${((Date.now() - startedAt) / 1000).toFixed(0)} s:\n${figuresTable(figures)}`,
      );
    await gate?.stop();
    await velero?.stop();
    await node?.stop();
  }, 120_000);

  it(
    "through the gate at Namespace level: no overlapping freeze, volume copy or snapshot; every backup terminal",
    async () => {
      const r = await run("gate Namespace", "gate", "ns-");
      expect(r.overlaps, describeOverlaps(r.overlaps)).toEqual([]);
    },
    RUN_TIMEOUT_MS,
  );

  it(
    "through the gate at ItemBlock level: none either, while backups sharing a namespace run together",
    async () => {
      await switchPolicy("ItemBlock");
      const r = await run("gate ItemBlock", "gate", "ib-");
      expect(r.overlaps, describeOverlaps(r.overlaps)).toEqual([]);
      expect(r.figures.maxInFlight).toBeGreaterThanOrEqual(2);
    },
    RUN_TIMEOUT_MS,
  );

  it(
    "positive control: Velero's queue off and no gate, the same burst overlaps in every record kind",
    async () => {
      await gate?.stop();
      gate = undefined;
      await unregisterGate(node);
      const r = await run("no queue, no gate", "no-queue", "pc-");
      expect(r.figures.freeze, "freeze overlaps").toBeGreaterThanOrEqual(1);
      expect(r.figures.podVolumeBackup, "PodVolumeBackup overlaps").toBeGreaterThanOrEqual(1);
      expect(r.figures.snapshot, "snapshot overlaps").toBeGreaterThanOrEqual(1);
    },
    RUN_TIMEOUT_MS,
  );

  it(
    "negative control: Velero's own queue (no gate) shows none",
    async () => {
      await setVeleroQueue(node, c, true);
      const r = await run("Velero's queue", "velero-queue", "vq-");
      expect(r.overlaps, describeOverlaps(r.overlaps)).toEqual([]);
    },
    RUN_TIMEOUT_MS,
  );
});
