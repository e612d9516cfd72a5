import fc from "fast-check";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_POLICY } from "../../src/core/policy.js";
import { caseArb, GROUP_KEY, reduceToItems, type FidelityCase, type Placement } from "../support/fidelity/cases.js";
import { clusterUnitOf, compare, predict, type Dimension, type Outcomes } from "../support/fidelity/compare.js";
import { groupSnapshots, itemErrors, observedOutcomes, readHookRecords, tarFiles } from "../support/fidelity/observe.js";
import { viewOfCase, withPrefix } from "../support/fidelity/run.js";
import { backup } from "../support/builders.js";
import { cluster } from "./support/cluster.js";

// The differential fidelity suite's own parts: what it draws, how it predicts and compares,
// and how it reads Velero's records. The suite itself runs Velero (test/integration/fidelity.test.ts).

const placement: Placement = { veleroNamespace: "velero", image: "busybox", storageClass: "", pvSource: (pv) => ({ hostPath: { path: `/pv/${pv}` } }) };
const ALL: ReadonlySet<Dimension> = new Set(["items", "hooks", "file-system backup", "snapshot"]);

function predictCase(c: FidelityCase) {
  const view = viewOfCase(c, placement);
  const b = cluster(backup("b", c.spec)).backups[0]!;
  return { view, prediction: predict(b, view, DEFAULT_POLICY) };
}

describe("the cases it draws", () => {
  it("always load as objects the gate reads, and always get a prediction (valid or with Velero's errors)", () => {
    fc.assert(
      fc.property(caseArb("case"), (c) => {
        const { prediction } = predictCase(c);
        expect(prediction.outcomes).toBeInstanceOf(Map);
      }),
      { seed: 7, numRuns: 200 },
    );
  });

  it("cover every rule the suite is meant to exercise, over a bounded run's worth of cases", () => {
    const seen = new Set<string>();
    for (const c of fc.sample(caseArb("case"), { seed: 1205, numRuns: 100 })) {
      const text = JSON.stringify(c);
      const mark = (rule: string, present: boolean) => {
        if (present) seen.add(rule);
      };
      mark("glob", /case-[*?[]/.test(text));
      mark("exclude label", text.includes("velero.io/exclude-from-backup"));
      mark("old filters", "includedResources" in c.spec || "includeClusterResources" in c.spec);
      mark(
        "new filters",
        Object.keys(c.spec).some((k) => k.endsWith("NamespaceScopedResources")),
      );
      mark("orLabelSelectors", "orLabelSelectors" in c.spec);
      mark("labelSelector", "labelSelector" in c.spec);
      mark("spec hooks", "hooks" in c.spec);
      mark("annotation hooks", text.includes("pre.hook.backup.velero.io/command"));
      mark("opt-in with a space", /"backup\.velero\.io\/backup-volumes":"[^"]*, /.test(text));
      mark("opt-out with a space", /"backup\.velero\.io\/backup-volumes-excludes":"[^"]*, /.test(text));
      mark("defaultVolumesToFsBackup", "defaultVolumesToFsBackup" in c.spec);
      mark("snapshotVolumes", "snapshotVolumes" in c.spec);
      mark("volume policy", c.volumePolicy !== undefined);
      mark("own group key", "volumeGroupSnapshotLabelKey" in c.spec);
      mark("policy group key", text.includes("velero.io/volume-group"));
      mark("unbound claim", text.includes('"bound":false'));
      mark("snapshot action", /type: snapshot/.test(c.volumePolicy ?? ""));
      const key = typeof c.spec.volumeGroupSnapshotLabelKey === "string" ? c.spec.volumeGroupSnapshotLabelKey : GROUP_KEY;
      mark("grouped claims snapshotted", c.spec.snapshotVolumes !== false && c.namespaces.some((ns) => ns.pvcs.some((p) => p.bound && p.labels[key])));
    }
    expect([...seen].sort()).toEqual(
      [
        "annotation hooks",
        "defaultVolumesToFsBackup",
        "exclude label",
        "glob",
        "labelSelector",
        "new filters",
        "old filters",
        "grouped claims snapshotted",
        "opt-in with a space",
        "opt-out with a space",
        "orLabelSelectors",
        "own group key",
        "policy group key",
        "snapshot action",
        "snapshotVolumes",
        "spec hooks",
        "unbound claim",
        "volume policy",
      ].sort(),
    );
  });

  it("are renamed whole to a run's prefix, namespaces and the spec's globs alike", () => {
    const c = fc.sample(caseArb("case"), { seed: 3, numRuns: 1 })[0]!;
    expect(JSON.stringify(withPrefix(c, "run7"))).not.toContain("case-");
  });
});

