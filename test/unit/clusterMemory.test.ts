import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compactVersion } from "../../src/kube/reflector.js";
import { Interner, slimPod, slimPv, slimPvc } from "../../src/cluster/slim.js";
import { trim } from "../../src/core/velero/objects.js";
import type { PodInfo, PvcInfo, PvInfo } from "../../src/core/model.js";
import { pod, pv, pvc } from "../support/builders.js";

// The memory savings of the cluster cache (bench/rss.bench.ts, heap snapshot of 100k pods and
// 100k PVCs) must not change what the cache decides.

describe("resourceVersions held per object", () => {
  it.each([
    { rv: "1", held: 1 },
    { rv: "402388", held: 402388 },
    { rv: "999999999999999", held: 999999999999999 },
    { rv: "1000000000000000", held: "1000000000000000" }, // past 15 digits a number could round: kept as text
    { rv: "0", held: "0" },
    { rv: "007", held: "007" },
    { rv: "", held: "" },
    { rv: "12a", held: "12a" },
    { rv: " 12", held: " 12" },
  ])("$rv is held as $held", ({ rv, held }) => {
    expect(compactVersion(rv)).toBe(held);
  });

  it("tells two versions apart exactly when their strings differ", () => {
    const version = fc.oneof(fc.string(), fc.bigInt({ min: 0n, max: 10n ** 17n }).map(String), fc.stringMatching(/^0*[0-9]{1,16}$/));
    fc.assert(
      fc.property(version, version, (a, b) => {
        expect(compactVersion(a) === compactVersion(b)).toBe(a === b);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("a label repeating the pod's name", () => {
  const slim = (name: string, i: Interner) => {
    const r = trim("Pod", JSON.parse(JSON.stringify(pod("shop", name, { labels: { app: "db", "statefulset.kubernetes.io/pod-name": name } }))));
    if (!r.ok) throw r.error;
    return { full: r.value, slim: slimPod(r.value, i) };
  };

  it("keeps the label as it is without a string table entry per pod", () => {
    const i = new Interner();
    const { full, slim: first } = slim("db-0", i);
    const tableAfterOne = i.size;
    const { slim: second } = slim("db-1", i);
    expect(first.labels).toEqual(full.labels);
    expect(second.labels).toEqual({ app: "db", "statefulset.kubernetes.io/pod-name": "db-1" });
    expect(i.size).toBe(tableAfterOne); // only shared strings were added by the first pod
  });
});

describe("what budgets read survives slimming (docs/rules.md, Budgets)", () => {
  const read = <T>(kind: "Pod" | "PersistentVolumeClaim" | "PersistentVolume", o: object): T => {
    const r = trim(kind, JSON.parse(JSON.stringify(o)));
    if (!r.ok) throw r.error;
    return r.value as T;
  };
  it("a pod's node, a claim's storage class, a volume's CSI driver and storage class", () => {
    const i = new Interner();
    const p = slimPod(read<PodInfo>("Pod", pod("shop", "db-0", { node: "worker-3" })), i);
    const c = slimPvc(read<PvcInfo>("PersistentVolumeClaim", pvc("shop", "data", { storageClass: "gold" })), i);
    const v = slimPv(read<PvInfo>("PersistentVolume", pv("pv-1", { csiDriver: "ebs.csi.aws.com", storageClass: "gold" })), i);
    expect({ node: p.nodeName, claimClass: c.storageClassName, driver: v.csi?.driver, volumeClass: v.storageClassName }).toEqual({
      node: "worker-3",
      claimClass: "gold",
      driver: "ebs.csi.aws.com",
      volumeClass: "gold",
    });
  });
});
