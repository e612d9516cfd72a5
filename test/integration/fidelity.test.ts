/**
 * The differential fidelity suite on the real node: seeded estates and Backup specs
 * (test/support/fidelity/cases.ts) with running busybox pods, CSI claims, emptyDir, configMap
 * and hostPath volumes and hooks, each backup run by the real Velero (node-agent, EnableCSI),
 * compared per pod, PVC and PV with the core's prediction in every dimension:
 * - included: the probe BackupItemAction's records;
 * - hooks: records the pods' hooks write themselves (cases.ts hookCommand);
 * - file-system backup: the backup's PodVolumeBackups;
 * - snapshot: Velero's volume info in the backup storage (checked against the Backup's
 *   csiVolumeSnapshotsAttempted);
 * and that every unit the core claims is the item's unit in the cluster (cut with the policy's
 * group key), so that two backups' claims always compare.
 *
 * FIDELITY_SEED and FIDELITY_CASES choose the run (24 cases by default; the long mode is
 * FIDELITY_CASES=300). Every case runs; each mismatching case is printed with the items that
 * differ, cut down to them (reduceToItems) and in full. BACKUP_GATE_NODE_TESTS=0 skips the suite.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSnapshot } from "../../src/core/velero/objects.js";
import { DEFAULT_POLICY, type Policy } from "../../src/core/policy.js";
import { caseArb, describeCase, hookCommand, OWN_GROUP_KEY, reduceToItems, type FidelityCase } from "../support/fidelity/cases.js";
import { clusterUnitOf, compare, describeMismatches, predict, type Dimension, type Mismatch } from "../support/fidelity/compare.js";
import { applyInSlot, clearSlot, makeSlot, runNodeBackup, waitForEstate, type Bench } from "../support/fidelity/nodeRun.js";
import { groupSnapshots, observedOutcomes, type VeleroRecords } from "../support/fidelity/observe.js";
import { recordCase } from "../support/fidelity/replay.js";
import { viewOfCase, withPrefix } from "../support/fidelity/run.js";
import { startNode, startNodeCsi, startNodeVelero, type NodeVelero, type TestNode } from "../support/node.js";
import { clients, isApiError, VELERO_GROUP, VELERO_VERSION } from "../support/objects.js";

const enabled = process.env.BACKUP_GATE_NODE_TESTS !== "0";
const SEED = Number(process.env.FIDELITY_SEED ?? 1205);
const CASES = Number(process.env.FIDELITY_CASES ?? 24);
/** Cases set up side by side (each in its own three namespaces); their backups run one at a time. */
const SLOTS = Number(process.env.FIDELITY_SLOTS ?? 3);
/** A JSONL file to write every case to, for test/support/fidelity/replay.ts. */
const RECORD = process.env.FIDELITY_RECORD;
const ALL: ReadonlySet<Dimension> = new Set(["items", "hooks", "file-system backup", "snapshot"]);

