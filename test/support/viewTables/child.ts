// Run by test/unit/viewTables.test.ts in a process of its own (with --expose-gc): makes N pods
// and N claims in one namespace, then puts them into a view and says how many bytes of heap the
// view added per item, after a full collection. The items themselves are made and held before,
// so only the view's own tables are counted.
// argv: N, "view" | "maps" (also keeps each kind in a Map by name, as the view once did).
import type { PodInfo, PvcInfo } from "../../../src/core/model.js";
import { ClusterView } from "../../../src/core/view.js";
import { shopItems } from "../shopItems.js";

const [n, mode] = [Number(process.argv[2]), process.argv[3]];
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --expose-gc");

const items = Array.from({ length: n }, (_, k) => shopItems(k));
const pods = items.map((i) => i.pod);
const pvcs = items.map((i) => i.pvc);
// In the API server's order (by name), as a first list delivers them.
pods.sort((a, b) => (a.name < b.name ? -1 : 1));
pvcs.sort((a, b) => (a.name < b.name ? -1 : 1));

const heap = () => {
  gc();
  return process.memoryUsage().heapUsed;
};
const before = heap();
const view = new ClusterView();
const maps = { pods: new Map<string, PodInfo>(), pvcs: new Map<string, PvcInfo>() };
for (const c of pvcs) view.setPvc(c);
for (const p of pods) view.setPod(p);
if (mode === "maps") {
  for (const c of pvcs) maps.pvcs.set(c.name, c);
  for (const p of pods) maps.pods.set(p.name, p);
}
const after = heap();
process.stdout.write(
  `${JSON.stringify({ bytesPerItem: (after - before) / (2 * n), held: view.contents("shop").pods.size + maps.pods.size + items.length })}\n`,
);
