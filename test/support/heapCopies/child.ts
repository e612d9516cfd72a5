// Run by test/unit/heldNames.test.ts in a process of its own: slims N volumes, N claims bound to
// them and N pods mounting those (each decoded from JSON text, so every name starts as a fresh
// copy) into a ClusterView, in the order given, then counts the copies of each claim name and
// each volume name in a heap snapshot.
// argv: N, "held" | "none", the order (e.g. "pvs,claims,pods").
import { getHeapSnapshot } from "node:v8";
import { Interner, slimPod, slimPv, slimPvc, type Held } from "../../../src/cluster/slim.js";
import type { PodInfo, PvcInfo, PvInfo } from "../../../src/core/model.js";
import { trim } from "../../../src/core/velero/objects.js";
import { ClusterView } from "../../../src/core/view.js";

const [n, mode, order] = [Number(process.argv[2]), process.argv[3], (process.argv[4] ?? "").split(",")];
const claim = (k: number) => `held-claim-${String(k).padStart(6, "0")}`;
const volume = (k: number) => `held-volume-${String(k).padStart(6, "0")}`;
const view = new ClusterView();
const i = new Interner();
const held: Held | undefined = mode === "held" ? { pvc: (ns, name) => view.pvc(ns, name), pv: (name) => view.pv(name) } : undefined;
const decode = <T>(kind: "Pod" | "PersistentVolumeClaim" | "PersistentVolume", text: string): T => {
  const r = trim(kind, JSON.parse(text));
  if (!r.ok) throw r.error;
  return r.value as T;
};
const claims = () => {
  for (let k = 0; k < n; k++) {
    const text = JSON.stringify({
      kind: "PersistentVolumeClaim",
      metadata: { namespace: "shop", name: claim(k) },
      spec: { volumeName: volume(k) },
      status: { phase: "Bound" },
    });
    view.setPvc(slimPvc(decode<PvcInfo>("PersistentVolumeClaim", text), i, held));
  }
};
const pods = () => {
  for (let k = 0; k < n; k++) {
    const text = JSON.stringify({
      kind: "Pod",
      metadata: { namespace: "shop", name: `db-${k}` },
      spec: { nodeName: "w", volumes: [{ name: "data", persistentVolumeClaim: { claimName: claim(k) } }] },
      status: { phase: "Running" },
    });
    view.setPod(slimPod(decode<PodInfo>("Pod", text), i, held));
  }
};
const pvs = () => {
  for (let k = 0; k < n; k++) {
    const text = JSON.stringify({
      kind: "PersistentVolume",
      metadata: { name: volume(k) },
      spec: { claimRef: { namespace: "shop", name: claim(k) }, hostPath: { path: "/d" } },
    });
    view.setPv(slimPv(decode<PvInfo>("PersistentVolume", text), i, held));
  }
};
const steps: Record<string, () => void> = { pvs, claims, pods };
for (const step of order) steps[step]!();

const chunks: string[] = [];
getHeapSnapshot()
  .on("data", (c: Buffer) => chunks.push(c.toString("utf8")))
  .on("end", () => {
    const snap = JSON.parse(chunks.join("")) as { snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }; nodes: number[]; strings: string[] };
    const fields = snap.snapshot.meta.node_fields;
    const [typeAt, nameAt] = [fields.indexOf("type"), fields.indexOf("name")];
    const types = snap.snapshot.meta.node_types[0];
    const copies = { claimNames: 0, volumeNames: 0 };
    for (let at = 0; at < snap.nodes.length; at += fields.length) {
      if (types[snap.nodes[at + typeAt]!] !== "string") continue;
      const value = snap.strings[snap.nodes[at + nameAt]!]!;
      if (/^held-claim-\d{6}$/.test(value)) copies.claimNames++;
      if (/^held-volume-\d{6}$/.test(value)) copies.volumeNames++;
    }
    process.stdout.write(`${JSON.stringify({ ...copies, held: [[...view.pvs()].length, [...view.allPvcs()].length, [...view.allPods()].length] })}\n`);
  });
