/**
 * The differential fidelity suite: seeded estates and Backup specs (test/support/fidelity),
 * each run through the real Velero, compared item by item with the core's prediction.
 *
 * On this harness no kubelet runs, so pods never run: what is compared is which pods, PVCs
 * and PVs Velero processed (the probe's records), and that every unit the core claims is the
 * item's unit in the cluster (cut with the policy's group key), so that two backups' claims
 * always compare. Hooks, file-system backups and snapshots are compared where pods run.
 *
 * FIDELITY_SEED and FIDELITY_CASES choose the run (a few dozen cases by default; the long mode
 * is FIDELITY_CASES=300). A mismatch is shrunk by fast-check, each step a real backup, and
 * reported as the smallest case found, with every item that differs.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSnapshot } from "../../src/core/velero/objects.js";
import { DEFAULT_POLICY, type Policy } from "../../src/core/policy.js";
import { startControlPlane, type ControlPlane } from "../support/controlPlane.js";
import { caseArb, describeCase, type Placement } from "../support/fidelity/cases.js";
import { clusterUnitOf, compare, describeMismatches, predict, type Dimension, type Mismatch } from "../support/fidelity/compare.js";
import { observedOutcomes } from "../support/fidelity/observe.js";
import { applyCase, runBackup, viewOfCase, withPrefix } from "../support/fidelity/run.js";
import { clients, isApiError, VELERO_GROUP, VELERO_VERSION, type Clients } from "../support/objects.js";
import { startVelero, type Velero } from "../support/velero.js";

const SEED = Number(process.env.FIDELITY_SEED ?? 1205);
const CASES = Number(process.env.FIDELITY_CASES ?? 24);
// What this harness can observe (no kubelet): see the header.
const DIMENSIONS: ReadonlySet<Dimension> = new Set(["items"]);

describe("differential fidelity: the core's prediction against the real Velero, item by item", () => {
  let cp: ControlPlane;
  let velero: Velero;
  let c: Clients;
  let policy: Policy;
  let placement: Placement;
  let run = 0;

  beforeAll(async () => {
    cp = await startControlPlane({ name: "fidelity" });
    c = clients(cp.kubeConfig);
    velero = await startVelero(cp, { concurrentBackups: 1, disableQueue: true });
    // The policy mirrors the server: startVelero runs it with --default-volumes-to-fs-backup=false.
    policy = { ...DEFAULT_POLICY, veleroNamespace: velero.namespace, defaultVolumesToFsBackup: false };
    placement = { veleroNamespace: velero.namespace, image: "registry.invalid/never-pulled:1", storageClass: "", pvSource: (pv) => ({ hostPath: { path: `/tmp/backup-gate-pv/${pv}` } }) };
  });
  afterAll(async () => {
    await velero?.stop();
    await cp?.stop();
  });

  /** Runs one case through Velero; the mismatches between prediction and what Velero did. */
  async function mismatchesOf(drawn: Parameters<typeof withPrefix>[0]): Promise<{ mismatches: Mismatch[]; text: string }> {
    const prefix = `fid${SEED.toString(36)}x${run++}`;
    const one = withPrefix(drawn, prefix);
    await applyCase(c, one, placement, true);
    const r = await runBackup(cp, velero, c, prefix, one.spec);
    const p = predict(r.backup, r.view, policy);
    const seen = observedOutcomes(prefix, r.records);
    const mismatches = compare(p, seen, DIMENSIONS, (key) => clusterUnitOf(key, r.view, policy));
    const text = `case ${prefix} (Velero: ${r.phase}${p.errors.length ? `; core: invalid, ${p.errors.join("; ")}` : ""}):\n${describeCase(one)}\nmismatches:\n${describeMismatches(mismatches)}`;
    return { mismatches, text };
  }

  it(`${CASES} seeded cases (seed ${SEED}): every pod, PVC and PV Velero processed is one the core predicted, and no other`, async () => {
    await fc.assert(
      fc.asyncProperty(caseArb("case"), async (drawn) => {
        const { mismatches, text } = await mismatchesOf(drawn);
        if (mismatches.length > 0) throw new Error(text);
      }),
      { seed: SEED, numRuns: CASES, interruptAfterTimeLimit: 20 * 60_000, markInterruptAsFailure: false, endOnFailure: false },
    );
  }, 30 * 60_000);

  it("positive control: the same comparison finds the difference when the prediction reads a view without the exclude-from-backup label", async () => {
    // A case whose selector lists a labelled pod alone: Velero pulls in nothing through it.
    const prefix = `fidpc${run++}`;
    const drawn = {
      namespaces: [{
        name: "case-a", labels: {},
        pods: [{ name: "p1", labels: { app: "a", "velero.io/exclude-from-backup": "true" }, annotations: {}, volumes: [{ name: "data", source: "pvc" as const, claim: "c1" }] }],
        pvcs: [{ name: "c1", labels: { app: "b" }, bound: true }],
      }],
      spec: { includedNamespaces: ["case-a"], labelSelector: { matchLabels: { app: "a" } } },
    };
    const one = withPrefix(drawn, prefix);
    await applyCase(c, one, placement, true);
    const r = await runBackup(cp, velero, c, prefix, one.spec);
    const seen = observedOutcomes(prefix, r.records);
    const unit = (key: string) => clusterUnitOf(key, r.view, policy);
    expect(compare(predict(r.backup, r.view, policy), seen, DIMENSIONS, unit)).toEqual([]);
    // The control: the same estate without the label, as a core blind to it would read it.
    const blind = viewOfCase(JSON.parse(JSON.stringify(one).replaceAll('"velero.io/exclude-from-backup":"true"', '"was-excluded":"true"')) as typeof one, placement);
    const found = compare(predict(r.backup, blind, policy), seen, DIMENSIONS, unit);
    expect(found.map((m) => `${m.item}: ${m.predicted} / ${m.observed}`)).toEqual(expect.arrayContaining([
      `Pod ${prefix}-a/p1: included / not included`,
      `PersistentVolumeClaim ${prefix}-a/c1: included / not included`,
    ]));
  }, 300_000);

  it.each([
    { field: "metadata.creationTimestamp", object: { metadata: { creationTimestamp: "yesterday" } } },
    { field: "spec.includedNamespaces", object: { spec: { includedNamespaces: "shop" } } },
    { field: "spec.snapshotVolumes", object: { spec: { snapshotVolumes: "yes" } } },
    { field: "spec.hooks.resources", object: { spec: { hooks: { resources: { name: "h" } } } } },
  ])("a Backup the API server refuses for $field is refused by the snapshot reader too, naming the field", async ({ field, object }) => {
    const name = `malformed-${run++}`;
    const body = { apiVersion: `${VELERO_GROUP}/${VELERO_VERSION}`, kind: "Backup", ...object, metadata: { name, namespace: velero.namespace, ...object.metadata }, spec: { ...object.spec } };
    let refused: unknown;
    try {
      await c.custom.createNamespacedCustomObject({ group: VELERO_GROUP, version: VELERO_VERSION, namespace: velero.namespace, plural: "backups", body });
    } catch (e) {
      refused = e;
    }
    expect(isApiError(refused, 400) || isApiError(refused, 422), `the API server stored ${JSON.stringify(body)}`).toBe(true);
    const loaded = loadSnapshot({ kind: "List", items: [body] });
    expect(loaded.ok).toBe(false);
    if (!loaded.ok) expect(loaded.error).toContain(`Backup ${velero.namespace}/${name}: ${field}`);
  }, 60_000);
});