describe.skipIf(!enabled)("differential fidelity on the real node: the core's prediction against real Velero, per pod, PVC and PV", () => {
  let node: TestNode;
  let velero: NodeVelero;
  let bench: Bench;
  let policy: Policy;
  let run = 0;
  /** Members of each VolumeGroupSnapshot Velero cut in the seeded cases. */
  const groupsCut: number[] = [];
  const started = Date.now();

  beforeAll(async () => {
    node = await startNode();
    const csi = await startNodeCsi(node);
    // Queue off, one at a time: the suite starts each backup itself. Plugin operations (the CSI
    // snapshots) are polled every second rather than every 10 s.
    velero = await startNodeVelero(node, {
      concurrentBackups: 1,
      disableQueue: true,
      features: ["EnableCSI"],
      serverArgs: ["--item-operation-sync-frequency=1s"],
    });
    bench = {
      node,
      velero,
      c: clients(node.kubeConfig),
      placement: {
        veleroNamespace: velero.namespace,
        image: node.images.busybox,
        storageClass: csi.storageClass,
        provision: true,
        unboundStorageClass: "bg-no-provisioner",
        recordsDir: node.recordsDir,
        pvSource: () => ({}),
      },
    };
    // The policy mirrors the server: startNodeVelero installs it with --default-volumes-to-fs-backup=false.
    policy = { ...DEFAULT_POLICY, veleroNamespace: velero.namespace, defaultVolumesToFsBackup: false };
    for (let s = 0; s < SLOTS; s++) await makeSlot(bench, `fid${s}`);
    process.stderr.write(`fidelity: node, CSI and Velero up in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  }, 600_000);

  afterAll(async () => {
    await velero?.stop();
    await node?.stop();
    process.stderr.write(`fidelity: suite wall time ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  }, 120_000);

  /** Velero's own counters must agree with the records read per item (else an observer misses something). */
  function recordChecks(r: VeleroRecords): Mismatch[] {
    const out: Mismatch[] = [];
    const snaps = (r.csiSnapshots ?? []).length;
    const inInfo = (r.volumeInfos ?? []).filter((v) => !v.skipped && v.backupMethod === "CSISnapshot").length;
    if (snaps !== (r.status?.csiVolumeSnapshotsAttempted ?? 0) || inInfo > snaps) {
      out.push({
        item: "Backup",
        predicted: `${snaps} VolumeSnapshots in the tarball, ${inInfo} in the volume info`,
        observed: `csiVolumeSnapshotsAttempted ${r.status?.csiVolumeSnapshotsAttempted ?? 0}`,
      });
    }
    // A failed hook may have written no record; hooksAttempted counts differently (not per run).
    const hooks = r.hookRuns?.length ?? 0;
    const attempted = r.status?.hookStatus?.hooksAttempted ?? 0;
    const failed = r.status?.hookStatus?.hooksFailed ?? 0;
    if (failed > 0 || hooks > 0 !== attempted > 0)
      out.push({ item: "Backup", predicted: `${hooks} hook runs recorded by the pods`, observed: `hooksAttempted ${attempted}, hooksFailed ${failed}` });
    return out;
  }

  /** A fixed case in slot fid0, backed up once: the case as applied, Velero's run and what it did. */
  async function runFixedCase(drawn: FidelityCase, prefix: string) {
    const one = withPrefix(drawn, "fid0");
    await clearSlot(bench, "fid0");
    await applyInSlot(bench, one);
    await waitForEstate(bench, one);
    const name = `${prefix}-${run++}`;
    const r = await runNodeBackup(bench, name, one);
    return { one, r, seen: observedOutcomes(name, r.records) };
  }

  /** A case's cluster as the core would read it, without running it (for controls: a changed case). */
  function viewAsCore(c: FidelityCase) {
    return viewOfCase(c, {
      ...bench.placement,
      provision: false,
      storageClass: "bg-hostpath",
      pvSource: (pv) => ({ csi: { driver: "hostpath.csi.backup-gate.io", volumeHandle: pv } }),
    });
  }

  /** Runs one case (already Running in its slot) and returns its mismatches and its report. */
  async function check(one: FidelityCase, label: string): Promise<{ mismatches: Mismatch[]; text: string }> {
    const name = `fid-${SEED.toString(36)}-${run++}`;
    const r = await runNodeBackup(bench, name, one);
    const p = predict(r.backup, r.view, policy);
    const seen = observedOutcomes(name, r.records);
    for (const members of groupSnapshots(r.records).values()) groupsCut.push(members.length);
    const checks = recordChecks(r.records);
    const mismatches = [...compare(p, seen, ALL, (key) => clusterUnitOf(key, r.view, policy)), ...checks];
    if (RECORD) {
      recordCase(RECORD, {
        label,
        backupName: name,
        case: one,
        policy,
        created: r.created,
        items: r.items,
        observed: [...seen].map(([k, o]) => [k, { included: o.included, work: [...o.work] }]),
        recordMismatches: checks,
      });
    }
    if (mismatches.length === 0) return { mismatches, text: "" };
    const claimOf = (pv: string) => {
      const ref = r.view.pv(pv)?.claimRef;
      return ref ? `PersistentVolumeClaim ${ref.namespace}/${ref.name}` : undefined;
    };
    const reduced = reduceToItems(
      one,
      mismatches.map((m) => m.item),
      claimOf,
    );
    const text = [
      `${label}, backup ${name} (Velero: ${r.phase}${p.errors.length ? `; core: invalid, ${p.errors.join("; ")}` : ""})`,
      `mismatches:\n${describeMismatches(mismatches)}`,
      ...(r.records.errors?.length ? [`Velero's errors:\n${r.records.errors.join("\n")}`] : []),
      ...(r.records.warnings?.length ? [`Velero's warnings:\n${r.records.warnings.slice(0, 10).join("\n")}`] : []),
      `the items that differ, with what they mount:\n${describeCase(reduced)}`,
      `the whole case:\n${describeCase(one)}`,
    ].join("\n");
    return { mismatches, text };
  }

  it(
    `${CASES} seeded cases (seed ${SEED}): included, hooks, file-system backups and snapshots are as the core predicts`,
    async () => {
      const cases = fc.sample(caseArb("case"), { seed: SEED, numRuns: CASES });
      const failures: string[] = [];
      for (let i = 0; i < cases.length; i += SLOTS) {
        const batch = cases.slice(i, i + SLOTS).map((drawn, j) => ({ index: i + j, slot: `fid${j}`, one: withPrefix(drawn, `fid${j}`) }));
        await Promise.all(batch.map((x) => clearSlot(bench, x.slot)));
        await Promise.all(batch.map((x) => applyInSlot(bench, x.one)));
        await Promise.all(batch.map((x) => waitForEstate(bench, x.one)));
        for (const x of batch) {
          const { mismatches, text } = await check(x.one, `case ${x.index + 1} of ${CASES} (seed ${SEED})`);
          if (mismatches.length > 0) {
            failures.push(text);
            process.stderr.write(`fidelity: MISMATCH ${text}\n\n`);
          }
        }
      }
      process.stderr.write(
        `fidelity: ${CASES} cases, ${failures.length} with mismatches; ${groupsCut.length} VolumeGroupSnapshots cut (${groupsCut.reduce((a, b) => a + b, 0)} claims); ${((Date.now() - started) / 1000).toFixed(0)} s since the suite started\n`,
      );
      expect(failures, failures.join("\n\n")).toEqual([]);
    },
    // About 10 s a case on a quiet node; three times that, so that a loaded machine still finishes.
    Math.max(60, CASES) * 30_000,
  );

  it("positive control: a prediction over a view blind to the exclude label, the annotations' spacing and a hook differs in items, hooks and file-system backups", async () => {
    // Velero leaves out p1 (labelled) and pulls nothing in through it (neither c1 nor p1's copy
    // of it); it copies " tmp" (the excludes list names " tmp", not tmp), snapshots c2 (excluded
    // from the file-system backup) and runs p2's pre hook.
    const drawn: FidelityCase = {
      namespaces: [
        {
          name: "case-a",
          labels: {},
          pods: [
            {
              name: "p1",
              labels: { app: "a", "velero.io/exclude-from-backup": "true" },
              annotations: {},
              volumes: [{ name: "data", source: "pvc", claim: "c1" }],
            },
            {
              name: "p2",
              labels: { app: "a" },
              annotations: {
                "backup.velero.io/backup-volumes-excludes": "data, tmp",
                "pre.hook.backup.velero.io/command": JSON.stringify(hookCommand("pre")),
                "pre.hook.backup.velero.io/container": "main",
              },
              volumes: [
                { name: "tmp", source: "emptyDir" },
                { name: "data", source: "pvc", claim: "c2" },
              ],
            },
          ],
          pvcs: [
            { name: "c1", labels: { app: "b" }, bound: true },
            { name: "c2", labels: { app: "b" }, bound: true },
          ],
        },
        { name: "case-b", labels: {}, pods: [], pvcs: [] },
        { name: "case-c", labels: {}, pods: [], pvcs: [] },
      ],
      spec: { includedNamespaces: ["case-a"], labelSelector: { matchLabels: { app: "a" } }, defaultVolumesToFsBackup: true },
    };
    const { one, r, seen } = await runFixedCase(drawn, "fid-pc");
    const unit = (key: string) => clusterUnitOf(key, r.view, policy);
    expect(compare(predict(r.backup, r.view, policy), seen, ALL, unit)).toEqual([]);
    expect(seen.get("Pod fid0-a/p2")).toEqual({ included: true, work: ["file-system backup tmp", "pre hooks"] });
    expect(seen.get("PersistentVolumeClaim fid0-a/c2")).toEqual({ included: true, work: ["snapshot"] });
    // The control: the same estate as a core blind to the label, the spacing and the hook would read it.
    const blindCase = JSON.parse(
      JSON.stringify(one)
        .replaceAll('"velero.io/exclude-from-backup":"true"', '"was-excluded":"true"')
        .replaceAll('"data, tmp"', '"data,tmp"')
        .replaceAll('"pre.hook.backup.velero.io/command"', '"was-a-hook"'),
    ) as FidelityCase;
    const blind = viewAsCore(blindCase);
    const found = compare(predict(r.backup, blind, policy), seen, ALL, () => undefined);
    expect(found.map((m) => `${m.item}: ${m.predicted} / ${m.observed}`)).toEqual(
      expect.arrayContaining([
        "Pod fid0-a/p1: included / not included",
        "PersistentVolumeClaim fid0-a/c1: included / not included",
        // The blind view has p1 copy its claim c1, which Velero never reached.
        "PersistentVolumeClaim fid0-a/c1: file-system backup / nothing",
        "Pod fid0-a/p2: nothing / file-system backup tmp, pre hooks",
      ]),
    );
  }, 300_000);

  it("a group under a backup's own key: Velero cuts its claims in one VolumeGroupSnapshot, as predicted; a prediction blind to the group differs", async () => {
    const drawn: FidelityCase = {
      namespaces: [
        {
          name: "case-a",
          labels: {},
          pods: [],
          pvcs: [
            { name: "c1", labels: { app: "a", [OWN_GROUP_KEY]: "x1" }, bound: true },
            { name: "c2", labels: { app: "b", [OWN_GROUP_KEY]: "x1" }, bound: true },
            { name: "c3", labels: { app: "b" }, bound: true },
          ],
        },
        { name: "case-b", labels: {}, pods: [], pvcs: [] },
        { name: "case-c", labels: {}, pods: [], pvcs: [] },
      ],
      spec: { includedNamespaces: ["case-a"], labelSelector: { matchLabels: { app: "a" } }, volumeGroupSnapshotLabelKey: OWN_GROUP_KEY },
    };
    const { one, r, seen } = await runFixedCase(drawn, "fid-group");
    expect([...groupSnapshots(r.records).values()]).toEqual([["PersistentVolumeClaim fid0-a/c1", "PersistentVolumeClaim fid0-a/c2"]]);
    expect(compare(predict(r.backup, r.view, policy), seen, ALL, (key) => clusterUnitOf(key, r.view, policy))).toEqual([]);
    // The control: a core that does not follow the backup's group key misses c2 and its snapshot.
    const blind = viewAsCore(JSON.parse(JSON.stringify(one).replaceAll(`"${OWN_GROUP_KEY}":"x1"`, '"was-grouped":"x1"')) as FidelityCase);
    const found = compare(predict(r.backup, blind, policy), seen, ALL, () => undefined);
    expect(found.map((m) => `${m.item}: ${m.predicted} / ${m.observed}`)).toEqual(
      expect.arrayContaining(["PersistentVolumeClaim fid0-a/c2: not included / included", "PersistentVolumeClaim fid0-a/c2: nothing / snapshot"]),
    );
  }, 300_000);

  it.each([
    { field: "metadata.creationTimestamp", object: { metadata: { creationTimestamp: "yesterday" } } },
    { field: "spec.includedNamespaces", object: { spec: { includedNamespaces: "shop" } } },
    { field: "spec.snapshotVolumes", object: { spec: { snapshotVolumes: "yes" } } },
    { field: "spec.hooks.resources", object: { spec: { hooks: { resources: { name: "h" } } } } },
  ])(
    "a Backup the API server refuses for $field is refused by the snapshot reader too, naming the field",
    async ({ field, object }) => {
      const name = `malformed-${run++}`;
      const body = {
        apiVersion: `${VELERO_GROUP}/${VELERO_VERSION}`,
        kind: "Backup",
        ...object,
        metadata: { name, namespace: velero.namespace, ...object.metadata },
        spec: { ...object.spec },
      };
      let refused: unknown;
      try {
        await bench.c.custom.createNamespacedCustomObject({
          group: VELERO_GROUP,
          version: VELERO_VERSION,
          namespace: velero.namespace,
          plural: "backups",
          body,
        });
      } catch (e) {
        refused = e;
      }
      expect(isApiError(refused, 400) || isApiError(refused, 422), `the API server stored ${JSON.stringify(body)}`).toBe(true);
      const loaded = loadSnapshot({ kind: "List", items: [body] });
      expect(loaded.ok).toBe(false);
      if (!loaded.ok) expect(loaded.error).toContain(`Backup ${velero.namespace}/${name}: ${field}`);
    },
    60_000,
  );
});