describe("comparing a prediction with what Velero did", () => {
  const c: FidelityCase = {
    namespaces: [
      {
        name: "ns-a",
        labels: {},
        pods: [
          {
            name: "p1",
            labels: { app: "a" },
            annotations: { "backup.velero.io/backup-volumes-excludes": "data, tmp" },
            volumes: [
              { name: "tmp", source: "emptyDir" },
              { name: "data", source: "pvc", claim: "c1" },
            ],
          },
        ],
        pvcs: [{ name: "c1", labels: {}, bound: true }],
      },
    ],
    spec: { includedNamespaces: ["ns-a"], defaultVolumesToFsBackup: true },
  };
  const exact: Outcomes = new Map([
    ["Pod ns-a/p1", { included: true, work: ["file-system backup tmp"] }],
    ["PersistentVolumeClaim ns-a/c1", { included: true, work: ["snapshot"] }],
    ["PersistentVolume ns-a-c1", { included: true, work: [] }],
  ]);

  it("finds nothing to report when Velero did what was predicted (' tmp' excludes nothing, so tmp is copied)", () => {
    const { view, prediction } = predictCase(c);
    expect(compare(prediction, exact, ALL, (k) => clusterUnitOf(k, view, DEFAULT_POLICY))).toEqual([]);
  });

  it.each([
    {
      case: "a volume Velero copied that was not predicted",
      item: "Pod ns-a/p1",
      got: { included: true, work: ["file-system backup data", "file-system backup tmp"] },
      mismatch: { item: "Pod ns-a/p1", predicted: "file-system backup tmp", observed: "file-system backup data, file-system backup tmp" },
    },
    {
      case: "an item Velero left out",
      item: "PersistentVolume ns-a-c1",
      got: { included: false, work: [] },
      mismatch: { item: "PersistentVolume ns-a-c1", predicted: "included", observed: "not included" },
    },
    {
      case: "a snapshot Velero did not take",
      item: "PersistentVolumeClaim ns-a/c1",
      got: { included: true, work: [] },
      mismatch: { item: "PersistentVolumeClaim ns-a/c1", predicted: "snapshot", observed: "nothing" },
    },
  ])("reports $case", ({ item, got, mismatch }) => {
    const { view, prediction } = predictCase(c);
    const observed = new Map(exact);
    observed.set(item, got);
    expect(compare(prediction, observed, ALL, (k) => clusterUnitOf(k, view, DEFAULT_POLICY))).toEqual([mismatch]);
  });

  it("compares only what the run could observe", () => {
    const { view, prediction } = predictCase(c);
    const itemsOnly = new Map([...exact].map(([k, o]) => [k, { included: o.included, work: [] }]));
    expect(compare(prediction, itemsOnly, new Set<Dimension>(["items"]), (k) => clusterUnitOf(k, view, DEFAULT_POLICY))).toEqual([]);
  });

  it("reports an included item whose cluster unit is not among the backup's units", () => {
    const { prediction } = predictCase(c);
    expect(compare(prediction, exact, ALL, (k) => (k === "PersistentVolumeClaim ns-a/c1" ? "ns-a/pvc:other" : undefined))).toContainEqual({
      item: "PersistentVolumeClaim ns-a/c1",
      predicted: "included in none of the backup's units",
      observed: "the item is in unit ns-a/pvc:other",
    });
  });

  it("reports a claim whose unit is not the item's unit in the cluster", () => {
    const { prediction } = predictCase(c);
    expect(compare(prediction, exact, ALL, () => "ns-a/pod:elsewhere").map((m) => m.predicted)).toContain(
      `claims unit ${prediction.claimedUnits.get("Pod ns-a/p1")}`,
    );
  });
});

