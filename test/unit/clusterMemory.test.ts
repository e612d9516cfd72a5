import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compactVersion } from "../../src/kube/reflector.js";
import { Interner, slimPod } from "../../src/cluster/slim.js";
import { trim } from "../../src/core/velero/objects.js";
import { pod } from "./support/cluster.js";

// The memory savings of the cluster cache (bench/rss.bench.ts, heap snapshot of 100k pods and
// 100k PVCs) must not change what the cache decides.

describe("resourceVersions held per object", () => {
  it.each([
    ["1", 1],
    ["402388", 402388],
    ["999999999999999", 999999999999999],
    ["1000000000000000", "1000000000000000"], // past 15 digits a number could round: kept as text
    ["0", "0"],
    ["007", "007"],
    ["", ""],
    ["12a", "12a"],
    [" 12", " 12"],
  ])("%j is held as %j", (rv, held) => {
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
