/**
 * Restores on the real node (docs/rules.md, "Restores"): real Velero restores a file-system
 * backup into a new namespace (namespaceMapping) while backup-gate (`serve`, its queue
 * controller leading, Velero's queue off) holds a backup of that namespace in its queue; the
 * backup starts only after the restore is done. A post-restore exec hook keeps the restore
 * writing for a few seconds (Velero waits for it in InProgress/Finalizing), so the window is
 * real, not a race. Positive control: a backup of a namespace the restore does not write into
 * starts while the restore is still writing (the gate does promote).
 *
 * Needs root and the node's tools, like node.test.ts; BACKUP_GATE_NODE_TESTS=0 skips it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RESTORE_WRITING_PHASES } from "../../src/core/model.js";
import { startGate, type GateProcess } from "../support/gate.js";
import { startNodeVelero, startNodeWhenFree, type NodeVelero, type TestNode } from "../support/node.js";
import { restore } from "../support/builders.js";
import {
  clients,
  createBackup,
  createNamespace,
  getBackup,
  TERMINAL_BACKUP_PHASES,
  uniqueName,
  VELERO_GROUP,
  VELERO_VERSION,
  type Clients,
  type VeleroObject,
} from "../support/objects.js";
import { waitFor } from "../support/wait.js";
import { waitForPodsReady } from "../support/podReadiness.js";

const enabled = process.env.BACKUP_GATE_NODE_TESTS !== "0";
const GATE_NS = "backup-gate";
const HOOK_SECONDS = 15;

describe.skipIf(!enabled)("a real Velero Restore holds a backup of its namespace in the gate's queue", () => {
  let node: TestNode;
  let velero: NodeVelero;
  let gate: GateProcess | undefined;
  let c: Clients;
  const src = uniqueName("src");
  const dst = uniqueName("dst");
  const other = uniqueName("other");

  const getRestore = (name: string) =>
    c.custom.getNamespacedCustomObject({
      group: VELERO_GROUP,
      version: VELERO_VERSION,
      namespace: velero.namespace,
      plural: "restores",
      name,
    }) as Promise<VeleroObject>;

  /** A pod that writes 8 MiB into an emptyDir (copied by the node-agent), then waits, ready. */
  const dataPod = (namespace: string) =>
    c.core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: "app", labels: { app: "app" } },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: "app",
              image: node.images.busybox,
              imagePullPolicy: "Never",
              command: [
                "/bin/sh",
                "-c",
                "dd if=/dev/urandom of=/data/blob bs=1M count=8 2>/dev/null; touch /tmp/ready; trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done",
              ],
              readinessProbe: { exec: { command: ["test", "-f", "/tmp/ready"] }, periodSeconds: 1 },
              volumeMounts: [{ name: "data", mountPath: "/data" }],
            },
          ],
          volumes: [{ name: "data", emptyDir: {} }],
        },
      },
    });

  const waitBackupDone = (name: string) =>
    waitFor(
      `Backup ${name} to reach a terminal phase`,
      async () => {
        const b = await getBackup(c, velero.namespace, name);
        return TERMINAL_BACKUP_PHASES.has(b.status?.phase ?? "") ? b : undefined;
      },
      { timeoutMs: 240_000, intervalMs: 1_000 },
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n${velero.logs(40)}`);
    });

  /** Samples the restore and the two backups until the restore stops writing; `after` must stay queued meanwhile. */
  async function watchWhileRestoreWrites(reason: string): Promise<{ seen: string[]; held: boolean; unrelatedStarted: boolean }> {
    const seen: string[] = [];
    let held = false;
    let unrelatedStarted = false;
    for (;;) {
      const r = await getRestore("r1");
      const b = await getBackup(c, velero.namespace, "after");
      seen.push(`restore ${r.status?.phase} / after ${b.status?.phase ?? "New"}`);
      if (!RESTORE_WRITING_PHASES.has(r.status?.phase ?? "")) return { seen, held, unrelatedStarted };
      expect(["", "New", "Queued"], seen.join("\n")).toContain(b.status?.phase ?? "");
      if (b.metadata.annotations?.["backup-gate.io/reason"] === reason) held = true;
      const u = await getBackup(c, velero.namespace, "unrelated");
      if (u.status?.phase && !["New", "Queued"].includes(u.status.phase)) unrelatedStarted = true;
      await new Promise((res) => setTimeout(res, 300));
    }
  }

  beforeAll(async () => {
    node = await startNodeWhenFree({
      waitMs: 15 * 60_000,
      onWait: (line, ms) => process.stderr.write(`node-restore: waiting ${Math.round(ms / 1000)} s for the node: ${line}\n`),
    });
    velero = await startNodeVelero(node, { concurrentBackups: 2, disableQueue: true });
    c = clients(node.kubeConfig);
    for (const ns of [src, other, GATE_NS]) await createNamespace(c, ns);
    await c.core.createNamespacedConfigMap({
      namespace: GATE_NS,
      body: {
        metadata: { name: "backup-gate-policy" },
        data: { "policy.yaml": `conflictLevel: Namespace\nmaxConcurrentBackups: 2\nveleroNamespace: ${velero.namespace}\npriorities: {agingSeconds: 0}\n` },
      },
    });
    await dataPod(src);
    await waitForPodsReady(c, node, [{ namespace: src, name: "app" }], `pod ${src}/app`);
    gate = await startGate({ kubeconfigPath: node.kubeconfigPath, dir: node.dir }, { identity: "restore-gate", register: true });
  }, 900_000);

  afterAll(async () => {
    await gate?.stop();
    await velero?.stop();
    await node?.stop();
  }, 120_000);

  it("the backup of the namespace being restored waits, naming the restore, and starts after it completes", async () => {
    // The backup to restore from, through the gate.
    await createBackup(c, velero.namespace, "seed", { includedNamespaces: [src], spec: { defaultVolumesToFsBackup: true } });
    const seed = await waitBackupDone("seed");
    expect(seed.status?.phase, JSON.stringify(seed.status)).toBe("Completed");

    const hook = { exec: { container: "app", command: ["/bin/sh", "-c", `sleep ${HOOK_SECONDS}`], execTimeout: "2m", waitTimeout: "2m", onError: "Continue" } };
    await c.custom.createNamespacedCustomObject({
      group: VELERO_GROUP,
      version: VELERO_VERSION,
      namespace: velero.namespace,
      plural: "restores",
      body: restore(
        "r1",
        { backupName: "seed", namespaceMapping: { [src]: dst }, hooks: { resources: [{ name: "hold", postHooks: [hook] }] } },
        { namespace: velero.namespace },
      ),
    });
    await waitFor("the restore to start writing", async () => RESTORE_WRITING_PHASES.has((await getRestore("r1")).status?.phase ?? ""), {
      timeoutMs: 120_000,
      intervalMs: 200,
    });
    // The gate learns of the phase through its own watch: give it a moment (a backup created in
    // the same instant as the restore starts is the race the admission warning is for).
    await new Promise((res) => setTimeout(res, 2_000));
    await createBackup(c, velero.namespace, "after", { includedNamespaces: [dst] });
    await createBackup(c, velero.namespace, "unrelated", { includedNamespaces: [other] });

    // While the restore writes: `after` waits with the restore's name; `unrelated` starts.
    const { seen, held, unrelatedStarted } = await watchWhileRestoreWrites(`waits for restore ${velero.namespace}/r1 writing into namespace ${dst}`);
    const done = await waitFor(
      "the restore to finish",
      async () => {
        const r = await getRestore("r1");
        return RESTORE_WRITING_PHASES.has(r.status?.phase ?? "") || !r.status?.phase || r.status.phase === "New" ? undefined : r;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    expect(done.status?.phase, JSON.stringify(done.status)).toBe("Completed");
    expect(held, `the gate's reason on 'after' while the restore wrote:\n${seen.join("\n")}`).toBe(true);
    expect(unrelatedStarted, "a backup of a namespace the restore does not write into started meanwhile (the positive control)").toBe(true);

    // Once the restore is done, the backup starts and completes, and it started after the restore ended.
    const after = await waitBackupDone("after");
    expect(after.status?.phase, JSON.stringify(after.status)).toBe("Completed");
    const restoreEnd = Date.parse(done.status?.completionTimestamp as string);
    expect(Date.parse(after.status?.startTimestamp as string)).toBeGreaterThanOrEqual(restoreEnd - 1_000);
    // Whose data it holds: the restored pod is in dst.
    expect((await c.core.readNamespacedPod({ name: "app", namespace: dst })).metadata?.name).toBe("app");
  }, 600_000);
});