describe("reading Velero's records", () => {
  it("tells the claims cut by one VolumeGroupSnapshot from those snapshotted alone", () => {
    const vs = (ns: string, claim: string, group?: string) => ({
      metadata: { namespace: ns },
      spec: { source: { persistentVolumeClaimName: claim } },
      ...(group ? { status: { volumeGroupSnapshotName: group } } : {}),
    });
    const groups = groupSnapshots({ probe: [], csiSnapshots: [vs("ns-a", "c2", "g"), vs("ns-a", "c1", "g"), vs("ns-a", "c3"), vs("ns-b", "c1", "g")] });
    expect(Object.fromEntries(groups)).toEqual({
      "ns-a/g": ["PersistentVolumeClaim ns-a/c1", "PersistentVolumeClaim ns-a/c2"],
      "ns-b/g": ["PersistentVolumeClaim ns-b/c1"],
    });
  });

  it("reads the hook records the pods wrote, one run per line, and refuses a line it does not know", () => {
    const dir = mkdtempSync(join(tmpdir(), "fidelity-hooks-"));
    try {
      mkdirSync(join(dir, "ns-a", "p1"), { recursive: true });
      writeFileSync(join(dir, "ns-a", "p1", "hooks.log"), "pre\npost\n");
      mkdirSync(join(dir, "ns-a", "p2"), { recursive: true });
      expect(readHookRecords(dir, ["ns-a", "ns-b"])).toEqual([
        { namespace: "ns-a", pod: "p1", phase: "pre" },
        { namespace: "ns-a", pod: "p1", phase: "post" },
      ]);
      writeFileSync(join(dir, "ns-a", "p2", "hooks.log"), "pre\nfreeze\n");
      expect(() => readHookRecords(dir, ["ns-a"])).toThrow(/malformed hook record .*p2.*"freeze"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("turns hook records, PodVolumeBackups, volume info and probe records into outcomes per item", () => {
    const outcomes = observedOutcomes("b1", {
      probe: [
        { backup: "b1", kind: "Pod", namespace: "ns-a", name: "p1", start: 0n, end: 1n },
        { backup: "other", kind: "Pod", namespace: "ns-a", name: "p2", start: 0n, end: 1n },
      ],
      podVolumeBackups: [{ spec: { pod: { namespace: "ns-a", name: "p1" }, volume: "tmp" } }],
      volumeInfos: [
        { pvcName: "c1", pvcNamespace: "ns-a", pvName: "pv1", backupMethod: "CSISnapshot" },
        { pvcName: "c2", pvcNamespace: "ns-a", skipped: true },
        { pvcName: "c3", pvcNamespace: "ns-a", pvName: "pv3", backupMethod: "PodVolumeBackup" },
      ],
      hookRuns: [{ namespace: "ns-a", pod: "p1", phase: "pre" }],
      // A claim whose PV the backup leaves out has no volume info entry, only its VolumeSnapshot.
      csiSnapshots: [{ metadata: { namespace: "ns-a" }, spec: { source: { persistentVolumeClaimName: "c4" } } }],
    });
    expect(Object.fromEntries(outcomes)).toEqual({
      "Pod ns-a/p1": { included: true, work: ["file-system backup tmp", "pre hooks"] },
      "PersistentVolumeClaim ns-a/c1": { included: false, work: ["snapshot"] },
      "PersistentVolumeClaim ns-a/c4": { included: false, work: ["snapshot"] },
    });
  });
});

describe("a claim two pods copy", () => {
  // Both pods opt the claim in; Velero copies it once, from the first pod of the block, and skips
  // it on the other ("already been backed up from another pod"). The copy is told on the claim.
  const shared: FidelityCase = {
    namespaces: [
      {
        name: "ns-a",
        labels: {},
        pods: ["p1", "p2"].map((name) => ({ name, labels: {}, annotations: {}, volumes: [{ name: "data", source: "pvc" as const, claim: "c1" }] })),
        pvcs: [{ name: "c1", labels: {}, bound: true }],
      },
    ],
    spec: { includedNamespaces: ["ns-a"], defaultVolumesToFsBackup: true },
  };
  const pvb = (pod: string, annotations?: Record<string, string>) => ({
    ...(annotations ? { metadata: { annotations } } : {}),
    spec: { pod: { namespace: "ns-a", name: pod }, volume: "data" },
  });
  const records = (pvbs: ReturnType<typeof pvb>[]) => ({
    probe: ["p1", "p2"].map((name) => ({ backup: "b", kind: "Pod", namespace: "ns-a", name, start: 0n, end: 1n })),
    podVolumeBackups: pvbs,
  });
  const fsOnly: ReadonlySet<Dimension> = new Set(["file-system backup"]);

  it.each([
    { case: "Velero's one copy, from p1, matches the prediction", pvbs: [pvb("p1", { "velero.io/pvc-name": "c1" })], mismatches: 0 },
    { case: "from p2 it matches too: which pod copies is Velero's bookkeeping", pvbs: [pvb("p2", { "velero.io/pvc-name": "c1" })], mismatches: 0 },
    { case: "positive control: a copy told on the pod (no claim named) differs", pvbs: [pvb("p1")], mismatches: 2 },
    { case: "positive control: no copy at all differs", pvbs: [], mismatches: 1 },
  ])("$case", ({ pvbs, mismatches }) => {
    const { view, prediction } = predictCase(shared);
    expect(prediction.outcomes.get("PersistentVolumeClaim ns-a/c1")?.work).toEqual(["file-system backup"]);
    const found = compare(prediction, observedOutcomes("b", records(pvbs)), fsOnly, (k) => clusterUnitOf(k, view, DEFAULT_POLICY));
    expect(found).toHaveLength(mismatches);
  });
});

describe("items Velero failed (named in the results file)", () => {
  const line =
    'velero:  name: /c1 message: /Error backing up item error: /error executing custom action (groupResource=persistentvolumeclaims, namespace=ns-a, name=c1): rpc error: code = Unknown desc = failed to determine VolumeGroupSnapshotClass for CSI driver "d": failed to list VolumeGroupSnapshotClasses: no matches for kind "VolumeGroupSnapshotClass" in version "groupsnapshot.storage.k8s.io/v1beta2"';

  it("is read from the results file's line and counts as included; a failed group snapshot is no snapshot", () => {
    expect(itemErrors([line, "velero: something else"])).toEqual([{ namespace: "ns-a", resource: "persistentvolumeclaims", name: "c1", error: line }]);
    expect(Object.fromEntries(observedOutcomes("b1", { probe: [], errors: [line] }))).toEqual({
      "PersistentVolumeClaim ns-a/c1": { included: true, work: [] },
    });
  });

  it("an item failed otherwise counts as included, with nothing done", () => {
    const other = "velero:  name: /c1 message: /Error backing up item error: /PVC ns-a/c1 has no volume backing this claim";
    expect(Object.fromEntries(observedOutcomes("b1", { probe: [], errors: [other, "velero: not an item"] }))).toEqual({
      "PersistentVolumeClaim ns-a/c1": { included: true, work: [] },
    });
  });
});

describe("a mismatching case, cut down to the items that differ", () => {
  it("keeps the items named, the claims their pods mount and the pods mounting their claims", () => {
    const c: FidelityCase = {
      namespaces: [
        {
          name: "ns-a",
          labels: {},
          pods: [
            { name: "p1", labels: {}, annotations: {}, volumes: [{ name: "data", source: "pvc", claim: "c1" }] },
            { name: "p2", labels: {}, annotations: {}, volumes: [{ name: "tmp", source: "emptyDir" }] },
          ],
          pvcs: [
            { name: "c1", labels: {}, bound: true },
            { name: "c2", labels: {}, bound: true },
          ],
        },
        { name: "ns-b", labels: {}, pods: [], pvcs: [{ name: "c1", labels: {}, bound: true }] },
      ],
      spec: {},
    };
    const cut = reduceToItems(c, ["PersistentVolume pv-x"], (pv) => (pv === "pv-x" ? "PersistentVolumeClaim ns-a/c1" : undefined));
    expect(cut.namespaces.map((ns) => [ns.name, ns.pods.map((p) => p.name), ns.pvcs.map((p) => p.name)])).toEqual([["ns-a", ["p1"], ["c1"]]]);
  });
});

describe("reading the backup's tarball", () => {
  it("finds the VolumeSnapshot files in a tar archive written by tar itself", () => {
    const dir = mkdtempSync(join(tmpdir(), "fidelity-tar-"));
    try {
      const vsDir = join(dir, "resources", "volumesnapshots.snapshot.storage.k8s.io", "namespaces", "ns-a");
      mkdirSync(vsDir, { recursive: true });
      writeFileSync(
        join(vsDir, "velero-c1-abcde.json"),
        JSON.stringify({ metadata: { namespace: "ns-a" }, spec: { source: { persistentVolumeClaimName: "c1" } } }),
      );
      mkdirSync(join(dir, "resources", "pods", "namespaces", "ns-a"), { recursive: true });
      writeFileSync(join(dir, "resources", "pods", "namespaces", "ns-a", "p1.json"), "{}");
      const tar = execFileSync("tar", ["-C", dir, "-cf", "-", "resources"]);
      const files = tarFiles(tar, /^resources\/volumesnapshots\.snapshot\.storage\.k8s\.io\/namespaces\/[^/]+\/[^/]+\.json$/);
      expect(files.map((f) => JSON.parse(f.toString("utf8")) as unknown)).toEqual([
        { metadata: { namespace: "ns-a" }, spec: { source: { persistentVolumeClaimName: "c1" } } },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
