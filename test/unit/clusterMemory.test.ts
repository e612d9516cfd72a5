import { describe, expect, it } from "vitest";
import { Interner, slimPod, slimPv, slimPvc } from "../../src/cluster/slim.js";
import { trim } from "../../src/core/velero/objects.js";
import type { PodInfo, PvcInfo, PvInfo } from "../../src/core/model.js";
import { pod, pv, pvc } from "../support/builders.js";

// The memory savings of the cluster cache (bench/rss.bench.ts, heap snapshot of 100k pods and
// 100k PVCs) must not change what the cache decides.

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

const decoded = <T>(kind: "Pod" | "PersistentVolumeClaim", o: object): T => {
  const r = trim(kind, JSON.parse(JSON.stringify(o)));
  if (!r.ok) throw r.error;
  return r.value as T;
};
const slimmedPod = (i: Interner, name: string, o: Parameters<typeof pod>[2] = {}) => slimPod(decoded<PodInfo>("Pod", pod("shop", name, o)), i);
const slimmedPvc = (i: Interner, name: string, o: Parameters<typeof pvc>[2] = {}) =>
  slimPvc(decoded<PvcInfo>("PersistentVolumeClaim", pvc("shop", name, o)), i);

describe("equal maps and volumes are one shared object (pods of one workload repeat them)", () => {
  const replica = { labels: { app: "web", "pod-template-hash": "5d8f9c7b6" }, annotations: { "backup.velero.io/backup-volumes": "cache" } };
  const cache = { name: "cache", emptyDir: {} };

  it("two replicas share their labels, their annotations and an equal volume", () => {
    const i = new Interner();
    const a = slimmedPod(i, "web-1", { ...replica, volumes: [cache] });
    const b = slimmedPod(i, "web-2", { ...replica, volumes: [cache] });
    expect(b.labels).toBe(a.labels);
    expect(b.annotations).toBe(a.annotations);
    expect(b.volumes[0]).toBe(a.volumes[0]);
    expect(a.labels).toEqual(replica.labels);
    expect(Object.isFrozen(a.labels) && Object.isFrozen(a.volumes[0])).toBe(true);
  });

  it("different content is not shared (positive control)", () => {
    const i = new Interner();
    const a = slimmedPod(i, "web-1", { ...replica, volumes: [cache] });
    const b = slimmedPod(i, "web-2", {
      labels: { app: "api" },
      annotations: { "backup.velero.io/backup-volumes": "tmp" },
      volumes: [{ name: "tmp", emptyDir: {} }],
    });
    expect(b.labels).not.toBe(a.labels);
    expect(b.annotations).not.toBe(a.annotations);
    expect(b.volumes[0]).not.toBe(a.volumes[0]);
    expect({ labels: b.labels, annotations: b.annotations, volume: b.volumes[0]?.name }).toEqual({
      labels: { app: "api" },
      annotations: { "backup.velero.io/backup-volumes": "tmp" },
      volume: "tmp",
    });
  });

  it("claims with equal labels share them; a map holding the object's own name is its own and not tabled", () => {
    const i = new Interner();
    expect(slimmedPvc(i, "data-0", { labels: { app: "db" } }).labels).toBe(slimmedPvc(i, "data-1", { labels: { app: "db" } }).labels);
    const tabled = i.sharedSize;
    const own = (n: string) => slimmedPod(i, n, { labels: { app: "db", "statefulset.kubernetes.io/pod-name": n } });
    expect(own("db-0").labels).not.toBe(own("db-1").labels);
    expect(i.sharedSize).toBe(tabled);
  });

  it("stops tabling past its bound and keeps answering", () => {
    const i = new Interner(200_000, 256, 2);
    const labels = Array.from({ length: 4 }, (_, k) => slimmedPvc(i, `c-${k}`, { labels: { app: `a${k}` } }).labels);
    expect(i.sharedSize).toBe(2);
    expect(labels).toEqual([0, 1, 2, 3].map((k) => ({ app: `a${k}` })));
  });
});

describe("a pod keeps only the volumes Velero may copy", () => {
  it.each([
    { volume: { name: "kube-api-access-x7k2p", projected: { sources: [] } }, kept: false },
    { volume: { name: "conf", configMap: { name: "c" } }, kept: false },
    { volume: { name: "tls", secret: { secretName: "s" } }, kept: false },
    { volume: { name: "info", downwardAPI: { items: [] } }, kept: false },
    { volume: { name: "host", hostPath: { path: "/var" } }, kept: false },
    { volume: { name: "default-token-abcde", emptyDir: {} }, kept: false },
    { volume: { name: "scratch", emptyDir: {} }, kept: true },
    { volume: { name: "share", nfs: { server: "nfs.local", path: "/x" } }, kept: true },
    { volume: { name: "inline", csi: { driver: "d", volumeAttributes: { a: "1" } } }, kept: true },
  ])("$volume.name kept: $kept", ({ volume, kept }) => {
    const p = slimmedPod(new Interner(), "p", { claims: ["data"], volumes: [volume] });
    expect(p.volumes.map((v) => v.name)).toEqual(kept ? ["vol-data", volume.name] : ["vol-data"]);
  });
});
