import { describe, expect, it } from "vitest";
import { DEFAULT_POLICY } from "../../src/core/policy.js";
import { parseBackupSpec } from "../../src/core/velero/backupSpec.js";
import { hooksOnPod } from "../../src/core/velero/hooks.js";
import { volumeRules } from "../../src/core/velero/volumes.js";
import { backup, boundClaim, ns, pod } from "../support/builders.js";
import { cluster } from "./support/cluster.js";

// An admission review computes the candidate's scope over every pod and claim of its namespaces
// (docs/performance.md, issue 20): the common answers (no hook, no file-system volume, the unit
// of a pod) are given without allocating a list or a key string per pod.

const s = cluster(
  ns("shop"),
  pod("shop", "web-1", { claims: ["data"], volumes: [{ name: "tmp", emptyDir: {} }] }),
  pod("shop", "web-2", { volumes: [{ name: "tmp", emptyDir: {} }] }),
  pod("shop", "hooked", { annotations: { "pre.hook.backup.velero.io/command": '["/bin/sync"]' } }),
  ...boundClaim("shop", "data"),
  backup("b", { includedNamespaces: ["shop"] }),
);
const pods = s.view.contents("shop").pods;
const spec = (raw: object) => {
  const parsed = parseBackupSpec(raw);
  if (!parsed.ok) throw new Error("spec");
  return parsed.spec;
};

describe("per-pod answers of a candidate's scope", () => {
  it("pods without hooks share one empty list; a hook still shows (positive control)", () => {
    const none = spec({});
    expect(hooksOnPod(pods.get("web-1")!, none)).toBe(hooksOnPod(pods.get("web-2")!, none));
    expect(hooksOnPod(pods.get("web-1")!, none)).toEqual([]);
    expect(hooksOnPod(pods.get("hooked")!, none)).toEqual([{ phase: "pre", source: "annotation pre.hook.backup.velero.io/command" }]);
  });

  it("pods with no file-system volume share one empty list; an opted-in volume still shows (positive control)", () => {
    const rules = (raw: object) => volumeRules(s.backups[0]!, spec(raw), s.view, DEFAULT_POLICY, true);
    const optIn = rules({});
    expect(optIn.fsBackupVolumes(pods.get("web-1")!)).toBe(optIn.fsBackupVolumes(pods.get("web-2")!));
    expect(optIn.fsBackupVolumes(pods.get("web-1")!)).toEqual([]);
    expect(rules({ defaultVolumesToFsBackup: true }).fsBackupVolumes(pods.get("web-1")!)).toEqual(["vol-data", "tmp"]);
  });

  it("a unit by kind and name is the unit by member key", () => {
    const contents = s.view.contents("shop");
    const key = DEFAULT_POLICY.volumeGroupSnapshotLabelKey;
    expect(contents.podUnit("web-1", key)).toBe(contents.unitOf("pod:web-1", key));
    expect(contents.pvcUnit("data", key)).toBe(contents.unitOf("pvc:data", key));
    expect(contents.podUnit("web-1", key)).toBe(contents.pvcUnit("data", key));
    expect(contents.podUnit("web-2", key)).not.toBe(contents.podUnit("web-1", key));
    expect([contents.podUnit("data", key), contents.pvcUnit("web-1", key), contents.unitOf("web-1", key)]).toEqual([undefined, undefined, undefined]);
  });
});
