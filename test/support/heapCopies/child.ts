// Run by test/unit/heldNames.test.ts in a process of its own: slims N volumes, N claims bound to
// them and N pods mounting those (each decoded from JSON text, so every name starts as a fresh
// copy) into a ClusterView, in the order given, then counts the copies of each claim name and
// each volume name in a heap snapshot.
// argv: N, "held" | "none", the order (e.g. "pvs,claims,pods").
import { Interner, slimPod, slimPv, slimPvc, type Held } from "../../../src/cluster/slim.js";
import type { PodInfo, PvcInfo, PvInfo } from "../../../src/core/model.js";
import { trim } from "../../../src/core/velero/objects.js";
import { ClusterView } from "../../../src/core/view.js";
import { eachHeapNode } from "../heapSnapshot.js";

const [n, mode, order] = [Number(process.argv[2]), process.argv[3], (process.argv[4] ?? "").split(",")];
const claim = (k: number) => `held-claim-${String(k).padStart(6, "0")}`;
const volume = (k: number) => `held-volume-${String(k).padStart(6, "0")}`;
const view = new ClusterView();
const i = new Interner();
const held: Held | undefined = mode === "held" ? view : undefined;

/** Each kind's raw object `k` (as JSON text, so its names are parsed afresh) and where it goes. */
const kinds = {
  pvs: {
    kind: "PersistentVolume",
    raw: (k: number) => ({ metadata: { name: volume(k) }, spec: { claimRef: { namespace: "shop", name: claim(k) }, hostPath: { path: "/d" } } }),
    put: (o: unknown) => view.setPv(slimPv(o as PvInfo, i, held)),
  },
  claims: {
    kind: "PersistentVolumeClaim",
    raw: (k: number) => ({ metadata: { namespace: "shop", name: claim(k) }, spec: { volumeName: volume(k) }, status: { phase: "Bound" } }),
    put: (o: unknown) => view.setPvc(slimPvc(o as PvcInfo, i, held)),
  },
  pods: {
    kind: "Pod",
    raw: (k: number) => ({
      metadata: { namespace: "shop", name: `db-${k}` },
      spec: { nodeName: "w", volumes: [{ name: "data", persistentVolumeClaim: { claimName: claim(k) } }] },
      status: { phase: "Running" },
    }),
    put: (o: unknown) => view.setPod(slimPod(o as PodInfo, i, held)),
  },
} as const;

// In a function of its own: a loop in the module's body would keep its last object alive in the
// running frame while the snapshot is taken.
function fill(): void {
  for (const step of order) {
    const { kind, raw, put } = kinds[step as keyof typeof kinds];
    for (let k = 0; k < n; k++) {
      const r = trim(kind, JSON.parse(JSON.stringify(raw(k))));
      if (!r.ok) throw r.error;
      put(r.value);
    }
  }
}
fill();

const copies = { claimNames: 0, volumeNames: 0 };
await eachHeapNode(({ type, name }) => {
  if (type !== "string") return;
  if (/^held-claim-\d{6}$/.test(name)) copies.claimNames++;
  if (/^held-volume-\d{6}$/.test(name)) copies.volumeNames++;
});
process.stdout.write(`${JSON.stringify({ ...copies, held: [[...view.pvs()].length, [...view.allPvcs()].length, [...view.allPods()].length] })}\n`);
