/**
 * The real node (test/support/node.ts): real pods, real Velero (server and node-agent as pods),
 * a real pre-backup freeze hook and a real file-system backup (kopia). Then the positive
 * control: two backups of the same pod forced in flight together, with Velero's queue
 * disabled and no gate, show overlapping freezes in the same records.
 *
 * Needs root (it makes links, mounts and cgroups) and the node's tools and Debian packages
 * (`bash tools/build.sh`). BACKUP_GATE_NODE_TESTS=0 skips it, e.g. on a machine without root.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import {
  clients,
  createBackup,
  createNamespace,
  getBackup,
  TERMINAL_BACKUP_PHASES,
  uniqueName,
  updateVelero,
  type Clients,
  type VeleroObject,
} from "../support/objects.js";
import { freezePod, freezeWindows, overlappingFreezes, readFreezeRecords } from "../support/nodeFreeze.js";
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { startNode, startNodeCsi, startNodeVelero, type NodeCsi, type NodeVelero, type TestNode } from "../support/node.js";
import { waitFor } from "../support/wait.js";

const enabled = process.env.BACKUP_GATE_NODE_TESTS !== "0";

describe.skipIf(!enabled)("a real node: hooks and file-system backups under real Velero", () => {
  let node: TestNode;
  let velero: NodeVelero;
  let csi: NodeCsi;
  let c: Clients;
  const ns = uniqueName("freeze");
  const pod = "db";
  let recordsDir: string;

  beforeAll(async () => {
    node = await startNode();
    csi = await startNodeCsi(node);
    // Queue off and two at once: this suite starts backups itself (no gate), which is what
    // lets the positive control put two backups of one pod in flight together.
    velero = await startNodeVelero(node, { concurrentBackups: 2, disableQueue: true, probeSleep: "3s", features: ["EnableCSI"] });
    c = clients(node.kubeConfig);
    await createNamespace(c, ns);
    recordsDir = join(node.recordsDir, ns, pod);
    await c.core.createNamespacedPod({ namespace: ns, body: freezePod(pod, { image: node.images.busybox, recordsDir }) });
    await waitFor(
      `pod ${ns}/${pod} to be Running and ready`,
      async () => {
        const p = await c.core.readNamespacedPod({ name: pod, namespace: ns });
        return p.status?.phase === "Running" && p.status.containerStatuses?.every((s) => s.ready);
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
  }, 600_000);

  afterAll(async () => {
    await velero?.stop();
    await node?.stop();
  }, 120_000);

  const startBackups = async (names: string[], namespace = ns, spec: Record<string, unknown> = {}) => {
    // Velero's queue is off: create them ReadyToStart, then update them so its backup controller looks.
    for (const name of names) {
      await createBackup(c, velero.namespace, name, { includedNamespaces: [namespace], spec, status: { phase: "ReadyToStart" } });
    }
    await Promise.all(
      names.map((name) =>
        updateVelero(c, "backups", velero.namespace, name, (b) => {
          b.metadata.labels = { ...b.metadata.labels, "backup-gate.io/test-kick": "1" };
        }),
      ),
    );
  };

  const waitDone = (name: string): Promise<VeleroObject> => {
    let last: VeleroObject | undefined;
    return waitFor(
      `Backup ${name} to reach a terminal phase`,
      async () => {
        last = await getBackup(c, velero.namespace, name);
        return TERMINAL_BACKUP_PHASES.has(last.status?.phase ?? "") ? last : undefined;
      },
      { timeoutMs: 240_000, intervalMs: 1_000 },
    ).catch((e: Error) => {
      throw new Error(`${e.message}; last status ${JSON.stringify(last?.status)}\n${velero.logs(40)}`);
    });
  };

  const podVolumeBackups = async (backup: string) => {
    const list = (await c.custom.listNamespacedCustomObject({
      group: "velero.io",
      version: "v1",
      namespace: velero.namespace,
      plural: "podvolumebackups",
      labelSelector: `velero.io/backup-name=${backup}`,
    })) as { items: VeleroObject[] };
    return list.items;
  };

  it("Node is Ready and a backup runs the freeze hook and a kopia file-system backup of the pod's volume", async () => {
    const name = uniqueName("single");
    await startBackups([name]);
    const b = await waitDone(name);
    expect(b.status?.phase, JSON.stringify(b.status)).toBe("Completed");
    expect(b.status?.hookStatus?.hooksAttempted ?? 0).toBeGreaterThanOrEqual(1);
    expect(b.status?.hookStatus?.hooksFailed ?? 0).toBe(0);
    const pvbs = await podVolumeBackups(name);
    expect(pvbs.map((p) => [p.spec?.pod?.name, p.spec?.volume, p.spec?.uploaderType, p.status?.phase])).toEqual([[pod, "data", "kopia", "Completed"]]);
    expect(pvbs[0]!.status?.progress?.totalBytes ?? 0).toBeGreaterThanOrEqual(8 << 20);

    const records = readFreezeRecords(recordsDir);
    expect(records.map((r) => `${r.kind} ${r.outcome}`)).toEqual(["freeze held", "thaw released"]);
    const [w] = freezeWindows(records);
    // The freeze spans the pod's file-system backup.
    const pvbStart = Date.parse(pvbs[0]!.status?.startTimestamp);
    const pvbEnd = Date.parse(pvbs[0]!.status?.completionTimestamp);
    expect(w!.fromMs).toBeLessThanOrEqual(pvbStart + 1_000);
    expect(w!.toMs!).toBeGreaterThanOrEqual(pvbEnd - 1_000);
  }, 300_000);

  it("positive control: two backups of one pod in flight together (no queue, no gate) overlap their freezes", async () => {
    const before = readFreezeRecords(recordsDir).length;
    const names = [uniqueName("pc-a"), uniqueName("pc-b")];
    await startBackups(names);
    const done = await Promise.all(names.map(waitDone));
    const records = readFreezeRecords(recordsDir).slice(before);
    const busy = overlappingFreezes(records);
    // Both freezes are in the records: one held, the other found it held and failed its hook.
    expect(
      records
        .filter((r) => r.kind === "freeze")
        .map((r) => r.outcome)
        .sort(),
      records.map((r) => r.line).join("\n"),
    ).toEqual(["busy", "held"]);
    expect(busy).toHaveLength(1);
    const [w] = freezeWindows(records);
    expect(busy[0]!.atMs).toBeGreaterThanOrEqual(w!.fromMs);
    expect(busy[0]!.atMs).toBeLessThanOrEqual(w!.toMs!);
    // Velero reports the failed hook on exactly one of the two backups.
    const failed = done.map((b) => b.status?.hookStatus?.hooksFailed ?? 0);
    expect(failed.sort(), JSON.stringify(done.map((b) => b.status))).toEqual([0, 1]);
  }, 300_000);

  it("a CSI PVC is snapshotted by Velero through the CSI driver (EnableCSI)", async () => {
    const ns2 = uniqueName("csi");
    await createNamespace(c, ns2);
    await c.core.createNamespacedPersistentVolumeClaim({
      namespace: ns2,
      body: {
        metadata: { name: "vol" },
        spec: { accessModes: ["ReadWriteOnce"], storageClassName: csi.storageClass, resources: { requests: { storage: "1Mi" } } },
      },
    });
    await c.core.createNamespacedPod({
      namespace: ns2,
      body: {
        metadata: { name: "app" },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: "app",
              image: node.images.busybox,
              imagePullPolicy: "Never",
              command: ["/bin/sh", "-c", "echo csi-data > /data/file && touch /tmp/ready && trap 'exit 0' TERM && while :; do sleep 1 & wait $!; done"],
              readinessProbe: { exec: { command: ["test", "-f", "/tmp/ready"] }, periodSeconds: 1 },
              volumeMounts: [{ name: "vol", mountPath: "/data" }],
            },
          ],
          volumes: [{ name: "vol", persistentVolumeClaim: { claimName: "vol" } }],
        },
      },
    });
    await waitFor(
      `pod ${ns2}/app (CSI volume) to be Running and ready`,
      async () => {
        const p = await c.core.readNamespacedPod({ name: "app", namespace: ns2 });
        return p.status?.phase === "Running" && p.status.containerStatuses?.every((s) => s.ready);
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );

    const name = uniqueName("snap");
    await startBackups([name], ns2, { snapshotVolumes: true });
    const b = await waitDone(name);
    expect(b.status?.phase, JSON.stringify(b.status)).toBe("Completed");
    expect([b.status?.csiVolumeSnapshotsAttempted, b.status?.csiVolumeSnapshotsCompleted]).toEqual([1, 1]);
    // The driver cut the snapshot from the volume the pod wrote.
    const snaps = readdirSync(join(node.dir, "csi", "data", "snapshots")).filter((f) => f.endsWith(".tar"));
    expect(snaps).toHaveLength(1);
    const files = execFileSync("tar", ["-tf", join(node.dir, "csi", "data", "snapshots", snaps[0]!)], { encoding: "utf8" });
    expect(files.split("\n")).toContain("./file");
  }, 300_000);
});
