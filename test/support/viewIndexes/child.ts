// Run by test/unit/viewIndexes.test.ts in a process of its own: fills a view with N pods, each
// mounting a claim bound to a volume, then makes the namespace's indexes (each pod's unit, its
// graph, each claim looked up in it) and says how many JS arrays and how many bytes of array elements they added, as
// two heap snapshots count them.
// argv: N, "indexes" | "spelled" (also keeps every pod's unit spelled, as the index once held
// them) | "pushed" (also keeps a list per claim made by push, as the claim index once did).
import type { PodInfo } from "../../../src/core/model.js";
import { ClusterView } from "../../../src/core/view.js";
import { eachHeapNode } from "../heapSnapshot.js";
import { shopItems } from "../shopItems.js";

const [n, mode] = [Number(process.argv[2]), process.argv[3]];
const GROUP_KEY = "velero.io/volume-group";
const view = new ClusterView();
for (let k = 0; k < n; k++) {
  const { pv, pvc, pod } = shopItems(k);
  view.setPv(pv);
  view.setPvc(pvc);
  view.setPod(pod);
}
const kept: unknown[] = [];

interface Counts {
  arrays: number;
  elementBytes: number;
}

async function count(): Promise<Counts> {
  const counts: Counts = { arrays: 0, elementBytes: 0 };
  await eachHeapNode(({ type, name, selfSize }) => {
    if (type === "object" && name === "Array") counts.arrays++;
    if (type === "array" && name === "(object elements)") counts.elementBytes += selfSize;
  });
  return counts;
}

// In a function of its own, so that no loop variable of it is alive while a snapshot is taken.
function index(): void {
  const contents = view.contents("shop");
  const graph = contents.graph();
  for (let k = 0; k < n; k++) {
    contents.podUnit(`db-${k}`, GROUP_KEY);
    graph.claimAt(`data-${k}`);
    if (mode === "spelled") kept.push(contents.unitOf(`pod:db-${k}`, GROUP_KEY));
    if (mode === "pushed") {
      const list: PodInfo[] = [];
      list.push(contents.pods.get(`db-${k}`) as PodInfo);
      kept.push(list);
    }
  }
}

const before = await count();
index();
const after = await count();
process.stdout.write(
  `${JSON.stringify({ arraysPerPod: (after.arrays - before.arrays) / n, elementBytesPerPod: (after.elementBytes - before.elementBytes) / n, kept: kept.length })}\n`,
);
